#!/usr/bin/env bash
# Where the CPU of one TCP stream goes, per GB: the basic rig, one jvpn tunnel, one iperf3 stream
# (client -> gateway); while it runs, `perf record` samples the whole machine and /proc gives each
# daemon thread's user and system time over the same window.
#
# usage: deploy/bench/profile.sh [--seconds N] [--out DIR]
#   --seconds N  length of the sampled window (default 12; the stream runs N + 6 s)
#   --out DIR    keep perf.data and the reports there (default: a temporary directory, removed)
# env: JVPN_BIN (default $REPO/.build/release/jvpn). Needs root, perf (linux-perf) and iperf3.
# Prints: Gbit/s and the gateway's TUN writes (bytes per write); CPU s/GB per daemon thread (user + system) and in all; the daemons' samples by
# user/kernel and by shared object, and their top symbols. Timer samples (cpu-clock): this VM has no
# hardware counters. Not CI.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../netns/rig.sh
. "$BENCH_DIR/../netns/rig.sh"

WINDOW=12
OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) WINDOW="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "usage: $0 [--seconds N] [--out DIR]" >&2; exit 2 ;;
    esac
done
[[ "$WINDOW" =~ ^[0-9]+$ && "$WINDOW" -ge 2 && "$WINDOW" -le 120 ]] || { echo "--seconds wants 2..120" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "profile.sh needs root (network namespaces, perf)" >&2; exit 1; }
for tool in perf iperf3 python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install linux-perf iperf3)" >&2; exit 1; }
done

rig_init
rig_create_basic
rig_jvpn_ensure_built
KEEP="$OUT"
[[ -n "$OUT" ]] || OUT="$RIG_DIR/profile"
mkdir -p "$OUT"
d="$RIG_DIR/jvpn"; mkdir -p "$d"; chmod 700 "$d"
G="${RIG_ID}g" C="${RIG_ID}c"
stop() {
    timeout 10 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" down "$C" >/dev/null 2>&1 || true
    timeout 10 ip netns exec "$RIG_GW" "$JVPN_BIN" down "$G" >/dev/null 2>&1 || true
}
rig_on_cleanup stop
rig_jvpn_keypair gw && rig_jvpn_keypair client
rig_jvpn_pair_configs "$d" "$G" "$C" 51821 up0
timeout 30 ip netns exec "$RIG_GW" "$JVPN_BIN" up "$d/$G.conf" >/dev/null
timeout 30 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" up "$d/$C.conf" >/dev/null
rig_wait_for "ip netns exec '$RIG_CLIENT' ping -c1 -W1 10.77.0.1" 15 || { echo "tunnel does not pass ping" >&2; exit 1; }
gw_pid="$(rig_pids_by_comm "$RIG_GW" '^jvpn' | head -n1)"
cl_pid="$(rig_pids_by_comm "$RIG_CLIENT" '^jvpn' | head -n1)"

ip netns exec "$RIG_GW" iperf3 -s -p 5201 >/dev/null 2>&1 &
rig_wait_for "rig_output_has . ip netns exec '$RIG_GW' ss -Htln 'sport = :5201'" 10 || { echo "iperf3 server did not start" >&2; exit 1; }

