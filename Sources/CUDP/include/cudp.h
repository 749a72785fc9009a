#ifndef JVPN_CUDP_H
#define JVPN_CUDP_H
#include <sys/socket.h>

/* Same layout as glibc's struct mmsghdr, which Swift cannot see without _GNU_SOURCE. */
struct cudp_msg {
    struct msghdr hdr;
    unsigned int len;
};

/* recvmmsg/sendmmsg; return count or -errno. */
int cudp_recvmmsg(int fd, struct cudp_msg *msgs, unsigned int n, int flags);
int cudp_sendmmsg(int fd, struct cudp_msg *msgs, unsigned int n, int flags);



/* eventfd(0, EFD_CLOEXEC|EFD_NONBLOCK) and accept4(SOCK_CLOEXEC|SOCK_NONBLOCK): GNU APIs Swift
   cannot see. */
int cudp_eventfd(void);
int cudp_accept_nonblocking(int fd);
/* One sendmsg of `iovcnt` buffers that the kernel splits into UDP datagrams of `segment` bytes
   (UDP_SEGMENT / UDP GSO; the last may be shorter). Returns bytes sent or -errno. */
long cudp_send_gso(int fd, const struct iovec *iov, int iovcnt, const void *addr, unsigned int addrlen,
                   unsigned short segment);

/* Segment size the kernel reported for a UDP_GRO-coalesced datagram (0 when not coalesced). */
int cudp_gro_size(const struct msghdr *msg);

/* setsockopt(SOL_UDP, UDP_GRO, on). 0 or -errno. */
int cudp_enable_gro(int fd, int on);

/* Probes UDP_SEGMENT support on a socket: 0 if usable, -errno otherwise. */
int cudp_gso_supported(int fd);

/* DF on every datagram, without the kernel's path MTU cache limiting sends (IP_PMTUDISC_PROBE, and
   IPV6_PMTUDISC_PROBE on an IPv6 socket, whose IPv4-mapped traffic follows the IPv4 option): a
   datagram larger than the interface fails with EMSGSIZE, one larger than the path is dropped on
   the way and never fragmented. The application searches the path MTU itself. 0 or -errno. */
int cudp_set_pmtu_probe(int fd, int ipv6);

/* The option's current value at one level (IPPROTO_IP or IPPROTO_IPV6), or -errno. */
int cudp_get_pmtu_discover(int fd, int ipv6);

#endif
