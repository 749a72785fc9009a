#!/usr/bin/env python3
"""Abuse a jvpn gateway's TCP port (the TCP transport) and report what the gateway did about it.

usage: tcpabuse.py garbage HOST PORT COUNT
           COUNT connections, each sending one of: random bytes (at least 7), an HTTP request, a TLS ClientHello,
           an SSH banner, a jvpn length prefix out of range, a v1-sized initiation; then waits for
           the gateway to close each. Prints {"closed": N, "open": M, "max_close_ms": X}.
       tcpabuse.py halfopen HOST PORT COUNT HOLD_S
           COUNT connections that send nothing (half of them 3 bytes of a plausible frame head) and
           are held up to HOLD_S seconds. Prints how many the gateway closed and when (ms).
       tcpabuse.py flood HOST PORT SECONDS [--sources PREFIX.A-B]
           Opens connections as fast as it can for SECONDS (from the given source addresses, in
           turn), keeps every one it gets open and silent. Prints attempts, connected, and how many
           the gateway closed by the end.
Every loop and wait is bounded; all sockets are closed on exit.
"""
import json, os, random, resource, select, socket, sys, time

def now_ms():
    return time.monotonic() * 1000

def payloads():
    hello = bytes.fromhex("160301020001") + os.urandom(40)
    return [
        lambda: os.urandom(random.choice([7, 64, 1500])),
        lambda: b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n",
        lambda: hello,
        lambda: b"SSH-2.0-OpenSSH_9.2\r\n",
        lambda: b"\xff\xff\x04\x00\x00\x00" + os.urandom(100),
        lambda: b"\x90\x00\x01\x00\x00\x00" + os.urandom(142),
    ]

def wait_closed(socks, timeout_s):
    """Waits until the peer closed each socket (EOF or reset); returns close times in ms."""
    start = now_ms()
    pending = {s.fileno(): s for s in socks}
    closed = {}
    deadline = start + timeout_s * 1000
    while pending and now_ms() < deadline:
        r, _, _ = select.select(list(pending.values())[:1000], [], [], 0.05)
        for s in r:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                closed[s.fileno()] = now_ms() - start
                del pending[s.fileno()]
    return closed, len(pending)

def garbage(host, port, count):
    make = payloads()
    socks = []
    for i in range(count):
        s = socket.create_connection((host, port), timeout=2)
        s.setblocking(False)
        try:
            s.send(make[i % len(make)]())
        except OSError:
            pass
        socks.append(s)
    closed, still = wait_closed(socks, 10)
    for s in socks:
        s.close()
    print(json.dumps({"closed": len(closed), "open": still, "max_close_ms": round(max(closed.values(), default=0))}))

def halfopen(host, port, count, hold):
    socks = []
    for i in range(count):
        s = socket.create_connection((host, port), timeout=2)
        if i % 2:
            s.send(b"\xa0\x00\x01")  # the head of an initiation, never finished
        s.setblocking(False)
        socks.append(s)
    closed, still = wait_closed(socks, hold)
    for s in socks:
        s.close()
    times = sorted(closed.values())
    print(json.dumps({"closed": len(closed), "open": still, "min_close_ms": round(times[0]) if times else None,
                      "max_close_ms": round(times[-1]) if times else None}))

def flood(host, port, seconds, sources):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks, attempts, connected = [], 0, 0
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end and len(socks) < min(20000, limit - 64):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        if sources:
            s.bind((sources[i % len(sources)], 0))
        i += 1
        attempts += 1
        s.connect_ex((host, port))
        socks.append(s)
        if attempts % 200 == 0:
            time.sleep(0.01)
    # Which ones connected, and which the gateway has closed since.
    time.sleep(0.5)
    closed = 0
    for s in socks:
        try:
            s.getpeername()
        except OSError:
            continue
        connected += 1
        try:
            if not s.recv(1, socket.MSG_DONTWAIT):
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    for s in socks:
        s.close()
    print(json.dumps({"attempts": attempts, "connected": connected, "closed_by_gateway": closed}))

def main():
    a = sys.argv[1:]
    if len(a) >= 4 and a[0] == "garbage":
        garbage(a[1], int(a[2]), int(a[3]))
    elif len(a) >= 5 and a[0] == "halfopen":
        halfopen(a[1], int(a[2]), int(a[3]), float(a[4]))
    elif len(a) >= 4 and a[0] == "flood":
        sources = []
        if len(a) >= 6 and a[4] == "--sources":
            base, rng = a[5].rsplit(".", 1)
            lo, hi = (int(x) for x in rng.split("-"))
            sources = [f"{base}.{n}" for n in range(lo, hi + 1)]
        flood(a[1], int(a[2]), float(a[3]), sources)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)

if __name__ == "__main__":
    main()
