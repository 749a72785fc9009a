#!/usr/bin/env bash
# Helpers of the chaos_*.sh tests ("never wedged"): message-kind loss at the router with
# deploy/netns/nftdrop.sh, and one convergence check that looks at both daemons at once.
#
# Converged means, at one instant:
#   client: sessions[0].state ATTACHED, an active path (on the expected uplink if one is given);
#   gateway: the session with the client's id, state ATTACHED, bound path (paths[0].path) equal to
#            the client's active path's local IP:PORT;
#   sessions[].binding_version equal on both sides.
# Each chaos script runs one or more variants; each variant is a separate run of the same script
# (CHAOS_VARIANT=NAME bash SCRIPT) with its own rig, so one wedged variant does not hide the next.
#
# env: CHAOS_WIRE=v1|v2 (nftdrop.sh's size table, default v2), CHAOS_VARIANT (run only that one),
#      CHAOS_WAIT_S (how long to wait for convergence before calling it wedged, default 10).
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

NFTDROP="$REPO/deploy/netns/nftdrop.sh"
: "${CHAOS_WAIT_S:=10}"
export CHAOS_WIRE="${CHAOS_WIRE:-v2}"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# drop ARGS... : nftdrop.sh ARGS in this rig; fails the test when the helper fails
drop() {
    "$NFTDROP" "$@" >/dev/null 2>>"$RIG_DIR/nftdrop.log" || fail "nftdrop.sh $*: $(tail -3 "$RIG_DIR/nftdrop.log")"
}
drop_count() { "$NFTDROP" count "$@" 2>/dev/null || true; }

# chaos_setup [POLICY_LINES] [noclient] : router rig, gateway up; the client too unless `noclient`.
# Same configs as lib.bash's router_setup; the client can then be started by chaos_client_up.
chaos_setup() {
    rig_init
    rig_create_router
    export RIG_CLIENT RIG_ROUTER
    command -v nft >/dev/null 2>&1 || fail "nft not found (apt-get install nftables)"
    jvpn_keys gw c1
    GW=$(tun_name g); CL=$(tun_name c)
    write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32"
    local policy="$RIG_POLICY" line key
    while IFS= read -r line; do
        [[ -z "$line" ]] && continue
        key="${line%%=*}"; key="${key// /}"
        policy="$(grep -v "^$key " <<<"$policy")"$'\n'"$line"
    done <<<"${1:-}"
    CHAOS_POLICY="$policy"
    PROBE_MS="$(awk -F' *= *' '$1 == "ProbeIntervalMs" { print $2 }' <<<"$policy")"
    write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/24" "$RIG_GW_IP:51820" "10.77.0.0/24" \
        "${CLIENT_EXTRA:-Uplinks = up0, up1}" "$policy"
    CL_EVENTS="$RIG_DIR/$CL.events.jsonl"; GW_EVENTS="$RIG_DIR/$GW.events.jsonl"
    rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up"
    [[ "${2:-}" == noclient ]] || chaos_client_up 10
}

chaos_client_up() {
    rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait "${1:-10}" || fail "client up"
}

# The two status documents at one instant (as close as two commands get).
snap_status() {
    rig_exec "$RIG_CLIENT" "$JVPN_BIN" status "$CL" --json >"$RIG_DIR/cl.json" 2>/dev/null || echo '{}' >"$RIG_DIR/cl.json"
    rig_exec "$RIG_GW" "$JVPN_BIN" status "$GW" --json >"$RIG_DIR/gw.json" 2>/dev/null || echo '{}' >"$RIG_DIR/gw.json"
}

