#!/usr/bin/env python3
"""A 1 ms UDP echo through the tunnel: the failover benchmark's outage probe.

  udpecho.py serve HOST PORT [--ready-file F]
      echo every datagram back to its sender (run it on the gateway's tunnel address)
  udpecho.py probe HOST PORT DIR [--interval-ms 1] [--clean-n 1000] [--wait-ms 5000]
                   [--lost-after-ms 200] [--ready-n 300] [--max-seconds 3600]
      send a sequence-numbered datagram every interval until DIR/stop exists; one probe runs
      across all repetitions of a benchmark cell, so that the traffic the tunnel carries when a
      fault strikes is the same steady mix every time
  udpecho.py analyze LOG FAULT_FILE [--wait-ms 5000] [--clean-n 1000]
      one JSON line describing the outage around the fault (see below)

The probe and the benchmark talk through files in DIR (each written to a temporary name and
renamed, so never read half-written): the probe writes DIR/ready once --ready-n replies came back;
the benchmark writes DIR/fault.N for repetition N = 1, 2, ...: line 1 the realtime ns just before
the fault command started, line 2 just after it returned (the probe and the benchmark stamp with
the same clock, CLOCK_REALTIME). The probe then watches for the tunnel to be clean again:
--clean-n consecutive sequence numbers sent after the fault's end, all answered (one unanswered
--lost-after-ms after it was sent breaks a run). Once it sees that, or once the fault's end is
--wait-ms old with no clean run in progress (at the latest --clean-n intervals plus 0.5 s later),
it writes DIR/echo.N: "# interval_ns N", then "SEQ SENT_NS RECV_NS" (RECV_NS 0: never answered)
for every datagram from 1 s before the fault's start to the end of the clean run (or to the
newest one whose fate is known), then "# dups N" and "# send_errors N" (over the probe's life).

The probe never sends a burst to catch up: a process that was not scheduled leaves a hole in its
own send times, and the analysis reports the longest such hole so that a gap the probe made
itself is never taken for an outage of the tunnel.

Analysis (all times from the log, 1 ms resolution at the default interval):
  onset      the first sequence number sent at or after the fault command's start (minus 2 ms:
             one in flight may die) that was never answered: where the fault took effect;
  hole_ms    the outage the fault made: from the last reply received before the onset echo was
             sent to the first reply to an echo sent after the run of lost echoes that starts at
             the onset (without a lost echo: gap_ms);
  gap_ms     the longest gap between two consecutive replies (by receive time) from the last reply
             before the fault command to the first reply of the clean run: what an application
             sees, including delay spikes of a busy host that are not the fault's;
  lost       sequence numbers never answered from the onset to the clean run;
  lossy_ms   send time of the last lost one minus the onset's: how long the fault hurt (the figure
             for random loss, where single gaps stay short until the switch);
  clean_ms   the clean run's first send time minus the onset's;
  effect_ms  the onset's send time minus the fault command's start; cmd_ms the command's duration;
  send_gap_ms the longest gap between two of the probe's own sends in that window.
"""
import argparse
import json
import os
import select
import signal
import socket
import struct
import sys
import time

HDR = struct.Struct("!IQ")
PAD = b"\0" * 20


def serve(a):
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((a.host, a.port))
    if a.ready_file:
        open(a.ready_file, "w").close()
    while True:
        try:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)
        except OSError:
            continue


