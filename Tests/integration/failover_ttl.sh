#!/usr/bin/env bash
# Both uplinks down past TransportLossTtlMs: TERMINATED with TRANSPORT_LOSS_TTL_EXPIRED; when an
# uplink returns a NEW session comes up and the TUN interface (with its address) was never removed.
# Also: an uplink named in Uplinks that does not exist at start becomes a candidate when it appears.
. "$(dirname "$0")/lib.bash"
CLIENT_EXTRA="Uplinks = up0, up1, up9" router_setup "TransportLossTtlMs = 3000
MaxRecoveryWindowMs = 1000"
sid=$(client_session)
ifindex=$(ip -n "$RIG_CLIENT" -o link show "$CL" | cut -d: -f1)
step "both uplinks down for 5 s"
flap link-down up0; flap link-down up1
sleep 5
has_event "$CL_EVENTS" "e['event']=='STATE_CHANGE' and e['to']=='TERMINATED' and e['reason']=='TRANSPORT_LOSS_TTL_EXPIRED' and e['session']=='$sid'" \
    || fail "no TERMINATED/TRANSPORT_LOSS_TTL_EXPIRED"
flap link-up up1
wait_state ATTACHED 10 || fail "no new session after up1 came back"
sid2=$(client_session)
[[ "$sid2" != "$sid" ]] || fail "the session id did not change"
[[ "$(ip -n "$RIG_CLIENT" -o link show "$CL" | cut -d: -f1)" == "$ifindex" ]] || fail "the TUN interface was re-created"
rig_output_has "inet 10\.77\.0\.2/" ip -n "$RIG_CLIENT" addr show "$CL" || fail "the TUN address was lost"
rig_exec "$RIG_CLIENT" ping -c 3 -i 0.2 -W 2 10.77.0.1 >/dev/null || fail "no traffic in the new session"
has_event "$CL_EVENTS" "e['event']=='STATE_CHANGE' and e['to']=='ATTACHED' and e['reason']=='HANDSHAKE_OK' and e['session']=='$sid2'" \
    || fail "new session not logged"
step "hot-plug: up9 appears and becomes a candidate"
ip link add up9 netns "$RIG_CLIENT" type veth peer name rt9 netns "$RIG_ROUTER"
ip -n "$RIG_ROUTER" addr add 10.209.0.1/24 dev rt9; ip -n "$RIG_ROUTER" link set rt9 up
ip -n "$RIG_CLIENT" addr add 10.209.0.2/24 dev up9; ip -n "$RIG_CLIENT" link set up9 up
ip -n "$RIG_CLIENT" route add default via 10.209.0.1 dev up9 metric 900
rig_wait_for "[[ \$(status_field $RIG_CLIENT $CL \"[p['status'] for p in s['sessions'][0]['paths'] if p['uplink']=='up9'][0]\") == standby ]]" 5 0.1 \
    || fail "up9 did not become a standby candidate"
flap link-down up1
wait_active up9 3 || { rig_exec "$RIG_CLIENT" "$JVPN_BIN" status "$CL"; rig_exec "$RIG_CLIENT" "$JVPN_BIN" events "$CL" | tail -8; fail "no switch to the hot-plugged uplink"; }
pass
