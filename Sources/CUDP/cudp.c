#define _GNU_SOURCE
#include "cudp.h"
#include <errno.h>
#include <stddef.h>

_Static_assert(sizeof(struct cudp_msg) == sizeof(struct mmsghdr), "cudp_msg must match mmsghdr");
_Static_assert(offsetof(struct cudp_msg, len) == offsetof(struct mmsghdr, msg_len), "msg_len offset");

int cudp_recvmmsg(int fd, struct cudp_msg *msgs, unsigned int n, int flags) {
    int r = recvmmsg(fd, (struct mmsghdr *)msgs, n, flags, NULL);
    return r < 0 ? -errno : r;
}

int cudp_sendmmsg(int fd, struct cudp_msg *msgs, unsigned int n, int flags) {
    int r = sendmmsg(fd, (struct mmsghdr *)msgs, n, flags);
    return r < 0 ? -errno : r;
}

#include <sys/eventfd.h>

int cudp_eventfd(void) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int cudp_accept_nonblocking(int fd) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    return c < 0 ? -errno : c;
}

#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/uio.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

long cudp_send_gso(int fd, const struct iovec *iov, int iovcnt, const void *addr, unsigned int addrlen,
                   unsigned short segment) {
    char control[CMSG_SPACE(sizeof(unsigned short))];
    memset(control, 0, sizeof control);
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = (void *)addr;
    msg.msg_namelen = addrlen;
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = iovcnt;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(unsigned short));
    memcpy(CMSG_DATA(cm), &segment, sizeof segment);
    ssize_t n = sendmsg(fd, &msg, 0);
    return n < 0 ? -errno : (long)n;
}

int cudp_gso_supported(int fd) {
    int v = 0;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &len) < 0 ? -errno : 0;
}

#ifndef UDP_GRO
#define UDP_GRO 104
#endif

int cudp_gro_size(const struct msghdr *msg) {
    for (struct cmsghdr *cm = CMSG_FIRSTHDR((struct msghdr *)msg); cm != NULL; cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO && cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int v;
            memcpy(&v, CMSG_DATA(cm), sizeof v);
            return v;
        }
    }
    return 0;
}

int cudp_enable_gro(int fd, int on) {
    return setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on) < 0 ? -errno : 0;
}

int cudp_set_pmtu_probe(int fd, int ipv6) {
    int v4 = IP_PMTUDISC_PROBE;
    if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v4, sizeof v4) < 0) return -errno;
    if (ipv6) {
        int v6 = IPV6_PMTUDISC_PROBE;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v6, sizeof v6) < 0) return -errno;
    }
    return 0;
}

int cudp_get_pmtu_discover(int fd, int ipv6) {
    int v = 0;
    socklen_t len = sizeof v;
    int rc = ipv6 ? getsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v, &len)
                  : getsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, &len);
    return rc < 0 ? -errno : v;
}
