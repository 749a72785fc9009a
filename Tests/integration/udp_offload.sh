#!/usr/bin/env bash
# UDP segmentation offload on the TUN (USO, Linux >= 6.2), both ways, and the fallback without it:
# 64-byte datagrams (IPv4 and IPv6) arrive at a UDP socket all, intact and in order, while the
# gateway's TUN took fewer writes than datagrams (its rx_packets counts one per write: a UDP
# super-packet is one); a client-side sender using UDP_SEGMENT hands its TUN super-packets (its
# tx_packets counts one per read) that the send path splits back into datagrams. With
# JVPN_NO_USO=1 (what a kernel without USO gives) the same traffic arrives, one write per datagram.
# A gateway TUN set down refuses writes: each refused packet (merged or not) is counted in
# data_plane.dropped.tun_write, and the session carries traffic again once the TUN is up.
. "$(dirname "$0")/lib.bash"
rig_init
rig_create_basic
jvpn_keys gw c1
GW=$(tun_name g); CL=$(tun_name c)
write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32, fd77::2/128"
write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/24, fd77::2/64" "$RIG_GW_IP:51820" "10.77.0.0/24, fd77::/64"
BURST="$TEST_DIR/udp_burst.py"
COUNT=4000

up() {
    rig_exec "$RIG_GW" env "$@" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up failed: $(cat "/run/jvpn/$GW.log")"
    rig_exec "$RIG_CLIENT" env "$@" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || fail "client up failed"
    rig_exec "$RIG_CLIENT" ping -c 1 -W 2 10.77.0.1 >/dev/null || fail "ping 10.77.0.1"
}

down() {
    rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL" || fail "client down"
    rig_exec "$RIG_GW" "$JVPN_BIN" down "$GW" || fail "gateway down"
}

stat_of() { rig_exec "$1" cat "/sys/class/net/$2/statistics/$3"; }

# flow HOST PORT [gso] -> sets WRITES (gateway TUN writes) and READS (client TUN reads) during it
flow() {
    local host="$1" port="$2" gso="${3:-}" out="$RIG_DIR/recv.$2" w0 r0
    w0=$(stat_of "$RIG_GW" "$GW" rx_packets); r0=$(stat_of "$RIG_CLIENT" "$CL" tx_packets)
    rig_exec "$RIG_GW" python3 "$BURST" recv "$host" "$port" "$COUNT" 64 3 >"$out" &
    local rpid=$!
    rig_wait_for "rig_output_has ':$port ' rig_exec $RIG_GW ss -uln" 5 || fail "receiver on $port did not start"
    rig_exec "$RIG_CLIENT" python3 "$BURST" send "$host" "$port" "$COUNT" 64 ${gso:+"$gso"} || fail "sender to $host failed"
    wait "$rpid" || fail "receiver on $port failed"
    WRITES=$(( $(stat_of "$RIG_GW" "$GW" rx_packets) - w0 )); READS=$(( $(stat_of "$RIG_CLIENT" "$CL" tx_packets) - r0 ))
    echo "    $host $gso: $(cat "$out"); gateway TUN writes $WRITES, client TUN reads $READS"
    rig_output_has "received $COUNT in_order $COUNT intact $COUNT" cat "$out" || fail "$host $gso: not all intact and in order"
}

step "with USO"
up
rig_output_has "TUN offload on \\(TCP, UDP\\)" cat "/run/jvpn/$GW.log" || fail "gateway TUN without USO on this kernel ($(uname -r))"
for host in 10.77.0.1 fd77::1; do
    flow "$host" 9000
    # Under CPU contention fewer bursts meet in one receive batch (0.8 of the datagrams seen then);
    # without merging at all it is every one.
    (( WRITES < COUNT * 9 / 10 )) || fail "$host: $WRITES TUN writes for $COUNT datagrams: not coalesced"
done
flow 10.77.0.1 9001 gso
(( READS < COUNT / 2 )) || fail "UDP_SEGMENT: $READS TUN reads for $COUNT datagrams: no super-packets"

step "a TUN that refuses writes: each refused packet counted, the session goes on"
tun_write_drops() { status_field "$RIG_GW" "$GW" "s['data_plane']['dropped']['tun_write']"; }
d0=$(tun_write_drops) || fail "no data_plane.dropped.tun_write in the gateway's status"
rig_exec "$RIG_GW" ip link set "$GW" down
rig_exec "$RIG_CLIENT" python3 "$BURST" send 10.77.0.1 9004 "$COUNT" 64 || fail "sender failed"
rig_exec "$RIG_CLIENT" ping -c 3 -i 0.2 -W 1 10.77.0.1 >/dev/null && fail "ping answered through a down TUN"
expected=$(( d0 + COUNT + 3 )) # merged bursts count each datagram; each echo request is one write
rig_wait_for "(( \$(tun_write_drops) >= $expected ))" 5 || fail "tun_write $(tun_write_drops), expected $expected"
d1=$(tun_write_drops)
(( d1 == expected )) || fail "tun_write $d1, expected $expected"
echo "    refused while down: $(( d1 - d0 )) packets counted"
rig_exec "$RIG_GW" ip link set "$GW" up
rig_exec "$RIG_CLIENT" ping -c 1 -W 2 10.77.0.1 >/dev/null || fail "no ping once the TUN is up again"
(( $(tun_write_drops) == d1 )) || fail "tun_write grew once the TUN was up"
[[ "$(client_state)" == ATTACHED ]] || fail "client $(client_state) after the gateway's TUN came back"
down

step "without USO (JVPN_NO_USO=1)"
up JVPN_NO_USO=1
rig_output_has "TUN offload on \\(TCP\\)" cat "/run/jvpn/$GW.log" || fail "gateway log does not say TCP-only offload"
flow 10.77.0.1 9002
(( WRITES >= COUNT )) || fail "$WRITES TUN writes for $COUNT datagrams without USO"
flow fd77::1 9003 gso
down
pass
