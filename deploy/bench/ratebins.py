#!/usr/bin/env python3
"""An unpaced TCP stream whose receiver counts the bytes per time bin, for benchmarks that need
the throughput over time (how soon a stream is back at full speed after a path switch).

  ratebins.py serve HOST PORT [--bin-ms N] [--ready-file F]   accept one connection, read to EOF;
                                                               print {"bin_ms": N, "bins": [[wall_ms, bytes], ...]}
  ratebins.py send HOST PORT SECONDS                           write as fast as the socket takes for SECONDS

wall_ms is the start of the bin in milliseconds since the epoch (to line up with event logs);
bins without data are omitted.
"""
import argparse
import json
import socket
import sys
import time


def serve(a):
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(1)
    ls.settimeout(30)
    if a.ready_file:
        open(a.ready_file, "w").close()
    conn, _ = ls.accept()
    conn.settimeout(30)
    buf = bytearray(1 << 20)
    bins = {}
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        b = int(time.time() * 1000) // a.bin_ms * a.bin_ms
        bins[b] = bins.get(b, 0) + n
    print(json.dumps({"bin_ms": a.bin_ms, "bins": sorted(bins.items())}), flush=True)
    return 0


def send(a):
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect((a.host, a.port))
    chunk = bytes(1 << 16)
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--bin-ms", type=int, default=10)
    p.add_argument("--ready-file")
    p = sub.add_parser("send")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("seconds", type=float)
    a = ap.parse_args()
    return serve(a) if a.cmd == "serve" else send(a)


if __name__ == "__main__":
    sys.exit(main())
