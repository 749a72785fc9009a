#ifndef JVPN_CTCP_H
#define JVPN_CTCP_H
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* TCP transport and epoll helpers Swift cannot use directly (epoll_event is packed; MSG_NOSIGNAL
   and the TCP_* options are not all visible). Each returns >= 0 on success, -errno on failure. */

/* accept4(SOCK_CLOEXEC|SOCK_NONBLOCK) with the peer's address (a sockaddr_in6-sized buffer). */
int ctcp_accept(int fd, void *addr, unsigned int *addrlen);

/* TCP_NODELAY on, TCP_NOTSENT_LOWAT = lowat (bytes not yet sent that the socket takes),
   TCP_USER_TIMEOUT = user_timeout_ms (data unacknowledged this long ends the connection). */
int ctcp_configure(int fd, int lowat, int user_timeout_ms);

/* The outcome of a non-blocking connect: 0 connected, 1 still in progress, -errno failed. */
int ctcp_connect_result(int fd);

/* sendmsg(MSG_DONTWAIT|MSG_NOSIGNAL) of `iovcnt` buffers: bytes written or -errno. */
long ctcp_send(int fd, const struct iovec *iov, int iovcnt);

/* epoll, with the 64-bit tag of each descriptor unpacked into plain arrays. */
int ctcp_epoll_create(void);
int ctcp_epoll_add(int epfd, int fd, uint64_t tag);
int ctcp_epoll_del(int epfd, int fd);
/* Up to `max` ready descriptors: their tags and event bits (EPOLLIN 1, EPOLLERR 8, EPOLLHUP 16). */
int ctcp_epoll_wait(int epfd, uint64_t *tags, uint32_t *events, int max, int timeout_ms);

#endif
