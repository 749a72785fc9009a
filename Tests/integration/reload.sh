#!/usr/bin/env bash
# Live reconfiguration under a running TCP stream and a 50/s ping from client c1, whose own
# session must not notice (same session id, no state change, no switch, no ping lost, the stream
# intact): the gateway gains a peer c2 (which then connects), loses it again by SIGHUP (c2's
# session ends with OPERATOR_REQUEST) while c1 gains an AllowedIPs prefix (a kernel route, and
# traffic from that prefix both ways), refuses
# a broken config and a ListenPort change with FILE:LINE: (exit 2, running config kept); the client
# gets a second uplink, a new prefix and a new policy, and then fails over to the new uplink.
. "$(dirname "$0")/lib.bash"
CLIENT_EXTRA="Uplinks = up0" router_setup
jvpn_keys c2
sid=$(client_session)
gw_mark=$(wc -l <"$GW_EVENTS"); cl_mark=$(wc -l <"$CL_EVENTS")
# policy_with "Key = value" : the rig's policy with that key replaced
policy_with() { grep -v "^${1%% *} " <<<"$RIG_POLICY"; echo "$1"; }
gw_conf() { GW_POLICY="$(policy_with "$1")" write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 "${@:2}"; }

step "a stream and a ping through c1's session while both sides reload"
start_stream 22 10
rig_exec "$RIG_CLIENT" ping -c 1000 -i 0.02 -W 1 -q 10.77.0.1 >"$RIG_DIR/ping.txt" 2>&1 &
ping_pid=$!
sleep 1

step "gateway: jvpn reload adds peer c2 and changes the policy"
gw_conf "MaxSwitchesPerMinute = 20" c1 "10.77.0.2/32" c2 "10.77.0.3/32"
out="$(rig_exec "$RIG_GW" "$JVPN_BIN" reload "$GW")" || fail "reload (add c2) failed: $out"
echo "    $out"
[[ "$out" == *"peers +1 -0 ~0"* && "$out" == *"MaxSwitchesPerMinute 30 -> 20"* ]] || fail "unexpected summary: $out"
rig_add_router_client
C2=$(tun_name b)
write_client_conf "$RIG_DIR/c2.conf" "$C2" c2 "10.77.0.3/24" "$RIG_GW_IP:51820" "10.77.0.0/24" "" "$RIG_POLICY"
rig_exec "$RIG_CLIENT2" "$JVPN_BIN" up "$RIG_DIR/c2.conf" --wait 10 >/dev/null || fail "c2 up"
rig_exec "$RIG_CLIENT2" ping -c 2 -W 2 10.77.0.1 >/dev/null || fail "c2 cannot reach the gateway after being added"
c2sid=$(status_field "$RIG_CLIENT2" "$C2" "s['sessions'][0]['session']")

step "gateway: SIGHUP removes c2 and routes 10.99.0.0/16 to c1"
gw_conf "MaxSwitchesPerMinute = 20" c1 "10.77.0.2/32, 10.99.0.0/16"
gwpid="$(rig_pids_by_comm "$RIG_GW" '^jvpn$')"
[[ "$gwpid" =~ ^[0-9]+$ ]] || fail "gateway daemon pid: '$gwpid'"
kill -HUP "$gwpid"
rig_wait_for "has_event '$GW_EVENTS' \"e['event']=='STATE_CHANGE' and e['session']=='$c2sid' and e['to']=='TERMINATED' and e['reason']=='OPERATOR_REQUEST'\"" 5 ||
    fail "c2's gateway session did not end with OPERATOR_REQUEST"
rig_wait_for "rig_output_has '^10\.99\.0\.0/16 dev $GW' ip -n '$RIG_GW' route show" 3 || fail "no route 10.99.0.0/16 via $GW"
has_event "$GW_EVENTS" "e['event']=='AUDIT_EVENT' and e['check']=='config_reload' and e['session']=='$sid' and 'AllowedIPs +10.99.0.0/16' in e['detail'] and 'session untouched' in e['detail']" ||
    fail "no config_reload audit for c1's new prefix"
rig_wait_for "has_event '$RIG_DIR/$C2.events.jsonl' \"e['event']=='STATE_CHANGE' and e['session']=='$c2sid' and e['to']=='TERMINATED'\"" 5 ||
    fail "client c2 was not told that its session ended"
