#!/usr/bin/env bash
# Path MTU 1400 on up1 with IPv6 inside the tunnel: 1400 - 28 - 32 leaves 1340 bytes of inner
# packet, above IPv6's 1280. A checksummed IPv6 TCP stream moved from up0 to up1 by a link-down
# completes intact without a stall over 2 s, and an IPv6 UDP sender gets the packet-too-big error.
. "$(dirname "$0")/lib.bash"
CLIENT_ADDRS="10.77.0.2/24, fd77::2/64" CLIENT_ALLOWED="10.77.0.0/24, fd77::/64" \
    GW_PEER_ALLOWED="10.77.0.2/32, fd77::2/128" BEFORE_CLIENT_UP="flap mtu up1 1400" router_setup
rig_wait_for '[[ $(path_mtu up0) == 1500 && $(path_mtu up1) == 1400 ]]' 10 0.1 || fail "path MTUs up0 $(path_mtu up0), up1 $(path_mtu up1)"
step "status: up0 $(path_mtu up0), up1 $(path_mtu up1)"
xfer_start up6 "$RIG_CLIENT" "$RIG_GW" fd77::1 9000 6 40
xfer_start down6 "$RIG_GW" "$RIG_CLIENT" fd77::2 9001 6 40
sleep 2
flap link-down up0
wait_active up1 3 || fail "no switch to up1"
xfer_finish up6 2000
xfer_finish down6 2000
out=$(rig_exec "$RIG_CLIENT" python3 "$REPO/deploy/netns/dfsend.py" fd77::9 9999 1400) || fail "no ICMPv6 error: $out"
echo "    $out"
[[ $(python3 -c "import json,sys; print(json.loads(sys.argv[1])['mtu'])" "$out") == 1340 ]] || fail "the error announces the wrong MTU"
echo "    client: $(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['mtu']")"
pass "IPv6 inside a 1400-byte path"
