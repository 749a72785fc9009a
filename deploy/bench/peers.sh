#!/usr/bin/env bash
# Peer-scaling benchmark: one real gateway daemon with N configured peers, N synthetic client
# sessions (jvpn-loadgen) handshaking with it at once, and one real jvpn client whose ping through
# the tunnel runs across the storm.
#
# usage: deploy/bench/peers.sh [--peers N] [--sources K] [--hold S] [--ping-ms MS] [--loadgen-idle]
#   --peers N     sessions of the load generator (default 1000; the gateway gets N+1 [Peer]s)
#   --sources K   source IPv4 addresses the sessions spread over (default N: one each, as N clients
#                 behind N addresses; K=1 puts them all behind one address, which the gateway's
#                 per-source handshake limit then paces)
#   --hold S      seconds the sessions stay idle after attaching (default 5; RSS is read then)
#   --ping-ms MS  interval of the real client's ping (default 2: a storm of 0.6-0.9 s then holds
#                 300-450 pings, so its p99 is not simply its slowest ping)
#   --retry-ms MS a session sends its initiation or probe again after MS without an answer
#                 (default 1000)
#   --wave W      W sessions initiate at once, the next W a second later (default: all N at once);
#                 for the idle-memory figure of N sessions when N at once do not all attach
#   --iperf S     after the hold, with the N sessions still live on the gateway: S seconds of one
#                 iperf3 TCP stream through the real client's tunnel (the per-packet cost with N
#                 sessions, to compare with --peers 1; default 0: none)
#   --workers N   the gateway's `Workers` (default: none written, so `auto`)
#   --loadgen-idle  run the load generator in the idle scheduling class (chrt --idle 0): on this
#                 one-host rig its 1,000 sessions' handshakes then take only the CPU that the real
#                 client, the gateway and the kernel's packet processing leave, as they would on
#                 machines of their own (default: an ordinary process, which competes with them)
#   --stages      capture the real client's traffic in both namespaces (tcpdump) and split the
#                 storm's pings into the gateway daemon's share, the client daemon's, the veth's
#                 and the gateway kernel's (deploy/bench/ping_stages.py)
#
# Rig: deploy/netns/rig.sh basic (client ns <-> gateway ns over one veth). The load generator and
# the real client both run in the client namespace; the K source addresses are extra addresses on
# the client's up0 (10.201.16.0/20), reached from the gateway through an on-link route.
# Prints:
#   attach      time from the first initiation to the last session attached (its sealed PROBE
#               answered by the gateway), p50 / p99 of the sessions' own attach times, initiations
#               sent (retries after 1 s without an answer), cookie replies received
#   ping        the real client's ping through its tunnel over the storm: p50 / p99 / max, loss
#   rss         the gateway's VmRSS with N+1 peers configured and one session, then with the N
#               sessions attached and idle: KB per session
#   gw cpu      the gateway's utime+stime over the storm
#   iperf       (--iperf) receiver Gbit/s and retransmits of the stream, with N+1 live sessions
#   stages      (--stages) the storm's pings stage by stage: p50 / p99 / max of each
# env: JVPN_BIN (default $REPO/.build/release/jvpn), LOADGEN_BIN (default jvpn-loadgen beside
#      JVPN_BIN), RIG_KEEP_DIR=1 keeps the logs. Needs root; about 30 s for 1000 peers. Not CI.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../netns/rig.sh
. "$BENCH_DIR/../netns/rig.sh"

PEERS=1000
SOURCES=""
HOLD=5
PING_MS=2
RETRY_MS=1000
WAVE=""
IPERF=0
WORKERS=""
STAGES=0
LOADGEN_CLASS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --peers) PEERS="$2"; shift 2 ;;
        --sources) SOURCES="$2"; shift 2 ;;
        --hold) HOLD="$2"; shift 2 ;;
        --ping-ms) PING_MS="$2"; shift 2 ;;
        --loadgen-idle) LOADGEN_CLASS=(chrt --idle 0); shift ;;
        --retry-ms) RETRY_MS="$2"; shift 2 ;;
        --wave) WAVE="$2"; shift 2 ;;
        --iperf) IPERF="$2"; shift 2 ;;
        --workers) WORKERS="$2"; shift 2 ;;
        --stages) STAGES=1; shift ;;
        -h|--help) sed -n '2,44p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$PEERS" =~ ^[0-9]+$ && "$PEERS" -ge 1 && "$PEERS" -le 4000 ]] || { echo "--peers wants 1..4000" >&2; exit 2; }
