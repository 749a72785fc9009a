#!/usr/bin/env bash
# Handshake-flood benchmark: what a flood at the gateway costs a new client, an established
# session and the gateway. For the current build and, with BASE_BIN, a baseline binary, same run.
#
# usage: deploy/bench/flood.sh [--rate PPS] [--seconds S] [--modes none,junk,type1-1byte,initiation-mac1]
#                              [--json FILE]
#   --rate PPS     flood rate (default 100000 datagrams/s, random IPv4 sources in 198.18.0.0/15)
#   --seconds S    flood length per mode (default 5)
#
# Rig: deploy/netns/rig.sh router rig plus rig_add_router_client; the flood (deploy/flood/jvpn-flood.c)
# comes from the router namespace. Per system and mode, with the flood running:
#   attach_ms   `jvpn up --wait 5` of a second client (5000+ = did not attach within 5 s)
#   loss_pct    loss of `ping -i 0.01` through the first client's established session, over the flood
#   rtt_ms      that ping's average round trip
#   gw_cpu_pct  the gateway daemon's utime+stime over the flood, % of one core
#   rate        the flood rate the tool achieved
#   notes       the gateway's own view over the flood: datagrams the kernel dropped for a full
#               socket buffer (RcvbufErrors), cookie replies sent, and (jvpn) cookie replies the
#               reply queue or budget had no room for
# "none" is the same measurement without a flood.
#
# env: JVPN_BIN (default $REPO/.build/release/jvpn), BASE_BIN (a baseline jvpn binary, optional),
#      BASE_INITIATION_BYTES (initiation size the baseline expects; default 144, the size before
#      mac2), RIG_KEEP_DIR=1 keeps logs (path printed). Not part of CI: it needs root and ~1 min.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../netns/rig.sh
. "$BENCH_DIR/../netns/rig.sh"

RATE=100000
SECONDS_PER_MODE=5
MODES="none,junk,type1-1byte,initiation-mac1"
JSON_OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rate) RATE="$2"; shift 2 ;;
        --rate=*) RATE="${1#*=}"; shift ;;
        --seconds) SECONDS_PER_MODE="$2"; shift 2 ;;
        --seconds=*) SECONDS_PER_MODE="${1#*=}"; shift ;;
        --modes) MODES="$2"; shift 2 ;;
        --modes=*) MODES="${1#*=}"; shift ;;
        --json) JSON_OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$RATE" =~ ^[0-9]+$ && "$RATE" -ge 1 && "$RATE" -le 2000000 ]] || { echo "--rate wants 1..2000000" >&2; exit 2; }
[[ "$SECONDS_PER_MODE" =~ ^[0-9]+$ && "$SECONDS_PER_MODE" -ge 2 && "$SECONDS_PER_MODE" -le 60 ]] || { echo "--seconds wants 2..60" >&2; exit 2; }
for m in ${MODES//,/ }; do
    case "$m" in none|junk|type1-1byte|initiation-mac1) ;; *) echo "--modes: unknown '$m'" >&2; exit 2 ;; esac
done
[[ $EUID -eq 0 ]] || { echo "flood.sh needs root (network namespaces, TUN, raw sockets)" >&2; exit 1; }
for tool in ping python3 ip cc; do
    command -v "$tool" >/dev/null || { echo "missing $tool (deploy/install-deps.sh)" >&2; exit 1; }
done
rig_jvpn_ensure_built
SYSTEMS=("jvpn=$JVPN_BIN")
if [[ -n "${BASE_BIN:-}" ]]; then
    [[ -x "$BASE_BIN" ]] || { echo "BASE_BIN=$BASE_BIN is not executable" >&2; exit 1; }
    SYSTEMS+=("base=$BASE_BIN")
fi

