#!/usr/bin/env python3
"""Delay packets (plus optional jitter and loss) through an NFQUEUE, without libraries.

Fallback for kernels built without sch_netem (tc netem): flap.sh sends a uplink's forwarded
traffic to NFQUEUE QUEUE_NUM with iptables and runs this inside the router namespace. Each packet
is held DELAY_MS, or with --jitter J a delay drawn uniformly from [DELAY_MS - J, DELAY_MS + J]
(never below 0) for each packet on its own, and released when due: with jitter, packets can
overtake each other (netem without a rate does the same). With --loss PCT a share is dropped instead.

usage: nfq_delay.py QUEUE_NUM DELAY_MS [--jitter MS] [--loss PCT] [--seed N] [--max-seconds N]
                    [--pidfile FILE]
"""
import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NF_DROP = 0
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2


def nla(attr_type, payload):
    length = 4 + len(payload)
    pad = (4 - length % 4) % 4
    return struct.pack("=HH", length, attr_type) + payload + b"\0" * pad


def nfmsg(msg, queue, attrs, flags=NLM_F_REQUEST, seq=0):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    typ = (NFNL_SUBSYS_QUEUE << 8) | msg
    return struct.pack("=IHHII", 16 + len(body), typ, flags, seq, 0) + body


def check_ack(sock):
    data = sock.recv(65536)
    off = 0
    while off + 16 <= len(data):
        length, typ, _, _, _ = struct.unpack_from("=IHHII", data, off)
        if typ == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, off + 16)
            if err != 0:
                raise OSError(-err, os.strerror(-err))
        off += (length + 3) & ~3


def parse_packet_ids(data):
    off = 0
    ids = []
    while off + 16 <= len(data):
        length, typ, _, _, _ = struct.unpack_from("=IHHII", data, off)
        if length < 16:
            break
        if typ == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            a = off + 16 + 4  # after nlmsghdr + nfgenmsg
            end = off + length
            while a + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, a)
                if alen < 4:
                    break
                if (atype & 0x7FFF) == NFQA_PACKET_HDR:
                    (pid,) = struct.unpack_from("!I", data, a + 4)
                    ids.append(pid)
                    break
                a += (alen + 3) & ~3
        off += (length + 3) & ~3
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("queue", type=int)
    ap.add_argument("delay_ms", type=float)
    ap.add_argument("--jitter", type=float, default=0.0, help="ms; each delay is uniform in DELAY_MS +- JITTER")
    ap.add_argument("--loss", type=float, default=0.0)
    ap.add_argument("--seed", type=int, help="seed the delay/loss draws (reproducible runs)")
    ap.add_argument("--max-seconds", type=float, default=24 * 3600)
    ap.add_argument("--pidfile", help="written once the queue is bound (python3 may be a wrapper)")
    args = ap.parse_args()
    if args.delay_ms < 0 or args.jitter < 0 or not 0 <= args.loss <= 100:
        ap.error("DELAY_MS and --jitter must be >= 0, --loss 0..100")
    rng = random.Random(args.seed)

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((0, 0))
    q = args.queue
    # A previous delayer may still be releasing the same queue: retry the bind, bounded.
    for attempt in range(30):
        sock.send(nfmsg(NFQNL_MSG_CONFIG, q, [nla(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0))],
                        NLM_F_REQUEST | NLM_F_ACK, 1))
        try:
            check_ack(sock)
            break
        except OSError:
            if attempt == 29:
                raise
            time.sleep(0.1)
    sock.send(nfmsg(NFQNL_MSG_CONFIG, q, [nla(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))],
                    NLM_F_REQUEST | NLM_F_ACK, 2))
    check_ack(sock)
    sock.send(nfmsg(NFQNL_MSG_CONFIG, q, [nla(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 20000))],
                    NLM_F_REQUEST | NLM_F_ACK, 3))
    check_ack(sock)

    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print(f"nfq_delay: queue {q} delay {args.delay_ms} ms jitter +-{args.jitter} ms loss {args.loss}%", flush=True)

    delay = args.delay_ms / 1000.0
    jitter = args.jitter / 1000.0
    # (due, arrival seq, id): a heap, since with jitter a later packet can be due first; the
    # sequence number keeps packets with the same due time in arrival order.
    pending = []
    seq = 0
    deadline = time.monotonic() + args.max_seconds
    sock.setblocking(False)

    def verdict(pid, v):
        hdr = nla(NFQA_VERDICT_HDR, struct.pack("!II", v, pid))
        try:
            sock.send(nfmsg(NFQNL_MSG_VERDICT, q, [hdr]))
        except OSError:
            pass

    def release_due(now):
        while pending and pending[0][0] <= now:
            verdict(heapq.heappop(pending)[2], NF_ACCEPT)

    while not stop and time.monotonic() < deadline:
        now = time.monotonic()
        release_due(now)
        timeout = max(0.0, pending[0][0] - now) if pending else 0.1
        r, _, _ = select.select([sock], [], [], timeout)
        if not r:
            continue
        while True:
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: the kernel dropped notifications; keep going
                break
            now = time.monotonic()
            for pid in parse_packet_ids(data):
                if args.loss > 0 and rng.random() * 100.0 < args.loss:
                    verdict(pid, NF_DROP)
                    continue
                d = delay + rng.uniform(-jitter, jitter) if jitter > 0 else delay
                if d <= 0:
                    verdict(pid, NF_ACCEPT)
                else:
                    seq += 1
                    heapq.heappush(pending, (now + d, seq, pid))
            # A steady stream of arrivals must not hold back what is due.
            release_due(now)
    # Release what is still held (in due order) so a clean stop does not look like loss.
    while pending:
        verdict(heapq.heappop(pending)[2], NF_ACCEPT)
    try:
        sock.send(nfmsg(NFQNL_MSG_CONFIG, q, [nla(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_UNBIND, 0, 0))]))
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
