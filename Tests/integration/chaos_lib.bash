#!/usr/bin/env bash
# Helpers of the chaos_*.sh tests ("never wedged"): message-kind loss at the router with
# deploy/netns/nftdrop.sh, and one convergence check that looks at both daemons at once.
#
# Converged means, at one instant:
#   client: sessions[0].state ATTACHED or VOLATILE (attached on a path whose recent probes were
#           lost: its loss statistics lag the heal), an active path (on the expected uplink if one
#           is given);
#   gateway: the session with the client's id, state ATTACHED, bound path (paths[0].path) equal to
#            the client's active path's local IP:PORT;
#   sessions[].binding_version equal on both sides.
# Times ("converged in N ms after heal") are from the fault's end to the end of the first converged
# snapshot of both status JSONs, polled every ~25 ms by one python process; its first snapshot
# lands ~100-300 ms after the start (python start-up), printed as the "measurement floor": a
# figure equal to the floor means "already converged when first looked at".
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

# The convergence poller: one python process that runs `jvpn status --json` on both sides every
# ~20 ms until converged or the deadline (a python start per poll would cost ~100 ms of resolution).
# args: CLIENT_NS CL GW_NS GW JVPN_BIN WANT_UPLINK T0_MS TIMEOUT_MS ; prints the last summary line,
# then "CONV_MS N" (ms from T0_MS to the end of the first converged snapshot, -1 = never) and
# "FIRST_MS N" (when its first snapshot ended: the floor of the measurement); exit 0/1.
CHAOS_POLLER='
import json, subprocess, sys, time
cns, cl, gns, gw, jvpn, want, t0, timeout = sys.argv[1:9]
t0, timeout = int(t0), int(timeout)
def status(ns, name):
    try:
        out = subprocess.run(["ip", "netns", "exec", ns, jvpn, "status", name, "--json"],
                             capture_output=True, timeout=5).stdout
        return json.loads(out)
    except Exception:
        return {}
def check(c, g):
    cs = (c.get("sessions") or [{}])[0]
    sid, state, ap, cbv = cs.get("session", ""), cs.get("state", "?"), cs.get("active_path", ""), cs.get("binding_version")
    uplink = ap.split("/")[0] if ap else ""
    # as the gateway shows its bound address: "tcp/" first for a TCP path
    local = ap.split("/", 1)[-1].split("->")[0] if ap else ""
    gss = g.get("sessions") or []
    gs = next((s for s in gss if s.get("session") == sid), None)
    problems = []
    if state not in ("ATTACHED", "VOLATILE"): problems.append("client %s" % state)
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
        if bound != local: problems.append("gateway bound %s, client uses %s (the two sides disagree on the path)" % (bound, local or "-"))
        if gbv != cbv: problems.append("binding_version client %s != gateway %s" % (cbv, gbv))
        gdesc = "gw: %s bound=%s bv=%s stale_rejects=%s" % (gs.get("state"), bound, gbv, gs.get("rejected", {}).get("stale_version"))
    line = "client: %s %s bv=%s sid=%s | %s" % (state, ap or "-", cbv, sid[:8], gdesc)
    return (not problems), line + ("" if not problems else " | NOT CONVERGED: " + "; ".join(problems))
deadline = time.time() * 1000 + timeout
first = None
while True:
    ok, line = check(status(cns, cl), status(gns, gw))
    now = time.time() * 1000
    if first is None: first = int(now - t0)
    if ok or now >= deadline:
        print(line)
        print("CONV_MS %d" % (int(now - t0) if ok else -1))
        print("FIRST_MS %d" % first)
        sys.exit(0 if ok else 1)
    time.sleep(0.02)
'

# wait_converged T0_MS SECONDS [UPLINK] : poll until converged; sets CONV_MS (ms since T0_MS, -1 on
# timeout) and CONV_LINE (last summary). 1 on timeout.
wait_converged() {
    local t0="$1" secs="$2" want="${3:-}" out rc=0
    out="$(python3 -c "$CHAOS_POLLER" "$RIG_CLIENT" "$CL" "$RIG_GW" "$GW" "$JVPN_BIN" "$want" "$t0" \
        "$(awk -v t="$secs" 'BEGIN { printf "%d", t * 1000 }')")" || rc=$?
    CONV_LINE="$(sed -n 1p <<<"$out")"
    CONV_MS="$(sed -nE 's/^CONV_MS (-?[0-9]+)$/\1/p' <<<"$out")"; CONV_MS="${CONV_MS:--1}"
    CONV_FLOOR_MS="$(sed -nE 's/^FIRST_MS (-?[0-9]+)$/\1/p' <<<"$out")"
    return "$rc"
}

# converged_now [UPLINK] : one snapshot of both sides; prints the summary line; 0 when converged
converged_now() {
    wait_converged "$(now_ms)" 0 "${1:-}" && { echo "$CONV_LINE"; return 0; }
    echo "$CONV_LINE"; return 1
}

stale_count() { count_events "$GW_EVENTS" "e['event']=='SECURITY_EVENT' and e.get('reason')=='STALE_VERSION'"; }
security_count() { count_events "$GW_EVENTS" "e['event']=='SECURITY_EVENT'"; }

# ev_mark FILE -> number of lines now (events after it are "new")
ev_mark() { if [[ -f "$1" ]]; then wc -l <"$1"; else echo 0; fi; }
# ev_since FILE MARK PYEXPR -> count of events after MARK satisfying PYEXPR (as `e`)
ev_since() { count_events "$1" "$3" "$2"; }

# ping_check COUNT MIN : COUNT pings through the tunnel, at least MIN answered
ping_check() {
    local n="$1" min="$2" out got
    out="$(rig_exec "$RIG_CLIENT" ping -c "$n" -i 0.2 -W 1 -q 10.77.0.1 2>&1)" || true
    got="$(sed -nE 's/.* ([0-9]+) received.*/\1/p' <<<"$out")"
    got="${got:-0}"
    echo "    ping through the tunnel: $got/$n answered"
    (( got >= min )) || { chaos_diag; fail "ping: only $got of $n answered (want >= $min)"; }
}

# rejects_mark : start the reject window now (the checks in between, e.g. ping_check, overlap it)
rejects_mark() { REJ_S0="$(stale_count)"; REJ_A0="$(security_count)"; REJ_T0="$(now_ms)"; }
# assert_rejects_stopped SECONDS : no new STALE_VERSION SECURITY_EVENT on the gateway within SECONDS
# from rejects_mark (from now without one)
assert_rejects_stopped() {
    local s1 a1 left ms
    [[ -n "${REJ_T0:-}" ]] || rejects_mark
    ms="$(awk -v t="$1" 'BEGIN { printf "%d", t * 1000 }')"
    left=$(( ms - ($(now_ms) - REJ_T0) ))
    (( left > 0 )) && sleep "$(awk -v l="$left" 'BEGIN { printf "%.3f", l / 1000 }')"
    s1="$(stale_count)"; a1="$(security_count)"
    echo "    gateway STALE_VERSION rejects: $REJ_S0 at convergence, $s1 $(( $(now_ms) - REJ_T0 )) ms later (all SECURITY_EVENTs: $REJ_A0 -> $a1)"
    local s0="$REJ_S0"; REJ_T0=""
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
    echo "    converged in $CONV_MS ms after $what (measurement floor ${CONV_FLOOR_MS:-?} ms; asserted <= $lim ms; 5 x ProbeIntervalMs or 1 s = $(expected_ms) ms)"
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
