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

int cudp_accept_cloexec(int fd) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    return c < 0 ? -errno : c;
}
