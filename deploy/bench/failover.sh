#!/usr/bin/env bash
# Failover benchmark: the outage a 10 ms ping stream inside the tunnel sees when the active uplink
# goes down, is blackholed at the router, or turns 30 % lossy. jvpn and wireguard-go, same run.
#
# usage: deploy/bench/failover.sh [--reps N] [--only jvpn,wg] [--scenarios link,blackhole,loss]
#                                 [--wait S] [--json FILE]
#   --reps N       repetitions per scenario and system (default 20; --reps 5 for a quick run)
#   --wait S       how long one repetition waits for recovery (default 5 s)
#
# Rig: deploy/netns/rig.sh router rig (client ns with up0/up1 -> router ns -> gateway 10.203.0.1),
# faults from deploy/netns/flap.sh. Per repetition: a fresh `ping -D -i 0.01` through the tunnel,
# the fault on the ACTIVE uplink, wait until the stream is clean again (or --wait), restore, wait
# until the tunnel is settled. One paced TCP stream (SHA-256 checked) runs across all repetitions
# of a scenario: "TCP survived" means it ended intact with no reset. See FAILOVER-NOTES.md.
#
# env: JVPN_BIN (default $REPO/.build/release/jvpn), RIG_KEEP_DIR=1 keeps logs (path printed),
#      FAILOVER_POLICY_EXTRA (extra `Key = value` lines for the client's [Policy])
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../netns/rig.sh
. "$BENCH_DIR/../netns/rig.sh"
FLAP="$BENCH_DIR/../netns/flap.sh"

REPS=20
ONLY="jvpn,wg"
SCENARIOS="link,blackhole,loss"
WAIT_S=5
JSON_OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        --reps=*) REPS="${1#*=}"; shift ;;
        --only) ONLY="$2"; shift 2 ;;
        --only=*) ONLY="${1#*=}"; shift ;;
        --scenarios) SCENARIOS="$2"; shift 2 ;;
        --scenarios=*) SCENARIOS="${1#*=}"; shift ;;
        --wait) WAIT_S="$2"; shift 2 ;;
        --wait=*) WAIT_S="${1#*=}"; shift ;;
        --json) JSON_OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$REPS" =~ ^[0-9]+$ && "$REPS" -ge 1 && "$REPS" -le 200 ]] || { echo "--reps wants 1..200" >&2; exit 2; }
[[ "$WAIT_S" =~ ^[0-9]+$ && "$WAIT_S" -ge 2 && "$WAIT_S" -le 60 ]] || { echo "--wait wants 2..60 (seconds)" >&2; exit 2; }
for m in ${ONLY//,/ }; do
    case "$m" in jvpn|wg) ;; *) echo "--only: unknown system '$m' (jvpn, wg)" >&2; exit 2 ;; esac
done
for s in ${SCENARIOS//,/ }; do
    case "$s" in link|blackhole|loss) ;; *) echo "--scenarios: unknown '$s' (link, blackhole, loss)" >&2; exit 2 ;; esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
want_s() { [[ ",$SCENARIOS," == *",$1,"* ]]; }

[[ $EUID -eq 0 ]] || { echo "failover.sh needs root (network namespaces, TUN)" >&2; exit 1; }
for tool in ping python3 ip; do
    command -v "$tool" >/dev/null || { echo "missing $tool (deploy/install-deps.sh)" >&2; exit 1; }
done