# Every thread's utime and stime (clock ticks), as "side/name utime stime" lines.
threads() {
    local side pid t
    for side in client gateway; do
        pid=$([[ $side == client ]] && echo "$cl_pid" || echo "$gw_pid")
        for t in /proc/"$pid"/task/*; do
            python3 - "$side" "$t" <<'EOF' || true
import sys
side, t = sys.argv[1], sys.argv[2]
s = open(t + "/stat").read()
name = s[s.index("(") + 1:s.rindex(")")]
f = s[s.rindex(")") + 2:].split()
print(f"{side}/{name} {f[11]} {f[12]}")
EOF
        done
    done
}

rx_bytes() { rig_exec "$RIG_GW" cat "/sys/class/net/$G/statistics/rx_bytes"; }
# The gateway's TUN counts one packet per write (a merged super-packet is one).
tun_writes() { rig_exec "$RIG_GW" cat "/sys/class/net/$G/statistics/rx_packets"; }

ip netns exec "$RIG_CLIENT" iperf3 -c 10.77.0.1 -p 5201 -t $(( WINDOW + 6 )) -P 1 >/dev/null 2>&1 &
iperf=$!
sleep 3
threads >"$OUT/threads.0"; b0=$(rx_bytes); w0=$(tun_writes)
perf record -a -g -F 999 -o "$OUT/perf.data" -- sleep "$WINDOW" >/dev/null 2>&1
threads >"$OUT/threads.1"; b1=$(rx_bytes); w1=$(tun_writes)
wait "$iperf" || true

perf report -i "$OUT/perf.data" --no-children --sort comm,dso --stdio -g none --percent-limit 0.3 >"$OUT/by-dso.txt" 2>/dev/null
perf report -i "$OUT/perf.data" --no-children --sort comm,sym --stdio -g none --percent-limit 0.5 >"$OUT/by-sym.txt" 2>/dev/null

echo "jvpn profile: one TCP stream, ${WINDOW} s window, $(date -u +%FT%TZ), $JVPN_BIN"
echo "  kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  gateway TUN writes: $(( w1 - w0 )), $(( (b1 - b0) / (w1 - w0 > 0 ? w1 - w0 : 1) )) bytes each on average"
python3 - "$OUT/threads.0" "$OUT/threads.1" "$b0" "$b1" "$WINDOW" "$(getconf CLK_TCK)" "$OUT/by-dso.txt" "$OUT/by-sym.txt" <<'EOF'
import sys, re, collections
t0, t1, b0, b1, window, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
def load(p):
    d = {}
    for line in open(p):
        k, u, s = line.rsplit(None, 2)
        d[k] = (d.get(k, (0, 0))[0] + int(u), d.get(k, (0, 0))[1] + int(s))
    return d
a, b = load(t0), load(t1)
gb = (b1 - b0) / 1e9
print(f"  stream: {(b1 - b0) * 8 / window / 1e9:.2f} Gbit/s into the gateway's TUN ({gb:.2f} GB in the window)")
print("  CPU s/GB by thread (user + system):")
tot_u = tot_s = 0.0
for k in sorted(b):
    u = (b[k][0] - a.get(k, (0, 0))[0]) / hz
    s = (b[k][1] - a.get(k, (0, 0))[1]) / hz
    if u + s < 0.01:
        continue
    tot_u += u; tot_s += s
    print(f"    {k:28s} {(u + s) / gb:6.3f}  ({u / gb:.3f} + {s / gb:.3f})")
print(f"    {'both daemons':28s} {(tot_u + tot_s) / gb:6.3f}  ({tot_u / gb:.3f} + {tot_s / gb:.3f})")
# Samples of the daemons' threads (comm jvpn*), by shared object.
rows = collections.Counter()
for line in open(sys.argv[7]):
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(\S+)", line)
    if m and m.group(2).startswith("jvpn"):
        rows[m.group(3)] += float(m.group(1))
total = sum(rows.values())
if total > 0:
    print(f"  the daemons' samples by object ({total:.1f} % of all samples; shares of theirs, and s/GB):")
    for dso, pct in rows.most_common(12):
        share = pct / total
        print(f"    {dso:28s} {share * 100:5.1f} %  {share * (tot_u + tot_s) / gb:.3f}")
syms = []
for line in open(sys.argv[8]):
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if m and m.group(2).startswith("jvpn"):
        syms.append((float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()[:70]))
if syms and total > 0:
    print("  top symbols of the daemons' threads (share of their samples; [k] kernel, [.] user):")
    for pct, comm, kind, sym in sorted(syms, reverse=True)[:15]:
        print(f"    {pct / total * 100:5.1f} %  {comm:12s} [{kind}] {sym}")
EOF
[[ -z "$KEEP" ]] || echo "  reports: $OUT/by-dso.txt, $OUT/by-sym.txt, $OUT/perf.data"
