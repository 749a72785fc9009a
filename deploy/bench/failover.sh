#!/usr/bin/env bash
# Failover benchmark: the outage a 1 ms UDP echo through the tunnel sees when the active uplink
# goes down, is blackholed at the router, or turns 30 % lossy, under a TCP stream. jvpn at the
# default policy and at the rig policy, a baseline jvpn binary (BASE_BIN) and wireguard-go, same run.
#
# usage: deploy/bench/failover.sh [--reps N] [--only jvpn,base,wg] [--policies default,rig]
#                                 [--scenarios link,blackhole,loss] [--wait S] [--json FILE]
#   --reps N       repetitions per cell (default 20; --reps 5 for a quick run)
#   --only         systems: jvpn ($JVPN_BIN), base ($BASE_BIN), wg (wireguard-go); default
#                  jvpn,wg, plus base when BASE_BIN is set
#   --policies     jvpn [Policy] sets: default (README defaults), rig (ProbeIntervalMs 50,
#                  DeadAfterMs 300, StandbyProbeIntervalMs 200); both by default
#   --wait S       how long one repetition waits for recovery (default 5 s)
#
# Rig: deploy/netns/rig.sh router rig (client ns with up0/up1 -> router ns -> gateway 10.203.0.1),
# faults from deploy/netns/flap.sh. Every (scenario, policy, system) cell gets fresh daemons, one
# probe (deploy/bench/udpecho.py: a sequence-numbered datagram every 1 ms to an echo server on the
# gateway's tunnel address) and one paced TCP stream (SHA-256 checked), both across all its
# repetitions. Per repetition: the fault on the ACTIVE uplink (its command's start and end
# timestamped), until 1000 consecutive echoes come back (or --wait), restore, wait until the
# tunnel is settled. See FAILOVER-NOTES.md for the method and its caveats.
#
# env: JVPN_BIN (default $REPO/.build/release/jvpn), BASE_BIN (a baseline jvpn binary: system
#      "base"), RIG_KEEP_DIR=1 keeps logs (path printed), FAILOVER_POLICY_EXTRA (extra `Key = value`
#      lines for every jvpn [Policy]), FAILOVER_PREEMPT=1 (PreemptToPreferred = true),
#      FAILOVER_PROBE_RT=0 (run the probe and the echo server without SCHED_FIFO),
#      FAILOVER_DEBUG=1 (path status while settling)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../netns/rig.sh
. "$BENCH_DIR/../netns/rig.sh"
FLAP="$BENCH_DIR/../netns/flap.sh"
ECHO="$BENCH_DIR/udpecho.py"

REPS=20
ONLY="jvpn,wg${BASE_BIN:+,base}"
POLICIES="default,rig"
SCENARIOS="link,blackhole,loss"
WAIT_S=5
JSON_OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        --reps=*) REPS="${1#*=}"; shift ;;
        --only) ONLY="$2"; shift 2 ;;
        --only=*) ONLY="${1#*=}"; shift ;;
        --policies) POLICIES="$2"; shift 2 ;;
        --policies=*) POLICIES="${1#*=}"; shift ;;
        --scenarios) SCENARIOS="$2"; shift 2 ;;
        --scenarios=*) SCENARIOS="${1#*=}"; shift ;;
        --wait) WAIT_S="$2"; shift 2 ;;
        --wait=*) WAIT_S="${1#*=}"; shift ;;
        --json) JSON_OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$REPS" =~ ^[0-9]+$ && "$REPS" -ge 1 && "$REPS" -le 200 ]] || { echo "--reps wants 1..200" >&2; exit 2; }
[[ "$WAIT_S" =~ ^[0-9]+$ && "$WAIT_S" -ge 2 && "$WAIT_S" -le 60 ]] || { echo "--wait wants 2..60 (seconds)" >&2; exit 2; }
for m in ${ONLY//,/ }; do
    case "$m" in jvpn|base|wg) ;; *) echo "--only: unknown system '$m' (jvpn, base, wg)" >&2; exit 2 ;; esac
done
for p in ${POLICIES//,/ }; do
    case "$p" in default|rig) ;; *) echo "--policies: unknown '$p' (default, rig)" >&2; exit 2 ;; esac
done
for s in ${SCENARIOS//,/ }; do
    case "$s" in link|blackhole|loss) ;; *) echo "--scenarios: unknown '$s' (link, blackhole, loss)" >&2; exit 2 ;; esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
want_s() { [[ ",$SCENARIOS," == *",$1,"* ]]; }
want_p() { [[ ",$POLICIES," == *",$1,"* ]]; }
if want base; then
    [[ -n "${BASE_BIN:-}" && -x "${BASE_BIN:-}" ]] || { echo "--only base needs BASE_BIN=<an executable jvpn>" >&2; exit 2; }
fi

[[ $EUID -eq 0 ]] || { echo "failover.sh needs root (network namespaces, TUN)" >&2; exit 1; }
for tool in python3 ip; do
    command -v "$tool" >/dev/null || { echo "missing $tool (deploy/install-deps.sh)" >&2; exit 1; }
done
RT=()
if [[ "${FAILOVER_PROBE_RT:-1}" == 1 ]] && command -v chrt >/dev/null && chrt -f 10 true 2>/dev/null; then RT=(chrt -f 10); fi