log() { printf '[failover %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now_s() { date +%s.%N; }

CLEAN_N=60           # a run of 60 consecutive replies (about 1 s) = the stream is clean again
WAIT_MS=$(( WAIT_S * 1000 ))
TCP_PORT=9100
TCP_MBPS=4
SETTLE_TIMEOUT_S=30

rig_init
rig_create_router
export RIG_CLIENT RIG_ROUTER RIG_DIR RIG_PREFIX
UPLINKS=(up0 up1)

# --- helpers in python, written once into the rig dir ------------------------------------------

# ana.py PINGLOG T0 WAIT_MS CLEAN_N [final]  -> one JSON line describing the outage
cat >"$RIG_DIR/ana.py" <<'PY'
import json, re, sys
log, t0, wait_ms, clean_n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
final = len(sys.argv) > 5 and sys.argv[5] == "final"
rx = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")
anyseq = re.compile(r"icmp_seq=(\d+)")
t = {}
hi_any = 0
for line in open(log, errors="replace"):
    a = anyseq.search(line)
    if a:
        hi_any = max(hi_any, int(a.group(1)))  # errors (unreachable) tell which seqs were sent
    if "DUP!" in line:
        continue
    m = rx.match(line)
    if m:
        s = int(m.group(2))
        if s not in t:
            t[s] = float(m.group(1))
out = {"recovered": False, "gap_ms": None, "clean_ms": None, "replies": len(t),
       "last_after_fault_ms": round((max(t.values()) - t0) * 1000, 1) if t else None}
pre = sorted(ts for ts in t.values() if ts < t0)
if len(pre) > 2:
    iv = sorted(b - a for a, b in zip(pre, pre[1:]))
    out["interval_ms"] = round(iv[len(iv) // 2] * 1000, 1)
before = [s for s, ts in t.items() if ts < t0]
if not before:
    out["error"] = "no reply before the fault"
    print(json.dumps(out)); sys.exit(0)
s0 = max(before)
hi = max(max(t), hi_any)
end = t0 + wait_ms / 1000.0
m1 = next((s for s in range(s0 + 1, hi + 1) if s not in t), None)
if m1 is None:
    # nothing lost since the fault (or nothing sent/answered since: that is handled below)
    if hi - s0 >= clean_n or (final and hi > s0):
        times = sorted(ts for s, ts in t.items() if s >= s0)
        gaps = [b - a for a, b in zip(times, times[1:])]
        out.update(recovered=True, clean_ms=0.0, gap_ms=round(max(gaps) * 1000, 1) if gaps else 0.0)
    elif final:
        out.update(gap_ms=round((end - t[s0]) * 1000, 1))
    print(json.dumps(out)); sys.exit(0)
onset_seq = max(s for s in t if s < m1)
onset = t[onset_seq]
clean = None
s = m1 + 1
while s + clean_n - 1 <= hi:
    if s not in t:
        s += 1
        continue
    bad = next((k for k in range(s, s + clean_n) if k not in t), None)
    if bad is None:
        clean = s
        break
    s = bad + 1
if clean is not None and t[clean] <= end + 0.05:
    times = sorted(ts for k, ts in t.items() if onset <= ts <= t[clean])
    gaps = [b - a for a, b in zip(times, times[1:])]
    out.update(recovered=True, clean_ms=round((t[clean] - onset) * 1000, 1),
               gap_ms=round(max(gaps) * 1000, 1) if gaps else 0.0)
elif final:
    times = sorted(ts for ts in t.values() if onset <= ts <= end) + [end]
    gaps = [b - a for a, b in zip(times, times[1:])]
    out.update(gap_ms=round(max(gaps) * 1000, 1), clean_ms=None)
print(json.dumps(out))
PY

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

median() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
label() { case "$1" in link) echo link-down ;; blackhole) echo blackhole ;; loss) echo "loss 30%" ;; esac; }
sysname() { [[ "$1" == wg ]] && echo wireguard-go || echo jvpn; }
maxv() { printf '%s\n' "$@" | sort -g | tail -n1; }
jget() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); v=d.get(sys.argv[2]); print('' if v is None else (str(v).lower() if isinstance(v, bool) else v))" "$1" "$2"; }

