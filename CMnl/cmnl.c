#include "cmnl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/fib_rules.h>
#include <linux/neighbour.h>
#include <libmnl/libmnl.h>

/*
 * 32 KiB: the kernel sizes dump skbs after the largest buffer the reader has offered, and a
 * buffer smaller than one message truncates it (MSG_TRUNC); this is libmnl's later
 * MNL_SOCKET_DUMP_SIZE.
 */
#define CMNL_BUFSZ 32768
/* Enough headroom for any request we build (header + a handful of attributes). */
#define CMNL_REQSZ 512
/* Bounds every receive loop; a real dump of this many buffers would be a runaway. */
#define CMNL_MAX_RECV 100000

struct cmnl_sock {
    struct mnl_socket *nl;
    uint32_t portid;
    uint32_t seq;
    char *buf;
};

static int neg_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

static int cmnl_new(struct cmnl_sock **out, int flags, unsigned groups)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    struct cmnl_sock *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->buf = malloc(CMNL_BUFSZ);
    if (s->buf == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->nl = mnl_socket_open2(NETLINK_ROUTE, flags);
    if (s->nl == NULL) {
        int e = neg_errno();
        free(s->buf);
        free(s);
        return e;
    }
    if (mnl_socket_bind(s->nl, groups, MNL_SOCKET_AUTOPID) < 0) {
        int e = neg_errno();
        mnl_socket_close(s->nl);
        free(s->buf);
        free(s);
        return e;
    }
    s->portid = mnl_socket_get_portid(s->nl);
    s->seq = (uint32_t)time(NULL);
    *out = s;
    return 0;
}

int cmnl_open(struct cmnl_sock **out)
{
    int rc = cmnl_new(out, SOCK_CLOEXEC, 0);
    if (rc == 0) {
        /* Errors without the echoed request keep ACKs small. */
        int one = 1;
        (void)mnl_socket_setsockopt((*out)->nl, NETLINK_CAP_ACK, &one, sizeof(one));
    }
    return rc;
}

void cmnl_close(struct cmnl_sock *s)
{
    if (s == NULL)
        return;
    if (s->nl != NULL)
        mnl_socket_close(s->nl);
    free(s->buf);
    free(s);
}

int cmnl_fd(const struct cmnl_sock *s)
{
    if (s == NULL || s->nl == NULL)
        return -EBADF;
    return mnl_socket_get_fd(s->nl);
}

/*
 * Sends one request and reads until the kernel's ACK/error (requests) or NLMSG_DONE (dumps).
 * Buffers whose sequence number is not ours are leftovers of an earlier, aborted exchange
 * (a recv error midway through a dump) and are skipped.
 */
static int transact(struct cmnl_sock *s, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
    if (s == NULL || s->nl == NULL)
        return -EBADF;
    uint32_t seq = ++s->seq;
    nlh->nlmsg_seq = seq;
    if (mnl_socket_sendto(s->nl, nlh, nlh->nlmsg_len) < 0)
        return neg_errno();
    for (int i = 0; i < CMNL_MAX_RECV; i++) {
        ssize_t n = mnl_socket_recvfrom(s->nl, s->buf, CMNL_BUFSZ);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return neg_errno();
        }
        /*
         * A buffer holds messages of one answer. Check its identity here rather than from
         * mnl_cb_run's errno: libmnl reports a foreign port as ESRCH, which is also what the
         * kernel answers for "no such route".
         */
        const struct nlmsghdr *first = (const struct nlmsghdr *)s->buf;
        if (mnl_nlmsg_ok(first, (int)n) &&
            (first->nlmsg_seq != seq || (first->nlmsg_pid != 0 && first->nlmsg_pid != s->portid)))
            continue;
        errno = 0;
        int ret = mnl_cb_run(s->buf, (size_t)n, seq, s->portid, cb, data);
        if (ret == MNL_CB_STOP)
            return 0;
        if (ret == MNL_CB_ERROR)
            return neg_errno();
    }
    return -ETIMEDOUT;
}

static struct nlmsghdr *new_request(char *buf, uint16_t type, uint16_t flags)
{
    memset(buf, 0, CMNL_REQSZ);
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    return nlh;
}

static int addr_len(int32_t family)
{
    if (family == AF_INET)
        return 4;
    if (family == AF_INET6)
        return 16;
    return -1;
}

/* Generic dump sink: callers parse one message into `scratch`, then keep it if it matches. */
struct sink {
    void *out;
    size_t elem;
    uint32_t cap;
    uint32_t total;
};

