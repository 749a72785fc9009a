#!/usr/bin/env bash
# TCP transport mid-session: a paced TCP stream runs through the tunnel on up0's UDP path; the
# router starts dropping every UDP packet of both uplinks. The session moves to a TCP path with one
# TRANSPORT_SWITCH (PROBE_TIMEOUT), keeps its id, and the stream survives. Once UDP passes again the
# session returns to UDP (BETTER_PATH) after StableWindowMs (1 s here) and not before.
. "$(dirname "$0")/lib.bash"
router_setup
sid=$(client_session)
[[ "$(active_uplink)" == up0 ]] || fail "up0 should be active at start"
start_stream 20 10
sleep 2
step "block UDP on both uplinks"
mark=$(wc -l <"$CL_EVENTS")
t0=$(date +%s%3N)
udp_block
rig_wait_for "[[ \$(status_field $RIG_CLIENT $CL \"s['sessions'][0]['active_path'].split('/')[1]\") == tcp && \$(client_state) == ATTACHED ]]" 5 0.05 \
    || fail "no move to a TCP path"
echo "    on TCP $(( $(date +%s%3N) - t0 )) ms after the block: $(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['active_path']")"
sleep 1
n=$(count_events "$CL_EVENTS" "e['event']=='TRANSPORT_SWITCH'" "$mark")
m=$(count_events "$CL_EVENTS" "e['event']=='TRANSPORT_SWITCH' and '/tcp/' in e['to_path'] and e['reason']=='PROBE_TIMEOUT'" "$mark")
[[ "$n" == 1 && "$m" == 1 ]] || fail "expected exactly one TRANSPORT_SWITCH (PROBE_TIMEOUT, to a tcp path), got $n ($m to tcp)"
[[ "$(client_session)" == "$sid" ]] || fail "the session id changed"
step "unblock UDP: back to UDP after StableWindowMs"
sleep 3
mark=$(wc -l <"$CL_EVENTS")
udp_unblock
t1=$(date +%s%3N)
rig_wait_for "[[ \$(status_field $RIG_CLIENT $CL \"s['sessions'][0]['active_path'].split('/')[1]\") != tcp ]]" 8 0.05 || fail "no return to UDP"
back=$(( $(date +%s%3N) - t1 ))
echo "    back on UDP $back ms after the unblock: $(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['active_path']")"
(( back >= 1000 )) || fail "returned after $back ms, before StableWindowMs (1000)"
has_event "$CL_EVENTS" "e['event']=='TRANSPORT_SWITCH' and e['reason']=='BETTER_PATH' and '/tcp/' in e['from_path'] and '/tcp/' not in e['to_path']" \
    || fail "no BETTER_PATH switch from tcp to udp"
finish_stream
[[ "$(client_session)" == "$sid" ]] || fail "the session id changed"
pass