[[ -z "$WORKERS" || "$WORKERS" =~ ^[0-9]+$ ]] || { echo "--workers wants a count" >&2; exit 2; }
: "${SOURCES:=$PEERS}"
: "${WAVE:=$PEERS}"
[[ "$WAVE" =~ ^[0-9]+$ && "$WAVE" -ge 1 && "$WAVE" -le "$PEERS" ]] || { echo "--wave wants 1..N" >&2; exit 2; }
[[ "$SOURCES" =~ ^[0-9]+$ && "$SOURCES" -ge 1 && "$SOURCES" -le 4000 ]] || { echo "--sources wants 1..4000" >&2; exit 2; }
[[ "$HOLD" =~ ^[0-9]+$ && "$HOLD" -ge 1 && "$HOLD" -le 600 ]] || { echo "--hold wants 1..600" >&2; exit 2; }
[[ "$PING_MS" =~ ^[0-9]+$ && "$PING_MS" -ge 2 && "$PING_MS" -le 1000 ]] || { echo "--ping-ms wants 2..1000" >&2; exit 2; }
[[ "$RETRY_MS" =~ ^[0-9]+$ && "$RETRY_MS" -ge 50 && "$RETRY_MS" -le 10000 ]] || { echo "--retry-ms wants 50..10000" >&2; exit 2; }
[[ "$IPERF" =~ ^[0-9]+$ && "$IPERF" -le 120 ]] || { echo "--iperf wants 0..120 seconds" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "peers.sh needs root (network namespaces, TUN)" >&2; exit 1; }
for tool in ping python3 ip $( (( IPERF > 0 )) && echo iperf3 ) $( (( STAGES )) && echo tcpdump ); do
    command -v "$tool" >/dev/null || { echo "missing $tool (deploy/install-deps.sh)" >&2; exit 1; }
done
rig_jvpn_ensure_built
: "${LOADGEN_BIN:=$(dirname "$JVPN_BIN")/jvpn-loadgen}"
[[ -x "$LOADGEN_BIN" ]] || { echo "no load generator at $LOADGEN_BIN (swift build -c release --product jvpn-loadgen)" >&2; exit 1; }

