#!/usr/bin/env bash
# Ping (v4 and v6) and a 64 MB TCP transfer with sha256 compared at both ends through the tunnel;
# status JSON; garbage and empty datagrams are dropped and counted; then down leaves no interface,
# route, rule or socket behind.
. "$(dirname "$0")/lib.bash"
rig_init
rig_create_basic
jvpn_keys gw c1
GW=$(tun_name g); CL=$(tun_name c)
write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32, fd77::2/128"
write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/24, fd77::2/64" "$RIG_GW_IP:51820" "10.77.0.0/24, fd77::/64"

step "up"
rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up failed: $(cat /run/jvpn/$GW.log)"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || fail "client up failed"
[[ "$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['state']")" == ATTACHED ]] || fail "client not ATTACHED"

step "ping v4 and v6 through the tunnel"
rig_exec "$RIG_CLIENT" ping -c 3 -i 0.2 -W 2 10.77.0.1 >/dev/null || fail "ping 10.77.0.1"
rig_exec "$RIG_CLIENT" ping -6 -c 3 -i 0.2 -W 2 fd77::1 >/dev/null || fail "ping fd77::1"

step "64 MB TCP with checksum"
transfer_check "$RIG_CLIENT" "$RIG_GW" 10.77.0.1 64

step "status"
rx=$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['rx_bytes']")
tx=$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['tx_bytes']")
(( tx > 60000000 )) || fail "client tx_bytes $tx too small"
(( rx > 0 )) || fail "client rx_bytes $rx"
[[ "$(status_field "$RIG_GW" "$GW" "s['role']")" == server ]] || fail "gateway role"
[[ "$(status_field "$RIG_GW" "$GW" "s['sessions'][0]['session']")" == "$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['session']")" ]] \
    || fail "session ids differ between client and gateway"
rig_output_has ATTACHED rig_exec "$RIG_CLIENT" "$JVPN_BIN" status "$CL" || fail "human status"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" 2>/dev/null && fail "second up on a running interface must fail"

step "garbage datagrams at the gateway: dropped, counted, no crash"
rig_exec "$RIG_CLIENT" python3 -c '
import os, random, socket
random.seed(7)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3000):
    n = random.choice([0, 1, 15, 16, 31, 32, 33, 76, 144, 148, 1500, 2000, 65000])
    b = bytearray(os.urandom(n))
    if n: b[0] = random.choice([1, 2, 3, 4, 5, 6, 255])
    try: s.sendto(bytes(b), ("10.201.0.1", 51820))
    except OSError: pass
'
rig_exec "$RIG_CLIENT" ping -c 2 -W 2 10.77.0.1 >/dev/null || fail "tunnel broken after garbage"
[[ "$(status_field "$RIG_GW" "$GW" "s['sessions'][0]['state']")" == ATTACHED ]] || fail "gateway session disturbed by garbage"

step "empty datagrams at the gateway: each one counted as malformed"
m0=-1   # settled: the garbage above is all counted
for _ in $(seq 1 20); do
    m=$(status_field "$RIG_GW" "$GW" "s['handshakes']['dropped']['malformed']")
    (( m == m0 )) && break
    m0=$m
    sleep 0.2
done
rig_exec "$RIG_CLIENT" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5): s.sendto(b"", ("10.201.0.1", 51820))
'
for _ in $(seq 1 30); do
    m1=$(status_field "$RIG_GW" "$GW" "s['handshakes']['dropped']['malformed']")
    (( m1 - m0 >= 5 )) && break
    sleep 0.1
done
(( m1 - m0 == 5 )) || fail "5 empty datagrams counted as $(( m1 - m0 )) malformed drops"

step "down"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL" || fail "client down"
rig_exec "$RIG_GW" "$JVPN_BIN" down "$GW" || fail "gateway down"
assert_clean "$RIG_CLIENT" "$CL"
assert_clean "$RIG_GW" "$GW"
has_event "$RIG_DIR/$CL.events.jsonl" "e['event']=='STATE_CHANGE' and e['to']=='TERMINATED' and e['reason']=='OPERATOR_REQUEST'" \
    || fail "no OPERATOR_REQUEST termination event"
for k in c1 gw; do
    grep -rqF "$(cat "$RIG_DIR/$k.key")" "$RIG_DIR"/*.jsonl /run/jvpn/"$CL".log /run/jvpn/"$GW".log 2>/dev/null && fail "private key $k reached a log"
done
rig_exec "$RIG_CLIENT" "$JVPN_BIN" status "$CL" >/dev/null 2>&1 && fail "status after down must exit 1"
pass
