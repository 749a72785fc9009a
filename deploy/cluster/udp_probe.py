#!/usr/bin/env python3
"""A 1 ms-resolution outage probe: sequence-numbered UDP echoes through the tunnel.

  udp_probe.py echo HOST PORT                      answer every datagram with itself
  udp_probe.py probe HOST PORT --seconds S [--interval-ms 1] [--mark-file F]

The prober sends one 64-byte datagram every interval (seq, send time), and prints one JSON line:
{"sent": N, "received": M, "outage_ms": G, "outage_start_s": T, "gaps_over_10ms": K} where G is the
longest time between two consecutive echoes received (the outage the tunnel showed) and T when it
began, in seconds since the probe started. With --mark-file, the probe writes the file once it has
seen its first echo (the fault may start then).
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time


def echo(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.host, a.port))
    while True:
        data, addr = s.recvfrom(2048)
        s.sendto(data, addr)


def probe(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((a.host, a.port))
    s.setblocking(False)
    interval = a.interval_ms / 1000.0
    start = time.monotonic()
    end = start + a.seconds
    next_send = start
    seq = 0
    received = 0
    last_rx = None
    outage = 0.0
    outage_start = 0.0
    gaps = 0
    marked = False
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_send:
            try:
                s.send(struct.pack("!Qd", seq, now) + b"\0" * 48)
            except OSError:
                pass  # no route for a moment: it shows as a gap
            seq += 1
            next_send += interval
            if next_send < now:
                next_send = now + interval
        timeout = max(0.0, min(next_send, end) - time.monotonic())
        r, _, _ = select.select([s], [], [], timeout)
        if not r:
            continue
        while True:
            try:
                s.recv(2048)
            except (BlockingIOError, ConnectionRefusedError):
                break
            t = time.monotonic()
            received += 1
            if last_rx is not None:
                gap = t - last_rx
                if gap > 0.010:
                    gaps += 1
                if gap > outage:
                    outage, outage_start = gap, last_rx - start
            last_rx = t
            if not marked and a.mark_file:
                open(a.mark_file, "w").close()
                marked = True
    if last_rx is not None and end - last_rx > outage:
        outage, outage_start = end - last_rx, last_rx - start  # never recovered before the end
    print(json.dumps({"sent": seq, "received": received, "outage_ms": round(outage * 1000, 1),
                      "outage_start_s": round(outage_start, 3), "gaps_over_10ms": gaps}))
    return 0 if received else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo")
    e.add_argument("host")
    e.add_argument("port", type=int)
    q = sub.add_parser("probe")
    q.add_argument("host")
    q.add_argument("port", type=int)
    q.add_argument("--seconds", type=float, required=True)
    q.add_argument("--interval-ms", type=float, default=1.0)
    q.add_argument("--mark-file")
    a = p.parse_args()
    if a.cmd == "echo":
        echo(a)
        return 0
    return probe(a)


if __name__ == "__main__":
    sys.exit(main())
