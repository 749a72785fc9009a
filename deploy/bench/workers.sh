#!/usr/bin/env bash
# Gateway packet workers: two real clients (one worker each) send one iperf3 TCP stream each to
# the gateway at the same time, with the gateway's `Workers` at each count given, interleaved.
#
# usage: deploy/bench/workers.sh [--workers "1 2"] [--seconds N] [--runs N]
#
# Rig: deploy/netns/rig.sh two-clients (two client namespaces on a bridge in the gateway's).
# Each client's datagrams reach one of the gateway's SO_REUSEPORT sockets, picked by the kernel
# from its address and port; with more than one worker the script brings client 2 down and up
# again (a new source port) until the two clients reach different workers (at most 10 tries) and
# says whether they did. Prints per run: the gateway's worker count, the two streams' sum
# (receiver Gbit/s), the gateway daemon's CPU seconds per GB (utime+stime over the window), and
# how many datagrams each gateway worker took.
# env: JVPN_BIN (default $REPO/.build/release/jvpn)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../netns/rig.sh
. "$BENCH_DIR/../netns/rig.sh"

COUNTS="1 2"
SECONDS_PER=8
RUNS=2
while [[ $# -gt 0 ]]; do
    case "$1" in
        --workers) COUNTS="$2"; shift 2 ;;
        --seconds) SECONDS_PER="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$SECONDS_PER" =~ ^[0-9]+$ && "$SECONDS_PER" -ge 1 ]] || { echo "--seconds wants a positive integer" >&2; exit 2; }
[[ "$RUNS" =~ ^[0-9]+$ && "$RUNS" -ge 1 && "$RUNS" -le 20 ]] || { echo "--runs wants 1..20" >&2; exit 2; }
for w in $COUNTS; do [[ "$w" =~ ^[0-9]+$ && "$w" -ge 1 && "$w" -le 64 ]] || { echo "--workers: '$w' is not 1..64" >&2; exit 2; }; done
[[ $EUID -eq 0 ]] || { echo "workers.sh needs root (network namespaces)" >&2; exit 1; }
for tool in iperf3 python3 ip; do
    command -v "$tool" >/dev/null || { echo "missing $tool (deploy/install-deps.sh)" >&2; exit 1; }
done
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
CLK_TCK="$(getconf CLK_TCK)"

rig_init
rig_create_two_clients
rig_jvpn_ensure_built || { echo "no jvpn binary" >&2; exit 1; }
for k in gw c1 c2; do rig_jvpn_keypair "$k"; done
D="$RIG_DIR/workers"; mkdir -p "$D"; chmod 700 "$D"
G="${RIG_ID}g" C1="${RIG_ID}a" C2="${RIG_ID}b"

write_configs() {   # gateway worker count
    local old; old="$(umask)"; umask 077
    cat >"$D/gw.conf" <<CONF
[Interface]
Name = $G
PrivateKey = $(cat "$RIG_DIR/gw.key")
Address = 10.77.0.1/24
ListenPort = 51821
Workers = $1
EventLog = $D/gw.events.jsonl

[Peer]
PublicKey = $(cat "$RIG_DIR/c1.pub")
AllowedIPs = 10.77.0.2/32

[Peer]
PublicKey = $(cat "$RIG_DIR/c2.pub")
AllowedIPs = 10.77.0.3/32
CONF
    local i
    for i in 1 2; do
        local name="C$i"
        cat >"$D/c$i.conf" <<CONF
[Interface]
Name = ${!name}
PrivateKey = $(cat "$RIG_DIR/c$i.key")
Address = 10.77.0.$((i + 1))/32
Workers = 1
EventLog = $D/c$i.events.jsonl

[Peer]
PublicKey = $(cat "$RIG_DIR/gw.pub")
Endpoint = $RIG_GW_IP:51821
AllowedIPs = 10.77.0.0/24
CONF
    done
    umask "$old"
}

stop_all() {
    timeout 10 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" down "$C1" >/dev/null 2>&1 || true
    timeout 10 ip netns exec "$RIG_CLIENT2" "$JVPN_BIN" down "$C2" >/dev/null 2>&1 || true
    timeout 10 ip netns exec "$RIG_GW" "$JVPN_BIN" down "$G" >/dev/null 2>&1 || true
}
rig_on_cleanup stop_all

worker_datagrams() {
    ip netns exec "$RIG_GW" "$JVPN_BIN" status "$G" --json |
        python3 -c "import json,sys; print(' '.join(str(w['datagrams_received']) for w in json.load(sys.stdin)['data_plane']['workers']))"
}

