#!/usr/bin/env bash
# Two clients at once through one gateway: AllowedIPs pick the session for each packet; both
# transfer concurrently with checksums; client-to-client traffic is routed by the gateway.
. "$(dirname "$0")/lib.bash"
rig_init
rig_create_two_clients
jvpn_keys gw c1 c2
GW=$(tun_name g); C1=$(tun_name a); C2=$(tun_name b)
rig_exec "$RIG_GW" sysctl -qw net.ipv4.ip_forward=1
write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32" c2 "10.77.0.3/32"
write_client_conf "$RIG_DIR/c1.conf" "$C1" c1 "10.77.0.2/24" "$RIG_GW_IP:51820" "10.77.0.0/24"
write_client_conf "$RIG_DIR/c2.conf" "$C2" c2 "10.77.0.3/24" "$RIG_GW_IP:51820" "10.77.0.0/24"

step "up (gateway + 2 clients)"
rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || fail "client 1 up"
rig_exec "$RIG_CLIENT2" "$JVPN_BIN" up "$RIG_DIR/c2.conf" --wait 10 || fail "client 2 up"
[[ "$(status_field "$RIG_GW" "$GW" "len([x for x in s['sessions'] if x['state']=='ATTACHED'])")" == 2 ]] || fail "gateway must hold 2 ATTACHED sessions"

step "ping each way"
rig_exec "$RIG_CLIENT" ping -c 2 -W 2 10.77.0.1 >/dev/null || fail "c1 -> gw"
rig_exec "$RIG_CLIENT2" ping -c 2 -W 2 10.77.0.1 >/dev/null || fail "c2 -> gw"
rig_exec "$RIG_CLIENT" ping -c 2 -W 2 10.77.0.3 >/dev/null || fail "c1 -> c2 via gateway"

step "concurrent transfers"
( transfer_check "$RIG_CLIENT" "$RIG_GW" 10.77.0.1 32 5301 ) & p1=$!
( transfer_check "$RIG_CLIENT2" "$RIG_GW" 10.77.0.1 32 5302 ) & p2=$!
wait $p1 || fail "client 1 transfer"
wait $p2 || fail "client 2 transfer"

step "sessions are distinct and each got its own traffic"
s1=$(status_field "$RIG_CLIENT" "$C1" "s['sessions'][0]['session']")
s2=$(status_field "$RIG_CLIENT2" "$C2" "s['sessions'][0]['session']")
[[ "$s1" != "$s2" ]] || fail "both clients share a session id"
for c in c1 c2; do
    rx=$(status_field "$RIG_GW" "$GW" "[x for x in s['sessions'] if x['peer']=='$(cat "$RIG_DIR/$c.pub")'][0]['rx_bytes']")
    (( rx > 30000000 )) || fail "gateway rx from $c only $rx bytes"
done

rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$C1" && rig_exec "$RIG_CLIENT2" "$JVPN_BIN" down "$C2" && rig_exec "$RIG_GW" "$JVPN_BIN" down "$GW" || fail "down"
assert_clean "$RIG_CLIENT" "$C1"; assert_clean "$RIG_CLIENT2" "$C2"; assert_clean "$RIG_GW" "$GW"
pass
