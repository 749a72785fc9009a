#!/usr/bin/env python3
"""Sends UDP datagrams with DF set and reports the ICMP "too big" error that comes back.

  dfsend.py HOST PORT SIZE [--timeout S]

SIZE is the IP packet size of each datagram (IPv4 or IPv6, from HOST). One datagram is sent every
0.1 s until the kernel queues an ICMP error on the socket (IP_RECVERR / IPV6_RECVERR) or S seconds
pass. Prints one JSON line: {"sent": N, "origin": "icmp"|"icmp6"|null, "type": T, "code": C,
"mtu": M, "path_mtu": P} where M is the MTU the error announced and P the socket's path MTU
(IP_MTU) afterwards. Exit 0 when a fragmentation-needed (ICMPv4 3/4) or packet-too-big (ICMPv6 2/0)
came back, 1 otherwise.
"""
import argparse
import errno
import json
import select
import socket
import struct
import sys
import time

IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_RECVERR, IP_MTU = 10, 2, 11, 14
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO, IPV6_RECVERR, IPV6_MTU = 23, 2, 25, 24
MSG_ERRQUEUE = 0x2000
ORIGINS = {2: "icmp", 3: "icmp6"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("size", type=int)
    ap.add_argument("--timeout", type=float, default=5)
    a = ap.parse_args()
    v6 = ":" in a.host
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    level = socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP
    s.setsockopt(level, IPV6_MTU_DISCOVER if v6 else IP_MTU_DISCOVER, IPV6_PMTUDISC_DO if v6 else IP_PMTUDISC_DO)
    s.setsockopt(level, IPV6_RECVERR if v6 else IP_RECVERR, 1)
    s.connect((a.host, a.port))
    payload = b"\x5a" * (a.size - (48 if v6 else 28))
    out = {"sent": 0, "origin": None, "type": None, "code": None, "mtu": None, "path_mtu": None}
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline and out["origin"] is None:
        try:
            s.send(payload)
            out["sent"] += 1
        except OSError as e:
            if e.errno != errno.EMSGSIZE:
                raise
        # A queued error shows as POLLERR (select would report it as readable, not exceptional).
        poller = select.poll()
        poller.register(s, select.POLLERR)
        if not poller.poll(100):
            continue
        try:
            _, anc, _, _ = s.recvmsg(2048, 512, MSG_ERRQUEUE)
        except BlockingIOError:
            continue
        for lvl, typ, data in anc:
            if typ in (IP_RECVERR, IPV6_RECVERR) and len(data) >= 16:
                ee_errno, origin, etype, code, _pad, info, _data = struct.unpack("=IBBBBII", data[:16])
                out.update(origin=ORIGINS.get(origin, origin), type=etype, code=code, mtu=info)
    try:
        out["path_mtu"] = s.getsockopt(level, IPV6_MTU if v6 else IP_MTU)
    except OSError:
        pass
    print(json.dumps(out), flush=True)
    ok = (out["origin"], out["type"], out["code"]) in (("icmp", 3, 4), ("icmp6", 2, 0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