# Both clients' pings reach the gateway; prints the datagrams each gateway worker took for them.
ping_split() {
    local a b
    read -ra a <<<"$(worker_datagrams)"
    ip netns exec "$RIG_CLIENT" ping -c 20 -i 0.01 -W 1 10.77.0.1 >/dev/null
    read -ra b <<<"$(worker_datagrams)"
    local c1=() i
    for i in "${!a[@]}"; do c1+=($((b[i] - a[i]))); done
    ip netns exec "$RIG_CLIENT2" ping -c 20 -i 0.01 -W 1 10.77.0.1 >/dev/null
    read -ra a <<<"$(worker_datagrams)"
    local c2=()
    for i in "${!a[@]}"; do c2+=($((a[i] - b[i]))); done
    python3 -c "
import sys
c1 = [int(x) for x in sys.argv[1].split()]; c2 = [int(x) for x in sys.argv[2].split()]
print('spread' if c1.index(max(c1)) != c2.index(max(c2)) else 'same')" "${c1[*]}" "${c2[*]}"
}

cpu_ticks() {
    local rest; rest="$(sed 's/^.*) //' "/proc/$1/stat")"
    awk '{ print $12 + $13 }' <<<"$rest"
}

ip netns exec "$RIG_GW" iperf3 -s -p 5301 >/dev/null 2>&1 &
ip netns exec "$RIG_GW" iperf3 -s -p 5302 >/dev/null 2>&1 &
rig_on_cleanup "pkill -f 'iperf3 -s -p 530[12]' || true"
sleep 0.5

echo "jvpn gateway workers: two clients, one TCP stream each, ${SECONDS_PER} s, $(date -u +%FT%TZ), $JVPN_BIN"
printf '%-8s %-8s %-10s %-12s %s\n' run workers "Gbit/s" "gw CPU s/GB" "gateway worker datagrams (clients reached)"
for run in $(seq "$RUNS"); do
    for w in $COUNTS; do
        write_configs "$w"
        timeout 30 ip netns exec "$RIG_GW" "$JVPN_BIN" up "$D/gw.conf" >/dev/null
        timeout 30 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" up "$D/c1.conf" --wait 10 >/dev/null
        timeout 30 ip netns exec "$RIG_CLIENT2" "$JVPN_BIN" up "$D/c2.conf" --wait 10 >/dev/null
        reached="one worker"
        if ((w > 1)); then
            reached="same worker"
            for _ in $(seq 10); do
                if [[ "$(ping_split)" == spread ]]; then reached="two workers"; break; fi
                timeout 10 ip netns exec "$RIG_CLIENT2" "$JVPN_BIN" down "$C2" >/dev/null
                timeout 30 ip netns exec "$RIG_CLIENT2" "$JVPN_BIN" up "$D/c2.conf" --wait 10 >/dev/null
            done
        fi
        gw_pid="$(rig_pids_by_comm "$RIG_GW" '^jvpn' | head -1)"
        d0="$(worker_datagrams)"
        t0="$(cpu_ticks "$gw_pid")"
        ip netns exec "$RIG_CLIENT" iperf3 -c 10.77.0.1 -p 5301 -t "$SECONDS_PER" -J >"$D/i1.json" &
        p1=$!
        ip netns exec "$RIG_CLIENT2" iperf3 -c 10.77.0.1 -p 5302 -t "$SECONDS_PER" -J >"$D/i2.json" &
        p2=$!
        wait "$p1" "$p2"
        t1="$(cpu_ticks "$gw_pid")"
        d1="$(worker_datagrams)"
        python3 - "$D/i1.json" "$D/i2.json" "$t0" "$t1" "$CLK_TCK" "$run" "$w" "$d0" "$d1" "$reached" <<'PY'
import json, sys
f1, f2, t0, t1, tck, run, w, d0, d1, reached = sys.argv[1:]
recv = [json.load(open(f))["end"]["sum_received"] for f in (f1, f2)]
bits = sum(r["bits_per_second"] for r in recv)
gb = sum(r["bytes"] for r in recv) / 1e9
cpu = (int(t1) - int(t0)) / int(tck)
split = [int(b) - int(a) for a, b in zip(d0.split(), d1.split())]
print(f"{run:<8} {w:<8} {bits / 1e9:<10.2f} {cpu / gb if gb else float('nan'):<12.2f} {' / '.join(map(str, split))} ({reached})")
PY
        stop_all
    done
done
