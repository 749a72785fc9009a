#!/usr/bin/env python3
"""A 1 ms UDP echo through the tunnel: the failover benchmark's outage probe.

  udpecho.py serve HOST PORT [--ready-file F]
      echo every datagram back to its sender (run it on the gateway's tunnel address)
  udpecho.py probe HOST PORT LOG --fault-file F [--interval-ms 1] [--clean-n 1000]
                   [--wait-ms 5000] [--lost-after-ms 200] [--ready-file F] [--ready-n 300]
      send a sequence-numbered datagram every interval; write LOG at the end
  udpecho.py analyze LOG FAULT_FILE [--wait-ms 5000]
      one JSON line describing the outage around the fault (see below)

The probe never sends a burst to catch up: a process that was not scheduled leaves a hole in its
own send times, and the analysis reports the longest such hole so that a gap the probe made
itself is never taken for an outage of the tunnel.

Fault file (written by the benchmark): line 1 the realtime ns just before the fault command
started, line 2 the realtime ns just after it returned. The probe and the benchmark use the same
clock (CLOCK_REALTIME). The probe writes --ready-file once --ready-n replies came back; it stops
once the fault has ended and --clean-n consecutive sequence numbers sent after that end were all
answered (the tunnel is clean again), or when the fault end is --wait-ms old and no clean run is
in progress (hard stop --clean-n intervals plus 0.5 s later), or on SIGTERM. It then waits
--lost-after-ms for late replies and writes LOG: "# interval_ns N" then "SEQ SENT_NS RECV_NS" per
datagram (RECV_NS 0: never answered) and "# dups N", "# send_errors N".

Analysis (all times from the log, 1 ms resolution at the default interval):
  onset      the first sequence number sent at or after the fault command's start (minus 2 ms:
             one in flight may die) that was never answered: where the fault took effect;
  gap_ms     the longest gap between two consecutive replies (by receive time) from 200 ms before
             the fault command to the first reply of the clean run: the outage an application sees;
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


class Stop(Exception):
    pass


def probe(a):
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.connect((a.host, a.port))
    s.setblocking(False)
    period = int(a.interval_ms * 1e6)
    lost_after = int(a.lost_after_ms * 1e6)
    wait_ns = int(a.wait_ms * 1e6)
    sent, recv = [], []
    dups = errors = replies = 0
    ready_written = False

    def on_term(_sig, _frm):
        raise Stop()
    signal.signal(signal.SIGTERM, on_term)

    fault_end = None
    scan = None      # next sequence number the clean-run scan looks at
    run = 0          # answered in a row from `run_start`
    run_start = None
    clean_seq = None
    next_check = 0
    nxt = time.time_ns()

    def drain():
        nonlocal dups, replies
        while True:
            try:
                data = s.recv(256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP errors on a connected socket: the datagram is lost, that is all
            now = time.time_ns()
            if len(data) < HDR.size:
                continue
            q, _ = HDR.unpack_from(data)
            if q < len(recv) and recv[q] == 0:
                recv[q] = now
                replies += 1
            else:
                dups += 1

    try:
        while True:
            now = time.time_ns()
            if now >= nxt:
                q = len(sent)
                try:
                    s.send(HDR.pack(q, now) + PAD)
                except (BlockingIOError, InterruptedError):
                    errors += 1
                except OSError:
                    errors += 1  # no route, link down: lost like any other
                sent.append(now)
                recv.append(0)
                nxt += period
                if nxt <= now:
                    nxt = now + period   # descheduled: no burst, the hole shows in the send times
            timeout = (nxt - time.time_ns()) / 1e9
            if timeout > 0:
                r, _, _ = select.select([s], [], [], timeout)
                if r:
                    drain()
            else:
                drain()
            now = time.time_ns()
            if now < next_check:
                continue
            next_check = now + 20_000_000
            if not ready_written and a.ready_file and replies >= a.ready_n:
                open(a.ready_file, "w").close()
                ready_written = True
            if clean_seq is not None:
                break
            if fault_end is None:
                _, fault_end = read_fault(a.fault_file)
                if fault_end is None:
                    continue
                scan = next((i for i in range(len(sent) - 1, -1, -1) if sent[i] < fault_end), -1) + 1
            while scan < len(sent):
                if recv[scan]:
                    if run == 0:
                        run_start = scan
                    run += 1
                    scan += 1
                    if run >= a.clean_n:
                        clean_seq = run_start
                        break
                elif now - sent[scan] > lost_after:
                    run = 0
                    scan += 1
                else:
                    break
            if clean_seq is not None:
                continue
            if now >= fault_end + wait_ns and run == 0:
                break
            if now >= fault_end + wait_ns + a.clean_n * period + 500_000_000:
                break
    except Stop:
        pass
    end = time.time_ns() + lost_after
    try:
        while time.time_ns() < end:
            r, _, _ = select.select([s], [], [], max(0, end - time.time_ns()) / 1e9)
            if r:
                drain()
    except Stop:
        pass
    with open(a.log, "w") as f:
        f.write("# interval_ns %d\n" % period)
        f.write("".join("%d %d %d\n" % (i, sent[i], recv[i]) for i in range(len(sent))))
        f.write("# dups %d\n# send_errors %d\n" % (dups, errors))
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
    window = sorted(r for r in recv[lo:last_i + 1] if r and base_from <= r <= t_hi)
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
    else:
        lost = [i for i in range(onset, last_i) if not recv[i]]
        out["lost"] = len(lost)
        out["effect_ms"] = ms(sent[onset] - start)
        out["lossy_ms"] = ms(sent[lost[-1]] - sent[onset])
        out["onset_ns"] = sent[onset]
    if clean is not None:
        out["recovered"] = True
        out["clean_ms"] = ms(sent[clean] - sent[onset]) if onset is not None else 0.0
    elif onset is not None:
        # not clean within the wait: the outage lasted at least until the log's end
        out["gap_ms"] = max(out["gap_ms"] or 0, ms(sent[-1] - (window[-1] if window else sent[onset])))
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
    r.add_argument("log")
    r.add_argument("--fault-file", required=True)
    r.add_argument("--interval-ms", type=float, default=1.0)
    r.add_argument("--clean-n", type=int, default=1000)
    r.add_argument("--wait-ms", type=float, default=5000)
    r.add_argument("--lost-after-ms", type=float, default=200)
    r.add_argument("--ready-file")
    r.add_argument("--ready-n", type=int, default=300)
    z = sub.add_parser("analyze")
    z.add_argument("log")
    z.add_argument("fault_file")
    z.add_argument("--wait-ms", type=float, default=5000)
    z.add_argument("--clean-n", type=int, default=1000)
    a = p.parse_args()
    if a.cmd == "probe" and not (0.1 <= a.interval_ms <= 100 and 1 <= a.clean_n <= 100000):
        p.error("--interval-ms wants 0.1..100, --clean-n 1..100000")
    return {"serve": serve, "probe": probe, "analyze": analyze}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