log() { printf '[peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

rig_init
rig_create_basic >/dev/null 2>&1
ulimit -n $(( PEERS + 1024 ))

# K source addresses on the client's up0: 10.201.16.1 + k (a /20 holds 4094).
python3 - "$SOURCES" >"$RIG_DIR/addrs.batch" <<'EOF'
import ipaddress, sys
base = int(ipaddress.IPv4Address("10.201.16.1"))
for k in range(int(sys.argv[1])):
    print("address add %s/32 dev up0" % ipaddress.IPv4Address(base + k))
EOF
ip -n "$RIG_CLIENT" -batch "$RIG_DIR/addrs.batch"
ip -n "$RIG_GW" route add 10.201.16.0/20 dev eth0

for k in gw client; do rig_jvpn_keypair "$k"; done
"$LOADGEN_BIN" keys --count "$PEERS" --out "$RIG_DIR" >/dev/null
gw="j${RIG_ID:2:6}g" cl="j${RIG_ID:2:6}c"
( umask 077
  printf '[Interface]\nName = %s\nPrivateKeyFile = %s\nAddress = 10.77.0.1/24\nListenPort = 51820\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.77.0.2/32\n\n' \
      "$gw" "$RIG_DIR/gw.key" "$(cat "$RIG_DIR/client.pub")"
  cat "$RIG_DIR/loadgen.peers" ) >"$RIG_DIR/gw.conf"
if [[ -n "$WORKERS" ]]; then sed -i "/^\[Interface\]/a Workers = $WORKERS" "$RIG_DIR/gw.conf"; fi
( umask 077
  printf '[Interface]\nName = %s\nPrivateKeyFile = %s\nAddress = 10.77.0.2/24\nUplinks = up0\n\n[Peer]\nPublicKey = %s\nEndpoint = %s:51820\nAllowedIPs = 10.77.0.0/24\n' \
      "$cl" "$RIG_DIR/client.key" "$(cat "$RIG_DIR/gw.pub")" "$RIG_GW_IP" ) >"$RIG_DIR/client.conf"

rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" >/dev/null
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/client.conf" --wait 10 >/dev/null || { log "the real client did not attach"; exit 1; }
pid="$(rig_pids_by_comm "$RIG_GW" '^jvpn$' | head -n1)"
[[ -n "$pid" ]] || { log "no gateway process"; exit 1; }
sleep 2
rss0="$(rss_kb "$pid")"
log "gateway up with $(( PEERS + 1 )) peers, RSS ${rss0} KB; $PEERS sessions from $SOURCES addresses, $WAVE at once"

# The real client's traffic only (not the load generator's sources), from both namespaces.
capture_pids=()
if (( STAGES )); then
    for ns in "$RIG_GW" "$RIG_CLIENT"; do
        ip netns exec "$ns" tcpdump -i any -n -tt -l 'icmp or (udp port 51820 and not net 10.201.16.0/20)' \
            >"$RIG_DIR/capture-$ns.txt" 2>"$RIG_DIR/capture-$ns.err" &
        capture_pids+=($!)
    done
    for ns in "$RIG_GW" "$RIG_CLIENT"; do
        rig_wait_for "grep -q 'listening on' '$RIG_DIR/capture-$ns.err'" 5 0.05 || { log "tcpdump did not start in $ns"; exit 1; }
    done
fi

# The ping runs from 1 s before the storm to the end of the hold (SIGINT; its own deadline bounds
# it too); its timestamped replies and misses (-D -O) are cut to the storm's window afterwards.
rig_exec "$RIG_CLIENT" ping -n -D -O -i "$(python3 -c "print($PING_MS / 1000)")" -W 1 -w $(( HOLD + 80 )) 10.77.0.1 >"$RIG_DIR/ping.out" 2>&1 &
ping_pid=$!
sleep 1
cpu0="$(cpu_ticks "$pid")" w0="$(now_ms)"
storm_start="$(date +%s.%N)"
rig_exec "$RIG_CLIENT" "${LOADGEN_CLASS[@]}" "$LOADGEN_BIN" run --keys "$RIG_DIR/loadgen.keys" --gateway "$RIG_GW_IP:51820" \
    --gateway-key "$(cat "$RIG_DIR/gw.pub")" --source-base 10.201.16.1 --sources "$SOURCES" --timeout 60 --retry-ms "$RETRY_MS" --wave "$WAVE" --hold "$HOLD" \
    >"$RIG_DIR/loadgen.out" 2>&1 &
lg_pid=$!
rig_wait_for "grep -q '^holding\|^attached' '$RIG_DIR/loadgen.out'" 70 0.05 || true
cpu1="$(cpu_ticks "$pid")" w1="$(now_ms)"
storm_end="$(date +%s.%N)"
rig_wait_for "grep -q '^holding' '$RIG_DIR/loadgen.out'" 2 0.05 || true
sleep $(( HOLD > 2 ? HOLD - 2 : 1 ))
rss1="$(rss_kb "$pid")"
rig_exec "$RIG_GW" "$JVPN_BIN" status "$gw" --json >"$RIG_DIR/gw-status.json" 2>/dev/null || true
sessions="$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1])).get("sessions", [])))' "$RIG_DIR/gw-status.json" 2>/dev/null || echo '?')"
wait "$lg_pid" || true
pkill -INT -P "$ping_pid" 2>/dev/null || true # the ping (ip netns exec became it) under this job's subshell
wait "$ping_pid" || true
if (( IPERF > 0 )); then
    # The load generator's sessions stay live on the gateway (until their transport-loss TTL).
    rig_exec "$RIG_GW" iperf3 -s -1 -B 10.77.0.1 -p 5201 >/dev/null 2>&1 &
    iperf_srv=$!
    rig_wait_for "ip netns exec '$RIG_GW' ss -ltn | grep -q ':5201 '" 5 0.05 || true
    timeout $(( IPERF + 30 )) ip netns exec "$RIG_CLIENT" iperf3 -c 10.77.0.1 -p 5201 -t "$IPERF" -J >"$RIG_DIR/iperf.json" 2>/dev/null || true
    wait "$iperf_srv" 2>/dev/null || true
    rig_exec "$RIG_GW" "$JVPN_BIN" status "$gw" --json >"$RIG_DIR/gw-status-after.json" 2>/dev/null || true
fi
for c in ${capture_pids[@]+"${capture_pids[@]}"}; do kill -INT "$c" 2>/dev/null || true; wait "$c" 2>/dev/null || true; done
rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$cl" >/dev/null 2>&1 || true
rig_exec "$RIG_GW" "$JVPN_BIN" down "$gw" >/dev/null 2>&1 || true

commit="$(git -C "$BENCH_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
hz="$(getconf CLK_TCK)"
echo
echo "peer scaling: $PEERS sessions from $SOURCES source addresses, $WAVE at once, gateway with $(( PEERS + 1 )) peers ($(uname -r), commit $commit, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "attach:  $(grep -m1 '^attached' "$RIG_DIR/loadgen.out" || echo "no result: $(tail -n 3 "$RIG_DIR/loadgen.out")")"
python3 - "$RIG_DIR/ping.out" "$storm_start" "$storm_end" "$PING_MS" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
start, end, interval = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]) / 1000
replies = [(float(t), float(r)) for t, r in re.findall(r"\[([0-9.]+)\].*icmp_seq=\d+.*time=([0-9.]+) ms", text)]
misses = [float(t) for t in re.findall(r"\[([0-9.]+)\] no answer yet", text)]
def line(name, rtts, missed):
    if not rtts:
        return "%s no replies" % name
    rtts = sorted(rtts)
    pct = lambda p: rtts[max(1, -(-len(rtts) * p // 100)) - 1]
    return "%s p50 %.3f ms, p99 %.3f ms, max %.3f ms; %d replies, %d without an answer in time" % (
        name, pct(50), pct(99), rtts[-1], len(rtts), missed)
# Stamped when the reply (or the miss) is seen: the storm's are those in its window.
print(line("ping:    storm", [r for t, r in replies if start <= t <= end], len([t for t in misses if start <= t <= end])))
print(line("ping:    whole run", [r for _, r in replies], len(misses)))
EOF
attached="$(grep -m1 -oE '^attached [0-9]+' "$RIG_DIR/loadgen.out" | grep -oE '[0-9]+$' || echo 0)"
if (( attached > 0 )); then
    echo "rss:     ${rss0} KB with 1 session -> ${rss1} KB with $sessions sessions ($attached of the load generator's): $(( (rss1 - rss0) / attached )).$(( (rss1 - rss0) * 10 / attached % 10 )) KB per session"
else
    echo "rss:     ${rss0} KB -> ${rss1} KB, no session attached"
fi
echo "gw cpu:  $(( (cpu1 - cpu0) * 1000 / hz )) ms of CPU over the storm's $(( w1 - w0 )) ms"
python3 - "$RIG_DIR/gw-status.json" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("gateway: no status (its control socket did not answer in time)")
    sys.exit()
h = s.get("handshakes", {})
d = {k: v for k, v in h.get("dropped", {}).items() if v}
d.update({"data " + k: v for k, v in s.get("data_plane", {}).get("dropped", {}).items() if v})
print("gateway: cookie replies %s, drops %s" % (h.get("cookie_replies_sent", "?"), d or "none"))
EOF
if (( IPERF > 0 )); then
    python3 - "$RIG_DIR/iperf.json" "$RIG_DIR/gw-status-after.json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    r, s = d["end"]["sum_received"], d["end"]["sum_sent"]
    line = "%.2f Gbit/s, %d retransmits" % (r["bits_per_second"] / 1e9, s.get("retransmits", 0))
except (OSError, ValueError, KeyError) as e:
    line = "no result (%s)" % e
try:
    live = sum(1 for x in json.load(open(sys.argv[2])).get("sessions", []) if x.get("state") != "TERMINATED")
except (OSError, ValueError):
    live = "?"
print("iperf:   %s with %s live sessions on the gateway" % (line, live))
EOF
fi
if (( STAGES )); then
    python3 "$BENCH_DIR/ping_stages.py" "$RIG_DIR/capture-$RIG_GW.txt" "$RIG_DIR/capture-$RIG_CLIENT.txt" "$storm_start" "$storm_end"
fi
[[ "${RIG_KEEP_DIR:-0}" == 1 ]] && log "logs kept in $RIG_DIR"
exit 0
