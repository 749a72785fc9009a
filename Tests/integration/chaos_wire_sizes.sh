#!/usr/bin/env bash
# The chaos tests find message kinds by UDP payload length and first byte (the size table in
# deploy/netns/nftdrop.sh). If the daemons' wire sizes drift from that table, a drop rule matches
# nothing and a chaos test proves nothing. This counts (drops nothing) every kind on both uplinks
# through a handshake, pings and a switch away from up0 and back, and checks that each kind the
# table names for CHAOS_WIRE (default v2) was seen at least once.
. "$(dirname "$0")/chaos_lib.bash"
chaos_setup "" noclient
REQUIRED="to-gw:init to-client:response to-gw:probe to-client:probe-reply to-gw:reattach to-client:ack to-gw:data to-client:data
          to-gw:path-mtu to-client:path-mtu-ack"
for u in up0 up1; do
    for dk in $REQUIRED; do drop add "$u" "${dk%%:*}" "${dk#*:}" 0; done
done
step "wire $CHAOS_WIRE: handshake, pings, a switch to up1 and back to up0, all counted at the router"
chaos_client_up 10
wait_converged "$(now_ms)" 5 up0 || fail "not converged at start: $CONV_LINE"
ping_check 3 3
flap link-down up0
wait_converged "$(now_ms)" 5 up1 || fail "no switch to up1: $CONV_LINE"
flap link-up up0
wait_converged "$(now_ms)" 8 up0 || fail "no return to up0: $CONV_LINE"
ping_check 3 3
counts="$(drop_count)"
echo "$counts" | sed 's/^/    /'
missing=""
for dk in $REQUIRED; do
    n="$(awk -v d="${dk%%:*}" -v k="${dk#*:}" '{ split($1, a, "/"); if (a[2] == d && a[3] == k) s += $2 } END { print s + 0 }' <<<"$counts")"
    (( n > 0 )) || missing+=" ${dk}"
done
[[ -z "$missing" ]] || fail "wire $CHAOS_WIRE: never saw:$missing (the size table in deploy/netns/nftdrop.sh does not match this build)"
pass "every kind of the $CHAOS_WIRE table seen"
