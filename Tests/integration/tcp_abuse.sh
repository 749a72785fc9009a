#!/usr/bin/env bash
# The gateway's TCP port under abuse while a session carries a TCP stream over UDP: garbage
# (random bytes, HTTP, TLS, SSH, lengths out of range), half-open connections (silent, or a frame
# head never finished) and connection floods from 4 and from 64 addresses. Each is closed by the framing
# check, the 5 s unauthenticated bound, the per-source bound or eviction; connections the gateway
# has no descriptor for wait in the kernel without making it spin; the session sees no state change
# and no switch, and the stream and a ping pass.
. "$(dirname "$0")/lib.bash"
router_setup
rig_add_router_client
for n in $(seq 3 66); do ip -n "$RIG_CLIENT2" addr add "10.211.0.$n/24" dev up0; done
ABUSE="$REPO/deploy/netns/tcpabuse.py"
sid=$(client_session)
mark=$(wc -l <"$CL_EVENTS")
gmark=$(wc -l <"$GW_EVENTS")
start_stream 22 10
sleep 1
step "garbage on the TCP port: closed by the framing check"
out=$(rig_exec "$RIG_CLIENT2" timeout 30 python3 "$ABUSE" garbage "$RIG_GW_IP" 51820 120) || fail "garbage: $out"
echo "    $out"
python3 -c "import json,sys; o=json.loads(sys.argv[1]); assert o['closed'] == 120 and o['max_close_ms'] < 2000, o" "$out" \
    || fail "garbage connections not all closed at once"
step "half-open connections: closed after the unauthenticated bound (5 s)"
out=$(rig_exec "$RIG_CLIENT2" timeout 30 python3 "$ABUSE" halfopen "$RIG_GW_IP" 51820 8 8) || fail "halfopen: $out"
echo "    $out"
python3 -c "import json,sys; o=json.loads(sys.argv[1]); assert o['closed'] == 8 and 4500 <= o['min_close_ms'] and o['max_close_ms'] <= 6500, o" "$out" \
    || fail "half-open connections not closed within 5-6.5 s"
# Four sources can hold at most 32 unauthenticated connections (8 each), far below the total of
# 256: every connection beyond 8 from one source is refused by the per-source bound. Sixty-four
# sources could hold 512: the total bound evicts the oldest instead.
step "connection flood from 4 addresses for 2 s: the per-source bound"
out=$(rig_exec "$RIG_CLIENT2" timeout 40 python3 "$ABUSE" flood "$RIG_GW_IP" 51820 2 --sources 10.211.0.3-6) || fail "flood: $out"
echo "    $out"
step "connection flood from 64 addresses for 6 s: the total bound"
out=$(rig_exec "$RIG_CLIENT2" timeout 40 python3 "$ABUSE" flood "$RIG_GW_IP" 51820 6 --sources 10.211.0.3-66) || fail "flood: $out"
echo "    $out"
tcp=$(status_field "$RIG_GW" "$GW" "s['tcp']")
echo "    gateway tcp: $tcp"
python3 -c "
import json, sys
t = json.loads(sys.argv[1].replace(\"'\", '\"'))
assert t['framing_violations'] > 0 and t['framing_violations'] + t['refused_source_limit'] >= 120, t
assert t['unauthenticated_timeouts'] >= 8, t
assert t['refused_source_limit'] > 0 and t['evicted'] > 0, t
assert t['unauthenticated'] <= 256, t
" "$tcp" || fail "gateway counters do not show the defences"
# With no descriptor to spare, accept fails (EMFILE) and the waiting connections stay queued, so
# the listener stays readable: it is set aside until the next 250 ms tick rather than spun on.
step "descriptors run out at the gateway: the listener is set aside, not spun on"
gw_pid=$(rig_pids_by_comm "$RIG_GW" '^jvpn' | head -n1)
read -r soft hard < <(prlimit --pid "$gw_pid" --nofile --noheadings --raw --output SOFT,HARD)
paused0=$(status_field "$RIG_GW" "$GW" "s['tcp']['accept_paused']")
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$gw_pid/stat"; }
prlimit --pid "$gw_pid" --nofile="$(ls "/proc/$gw_pid/fd" | wc -l):$hard" || fail "prlimit"
rig_exec "$RIG_CLIENT2" timeout 20 python3 "$ABUSE" halfopen "$RIG_GW_IP" 51820 8 4 >"$RIG_DIR/emfile.out" &
held=$!
sleep 0.5
c0=$(cpu_ticks); sleep 2; c1=$(cpu_ticks)
prlimit --pid "$gw_pid" --nofile="$soft:$hard" || fail "prlimit: limit not restored"
wait "$held" || fail "halfopen: $(cat "$RIG_DIR/emfile.out")"
busy=$(awk -v t=$(( c1 - c0 )) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz / 2 }')
paused=$(( $(status_field "$RIG_GW" "$GW" "s['tcp']['accept_paused']") - paused0 ))
echo "    gateway CPU with connections it cannot accept: $busy of a core; listener set aside $paused times"
(( paused >= 2 )) || fail "accept_paused grew by $paused"
awk -v b="$busy" 'BEGIN { exit !(b < 0.5) }' || fail "the gateway spun on its listener: $busy of a core"
rig_exec "$RIG_CLIENT" ping -c 5 -i 0.2 -W 2 10.77.0.1 >/dev/null || fail "ping through the tunnel during the abuse"
finish_stream
n=$(count_events "$CL_EVENTS" "e['event'] in ('STATE_CHANGE', 'TRANSPORT_SWITCH')" "$mark")
[[ "$n" == 0 ]] || fail "the session was disturbed: $n state changes or switches"
n=$(count_events "$GW_EVENTS" "e['event'] in ('STATE_CHANGE', 'TRANSPORT_SWITCH')" "$gmark")
[[ "$n" == 0 ]] || fail "the gateway's session was disturbed: $n state changes or switches"
[[ "$(client_session)" == "$sid" ]] || fail "the session id changed"
[[ "$(status_field "$RIG_CLIENT" "$CL" "[p['status'] for p in s['sessions'][0]['paths'] if p['transport'] == 'tcp']")" != *dead* ]] \
    || fail "the client's own TCP paths died in the flood"
pass