log() { printf '[failover %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# epoch_ns: the realtime clock in ns without a fork (the probe stamps with the same clock)
epoch_ns() { local t="$EPOCHREALTIME"; echo "${t//[.,]/}000"; }

CLEAN_N=1000         # 1000 consecutive echoes (1 s) after the fault's end = the tunnel is clean again
WAIT_MS=$(( WAIT_S * 1000 ))
TCP_PORT=9100
ECHO_PORT=9200
TCP_MBPS=4
SETTLE_TIMEOUT_S=30

rig_init
rig_create_router
export RIG_CLIENT RIG_ROUTER RIG_DIR RIG_PREFIX
UPLINKS=(up0 up1)

# tcpstream.py serve HOST PORT READY | send HOST PORT STOPFILE MBPS -> one JSON line
cat >"$RIG_DIR/tcpstream.py" <<'PY'
import hashlib, json, os, socket, sys, time
def serve(host, port, ready):
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port)); ls.listen(1); ls.settimeout(60)
    open(ready, "w").close()
    c, _ = ls.accept(); c.settimeout(180)
    h = hashlib.sha256(); n = 0; last = time.monotonic(); stall = 0.0
    try:
        while True:
            b = c.recv(1 << 16)
            now = time.monotonic(); stall = max(stall, now - last); last = now
            if not b:
                break
            h.update(b); n += len(b)
    except OSError as e:
        print(json.dumps({"error": "recv: %s" % e, "bytes": n})); return 1
    c.close()
    print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "max_stall_ms": round(stall * 1000)})); return 0
def send(host, port, stop, mbps):
    s = socket.create_connection((host, port), timeout=30); s.settimeout(180)
    h = hashlib.sha256(); n = 0; rate = mbps * 1e6 / 8; start = time.monotonic()
    try:
        while not os.path.exists(stop):
            ahead = n / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(min(ahead, 0.05)); continue
            b = os.urandom(8192); s.sendall(b); h.update(b); n += len(b)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
    except OSError as e:
        print(json.dumps({"error": "send: %s" % e, "bytes": n})); return 1
    print(json.dumps({"bytes": n, "sha256": h.hexdigest()})); return 0
a = sys.argv
sys.exit(serve(a[2], int(a[3]), a[4]) if a[1] == "serve" else send(a[2], int(a[3]), a[4], float(a[5])))
PY

# stats V... -> "median worst" (nan nan when empty)
stats() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan nan"; exit }
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        print m, a[NR] }'
}
label() { case "$1" in link) echo link-down ;; blackhole) echo blackhole ;; loss) echo "loss 30%" ;; esac; }
sysname() { case "$1" in wg) echo wireguard-go ;; base) echo "jvpn base" ;; *) echo jvpn ;; esac; }
jget() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); v=d.get(sys.argv[2]); print('' if v is None else (str(v).lower() if isinstance(v, bool) else v))" "$1" "$2"; }

# --- the TCP stream across a cell -----------------------------------------------------------

TCP_SEND_PID="" TCP_RECV_PID=""
tcp_start() {   # tcp_start SERVER_IP TAG
    local ip="$1" tag="$2"
    rm -f "$RIG_DIR/tcp.ready" "$RIG_DIR/tcp.stop"
    ip netns exec "$RIG_GW" python3 "$RIG_DIR/tcpstream.py" serve "$ip" "$TCP_PORT" "$RIG_DIR/tcp.ready" \
        >"$RIG_DIR/tcp.$tag.recv" 2>&1 &
    TCP_RECV_PID=$!
    rig_wait_for "[[ -f '$RIG_DIR/tcp.ready' ]]" 10 || { log "TCP receiver did not start"; return 1; }
    ip netns exec "$RIG_CLIENT" python3 "$RIG_DIR/tcpstream.py" send "$ip" "$TCP_PORT" "$RIG_DIR/tcp.stop" "$TCP_MBPS" \
        >"$RIG_DIR/tcp.$tag.send" 2>&1 &
    TCP_SEND_PID=$!
}
tcp_finish() {  # tcp_finish TAG -> prints "yes (...)" or "no (...)"
    local tag="$1"
    touch "$RIG_DIR/tcp.stop"
    # The stream may still be backing off after the last fault: give it up to 60 s to drain.
    for _ in $(seq 1 600); do
        kill -0 "$TCP_SEND_PID" 2>/dev/null || kill -0 "$TCP_RECV_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$TCP_SEND_PID" "$TCP_RECV_PID" 2>/dev/null || true
    wait "$TCP_SEND_PID" 2>/dev/null || true
    wait "$TCP_RECV_PID" 2>/dev/null || true
    python3 - "$RIG_DIR/tcp.$tag.send" "$RIG_DIR/tcp.$tag.recv" <<'PY'
import json, sys
def load(f):
    try:
        return json.loads(open(f).read().strip().splitlines()[-1])
    except Exception as e:
        return {"error": "no result (%s)" % e}
s, r = load(sys.argv[1]), load(sys.argv[2])
if "error" in s or "error" in r:
    print("no (%s)" % (s.get("error") or r.get("error")))
elif s["bytes"] != r["bytes"] or s["sha256"] != r["sha256"]:
    print("no (sha256 mismatch: sent %d B, received %d B)" % (s["bytes"], r["bytes"]))
else:
    print("yes (%.1f MB, longest stall %d ms)" % (r["bytes"] / 1e6, r["max_stall_ms"]))
PY
}

