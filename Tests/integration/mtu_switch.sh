#!/usr/bin/env bash
# Every path has its own MTU. The router silently drops packets over 1280 bytes on up1 only (nft
# `meta length`, no ICMP). Status shows both paths' MTUs; checksummed TCP streams both ways start on
# up0, a link-down moves them to up1 and they complete intact without a stall over 2 s (MSS clamp,
# TSO cut to the path, the gateway told the size); a UDP sender with DF gets the ICMP error. Then up1
# becomes the same black hole only after its MTU was found at 1500: the next switch finds it within a
# few probe rounds and the streams again go on.
. "$(dirname "$0")/lib.bash"
# Half the path MTU reports and half their receipts are lost on up1: the report is repeated until
# the gateway has it.
NFTDROP="$REPO/deploy/netns/nftdrop.sh"
BEFORE_CLIENT_UP="flap mtu up1 1280; \$NFTDROP add up1 to-gw path-mtu 50 >/dev/null; \$NFTDROP add up1 to-client path-mtu-ack 50 >/dev/null" \
    router_setup
rig_wait_for '[[ $(path_mtu up0) == 1500 && $(path_mtu up1) == 1280 ]]' 10 0.1 || fail "path MTUs up0 $(path_mtu up0), up1 $(path_mtu up1)"
echo "    lost on the way: $("$NFTDROP" count | awk '{ printf "%s %s; ", $1, $2 }')"
step "status: up0 $(path_mtu up0), up1 $(path_mtu up1) ($(status_field "$RIG_CLIENT" "$CL" "[p['mtu_search'] for p in s['sessions'][0]['paths']]"))"

both_ways_across_a_switch() {
    xfer_start up "$RIG_CLIENT" "$RIG_GW" 10.77.0.1 9000 7 40
    xfer_start down "$RIG_GW" "$RIG_CLIENT" 10.77.0.2 9001 7 40
    sleep 2
    flap link-down up0
    wait_active up1 3 || fail "no switch to up1"
    xfer_finish up 2000
    xfer_finish down 2000
}

step "streams both ways, up0 link-down moves them to up1 (1280)"
both_ways_across_a_switch
gw_mtu=$(status_field "$RIG_GW" "$GW" "s['sessions'][0]['paths'][0]['mtu']")
[[ "$gw_mtu" == 1280 ]] || fail "the gateway fits its traffic to $gw_mtu, not 1280"
echo "    client: $(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['mtu']")"
echo "    gateway: $(status_field "$RIG_GW" "$GW" "s['sessions'][0]['mtu']")"
[[ $(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['mtu']['resegmented'] > 0") == True ]] || fail "nothing was cut to the path"
[[ $(status_field "$RIG_GW" "$GW" "s['sessions'][0]['mtu']['resegmented'] > 0") == True ]] || fail "the gateway cut nothing"

step "a connection opened on up1: its SYN announces an MSS the path carries"
rig_exec "$RIG_CLIENT" ip route flush cache # the SYN's MSS comes from the TUN's MTU again
clamped() { status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['mtu']['mss_clamped']"; }
before=$(clamped)
rig_exec "$RIG_CLIENT" python3 -c "import socket; socket.create_connection(('10.77.0.1', 9), 2)" 2>/dev/null &&
    fail "port 9 answered?"
(( $(clamped) > before )) || fail "the SYN was not clamped"
# A destination whose path MTU the client kernel has not learnt yet from the streams.
step "a UDP sender with DF inside the tunnel gets the ICMP error"
out=$(rig_exec "$RIG_CLIENT" python3 "$REPO/deploy/netns/dfsend.py" 10.77.0.9 9999 1400) || fail "no ICMP error: $out"
echo "    $out"
[[ $(python3 -c "import json,sys; print(json.loads(sys.argv[1])['mtu'])" "$out") == 1220 ]] || fail "the error announces the wrong MTU"

# The kernel hands the TUN these with the UDP checksum left partial (checksum offload): it must be
# finished before the datagram is cut into fragments, or the far end drops every one.
step "a UDP sender without DF: fragmented to the path, every datagram arrives intact"
fragmented() { status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['mtu']['fragmented']"; }
f0=$(fragmented)
rig_exec "$RIG_GW" python3 "$TEST_DIR/udp_burst.py" recv 10.77.0.1 9100 50 1300 3 >"$RIG_DIR/nodf.out" &
nodf_receiver=$!
rig_wait_for "rig_output_has ':9100 ' rig_exec $RIG_GW ss -uln" 5 || fail "receiver on 9100 did not start"
rig_exec "$RIG_CLIENT" python3 "$TEST_DIR/udp_burst.py" send 10.77.0.1 9100 50 1300 nodf || fail "sender without DF failed"
wait "$nodf_receiver" || fail "receiver on 9100 failed"
echo "    $(cat "$RIG_DIR/nodf.out"); fragmented $(( $(fragmented) - f0 ))"
rig_output_has "received 50 in_order 50 intact 50" cat "$RIG_DIR/nodf.out" || fail "datagrams without DF lost or damaged"
(( $(fragmented) - f0 >= 50 )) || fail "the client fragmented $(( $(fragmented) - f0 )) of 50"

step "up0 back; up1 measured afresh at 1500, then it becomes a black hole for large packets"
flap link-up up0
wait_active up0 5 || fail "no return to up0"
flap mtu-clear up1
flap link-down up1
flap link-up up1
rig_wait_for '[[ $(path_mtu up1) == 1500 ]]' 10 0.1 || fail "up1 not found at 1500 again ($(path_mtu up1))"
flap mtu up1 1280
# Both hosts forget the path MTU the ICMP errors taught them: the streams start with full-size
# segments again.
rig_exec "$RIG_CLIENT" ip route flush cache
rig_exec "$RIG_GW" ip route flush cache
rig_output_has 'mtu 1220' rig_exec "$RIG_CLIENT" ip route get 10.77.0.1 && fail "the client still has a learnt path MTU"
both_ways_across_a_switch
[[ $(path_mtu up1) == 1280 ]] || fail "up1's MTU is $(path_mtu up1) after the black hole"
has_event "$CL_EVENTS" "e['event']=='AUDIT_EVENT' and e['check']=='path_mtu' and e['result']=='fail' and 'black hole' in e['detail']" ||
    fail "no path_mtu AUDIT_EVENT for the black hole"
python3 - "$CL_EVENTS" <<'PY'
import json, sys, datetime
ev = [json.loads(l) for l in open(sys.argv[1])]
t = lambda e: datetime.datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
sw = [e for e in ev if e["event"] == "TRANSPORT_SWITCH"][-1]
bh = [e for e in ev if e["event"] == "AUDIT_EVENT" and e["check"] == "path_mtu" and e["result"] == "fail"][-1]
print("    black hole found %d ms after the switch: %s" % ((t(bh) - t(sw)).total_seconds() * 1000, bh["detail"]))
PY
[[ "$(client_state)" == ATTACHED ]] || fail "not ATTACHED at the end"
pass "MTUs shown, streams intact across both switches, ICMP error delivered"