static void sink_push(struct sink *k, const void *item)
{
    if (k->out != NULL && k->total < k->cap)
        memcpy((char *)k->out + (size_t)k->total * k->elem, item, k->elem);
    k->total++;
}

/* ------------------------------------------------------------------ links */

static int parse_link(const struct nlmsghdr *nlh, struct cmnl_link *l)
{
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct ifinfomsg)))
        return -1;
    const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
    memset(l, 0, sizeof(*l));
    l->ifindex = ifm->ifi_index;
    l->flags = ifm->ifi_flags;
    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(*ifm)) {
        switch (mnl_attr_get_type(attr)) {
        case IFLA_IFNAME:
            if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
                strncpy(l->name, mnl_attr_get_str(attr), CMNL_IFNAMSIZ - 1);
                l->name[CMNL_IFNAMSIZ - 1] = 0;
            }
            break;
        case IFLA_MTU:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                l->mtu = mnl_attr_get_u32(attr);
            break;
        case IFLA_OPERSTATE:
            if (mnl_attr_validate(attr, MNL_TYPE_U8) >= 0)
                l->operstate = mnl_attr_get_u8(attr);
            break;
        default:
            break;
        }
    }
    return 0;
}

static int link_one_cb(const struct nlmsghdr *nlh, void *data)
{
    if (nlh->nlmsg_type == RTM_NEWLINK)
        (void)parse_link(nlh, (struct cmnl_link *)data);
    return MNL_CB_OK;
}

static int link_get_common(struct cmnl_sock *s, int32_t ifindex, const char *name,
                           struct cmnl_link *out)
{
    char req[CMNL_REQSZ];
    struct nlmsghdr *nlh = new_request(req, RTM_GETLINK, NLM_F_ACK);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = ifindex;
    if (name != NULL)
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    memset(out, 0, sizeof(*out));
    int rc = transact(s, nlh, link_one_cb, out);
    if (rc < 0)
        return rc;
    return out->ifindex > 0 ? 0 : -ENODEV;
}

int cmnl_link_index(struct cmnl_sock *s, const char *name)
{
    if (name == NULL || name[0] == 0 || strlen(name) >= CMNL_IFNAMSIZ)
        return -EINVAL;
    struct cmnl_link l;
    int rc = link_get_common(s, 0, name, &l);
    return rc < 0 ? rc : l.ifindex;
}

int cmnl_link_get(struct cmnl_sock *s, int32_t ifindex, struct cmnl_link *out)
{
    if (ifindex <= 0 || out == NULL)
        return -EINVAL;
    return link_get_common(s, ifindex, NULL, out);
}

static int link_change(struct cmnl_sock *s, int32_t ifindex, int set_flags, uint32_t flags,
                       int set_mtu, uint32_t mtu)
{
    if (ifindex <= 0)
        return -EINVAL;
    char req[CMNL_REQSZ];
    struct nlmsghdr *nlh = new_request(req, RTM_NEWLINK, NLM_F_ACK);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = ifindex;
    if (set_flags) {
        ifm->ifi_change = IFF_UP;
        ifm->ifi_flags = flags;
    }
    if (set_mtu)
        mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    return transact(s, nlh, NULL, NULL);
}

int cmnl_link_set_up(struct cmnl_sock *s, int32_t ifindex, int up)
{
    return link_change(s, ifindex, 1, up ? IFF_UP : 0, 0, 0);
}

int cmnl_link_set_mtu(struct cmnl_sock *s, int32_t ifindex, uint32_t mtu)
{
    return link_change(s, ifindex, 0, 0, 1, mtu);
}

static int link_dump_cb(const struct nlmsghdr *nlh, void *data)
{
    struct cmnl_link l;
    if (nlh->nlmsg_type == RTM_NEWLINK && parse_link(nlh, &l) == 0)
        sink_push((struct sink *)data, &l);
    return MNL_CB_OK;
}

int cmnl_link_dump(struct cmnl_sock *s, struct cmnl_link *out, uint32_t cap, uint32_t *total)
{
    char req[CMNL_REQSZ];
    struct nlmsghdr *nlh = new_request(req, RTM_GETLINK, NLM_F_DUMP);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    struct sink k = { out, sizeof(*out), cap, 0 };
    int rc = transact(s, nlh, link_dump_cb, &k);
    if (total != NULL)
        *total = k.total;
    return rc;
}

/* -------------------------------------------------------------- addresses */

