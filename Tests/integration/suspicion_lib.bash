#!/usr/bin/env bash
# Helpers of the suspicion_*.sh tests (RTT-based failure detection on the client): a router rig
# with jvpn on the DEFAULT policy (README: ProbeIntervalMs 200, DeadAfterMs 1000, ...), unlike
# lib.bash's router_setup which uses the fast RIG_POLICY, and readers for the status fields of
# the detector:
#   sessions[0].suspicion = {"raised": N, "cleared": N, "confirmed": N, "probes": N}
#   sessions[0].paths[].srtt_ms, rttvar_ms, pto_ms, suspect
# A binary without them makes the readers print MISSING: the tests say so and fail.
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# suspicion_rig [CLIENT_POLICY_LINES] : router rig, keys, configs (gateway: no [Policy] at all;
# client: only the given lines), gateway up. The client is started by suspicion_client_up.
suspicion_rig() {
    rig_init
    rig_create_router
    export RIG_CLIENT RIG_ROUTER
    jvpn_keys gw c1
    GW=$(tun_name g); CL=$(tun_name c)
    GW_POLICY="" write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32"
    write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/24" "$RIG_GW_IP:51820" "10.77.0.0/24" \
        "Uplinks = up0, up1" "${1:-}"
    CL_EVENTS="$RIG_DIR/$CL.events.jsonl"; GW_EVENTS="$RIG_DIR/$GW.events.jsonl"
    rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up"
}

suspicion_client_up() {
    rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait "${1:-10}" >/dev/null || fail "client up"
}

# client_status_py PYCODE : runs PYCODE with `s` = the client's status JSON and `s0` = its
# sessions[0]; PYCODE prints. Prints "ERROR: ..." instead of failing when the status cannot be read.
client_status_py() {
    local out
    out="$(rig_exec "$RIG_CLIENT" "$JVPN_BIN" status "$CL" --json 2>&1)" || { echo "ERROR: jvpn status: ${out:0:200}"; return 0; }
    python3 -c '
import json, sys
try:
    s = json.loads(sys.argv[1]); s0 = (s.get("sessions") or [{}])[0]
except Exception as e:
    print("ERROR: status is not JSON: %s" % e); sys.exit(0)
try:
    exec(sys.argv[2])
except Exception as e:
    print("ERROR: %s: %s" % (type(e).__name__, e))
' "$out" "$1"
}

# suspicion_counters : "RAISED CLEARED CONFIRMED PROBES" from sessions[0].suspicion, or
# "MISSING <what>" when the status has no such object (a binary without the RTT-based detector)
suspicion_counters() {
    client_status_py '
q = s0.get("suspicion")
keys = ("raised", "cleared", "confirmed", "probes")
if not isinstance(q, dict):
    print("MISSING: no sessions[0].suspicion in the status JSON")
elif any(not isinstance(q.get(k), (int, float)) or isinstance(q.get(k), bool) or q.get(k) != int(q.get(k)) for k in keys):
    print("MISSING: sessions[0].suspicion lacks a count for one of %s (is %s)" % (list(keys), json.dumps(q)))
else:
    print(" ".join(str(int(q[k])) for k in keys))
'
}

# paths_summary : one line per path: uplink, status, rtt/jitter/loss and the detector's
# srtt/rttvar/pto/suspect ("-" where the status has no such field)
paths_summary() {
    client_status_py '
for p in s0.get("paths", []):
    print("      %s %-7s rtt %6.2f jitter %6.2f loss %5.1f%% | srtt %s rttvar %s pto %s suspect %s" % (
        p.get("uplink"), p.get("status"), p.get("rtt_ms") or 0, p.get("jitter_ms") or 0, p.get("loss_pct") or 0,
        p.get("srtt_ms", "-"), p.get("rttvar_ms", "-"), p.get("pto_ms", "-"), p.get("suspect", "-")))
'
}

# events_after FILE FROM_LINE PYEXPR : the matching events (as `e`) after line FROM_LINE, one
# compact line each: ts_ms event from->to reason (recovery_ms)
events_after() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys, datetime
def ms(ts):
    d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000 + 0.5)
try:
    lines = open(sys.argv[1]).read().splitlines()[int(sys.argv[2]):]
except OSError:
    lines = []
for line in lines:
    try:
        e = json.loads(line)
        if not eval(sys.argv[3]):
            continue
    except Exception:
        continue
    if e["event"] == "TRANSPORT_SWITCH":
        what = "%s => %s" % (e.get("from_path"), e.get("to_path"))
    else:
        what = "%s -> %s" % (e.get("from"), e.get("to"))
    print("%d %s %s %s recovery_ms=%s" % (ms(e["ts"]), e["event"], what.replace(" ", ""), e.get("reason"), e.get("recovery_ms", "-")))
PY
}

ev_lines() { if [[ -f "$1" ]]; then wc -l <"$1"; else echo 0; fi; }

# same_session SID : fails unless the client and the gateway still have session SID
same_session() {
    local c g
    c="$(client_session)"
    g="$(status_field "$RIG_GW" "$GW" "','.join(x['session'] for x in s['sessions'])")"
    [[ "$c" == "$1" ]] || fail "the client's session id changed: $1 -> $c"
    [[ ",$g," == *",$1,"* ]] || fail "the gateway no longer has session $1 (has $g)"
}
