#define _GNU_SOURCE
#include "ctcp.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#ifndef TCP_NOTSENT_LOWAT
#define TCP_NOTSENT_LOWAT 25
#endif
#ifndef TCP_USER_TIMEOUT
#define TCP_USER_TIMEOUT 18
#endif

int ctcp_accept(int fd, void *addr, unsigned int *addrlen) {
    socklen_t len = *addrlen;
    int c = accept4(fd, (struct sockaddr *)addr, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) return -errno;
    *addrlen = len;
    return c;
}

int ctcp_configure(int fd, int lowat, int user_timeout_ms) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) return -errno;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat) < 0) return -errno;
    if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms) < 0) return -errno;
    return 0;
}

int ctcp_connect_result(int fd) {
    struct pollfd p = { .fd = fd, .events = POLLOUT, .revents = 0 };
    int n = poll(&p, 1, 0);
    if (n < 0) return -errno;
    if (n == 0) return 1;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
    if (err != 0) return -err;
    return (p.revents & (POLLERR | POLLHUP)) ? -ECONNRESET : 0;
}

long ctcp_send(int fd, const struct iovec *iov, int iovcnt) {
    struct msghdr msg = { 0 };
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = iovcnt;
    ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n < 0 ? -errno : (long)n;
}

int ctcp_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int ctcp_epoll_add(int epfd, int fd, uint64_t tag) {
    struct epoll_event e = { .events = EPOLLIN, .data.u64 = tag };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

int ctcp_epoll_del(int epfd, int fd) {
    struct epoll_event e = { 0 };
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &e) < 0 ? -errno : 0;
}

int ctcp_epoll_wait(int epfd, uint64_t *tags, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event buf[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, buf, max, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        tags[i] = buf[i].data.u64;
        events[i] = buf[i].events;
    }
    return n;
}