# --- the 1 ms echo ----------------------------------------------------------------------------

ECHO_SRV_PID=""
echo_server_start() {   # echo_server_start TUNNEL_IP
    rm -f "$RIG_DIR/echosrv.ready"
    # `ip netns exec` execs chrt, which execs python: $! is the server itself.
    ip netns exec "$RIG_GW" "${RT[@]}" python3 "$ECHO" serve "$1" "$ECHO_PORT" --ready-file "$RIG_DIR/echosrv.ready" \
        >"$RIG_DIR/echosrv.log" 2>&1 &
    ECHO_SRV_PID=$!
    rig_wait_for "[[ -f '$RIG_DIR/echosrv.ready' ]]" 10 || { log "echo server did not start: $(cat "$RIG_DIR/echosrv.log")"; return 1; }
}
echo_server_stop() {
    [[ -n "$ECHO_SRV_PID" ]] || return 0
    kill -TERM "$ECHO_SRV_PID" 2>/dev/null || true
    wait "$ECHO_SRV_PID" 2>/dev/null || true
    ECHO_SRV_PID=""
}

fault() {   # fault SCENARIO UPLINK
    case "$1" in
        link) "$FLAP" link-down "$2" ;;
        blackhole) "$FLAP" blackhole "$2" ;;
        loss) "$FLAP" netem "$2" loss 30% ;;
    esac 2>>"$RIG_DIR/flap.log"
}
restore() { # restore SCENARIO UPLINK
    case "$1" in
        link) "$FLAP" link-up "$2" ;;
        blackhole) "$FLAP" unblackhole "$2" ;;
        loss) "$FLAP" netem-clear "$2" ;;
    esac 2>>"$RIG_DIR/flap.log"
}

# The probe runs across a cell (the traffic mix is the same at every fault): PROBE_DIR is how the
# benchmark and the probe talk (fault.N in, echo.N out, see udpecho.py).
PROBE_PID="" PROBE_DIR=""
probe_start() {   # probe_start TARGET_IP TAG
    PROBE_DIR="$RIG_DIR/probe.$2"
    mkdir -p "$PROBE_DIR"
    ip netns exec "$RIG_CLIENT" "${RT[@]}" python3 "$ECHO" probe "$1" "$ECHO_PORT" "$PROBE_DIR" \
        --wait-ms "$WAIT_MS" --clean-n "$CLEAN_N" 2>>"$RIG_DIR/probe.err" &
    PROBE_PID=$!
    rig_wait_for "[[ -f '$PROBE_DIR/ready' ]]" 10 0.05 || { log "the tunnel passes no echo"; return 1; }
}
probe_stop() {
    [[ -n "$PROBE_PID" ]] || return 0
    touch "$PROBE_DIR/stop"
    rig_wait_for "! kill -0 $PROBE_PID" 5 0.05 || kill -TERM "$PROBE_PID" 2>/dev/null || true
    wait "$PROBE_PID" 2>/dev/null || true
    PROBE_PID=""
}

# measure_rep SCENARIO UPLINK -> JSON line (udpecho.py analyze) on stdout
measure_rep() {
    local sc="$1" up="$2" ff="$PROBE_DIR/fault.$REP" t0 t1
    kill -0 "$PROBE_PID" 2>/dev/null || { echo '{"recovered": false, "error": "the echo probe is gone"}'; return 0; }
    t0="$(epoch_ns)"
    fault "$sc" "$up" || log "flap.sh fault $sc $up failed"
    t1="$(epoch_ns)"
    printf '%s\n%s\n' "$t0" "$t1" >"$ff.tmp" && mv "$ff.tmp" "$ff"
    # The probe answers once the tunnel is clean again or at the wait limit; this bound is for a
    # wedged probe.
    rig_wait_for "[[ -f '$PROBE_DIR/echo.$REP' ]]" $(( WAIT_S + CLEAN_N / 1000 + 5 )) 0.05 ||
        { echo '{"recovered": false, "error": "the echo probe did not answer"}'; return 0; }
    python3 "$ECHO" analyze "$PROBE_DIR/echo.$REP" "$ff" --wait-ms "$WAIT_MS" --clean-n "$CLEAN_N" 2>&1 ||
        echo '{"recovered": false, "error": "analysis failed"}'
}

# --- jvpn ------------------------------------------------------------------------------------

JV_G="${RIG_ID}g" JV_C="${RIG_ID}c"
JV_BIN="" JV_D=""
jvpn_stop() {
    [[ -n "$JV_BIN" ]] || return 0
    timeout 10 ip netns exec "$RIG_CLIENT" "$JV_BIN" down "$JV_C" >/dev/null 2>&1 || true
    timeout 10 ip netns exec "$RIG_GW" "$JV_BIN" down "$JV_G" >/dev/null 2>&1 || true
}
rig_on_cleanup jvpn_stop
jv_status() { timeout 5 ip netns exec "$RIG_CLIENT" "$JV_BIN" status "$JV_C" --json 2>/dev/null; }
# jv_view -> "STATE ACTIVE_UPLINK SWITCHES LIVE_UDP_UPLINKS MAX_LOSS_PCT"
jv_view() {
    jv_status | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)["sessions"][0]
except Exception:
    print("none - -1 0 100"); sys.exit(0)
