#!/usr/bin/env bash
# Throughput benchmark: raw veth vs jvpn vs wireguard-go, in one run on one machine.
#
# usage: deploy/bench/throughput.sh [--only raw,wg,jvpn] [--seconds N] [--runs N] [--json FILE]
#                                   [--workers N]
#
# Every mode uses the same basic rig (client ns <-> gateway ns over a veth) and measures:
#   iperf3 TCP, 1 stream and 4 streams (-P 4), N seconds each: receiver bit/s
#   UDP small packets: iperf3 -u -l 64 -b 0 (as fast as the sender can), N seconds: packets/s
#   that reached the receiving iperf3 ("kpps"), and packets/s the tunnel delivered to iperf3's
#   socket ("in"): what iperf3 received plus what its socket dropped for want of buffer, since
#   iperf3's own receive socket drops many of them, so the first measures iperf3 as much as the
#   tunnel. The drops are the gateway namespace's Udp RcvbufErrors (/proc/net/snmp) over the run,
#   less the drops of the sockets on other ports (/proc/net/udp{,6}: the tunnel's own). Not the
#   interface's rx_packets: a tunnel that writes merged UDP packets (USO) counts one per merge.
#   ping RTT on an idle tunnel (50 pings, 20 ms apart): average
#   ping RTT under load: pings 20 ms apart during the 1-stream TCP run: average
#   CPU seconds per GB moved: utime+stime of both daemons during the 1-stream run
#   TCP retransmits (the senders', iperf3's JSON) in the 1- and 4-stream runs, and UDP receive-buffer
#   drops (RcvbufErrors, /proc/net/snmp of both namespaces: the tunnel's sockets and any other)
#   over the two TCP runs; summed over all runs
#   RSS per daemon (VmRSS; the larger of the two daemons): idle before the first run, and under
#   load (VmHWM, the peak, after all runs)
# --workers N writes `Workers = N` into both jvpn configs (default: none, so `auto`, and a binary
# from before the key works too).
# With --runs N each measurement is repeated and the median reported. Ratios are quoted
# jvpn / wireguard-go: these machines are shared and noisy, absolute numbers move around.
# Added RTT = tunnel RTT minus raw veth RTT (needs the raw mode in the same run).
#
# env: JVPN_BIN (default $REPO/.build/release/jvpn), BENCH_SECONDS (default 10)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../netns/rig.sh
. "$BENCH_DIR/../netns/rig.sh"

ONLY="raw,wg,jvpn"
SECONDS_PER="${BENCH_SECONDS:-10}"
RUNS=1
JSON_OUT=""
WORKERS=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --only) ONLY="$2"; shift 2 ;;
        --only=*) ONLY="${1#*=}"; shift ;;
        --seconds) SECONDS_PER="$2"; shift 2 ;;
        --seconds=*) SECONDS_PER="${1#*=}"; shift ;;
        --runs) RUNS="$2"; shift 2 ;;
        --runs=*) RUNS="${1#*=}"; shift ;;
        --json) JSON_OUT="$2"; shift 2 ;;
        --workers) WORKERS="$2"; shift 2 ;;
        -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$SECONDS_PER" =~ ^[0-9]+$ && "$SECONDS_PER" -ge 1 ]] || { echo "--seconds wants a positive integer" >&2; exit 2; }
[[ "$RUNS" =~ ^[0-9]+$ && "$RUNS" -ge 1 && "$RUNS" -le 50 ]] || { echo "--runs wants 1..50" >&2; exit 2; }
[[ -z "$WORKERS" || "$WORKERS" =~ ^[0-9]+$ ]] || { echo "--workers wants a count" >&2; exit 2; }
for m in ${ONLY//,/ }; do
    case "$m" in raw|wg|jvpn) ;; *) echo "--only: unknown mode '$m' (raw, wg, jvpn)" >&2; exit 2 ;; esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

[[ $EUID -eq 0 ]] || { echo "throughput.sh needs root (network namespaces)" >&2; exit 1; }
for tool in iperf3 ping python3 ip; do
    command -v "$tool" >/dev/null || { echo "missing $tool (deploy/install-deps.sh)" >&2; exit 1; }
done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