log() { printf '[flood %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
SOURCES=198.18.0.0/15
POLICY="ProbeIntervalMs = 50
StandbyProbeIntervalMs = 200
DeadAfterMs = 300"

declare -A R
# gw_handshakes BIN NAME -> the gateway status's "handshakes" object ("" for builds without it)
gw_handshakes() {
    rig_exec "$RIG_GW" "$1" status "$2" --json 2>/dev/null |
        python3 -c 'import json, sys; h = json.load(sys.stdin).get("handshakes"); print(json.dumps(h) if h else "")' 2>/dev/null || true
}
gw_rcvbuf_errors() { rig_exec "$RIG_GW" awk '/^Udp:/ { n++; if (n == 2) print $6 }' /proc/net/snmp; }
# run_system NAME BIN: one rig (its own names, cleaned up at the end), every mode
run_system() {
    local name="$1" bin="$2" ibytes=160 mode
    [[ "$name" == base ]] && ibytes="${BASE_INITIATION_BYTES:-144}"
    RIG_PREFIX=""
    rig_init
    local FLOOD="$RIG_DIR/jvpn-flood"
    cc -O2 -o "$FLOOD" "$BENCH_DIR/../flood/jvpn-flood.c" -lsodium
    rig_create_router >/dev/null 2>&1
    rig_add_router_client
    rig_drop_at_router_ingress "$SOURCES"   # replies to the spoofed sources die entering the router
    local k
    for k in gw c1 c2; do
        ( umask 077; "$bin" genkey >"$RIG_DIR/$k.key" ); "$bin" pubkey <"$RIG_DIR/$k.key" >"$RIG_DIR/$k.pub"
    done
    local gw="j${RIG_ID:2:6}g" c1="j${RIG_ID:2:6}c" c2="j${RIG_ID:2:6}d"
    printf '[Interface]\nName = %s\nPrivateKeyFile = %s\nAddress = 10.77.0.1/24\nListenPort = 51820\nEventLog = %s\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.77.0.2/32\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.77.0.3/32\n' \
        "$gw" "$RIG_DIR/gw.key" "$RIG_DIR/gw.events.jsonl" "$(cat "$RIG_DIR/c1.pub")" "$(cat "$RIG_DIR/c2.pub")" >"$RIG_DIR/gw.conf"
    for k in c1 c2; do
        local n ip
        if [[ $k == c1 ]]; then n="$c1"; ip=10.77.0.2; else n="$c2"; ip=10.77.0.3; fi
        printf '[Interface]\nName = %s\nPrivateKeyFile = %s\nAddress = %s/24\nUplinks = up0\nEventLog = %s\n\n[Peer]\nPublicKey = %s\nEndpoint = %s:51820\nAllowedIPs = 10.77.0.0/24\n\n[Policy]\n%s\n' \
            "$n" "$RIG_DIR/$k.key" "$ip" "$RIG_DIR/$k.events.jsonl" "$(cat "$RIG_DIR/gw.pub")" "$RIG_GW_IP" "$POLICY" >"$RIG_DIR/$k.conf"
    done
    rig_exec "$RIG_GW" "$bin" up "$RIG_DIR/gw.conf" >/dev/null
    rig_exec "$RIG_CLIENT" "$bin" up "$RIG_DIR/c1.conf" --wait 10 >/dev/null || { log "$name: client 1 did not attach"; return 1; }
    local pid; pid="$(rig_pids_by_comm "$RIG_GW" '^jvpn$' | head -n1)"
    local hz; hz="$(getconf CLK_TCK)"
    for mode in ${MODES//,/ }; do
        log "$name: $mode"
        local fpid="" t0 t1 cpu0 cpu1 w0 w1 count=$(( SECONDS_PER_MODE * 100 ))
        local hs0 rcv0
        hs0="$(gw_handshakes "$bin" "$gw")"; rcv0="$(gw_rcvbuf_errors)"
        cpu0="$(awk '{ print $14 + $15 }' "/proc/$pid/stat")"; w0="$(now_ms)"
        if [[ "$mode" != none ]]; then
            rig_exec "$RIG_ROUTER" "$FLOOD" --target "$RIG_GW_IP:51820" --mode "$mode" --pubkey "$(cat "$RIG_DIR/gw.pub")" \
                --sources "$SOURCES" --rate "$RATE" --duration "$SECONDS_PER_MODE" --initiation-bytes "$ibytes" \
                >"$RIG_DIR/flood.out" 2>&1 &
            fpid=$!
        fi
        rig_exec "$RIG_CLIENT" ping -q -i 0.01 -W 1 -c "$count" 10.77.0.1 >"$RIG_DIR/ping.out" 2>&1 &
        local ppid=$!
        sleep 1
        t0="$(now_ms)"
        if rig_exec "$RIG_CLIENT2" "$bin" up "$RIG_DIR/c2.conf" --wait 5 >/dev/null 2>&1; then
            t1="$(now_ms)"; R[$name.$mode.attach]=$(( t1 - t0 ))
        else
            R[$name.$mode.attach]="5000+"
        fi
        wait "$ppid" || true
        [[ -n "$fpid" ]] && { wait "$fpid" || true; }
        cpu1="$(awk '{ print $14 + $15 }' "/proc/$pid/stat")"; w1="$(now_ms)"
        R[$name.$mode.cpu]=$(( (cpu1 - cpu0) * 100000 / hz / (w1 - w0) ))
        R[$name.$mode.notes]="rcvbuf_drops=$(( $(gw_rcvbuf_errors) - rcv0 )) $(python3 -c '
import json, sys
a, b = json.loads(sys.argv[1] or "{}"), json.loads(sys.argv[2] or "{}")
if not b:
    print("(no handshake counters)"); sys.exit()
d = lambda k: b["dropped"][k] - a["dropped"][k]
print("cookie_replies=%d cookie_budget_drops=%d cookie_queue_drops=%d" % (
    b["cookie_replies_sent"] - a["cookie_replies_sent"], d("cookie_rate_limited"), d("cookie_queue_full")))
' "$hs0" "$(gw_handshakes "$bin" "$gw")")"
        R[$name.$mode.loss]="$(grep -oE '[0-9.]+% packet loss' "$RIG_DIR/ping.out" | cut -d% -f1)"
        R[$name.$mode.rtt]="$(grep -oE 'rtt [^=]+= [0-9.]+/[0-9.]+' "$RIG_DIR/ping.out" | awk -F/ '{ print $NF }')"
        if [[ -n "$fpid" ]]; then
            R[$name.$mode.rate]="$(grep -oE '= [0-9]+ pkt/s' "$RIG_DIR/flood.out" | grep -oE '[0-9]+')"
        else
            R[$name.$mode.rate]=0
        fi
        rig_exec "$RIG_CLIENT2" "$bin" down "$c2" >/dev/null 2>&1 || true
        sleep 1
    done
    rig_exec "$RIG_CLIENT" "$bin" down "$c1" >/dev/null 2>&1 || true
    rig_exec "$RIG_GW" "$bin" down "$gw" >/dev/null 2>&1 || true
    if [[ "${RIG_KEEP_DIR:-0}" == 1 ]]; then log "$name: logs kept in $RIG_DIR"; fi
    rig_cleanup
    return 0
}

commit="$(git -C "$BENCH_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
for s in "${SYSTEMS[@]}"; do
    run_system "${s%%=*}" "${s#*=}" || { log "${s%%=*}: failed"; rig_cleanup; }
done

echo
echo "handshake floods at ${RATE}/s, ${SECONDS_PER_MODE} s each ($(uname -r), commit $commit, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
printf '%-6s %-16s %-10s %-12s %-10s %-10s %-8s %s\n' system flood rate/s attach_ms ping_loss% rtt_ms gw_cpu% notes
for s in "${SYSTEMS[@]}"; do
    n="${s%%=*}"
    for m in ${MODES//,/ }; do
        printf '%-6s %-16s %-10s %-12s %-10s %-10s %-8s %s\n' "$n" "$m" "${R[$n.$m.rate]:-?}" "${R[$n.$m.attach]:-?}" \
            "${R[$n.$m.loss]:-?}" "${R[$n.$m.rtt]:-?}" "${R[$n.$m.cpu]:-?}" "${R[$n.$m.notes]:-}"
    done
done
if [[ -n "$JSON_OUT" ]]; then
    {
        printf '{"date": "%s", "commit": "%s", "rate": %s, "seconds": %s, "results": {' \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "$RATE" "$SECONDS_PER_MODE"
        sep=""
        for s in "${SYSTEMS[@]}"; do
            n="${s%%=*}"
            for m in ${MODES//,/ }; do
                printf '%s"%s.%s": {"rate": "%s", "attach_ms": "%s", "loss_pct": "%s", "rtt_ms": "%s", "gw_cpu_pct": "%s"}' "$sep" "$n" "$m" \
                    "${R[$n.$m.rate]:-}" "${R[$n.$m.attach]:-}" "${R[$n.$m.loss]:-}" "${R[$n.$m.rtt]:-}" "${R[$n.$m.cpu]:-}"
                sep=", "
            done
        done
        printf '}}\n'
    } >"$JSON_OUT"
    log "results written to $JSON_OUT"
fi
exit 0