# --- the TCP stream across a scenario --------------------------------------------------------

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
tcp_finish() {  # tcp_finish TAG -> prints "yes" or "no (...)"
    local tag="$1" k
    touch "$RIG_DIR/tcp.stop"
    # The stream may still be backing off after the last fault: give it up to 60 s to drain.
    for k in $(seq 1 600); do
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

# --- one repetition --------------------------------------------------------------------------

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

# measure_rep SYSTEM SCENARIO TARGET_IP UPLINK -> JSON line (ana.py final) on stdout
measure_rep() {
    local sys="$1" sc="$2" ip="$3" up="$4" plog="$RIG_DIR/ping.cur" pid t0 deadline res
    : >"$plog"
    # `ip netns exec` execs ping: $! is ping itself (a shell function in the background would be a
    # subshell, and killing it would leave ping running).
    # -O: a line for every request left unanswered, so the sequence numbers sent are known.
    ip netns exec "$RIG_CLIENT" ping -D -O -i 0.01 -W 1 "$ip" >"$plog" 2>&1 &
    pid=$!
    if ! rig_wait_for "[[ \$(grep -c icmp_seq '$plog') -ge 30 ]]" 5 0.05; then
        kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        echo '{"recovered": false, "error": "tunnel passes no ping before the fault"}'
        return 0
    fi
    t0="$(now_s)"
    fault "$sc" "$up" || log "flap.sh fault $sc $up failed"
    # Poll: done once ~1 s of clean stream follows the outage, or at the wait limit; past the
    # limit only while replies are flowing again (a clean run that began in time is being seen).
    local el last
    while :; do
        sleep 0.2
        res="$(python3 "$RIG_DIR/ana.py" "$plog" "$t0" "$WAIT_MS" "$CLEAN_N")"
        [[ "$(jget "$res" recovered)" == true ]] && break
        el="$(awk -v n="$(now_s)" -v t="$t0" 'BEGIN { printf "%d", (n - t) * 1000 }')"
        last="$(jget "$res" last_after_fault_ms)"; last="${last%.*}"
        (( el >= WAIT_MS + 1500 )) && break
        if (( el >= WAIT_MS )) && { [[ -z "$last" ]] || (( el - ${last:-0} > 300 )); }; then break; fi
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    cp "$plog" "$RIG_DIR/ping.$sys.$sc.$REP"
    python3 "$RIG_DIR/ana.py" "$plog" "$t0" "$WAIT_MS" "$CLEAN_N" final
}

# --- jvpn ------------------------------------------------------------------------------------

JV_G="${RIG_ID}g" JV_C="${RIG_ID}c"
JV_D="$RIG_DIR/jvpn"
jvpn_stop() {
    timeout 10 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" down "$JV_C" >/dev/null 2>&1 || true
    timeout 10 ip netns exec "$RIG_GW" "$JVPN_BIN" down "$JV_G" >/dev/null 2>&1 || true
}
jv_status() { timeout 5 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" status "$JV_C" --json 2>/dev/null; }
# jv_view -> "STATE ACTIVE_UPLINK SWITCHES LIVE_PATHS MAX_LOSS_PCT"
jv_view() {
    jv_status | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)["sessions"][0]
except Exception:
    print("none - -1 0 100"); sys.exit(0)
ap = s.get("active_path") or "-"
ps = s.get("paths", [])
nd = sum(1 for p in ps if p.get("status") != "dead")
loss = max([float(p.get("loss_pct") or 0) for p in ps] or [100])
print(s.get("state", "none"), ap.split("/")[0] if ap != "-" else "-", s.get("switches", -1), nd, loss)' 2>/dev/null || echo "none - -1 0 100"
}

# jvpn_settle SCENARIO: the precondition of the next repetition, held for a while, bounded:
# ATTACHED, every uplink's path alive, no switch; for `loss` also every path under LossVolatilePct
# (5 %) and held STABLE_S, so the clean uplink is a valid target for a VOLATILE session (it must be
# stable); with preemption on, also back on the preferred uplink.
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

jvpn_setup() {
    rig_jvpn_ensure_built || return 1
    rig_on_cleanup jvpn_stop
    mkdir -p "$JV_D"; chmod 700 "$JV_D"
    rig_jvpn_keypair gw && rig_jvpn_keypair client || { log "jvpn genkey/pubkey failed"; return 1; }
    local policy
    policy="$(printf '%s\n' "${JV_POLICY[@]}")"
    [[ -n "${FAILOVER_POLICY_EXTRA:-}" ]] && policy+=$'\n'"$FAILOVER_POLICY_EXTRA"
    rig_jvpn_pair_configs "$JV_D" "$JV_G" "$JV_C" 51820 "${UPLINKS[0]}, ${UPLINKS[1]}" "$policy" \
        || { log "jvpn configs failed"; return 1; }
    timeout 30 ip netns exec "$RIG_GW" "$JVPN_BIN" up "$JV_D/$JV_G.conf" >&2 || { log "jvpn up (gateway) failed"; return 1; }
    timeout 30 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" up "$JV_D/$JV_C.conf" >&2 || { log "jvpn up (client) failed"; return 1; }
    rig_wait_for "ip netns exec '$RIG_CLIENT' ping -c1 -W1 10.77.0.1" 15 || { log "jvpn tunnel does not pass ping"; return 1; }
    jvpn_settle loss
}

# The rig policy of the issue (ProbeIntervalMs 50, DeadAfterMs 300). MaxSwitchesPerMinute is raised:
# every repetition costs two switches (away and back), the default 10/min would measure the limiter.
# PreemptToPreferred is off unless FAILOVER_PREEMPT=1: the next repetition then breaks whichever
# uplink is active, and no preemption (a switch of its own) falls inside a measurement.
# StandbyProbeIntervalMs 200 (default 1000): a standby's 20-probe loss window then forgets a fault
# in 4 s instead of 20 s, which is what keeps a full run short. Detection on the active path is
# ProbeIntervalMs/DeadAfterMs, untouched.
JV_POLICY=("ProbeIntervalMs = 50" "DeadAfterMs = 300" "StandbyProbeIntervalMs = 200" "MaxSwitchesPerMinute = 60")
if [[ "${FAILOVER_PREEMPT:-0}" == 1 ]]; then JV_POLICY+=("PreemptToPreferred = true")
else JV_POLICY+=("PreemptToPreferred = false"); fi
STABLE_S=3.5   # StableWindowMs (3000, default) + margin

# jv_alive -> 0 when both daemons answer on their control sockets; else prints which one is gone
jv_alive() {
    local ok=0
    timeout 5 ip netns exec "$RIG_GW" "$JVPN_BIN" status "$JV_G" >/dev/null 2>&1 || { echo gateway; ok=1; }
    timeout 5 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" status "$JV_C" >/dev/null 2>&1 || { echo client; ok=1; }
    return "$ok"
}
JV_DEAD=""

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
    command -v wireguard-go >/dev/null && command -v wg >/dev/null || { log "wireguard-go/wg missing"; return 1; }
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

# --- run a system through the scenarios ------------------------------------------------------

IVS=()         # observed ping interval before each fault (ms)
declare -A R   # R[sys.sc.gaps] R[sys.sc.cleans] R[sys.sc.rec] R[sys.sc.tcp] R[sys.sc.notes]

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
# first_switch LINE_NO -> "REASON:RECOVERY_MS" of the first TRANSPORT_SWITCH after that line
first_switch() {
    tail -n +"$(( $1 + 1 ))" "$JV_D/$JV_C.events.jsonl" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "TRANSPORT_SWITCH":
        print("%s:%s" % (e.get("reason"), e.get("recovery_ms"))); sys.exit(0)
print("none:-")'
}
count_switches() { tail -n +"$(( $1 + 1 ))" "$JV_D/$JV_C.events.jsonl" 2>/dev/null | grep -c '"TRANSPORT_SWITCH"' || true; }
ev_lines() { wc -l <"$JV_D/$JV_C.events.jsonl" 2>/dev/null || echo 0; }

run_system() {   # run_system jvpn|wg
    local sys="$1" ip sc up res gap clean rec gaps cleans recs ev0 ev_rec
    if [[ "$sys" == jvpn ]]; then ip=10.77.0.1; else ip=10.99.0.1; fi
    for sc in link blackhole loss; do
        want_s "$sc" || continue
        if [[ "$sys" == jvpn && -n "$JV_DEAD" ]]; then R[$sys.$sc.note]="not run: $JV_DEAD"; continue; fi
        log "$sys / $sc: $REPS repetitions"
        gaps=() cleans=() recs=0 SWS=()
        ev0="$(ev_lines)"
        # The previous scenario settled for its own needs: meet this one's precondition first.
        if [[ "$sys" == jvpn ]]; then jvpn_settle "$sc" || true; fi
        tcp_start "$ip" "$sys.$sc" || { R[$sys.$sc.tcp]="no (stream did not start)"; }
        for (( REP = 1; REP <= REPS; REP++ )); do
            if [[ "$sys" == jvpn ]]; then
                local gone; gone="$(jv_alive | tr '\n' ' ')" || true
                if [[ -n "${gone// /}" ]]; then
                    JV_DEAD="jvpn ${gone% } daemon no longer running (before $(label "$sc") rep $REP)"
                    log "$JV_DEAD; last jvpn trap in the kernel log (may be older): $(dmesg 2>/dev/null | grep -E 'traps: jvpn\[|jvpn\[[0-9]+\]: segfault' | tail -n1)"
                    R[$sys.$sc.note]="$JV_DEAD"
                    break
                fi
            fi
            if [[ "$sys" == jvpn ]]; then up="$(jvpn_active_uplink)"; else up="$(wg_active_uplink)"; fi
            [[ " ${UPLINKS[*]} " == *" $up "* ]] || { log "no active uplink ($up), using ${UPLINKS[0]}"; up="${UPLINKS[0]}"; }
            local evr; evr="$(ev_lines)"
            res="$(measure_rep "$sys" "$sc" "$ip" "$up")"
            local swi=""
            if [[ "$sys" == jvpn ]]; then swi="$(first_switch "$evr")"; SWS+=("$swi"); fi
            restore "$sc" "$up" || log "flap.sh restore $sc $up failed"
            rec="$(jget "$res" recovered)"; gap="$(jget "$res" gap_ms)"; clean="$(jget "$res" clean_ms)"
            local iv; iv="$(jget "$res" interval_ms)"; [[ -n "$iv" ]] && IVS+=("$iv")
            if [[ "$rec" == true ]]; then
                recs=$(( recs + 1 )); gaps+=("$gap"); cleans+=("$clean")
            else
                gaps+=("$WAIT_MS"); cleans+=("$WAIT_MS")
            fi
            log "  rep $REP/$REPS on $up: recovered=$rec longest-gap=${gap:-?}ms clean-after=${clean:-?}ms${swi:+ switch=$swi}$( [[ -n "$(jget "$res" error)" ]] && echo " error=$(jget "$res" error)")"
            if [[ "$sys" == jvpn ]]; then
                if [[ "$rec" != true ]]; then
                    log "  jvpn did not recover; client events during this repetition:"
                    jvpn_events_since "$evr" >&2
                fi
                jvpn_settle "$sc" || { log "  events:"; jvpn_events_since "$evr" >&2; }
            else
                wg_settle || true
            fi
        done
        R[$sys.$sc.tcp]="$(tcp_finish "$sys.$sc")"
        R[$sys.$sc.gaps]="${gaps[*]}"
        R[$sys.$sc.cleans]="${cleans[*]}"
        R[$sys.$sc.rec]="$recs"
        R[$sys.$sc.n]="${#gaps[@]}"
        if [[ "$sys" == jvpn ]]; then
            R[$sys.$sc.evrec]="$(python3 - "${SWS[@]+"${SWS[@]}"}" <<'PY'
import collections, sys
reasons = collections.Counter(a.split(":")[0] for a in sys.argv[1:])
v = sorted(float(a.split(":")[1]) for a in sys.argv[1:] if a.split(":")[1] not in ("", "-"))
if not v:
    print("no switch seen"); sys.exit(0)
n = len(v); med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
print("first switch per rep: %s; recovery_ms median %g, max %g" % (
    ", ".join("%s x%d" % kv for kv in sorted(reasons.items())), med, v[-1]))
PY
)"
            R[$sys.$sc.evrec]+="; switches in the scenario (incl. restore): $(( $(count_switches "$ev0") ))"
        fi
        log "$sys / $sc: TCP survived: ${R[$sys.$sc.tcp]}"
    done
}

