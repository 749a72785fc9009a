#!/usr/bin/env python3
"""Where a ping through the tunnel spent its time, stage by stage, from two packet captures.

usage: ping_stages.py GATEWAY_CAPTURE CLIENT_CAPTURE START END

The captures are `tcpdump -i any -n -tt -l` text of the real client's traffic only (ICMP on the
TUNs, its tunnel's UDP datagrams on the veths) in the gateway's and the client's namespace. A ping's
request is followed from the client's TUN to its uplink, over the veth to the gateway's eth0,
into the gateway's TUN, and its reply back the same way. Only the pings whose request left the
client's TUN between START and END (epoch seconds) are summed up:

  gateway   the gateway daemon's share: its eth0 to its TUN, plus its TUN to its eth0
  client    the client daemon's share: its TUN to its uplink, plus its uplink to its TUN
  veth      the two crossings of the veth between the namespaces (the kernel's softirq delivery)
  kernel    the gateway kernel's echo reply (TUN in to TUN out)

Each line gives p50 / p99 / max in ms over those pings; a ping that cannot be followed through
every capture point (lost, or a datagram of the same size in between) is counted apart.
"""
import bisect
import re
import sys

DATA_LENGTH = "length 116"  # a 64-byte ICMP payload: 84 bytes of IPv4 + 32 of framing


def load(path):
    icmp = {"request": {}, "reply": {}}
    udp = {"In": [], "Out": []}
    for line in open(path):
        f = line.split()
        if len(f) < 3:
            continue
        t, direction = float(f[0]), f[2]
        m = re.search(r"ICMP echo (request|reply), id \d+, seq (\d+)", line)
        if m:
            icmp[m.group(1)].setdefault(int(m.group(2)), t)
        elif line.rstrip().endswith(DATA_LENGTH) and direction in udp:
            udp[direction].append(t)
    return icmp, udp


def after(times, t):
    i = bisect.bisect_left(times, t)
    return times[i] if i < len(times) else None


def before(times, t):
    i = bisect.bisect_right(times, t)
    return times[i - 1] if i > 0 else None


def main():
    (g_icmp, g_udp), (c_icmp, c_udp) = load(sys.argv[1]), load(sys.argv[2])
    start, end = float(sys.argv[3]), float(sys.argv[4])
    stages = {"total": [], "gateway": [], "client": [], "veth": [], "kernel": []}
    unfollowed = 0
    for seq, t0 in sorted(c_icmp["request"].items()):
        if not start <= t0 <= end:
            continue
        t3, t4, t7 = g_icmp["request"].get(seq), g_icmp["reply"].get(seq), c_icmp["reply"].get(seq)
        t1 = after(c_udp["Out"], t0)
        t2 = before(g_udp["In"], t3) if t3 else None
        t5 = after(g_udp["Out"], t4) if t4 else None
        t6 = before(c_udp["In"], t7) if t7 else None
        points = (t0, t1, t2, t3, t4, t5, t6, t7)
        if None in points or any(b < a for a, b in zip(points, points[1:])):
            unfollowed += 1
            continue
        ms = lambda a, b: (b - a) * 1000
        stages["total"].append(ms(t0, t7))
        stages["client"].append(ms(t0, t1) + ms(t6, t7))
        stages["veth"].append(ms(t1, t2) + ms(t5, t6))
        stages["gateway"].append(ms(t2, t3) + ms(t4, t5))
        stages["kernel"].append(ms(t3, t4))
    n = len(stages["total"])
    print("stages:  %d pings in the storm followed through both captures, %d not" % (n, unfollowed))
    for name in ("total", "gateway", "client", "veth", "kernel"):
        v = sorted(stages[name])
        if not v:
            continue
        pct = lambda p: v[max(1, -(-len(v) * p // 100)) - 1]
        print("  %-8s p50 %.3f ms, p99 %.3f ms, max %.3f ms" % (name, pct(50), pct(99), v[-1]))


if __name__ == "__main__":
    main()
