#!/usr/bin/env bash
# Gateway-failure benchmark for a jvpn cluster (deploy/cluster/rig.sh: three etcd members, gw-a and
# gw-b on one LAN with a service host, a client with two uplinks and both gateways as Endpoint).
#
# usage: deploy/bench/cluster_failover.sh [--reps N] [--throughput]
#   Per repetition: a 1 ms UDP echo probe from the service host to the client through the tunnel
#   (deploy/netns/udpecho.py), kill -9 of the gateway that owns the session once the probe
#   runs, the longest gap the probe saw = the outage; the killed gateway is restarted and the next
#   repetition kills the other one. Prints each outage, then median and worst, the store latency
#   the gateways measured (their claims), and with --throughput iperf3 from the service host to the
#   client through a gateway with and without [Cluster], same run.
# env: JVPN_BIN (default $REPO/.build/release/jvpn), CLUSTER_DEAD_AFTER_MS (default 1000)
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/../.." && pwd)"
: "${JVPN_BIN:=$REPO/.build/release/jvpn}"
export JVPN_BIN
REPS=20
THROUGHPUT=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        --throughput) THROUGHPUT=1; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
DEAD="${CLUSTER_DEAD_AFTER_MS:-1000}"
. "$REPO/Tests/integration/lib.bash"
. "$REPO/deploy/cluster/etcd.sh"
. "$REPO/deploy/cluster/rig.sh"
rig_init
cluster_rig_create
cluster_etcd_start
cluster_write_configs "DeadAfterMs = $DEAD" 3
cluster_gw_up a
rig_wait_for "rig_output_has '\"etcd\": *\"ok\"' rig_exec $CR_GWA $JVPN_BIN status $(tun_name ga) --json" 10
cluster_gw_up b
rig_exec "$CR_CLIENT" "$JVPN_BIN" up "$RIG_DIR/client.conf" --wait 15
rig_exec "$CR_CLIENT" python3 "$REPO/deploy/netns/udpecho.py" serve 10.77.0.2 7007 &
sleep 1
owner() {
    local n
    for n in a b; do
        [[ "$(status_field "$(cluster_gw_ns $n)" "$(tun_name "g$n")" "s['cluster']['owned_sessions']" 2>/dev/null)" == 1 ]] && { echo "$n"; return; }
    done
}
outages=()
echo "uptime: $(uptime)"
for (( rep = 1; rep <= REPS; rep++ )); do
    rig_wait_for '[[ -n "$(owner)" ]]' 30 0.1 || { echo "rep $rep: no gateway owns the session after 30 s" >&2; exit 1; }
    victim="$(owner)"
    rm -f "$RIG_DIR/mark"
    rig_exec "$CR_SVC" python3 "$REPO/deploy/netns/udpecho.py" probe 10.77.0.2 7007 $(( DEAD / 1000 + 4 )) \
        --mark-file "$RIG_DIR/mark" >"$RIG_DIR/probe.json" &
    probe=$!
    rig_wait_for "[[ -f $RIG_DIR/mark ]]" 5 0.01
    sleep 0.5
    cluster_gw_kill "$victim"
    wait "$probe" || true
    ms="$(python3 -c "import json;print(json.load(open('$RIG_DIR/probe.json'))['outage_ms'])")"
    outages+=("$ms")
    echo "rep $rep: killed gw-$victim, outage $ms ms ($(cat "$RIG_DIR/probe.json"))"
    cluster_gw_up "$victim" || { echo "rep $rep: gw-$victim did not come back up" >&2; exit 1; }
    # The restarted node must hold its lease again before the next kill (it is the next owner).
    rig_wait_for "rig_output_has '\"serving\": *true' rig_exec $(cluster_gw_ns "$victim") $JVPN_BIN status $(tun_name "g$victim") --json" 30 0.1 \
        || { echo "rep $rep: gw-$victim holds no lease 30 s after its restart" >&2; exit 1; }
done
python3 - "$DEAD" "${outages[@]}" <<'PY'
import statistics, sys
dead = int(sys.argv[1]); v = sorted(float(x) for x in sys.argv[2:])
print("gateway failure outage over %d kills: median %.1f ms, worst %.1f ms (DeadAfterMs %d; target median <= %d ms)"
      % (len(v), statistics.median(v), v[-1], dead, dead + 100))
PY
for n in a b; do
    echo "gw-$n store latency: $(status_field "$(cluster_gw_ns $n)" "$(tun_name "g$n")" "s['cluster']['store_latency_ms'], s['cluster']['store_requests'], 'requests'")"
done
if (( THROUGHPUT )); then
    owner_now="$(owner)"
    rig_exec "$CR_CLIENT" iperf3 -s -1 -D -B 10.77.0.2 >/dev/null
    sleep 0.5
    echo "iperf3 service host -> client through gw-$owner_now with [Cluster]: $(rig_exec "$CR_SVC" iperf3 -c 10.77.0.2 -t 5 -J | python3 -c 'import json,sys;print("%.0f Mbit/s" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))')"
    echo "gw-$owner_now RSS with [Cluster]: $(grep VmRSS "/proc/$(cluster_gw_pid "$owner_now")/status" | awk '{print $2}') kB, threads $(ls "/proc/$(cluster_gw_pid "$owner_now")/task" | wc -l)"
    # The same gateway without [Cluster]: the service host routes to it by hand instead of by proxy ARP.
    for n in a b; do cluster_gw_kill "$n" || true; sed -i '/^\[Cluster\]/,$d' "$RIG_DIR/gw-$n.conf"; done
    rig_exec "$CR_CLIENT" "$JVPN_BIN" down "$CL" >/dev/null
    cluster_gw_up a
    ip -n "$CR_SVC" route replace 10.77.0.0/24 via 10.50.0.1
    rig_exec "$CR_CLIENT" "$JVPN_BIN" up "$RIG_DIR/client.conf" --wait 15
    rig_exec "$CR_CLIENT" iperf3 -s -1 -D -B 10.77.0.2 >/dev/null
    sleep 0.5
    echo "iperf3 service host -> client through gw-a without [Cluster]: $(rig_exec "$CR_SVC" iperf3 -c 10.77.0.2 -t 5 -J | python3 -c 'import json,sys;print("%.0f Mbit/s" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))')"
    echo "gw-a RSS without [Cluster]: $(grep VmRSS "/proc/$(cluster_gw_pid a)/status" | awk '{print $2}') kB, threads $(ls "/proc/$(cluster_gw_pid a)/task" | wc -l)"
fi