failed=()
if want jvpn; then
    if jvpn_setup; then run_system jvpn || failed+=(jvpn); else failed+=(jvpn); fi
    [[ -z "$JV_DEAD" ]] || failed+=(jvpn)
    jvpn_stop
fi
if want wg; then
    if wg_setup; then run_system wg || failed+=(wg); else failed+=(wg); fi
    wg_stop
fi

# --- report ----------------------------------------------------------------------------------

fmt_ms() {  # fmt_ms VALUE RECOVERED_ALL
    local v="$1"
    if [[ "$v" == nan || -z "$v" ]]; then echo "n/a"; return; fi
    if awk -v v="$v" -v w="$WAIT_MS" 'BEGIN { exit !(v >= w) }'; then echo ">= $WAIT_MS (no recovery)"; return; fi
    awk -v v="$v" 'BEGIN { printf "%.0f", v }'
}
commit="$(git -C /work/main rev-parse --short HEAD 2>/dev/null || git -C "$RIG_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"

echo
echo "jvpn failover benchmark"
echo "  date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  commit:   $commit ($JVPN_BIN)"
echo "  kernel:   $(uname -r) ($(uname -m)), $(nproc) CPUs"
echo "  method:   ping -i 0.01 through the tunnel, $REPS reps per cell, wait limit ${WAIT_S}s;"
echo "            outage = longest gap between consecutive replies (10 = nothing lost),"
echo "            clean = fault onset -> first of ${CLEAN_N} consecutive replies;"
echo "            observed ping interval before the faults: median $(median "${IVS[@]+"${IVS[@]}"}") ms"
echo "  jvpn:     [Policy] ${JV_POLICY[*]}${FAILOVER_POLICY_EXTRA:+ $FAILOVER_POLICY_EXTRA} (others default)"
echo "  wg:       wireguard-go $(wireguard-go --version 2>/dev/null | head -n1 | awk '{print $2}'), uplink chosen by the client's routes (up0 metric 100, up1 200)"
echo
printf '%-10s %-13s %-26s %-26s %-26s %-9s %s\n' scenario system "outage median ms" "outage worst ms" "clean median ms" recovered "TCP survived"
for sc in link blackhole loss; do
    want_s "$sc" || continue
    for m in jvpn wg; do
        want "$m" || continue
        if [[ -z "${R[$m.$sc.rec]:-}" ]]; then printf '%-10s %-13s %s\n' "$(label "$sc")" "$(sysname "$m")" "${R[$m.$sc.note]:-failed/skipped}"; continue; fi
        if [[ "${R[$m.$sc.n]:-0}" -eq 0 ]]; then printf '%-10s %-13s %s\n' "$(label "$sc")" "$(sysname "$m")" "no repetition: ${R[$m.$sc.note]:-}"; continue; fi
        read -r -a g <<<"${R[$m.$sc.gaps]}"; read -r -a c <<<"${R[$m.$sc.cleans]}"
        printf '%-10s %-13s %-26s %-26s %-26s %-9s %s\n' "$(label "$sc")" "$(sysname "$m")" \
            "$(fmt_ms "$(median "${g[@]}")")" "$(fmt_ms "$(maxv "${g[@]}")")" "$(fmt_ms "$(median "${c[@]}")")" \
            "${R[$m.$sc.rec]}/${R[$m.$sc.n]}" "${R[$m.$sc.tcp]}"
        [[ -n "${R[$m.$sc.note]:-}" ]] && printf '%-10s %-13s   ! %s\n' "" "" "${R[$m.$sc.note]}"
    done
