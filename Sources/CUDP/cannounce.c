#include "cannounce.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

static int link_mac(int fd, int32_t ifindex, uint8_t mac[6])
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (if_indextoname((unsigned)ifindex, ifr.ifr_name) == NULL)
        return -errno;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
        return -errno;
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    return 0;
}

int cannounce_garp(int32_t ifindex, const uint8_t ipv4[4])
{
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
    if (fd < 0)
        return -errno;
    uint8_t mac[6];
    int rc = link_mac(fd, ifindex, mac);
    if (rc == 0) {
        /* ARP over Ethernet: header, then sender MAC/IP and target MAC/IP. */
        uint8_t pkt[28];
        struct arphdr *h = (struct arphdr *)pkt;
        h->ar_hrd = htons(ARPHRD_ETHER);
        h->ar_pro = htons(ETH_P_IP);
        h->ar_hln = 6;
        h->ar_pln = 4;
        h->ar_op = htons(ARPOP_REQUEST);
        memcpy(pkt + 8, mac, 6);
        memcpy(pkt + 14, ipv4, 4);
        memset(pkt + 18, 0, 6);
        memcpy(pkt + 24, ipv4, 4);
        struct sockaddr_ll to;
        memset(&to, 0, sizeof(to));
        to.sll_family = AF_PACKET;
        to.sll_protocol = htons(ETH_P_ARP);
        to.sll_ifindex = ifindex;
        to.sll_halen = 6;
        memset(to.sll_addr, 0xff, 6);
        if (sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
            rc = -errno;
    }
    close(fd);
    return rc;
}

int cannounce_unsolicited_na(int32_t ifindex, const uint8_t ipv6[16])
{
    int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
    if (fd < 0)
        return -errno;
    uint8_t mac[6];
    int rc = link_mac(fd, ifindex, mac);
    int hops = 255;
    unsigned idx = (unsigned)ifindex;
    if (rc == 0 && (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
                    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof(idx)) < 0))
        rc = -errno;
    if (rc == 0) {
        /* The kernel fills in the source (the link-local address) and the checksum. */
        uint8_t pkt[sizeof(struct nd_neighbor_advert) + 8];
        memset(pkt, 0, sizeof(pkt));
        struct nd_neighbor_advert *na = (struct nd_neighbor_advert *)pkt;
        na->nd_na_type = ND_NEIGHBOR_ADVERT;
        na->nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
        memcpy(&na->nd_na_target, ipv6, 16);
        uint8_t *opt = pkt + sizeof(*na);
        opt[0] = ND_OPT_TARGET_LINKADDR;
        opt[1] = 1; /* length in units of 8 bytes */
        memcpy(opt + 2, mac, 6);
        struct sockaddr_in6 to;
        memset(&to, 0, sizeof(to));
        to.sin6_family = AF_INET6;
        to.sin6_scope_id = idx;
        inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
        if (sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
            rc = -errno;
    }
    close(fd);
    return rc;
}
