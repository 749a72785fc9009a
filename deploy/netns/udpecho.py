#!/usr/bin/env python3
"""A sequence-numbered UDP echo at 1 ms spacing, to measure an outage inside the tunnel to the
millisecond (a 10 ms ping cannot see a 2 ms outage).

usage: udpecho.py serve IP PORT [--seconds S]
       udpecho.py probe IP PORT SECONDS [--interval-ms 1] [--mark-file F]
           Sends one datagram every interval for SECONDS, then waits 0.5 s for late replies; prints
           {"sent": N, "answered": M, "outage_ms": G, "outage_start_ms": T, "ended": E}: G is the longest
           span of send times with no answer (the outage as traffic saw it), T when it began (ms after
           the first probe); E is false when the probes were still unanswered at the end (G then runs
           to the last probe sent). With --mark-file, F is created at the first answer (a fault may
           start then). Exit status 1 when nothing was answered.

(The failover benchmark's probe, which runs across repetitions and talks to the benchmark through
files, is deploy/bench/udpecho.py.)
"""
import json, socket, struct, sys, time

def serve(ip, port, seconds):
    s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    s.settimeout(0.5)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        s.sendto(data, addr)

def probe(ip, port, seconds, interval_ms, mark_file):
    s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.connect((ip, port))
    sent_at = []
    answered = set()
    start = time.monotonic()
    step = interval_ms / 1000.0
    next_send = start
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end + 0.5:
            break
        if now < end and now >= next_send:
            seq = len(sent_at)
            sent_at.append(now - start)
            try:
                s.send(struct.pack("!I", seq) + b"\0" * 28)
            except OSError:
                pass
            next_send += step
        try:
            while True:
                data = s.recv(2048)
                if len(data) >= 4:
                    answered.add(struct.unpack("!I", data[:4])[0])
                    if mark_file:
                        open(mark_file, "w").close()
                        mark_file = None
        except (BlockingIOError, ConnectionRefusedError):
            pass
        time.sleep(min(step / 4, 0.0005))
    ok = sorted(answered)
    gap, gap_start = 0.0, None
    for a, b in zip(ok, ok[1:]):
        g = sent_at[b] - sent_at[a]
        if g > gap:
            gap, gap_start = g, sent_at[a]
    # Probes after the last answered one that never got an answer: an outage that had not ended.
    tail = sent_at[-1] - sent_at[ok[-1]] if ok and sent_at else 0.0
    ended = tail < max(0.1, 20 * step)
    if not ended and tail > gap:
        gap, gap_start = tail, sent_at[ok[-1]]
    if not ok and sent_at:
        gap, gap_start, ended = sent_at[-1], 0.0, False  # never answered: the whole run
    print(json.dumps({"sent": len(sent_at), "answered": len(ok), "outage_ms": round(gap * 1000, 1),
                      "outage_start_ms": round(gap_start * 1000) if gap_start is not None else None,
                      "ended": ended}))
    return 0 if ok else 1

def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "serve":
        seconds = float(a[a.index("--seconds") + 1]) if "--seconds" in a else 3600
        serve(a[1], int(a[2]), seconds)
    elif len(a) >= 4 and a[0] == "probe":
        interval = float(a[a.index("--interval-ms") + 1]) if "--interval-ms" in a else 1.0
        mark = a[a.index("--mark-file") + 1] if "--mark-file" in a else None
        sys.exit(probe(a[1], int(a[2]), float(a[3]), interval, mark))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)

if __name__ == "__main__":
    main()