static int parse_addr(const struct nlmsghdr *nlh, struct cmnl_addr *a)
{
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct ifaddrmsg)))
        return -1;
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    memset(a, 0, sizeof(*a));
    a->ifindex = (int32_t)ifa->ifa_index;
    a->family = ifa->ifa_family;
    a->prefixlen = ifa->ifa_prefixlen;
    a->scope = ifa->ifa_scope;
    a->flags = ifa->ifa_flags;
    int alen = addr_len(a->family);
    if (alen < 0)
        return -1;
    const struct nlattr *attr;
    const void *local = NULL, *address = NULL;
    mnl_attr_for_each(attr, nlh, sizeof(*ifa)) {
        uint16_t type = mnl_attr_get_type(attr);
        if ((type == IFA_LOCAL || type == IFA_ADDRESS) &&
            mnl_attr_get_payload_len(attr) == (uint16_t)alen) {
            if (type == IFA_LOCAL)
                local = mnl_attr_get_payload(attr);
            else
                address = mnl_attr_get_payload(attr);
        } else if (type == IFA_FLAGS && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
            a->flags = mnl_attr_get_u32(attr);
        }
    }
    /* IFA_LOCAL is our own address; IFA_ADDRESS is the peer on point-to-point links. */
    const void *src = local != NULL ? local : address;
    if (src == NULL)
        return -1;
    memcpy(a->addr, src, (size_t)alen);
    return 0;
}

static int addr_modify(struct cmnl_sock *s, uint16_t type, uint16_t flags, int32_t ifindex,
                       int32_t family, const uint8_t *addr, uint8_t prefixlen, uint32_t aflags)
{
    int alen = addr_len(family);
    if (alen < 0 || addr == NULL || ifindex <= 0 || prefixlen > alen * 8)
        return -EINVAL;
    char req[CMNL_REQSZ];
    struct nlmsghdr *nlh = new_request(req, type, NLM_F_ACK | flags);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = (uint8_t)family;
    ifa->ifa_prefixlen = prefixlen;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (uint32_t)ifindex;
    ifa->ifa_flags = (uint8_t)(aflags & 0xff);
    mnl_attr_put(nlh, IFA_LOCAL, (size_t)alen, addr);
    mnl_attr_put(nlh, IFA_ADDRESS, (size_t)alen, addr);
    if (type == RTM_NEWADDR && aflags != 0)
        mnl_attr_put_u32(nlh, IFA_FLAGS, aflags);
    return transact(s, nlh, NULL, NULL);
}

int cmnl_addr_add(struct cmnl_sock *s, int32_t ifindex, int32_t family, const uint8_t *addr,
                  uint8_t prefixlen, uint32_t flags)
{
    return addr_modify(s, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, family, addr,
                       prefixlen, flags);
}

int cmnl_addr_del(struct cmnl_sock *s, int32_t ifindex, int32_t family, const uint8_t *addr,
                  uint8_t prefixlen)
{
    return addr_modify(s, RTM_DELADDR, 0, ifindex, family, addr, prefixlen, 0);
}

struct addr_filter {
    struct sink k;
    int32_t ifindex;
};

static int addr_dump_cb(const struct nlmsghdr *nlh, void *data)
{
    struct addr_filter *f = data;
    struct cmnl_addr a;
    if (nlh->nlmsg_type == RTM_NEWADDR && parse_addr(nlh, &a) == 0 &&
        (f->ifindex == 0 || a.ifindex == f->ifindex))
        sink_push(&f->k, &a);
    return MNL_CB_OK;
}

int cmnl_addr_dump(struct cmnl_sock *s, int32_t ifindex, int32_t family, struct cmnl_addr *out,
                   uint32_t cap, uint32_t *total)
{
    if (family != AF_UNSPEC && addr_len(family) < 0)
        return -EINVAL;
    char req[CMNL_REQSZ];
    struct nlmsghdr *nlh = new_request(req, RTM_GETADDR, NLM_F_DUMP);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = (uint8_t)family;
    struct addr_filter f = { { out, sizeof(*out), cap, 0 }, ifindex };
    int rc = transact(s, nlh, addr_dump_cb, &f);
    if (total != NULL)
        *total = f.k.total;
    return rc;
}

/* ------------------------------------------------------- proxy neighbours */

