#!/usr/bin/env bash
# Full tunnel (AllowedIPs = 0.0.0.0/0, ::/0) through policy routing: everything goes into the
# tunnel, the encrypted UDP does not loop, a host only reachable via the gateway answers, and down
# removes the table route and both rules.
. "$(dirname "$0")/lib.bash"
rig_init
rig_create_basic
jvpn_keys gw c1
GW=$(tun_name g); CL=$(tun_name c)
# A host "behind" the gateway: only reachable through the tunnel.
ip -n "$RIG_GW" addr add 198.51.100.1/32 dev lo
write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32, fd77::2/128"
write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/32, fd77::2/128" "$RIG_GW_IP:51820" "0.0.0.0/0, ::/0"
rules_before=$(ip -n "$RIG_CLIENT" rule show | wc -l)

step "up"
rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || fail "client up"
rig_output_has "dev $CL " rig_exec "$RIG_CLIENT" ip route get 198.51.100.1 || fail "198.51.100.1 is not routed into the tunnel"
rig_output_has "dev $CL " rig_exec "$RIG_CLIENT" ip -6 route get 2001:db8::1 || fail "IPv6 default is not routed into the tunnel"
rig_output_has "dev up0 " rig_exec "$RIG_CLIENT" ip route get "$RIG_GW_IP" mark 51820 || fail "marked (encrypted) traffic must leave on up0"

step "traffic through the full tunnel"
rig_exec "$RIG_CLIENT" ping -c 3 -i 0.2 -W 2 198.51.100.1 >/dev/null || fail "ping 198.51.100.1 via tunnel"
transfer_check "$RIG_CLIENT" "$RIG_GW" 198.51.100.1 50
[[ "$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['state']")" == ATTACHED ]] || fail "session not ATTACHED after transfer"

step "down restores routing"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL" || fail "down"
assert_clean "$RIG_CLIENT" "$CL"
[[ "$(ip -n "$RIG_CLIENT" rule show | wc -l)" == "$rules_before" ]] || fail "rule count differs after down"
[[ -z "$(ip -n "$RIG_CLIENT" route show table 51820 2>/dev/null)" ]] || fail "table 51820 not empty"
rig_exec "$RIG_CLIENT" ping -c 1 -W 2 "$RIG_GW_IP" >/dev/null || fail "underlay broken after down"
rig_exec "$RIG_GW" "$JVPN_BIN" down "$GW"
pass
