#!/usr/bin/env bash
# Path MTU benchmark (issue "Every path has its own MTU"), on the router rig: up0 carries 1500-byte
# packets, up1 at most 1280 (flap.sh mtu: the router drops larger ones, no ICMP).
#
# usage: deploy/bench/pmtu.sh [--reps N] [--seconds S] [--runs R] [--blackhole]
#   1. TCP throughput through the tunnel on the 1500-byte path and on the 1280-byte one, same run:
#      iperf3, 1 stream, client -> gateway and gateway -> client (-R), S seconds (default 5) each,
#      R runs (default 3) alternating between the paths, median; ratio 1280 / 1500.
#   2. Time from the switch to full throughput on the smaller path, N reps (default 20): an unpaced
#      TCP stream client -> gateway, up0 link-down 2 s in; the receiver counts bytes per 10 ms.
#      "full" = the start of the first 100-ms window (10-ms steps) from the client's TRANSPORT_SWITCH
#      on whose average rate is at least 90 % of the median 100-ms rate 1-3 s after it (0 ms: the
#      stream never dipped); also the longest gap without data after the switch. Median and worst. With --blackhole, up1 is first measured at 1500 and
#      limited to 1280 only then: the client finds it after the switch (a black hole).
# Between runs both hosts forget the path MTU the ICMP errors taught them (ip route flush cache),
# so every stream starts with full-size segments. UDP GSO is off on both uplinks' veths and the
# gateway's (flap.sh mtu needs that for a `meta length` limit; up0 the same, for a fair comparison).
#
# env: JVPN_BIN (default .build/release/jvpn)
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${JVPN_BIN:=$(cd "$BENCH_DIR/../.." && pwd)/.build/release/jvpn}"
export JVPN_BIN
REPS=20 SECS=5 RUNS=3 BLACKHOLE=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        --seconds) SECS="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --blackhole) BLACKHOLE=1; shift ;;
        -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$REPS" =~ ^[0-9]+$ && "$SECS" =~ ^[0-9]+$ && "$RUNS" =~ ^[0-9]+$ ]] || { echo "numbers wanted" >&2; exit 2; }
# shellcheck source=../../Tests/integration/lib.bash
. "$BENCH_DIR/../../Tests/integration/lib.bash"