static int proxy_neigh_modify(struct cmnl_sock *s, uint16_t type, uint16_t flags, int32_t ifindex, int32_t family,
                              const uint8_t *addr)
{
    int alen = addr_len(family);
    if (alen < 0 || addr == NULL || ifindex <= 0)
        return -EINVAL;
    char req[CMNL_REQSZ];
    struct nlmsghdr *nlh = new_request(req, type, NLM_F_ACK | flags);
    struct ndmsg *nd = mnl_nlmsg_put_extra_header(nlh, sizeof(*nd));
    nd->ndm_family = (uint8_t)family;
    nd->ndm_ifindex = ifindex;
    nd->ndm_state = NUD_PERMANENT;
    nd->ndm_flags = NTF_PROXY;
    mnl_attr_put(nlh, NDA_DST, (size_t)alen, addr);
    return transact(s, nlh, NULL, NULL);
}

int cmnl_proxy_neigh_add(struct cmnl_sock *s, int32_t ifindex, int32_t family, const uint8_t *addr)
{
    return proxy_neigh_modify(s, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, ifindex, family, addr);
}

int cmnl_proxy_neigh_del(struct cmnl_sock *s, int32_t ifindex, int32_t family, const uint8_t *addr)
{
    return proxy_neigh_modify(s, RTM_DELNEIGH, 0, ifindex, family, addr);
}

/* ----------------------------------------------------------------- routes */

static int parse_route(const struct nlmsghdr *nlh, struct cmnl_route *r)
{
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct rtmsg)))
        return -1;
    const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
    memset(r, 0, sizeof(*r));
    r->family = rtm->rtm_family;
    r->dst_len = rtm->rtm_dst_len;
    r->type = rtm->rtm_type;
    r->protocol = rtm->rtm_protocol;
    r->scope = rtm->rtm_scope;
    r->table = rtm->rtm_table;
    int alen = addr_len(r->family);
    if (alen < 0)
        return -1;
    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(*rtm)) {
        switch (mnl_attr_get_type(attr)) {
        case RTA_DST:
            if (mnl_attr_get_payload_len(attr) == (uint16_t)alen)
                memcpy(r->dst, mnl_attr_get_payload(attr), (size_t)alen);
            break;
        case RTA_GATEWAY:
            if (mnl_attr_get_payload_len(attr) == (uint16_t)alen) {
                memcpy(r->gateway, mnl_attr_get_payload(attr), (size_t)alen);
                r->has_gateway = 1;
            }
            break;
        case RTA_OIF:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                r->oif = (int32_t)mnl_attr_get_u32(attr);
            break;
        case RTA_TABLE:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                r->table = mnl_attr_get_u32(attr);
            break;
        case RTA_PRIORITY:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                r->metric = mnl_attr_get_u32(attr);
            break;
        default:
            break;
        }
    }
    return 0;
}

static int route_modify(struct cmnl_sock *s, const struct cmnl_route *r, int del, int replace)
{
    if (r == NULL)
        return -EINVAL;
    int alen = addr_len(r->family);
    if (alen < 0 || r->dst_len > alen * 8 || r->oif < 0)
        return -EINVAL;
    uint32_t table = r->table != 0 ? r->table : RT_TABLE_MAIN;
    char req[CMNL_REQSZ];
    uint16_t flags = NLM_F_ACK;
    if (!del)
        flags |= NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL);
    struct nlmsghdr *nlh = new_request(req, del ? RTM_DELROUTE : RTM_NEWROUTE, flags);
    struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
    rtm->rtm_family = (uint8_t)r->family;
    rtm->rtm_dst_len = r->dst_len;
    rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
    if (del) {
        rtm->rtm_protocol = r->protocol;
        rtm->rtm_type = r->type;
        rtm->rtm_scope = RT_SCOPE_NOWHERE;
    } else {
        rtm->rtm_protocol = r->protocol != 0 ? r->protocol : RTPROT_BOOT;
        rtm->rtm_type = r->type != 0 ? r->type : RTN_UNICAST;
        /* As iproute2: a v4 unicast route without a gateway is on-link. */
        if (r->family == AF_INET && rtm->rtm_type == RTN_UNICAST && !r->has_gateway)
            rtm->rtm_scope = RT_SCOPE_LINK;
        else
            rtm->rtm_scope = RT_SCOPE_UNIVERSE;
    }
    mnl_attr_put_u32(nlh, RTA_TABLE, table);
    if (r->dst_len > 0)
        mnl_attr_put(nlh, RTA_DST, (size_t)alen, r->dst);
    if (r->has_gateway)
        mnl_attr_put(nlh, RTA_GATEWAY, (size_t)alen, r->gateway);
    if (r->oif > 0)
        mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)r->oif);
    if (!del || r->metric != 0)
        mnl_attr_put_u32(nlh, RTA_PRIORITY, r->metric);
    return transact(s, nlh, NULL, NULL);
}

