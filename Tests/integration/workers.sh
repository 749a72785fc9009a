#!/usr/bin/env bash
# Two packet workers on each side (Workers = 2): the TUN has two queues, a 64 MB TCP transfer
# arrives intact, the workers' counters add up to the session's, and a captured data frame replayed
# from many source ports (which the gateway's SO_REUSEPORT sockets spread over both workers) is
# refused every time: one replay window per keys, whichever worker opens the frame.
. "$(dirname "$0")/lib.bash"
rig_init
rig_create_basic
jvpn_keys gw c1
GW=$(tun_name g); CL=$(tun_name c)
write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32"
write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/24" "$RIG_GW_IP:51820" "10.77.0.0/24" "Workers = 2"
sed -i "/^\[Interface\]/a Workers = 2" "$RIG_DIR/gw.conf"

step "up, two workers each"
rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up failed: $(cat /run/jvpn/$GW.log)"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || fail "client up failed"
[[ "$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['state']")" == ATTACHED ]] || fail "client not ATTACHED"
[[ "$(status_field "$RIG_GW" "$GW" "len(s['data_plane']['workers'])")" == 2 ]] || fail "gateway does not show two workers"

step "a second gateway on the same port is refused, whatever its workers"
# Its own name and event log, and no TCP port (whose bind would refuse it anyway).
sed -e "s/^Name = .*/Name = $(tun_name h)/" -e "s|^EventLog = .*|EventLog = $RIG_DIR/gw2.events.jsonl|" \
    -e "/^\[Interface\]/a TcpListen = off" "$RIG_DIR/gw.conf" >"$RIG_DIR/gw2.conf"
second=$(rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw2.conf" 2>&1) && fail "a second gateway joined UDP 51820: $second"
[[ "$second" == *"bind udp port 51820: Address already in use"* ]] || fail "second gateway: $second"

step "one TUN queue per worker"
for pair in "$RIG_GW:$GW" "$RIG_CLIENT:$CL"; do
    queues=$(rig_exec "${pair%%:*}" ls "/sys/class/net/${pair#*:}/queues")
    [[ "$queues" == $'rx-0\nrx-1\ntx-0\ntx-1' ]] || fail "${pair#*:} queues: $queues"
done

step "64 MB TCP with checksum, ping"
transfer_check "$RIG_CLIENT" "$RIG_GW" 10.77.0.1 64
rig_exec "$RIG_CLIENT" ping -c 3 -i 0.2 -W 2 10.77.0.1 >/dev/null || fail "ping 10.77.0.1"

step "the workers' counters add up to the session's"
for pair in "$RIG_GW:$GW" "$RIG_CLIENT:$CL"; do
    verdict=$(status_field "${pair%%:*}" "${pair#*:}" "
[
 (k, sum(w[k] for w in s['data_plane']['workers']), s['sessions'][0][k])
 for k in ('tx_packets', 'rx_packets')
 if sum(w[k] for w in s['data_plane']['workers']) != s['sessions'][0][k] or s['sessions'][0][k] < 100
] or 'ok'")
    [[ "$verdict" == ok ]] || fail "${pair#*:}: workers against session (key, workers, session): $verdict"
done

step "a data frame replayed from 32 source ports: refused on every worker"
# Capture one data frame (type 4, longer than a keepalive) on its way to the gateway.
rig_exec "$RIG_GW" timeout 10 python3 -c '
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
s.bind((sys.argv[1], 0))
while True:
    f, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING: continue
    ip = f[14:]
    if ip[0] >> 4 != 4 or ip[9] != 17: continue
    udp = ip[(ip[0] & 15) * 4:]
    payload = udp[8:]
    if int.from_bytes(udp[2:4], "big") == 51820 and payload[:1] == b"\x04" and len(payload) > 48:
        open(sys.argv[2], "w").write(payload.hex())
        break
' "$RIG_GW_IF" "$RIG_DIR/frame.hex" &
sniffer=$!
# Pings until the sniffer has its frame (it may start slowly), at most 10 s.
for _ in $(seq 50); do
    [[ -s "$RIG_DIR/frame.hex" ]] && break
    rig_exec "$RIG_CLIENT" ping -c 1 -W 1 10.77.0.1 >/dev/null || true
    sleep 0.2
done
wait "$sniffer" || fail "no data frame captured"
before=$(status_field "$RIG_GW" "$GW" "repr((s['sessions'][0]['rejected']['replay'], [w['datagrams_received'] for w in s['data_plane']['workers']]))")
rig_exec "$RIG_CLIENT" python3 -c '
import socket, sys
frame = bytes.fromhex(open(sys.argv[1]).read())
for _ in range(32):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    s.sendto(frame, (sys.argv[2], 51820))
    s.close()
' "$RIG_DIR/frame.hex" "$RIG_GW_IP"
# The replays are counted; both workers took some of them (32 random source ports all on one of
# two sockets: one chance in 2^31).
verdict=""
for _ in $(seq 50); do
    verdict=$(status_field "$RIG_GW" "$GW" "(lambda b, now:
    'ok' if now[0] - b[0] == 32 and all(x > y for x, y in zip(now[1], b[1])) else ('before', b, 'now', now)
)($before, (s['sessions'][0]['rejected']['replay'], [w['datagrams_received'] for w in s['data_plane']['workers']]))")
    [[ "$verdict" == ok ]] && break
    sleep 0.1
done
[[ "$verdict" == ok ]] || fail "replays (refused, datagrams per worker): $verdict"
[[ "$(status_field "$RIG_GW" "$GW" "s['sessions'][0]['state']")" == ATTACHED ]] || fail "gateway session disturbed by the replays"
rig_exec "$RIG_CLIENT" ping -c 2 -W 2 10.77.0.1 >/dev/null || fail "tunnel broken after the replays"

step "down"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL" || fail "client down"
rig_exec "$RIG_GW" "$JVPN_BIN" down "$GW" || fail "gateway down"
assert_clean "$RIG_CLIENT" "$CL"
assert_clean "$RIG_GW" "$GW"
pass