log() { printf '[pmtu %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
forget_pmtu() { rig_exec "$RIG_CLIENT" ip route flush cache; rig_exec "$RIG_GW" ip route flush cache; }

BEFORE_CLIENT_UP="flap mtu up1 1280; ip netns exec \$RIG_CLIENT ethtool -K up0 tx-udp-segmentation off" router_setup
rig_wait_for '[[ $(path_mtu up0) == 1500 && $(path_mtu up1) == 1280 ]]' 10 0.1 || fail "path MTUs up0 $(path_mtu up0) up1 $(path_mtu up1)"
rig_exec "$RIG_GW" iperf3 -s -p 5201 >/dev/null 2>&1 &
rig_wait_for "rig_output_has . rig_exec '$RIG_GW' ss -Htln 'sport = :5201'" 10 || fail "iperf3 server"

# iperf_gbps [-R] : one run, Gb/s received
iperf_gbps() {
    rig_exec "$RIG_CLIENT" timeout $(( SECS + 20 )) iperf3 -c 10.77.0.1 -p 5201 -t "$SECS" "$@" -J 2>/dev/null |
        python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))' ||
        echo nan
}
median() { printf '%s\n' "$@" | grep -v nan | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
to_up0() { flap link-up up0; wait_active up0 10 || fail "no return to up0"; }
to_up1() { flap link-down up0; wait_active up1 5 || fail "no switch to up1"; }

log "1. throughput, 1500-byte path vs 1280-byte path, ${SECS} s x $RUNS runs each direction"
declare -a up15 up12 dn15 dn12
for (( r = 1; r <= RUNS; r++ )); do
    forget_pmtu; up15+=("$(iperf_gbps)"); forget_pmtu; dn15+=("$(iperf_gbps -R)")
    to_up1
    forget_pmtu; up12+=("$(iperf_gbps)"); forget_pmtu; dn12+=("$(iperf_gbps -R)")
    to_up0
    log "   run $r: up ${up15[-1]} / ${up12[-1]} Gb/s, down ${dn15[-1]} / ${dn12[-1]} Gb/s (1500 / 1280)"
done
U15=$(median "${up15[@]}") U12=$(median "${up12[@]}") D15=$(median "${dn15[@]}") D12=$(median "${dn12[@]}")

log "2. switch to the smaller path under an unpaced stream, $REPS reps$([[ $BLACKHOLE == 1 ]] && echo ', black hole found after the switch')"
results=()
for (( i = 1; i <= REPS; i++ )); do
    if [[ $BLACKHOLE == 1 ]]; then
        flap mtu-clear up1; flap link-down up1; flap link-up up1
        rig_wait_for '[[ $(path_mtu up1) == 1500 ]]' 10 0.1 || fail "up1 not measured at 1500"
        flap mtu up1 1280
    fi
    forget_pmtu
    mark=$(wc -l <"$CL_EVENTS")
    rm -f "$RIG_DIR/rb.ready"
    rig_exec "$RIG_GW" python3 "$BENCH_DIR/ratebins.py" serve 10.77.0.1 9100 --ready-file "$RIG_DIR/rb.ready" >"$RIG_DIR/rb.json" &
    rpid=$!
    rig_wait_for "[[ -f '$RIG_DIR/rb.ready' ]]" 10 || fail "receiver"
    rig_exec "$RIG_CLIENT" python3 "$BENCH_DIR/ratebins.py" send 10.77.0.1 9100 6 &
    spid=$!
    sleep 2
    flap link-down up0
    wait "$spid" || fail "sender failed"
    wait "$rpid" || fail "receiver failed"
    res=$(python3 - "$RIG_DIR/rb.json" "$CL_EVENTS" "$mark" <<'PY'
import datetime, json, statistics, sys
d = json.load(open(sys.argv[1])); step = d["bin_ms"]; bins = dict(d["bins"])
ev = [json.loads(l) for l in open(sys.argv[2]).read().splitlines()[int(sys.argv[3]):]]
sw = [e for e in ev if e["event"] == "TRANSPORT_SWITCH" and e["to_path"].startswith("up1/")][0]
t0 = int(datetime.datetime.fromisoformat(sw["ts"].replace("Z", "+00:00")).timestamp() * 1000)
def rate(a, b):   # bytes per ms over [a, b)
    return sum(bins.get(t, 0) for t in range(a - a % step, b, step)) / (b - a)
windows = [rate(t, t + 100) for t in range(t0 + 1000, t0 + 3000, 100)]
full = statistics.median(windows)
ready = next((max(0, t - t0) for t in range(t0 - t0 % step, t0 + 3000, step) if rate(t, t + 100) >= 0.9 * full), -1)
gap, last = 0, t0
for t in range(t0 - t0 % step, t0 + 3000, step):
    if bins.get(t, 0) > 0:
        gap = max(gap, t - last); last = t + step
print(ready, gap, round(full * 8 / 1e6, 3), round(rate(t0 - 1500, t0 - 100) * 8 / 1e6, 3))
PY
)
    read -r ready gap full before <<<"$res"
    results+=("$res")
    log "   rep $i: full throughput ${ready} ms after the switch (longest gap ${gap} ms); ${full} Gb/s on 1280, ${before} Gb/s before"
    to_up0
done

python3 - "$U15" "$U12" "$D15" "$D12" "$BLACKHOLE" "${results[@]}" <<'PY'
import statistics, sys
u15, u12, d15, d12 = (float(x) for x in sys.argv[1:5]); bh = sys.argv[5] == "1"
reps = [list(map(float, r.split())) for r in sys.argv[6:]]
ready = [r[0] for r in reps]; gap = [r[1] for r in reps]; full = [r[2] for r in reps]; before = [r[3] for r in reps]
print("TCP 1 stream through the tunnel   1500-byte path   1280-byte path   ratio")
print("  client -> gateway Gb/s          %14.3f   %14.3f   %5.2f" % (u15, u12, u12 / u15))
print("  gateway -> client Gb/s          %14.3f   %14.3f   %5.2f" % (d15, d12, d12 / d15))
print("switch to the 1280-byte path%s, %d reps:" % (" (black hole found after it)" if bh else " (size known before)", len(reps)))
print("  full throughput after the switch: median %.0f ms, worst %.0f ms" % (statistics.median(ready), max(ready)))
print("  longest gap without data:         median %.0f ms, worst %.0f ms" % (statistics.median(gap), max(gap)))
print("  rate before / after: median %.3f / %.3f Gb/s" % (statistics.median(before), statistics.median(full)))
PY
