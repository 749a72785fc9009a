#!/usr/bin/env bash
# up0 flapping at 5 Hz for 20 s: switches stay within MaxSwitchesPerMinute, no crash, the session
# ends ATTACHED with the same id.
. "$(dirname "$0")/lib.bash"
router_setup "MaxSwitchesPerMinute = 6"
sid=$(client_session)
mapfile -t pids < <(rig_pids_by_comm "$RIG_CLIENT" '^jvpn$')   # not `| head`: SIGPIPE under pipefail
[[ ${#pids[@]} -eq 1 ]] || fail "expected one jvpn daemon in the client namespace, found ${#pids[@]}"
pid=${pids[0]}
step "flap up0 at 5 Hz for 20 s"
"$FLAP" flap up0 5 20 >/dev/null 2>&1 || fail "flap.sh flap"
flap link-up up0
wait_state ATTACHED 10 || fail "not ATTACHED after flapping: $(client_state)"
kill -0 "$pid" || fail "the client daemon died"
n=$(count_events "$CL_EVENTS" "e['event']=='TRANSPORT_SWITCH'")
echo "    $n switches during 20 s of 5 Hz flapping (budget 6/min)"
(( n <= 12 )) || fail "$n switches in ~25 s exceeds 6 per minute"
python3 - "$CL_EVENTS" <<'PY' || fail "more than 6 switches in some 60 s window"
import json, sys
ts = []
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "TRANSPORT_SWITCH":
        ts.append(e["ts"])
from datetime import datetime
t = [datetime.strptime(x, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() for x in ts]
assert all(sum(1 for y in t if x <= y < x + 60) <= 6 for x in t), t
PY
[[ "$(client_session)" == "$sid" ]] || fail "the session id changed"
rig_exec "$RIG_CLIENT" ping -c 3 -i 0.2 -W 2 10.77.0.1 >/dev/null || fail "tunnel dead after flapping"
pass "$n switches"