ap = s.get("active_path") or "-"
ps = s.get("paths", [])
# uplinks with a live UDP path (every uplink also has a TCP path by default; a binary without
# the TCP transport shows no "transport")
nd = len({p.get("uplink") for p in ps if p.get("status") != "dead" and p.get("transport", "udp") == "udp"})
loss = max([float(p.get("loss_pct") or 0) for p in ps] or [100])
print(s.get("state", "none"), ap.split("/")[0] if ap != "-" else "-", s.get("switches", -1), nd, loss)' 2>/dev/null || echo "none - -1 0 100"
}
# jv_suspicion -> "raised/cleared/confirmed/probes", or "-" for a binary without the detector
jv_suspicion() {
    jv_status | python3 -c '
import json, sys
try:
    q = json.load(sys.stdin)["sessions"][0]["suspicion"]
    print("/".join(str(int(q[k])) for k in ("raised", "cleared", "confirmed", "probes")))
except Exception:
    print("-")' 2>/dev/null || echo "-"
}

# jvpn_settle SCENARIO: the precondition of the next repetition, held for a while, bounded:
# ATTACHED, every uplink with a live UDP path (not just its TCP path), no switch; for `loss` also
# every path under LossVolatilePct (5 %) and held STABLE_S, so the clean uplink is a valid target
# for a VOLATILE session (it must be stable); with preemption on, also back on the preferred uplink.
jvpn_settle() {
    local sc="$1" deadline=$(( $(date +%s) + SETTLE_TIMEOUT_S )) st="" up="" sw="" nd="" loss="" last_sw="" good_since="" now
    local hold=1.5 maxloss=100
    [[ "$sc" == loss ]] && { hold="$STABLE_S"; maxloss=5; }
    local stable_ns; stable_ns="$(awk -v s="$hold" 'BEGIN { printf "%d", s * 1e9 }')"
    while (( $(date +%s) < deadline )); do
        read -r st up sw nd loss < <(jv_view)
        now="$(date +%s%N)"
        if [[ "$st" == ATTACHED && "$nd" -ge ${#UPLINKS[@]} && "$sw" == "$last_sw" ]] &&
           awk -v l="$loss" -v m="$maxloss" 'BEGIN { exit !(l < m) }' &&
           { [[ "${FAILOVER_PREEMPT:-0}" != 1 ]] || [[ "$up" == "${UPLINKS[0]}" ]]; }; then
            [[ -n "$good_since" ]] || good_since="$now"
            (( now - good_since >= stable_ns )) && return 0
        else
            good_since=""
        fi
        last_sw="$sw"
        [[ -n "${FAILOVER_DEBUG:-}" ]] && { log "settle: $st $up sw=$sw live=$nd loss=$loss"; jv_status | python3 -c 'import json,sys; [print("   ", p) for p in json.load(sys.stdin)["sessions"][0]["paths"]]' >&2 || true; }
        sleep 0.2
    done
    log "jvpn did not settle within ${SETTLE_TIMEOUT_S}s (state $st, active $up, switches $sw, live paths $nd, max loss $loss %)"
    return 1
}

# Policies. Both raise MaxSwitchesPerMinute: every repetition costs a switch (and settling may
# cost another), the default 10/min would measure the limiter. PreemptToPreferred is off unless
# FAILOVER_PREEMPT=1: the next repetition then breaks whichever uplink is active, and no preemption
# (a switch of its own) falls inside a measurement.
# - default: every detection knob at its README default (ProbeIntervalMs 200, StandbyProbeIntervalMs
#   1000, DeadAfterMs 1000);
# - rig: the rig policy of the issue (ProbeIntervalMs 50, DeadAfterMs 300) and StandbyProbeIntervalMs
#   200, so that a standby's 20-probe loss window forgets a fault in 4 s instead of 20 s (shorter
#   loss repetitions); detection on the active path is ProbeIntervalMs/DeadAfterMs and suspicion.
policy_lines() {
    local lines=("MaxSwitchesPerMinute = 60")
    if [[ "$1" == rig ]]; then lines+=("ProbeIntervalMs = 50" "DeadAfterMs = 300" "StandbyProbeIntervalMs = 200"); fi
    if [[ "${FAILOVER_PREEMPT:-0}" == 1 ]]; then lines+=("PreemptToPreferred = true"); else lines+=("PreemptToPreferred = false"); fi
    [[ -n "${FAILOVER_POLICY_EXTRA:-}" ]] && lines+=("$FAILOVER_POLICY_EXTRA")
    printf '%s\n' "${lines[@]}"
}
STABLE_S=3.5   # StableWindowMs (3000, default) + margin

# jvpn_setup BIN POLICY DIR: fresh daemons of BIN with POLICY, configs and event logs in DIR
jvpn_setup() {
    JV_BIN="$1" JV_D="$3"
    mkdir -p "$JV_D"; chmod 700 "$JV_D"
    [[ -f "$RIG_DIR/gw.key" ]] || { rig_jvpn_keypair gw && rig_jvpn_keypair client; } || { log "jvpn genkey/pubkey failed"; return 1; }
    rig_jvpn_pair_configs "$JV_D" "$JV_G" "$JV_C" 51820 "${UPLINKS[0]}, ${UPLINKS[1]}" "$(policy_lines "$2")" \
        || { log "jvpn configs failed"; return 1; }
    timeout 30 ip netns exec "$RIG_GW" "$JV_BIN" up "$JV_D/$JV_G.conf" >&2 || { log "jvpn up (gateway) failed"; return 1; }
    timeout 30 ip netns exec "$RIG_CLIENT" "$JV_BIN" up "$JV_D/$JV_C.conf" >&2 || { log "jvpn up (client) failed"; return 1; }
    rig_wait_for "ip netns exec '$RIG_CLIENT' ping -c1 -W1 10.77.0.1" 15 || { log "jvpn tunnel does not pass ping"; return 1; }
    jvpn_settle loss
}

# jv_alive -> 0 when both daemons answer on their control sockets; else prints which one is gone
jv_alive() {
    local ok=0
    timeout 5 ip netns exec "$RIG_GW" "$JV_BIN" status "$JV_G" >/dev/null 2>&1 || { echo gateway; ok=1; }
    timeout 5 ip netns exec "$RIG_CLIENT" "$JV_BIN" status "$JV_C" >/dev/null 2>&1 || { echo client; ok=1; }
    return "$ok"
}

jvpn_active_uplink() { local st up sw nd loss; read -r st up sw nd loss < <(jv_view); echo "$up"; }

# --- wireguard-go ----------------------------------------------------------------------------

WG_G="${RIG_ID}wg" WG_C="${RIG_ID}wc"
wg_stop() {
    local ns p
    for ns in "$RIG_GW" "$RIG_CLIENT"; do
        for p in $(rig_pids_by_comm "$ns" '^wireguard-go'); do kill -TERM "$p" 2>/dev/null || true; done
    done
    rig_wait_for "[[ -z \"\$(rig_pids_by_comm '$RIG_GW' '^wireguard-go')\$(rig_pids_by_comm '$RIG_CLIENT' '^wireguard-go')\" ]]" 5 || true
    rm -f "/var/run/wireguard/$WG_G.sock" "/var/run/wireguard/$WG_C.sock"
}
wg_setup() {
    if ! command -v wireguard-go >/dev/null || ! command -v wg >/dev/null; then log "wireguard-go/wg missing"; return 1; fi
    rig_on_cleanup wg_stop
    local d="$RIG_DIR/wg"; mkdir -p "$d"
    ( umask 077; wg genkey >"$d/g.key"; wg genkey >"$d/c.key" )
    wg pubkey <"$d/g.key" >"$d/g.pub"; wg pubkey <"$d/c.key" >"$d/c.pub"
    WG_PROCESS_FOREGROUND=1 ip netns exec "$RIG_GW" wireguard-go "$WG_G" >"$d/g.log" 2>&1 &
    WG_PROCESS_FOREGROUND=1 ip netns exec "$RIG_CLIENT" wireguard-go "$WG_C" >"$d/c.log" 2>&1 &
    rig_wait_for "[[ -S /var/run/wireguard/$WG_G.sock && -S /var/run/wireguard/$WG_C.sock ]]" 10 ||
        { log "wireguard-go did not start: $(cat "$d"/*.log)"; return 1; }
    rig_exec "$RIG_GW" wg set "$WG_G" listen-port 51821 private-key "$d/g.key" \
        peer "$(cat "$d/c.pub")" allowed-ips 10.99.0.2/32
    rig_exec "$RIG_CLIENT" wg set "$WG_C" private-key "$d/c.key" \
        peer "$(cat "$d/g.pub")" endpoint "$RIG_GW_IP:51821" allowed-ips 10.99.0.0/24
    ip -n "$RIG_GW" addr add 10.99.0.1/24 dev "$WG_G"
    ip -n "$RIG_CLIENT" addr add 10.99.0.2/24 dev "$WG_C"
    ip -n "$RIG_GW" link set "$WG_G" mtu 1420 up
    ip -n "$RIG_CLIENT" link set "$WG_C" mtu 1420 up
    rig_wait_for "ip netns exec '$RIG_CLIENT' ping -c1 -W1 10.99.0.1" 15 || { log "wireguard-go tunnel does not pass ping"; return 1; }
}
wg_active_uplink() {
    local r; r="$(ip -n "$RIG_CLIENT" route get "$RIG_GW_IP" 2>/dev/null || true)"
    awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }' <<<"$r"
}
wg_settle() {
    rig_wait_for "ip netns exec '$RIG_CLIENT' ping -c1 -W1 10.99.0.1 && [[ \"\$(wg_active_uplink)\" == ${UPLINKS[0]} ]]" \
        "$SETTLE_TIMEOUT_S" 0.2 || { log "wireguard-go did not settle"; return 1; }
    sleep 0.5
}

# --- one cell: a (scenario, policy, system) with its repetitions -----------------------------

declare -A R   # R[cell.KEY]: holes gaps lost lossy cleans rec n tcp evrec note susp sendgap cmd effect
CELLS=()       # cell keys in run order: "sc|policy|sys"

jvpn_events_since() {   # jvpn_events_since LINE_NO -> compact timeline of client events after it
    tail -n +"$(( $1 + 1 ))" "$JV_D/$JV_C.events.jsonl" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        continue
    ev = e.get("event")
    if ev == "STATE_CHANGE":
        print("  %s %s %s -> %s (%s)" % (e.get("ts"), ev, e.get("from"), e.get("to"), e.get("reason")))
    elif ev == "TRANSPORT_SWITCH":
        print("  %s %s %s -> %s (%s) recovery_ms=%s" % (e.get("ts"), ev, e.get("from_path"), e.get("to_path"), e.get("reason"), e.get("recovery_ms")))
    else:
        print("  %s %s %s" % (e.get("ts"), ev, {k: v for k, v in e.items() if k in ("reason", "check", "result", "detail")}))
'
}
# first_switch LINE_NO ONSET_NS -> "REASON:RECOVERY_MS:MS_AFTER_ONSET" of the first TRANSPORT_SWITCH
# after that line (event ts has ms resolution; "-" without an onset)
first_switch() {
    tail -n +"$(( $1 + 1 ))" "$JV_D/$JV_C.events.jsonl" 2>/dev/null | python3 -c '
import datetime, json, sys
onset = int(sys.argv[1]) if sys.argv[1].isdigit() else None
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "TRANSPORT_SWITCH":
        after = "-"
        if onset is not None:
            d = datetime.datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
            after = "%.0f" % ((d.timestamp() * 1e9 - onset) / 1e6)
        print("%s:%s:%s" % (e.get("reason"), e.get("recovery_ms"), after)); sys.exit(0)
print("none:-:-")' "$2"
}
count_switches() { tail -n +"$(( $1 + 1 ))" "$JV_D/$JV_C.events.jsonl" 2>/dev/null | grep -c '"TRANSPORT_SWITCH"' || true; }
ev_lines() { wc -l <"$JV_D/$JV_C.events.jsonl" 2>/dev/null || echo 0; }

# run_cell SCENARIO POLICY SYSTEM: the system is up and settled; REPS repetitions under one stream
run_cell() {
    local sc="$1" pol="$2" sys="$3" key="$1|$2|$3" tag="$3.$2.$1" ip up res rec ev0 evr swi gone v
    local holes=() gaps=() losts=() lossys=() cleans=() sgaps=() cmds=() effects=() sws=() recs=0
    if [[ "$sys" == wg ]]; then ip=10.99.0.1; else ip=10.77.0.1; fi
    CELLS+=("$key")
    log "$(sysname "$sys") / $pol / $sc: $REPS repetitions"
    [[ "$sys" == wg ]] || ev0="$(ev_lines)"
    probe_start "$ip" "$tag" || R[$key.note]="the echo probe did not start"
    tcp_start "$ip" "$tag" || R[$key.tcp]="no (stream did not start)"
    for (( REP = 1; REP <= REPS; REP++ )); do
        if [[ "$sys" != wg ]]; then
            gone="$(jv_alive | tr '\n' ' ')" || true
            if [[ -n "${gone// /}" ]]; then
                R[$key.note]="jvpn ${gone% } daemon no longer running (before rep $REP)"
                log "${R[$key.note]}; last jvpn trap in the kernel log (may be older): $(dmesg 2>/dev/null | grep -E 'traps: jvpn\[|jvpn\[[0-9]+\]: segfault' | tail -n1)"
                break
            fi
            up="$(jvpn_active_uplink)"
        else
            up="$(wg_active_uplink)"
        fi
        [[ " ${UPLINKS[*]} " == *" $up "* ]] || { log "no active uplink ($up), using ${UPLINKS[0]}"; up="${UPLINKS[0]}"; }
        [[ "$sys" == wg ]] || evr="$(ev_lines)"
        res="$(measure_rep "$sc" "$up")"
        swi=""
        if [[ "$sys" != wg ]]; then swi="$(first_switch "$evr" "$(jget "$res" onset_ns)")"; sws+=("$swi"); fi
        restore "$sc" "$up" || log "flap.sh restore $sc $up failed"
        rec="$(jget "$res" recovered)"
        if [[ "$rec" == true ]]; then
            recs=$(( recs + 1 )); holes+=("$(jget "$res" hole_ms)"); gaps+=("$(jget "$res" gap_ms)")
            cleans+=("$(jget "$res" clean_ms)")
            lossys+=("$(jget "$res" lossy_ms)")
            [[ -n "${lossys[-1]}" ]] || lossys[-1]=0
        else
            holes+=("$WAIT_MS"); gaps+=("$WAIT_MS"); cleans+=("$WAIT_MS"); lossys+=("$WAIT_MS")
        fi
        losts+=("$(jget "$res" lost)"); sgaps+=("$(jget "$res" send_gap_ms)")
        cmds+=("$(jget "$res" cmd_ms)"); effects+=("$(jget "$res" effect_ms)")
        v="$(jget "$res" error)"
        log "  rep $REP/$REPS on $up: recovered=$rec outage=$(jget "$res" hole_ms)ms longest-gap=$(jget "$res" gap_ms)ms lost=$(jget "$res" lost) lossy=$(jget "$res" lossy_ms)ms clean=$(jget "$res" clean_ms)ms effect=+$(jget "$res" effect_ms)ms of cmd $(jget "$res" cmd_ms)ms probe-send-gap=$(jget "$res" send_gap_ms)ms${swi:+ switch=$swi}${v:+ error=$v}"
        if [[ "$sys" != wg ]]; then
            if [[ "$rec" != true ]]; then
                log "  jvpn did not recover; client events during this repetition:"
                jvpn_events_since "$evr" >&2
            fi
            jvpn_settle "$sc" || { log "  events:"; jvpn_events_since "$evr" >&2; }
        else
            wg_settle || true
        fi
    done
    R[$key.tcp]="$(tcp_finish "$tag")"
    probe_stop
    R[$key.holes]="${holes[*]}" R[$key.gaps]="${gaps[*]}" R[$key.lost]="${losts[*]}" R[$key.lossy]="${lossys[*]}" R[$key.cleans]="${cleans[*]}"
    R[$key.sendgap]="${sgaps[*]}" R[$key.cmd]="${cmds[*]}" R[$key.effect]="${effects[*]}"
    R[$key.rec]="$recs" R[$key.n]="${#gaps[@]}"
    if [[ "$sys" != wg ]]; then
        R[$key.susp]="$(jv_suspicion)"
        R[$key.evrec]="$(python3 - "${sws[@]+"${sws[@]}"}" <<'PY'
import collections, sys
a = [x.split(":") for x in sys.argv[1:]]
reasons = collections.Counter(x[0] for x in a)
def med(v):
    v = sorted(v); n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
rec = [float(x[1]) for x in a if x[1] not in ("", "-", "None")]
aft = [float(x[2]) for x in a if x[2] not in ("", "-")]
if not a or not rec:
    print("no switch seen"); sys.exit(0)
print("first switch per rep: %s; recovery_ms median %g, max %g; switch event after the onset: median %s, max %s ms" % (
    ", ".join("%s x%d" % kv for kv in sorted(reasons.items())), med(rec), max(rec),
    ("%g" % med(aft)) if aft else "-", ("%g" % max(aft)) if aft else "-"))
PY
)"
        R[$key.evrec]+="; switches in the cell (incl. settling): $(( $(count_switches "$ev0") ))"
    fi
    log "$(sysname "$sys") / $pol / $sc: TCP survived: ${R[$key.tcp]}${R[$key.susp]:+; suspicion raised/cleared/confirmed/probes ${R[$key.susp]}}"
}

# --- the run ---------------------------------------------------------------------------------

declare -A BIN=([jvpn]="$JVPN_BIN" [base]="${BASE_BIN:-}")
if want jvpn; then rig_jvpn_ensure_built || exit 1; fi
failed=()
cell_no=0
for sc in link blackhole loss; do
    want_s "$sc" || continue
    for pol in default rig; do
        want_p "$pol" || continue
        for sys in base jvpn; do
            want "$sys" || continue
            cell_no=$(( cell_no + 1 ))
            if jvpn_setup "${BIN[$sys]}" "$pol" "$RIG_DIR/cell$cell_no.$sys.$pol.$sc" && echo_server_start 10.77.0.1; then
                jvpn_settle "$sc" || true
                run_cell "$sc" "$pol" "$sys"
                [[ -z "${R[$sc|$pol|$sys.note]:-}" ]] || failed+=("$sys/$pol/$sc")
            else
                failed+=("$sys/$pol/$sc"); CELLS+=("$sc|$pol|$sys"); R[$sc|$pol|$sys.note]="setup failed"
            fi
            echo_server_stop
            jvpn_stop
        done
    done
done
if want wg; then
    if wg_setup && echo_server_start 10.99.0.1; then
        for sc in link blackhole loss; do
            want_s "$sc" || continue
            wg_settle || true
            run_cell "$sc" - wg
        done
    else
        failed+=(wg)
    fi
    echo_server_stop
    wg_stop
fi

# --- report ----------------------------------------------------------------------------------

fmt_ms() {  # fmt_ms VALUE
    local v="$1"
    if [[ "$v" == nan || -z "$v" ]]; then echo "n/a"; return; fi
    if awk -v v="$v" -v w="$WAIT_MS" 'BEGIN { exit !(v >= w) }'; then echo ">=$WAIT_MS"; return; fi
    awk -v v="$v" 'BEGIN { printf (v < 10 ? "%.1f" : "%.0f"), v }'
}
commit_of() {   # commit_of BIN: HEAD of the checkout the binary was built in (BIN in .build*/*/), its mtime
    local c; c="$(git -C "$(dirname "$1")/../.." rev-parse --short HEAD 2>/dev/null)" || c="commit unknown"
    echo "$c, built $(date -u -r "$1" +%Y-%m-%dT%H:%MZ 2>/dev/null || echo '?')"
}
echo
echo "jvpn failover benchmark"
echo "  date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  repo:     $(git -C "$RIG_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown) (this script)"
want jvpn && echo "  jvpn:     $JVPN_BIN ($(commit_of "$JVPN_BIN"))"
want base && echo "  base:     $BASE_BIN ($(commit_of "$BASE_BIN"))"
echo "  kernel:   $(uname -r) ($(uname -m)), $(nproc) CPUs; load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  method:   UDP echo every 1 ms through the tunnel (udpecho.py${RT[*]:+, probe and echo server ${RT[*]}}), $REPS reps per cell,"
echo "            wait limit ${WAIT_S}s, TCP stream ${TCP_MBPS} Mbit/s across each cell;"
echo "            outage = the hole the fault made: last echo reply before the first lost echo to the first"
echo "            reply after that run of lost echoes (1 = nothing lost); gap = longest gap between replies from"
echo "            the fault to the clean run (with a busy host's delay spikes); lossy = first to last lost echo"
echo "            (how long the fault hurt: the figure for random loss); lost = echoes never answered"
for pol in default rig; do
    want_p "$pol" && echo "  $pol: [Policy] $(policy_lines "$pol" | paste -sd ';' | sed 's/;/; /g') (others default)"