# converged_now [UPLINK] : snapshot both sides; prints one summary line; 0 when converged
converged_now() {
    snap_status
    python3 - "$RIG_DIR/cl.json" "$RIG_DIR/gw.json" "${1:-}" <<'PY'
import json, sys
def load(f):
    try:
        return json.load(open(f))
    except Exception:
        return {}
c, g, want = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
cs = (c.get("sessions") or [{}])[0]
sid, state, ap, cbv = cs.get("session", ""), cs.get("state", "?"), cs.get("active_path", ""), cs.get("binding_version")
uplink = ap.split("/")[0] if ap else ""
local = ap.split("/")[-1].split("->")[0] if ap else ""
gss = g.get("sessions") or []
gs = next((s for s in gss if s.get("session") == sid), None)
problems = []
if state != "ATTACHED": problems.append("client %s" % state)
if not ap: problems.append("client has no active path")
if want and uplink != want: problems.append("client on %s, want %s" % (uplink or "-", want))
if gs is None:
    problems.append("gateway has no session %s (has %s)" % (sid[:8], [s.get("session", "")[:8] for s in gss]))
    gdesc = "gw: " + "; ".join("%s %s bound=%s bv=%s" % (s.get("session", "")[:8], s.get("state"),
                                 (s.get("paths") or [{}])[0].get("path"), s.get("binding_version")) for s in gss)
else:
    bound = (gs.get("paths") or [{}])[0].get("path", "")
    gbv = gs.get("binding_version")
    if gs.get("state") != "ATTACHED": problems.append("gateway %s" % gs.get("state"))
    if bound != local: problems.append("gateway bound %s, client uses %s (split brain)" % (bound, local or "-"))
    if gbv != cbv: problems.append("binding_version client %s != gateway %s" % (cbv, gbv))
    rj = gs.get("rejected", {})
    gdesc = "gw: %s bound=%s bv=%s stale_rejects=%s" % (gs.get("state"), bound, gbv, rj.get("stale_version"))
print("client: %s %s bv=%s sid=%s | %s%s" % (state, ap or "-", cbv, sid[:8], gdesc,
      "" if not problems else " | NOT CONVERGED: " + "; ".join(problems)))
sys.exit(1 if problems else 0)
PY
}

# wait_converged T0_MS SECONDS [UPLINK] : poll until converged; sets CONV_MS (ms since T0_MS) and
# CONV_LINE (last summary). 1 on timeout (CONV_MS then = -1).
wait_converged() {
    local t0="$1" secs="$2" want="${3:-}" deadline line
    deadline=$(( $(now_ms) + secs * 1000 ))
    CONV_MS=-1
    while :; do
        if line="$(converged_now "$want")"; then
            CONV_MS=$(( $(now_ms) - t0 )); CONV_LINE="$line"; return 0
        fi
        CONV_LINE="$line"
        (( $(now_ms) >= deadline )) && return 1
        sleep 0.05
    done
}

stale_count() { count_events "$GW_EVENTS" "e['event']=='SECURITY_EVENT' and e.get('reason')=='STALE_VERSION'"; }
security_count() { count_events "$GW_EVENTS" "e['event']=='SECURITY_EVENT'"; }

# ev_mark FILE -> number of lines now (events after it are "new")
ev_mark() { if [[ -f "$1" ]]; then wc -l <"$1"; else echo 0; fi; }
# ev_since FILE MARK PYEXPR -> count of events after MARK satisfying PYEXPR (as `e`)
ev_since() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
n = 0
try:
    lines = open(sys.argv[1]).read().splitlines()[int(sys.argv[2]):]
except OSError:
    lines = []
for line in lines:
    try:
        e = json.loads(line)
        if eval(sys.argv[3]):
            n += 1
    except Exception:
        pass
print(n)
PY
}

# ping_check COUNT MIN : COUNT pings through the tunnel, at least MIN answered
ping_check() {
    local n="$1" min="$2" out got
    out="$(rig_exec "$RIG_CLIENT" ping -c "$n" -i 0.2 -W 1 -q 10.77.0.1 2>&1)" || true
    got="$(sed -nE 's/.* ([0-9]+) received.*/\1/p' <<<"$out")"
    got="${got:-0}"
    echo "    ping through the tunnel: $got/$n answered"
    (( got >= min )) || { chaos_diag; fail "ping: only $got of $n answered (want >= $min)"; }
}

# assert_rejects_stopped SECONDS : no new STALE_VERSION SECURITY_EVENT on the gateway in SECONDS
assert_rejects_stopped() {
    local s0 s1 a0 a1
    s0="$(stale_count)"; a0="$(security_count)"
    sleep "$1"
    s1="$(stale_count)"; a1="$(security_count)"
    echo "    gateway STALE_VERSION rejects: $s0 before, $s1 after ${1} s (all SECURITY_EVENTs: $a0 -> $a1)"
    (( s1 == s0 )) || { chaos_diag; fail "STALE_VERSION rejects still growing after convergence: $s0 -> $s1 in ${1} s"; }
}

