/*
 * jvpn-flood: a paced flood of handshake-shaped junk at a jvpn gateway, for the "handshakes under
 * load" tests and benchmark (Tests/integration/chaos_flood.sh, deploy/bench/flood.sh). Test rigs only.
 *
 *   cc -O2 -o jvpn-flood deploy/flood/jvpn-flood.c -lsodium
 *   jvpn-flood --target 10.203.0.1:51820 --mode initiation-mac1 --pubkey BASE64 \
 *              [--sources 198.18.0.0/15] [--rate 100000] [--duration 5] [--count N]
 *              [--initiation-bytes 160]
 *
 * Modes:
 *   junk             random length (1..200) and random bytes
 *   type1-1byte      one byte, 0x01 (a handshake type with nothing behind it)
 *   initiation-mac1  160 bytes shaped like an initiation: type 1, zero reserved, random body,
 *                    a VALID mac1 for --pubkey (so it passes the gateway's cheap check), random mac2;
 *                    --initiation-bytes 144 floods a gateway from before mac2 (bench baselines)
 *
 * Raw IPv4 socket with IP_HDRINCL, so every datagram has a random source address within --sources
 * and a random source port: a flood "from many addresses". Paced to --rate with sendmmsg batches,
 * bounded by --duration (at most 120 s) and --count. Needs CAP_NET_RAW (root in a namespace).
 * Prints one line: packets the kernel accepted, seconds, achieved rate, send errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_JUNK, MODE_TYPE1_1BYTE, MODE_INITIATION_MAC1 };
#define BATCH 64
#define MAX_PAYLOAD 200
#define MAC1_OFFSET 128

static uint64_t rng_state;
static inline uint64_t rnd(void) { /* xorshift64*: fast, and junk needs no better */
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}
static void rnd_fill(uint8_t *p, size_t n) {
    while (n >= 8) { uint64_t v = rnd(); memcpy(p, &v, 8); p += 8; n -= 8; }
    if (n) { uint64_t v = rnd(); memcpy(p, &v, n); }
}
static double now_s(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
static void usage(void) {
    fprintf(stderr, "usage: jvpn-flood --target IP:PORT --mode junk|type1-1byte|initiation-mac1 [--pubkey BASE64]\n"
                    "                  [--sources A.B.C.D/LEN] [--rate PPS] [--duration S] [--count N]\n"
                    "                  [--initiation-bytes 144|160]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *target = NULL, *mode_s = NULL, *pubkey_b64 = NULL, *sources = "198.18.0.0/15";
    double rate = 100000, duration = 5;
    unsigned long long max_count = 0;
    size_t initiation_len = 160;
    static const struct option opts[] = {
        {"target", 1, 0, 't'}, {"mode", 1, 0, 'm'}, {"pubkey", 1, 0, 'k'}, {"sources", 1, 0, 's'},
        {"rate", 1, 0, 'r'}, {"duration", 1, 0, 'd'}, {"count", 1, 0, 'c'}, {"initiation-bytes", 1, 0, 'i'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 't': target = optarg; break;
        case 'm': mode_s = optarg; break;
        case 'k': pubkey_b64 = optarg; break;
        case 's': sources = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'c': max_count = strtoull(optarg, NULL, 10); break;
        case 'i': initiation_len = (size_t)atoi(optarg); break;
        default: usage();
        }
    }
    if (!target || !mode_s || rate <= 0 || rate > 10e6 || duration <= 0 || duration > 120 ||
        initiation_len < MAC1_OFFSET + 16 || initiation_len > MAX_PAYLOAD) usage();
    enum mode mode;
    if (!strcmp(mode_s, "junk")) mode = MODE_JUNK;
    else if (!strcmp(mode_s, "type1-1byte")) mode = MODE_TYPE1_1BYTE;
    else if (!strcmp(mode_s, "initiation-mac1")) mode = MODE_INITIATION_MAC1;
    else usage();
    if (sodium_init() < 0) { fprintf(stderr, "sodium_init failed\n"); return 1; }

    /* target */
    char host[64]; const char *colon = strrchr(target, ':');
    if (!colon || colon - target >= (long)sizeof host) usage();
    memcpy(host, target, colon - target); host[colon - target] = 0;
    struct sockaddr_in dst = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) usage();
    uint16_t dport = (uint16_t)atoi(colon + 1);

    /* source prefix */
    char pfx[64]; snprintf(pfx, sizeof pfx, "%s", sources);
    char *slash = strchr(pfx, '/'); int plen = 32;
    if (slash) { *slash = 0; plen = atoi(slash + 1); }
    struct in_addr base;
    if (inet_pton(AF_INET, pfx, &base) != 1 || plen < 1 || plen > 32) usage();
    uint32_t host_mask = plen == 32 ? 0 : (0xffffffffu >> plen);
    uint32_t net = ntohl(base.s_addr) & ~host_mask;

    /* mac1 key = HASH("mac1----" || Sr_pub) */
    uint8_t mac1_key[32];
    if (mode == MODE_INITIATION_MAC1) {
        uint8_t pub[32]; size_t n = 0;
        if (!pubkey_b64 || sodium_base642bin(pub, sizeof pub, pubkey_b64, strlen(pubkey_b64), " \n", &n, NULL,
                                             sodium_base64_VARIANT_ORIGINAL) != 0 || n != 32) {
            fprintf(stderr, "--pubkey: need the gateway's base64 public key\n"); return 2;
        }
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, 32);
        crypto_generichash_update(&st, (const uint8_t *)"mac1----", 8);
        crypto_generichash_update(&st, pub, 32);
        crypto_generichash_final(&st, mac1_key, 32);
    }

    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (fd < 0) { perror("socket(SOCK_RAW) (needs CAP_NET_RAW)"); return 1; }
    int one = 1;
    if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one) < 0) { perror("IP_HDRINCL"); return 1; }
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

    randombytes_buf(&rng_state, sizeof rng_state);
    rng_state |= 1;
    static uint8_t bufs[BATCH][sizeof(struct iphdr) + sizeof(struct udphdr) + MAX_PAYLOAD];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);

    unsigned long long sent = 0, accepted = 0, errors = 0; /* sent = paced attempts */
    double start = now_s(), end = start + duration;
    for (;;) {
        double t = now_s();
        if (t >= end || (max_count && sent >= max_count)) break;
        unsigned long long due = (unsigned long long)((t - start) * rate) + 1;
        if (max_count && due > max_count) due = max_count;
        if (due <= sent) {
            struct timespec pause = {0, 50000}; /* 50 us: well under one batch at 100k/s */
            nanosleep(&pause, NULL);
            continue;
        }
        int n = (int)(due - sent > BATCH ? BATCH : due - sent);
        for (int i = 0; i < n; i++) {
            uint8_t *b = bufs[i];
            struct iphdr *ip = (struct iphdr *)b;
            struct udphdr *udp = (struct udphdr *)(b + sizeof *ip);
            uint8_t *payload = b + sizeof *ip + sizeof *udp;
            size_t len;
            switch (mode) {
            case MODE_JUNK:
                len = 1 + rnd() % MAX_PAYLOAD;
                rnd_fill(payload, len);
                break;
            case MODE_TYPE1_1BYTE:
                len = 1;
                payload[0] = 1;
                break;
            case MODE_INITIATION_MAC1:
                len = initiation_len;
                rnd_fill(payload, len);
                payload[0] = 1; payload[1] = payload[2] = payload[3] = 0;
                crypto_generichash(payload + MAC1_OFFSET, 16, payload, MAC1_OFFSET, mac1_key, 32);
                break;
            }
            memset(ip, 0, sizeof *ip);
            ip->version = 4; ip->ihl = 5; ip->ttl = 64; ip->protocol = IPPROTO_UDP;
            ip->tot_len = htons((uint16_t)(sizeof *ip + sizeof *udp + len));
            ip->saddr = htonl(net | ((uint32_t)rnd() & host_mask));
            ip->daddr = dst.sin_addr.s_addr; /* id and checksum: filled in by the kernel */
            udp->source = htons((uint16_t)(1024 + rnd() % 64512));
            udp->dest = htons(dport);
            udp->len = htons((uint16_t)(sizeof *udp + len));
            udp->check = 0; /* no UDP checksum: allowed over IPv4 */
            iov[i].iov_base = b;
            iov[i].iov_len = sizeof *ip + sizeof *udp + len;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &dst;
            msgs[i].msg_hdr.msg_namelen = sizeof dst;
        }
        int r = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (r < 0) {
            errors++;
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) { perror("sendmmsg"); return 1; }
            /* a full queue: these are lost, and pacing does not try to catch up on them */
            sent += (unsigned long long)n;
            continue;
        }
        if (r < n) errors++;
        sent += (unsigned long long)n;
        accepted += (unsigned long long)r;
    }
    double elapsed = now_s() - start;
    printf("jvpn-flood: mode %s sent %llu packets in %.2f s = %.0f pkt/s (%llu paced, %llu send errors)\n", mode_s,
           accepted, elapsed, accepted / elapsed, sent, errors);
    return 0;
}