CLK_TCK="$(getconf CLK_TCK)"
IPERF_PORT=5201

rig_init
rig_create_basic

# --- measurement helpers -------------------------------------------------------------------

cpu_ticks() {   # sum of utime+stime over the given pids
    local total=0 p rest
    for p in "$@"; do
        rest="$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null)" || continue
        # after "pid (comm) ": state is field 1, utime 12, stime 13
        total=$(( total + $(awk '{ print $12 + $13 }' <<<"$rest") ))
    done
    echo "$total"
}

# rss_max_mb FIELD PIDS... : the largest FIELD (VmRSS, VmHWM) over the pids, in MB
rss_max_mb() {
    local field="$1" max=0 p v; shift
    for p in "$@"; do
        v="$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)"
        (( ${v:-0} > max )) && max="${v:-0}"
    done
    awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }'
}

median() {
    printf '%s\n' "$@" | grep -v '^nan$' | sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# iperf_run TARGET PARALLEL -> "bits_per_second bytes retransmits" (receiver side; the senders'
# retransmits) or "nan nan nan"
iperf_run() {
    local target="$1" par="$2" out f="$RIG_DIR/iperf.json"
    # In the background + `wait`: a TERM/INT trap then runs at once, not after iperf3 ends.
    timeout $(( SECONDS_PER + 30 )) ip netns exec "$RIG_CLIENT" \
        iperf3 -c "$target" -p "$IPERF_PORT" -t "$SECONDS_PER" -P "$par" -J >"$f" 2>/dev/null &
    wait $! || true
    out="$(cat "$f")"
    python3 -c '
import json, sys
try:
    d = json.loads(sys.stdin.read())
    if "error" in d:
        print("iperf3: " + d["error"], file=sys.stderr); print("nan nan nan"); sys.exit(0)
    s = d["end"]["sum_received"]
    print(s["bits_per_second"], s["bytes"], d["end"]["sum_sent"].get("retransmits", "nan"))
except Exception as e:
    print("iperf3 output not parsable: %s" % e, file=sys.stderr); print("nan nan nan")
' <<<"$out"
}

# udp_socket_drops: the gateway namespace's UDP receive-buffer drops, less those of sockets on
# ports other than iperf3's (which outlive the run; iperf3's data socket may not)
udp_socket_drops() {
    ip netns exec "$RIG_GW" python3 -c '
import sys
port = int(sys.argv[1])
snmp = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
total = int(dict(zip(snmp[0][1:], snmp[1][1:]))["RcvbufErrors"])
for f in ("/proc/net/udp", "/proc/net/udp6"):
    for l in open(f).readlines()[1:]:
        c = l.split()
        if int(c[1].rsplit(":", 1)[1], 16) != port:
            total -= int(c[-1])
print(total)
' "$IPERF_PORT" 2>/dev/null || echo nan
}

# udp_rcvbuf_errors: UDP receive-buffer drops so far in both namespaces, summed
udp_rcvbuf_errors() {
    local ns total=0 n
    for ns in "$RIG_GW" "$RIG_CLIENT"; do
        n="$(ip netns exec "$ns" awk '$1 == "Udp:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp 2>/dev/null)"
        [[ "$n" =~ ^[0-9]+$ ]] || { echo nan; return; }
        total=$(( total + n ))
    done
    echo "$total"
}

# add_to TOTAL VALUE: TOTAL + VALUE, or nan when either is unknown
add_to() { [[ "$1" =~ ^[0-9]+$ && "$2" =~ ^[0-9]+$ ]] && echo $(( $1 + $2 )) || echo nan; }