done
want wg && echo "  wg:       wireguard-go $(wireguard-go --version 2>/dev/null | head -n1 | awk '{print $2}'), uplink chosen by the client's routes (up0 metric 100, up1 200)"
echo
printf '%-10s %-8s %-13s %-16s %-16s %-16s %-8s %-16s %-9s %s\n' scenario policy system "outage med/worst" "gap med/worst" "lossy med/worst" "lost med" "fault cmd/effect" recovered "TCP survived"
for key in "${CELLS[@]}"; do
    IFS='|' read -r sc pol sys <<<"$key"
    if [[ -z "${R[$key.n]:-}" || "${R[$key.n]:-0}" -eq 0 ]]; then
        printf '%-10s %-8s %-13s %s\n' "$(label "$sc")" "$pol" "$(sysname "$sys")" "no repetition: ${R[$key.note]:-failed/skipped}"; continue
    fi
    read -r -a h <<<"${R[$key.holes]}"; read -r -a g <<<"${R[$key.gaps]}"
    read -r -a l <<<"${R[$key.lossy]}"; read -r -a n <<<"${R[$key.lost]}"
    read -r -a c <<<"${R[$key.cmd]}"; read -r -a e <<<"${R[$key.effect]}"
    read -r hm hw < <(stats "${h[@]}"); read -r gm gw < <(stats "${g[@]}"); read -r lm lw < <(stats "${l[@]}"); read -r nm _ < <(stats "${n[@]}")
    read -r cm _ < <(stats "${c[@]}"); read -r em _ < <(stats "${e[@]+"${e[@]}"}")
    printf '%-10s %-8s %-13s %-16s %-16s %-16s %-8s %-16s %-9s %s\n' "$(label "$sc")" "$pol" "$(sysname "$sys")" \
        "$(fmt_ms "$hm") / $(fmt_ms "$hw")" "$(fmt_ms "$gm") / $(fmt_ms "$gw")" "$(fmt_ms "$lm") / $(fmt_ms "$lw")" "$nm" "$(fmt_ms "$cm") / +$(fmt_ms "$em")" \
        "${R[$key.rec]}/${R[$key.n]}" "${R[$key.tcp]}"
    [[ -n "${R[$key.note]:-}" ]] && printf '%-34s ! %s\n' "" "${R[$key.note]}"