rig_exec "$RIG_CLIENT2" "$JVPN_BIN" down "$C2" >/dev/null 2>&1 || true
# The reload patched the published AllowedIPs table: a packet from c1's new prefix passes the
# gateway's source check, and the reply finds c1 by the new prefix.
rig_exec "$RIG_CLIENT" ip addr add 10.99.0.5/32 dev "$CL"
rig_exec "$RIG_CLIENT" ping -c 3 -i 0.2 -W 2 -I 10.99.0.5 10.77.0.1 >"$RIG_DIR/ping99.txt" 2>&1 ||
    fail "no traffic from c1's new prefix 10.99.0.0/16: $(cat "$RIG_DIR/ping99.txt")"

step "gateway: a broken config and a ListenPort change are refused, the running config stays"
cp "$RIG_DIR/gw.conf" "$RIG_DIR/gw.good"
printf '\n[Peer]\nPublicKey = not-a-key\n' >>"$RIG_DIR/gw.conf"
rc=0; rig_exec "$RIG_GW" "$JVPN_BIN" reload "$GW" 2>"$RIG_DIR/err" || rc=$?
[[ $rc == 2 ]] && rig_output_has "^$RIG_DIR/gw.conf:[0-9]+: " cat "$RIG_DIR/err" || fail "broken config: exit $rc, $(cat "$RIG_DIR/err")"
sed 's/^ListenPort = 51820/ListenPort = 51821/' "$RIG_DIR/gw.good" >"$RIG_DIR/gw.conf"
rc=0; rig_exec "$RIG_GW" "$JVPN_BIN" reload "$GW" 2>"$RIG_DIR/err" || rc=$?
[[ $rc == 2 ]] && rig_output_has "gw.conf:5: ListenPort cannot change while $GW runs" cat "$RIG_DIR/err" ||
    fail "ListenPort change: exit $rc, $(cat "$RIG_DIR/err")"
cp "$RIG_DIR/gw.good" "$RIG_DIR/gw.conf"
[[ $(count_events "$GW_EVENTS" "e['event']=='AUDIT_EVENT' and e['check']=='config_reload' and e['result']=='fail'") == 2 ]] ||
    fail "the two refusals are not both AUDIT_EVENTs"
[[ "$(status_field "$RIG_GW" "$GW" "s['listen_port']")" == 51820 ]] || fail "the gateway's port changed"

step "client: reload adds uplink up1, prefix 10.98.0.0/16 and a policy change"
write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/24" "$RIG_GW_IP:51820" "10.77.0.0/24, 10.98.0.0/16" \
    "Uplinks = up0, up1" "$(policy_with "JitterVolatileMs = 150")"
out="$(rig_exec "$RIG_CLIENT" "$JVPN_BIN" reload "$CL")" || fail "client reload failed: $out"
echo "    $out"
[[ "$out" == *"uplinks +up1"* && "$out" == *"JitterVolatileMs 100 -> 150"* ]] || fail "unexpected summary: $out"
rig_output_has "^10\.98\.0\.0/16 dev $CL" ip -n "$RIG_CLIENT" route show || fail "no route 10.98.0.0/16 via $CL"
# A UDP and a TCP path per uplink (Transport = udp, tcp by default).
[[ "$(status_field "$RIG_CLIENT" "$CL" "sorted((p['uplink'], p['transport']) for p in s['sessions'][0]['paths'])")" \
    == "[('up0', 'tcp'), ('up0', 'udp'), ('up1', 'tcp'), ('up1', 'udp')]" ]] || fail "the client does not show up1's paths"

step "c1 did not notice"
finish_stream
wait "$ping_pid" || true
rig_output_has ' 0% packet loss' cat "$RIG_DIR/ping.txt" || fail "pings lost during the reloads: $(grep -E 'packets' "$RIG_DIR/ping.txt")"
echo "    ping: $(grep -E 'packets' "$RIG_DIR/ping.txt")"
[[ "$(client_session)" == "$sid" ]] || fail "c1's session id changed"
for f in "$CL_EVENTS:$cl_mark" "$GW_EVENTS:$gw_mark"; do
    n=$(count_events "${f%:*}" "e['session']=='$sid' and e['event'] in ('STATE_CHANGE','TRANSPORT_SWITCH')" "${f##*:}")
    [[ $n == 0 ]] || fail "$n state changes or switches of c1's session in $(basename "${f%:*}") during the reloads"
done

step "the new uplink carries the session when up0 fails"
flap link-down up0
wait_active up1 3 || fail "no switch to the uplink added by reload"
rig_exec "$RIG_CLIENT" ping -c 2 -W 2 10.77.0.1 >/dev/null || fail "no traffic over up1"
pass "unchanged session untouched, peers added and removed, bad configs refused, new uplink used"