# udp_pps TARGET -> "RECEIVED DELIVERED": packets per second (64-byte payloads, unpaced) that
# reached iperf3, and that the tunnel delivered to its socket over the same run ("nan" when unknown)
udp_pps() {
    local target="$1" f="$RIG_DIR/iperf-udp.json" d0 d1
    d0="$(udp_socket_drops)"
    timeout $(( SECONDS_PER + 30 )) ip netns exec "$RIG_CLIENT" \
        iperf3 -c "$target" -p "$IPERF_PORT" -u -l 64 -b 0 -t "$SECONDS_PER" -J >"$f" 2>/dev/null &
    wait $! || true
    d1="$(udp_socket_drops)"
    python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    s = d["end"].get("sum_received") or d["end"]["sum"]
    got = s["packets"] - s["lost_packets"]
    received = "%.0f" % (got / s["seconds"])
    try:
        delivered = "%.0f" % ((got + int(sys.argv[3]) - int(sys.argv[2])) / s["seconds"])
    except ValueError:
        delivered = "nan"
    print(received, delivered)
except Exception as e:
    print("iperf3 UDP output not parsable: %s" % e, file=sys.stderr); print("nan nan")
' "$f" "$d0" "$d1"
}

ping_avg() {   # ping_avg TARGET [COUNT]: RTT average in ms of COUNT pings 20 ms apart
    local out
    out="$(ip netns exec "$RIG_CLIENT" ping -c "${2:-50}" -i 0.02 -q -W 1 "$1" 2>/dev/null || true)"
    awk -F'/' '/^(rtt|round-trip)/ { print $5; found = 1 } END { if (!found) print "nan" }' <<<"$out"
}

# Results: R[mode.metric]
declare -A R

