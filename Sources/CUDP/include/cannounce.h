#ifndef JVPN_CANNOUNCE_H
#define JVPN_CANNOUNCE_H
#include <stdint.h>

/* Announcements of an address that moved to this host, as keepalived sends them for a virtual
   address: every neighbour on the link updates its cache at once instead of waiting for its entry
   to go stale. Each opens its socket, sends once and closes it (needs CAP_NET_RAW). 0 or -errno. */

/* Gratuitous ARP: an ARP request for `ipv4` (network order) from `ipv4` at the link's MAC, to the
   broadcast address, on interface `ifindex`. */
int cannounce_garp(int32_t ifindex, const uint8_t ipv4[4]);

/* Unsolicited neighbour advertisement (RFC 4861 7.2.6): target `ipv6`, override flag, the link's
   MAC as target link-layer address, to ff02::1 with hop limit 255, on interface `ifindex`. */
int cannounce_unsolicited_na(int32_t ifindex, const uint8_t ipv6[16]);

#endif
