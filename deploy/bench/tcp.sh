#!/usr/bin/env bash
# TCP transport benchmark, in one run on one rig (router rig, the client on up0 only):
#   throughput  raw (no tunnel) vs jvpn on a UDP path vs jvpn on a TCP path (`Transport = udp` /
#               `Transport = tcp`): iperf3 TCP 1 stream (receiver Gbit/s, retransmits inside the
#               tunnel), ping avg idle and during the stream; median of --runs
#   outage      UDP blocked mid-session (every forwarded UDP packet dropped at the router, one nft
#               transaction) on the default policy (DeadAfterMs 1000) but MaxSwitchesPerMinute 60 on
#               both sides (each rep is two switches, about 10 s apart): the longest gap a 1 ms UDP
#               echo inside the tunnel sees until traffic flows on the TCP path; --reps times
#               (UDP unblocked and the session back on UDP between reps): median and worst
#   loss        1 % loss each way on the outer path (nft numgen at the router): an iperf3 stream
#               inside the tunnel over the TCP path (1 % of outer TCP segments dropped) and over
#               the UDP path (1 % of datagrams dropped): Mbit/s, inner retransmits, the slowest
#               1-second interval (the stream keeps moving if it is not 0)
#
# usage: deploy/bench/tcp.sh [--seconds S] [--runs N] [--reps N] [--only throughput,outage,loss]
# env: JVPN_BIN (default $REPO/.build/release/jvpn)
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../netns/rig.sh
. "$BENCH_DIR/../netns/rig.sh"
ECHO="$BENCH_DIR/../netns/udpecho.py"