# assert_same_session SID : the client and the gateway still have session SID
assert_same_session() {
    local c g
    c="$(client_session)"
    g="$(status_field "$RIG_GW" "$GW" "','.join(x['session'] for x in s['sessions'])")"
    [[ "$c" == "$1" ]] || fail "the client's session id changed: $1 -> $c"
    [[ ",$g," == *",$1,"* ]] || fail "the gateway no longer has session $1 (has $g)"
}

# limit_ms : the timed assertion: max(3000, max(5 x ProbeIntervalMs, 1000) + 1000 slack)
expected_ms() { local p="${PROBE_MS:-200}"; echo $(( 5 * p > 1000 ? 5 * p : 1000 )); }
limit_ms() { local e; e="$(expected_ms)"; e=$(( e + 1000 )); echo $(( e > 3000 ? e : 3000 )); }

# assert_converged T0_MS WHAT [UPLINK] [LIMIT_MS] : wait (CHAOS_WAIT_S) for convergence, print
# the time, fail when it never came or came later than LIMIT_MS (default limit_ms)
assert_converged() {
    local t0="$1" what="$2" want="${3:-}" lim="${4:-}"
    [[ -n "$lim" ]] || lim="$(limit_ms)"
    if ! wait_converged "$t0" "$CHAOS_WAIT_S" "$want"; then
        echo "    WEDGED: not converged ${CHAOS_WAIT_S} s after $what"
        echo "    last: $CONV_LINE"
        chaos_diag
        fail "not converged within ${CHAOS_WAIT_S} s after $what: $CONV_LINE"
    fi
    echo "    converged in $CONV_MS ms after $what (asserted <= $lim ms; 5 x ProbeIntervalMs or 1 s = $(expected_ms) ms)"
    echo "    $CONV_LINE"
    (( CONV_MS <= lim )) || { chaos_diag; fail "converged only after $CONV_MS ms (limit $lim ms) after $what"; }
}

# What both daemons think, for a failure message.
chaos_diag() {
    [[ "${CHAOS_DIAG_DONE:-0}" == 1 ]] && return 0
    CHAOS_DIAG_DONE=1
    {
        echo "    --- diagnostics (wire ${CHAOS_WIRE})"
        echo "    nft drop rules in place: $(drop_count | tr "\n" ";")"
        echo "    gateway SECURITY_EVENTs by reason: $(python3 -c '
import json, sys, collections
c = collections.Counter()
for l in open(sys.argv[1]):
    try:
        e = json.loads(l)
    except ValueError:
        continue
    if e.get("event") == "SECURITY_EVENT": c[e.get("reason")] += 1
print(dict(c))' "$GW_EVENTS" 2>/dev/null)"
        echo "    client events (last 8):"
        rig_exec "$RIG_CLIENT" "$JVPN_BIN" events "$CL" 2>/dev/null | tail -n 8 | sed 's/^/      /' || true
        echo "    gateway events (last 6):"
        rig_exec "$RIG_GW" "$JVPN_BIN" events "$GW" 2>/dev/null | tail -n 6 | sed 's/^/      /' || true
    } >&2
}

# chaos_variants NAME... : with CHAOS_VARIANT set, return (the caller runs that variant); else run
# the script once per variant (each its own rig and cleanup) and exit with the overall result.
chaos_variants() {
    if [[ -n "${CHAOS_VARIANT:-}" ]]; then
        local v
        for v in "$@"; do [[ "$v" == "$CHAOS_VARIANT" ]] && return 0; done
        fail "unknown variant '$CHAOS_VARIANT' (have: $*)"
    fi
    local v rc fails=0 results=()
    for v in "$@"; do
        rc=0
        CHAOS_VARIANT="$v" bash "$0" || rc=$?
        if (( rc == 0 )); then results+=("PASS $v"); else results+=("FAIL $v (exit $rc)"); fails=$((fails + 1)); fi
    done
    echo "=== [$TEST_NAME] wire ${CHAOS_WIRE}: ${results[*]}"
    echo "=== [$TEST_NAME] variants passed: $(( ${#results[@]} - fails ))/${#results[@]}"
    exit $(( fails > 0 ? 1 : 0 ))
}