int cmnl_route_add(struct cmnl_sock *s, const struct cmnl_route *r, int replace)
{
    return route_modify(s, r, 0, replace);
}

int cmnl_route_del(struct cmnl_sock *s, const struct cmnl_route *r)
{
    return route_modify(s, r, 1, 0);
}

struct route_filter {
    struct sink k;
    uint32_t table;
    int32_t oif;
};

static int route_dump_cb(const struct nlmsghdr *nlh, void *data)
{
    struct route_filter *f = data;
    struct cmnl_route r;
    if (nlh->nlmsg_type == RTM_NEWROUTE && parse_route(nlh, &r) == 0 &&
        (f->table == 0 || r.table == f->table) && (f->oif == 0 || r.oif == f->oif))
        sink_push(&f->k, &r);
    return MNL_CB_OK;
}

int cmnl_route_dump(struct cmnl_sock *s, int32_t family, uint32_t table, int32_t oif,
                    struct cmnl_route *out, uint32_t cap, uint32_t *total)
{
    if (addr_len(family) < 0)
        return -EINVAL;
    char req[CMNL_REQSZ];
    struct nlmsghdr *nlh = new_request(req, RTM_GETROUTE, NLM_F_DUMP);
    struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
    rtm->rtm_family = (uint8_t)family;
    struct route_filter f = { { out, sizeof(*out), cap, 0 }, table, oif };
    int rc = transact(s, nlh, route_dump_cb, &f);
    if (total != NULL)
        *total = f.k.total;
    return rc;
}

/* ------------------------------------------------------------------ rules */

static int rule_modify(struct cmnl_sock *s, const struct cmnl_rule *r, int del)
{
    if (r == NULL || addr_len(r->family) < 0)
        return -EINVAL;
    char req[CMNL_REQSZ];
    uint16_t flags = NLM_F_ACK | (del ? 0 : (NLM_F_CREATE | NLM_F_EXCL));
    struct nlmsghdr *nlh = new_request(req, del ? RTM_DELRULE : RTM_NEWRULE, flags);
    struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
    frh->family = (uint8_t)r->family;
    frh->action = r->action != 0 ? r->action : (del ? FR_ACT_UNSPEC : FR_ACT_TO_TBL);
    frh->table = r->table < 256 ? (uint8_t)r->table : RT_TABLE_UNSPEC;
    if (r->invert)
        frh->flags |= FIB_RULE_INVERT;
    if (r->table != 0)
        mnl_attr_put_u32(nlh, FRA_TABLE, r->table);
    if (r->has_priority)
        mnl_attr_put_u32(nlh, FRA_PRIORITY, r->priority);
    if (r->has_fwmark) {
        mnl_attr_put_u32(nlh, FRA_FWMARK, r->fwmark);
        if (r->fwmask != 0)
            mnl_attr_put_u32(nlh, FRA_FWMASK, r->fwmask);
    }
    if (r->suppress_prefixlen >= 0)
        mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, (uint32_t)r->suppress_prefixlen);
    return transact(s, nlh, NULL, NULL);
}

int cmnl_rule_add(struct cmnl_sock *s, const struct cmnl_rule *r)
{
    return rule_modify(s, r, 0);
}

int cmnl_rule_del(struct cmnl_sock *s, const struct cmnl_rule *r)
{
    return rule_modify(s, r, 1);
}

static int parse_rule(const struct nlmsghdr *nlh, struct cmnl_rule *r)
{
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct fib_rule_hdr)))
        return -1;
    const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
    memset(r, 0, sizeof(*r));
    r->family = frh->family;
    r->table = frh->table;
    r->action = frh->action;
    r->invert = (frh->flags & FIB_RULE_INVERT) ? 1 : 0;
    r->suppress_prefixlen = -1;
    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(*frh)) {
        if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
            continue;
        uint32_t v = mnl_attr_get_u32(attr);
        switch (mnl_attr_get_type(attr)) {
        case FRA_TABLE:
            r->table = v;
            break;
        case FRA_PRIORITY:
            r->priority = v;
            r->has_priority = 1;
            break;
        case FRA_FWMARK:
            r->fwmark = v;
            r->has_fwmark = 1;
            break;
        case FRA_FWMASK:
            r->fwmask = v;
            r->has_fwmark = 1;
            break;
        case FRA_SUPPRESS_PREFIXLEN:
            r->suppress_prefixlen = (int32_t)v;
            break;
        default:
            break;
        }
    }
    return 0;
}

