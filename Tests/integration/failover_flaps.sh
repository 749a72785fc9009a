#!/usr/bin/env bash
# A TCP stream runs while the active uplink goes down and comes back 10 times: the stream
# completes intact, one TRANSPORT_SWITCH (with recovery_ms) per switch, the session id never changes.
. "$(dirname "$0")/lib.bash"
router_setup
sid=$(client_session)
ifindex=$(ip -n "$RIG_CLIENT" -o link show "$CL" | cut -d: -f1)
step "stream + 10 link flaps of the active uplink"
start_stream 50 20
sleep 2
for i in $(seq 1 10); do
    up=$(active_uplink)
    flap link-down "$up"
    other=up1; [[ $up == up1 ]] && other=up0
    wait_active "$other" 3 || fail "flap $i: no switch away from $up"
    sleep 1
    flap link-up "$up"
    sleep 2.5
done
finish_stream
[[ "$(client_session)" == "$sid" ]] || fail "the session id changed"
[[ "$(ip -n "$RIG_CLIENT" -o link show "$CL" | cut -d: -f1)" == "$ifindex" ]] || fail "the TUN interface was re-created"
switches=$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['switches']")
events=$(count_events "$CL_EVENTS" "e['event']=='TRANSPORT_SWITCH' and isinstance(e.get('recovery_ms'), int)")
ok_events=$(count_events "$CL_EVENTS" "e['event']=='STATE_CHANGE' and e['reason']=='REATTACH_OK'")
linkdown=$(count_events "$CL_EVENTS" "e['event']=='TRANSPORT_SWITCH' and e['reason']=='LINK_DOWN'")
echo "    switches: $switches, TRANSPORT_SWITCH events: $events (LINK_DOWN: $linkdown), REATTACH_OK: $ok_events"
[[ "$switches" == "$events" && "$events" == "$ok_events" ]] || fail "switch count $switches != events $events / $ok_events"
(( linkdown >= 10 )) || fail "want >= 10 LINK_DOWN switches, got $linkdown"
[[ $(count_events "$CL_EVENTS" "e['session']!='$sid'") == 0 ]] || fail "events of another session"
[[ $(count_events "$GW_EVENTS" "e['event']=='TRANSPORT_SWITCH'") == "$events" ]] || fail "gateway saw a different number of switches"
[[ "$(client_state)" == ATTACHED ]] || fail "not ATTACHED at the end"
python3 -c "import json,sys,collections; print(\"    reasons:\", dict(collections.Counter(json.loads(l)[\"reason\"] for l in open(sys.argv[1]) if json.loads(l)[\"event\"]==\"TRANSPORT_SWITCH\")))" "$CL_EVENTS"
pass "$events switches"