# measure MODE TARGET PIDS...
measure() {
    local mode="$1" target="$2"; shift 2
    local pids=("$@") r t1=() t4=() pg=() pl=() cg=() ud=() ui=() bits bytes retr c0 c1 ppid got in e0 e1
    local retr1=0 retr4=0 drops=0
    [[ ${#pids[@]} -gt 0 ]] && R[$mode.rss_idle]="$(rss_max_mb VmRSS "${pids[@]}")"
    for (( r = 1; r <= RUNS; r++ )); do
        log "$mode: run $r/$RUNS: ping, TCP x1 (with ping), TCP x4, UDP 64 B (${SECONDS_PER}s each)"
        pg+=("$(ping_avg "$target")")
        c0="$(cpu_ticks "${pids[@]+"${pids[@]}"}")"
        e0="$(udp_rcvbuf_errors)"
        # Pings during the stream, from 1 s in to 1 s before its end (when there is room).
        local lc=$(( (SECONDS_PER - 2) * 50 ))
        (( lc < 10 )) && lc=10
        ( sleep 1; ping_avg "$target" "$lc" >"$RIG_DIR/ping-load.res" ) &
        ppid=$!
        iperf_run "$target" 1 >"$RIG_DIR/iperf.res"; read -r bits bytes retr <"$RIG_DIR/iperf.res"
        retr1="$(add_to "$retr1" "$retr")"
        c1="$(cpu_ticks "${pids[@]+"${pids[@]}"}")"
        wait "$ppid" || true
        pl+=("$(cat "$RIG_DIR/ping-load.res" 2>/dev/null || echo nan)")
        t1+=("$bits")
        if [[ ${#pids[@]} -gt 0 && "$bytes" != nan && "$bytes" != 0 ]]; then
            cg+=("$(awk -v c=$(( c1 - c0 )) -v hz="$CLK_TCK" -v b="$bytes" 'BEGIN { printf "%.3f", (c / hz) / (b / 1e9) }')")
        fi
        iperf_run "$target" 4 >"$RIG_DIR/iperf.res"; read -r bits bytes retr <"$RIG_DIR/iperf.res"
        retr4="$(add_to "$retr4" "$retr")"
        t4+=("$bits")
        e1="$(udp_rcvbuf_errors)"
        [[ "$e0" =~ ^[0-9]+$ && "$e1" =~ ^[0-9]+$ ]] && drops="$(add_to "$drops" $(( e1 - e0 )))" || drops=nan
        read -r got in < <(udp_pps "$target")
        ud+=("$got"); ui+=("$in")
    done
    R[$mode.udp]="$(median "${ud[@]}")"
    R[$mode.udpif]="$(median "${ui[@]}")"
    R[$mode.tcp1]="$(median "${t1[@]}")"
    R[$mode.tcp4]="$(median "${t4[@]}")"
    R[$mode.ping]="$(median "${pg[@]}")"
    R[$mode.pingload]="$(median "${pl[@]}")"
    R[$mode.retr]="$retr1/$retr4"
    R[$mode.tcpdrops]="$drops"
    if [[ ${#pids[@]} -gt 0 ]]; then
        R[$mode.cpu]="$(median "${cg[@]+"${cg[@]}"}")"
        R[$mode.rss]="$(rss_max_mb VmHWM "${pids[@]}")"
    else
        R[$mode.cpu]="-"; R[$mode.rss]="-"; R[$mode.rss_idle]="-"
    fi
    R[$mode.ok]=1
}

start_iperf_server() {
    # One server per run, bound to every address of the gateway namespace (tunnel ones too).
    ip netns exec "$RIG_GW" iperf3 -s -p "$IPERF_PORT" >/dev/null 2>&1 &
    rig_wait_for "rig_output_has . ip netns exec '$RIG_GW' ss -Htln 'sport = :$IPERF_PORT'" 10 ||
        { log "iperf3 server did not start"; exit 1; }
}

# --- modes -----------------------------------------------------------------------------------

run_raw() {
    log "raw veth: $RIG_CLIENT -> $RIG_GW_IP"
    measure raw "$RIG_GW_IP"
}

WG_G="${RIG_ID}wg" WG_C="${RIG_ID}wc"
wg_stop() {
    local ns p
    for ns in "$RIG_GW" "$RIG_CLIENT"; do
        for p in $(rig_pids_by_comm "$ns" '^wireguard-go'); do kill -TERM "$p" 2>/dev/null || true; done
    done
    rig_wait_for "[[ -z \"\$(rig_pids_by_comm '$RIG_GW' '^wireguard-go')\$(rig_pids_by_comm '$RIG_CLIENT' '^wireguard-go')\" ]]" 5 || true
    rm -f "/var/run/wireguard/$WG_G.sock" "/var/run/wireguard/$WG_C.sock"
}

run_wg() {
    command -v wireguard-go >/dev/null && command -v wg >/dev/null ||
        { log "wireguard-go/wg missing: skipping"; return 0; }
    rig_on_cleanup wg_stop
    local d="$RIG_DIR/wg"; mkdir -p "$d"
    ( umask 077; wg genkey >"$d/g.key"; wg genkey >"$d/c.key" )
    wg pubkey <"$d/g.key" >"$d/g.pub"; wg pubkey <"$d/c.key" >"$d/c.pub"
    log "wireguard-go $(wireguard-go --version 2>/dev/null | head -n1 | awk '{print $2}'): $WG_C -> $WG_G"
    WG_PROCESS_FOREGROUND=1 ip netns exec "$RIG_GW" wireguard-go "$WG_G" >"$d/g.log" 2>&1 &
    WG_PROCESS_FOREGROUND=1 ip netns exec "$RIG_CLIENT" wireguard-go "$WG_C" >"$d/c.log" 2>&1 &
    rig_wait_for "[[ -S /var/run/wireguard/$WG_G.sock && -S /var/run/wireguard/$WG_C.sock ]]" 10 ||
        { log "wireguard-go did not start: $(cat "$d"/*.log)"; return 1; }
    rig_exec "$RIG_GW" wg set "$WG_G" listen-port 51820 private-key "$d/g.key" \
        peer "$(cat "$d/c.pub")" allowed-ips 10.99.0.2/32
    rig_exec "$RIG_CLIENT" wg set "$WG_C" private-key "$d/c.key" \
        peer "$(cat "$d/g.pub")" endpoint "$RIG_GW_IP:51820" allowed-ips 10.99.0.0/24
    ip -n "$RIG_GW" addr add 10.99.0.1/24 dev "$WG_G"
    ip -n "$RIG_CLIENT" addr add 10.99.0.2/24 dev "$WG_C"
    ip -n "$RIG_GW" link set "$WG_G" mtu 1420 up
    ip -n "$RIG_CLIENT" link set "$WG_C" mtu 1420 up
    rig_wait_for "ip netns exec '$RIG_CLIENT' ping -c1 -W1 10.99.0.1" 15 ||
        { log "wireguard-go tunnel does not pass ping"; return 1; }
    local pids
    mapfile -t pids < <(rig_pids_by_comm "$RIG_GW" '^wireguard-go'; rig_pids_by_comm "$RIG_CLIENT" '^wireguard-go')
    measure wg 10.99.0.1 "${pids[@]}"
    wg_stop
}

JV_G="${RIG_ID}g" JV_C="${RIG_ID}c"
jvpn_stop() {
    timeout 10 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" down "$JV_C" >/dev/null 2>&1 || true
    timeout 10 ip netns exec "$RIG_GW" "$JVPN_BIN" down "$JV_G" >/dev/null 2>&1 || true
}

run_jvpn() {
    rig_jvpn_ensure_built || { log "jvpn: no binary, skipping"; return 0; }
    rig_on_cleanup jvpn_stop
    local d="$RIG_DIR/jvpn"; mkdir -p "$d"; chmod 700 "$d"
    rig_jvpn_keypair gw && rig_jvpn_keypair client || { log "jvpn genkey/pubkey failed"; return 1; }
    rig_jvpn_pair_configs "$d" "$JV_G" "$JV_C" 51821 up0 || { log "jvpn configs failed"; return 1; }
    if [[ -n "$WORKERS" ]]; then sed -i "/^\[Interface\]/a Workers = $WORKERS" "$d/$JV_G.conf" "$d/$JV_C.conf"; fi
    log "jvpn: $JV_C -> $JV_G ($JVPN_BIN)"
    timeout 30 ip netns exec "$RIG_GW" "$JVPN_BIN" up "$d/$JV_G.conf" || { log "jvpn up (gateway) failed"; return 1; }
    timeout 30 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" up "$d/$JV_C.conf" || { log "jvpn up (client) failed"; return 1; }
    rig_wait_for "ip netns exec '$RIG_CLIENT' ping -c1 -W1 10.77.0.1" 15 ||
        { log "jvpn tunnel does not pass ping"; return 1; }
    local pids
    mapfile -t pids < <(rig_pids_by_comm "$RIG_GW" '^jvpn'; rig_pids_by_comm "$RIG_CLIENT" '^jvpn')
    [[ ${#pids[@]} -gt 0 ]] || log "jvpn: no daemon process found (CPU/RSS not measured)"
    measure jvpn 10.77.0.1 "${pids[@]+"${pids[@]}"}"
    jvpn_stop
}

# --- main ------------------------------------------------------------------------------------

start_iperf_server
failed=()
if want raw; then run_raw || failed+=(raw); fi
if want wg; then run_wg || { failed+=(wg); wg_stop; }; fi
if want jvpn; then run_jvpn || { failed+=(jvpn); jvpn_stop; }; fi

gbit() { [[ "$1" == nan || -z "$1" ]] && echo "n/a" || awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e9 }'; }
fmt() { [[ "$1" == nan || -z "$1" ]] && echo "n/a" || echo "$1"; }
ratio() {
    local a="${R[jvpn.$1]:-}" b="${R[wg.$1]:-}"
    if [[ -z "$a" || -z "$b" || "$a" == nan || "$b" == nan || "$a" == - || "$b" == - ]]; then echo "n/a"; return; fi
    awk -v a="$a" -v b="$b" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'
}

commit="$(git -C "$RIG_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
cpu_model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
echo
echo "jvpn throughput benchmark"
echo "  date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  commit:  $commit"
echo "  kernel:  $(uname -r) ($(uname -m)), $(nproc) CPUs${cpu_model:+, $cpu_model}"
echo "  iperf3:  ${SECONDS_PER}s per test, $RUNS run(s), median reported"
echo
# added MODE METRIC: tunnel RTT minus raw veth RTT (ms), when raw ran
added() {
    local a="${R[$1.$2]:-}" b="${R[raw.$2]:-}"
    if [[ -z "$a" || -z "$b" || "$a" == nan || "$b" == nan ]]; then echo "nan"; return; fi
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a - b }'
}
for m in wg jvpn; do
    [[ -n "${R[$m.ok]:-}" ]] || continue
    R[$m.addidle]="$(added "$m" ping)"; R[$m.addload]="$(added "$m" pingload)"
done
kpps() { [[ "$1" == nan || -z "$1" ]] && echo "n/a" || awk -v p="$1" 'BEGIN { printf "%.1f", p / 1000 }'; }
printf '%-14s %11s %11s %11s %11s %11s %11s %10s %9s %9s %9s %9s\n' mode "TCPx1 Gb/s" "TCPx4 Gb/s" "UDP64 kpps" "UDP64 in" "ping ms" \
    "ping load" "CPU s/GB" "RSS idle" "RSS load" "TCP retr" "UDP drop"
for m in raw wg jvpn; do
    want "$m" || continue
    label="$m"; [[ "$m" == raw ]] && label="raw veth"; [[ "$m" == wg ]] && label="wireguard-go"
    if [[ -z "${R[$m.ok]:-}" ]]; then printf '%-14s %11s\n' "$label" "failed/skipped"; continue; fi
    printf '%-14s %11s %11s %11s %11s %11s %11s %10s %9s %9s %9s %9s\n' "$label" "$(gbit "${R[$m.tcp1]}")" "$(gbit "${R[$m.tcp4]}")" \
        "$(kpps "${R[$m.udp]}")" "$(kpps "${R[$m.udpif]}")" "$(fmt "${R[$m.ping]}")" "$(fmt "${R[$m.pingload]}")" "$(fmt "${R[$m.cpu]}")" \
        "$(fmt "${R[$m.rss_idle]:-}")" "$(fmt "${R[$m.rss]}")" "${R[$m.retr]}" "$(fmt "${R[$m.tcpdrops]}")"
done
echo "(UDP64: kpps that reached iperf3 / that the tunnel delivered to its socket (received + socket drops); ping: average RTT,"
echo " idle and during the 1-stream run; RSS: MB, the larger daemon, VmRSS idle / VmHWM after load;"
echo " TCP retr: the senders' retransmits, 1 / 4 streams; UDP drop: receive-buffer drops in both namespaces during the TCP runs)"
if [[ -n "${R[raw.ok]:-}" ]]; then
    for m in wg jvpn; do
        [[ -n "${R[$m.ok]:-}" ]] || continue
        echo "added RTT $m (tunnel - raw): idle $(fmt "${R[$m.addidle]}") ms, under load $(fmt "${R[$m.addload]}") ms"
    done
fi
if [[ -n "${R[jvpn.ok]:-}" && -n "${R[wg.ok]:-}" ]]; then
    echo
    echo "jvpn / wireguard-go:  TCPx1 $(ratio tcp1)  TCPx4 $(ratio tcp4)  UDP64 pps $(ratio udp) (in: $(ratio udpif))  CPU/GB $(ratio cpu)  RSS $(ratio rss)"
    echo "                      added RTT idle $(ratio addidle)  added RTT under load $(ratio addload)"
fi

if [[ -n "$JSON_OUT" ]]; then
    {
        printf '{"date": "%s", "commit": "%s", "kernel": "%s", "seconds": %s, "runs": %s, "results": {' \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "$(uname -r)" "$SECONDS_PER" "$RUNS"
        sep=""
        for m in raw wg jvpn; do
            [[ -n "${R[$m.ok]:-}" ]] || continue
            printf '%s"%s": {"tcp1_bps": "%s", "tcp4_bps": "%s", "udp64_pps": "%s", "udp64_delivered_pps": "%s", "ping_avg_ms": "%s", "ping_load_ms": "%s", "cpu_s_per_gb": "%s", "rss_idle_mb": "%s", "rss_load_mb": "%s", "tcp_retransmits_x1_x4": "%s", "udp_rcvbuf_drops_tcp_runs": "%s"}' \
                "$sep" "$m" "${R[$m.tcp1]}" "${R[$m.tcp4]}" "${R[$m.udp]}" "${R[$m.udpif]}" "${R[$m.ping]}" "${R[$m.pingload]}" "${R[$m.cpu]}" "${R[$m.rss_idle]:-}" "${R[$m.rss]}" "${R[$m.retr]}" "${R[$m.tcpdrops]}"
            sep=", "
        done
        printf '}}\n'
    } >"$JSON_OUT"
    log "results written to $JSON_OUT"
fi

if [[ ${#failed[@]} -gt 0 ]]; then
    log "failed: ${failed[*]}"
    exit 1
fi
