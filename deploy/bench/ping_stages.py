#!/usr/bin/env python3
"""Where a ping through the tunnel spent its time, stage by stage, from two packet captures.

usage: ping_stages.py GATEWAY_CAPTURE CLIENT_CAPTURE START END

The captures are `tcpdump -i any -n -tt -l` text (tcpdump 4.99 or later, which prints the
direction) of the real client's traffic only (ICMP on the TUNs, its tunnel's UDP datagrams on the
veths) in the gateway's and the client's namespace. A ping's request is followed from the client's TUN to its uplink, over the veth to the gateway's eth0,
into the gateway's TUN, and its reply back the same way. Only the pings whose request left the
client's TUN between START and END (epoch seconds) are summed up; the datagrams of a direction are
matched to the pings in order (see `assign`):

  gateway   the gateway daemon's share: its eth0 to its TUN, plus its TUN to its eth0
  client    the client daemon's share: its TUN to its uplink, plus its uplink to its TUN
  veth      the two crossings of the veth between the namespaces (the kernel's softirq delivery)
  kernel    the gateway kernel's echo reply (TUN in to TUN out)

Each line gives p50 / p99 / max in ms over those pings; a ping that cannot be followed through
every capture point (lost on the way) is counted apart.
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


def assign(intervals, times):
    """For each (a, b) in time order, the earliest datagram time in [a, b] not given to an earlier
    one (None: none left). The datagrams of one direction leave and arrive in the order their
    pings were sent (FIFO queues all the way), so the earliest free one is the ping's own, also
    when a stall has queued several behind each other."""
    out, i = [], 0
    for a, b in intervals:
        i = max(i, bisect.bisect_left(times, a))
        if i < len(times) and times[i] <= b:
            out.append(times[i])
            i += 1
        else:
            out.append(None)
    return out


def main():
    (g_icmp, g_udp), (c_icmp, c_udp) = load(sys.argv[1]), load(sys.argv[2])
    start, end = float(sys.argv[3]), float(sys.argv[4])
    stages = {"total": [], "gateway": [], "client": [], "veth": [], "kernel": []}
    unfollowed = 0
    pings = []
    for seq, t0 in sorted(c_icmp["request"].items(), key=lambda kv: kv[1]):
        t3, t4, t7 = g_icmp["request"].get(seq), g_icmp["reply"].get(seq), c_icmp["reply"].get(seq)
        if None in (t3, t4, t7):
            if start <= t0 <= end:
                unfollowed += 1
            continue
        pings.append((t0, t3, t4, t7))
    # The request's datagram left the client's uplink and reached the gateway's eth0 between the
    # two TUN points; the reply's between the gateway's TUN and the client's.
    t1s = assign([(p[0], p[1]) for p in pings], c_udp["Out"])
    t2s = assign([(p[0], p[1]) for p in pings], g_udp["In"])
    replies = sorted(range(len(pings)), key=lambda k: pings[k][2])
    t5s, t6s = [None] * len(pings), [None] * len(pings)
    for k, t5, t6 in zip(replies, assign([(pings[k][2], pings[k][3]) for k in replies], g_udp["Out"]),
                         assign([(pings[k][2], pings[k][3]) for k in replies], c_udp["In"])):
        t5s[k], t6s[k] = t5, t6
    for (t0, t3, t4, t7), t1, t2, t5, t6 in zip(pings, t1s, t2s, t5s, t6s):
        if not start <= t0 <= end:
            continue
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