def read_fault(path):
    try:
        with open(path) as f:
            v = [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return None, None
    return (v[0] if len(v) > 0 else None), (v[1] if len(v) > 1 else None)


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


class Stop(Exception):
    pass


class Probe:
    """Send times and receive times by sequence number; entries older than the repetition being
    watched are dropped now and then (`base` is the sequence number of entry 0)."""

    def __init__(self, a):
        self.a = a
        fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_DGRAM)
        self.s.connect((a.host, a.port))
        self.s.setblocking(False)
        self.period = int(a.interval_ms * 1e6)
        self.lost_after = int(a.lost_after_ms * 1e6)
        self.wait_ns = int(a.wait_ms * 1e6)
        self.base = 0
        self.sent, self.recv = [], []
        self.dups = self.errors = self.replies = 0

    def drain(self):
        while True:
            try:
                data = self.s.recv(256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP errors on a connected socket: the datagram is lost, that is all
            now = time.time_ns()
            if len(data) < HDR.size:
                continue
            i = HDR.unpack_from(data)[0] - self.base
            if 0 <= i < len(self.recv) and self.recv[i] == 0:
                self.recv[i] = now
                self.replies += 1
            else:
                self.dups += 1

    def send(self, now):
        try:
            self.s.send(HDR.pack((self.base + len(self.sent)) & 0xFFFFFFFF, now) + PAD)
        except OSError:
            self.errors += 1  # no route, link down, buffer full: lost like any other
        self.sent.append(now)
        self.recv.append(0)

    def trim(self, keep_from_ns):
        k = 0
        while k < len(self.sent) and self.sent[k] < keep_from_ns:
            k += 1
        if k > 0:
            del self.sent[:k]
            del self.recv[:k]
            self.base += k

    def dump(self, path, start_ns, upto):
        lo = next((i for i in range(len(self.sent)) if self.sent[i] >= start_ns - 1_000_000_000), len(self.sent))
        rows = "".join("%d %d %d\n" % (self.base + i, self.sent[i], self.recv[i]) for i in range(lo, upto))
        write_atomic(path, "# interval_ns %d\n%s# dups %d\n# send_errors %d\n" % (self.period, rows, self.dups, self.errors))


def probe(a):
    p = Probe(a)
    ctl = a.dir

    def on_term(_sig, _frm):
        raise Stop()
    signal.signal(signal.SIGTERM, on_term)

    rep = 1
    fault = None      # (start, end) of the repetition being watched
    scan = run = 0
    run_start = None
    ready = False
    next_check = 0
    t_end = time.time_ns() + int(a.max_seconds * 1e9)
    nxt = time.time_ns()
    try:
        while True:
            now = time.time_ns()
            if now >= nxt:
                p.send(now)
                nxt += p.period
                if nxt <= now:
                    nxt = now + p.period   # descheduled: no burst, the hole shows in the send times
            timeout = (nxt - time.time_ns()) / 1e9
            if timeout > 0:
                r, _, _ = select.select([p.s], [], [], timeout)
                if r:
                    p.drain()
            else:
                p.drain()
            now = time.time_ns()
            if now < next_check:
                continue
            next_check = now + 20_000_000
            if not ready and p.replies >= a.ready_n:
                write_atomic(os.path.join(ctl, "ready"), "")
                ready = True
            if os.path.exists(os.path.join(ctl, "stop")) or now >= t_end:
                break
            if fault is None:
                start, end = read_fault(os.path.join(ctl, "fault.%d" % rep))
                if end is None:
                    if len(p.sent) > 20_000:
                        p.trim(now - 5_000_000_000)
                    continue
                fault = (start, end)
                scan = next((i for i in range(len(p.sent) - 1, -1, -1) if p.sent[i] < end), -1) + 1
                run, run_start = 0, None
            clean = None
            while scan < len(p.sent):
                if p.recv[scan]:
                    if run == 0:
                        run_start = scan
                    run += 1
                    scan += 1
                    if run >= a.clean_n:
                        clean = run_start
                        break
                elif now - p.sent[scan] > p.lost_after:
                    run = 0
                    scan += 1
                else:
                    break
            end = fault[1]
            if clean is not None:
                upto = clean + a.clean_n
            elif (now >= end + p.wait_ns and run == 0) or now >= end + p.wait_ns + a.clean_n * p.period + 500_000_000:
                upto = scan   # everything before `scan` has a known fate
            else:
                continue
            p.dump(os.path.join(ctl, "echo.%d" % rep), fault[0], upto)
            rep += 1
            fault = None
    except Stop:
        pass
    return 0


def analyze(a):
    sent, recv = [], []
    period = 1_000_000
    for line in open(a.log):
        if line.startswith("# interval_ns"):
            period = int(line.split()[2])
        elif not line.startswith("#"):
            _, t, r = line.split()
            sent.append(int(t))
            recv.append(int(r))
    start, end = read_fault(a.fault_file)
    out = {"recovered": False, "sent": len(sent), "answered": sum(1 for r in recv if r)}
    if start is None or end is None or not sent:
        out["error"] = "no fault times or no probes"
        print(json.dumps(out))
        return 0
    ms = lambda ns: round(ns / 1e6, 1)
    out["cmd_ms"] = ms(end - start)
    n = len(sent)
    base_from = start - 200_000_000
    lo = next((i for i in range(n) if sent[i] >= base_from), n)
    pre = [i for i in range(lo, n) if sent[i] < start]
    if not pre or not any(recv[i] for i in pre):
        out["error"] = "no reply in the 200 ms before the fault"
        print(json.dumps(out))
        return 0
    out["lost_before"] = sum(1 for i in pre if not recv[i])
    # The clean run: the first --clean-n sequence numbers in a row, all sent after the fault's
    # end, all answered; it must begin within --wait-ms of that end.
    clean = None
    k = next((i for i in range(n) if sent[i] >= end), n)
    while k + a.clean_n <= n:
        bad = next((j for j in range(k, k + a.clean_n) if not recv[j]), None)
        if bad is None:
            if sent[k] <= end + a.wait_ms * 1_000_000:
                clean = k
            break
        k = bad + 1
    onset = next((i for i in range(n) if sent[i] >= start - 2_000_000 and not recv[i]), None)
    if onset is not None and clean is not None and onset > clean:
        onset = None   # a loss after the clean run began is not this fault's
    last_i = clean if clean is not None else n
    t_hi = recv[clean] if clean is not None else max(recv)
    t_lo = max((r for r in recv[lo:last_i + 1] if r and r < start), default=base_from)
    window = sorted(r for r in recv[lo:last_i + 1] if r and t_lo <= r <= t_hi)
    gaps = [b - a_ for a_, b in zip(window, window[1:])]
    out["gap_ms"] = ms(max(gaps)) if gaps else None
    if gaps:
        g = max(range(len(gaps)), key=lambda x: gaps[x])
        out["gap_from_cmd_ms"] = ms(window[g] - start)
    sends = sent[lo:last_i + 1]
    out["send_gap_ms"] = ms(max((b - a_ for a_, b in zip(sends, sends[1:])), default=0))
    if onset is None:
        out["lost"] = 0
        out["effect_ms"] = None
        out["hole_ms"] = out["gap_ms"]
    else:
        lost = [i for i in range(onset, last_i) if not recv[i]]
        out["lost"] = len(lost)
        out["effect_ms"] = ms(sent[onset] - start)
        out["lossy_ms"] = ms(sent[lost[-1]] - sent[onset]) if lost else 0.0
        out["onset_ns"] = sent[onset]
        # The hole the fault made: from the last reply before the first lost echo was sent to the
        # first reply to an echo sent after the run of lost echoes that begins there.
        j = onset
        while j < n and not recv[j]:
            j += 1
        before = [recv[i] for i in range(lo, onset) if recv[i] and recv[i] <= sent[onset]]
        nxt = [recv[i] for i in range(j, n) if recv[i]]
        if before and nxt:
            out["hole_ms"] = ms(min(nxt) - max(before))
    if clean is not None:
        out["recovered"] = True
        out["clean_ms"] = ms(sent[clean] - sent[onset]) if onset is not None else 0.0
    elif onset is not None:
        # not clean within the wait: the outage lasted at least until the log's end
        out["gap_ms"] = max(out["gap_ms"] or 0, ms(sent[-1] - (window[-1] if window else sent[onset])))
        out["hole_ms"] = max(out.get("hole_ms") or 0, out["gap_ms"])
    print(json.dumps(out))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("serve")
    v.add_argument("host")
    v.add_argument("port", type=int)
    v.add_argument("--ready-file")
    r = sub.add_parser("probe")
    r.add_argument("host")
    r.add_argument("port", type=int)
    r.add_argument("dir")
    r.add_argument("--interval-ms", type=float, default=1.0)
    r.add_argument("--clean-n", type=int, default=1000)
    r.add_argument("--wait-ms", type=float, default=5000)
    r.add_argument("--lost-after-ms", type=float, default=200)
    r.add_argument("--ready-n", type=int, default=300)
    r.add_argument("--max-seconds", type=float, default=3600)
    z = sub.add_parser("analyze")
    z.add_argument("log")
    z.add_argument("fault_file")
    z.add_argument("--wait-ms", type=float, default=5000)
    z.add_argument("--clean-n", type=int, default=1000)
    a = p.parse_args()
    if a.cmd == "probe" and not (0.1 <= a.interval_ms <= 100 and 1 <= a.clean_n <= 100000 and a.max_seconds > 0):
        p.error("--interval-ms wants 0.1..100, --clean-n 1..100000, --max-seconds > 0")
    return {"serve": serve, "probe": probe, "analyze": analyze}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
