#include "ctun.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <linux/if_tun.h>

int ctun_open(const char *name, int options, char *out_name, size_t out_len) {
    if (name == NULL || strlen(name) >= IFNAMSIZ) return -EINVAL;
    int oflags = O_RDWR | O_CLOEXEC;
    if (options & CTUN_OPT_NONBLOCK) oflags |= O_NONBLOCK;
    int fd = open("/dev/net/tun", oflags);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (options & CTUN_OPT_VNET_HDR) ifr.ifr_flags |= IFF_VNET_HDR;
    if (options & CTUN_OPT_MULTI_QUEUE) ifr.ifr_flags |= IFF_MULTI_QUEUE;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (out_name != NULL && out_len > 0) {
        strncpy(out_name, ifr.ifr_name, out_len - 1);
        out_name[out_len - 1] = 0;
    }
    return fd;
}

int ctun_set_offload(int fd, unsigned int flags) {
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -errno : 0;
}

int ctun_set_vnet_hdr_size(int fd, int size) {
    return ioctl(fd, TUNSETVNETHDRSZ, &size) < 0 ? -errno : 0;
}

int ctun_set_persist(int fd, int persist) {
    return ioctl(fd, TUNSETPERSIST, (unsigned long)persist) < 0 ? -errno : 0;
}

static int ifreq_socket(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return s < 0 ? -errno : s;
}

int ctun_set_mtu(const char *name, int mtu) {
    if (name == NULL || strlen(name) >= IFNAMSIZ) return -EINVAL;
    int s = ifreq_socket();
    if (s < 0) return s;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_mtu = mtu;
    int rc = ioctl(s, SIOCSIFMTU, &ifr) < 0 ? -errno : 0;
    close(s);
    return rc;
}

int ctun_set_up(const char *name, int up) {
    if (name == NULL || strlen(name) >= IFNAMSIZ) return -EINVAL;
    int s = ifreq_socket();
    if (s < 0) return s;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int rc = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        rc = -errno;
    } else {
        if (up) ifr.ifr_flags |= IFF_UP; else ifr.ifr_flags &= ~IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) rc = -errno;
    }
    close(s);
    return rc;
}
