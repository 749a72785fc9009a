#!/usr/bin/env bash
# An event log that cannot be written never stops the data plane: packets flow, and the lost
# telemetry is counted in events_dropped. `jvpn events` prints the readable timeline.
. "$(dirname "$0")/lib.bash"
rig_init
rig_create_basic
jvpn_keys gw c1
GW=$(tun_name g); CL=$(tun_name c)
write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32"
sed -i "s|^EventLog = .*|EventLog = /proc/jvpn-no-such-dir/$GW.events.jsonl|" "$RIG_DIR/gw.conf"
write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/24" "$RIG_GW_IP:51820" "10.77.0.0/24"
rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || fail "client up"
rig_exec "$RIG_CLIENT" ping -c 5 -i 0.1 -W 2 10.77.0.1 >/dev/null || fail "no traffic with an unwritable event log"
rig_wait_for "(( \$(status_field $RIG_GW $GW \"s['sessions'][0]['events_dropped']\") > 0 ))" 5 || fail "events_dropped not counted"
step "timeline"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" events "$CL" | tee "$RIG_DIR/timeline.txt"
grep -q "STATE_CHANGE .*BIRTH -> ATTACHED .*HANDSHAKE_OK" "$RIG_DIR/timeline.txt" || fail "timeline lacks the handshake"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" events "$CL" --json | python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' || fail "--json lines are not JSON"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL"; rig_exec "$RIG_GW" "$JVPN_BIN" down "$GW"
pass