SECONDS_PER=10; RUNS=3; REPS=20; ONLY="throughput,outage,loss"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) SECONDS_PER="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
for n in "$SECONDS_PER" "$RUNS" "$REPS"; do [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 && "$n" -le 100 ]] || { echo "numbers want 1..100" >&2; exit 2; }; done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
[[ $EUID -eq 0 ]] || { echo "tcp.sh needs root (network namespaces)" >&2; exit 1; }
log() { printf '[tcp-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

rig_init
RIG_NUM_UPLINKS=1 rig_create_router
rig_jvpn_keypair gw; rig_jvpn_keypair c1
GW="${RIG_ID}g"; CL="${RIG_ID}c"
cat >"$RIG_DIR/gw.conf" <<CONF
[Interface]
Name = $GW
PrivateKeyFile = $RIG_DIR/gw.key
Address = 10.77.0.1/24
ListenPort = 51820
EventLog = $RIG_DIR/gw.events.jsonl

[Peer]
PublicKey = $(cat "$RIG_DIR/c1.pub")
AllowedIPs = 10.77.0.2/32

[Policy]
MaxSwitchesPerMinute = 60
CONF
# client_conf TRANSPORT -> a client config using that Transport list
client_conf() {
    cat >"$RIG_DIR/c-$1.conf" <<CONF
[Interface]
Name = $CL
PrivateKeyFile = $RIG_DIR/c1.key
Address = 10.77.0.2/24
Uplinks = up0
EventLog = $RIG_DIR/c.events.jsonl

[Peer]
PublicKey = $(cat "$RIG_DIR/gw.pub")
Endpoint = $RIG_GW_IP:51820
Transport = $1
AllowedIPs = 10.77.0.0/24

[Policy]
MaxSwitchesPerMinute = 60
CONF
    echo "$RIG_DIR/c-$1.conf"
}
client_up() { rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$(client_conf "$1")" --wait 20 >/dev/null || { log "client up ($1) failed"; exit 1; }; }
client_down() { rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL" >/dev/null 2>&1 || true; }
status_py() { rig_exec "$RIG_CLIENT" "$JVPN_BIN" status "$CL" --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
nft_drop() {   # nft_drop MATCH: drop the forwarded packets MATCH selects, at the router, each way
    rig_exec "$RIG_ROUTER" nft -f - <<NFT
table inet jvbench {
    chain forward { type filter hook forward priority -20; policy accept; $1 counter drop; }
}
NFT
}
nft_loss() { nft_drop "meta l4proto $1 numgen random mod 100 < $2"; }   # nft_loss PROTO PCT
nft_block_udp() { nft_drop "meta l4proto udp"; }
nft_clear() { rig_exec "$RIG_ROUTER" nft delete table inet jvbench 2>/dev/null || true; }
# The session is ATTACHED on a UDP path and the TCP path stands by (answers its probes).
on_udp_with_tcp_standby() {
    [[ "$(status_py "s['sessions'][0]['state'] == 'ATTACHED' and '/tcp/' not in s['sessions'][0]['active_path'] and all(p['status'] == 'standby' for p in s['sessions'][0]['paths'] if p['transport'] == 'tcp')")" == True ]]
}

rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" >/dev/null || { log "gateway up failed"; exit 1; }
rig_exec "$RIG_GW" iperf3 -s -p 5201 >/dev/null 2>&1 &
rig_wait_for "rig_output_has ':5201 ' rig_exec $RIG_GW ss -Htln" 10 || { log "iperf3 server"; exit 1; }

# iperf TARGET -> "Gbit/s retransmits min-interval-Mbit/s"
iperf() {
    timeout $(( SECONDS_PER + 30 )) ip netns exec "$RIG_CLIENT" iperf3 -c "$1" -p 5201 -t "$SECONDS_PER" -J >"$RIG_DIR/iperf.json" 2>/dev/null &
    wait $! || true
    python3 - "$RIG_DIR/iperf.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    e = d["end"]
    mins = min(i["sum"]["bits_per_second"] for i in d["intervals"]) / 1e6
    print("%.3f %d %.1f" % (e["sum_received"]["bits_per_second"] / 1e9, e["sum_sent"].get("retransmits", 0), mins))
except Exception as x:
    print("nan nan nan"); print("iperf3: %s" % x, file=sys.stderr)
PY
}
ping_avg() {
    local out; out="$(ip netns exec "$RIG_CLIENT" ping -c "${2:-50}" -i 0.02 -q -W 1 "$1" 2>/dev/null || true)"
    awk -F'/' '/^(rtt|round-trip)/ { print $5; f = 1 } END { if (!f) print "nan" }' <<<"$out"
}

declare -A R
measure() {   # measure MODE TARGET
    local mode="$1" target="$2" r g=() x=() p=() pl=() gb rt mn
    for (( r = 1; r <= RUNS; r++ )); do
        p+=("$(ping_avg "$target")")
        ( sleep 1; ping_avg "$target" $(( (SECONDS_PER - 2) * 50 )) >"$RIG_DIR/pl" ) &
        local ping_pid=$!
        iperf "$target" >"$RIG_DIR/iperf.res"
        read -r gb rt mn <"$RIG_DIR/iperf.res"
        wait "$ping_pid" || true
        pl+=("$(cat "$RIG_DIR/pl")"); g+=("$gb"); x+=("$rt")
        log "$mode run $r: $gb Gbit/s, $rt retransmits, ping $(tail -1 <<<"${p[*]}" | awk '{print $NF}') / under load $(cat "$RIG_DIR/pl") ms"
    done
    R[$mode]="$(median "${g[@]}") $(median "${x[@]}") $(median "${p[@]}") $(median "${pl[@]}")"
}

if want throughput; then
    log "throughput: raw, jvpn over UDP, jvpn over TCP (${SECONDS_PER}s x $RUNS)"
    measure raw "$RIG_GW_IP"
    client_up udp; measure udp 10.77.0.1; client_down
    client_up tcp
    [[ "$(status_py "s['sessions'][0]['active_path'].split('/')[1]")" == tcp ]] || { log "not on a TCP path"; exit 1; }
    measure tcp 10.77.0.1; client_down
    echo
    echo "throughput ($(date -u +%F), $(git -C "$BENCH_DIR" rev-parse --short HEAD 2>/dev/null || echo ?), ${SECONDS_PER}s x $RUNS, median; load $(cut -d' ' -f1-3 /proc/loadavg))"
    printf '%-16s %12s %12s %12s %16s\n' mode "TCPx1 Gb/s" retransmits "ping ms" "ping load ms"
    for m in raw udp tcp; do read -r a b c d <<<"${R[$m]}"; printf '%-16s %12s %12s %12s %16s\n' "$m" "$a" "$b" "$c" "$d"; done
    read -r u _ <<<"${R[udp]}"; read -r t _ <<<"${R[tcp]}"
    awk -v t="$t" -v u="$u" 'BEGIN { printf "TCP path / UDP path throughput: %.2f\n", t / u }'
fi

if want outage; then
    log "outage: UDP blocked mid-session, 1 ms echo, $REPS reps (default policy)"
    client_up "udp, tcp"
    rig_exec "$RIG_GW" python3 "$ECHO" serve 10.77.0.1 9200 >/dev/null 2>&1 &
    outs=()
    for (( r = 1; r <= REPS; r++ )); do
        rig_wait_for on_udp_with_tcp_standby 30 0.2 || { log "rep $r: not back on UDP with a TCP standby"; exit 1; }
        sleep 1
        mark=$(wc -l <"$RIG_DIR/c.events.jsonl")
        rig_exec "$RIG_CLIENT" python3 "$ECHO" probe 10.77.0.1 9200 4 >"$RIG_DIR/echo.json" &
        epid=$!
        sleep 1
        nft_block_udp
        wait "$epid" || true
        on="$(status_py "s['sessions'][0]['active_path']")"
        nft_clear
        o="$(python3 -c "import json; d = json.load(open('$RIG_DIR/echo.json')); print(d['outage_ms'] if d['ended'] else 'never-ended')")"
        outs+=("$o")
        sw="$(tail -n +$(( mark + 1 )) "$RIG_DIR/c.events.jsonl" | python3 -c '
import json, sys
for l in sys.stdin:
    e = json.loads(l)
    if e["event"] == "TRANSPORT_SWITCH": print("%s %s->%s" % (e["reason"], e["from_path"].split("/")[1], e["to_path"].split("/")[1]), end="; ")
')"
        log "rep $r: outage $o ms, on $on at the end; switches: ${sw:-none}"
    done
    client_down
    echo
    echo "UDP blocked mid-session -> traffic on TCP, 1 ms UDP echo ($REPS reps, DeadAfterMs 1000; load $(cut -d' ' -f1-3 /proc/loadavg)):"
    echo "  outage ms: median $(median "${outs[@]}"), worst $(printf '%s\n' "${outs[@]}" | sort -g | tail -1), all: ${outs[*]}"
    [[ " ${outs[*]} " != *never-ended* ]] || echo "  (never-ended: traffic did not resume on TCP within the 3 s the block lasted)"
fi

if want loss; then
    log "loss: 1 % each way on the outer path"
    for kind in tcp udp; do
        client_up "$kind"
        nft_loss "$kind" 1
        iperf 10.77.0.1 >"$RIG_DIR/iperf.res"
        read -r gb rt mn <"$RIG_DIR/iperf.res"
        nft_clear
        R[loss.$kind]="$gb $rt $mn"
        client_down
        log "$kind path with 1 % outer loss: $gb Gbit/s, $rt inner retransmits, slowest second $mn Mbit/s"
    done
    echo
    echo "1 % outer loss each way, one inner TCP stream (${SECONDS_PER}s; load $(cut -d' ' -f1-3 /proc/loadavg)):"
    printf '%-10s %12s %18s %22s\n' path "Gb/s" "inner retransmits" "slowest second Mb/s"
    for k in tcp udp; do read -r a b c <<<"${R[loss.$k]}"; printf '%-10s %12s %18s %22s\n' "$k" "$a" "$b" "$c"; done
fi
