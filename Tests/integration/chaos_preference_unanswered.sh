#!/usr/bin/env bash
# Never wedged (g): a move by preference that is never answered. The session fails over from up0 to
# up1; up0 comes back, but every REATTACH_ACK the gateway sends the client on up0 is dropped at the
# router. Once up0 is stable the client asks to move back (BETTER_PATH); the gateway applies the
# move and its ACKs are lost. The client must give the move up within max(5 x ProbeIntervalMs, 1 s)
# and confirm up1 again (moving the gateway's binding back), not retry from RECOVERING for the
# seconds of MaxRecoveryWindowMs; it must not ask again before its backoff (2 s); and once the ACKs
# pass again it moves to up0.
. "$(dirname "$0")/chaos_lib.bash"

chaos_setup
step "tunnel up on up0, then up0 down: the session moves to up1"
wait_active up0 5 || fail "up0 should be active at start (is $(active_uplink))"
sid=$(client_session)
flap link-down up0
wait_active up1 5 || fail "no failover to up1 (active $(active_uplink))"
wait_converged "$(now_ms)" 5 up1 || fail "not converged on up1: $CONV_LINE"

step "REATTACH_ACKs to the client on up0 dropped; up0 back"
drop add up0 to-client ack 100
cl_mark=$(ev_mark "$CL_EVENTS")
flap link-up up0
better="e['event']=='STATE_CHANGE' and e['reason']=='BETTER_PATH'"
rig_wait_for "(( \$(ev_since '$CL_EVENTS' $cl_mark \"$better\") > 0 ))" 10 0.05 ||
    { chaos_diag; fail "no move by preference back to up0 within 10 s"; }
t_move=$(now_ms)
echo "    BETTER_PATH move started"

step "the unanswered move is given up and up1 confirmed"
gave_up="e['event']=='AUDIT_EVENT' and e['check']=='reattach' and e['result']=='fail' and e['detail'].startswith('no answer to REATTACH')"
rig_wait_for "(( \$(ev_since '$CL_EVENTS' $cl_mark \"$gave_up\") > 0 ))" 4 0.05 ||
    { chaos_diag; fail "the move was not given up within 4 s"; }
# The give-up bound (1 s here) and one exchange on up1, well before MaxRecoveryWindowMs (5 s).
assert_converged "$t_move" "the start of the unanswered move" up1 3000
dropped="$(drop_count up0 to-client ack)"
echo "    ACKs dropped at the router: ${dropped##* }"
[[ "${dropped##* }" =~ ^[0-9]+$ ]] && (( ${dropped##* } > 0 )) || fail "the drop rule matched nothing: the gateway never answered the move"
ping_check 5 5
assert_same_session "$sid"

step "ACKs pass again: the session returns to up0, not before the backoff"
drop clear
assert_converged "$(now_ms)" "the ACKs passing again" up0 40000
# From the event log's own times: the next move by preference came no sooner than the first
# backoff (2 s) after the give-up; 1.9 s allows for the events' wall-clock stamps, taken a moment
# after the decisions.
gap="$(python3 - "$CL_EVENTS" "$cl_mark" <<'PY'
import json, sys
from datetime import datetime
def ts(e): return datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
events = [json.loads(l) for l in open(sys.argv[1]).readlines()[int(sys.argv[2]):] if l.strip()]
gave = [ts(e) for e in events if e["event"] == "AUDIT_EVENT" and e.get("check") == "reattach"
        and e.get("detail", "").startswith("no answer to REATTACH")]
moves = [ts(e) for e in events if e["event"] == "STATE_CHANGE" and e.get("reason") == "BETTER_PATH"]
later = [m for m in moves if gave and m > gave[0]]
print("%d" % ((later[0] - gave[0]) * 1000) if later else "none")
PY
)"
echo "    next move by preference ${gap} ms after the give-up"
[[ "$gap" =~ ^[0-9]+$ ]] && (( gap >= 1900 )) || { chaos_diag; fail "the next move by preference came $gap ms after the give-up (want >= 2000)"; }
ping_check 5 5
assert_same_session "$sid"
pass "unanswered move given up and up1 confirmed; back on up0 once answered"
