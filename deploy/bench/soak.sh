#!/usr/bin/env bash
# Soak benchmark: does a jvpn daemon grow over a long run under load and uplink flaps?
#
# usage: deploy/bench/soak.sh [--minutes N] [--flap-every S] [--interval S]
#
# Router rig (client with up0 and up1 -> router -> gateway). One iperf3 TCP stream runs through
# the tunnel for the whole run; every --flap-every seconds (default 30) the active uplink's link
# goes down for 3 s and comes back, so the session switches paths, probes, emits events and
# rebinds all along. Every --interval seconds (default 10) it samples, for both daemons: VmRSS,
# RssAnon, open fds and threads.
#
# Prints one line per minute and a summary: RSS after warm-up (the first minute) vs the last
# minute, the peak, the least-squares slope over the samples after warm-up (KB per minute),
# fd/thread counts at start and end, switches seen, and whether the stream survived.
#
# env: JVPN_BIN (default $REPO/.build/release/jvpn)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../netns/rig.sh
. "$BENCH_DIR/../netns/rig.sh"
FLAP="$BENCH_DIR/../netns/flap.sh"

MINUTES=10
FLAP_EVERY=30
INTERVAL=10
while [[ $# -gt 0 ]]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift 2 ;;
        --flap-every) FLAP_EVERY="$2"; shift 2 ;;
        --interval) INTERVAL="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$MINUTES" =~ ^[0-9]+$ && "$MINUTES" -ge 2 && "$MINUTES" -le 240 ]] || { echo "--minutes wants 2..240" >&2; exit 2; }
[[ "$FLAP_EVERY" =~ ^[0-9]+$ && ( "$FLAP_EVERY" -eq 0 || "$FLAP_EVERY" -ge 5 ) ]] ||
    { echo "--flap-every wants 0 (no flaps) or >= 5 seconds" >&2; exit 2; }
[[ "$INTERVAL" =~ ^[0-9]+$ && "$INTERVAL" -ge 1 && "$INTERVAL" -le 60 ]] || { echo "--interval wants 1..60" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "soak.sh needs root (network namespaces)" >&2; exit 1; }
for tool in iperf3 python3 ip; do
    command -v "$tool" >/dev/null || { echo "missing $tool (deploy/install-deps.sh)" >&2; exit 1; }
done

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

rig_init
rig_create_router
rig_jvpn_ensure_built

JV_G="${RIG_ID}g" JV_C="${RIG_ID}c"
jvpn_stop() {
    timeout 10 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" down "$JV_C" >/dev/null 2>&1 || true
    timeout 10 ip netns exec "$RIG_GW" "$JVPN_BIN" down "$JV_G" >/dev/null 2>&1 || true
}
rig_on_cleanup jvpn_stop
d="$RIG_DIR/jvpn"; mkdir -p "$d"; chmod 700 "$d"
rig_jvpn_keypair gw && rig_jvpn_keypair client
rig_jvpn_pair_configs "$d" "$JV_G" "$JV_C" 51820 "up0, up1" "ProbeIntervalMs = 50
DeadAfterMs = 300"
timeout 30 ip netns exec "$RIG_GW" "$JVPN_BIN" up "$d/$JV_G.conf" >&2
timeout 30 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" up "$d/$JV_C.conf" >&2
GW_PID="$(rig_pids_by_comm "$RIG_GW" '^jvpn$')"
CL_PID="$(rig_pids_by_comm "$RIG_CLIENT" '^jvpn$')"
[[ -n "$GW_PID" && -n "$CL_PID" ]] || { log "jvpn daemons not found"; exit 1; }

# active_uplink: up0/up1 from the client's status
active_uplink() {
    ip netns exec "$RIG_CLIENT" "$JVPN_BIN" status "$JV_C" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["sessions"][0]["active_path"].split("/")[0])' 2>/dev/null || true
}

# sample PID -> "rss_kb anon_kb fds threads"
sample() {
    local p="$1" rss anon thr fds
    rss="$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)"
    anon="$(awk '$1 == "RssAnon:" { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)"
    thr="$(awk '$1 == "Threads:" { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)"
    fds="$(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
    echo "${rss:-0} ${anon:-0} $fds ${thr:-0}"
}

TOTAL=$(( MINUTES * 60 ))
ip netns exec "$RIG_GW" iperf3 -s -p 5201 >/dev/null 2>&1 &
rig_wait_for "rig_output_has . ip netns exec '$RIG_GW' ss -Htln 'sport = :5201'" 10 || { log "iperf3 server did not start"; exit 1; }
log "jvpn $JV_C -> $JV_G: ${MINUTES} min, one TCP stream, flap every ${FLAP_EVERY}s, sample every ${INTERVAL}s"
timeout $(( TOTAL + 60 )) ip netns exec "$RIG_CLIENT" iperf3 -c 10.77.0.1 -p 5201 -t "$TOTAL" -J >"$RIG_DIR/iperf.json" 2>&1 &
IPERF=$!

