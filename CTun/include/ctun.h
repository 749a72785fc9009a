#ifndef JVPN_CTUN_H
#define JVPN_CTUN_H
#include <stdint.h>
#include <stddef.h>

/* Debian 12's headers predate these; the 6.x kernel accepts them. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

/* TUN_F_* offload flags, re-exported so Swift sees them without linux/if_tun.h. */
enum {
    CTUN_F_CSUM = 0x01,
    CTUN_F_TSO4 = 0x02,
    CTUN_F_TSO6 = 0x04,
    CTUN_F_TSO_ECN = 0x08,
    CTUN_F_UFO = 0x10,
    CTUN_F_USO4 = TUN_F_USO4,
    CTUN_F_USO6 = TUN_F_USO6,
};

enum {
    CTUN_OPT_VNET_HDR = 1 << 0,    /* IFF_VNET_HDR: a virtio_net_hdr precedes every packet */
    CTUN_OPT_MULTI_QUEUE = 1 << 1, /* IFF_MULTI_QUEUE: call ctun_open again with the same name for more queues */
    CTUN_OPT_NONBLOCK = 1 << 2,
};

/* Opens /dev/net/tun as an IFF_TUN|IFF_NO_PI device named `name` (may be "" for a kernel-chosen
   name). Writes the final name (IFNAMSIZ bytes) to `out_name`. Returns the fd or -errno. */
int ctun_open(const char *name, int options, char *out_name, size_t out_len);

/* TUNSETOFFLOAD with TUN_F_* flags (needs CTUN_OPT_VNET_HDR). 0 or -errno. */
int ctun_set_offload(int fd, unsigned int tun_f_flags);

/* TUNSETVNETHDRSZ. 0 or -errno. */
int ctun_set_vnet_hdr_size(int fd, int size);

/* SIOCSIFMTU on the named interface. 0 or -errno. */
int ctun_set_mtu(const char *name, int mtu);

/* Sets or clears IFF_UP on the named interface. 0 or -errno. */
int ctun_set_up(const char *name, int up);

/* TUNSETPERSIST 0: the device disappears with its last fd. 0 or -errno. */
int ctun_set_persist(int fd, int persist);

#endif