done
if want jvpn; then
    echo
    for sc in link blackhole loss; do
        want_s "$sc" || continue
        [[ -n "${R[jvpn.$sc.evrec]:-}" ]] && echo "jvpn events, $(label "$sc"): ${R[jvpn.$sc.evrec]}"
    done
fi
echo
echo "per-repetition outage ms (longest gap; $WAIT_MS = no recovery):"
for sc in link blackhole loss; do
    want_s "$sc" || continue
    for m in jvpn wg; do
        [[ -n "${R[$m.$sc.gaps]:-}" ]] && printf '  %-10s %-13s %s\n' "$(label "$sc")" "$(sysname "$m")" "${R[$m.$sc.gaps]}"
    done
done

if [[ -n "$JSON_OUT" ]]; then
    {
        printf '{"date": "%s", "commit": "%s", "kernel": "%s", "reps": %s, "wait_ms": %s, "results": {' \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "$(uname -r)" "$REPS" "$WAIT_MS"
        sep=""
        for sc in link blackhole loss; do
            for m in jvpn wg; do
                [[ -n "${R[$m.$sc.rec]:-}" ]] || continue
                printf '%s"%s.%s": {"outage_ms": [%s], "clean_ms": [%s], "recovered": %s, "tcp": "%s"}' "$sep" "$m" "$sc" \
                    "$(tr ' ' ',' <<<"${R[$m.$sc.gaps]}")" "$(tr ' ' ',' <<<"${R[$m.$sc.cleans]}")" "${R[$m.$sc.rec]}" "${R[$m.$sc.tcp]}"
                sep=", "
            done
        done
        printf '}}\n'
    } >"$JSON_OUT"
    log "results written to $JSON_OUT"
fi
[[ "${RIG_KEEP_DIR:-0}" == 1 ]] && log "logs kept in $RIG_DIR"
if [[ ${#failed[@]} -gt 0 ]]; then log "failed: ${failed[*]}"; exit 1; fi