samples="$RIG_DIR/samples"   # t cl_rss cl_anon cl_fds cl_thr gw_rss gw_anon gw_fds gw_thr
: >"$samples"
start=$(date +%s)
next_flap=$FLAP_EVERY
flaps=0
printed=0
printf '%6s %10s %10s %10s %10s %6s %6s\n' "min" "client KB" "anon KB" "gw KB" "anon KB" "fds" "thr" >&2
while :; do
    t=$(( $(date +%s) - start ))
    (( t > TOTAL )) && break
    kill -0 "$IPERF" 2>/dev/null || { log "iperf3 ended early at ${t}s"; break; }
    echo "$t $(sample "$CL_PID") $(sample "$GW_PID")" >>"$samples"
    if (( t / 60 > printed )); then
        printed=$(( t / 60 ))
        read -r _ cr ca cf ct gr ga _ _ < <(tail -n1 "$samples")
        printf '%6d %10s %10s %10s %10s %6s %6s\n' "$(( t / 60 ))" "$cr" "$ca" "$gr" "$ga" "$cf" "$ct" >&2
    fi
    if (( FLAP_EVERY > 0 && t >= next_flap && t + 10 < TOTAL )); then
        up="$(active_uplink)"; [[ "$up" == up0 || "$up" == up1 ]] || up=up0
        "$FLAP" link-down "$up" >/dev/null 2>&1 || log "flap link-down $up failed"
        sleep 3
        "$FLAP" link-up "$up" >/dev/null 2>&1 || log "flap link-up $up failed"
        flaps=$(( flaps + 1 ))
        next_flap=$(( next_flap + FLAP_EVERY ))
        continue
    fi
    sleep "$INTERVAL"
done
iperf_rc=0
wait "$IPERF" || iperf_rc=$?
final_cl="$(sample "$CL_PID")"; final_gw="$(sample "$GW_PID")"
kill -0 "$CL_PID" 2>/dev/null && kill -0 "$GW_PID" 2>/dev/null && alive=yes || alive=NO

switches="$(grep -c '"TRANSPORT_SWITCH"' "$d/$JV_C.events.jsonl" 2>/dev/null || true)"
stream="$(python3 - "$RIG_DIR/iperf.json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    if "error" in d:
        print("failed: " + d["error"]); sys.exit(0)
    s = d["end"]["sum_received"]
    print("%.2f Gbit/s average, %.1f GB over %.0f s" % (s["bits_per_second"] / 1e9, s["bytes"] / 1e9, s["seconds"]))
except Exception as e:
    print("no result (%s)" % e)
EOF
)"

summary="$(python3 - "$samples" <<'EOF'
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
def report(name, col):
    warm = [r for r in rows if r[0] >= 60]
    if len(warm) < 3:
        return "%s: too few samples" % name
    first = max(r[col] for r in rows if 60 <= r[0] < 120) if any(60 <= r[0] < 120 for r in rows) else warm[0][col]
    end_t = rows[-1][0]
    last = max(r[col] for r in rows if r[0] >= end_t - 60)
    peak = max(r[col] for r in rows)
    n = len(warm); mx = sum(r[0] for r in warm) / n; my = sum(r[col] for r in warm) / n
    sxx = sum((r[0] - mx) ** 2 for r in warm)
    slope = sum((r[0] - mx) * (r[col] - my) for r in warm) / sxx * 60 if sxx else 0.0
    return ("%-7s RSS minute 2: %.1f MB, last minute: %.1f MB, growth %+d KB, peak %.1f MB, slope %+.1f KB/min"
            % (name, first / 1024, last / 1024, last - first, peak / 1024, slope))
print(report("client", 1))
print(report("gateway", 5))
EOF
)"

echo
echo "jvpn soak benchmark"
echo "  date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  commit:  $(git -C "$RIG_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "  binary:  $JVPN_BIN"
echo "  run:     ${MINUTES} min, 1 TCP stream, $flaps link flaps of the active uplink, samples every ${INTERVAL}s"
echo
echo "$summary"
read -r _ _ _ f0c t0c _ _ f0g t0g < <(head -n1 "$samples")
read -r _ _ f1c t1c <<<"$final_cl"; read -r _ _ f1g t1g <<<"$final_gw"
echo "fds     client $f0c -> $f1c, gateway $f0g -> $f1g; threads client $t0c -> $t1c, gateway $t0g -> $t1g"
echo "stream  $stream (iperf3 exit $iperf_rc); TRANSPORT_SWITCH events: $switches; daemons alive: $alive"
[[ "$alive" == yes && "$iperf_rc" -eq 0 ]]
