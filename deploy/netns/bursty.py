#!/usr/bin/env python3
"""Bursty traffic through the tunnel, every byte checked: the load a path-failure detector must
not mistake for a dead path.

  bursty.py serve HOST [--ports RR,BULK,UDP] [--ready-file F] [--max-seconds S]
  bursty.py client HOST SECONDS [--ports RR,BULK,UDP] [--seed N] [--think-ms MAX]
                   [--bulk-every S] [--udp-every S]

The client, until SECONDS have passed, does in turn (each followed by a think time uniform in
0..MAX ms, default 500):
  - request/response exchanges on a TCP connection (RR port; a new connection every 1..20 of
    them): a request of 64 B..64 KiB, a response of 64 B..256 KiB (log-uniform; now and then
    1..2 MiB); the server answers sha256(request) + the response + sha256(response), the client
    checks both;
  - about every --bulk-every seconds (default 25, randomised +-50 %) a bulk TCP upload of 2..6 MiB
    at full speed to the BULK port; the server answers its sha256 and length;
  - about every --udp-every seconds (default 10, +-50 %) a one-way UDP burst to the UDP port:
    0.2..2 s of 200..1400-byte datagrams at 2..20 Mbit/s. Nothing ever answers it.
Any error (connection reset, 20 s without progress, wrong checksum) ends the client with exit 1.
Both print one JSON line of counters at the end (the client also a progress line on stderr
every 30 s). The server stops after --max-seconds (default 3600) or on SIGTERM.
"""
import argparse
import hashlib
import json
import math
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

OP_TIMEOUT = 20.0


def ports(s):
    p = [int(x) for x in s.split(",")]
    if len(p) != 3:
        raise argparse.ArgumentTypeError("want RR,BULK,UDP")
    return p


def recv_exact(conn, n):
    buf = bytearray()
    while len(buf) < n:
        b = conn.recv(min(n - len(buf), 1 << 16))
        if not b:
            raise ConnectionError("peer closed after %d of %d bytes" % (len(buf), n))
        buf += b
    return bytes(buf)


# --- server ------------------------------------------------------------------------------------

class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}

    def add(self, k, v=1):
        with self.lock:
            self.c[k] = self.c.get(k, 0) + v


def serve_rr(conn, ctr):
    conn.settimeout(300)
    with conn:
        while True:
            try:
                hdr = conn.recv(8, socket.MSG_WAITALL)
            except OSError:
                return
            if len(hdr) < 8:
                return
            req_len, resp_len = struct.unpack("!II", hdr)
            req = recv_exact(conn, req_len)
            resp = os.urandom(resp_len)
            conn.sendall(hashlib.sha256(req).digest() + resp + hashlib.sha256(resp).digest())
            ctr.add("rr_requests")
            ctr.add("rr_bytes_in", req_len)
            ctr.add("rr_bytes_out", resp_len)


def serve_bulk(conn, ctr):
    conn.settimeout(300)
    with conn:
        h = hashlib.sha256()
        n = 0
        while True:
            b = conn.recv(1 << 16)
            if not b:
                break
            h.update(b)
            n += len(b)
        conn.sendall(h.digest() + struct.pack("!Q", n))
        ctr.add("bulk_uploads")
        ctr.add("bulk_bytes", n)


def acceptor(ls, handler, ctr):
    while True:
        try:
            conn, _ = ls.accept()
        except OSError:
            return
        threading.Thread(target=handler, args=(conn, ctr), daemon=True).start()


def serve(a):
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    rr_p, bulk_p, udp_p = a.ports
    ctr = Counters()
    for port, handler in ((rr_p, serve_rr), (bulk_p, serve_bulk)):
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((a.host, port))
        ls.listen(16)
        threading.Thread(target=acceptor, args=(ls, handler, ctr), daemon=True).start()
    us = socket.socket(fam, socket.SOCK_DGRAM)
    us.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    us.bind((a.host, udp_p))
    us.settimeout(0.2)
    if a.ready_file:
        open(a.ready_file, "w").close()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    deadline = time.monotonic() + a.max_seconds
    while not stop and time.monotonic() < deadline:
        try:
            b = us.recv(1 << 16)  # never answered: the one-way part of the load
        except socket.timeout:
            continue
        except OSError:
            continue
        ctr.add("udp_packets")
        ctr.add("udp_bytes", len(b))
    with ctr.lock:
        print(json.dumps(ctr.c, sort_keys=True), flush=True)
    return 0


# --- client ------------------------------------------------------------------------------------