done
echo
echo "fault cmd = flap.sh's duration (median ms); effect = where in it the first echo was lost (median ms after its start)."
for key in "${CELLS[@]}"; do
    IFS='|' read -r sc pol sys <<<"$key"
    [[ "$sys" != wg && -n "${R[$key.evrec]:-}" ]] || continue
    echo "$(label "$sc") / $pol / $(sysname "$sys"): ${R[$key.evrec]}; suspicion at the end (raised/cleared/confirmed/probes): ${R[$key.susp]:--}"
done
echo
echo "per repetition (outage ms; $WAIT_MS = no recovery), and the probe's own longest send gap (median / worst ms):"
for key in "${CELLS[@]}"; do
    IFS='|' read -r sc pol sys <<<"$key"
    [[ -n "${R[$key.holes]:-}" ]] || continue
    read -r -a s <<<"${R[$key.sendgap]}"; read -r sm sw < <(stats "${s[@]}")
    printf '  %-10s %-8s %-13s %s  [send gap %s / %s]\n' "$(label "$sc")" "$pol" "$(sysname "$sys")" "${R[$key.holes]}" "$sm" "$sw"
done

if [[ -n "$JSON_OUT" ]]; then
    {
        printf '{"date": "%s", "reps": %s, "wait_ms": %s, "kernel": "%s", "cells": [' \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$REPS" "$WAIT_MS" "$(uname -r)"
        sep=""
        for key in "${CELLS[@]}"; do
            IFS='|' read -r sc pol sys <<<"$key"
            [[ -n "${R[$key.n]:-}" ]] || continue
            printf '%s{"scenario": "%s", "policy": "%s", "system": "%s", "outage_ms": [%s], "gap_ms": [%s], "lossy_ms": [%s], "lost": [%s], "clean_ms": [%s], "recovered": %s, "tcp": "%s", "suspicion": "%s"}' \
                "$sep" "$sc" "$pol" "$sys" "$(tr ' ' ',' <<<"${R[$key.holes]}")" "$(tr ' ' ',' <<<"${R[$key.gaps]}")" "$(tr ' ' ',' <<<"${R[$key.lossy]}")" \
                "$(tr ' ' ',' <<<"${R[$key.lost]}")" "$(tr ' ' ',' <<<"${R[$key.cleans]}")" "${R[$key.rec]}" "${R[$key.tcp]}" "${R[$key.susp]:-}"
            sep=", "
        done
        printf ']}\n'
    } >"$JSON_OUT"
    log "results written to $JSON_OUT"
fi
[[ "${RIG_KEEP_DIR:-0}" == 1 ]] && log "logs kept in $RIG_DIR"
if [[ ${#failed[@]} -gt 0 ]]; then log "failed: ${failed[*]}"; exit 1; fi
