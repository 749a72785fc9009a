#pragma once
/*
 * Flat C API over libmnl for rtnetlink: links, addresses, routes, policy rules and a
 * multicast monitor. Every function returns 0 (or a count) on success and -errno on
 * failure; request functions wait for the kernel's ACK and return the kernel's error.
 *
 * A handle is bound to the network namespace of the thread that opened it, and is not
 * thread-safe: callers serialise access (the Swift wrappers do).
 */
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CMNL_IFNAMSIZ 16
/* Mirrors RT_TABLE_MAIN / RT_TABLE_LOCAL so Swift does not need linux/rtnetlink.h. */
#define CMNL_TABLE_MAIN 254u
#define CMNL_TABLE_LOCAL 255u

struct cmnl_sock;

/* Control socket: requests with ACK and dumps. */
int cmnl_open(struct cmnl_sock **out);
void cmnl_close(struct cmnl_sock *s);

/* ---- links ---- */
struct cmnl_link {
    int32_t ifindex;
    uint32_t flags;     /* IFF_* (IFF_UP 0x1, IFF_RUNNING 0x40, IFF_LOWER_UP 0x10000) */
    uint32_t mtu;
    uint8_t operstate;  /* IF_OPER_*: 2 down, 6 up, 0 unknown */
    char name[CMNL_IFNAMSIZ];
};

/* Returns the ifindex (> 0) or -errno (-ENODEV when no such link). */
int cmnl_link_index(struct cmnl_sock *s, const char *name);
int cmnl_link_set_up(struct cmnl_sock *s, int32_t ifindex, int up);
int cmnl_link_set_mtu(struct cmnl_sock *s, int32_t ifindex, uint32_t mtu);
int cmnl_link_get(struct cmnl_sock *s, int32_t ifindex, struct cmnl_link *out);
/* Fills up to cap entries; *total receives the number of links (retry larger if > cap). */
int cmnl_link_dump(struct cmnl_sock *s, struct cmnl_link *out, uint32_t cap, uint32_t *total);

/* ---- addresses ---- */
struct cmnl_addr {
    int32_t ifindex;
    int32_t family;     /* AF_INET or AF_INET6 */
    uint8_t prefixlen;
    uint8_t scope;
    uint8_t addr[16];   /* 4 or 16 bytes used, network order */
    uint32_t flags;     /* IFA_F_* */
};

/* flags: IFA_F_* to set (IFA_F_NODAD 0x02 is the useful one for IPv6). */
int cmnl_addr_add(struct cmnl_sock *s, int32_t ifindex, int32_t family, const uint8_t *addr,
                  uint8_t prefixlen, uint32_t flags);
int cmnl_addr_del(struct cmnl_sock *s, int32_t ifindex, int32_t family, const uint8_t *addr,
                  uint8_t prefixlen);
/* ifindex 0 = all links; family 0 (AF_UNSPEC) = both. */
int cmnl_addr_dump(struct cmnl_sock *s, int32_t ifindex, int32_t family, struct cmnl_addr *out,
                   uint32_t cap, uint32_t *total);

/* ---- routes ---- */
struct cmnl_route {
    int32_t family;
    uint8_t dst[16];
    uint8_t dst_len;
    uint8_t has_gateway;
    uint8_t gateway[16];
    uint8_t type;       /* RTN_*; 0 on add means RTN_UNICAST, on delete means any */
    uint8_t protocol;   /* RTPROT_*; 0 on add means RTPROT_BOOT, on delete means any */
    uint8_t scope;      /* filled by dumps; add derives it (link without gateway) */
    int32_t oif;        /* 0 = none */
    uint32_t table;     /* 0 on add means main */
    uint32_t metric;    /* RTA_PRIORITY; on delete 0 means any */
};

/* replace != 0: NLM_F_REPLACE instead of NLM_F_EXCL. */
int cmnl_route_add(struct cmnl_sock *s, const struct cmnl_route *r, int replace);
int cmnl_route_del(struct cmnl_sock *s, const struct cmnl_route *r);

/* Proxy neighbour entries (`ip neigh add proxy ADDR dev IF`): the kernel answers ARP (IPv4) or
   NDP (IPv6) for ADDR on that link with the link's own address, for an address routed elsewhere
   (a clustered gateway's client addresses on its LAN). 0 or -errno; adding an existing entry
   replaces it, deleting an absent one gives -ENOENT. */
int cmnl_proxy_neigh_add(struct cmnl_sock *s, int32_t ifindex, int32_t family, const uint8_t *addr);
int cmnl_proxy_neigh_del(struct cmnl_sock *s, int32_t ifindex, int32_t family, const uint8_t *addr);
/* family required (AF_INET/AF_INET6); table 0 = all tables; oif 0 = any link. */
int cmnl_route_dump(struct cmnl_sock *s, int32_t family, uint32_t table, int32_t oif,
                    struct cmnl_route *out, uint32_t cap, uint32_t *total);

/* ---- policy routing rules ---- */
struct cmnl_rule {
    int32_t family;
    uint32_t table;
    uint32_t priority;
    uint8_t has_priority;
    uint8_t has_fwmark;
    uint8_t invert;                /* FIB_RULE_INVERT: "not fwmark ..." */
    uint8_t action;                /* FR_ACT_*; 0 on add means FR_ACT_TO_TBL */
    uint32_t fwmark;
    uint32_t fwmask;               /* 0 with has_fwmark = exact match (kernel default) */
    int32_t suppress_prefixlen;    /* -1 = unset */
};

int cmnl_rule_add(struct cmnl_sock *s, const struct cmnl_rule *r);
int cmnl_rule_del(struct cmnl_sock *s, const struct cmnl_rule *r);
int cmnl_rule_dump(struct cmnl_sock *s, int32_t family, struct cmnl_rule *out, uint32_t cap,
                   uint32_t *total);

/* ---- monitor ---- */
enum cmnl_event_kind {
    CMNL_EV_LINK = 1,       /* RTM_NEWLINK: state of a link (up/down/carrier) */
    CMNL_EV_LINK_DEL = 2,   /* RTM_DELLINK */
    CMNL_EV_ADDR_ADD = 3,
    CMNL_EV_ADDR_DEL = 4,
    CMNL_EV_ROUTE_ADD = 5,
    CMNL_EV_ROUTE_DEL = 6,
};

struct cmnl_event {
    int32_t kind;
    int32_t ifindex;        /* link/addr: the link; route: the oif (0 if none) */
    int32_t family;
    uint32_t flags;         /* link: IFF_*; addr: IFA_F_* */
    uint8_t operstate;
    uint8_t prefixlen;      /* addr prefix or route dst_len */
    uint8_t has_gateway;
    uint8_t route_type;
    uint8_t addr[16];       /* addr: the local address; route: dst */
    uint8_t gateway[16];
    uint32_t table;
    char name[CMNL_IFNAMSIZ];
};

typedef void (*cmnl_event_cb)(const struct cmnl_event *ev, void *ctx);

/* Monitor socket, non-blocking, subscribed to link, v4/v6 address and v4/v6 route groups. */
int cmnl_monitor_open(struct cmnl_sock **out);
int cmnl_fd(const struct cmnl_sock *s);
/*
 * Reads one receive buffer and delivers each event to cb. Returns the number of events
 * delivered (>= 0), -EAGAIN when nothing is pending (non-blocking socket), -ENOBUFS when the
 * kernel dropped events (socket overrun: the caller must resynchronise with dumps).
 */
int cmnl_monitor_read(struct cmnl_sock *s, cmnl_event_cb cb, void *ctx);

#ifdef __cplusplus
}
#endif
