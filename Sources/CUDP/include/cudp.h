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

#endif
