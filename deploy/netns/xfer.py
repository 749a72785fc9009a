#!/usr/bin/env python3
"""A paced TCP transfer with an end-to-end checksum, to show a stream surviving path switches.

  xfer.py serve HOST PORT [--idle-timeout S]     accept one connection, read to EOF
  xfer.py send HOST PORT SECONDS [--mbps R] [--stop-file F]
                                                  send pseudo-random data at R Mbit/s for SECONDS,
                                                  or until the file F exists (checked every 0.1 s)

Both print one JSON line: {"bytes": N, "sha256": "...", "seconds": T, "max_stall_ms": M}.
max_stall_ms is the longest gap between two successful reads/writes: the outage the stream saw.
"""
import argparse
import hashlib
import json
import os
import socket
import sys
import time

CHUNK = 16384


def serve(a):
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(1)
    ls.settimeout(a.accept_timeout)
    if a.ready_file:
        open(a.ready_file, "w").close()
    conn, _ = ls.accept()
    conn.settimeout(a.idle_timeout)
    h = hashlib.sha256()
    total = 0
    start = last = time.monotonic()
    stall = 0.0
    try:
        while True:
            b = conn.recv(1 << 16)
            now = time.monotonic()
            stall = max(stall, now - last)
            last = now
            if not b:
                break
            h.update(b)
            total += len(b)
    except socket.timeout:
        print(json.dumps({"error": "idle timeout", "bytes": total}), flush=True)
        return 1
    print(json.dumps({"bytes": total, "sha256": h.hexdigest(), "seconds": round(last - start, 3),
                      "max_stall_ms": round(stall * 1000)}), flush=True)
    return 0


def send(a):
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(a.idle_timeout)
    s.connect((a.host, a.port))
    h = hashlib.sha256()
    total = 0
    rate = a.mbps * 1e6 / 8  # bytes per second
    start = last = time.monotonic()
    stall = 0.0
    next_stop_check = start
    try:
        while True:
            now = time.monotonic()
            if now - start >= a.seconds:
                break
            if a.stop_file and now >= next_stop_check:
                if os.path.exists(a.stop_file):
                    break
                next_stop_check = now + 0.1
            # pace: stay at or below the target rate
            ahead = total / rate - (now - start)
            if ahead > 0:
                time.sleep(min(ahead, 0.05))
                continue
            b = os.urandom(CHUNK)
            s.sendall(b)
            now = time.monotonic()
            stall = max(stall, now - last)
            last = now
            h.update(b)
            total += len(b)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # wait for the server's close: everything was delivered
    except socket.timeout:
        print(json.dumps({"error": "send stalled", "bytes": total}), flush=True)
        return 1
    print(json.dumps({"bytes": total, "sha256": h.hexdigest(), "seconds": round(time.monotonic() - start, 3),
                      "max_stall_ms": round(stall * 1000)}), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--idle-timeout", type=float, default=60)
    p.add_argument("--accept-timeout", type=float, default=60)
    p.add_argument("--ready-file")
    p = sub.add_parser("send")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("seconds", type=float)
    p.add_argument("--mbps", type=float, default=20)
    p.add_argument("--stop-file", help="end the transfer early once this file exists")
    p.add_argument("--idle-timeout", type=float, default=60)
    a = ap.parse_args()
    return serve(a) if a.cmd == "serve" else send(a)


if __name__ == "__main__":
    sys.exit(main())