def log_uniform(rng, lo, hi):
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class Client:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
        self.rr_p, self.bulk_p, self.udp_p = a.ports
        self.conn = None
        self.left_on_conn = 0
        self.st = {"seed": a.seed, "rr": 0, "rr_connections": 0, "rr_bytes_up": 0, "rr_bytes_down": 0,
                   "bulk": 0, "bulk_bytes": 0, "bulk_mbps": [], "udp_bursts": 0, "udp_packets": 0,
                   "udp_bytes": 0, "think_ms_total": 0}
        self.rr_ms = []

    def connect(self, port):
        s = socket.socket(self.fam, socket.SOCK_STREAM)
        s.settimeout(OP_TIMEOUT)
        s.connect((self.a.host, port))
        return s

    def rr(self):
        if self.conn is None or self.left_on_conn <= 0:
            if self.conn is not None:
                self.conn.close()
            self.conn = self.connect(self.rr_p)
            self.left_on_conn = self.rng.randint(1, 20)
            self.st["rr_connections"] += 1
        self.left_on_conn -= 1
        req_len = log_uniform(self.rng, 64, 64 << 10)
        resp_len = log_uniform(self.rng, 64, 256 << 10)
        if self.rng.random() < 0.03:
            resp_len = self.rng.randint(1 << 20, 2 << 20)
        req = os.urandom(req_len)
        t0 = time.monotonic()
        self.conn.sendall(struct.pack("!II", req_len, resp_len) + req)
        got = recv_exact(self.conn, 32 + resp_len + 32)
        ms = (time.monotonic() - t0) * 1000
        if got[:32] != hashlib.sha256(req).digest():
            raise ValueError("request checksum mismatch (%d bytes)" % req_len)
        if got[-32:] != hashlib.sha256(got[32:-32]).digest():
            raise ValueError("response checksum mismatch (%d bytes)" % resp_len)
        self.rr_ms.append(ms)
        self.st["rr"] += 1
        self.st["rr_bytes_up"] += req_len
        self.st["rr_bytes_down"] += resp_len

    def bulk(self):
        n = self.rng.randint(2 << 20, 6 << 20)
        s = self.connect(self.bulk_p)
        h = hashlib.sha256()
        t0 = time.monotonic()
        with s:
            left = n
            while left > 0:
                b = os.urandom(min(left, 1 << 16))
                s.sendall(b)
                h.update(b)
                left -= len(b)
            s.shutdown(socket.SHUT_WR)
            got = recv_exact(s, 40)
        secs = time.monotonic() - t0
        if got[:32] != h.digest() or struct.unpack("!Q", got[32:])[0] != n:
            raise ValueError("bulk upload of %d bytes: checksum/length mismatch" % n)
        self.st["bulk"] += 1
        self.st["bulk_bytes"] += n
        self.st["bulk_mbps"].append(round(n * 8 / secs / 1e6, 1))

    def udp(self):
        secs = self.rng.uniform(0.2, 2.0)
        mbps = self.rng.uniform(2, 20)
        s = socket.socket(self.fam, socket.SOCK_DGRAM)
        t0 = time.monotonic()
        sent = 0
        with s:
            while True:
                now = time.monotonic()
                if now - t0 >= secs:
                    break
                ahead = sent * 8 / (mbps * 1e6) - (now - t0)
                if ahead > 0:
                    time.sleep(min(ahead, 0.01))
                    continue
                size = self.rng.randint(200, 1400)
                try:
                    s.sendto(os.urandom(size), (self.a.host, self.udp_p))
                except OSError:  # ENOBUFS and the like: UDP may drop, the burst goes on
                    continue
                sent += size
                self.st["udp_packets"] += 1
        self.st["udp_bursts"] += 1
        self.st["udp_bytes"] += sent

    def run(self):
        a = self.a
        start = time.monotonic()
        end = start + a.seconds
        def next_in(every):
            return time.monotonic() + every * self.rng.uniform(0.5, 1.5)
        next_bulk = next_in(a.bulk_every)
        next_udp = next_in(a.udp_every)
        next_report = start + 30
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_bulk:
                self.bulk()
                next_bulk = next_in(a.bulk_every)
            elif now >= next_udp:
                self.udp()
                next_udp = next_in(a.udp_every)
            else:
                self.rr()
            think = self.rng.uniform(0, a.think_ms) / 1000
            think = max(0.0, min(think, end - time.monotonic()))
            time.sleep(think)
            self.st["think_ms_total"] += int(think * 1000)
            if time.monotonic() >= next_report:
                next_report += 30
                print("bursty: %ds: %d rr, %d bulk, %d udp bursts" % (time.monotonic() - start, self.st["rr"],
                      self.st["bulk"], self.st["udp_bursts"]), file=sys.stderr, flush=True)
        if self.conn is not None:
            self.conn.close()
        self.st["seconds"] = round(time.monotonic() - start, 1)
        r = sorted(self.rr_ms)
        if r:
            self.st["rr_ms_p50"] = round(r[len(r) // 2], 1)
            self.st["rr_ms_p99"] = round(r[min(len(r) - 1, int(len(r) * 0.99))], 1)
            self.st["rr_ms_max"] = round(r[-1], 1)


def client(a):
    if a.seed is None:
        a.seed = random.randrange(1 << 31)
    c = Client(a)
    try:
        c.run()
    except (OSError, ValueError, ConnectionError) as e:
        c.st["error"] = "%s: %s" % (type(e).__name__, e)
        print(json.dumps(c.st, sort_keys=True), flush=True)
        return 1
    print(json.dumps(c.st, sort_keys=True), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("host")
    p.add_argument("--ports", type=ports, default=[9100, 9101, 9102])
    p.add_argument("--ready-file")
    p.add_argument("--max-seconds", type=float, default=3600)
    p = sub.add_parser("client")
    p.add_argument("host")
    p.add_argument("seconds", type=float)
    p.add_argument("--ports", type=ports, default=[9100, 9101, 9102])
    p.add_argument("--seed", type=int)
    p.add_argument("--think-ms", type=float, default=500)
    p.add_argument("--bulk-every", type=float, default=25)
    p.add_argument("--udp-every", type=float, default=10)
    a = ap.parse_args()
    return serve(a) if a.cmd == "serve" else client(a)


if __name__ == "__main__":
    sys.exit(main())
