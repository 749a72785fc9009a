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

#endif
