#!/usr/bin/env bash
# Failures netlink cannot see: a blackhole at the router (switch with PROBE_TIMEOUT) and 30 % loss
# on the active path (VOLATILE, then a switch to the clean uplink). TCP survives both.
. "$(dirname "$0")/lib.bash"
router_setup
sid=$(client_session)
[[ $(active_uplink) == up0 ]] || fail "up0 should be active at start"
start_stream 30 10
sleep 2
step "blackhole up0 at the router"
flap blackhole up0
wait_active up1 3 || fail "no switch after the blackhole"
has_event "$CL_EVENTS" "e['event']=='TRANSPORT_SWITCH' and e['reason']=='PROBE_TIMEOUT'" || fail "switch reason is not PROBE_TIMEOUT"
rig_output_has "state UP" ip -n "$RIG_CLIENT" link show up0 || fail "the client saw link-down: not a blackhole"
flap unblackhole up0
wait_active up0 8 || fail "no return to the preferred uplink after the blackhole"
has_event "$CL_EVENTS" "e['event']=='TRANSPORT_SWITCH' and e['reason']=='BETTER_PATH'" || fail "no BETTER_PATH preemption"
step "30 % loss on up0"
# Two detectors race here and either is right: lost probes make the path VOLATILE
# (LOSS_THRESHOLD), and under the stream a run of losses can also leave it silent for a few PTOs
# while up1 answers, a confirmed suspicion (path_suspicion, then a PROBE_TIMEOUT switch). The
# switch must come from one of them, after the loss began.
from=$(wc -l < "$CL_EVENTS")
flap netem up0 loss 30%
wait_active up1 15 || fail "no switch away from the lossy path"
volatile=$(count_events "$CL_EVENTS" "e['event']=='STATE_CHANGE' and e['to']=='VOLATILE' and e['reason']=='LOSS_THRESHOLD'" "$from")
suspected=$(count_events "$CL_EVENTS" "e['event']=='AUDIT_EVENT' and e.get('check')=='path_suspicion' and e['detail'].startswith('up0/')" "$from")
timeout_switch=$(count_events "$CL_EVENTS" "e['event']=='TRANSPORT_SWITCH' and e['reason']=='PROBE_TIMEOUT' and e['from_path'].startswith('up0/')" "$from")
if (( volatile == 0 )) && ! (( suspected >= 1 && timeout_switch >= 1 )); then
    fail "left the lossy path without VOLATILE/LOSS_THRESHOLD or a confirmed suspicion (volatile $volatile, suspicions $suspected, PROBE_TIMEOUT switches $timeout_switch)"
fi
echo "    left up0 by: $( (( volatile > 0 )) && echo "VOLATILE/LOSS_THRESHOLD" || echo "a confirmed suspicion (PROBE_TIMEOUT)")"
flap netem-clear up0
finish_stream
[[ "$(client_session)" == "$sid" ]] || fail "the session id changed"
pass
