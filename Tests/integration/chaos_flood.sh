#!/usr/bin/env bash
# Handshakes under load. From the router namespace, deploy/flood/jvpn-flood sends FLOOD_RATE
# datagrams/s (default 100,000) at the gateway, each from a random IPv4 address and port in
# 198.18.0.0/15, in three modes in turn: junk, 1-byte type-1 datagrams, initiations with a valid
# mac1. During each flood:
#   - client 1's established session carries a paced, checksummed TCP stream (across all floods);
#     it must end intact;
#   - client 2 (its own namespace behind the router) runs `jvpn up` and must be ATTACHED within
#     2 s (the wait is bounded at 5 s); the measured attach time is printed;
#   - the gateway's CPU (utime + stime from /proc) over the flood must stay under one core;
#   - no SECURITY_EVENT is written for flood packets.
# env: FLOOD_RATE (default 100000), FLOOD_SECONDS (default 5), ATTACH_LIMIT_MS (default 2000).
. "$(dirname "$0")/lib.bash"
FLOOD_RATE="${FLOOD_RATE:-100000}"
FLOOD_SECONDS="${FLOOD_SECONDS:-5}"
ATTACH_LIMIT_MS="${ATTACH_LIMIT_MS:-2000}"
FLOOD_SOURCES=198.18.0.0/15
MODES=(junk type1-1byte initiation-mac1)

rig_init
rig_create_router
rig_add_router_client
command -v cc >/dev/null || fail "no C compiler (deploy/install-deps.sh installs gcc)"
cc -O2 -o "$RIG_DIR/jvpn-flood" "$REPO/deploy/flood/jvpn-flood.c" -lsodium || fail "building jvpn-flood"
# Cookie replies to the spoofed sources end where they enter the router, so that the router's
# routing of 100,000 replies a second (done within the gateway's sendmmsg, veth being synchronous)
# is not counted as the gateway's CPU.
rig_drop_at_router_ingress "$FLOOD_SOURCES"

jvpn_keys gw c1 c2
GW=$(tun_name g); CL=$(tun_name c); C2=$(tun_name d)
write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32" c2 "10.77.0.3/32"
write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/24" "$RIG_GW_IP:51820" "10.77.0.0/24" "Uplinks = up0" "$RIG_POLICY"
write_client_conf "$RIG_DIR/c2.conf" "$C2" c2 "10.77.0.3/24" "$RIG_GW_IP:51820" "10.77.0.0/24" "Uplinks = up0" "$RIG_POLICY"
GW_EVENTS="$RIG_DIR/$GW.events.jsonl"

step "up: gateway and client 1"
rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || fail "client 1 up"
GW_PID="$(rig_pids_by_comm "$RIG_GW" '^jvpn$' | head -n1)"
[[ -n "$GW_PID" ]] || fail "gateway daemon not found"
GW_PUB="$(cat "$RIG_DIR/gw.pub")"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
security_events() { count_events "$GW_EVENTS" "e['event'] == 'SECURITY_EVENT'"; }
# handshakes_json -> the gateway status's "handshakes" object (counters of the receive thread)
handshakes_json() { status_field "$RIG_GW" "$GW" "json.dumps(s['handshakes'])"; }
hs_delta() { python3 -c "import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print(eval(sys.argv[3]))" "$1" "$2" "$3"; }

# attach_client2 -> prints the ms `jvpn up --wait 5` took; fails unless ATTACHED
attach_client2() {
    local t0 t1
    t0=$(now_ms)
    rig_exec "$RIG_CLIENT2" "$JVPN_BIN" up "$RIG_DIR/c2.conf" --wait 5 >/dev/null || fail "client 2 did not attach within 5 s ($1)"
    t1=$(now_ms)
    [[ "$(status_field "$RIG_CLIENT2" "$C2" "s['sessions'][0]['state']")" == ATTACHED ]] || fail "client 2 not ATTACHED ($1)"
    rig_exec "$RIG_CLIENT2" ping -c 1 -W 2 10.77.0.1 >/dev/null || fail "client 2 tunnel does not carry traffic ($1)"
    echo $(( t1 - t0 ))
}

step "baseline: client 2 attaches without a flood"
base_ms=$(attach_client2 "no flood")
echo "    attach without flood: ${base_ms} ms"
rig_exec "$RIG_CLIENT2" "$JVPN_BIN" down "$C2" || fail "client 2 down"

stream_s=$(( ${#MODES[@]} * (FLOOD_SECONDS + 3) + 2 ))
step "client 1: paced TCP stream for ${stream_s} s across all floods"
start_stream "$stream_s" 8
sleep 1

ticks_per_s="$(getconf CLK_TCK)"
for mode in "${MODES[@]}"; do
    step "flood: $mode at $FLOOD_RATE/s for $FLOOD_SECONDS s"
    sec0=$(security_events); hs0=$(handshakes_json)
    cpu0=$(cpu_ticks "$GW_PID"); w0=$(now_ms)
    rig_exec "$RIG_ROUTER" "$RIG_DIR/jvpn-flood" --target "$RIG_GW_IP:51820" --mode "$mode" --pubkey "$GW_PUB" \
        --sources "$FLOOD_SOURCES" --rate "$FLOOD_RATE" --duration "$FLOOD_SECONDS" >"$RIG_DIR/flood.$mode.out" 2>&1 &
    flood_pid=$!
    sleep 1   # the flood is in full swing (and, for initiations, the gateway under load)
    ms=$(attach_client2 "$mode flood")
    wait "$flood_pid" || fail "flood tool: $(cat "$RIG_DIR/flood.$mode.out")"
    cpu1=$(cpu_ticks "$GW_PID"); w1=$(now_ms)
    cpu_pct=$(( (cpu1 - cpu0) * 100000 / ticks_per_s / (w1 - w0) ))
    sec=$(( $(security_events) - sec0 )); hs1=$(handshakes_json)
    malformed=$(hs_delta "$hs0" "$hs1" "b['dropped']['malformed'] - a['dropped']['malformed']")
    cookies=$(hs_delta "$hs0" "$hs1" "b['cookie_replies_sent'] - a['cookie_replies_sent']")
    echo "    $(cat "$RIG_DIR/flood.$mode.out")"
    echo "    attach during $mode flood: ${ms} ms; gateway CPU ${cpu_pct}% of one core; SECURITY_EVENTs written: $sec"
    echo "    gateway: $malformed dropped as malformed, $cookies cookie replies sent; now $hs1"
    (( ms <= ATTACH_LIMIT_MS )) || fail "client 2 took ${ms} ms to attach during the $mode flood (limit ${ATTACH_LIMIT_MS} ms)"
    (( cpu_pct < 100 )) || fail "gateway used ${cpu_pct}% CPU during the $mode flood"
    (( sec == 0 )) || fail "$sec SECURITY_EVENTs during the $mode flood"
    if [[ "$mode" == initiation-mac1 ]]; then
        (( cookies > 0 )) || fail "the gateway never went under load (no cookie reply) during the $mode flood"
    else
        (( malformed > 0 )) || fail "the $mode flood did not reach the gateway"
    fi
    rig_exec "$RIG_CLIENT2" "$JVPN_BIN" down "$C2" || fail "client 2 down"
    sleep 1
done

step "client 1's stream survived every flood"
finish_stream
[[ "$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['state']")" == ATTACHED ]] || fail "client 1 left ATTACHED"

rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL" && rig_exec "$RIG_GW" "$JVPN_BIN" down "$GW" || fail "down"
pass "attach ${base_ms} ms without flood; see above per flood"