static int rule_dump_cb(const struct nlmsghdr *nlh, void *data)
{
    struct cmnl_rule r;
    if (nlh->nlmsg_type == RTM_NEWRULE && parse_rule(nlh, &r) == 0)
        sink_push((struct sink *)data, &r);
    return MNL_CB_OK;
}

int cmnl_rule_dump(struct cmnl_sock *s, int32_t family, struct cmnl_rule *out, uint32_t cap,
                   uint32_t *total)
{
    if (addr_len(family) < 0)
        return -EINVAL;
    char req[CMNL_REQSZ];
    struct nlmsghdr *nlh = new_request(req, RTM_GETRULE, NLM_F_DUMP);
    struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
    frh->family = (uint8_t)family;
    struct sink k = { out, sizeof(*out), cap, 0 };
    int rc = transact(s, nlh, rule_dump_cb, &k);
    if (total != NULL)
        *total = k.total;
    return rc;
}

/* ---------------------------------------------------------------- monitor */

int cmnl_monitor_open(struct cmnl_sock **out)
{
    unsigned groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR |
                      RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
    int rc = cmnl_new(out, SOCK_NONBLOCK | SOCK_CLOEXEC, groups);
    if (rc != 0)
        return rc;
    /* Route churn (many uplinks, DHCP renewals) can burst; a large buffer makes overruns rare. */
    int fd = mnl_socket_get_fd((*out)->nl);
    int size = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    return 0;
}

struct monitor_ctx {
    cmnl_event_cb cb;
    void *ctx;
    int delivered;
};

static int monitor_cb(const struct nlmsghdr *nlh, void *data)
{
    struct monitor_ctx *m = data;
    struct cmnl_event ev;
    memset(&ev, 0, sizeof(ev));
    switch (nlh->nlmsg_type) {
    case RTM_NEWLINK:
    case RTM_DELLINK: {
        struct cmnl_link l;
        if (parse_link(nlh, &l) != 0)
            return MNL_CB_OK;
        ev.kind = nlh->nlmsg_type == RTM_NEWLINK ? CMNL_EV_LINK : CMNL_EV_LINK_DEL;
        ev.ifindex = l.ifindex;
        ev.flags = l.flags;
        ev.operstate = l.operstate;
        memcpy(ev.name, l.name, CMNL_IFNAMSIZ);
        break;
    }
    case RTM_NEWADDR:
    case RTM_DELADDR: {
        struct cmnl_addr a;
        if (parse_addr(nlh, &a) != 0)
            return MNL_CB_OK;
        ev.kind = nlh->nlmsg_type == RTM_NEWADDR ? CMNL_EV_ADDR_ADD : CMNL_EV_ADDR_DEL;
        ev.ifindex = a.ifindex;
        ev.family = a.family;
        ev.flags = a.flags;
        ev.prefixlen = a.prefixlen;
        memcpy(ev.addr, a.addr, sizeof(ev.addr));
        break;
    }
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
        struct cmnl_route r;
        if (parse_route(nlh, &r) != 0)
            return MNL_CB_OK;
        ev.kind = nlh->nlmsg_type == RTM_NEWROUTE ? CMNL_EV_ROUTE_ADD : CMNL_EV_ROUTE_DEL;
        ev.ifindex = r.oif;
        ev.family = r.family;
        ev.prefixlen = r.dst_len;
        ev.has_gateway = r.has_gateway;
        ev.route_type = r.type;
        ev.table = r.table;
        memcpy(ev.addr, r.dst, sizeof(ev.addr));
        memcpy(ev.gateway, r.gateway, sizeof(ev.gateway));
        break;
    }
    default:
        return MNL_CB_OK;
    }
    if (m->cb != NULL)
        m->cb(&ev, m->ctx);
    m->delivered++;
    return MNL_CB_OK;
}

int cmnl_monitor_read(struct cmnl_sock *s, cmnl_event_cb cb, void *ctx)
{
    if (s == NULL || s->nl == NULL)
        return -EBADF;
    ssize_t n = -1;
    for (int i = 0; i < 16; i++) {
        n = mnl_socket_recvfrom(s->nl, s->buf, CMNL_BUFSZ);
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (n < 0)
        return neg_errno();
    struct monitor_ctx m = { cb, ctx, 0 };
    /* seq 0 / portid 0: multicast notifications carry no request identity to check. */
    (void)mnl_cb_run(s->buf, (size_t)n, 0, 0, monitor_cb, &m);
    return m.delivered;
}
