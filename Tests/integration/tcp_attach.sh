#!/usr/bin/env bash
# TCP transport, UDP blocked from the start: the router drops every UDP packet of both uplinks, both
# ways, before the client starts. The client tries UDP alone for 2 s, then TCP, and attaches over a
# TCP path (`UPLINK/tcp/...`, transport "tcp" in status; the gateway bound to `tcp/IP:PORT`); ping
# and a checksummed 64 MB transfer pass through the tunnel. A TCP path has no path MTU: none is searched
# or reported and a full-size DF packet passes whole. When the gateway's end of the bound
# connection dies, the client connects again and the same session goes on.
. "$(dirname "$0")/lib.bash"
CLIENT_UP=0 router_setup
step "block UDP on up0 and up1, both ways, then start the client"
udp_block
t0=$(date +%s%3N)
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 15 || fail "client up"
wait_state ATTACHED 15 || fail "client not ATTACHED over TCP"
echo "    ATTACHED $(( $(date +%s%3N) - t0 )) ms after jvpn up"
active=$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['active_path']")
[[ "$active" == up0/tcp/10.201.0.2:*'->10.203.0.1:51820' ]] || fail "active path is not up0's TCP path: $active"
[[ "$(status_field "$RIG_CLIENT" "$CL" "[p['transport'] for p in s['sessions'][0]['paths'] if p['status'] == 'active']")" == "['tcp']" ]] \
    || fail "status: the active path's transport is not tcp"
[[ "$(status_field "$RIG_CLIENT" "$CL" "sorted(set(p['transport'] for p in s['sessions'][0]['paths']))")" == "['tcp', 'udp']" ]] \
    || fail "status: not every path says its transport"
[[ "$(status_field "$RIG_GW" "$GW" "s['sessions'][0]['active_path']")" == tcp/10.201.0.2:* ]] || fail "gateway not bound to a TCP connection"
[[ "$(status_field "$RIG_GW" "$GW" "s['sessions'][0]['paths'][0]['transport']")" == tcp ]] || fail "gateway path transport"
has_event "$CL_EVENTS" "e['event']=='STATE_CHANGE' and e['to']=='ATTACHED' and e['reason']=='HANDSHAKE_OK'" || fail "no HANDSHAKE_OK"
step "no path MTU on a TCP path: not searched, nothing fitted"
mtus=$(status_field "$RIG_CLIENT" "$CL" "sorted(set((p['mtu'], p['mtu_search']) for p in s['sessions'][0]['paths'] if p['transport'] == 'tcp'))")
[[ "$mtus" == "[(0, 'none')]" ]] || fail "TCP paths' mtu / mtu_search: $mtus"
[[ "$(status_field "$RIG_GW" "$GW" "s['sessions'][0]['paths'][0]['mtu']")" == 0 ]] || fail "gateway: an MTU reported for a TCP binding"
# A full-size packet with DF (the tunnel MTU, 1420) passes whole: no ICMP "too big", no cut.
rig_exec "$RIG_CLIENT" ping -c 3 -i 0.2 -W 2 -M do -s 1392 10.77.0.1 >/dev/null || fail "a 1420-byte DF ping over the TCP path"
fit=$(status_field "$RIG_CLIENT" "$CL" "[s['sessions'][0]['mtu'][k] for k in ('mss_clamped', 'resegmented', 'too_big_sent', 'probes')]")
[[ "$fit" == "[0, 0, 0, 0]" ]] || fail "client fitted or probed on TCP (mss_clamped, resegmented, too_big_sent, probes): $fit"
step "ping and 64 MB with checksum over TCP"
rig_exec "$RIG_CLIENT" ping -c 5 -i 0.2 -W 2 10.77.0.1 >/dev/null || fail "ping over the TCP path"
transfer_check "$RIG_CLIENT" "$RIG_GW" 10.77.0.1 64
[[ "$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['active_path'].split('/')[1]")" == tcp ]] || fail "left the TCP path"
n=$(status_field "$RIG_GW" "$GW" "s['tcp']['authenticated']")
(( n >= 1 )) || fail "gateway counted no authenticated TCP connection"
echo "    gateway tcp: $(status_field "$RIG_GW" "$GW" "s['tcp']")"

# The gateway's end of the bound connection is torn down (as by a middlebox's RST): the session is
# not tied to that connection; the client connects again and re-attaches, same session.
step "the bound connection dies at the gateway: the client re-attaches over a new one, same session"
sid=$(client_session)
bound=$(status_field "$RIG_GW" "$GW" "s['sessions'][0]['active_path']")
rig_exec "$RIG_GW" ss -K -tn state established '( sport = :51820 )' >/dev/null || fail "ss -K"
t0=$(date +%s%3N)
rig_wait_for "[[ \$(status_field $RIG_GW $GW \"s['sessions'][0]['active_path']\") != $bound && \$(client_state) == ATTACHED ]] \
    && rig_exec $RIG_CLIENT ping -c 1 -W 1 10.77.0.1" 10 0.1 || fail "not re-attached 10 s after the connection died (gateway bound to $(status_field "$RIG_GW" "$GW" "s['sessions'][0]['active_path']"))"
echo "    re-attached $(( $(date +%s%3N) - t0 )) ms after the connection died: $(status_field "$RIG_GW" "$GW" "s['sessions'][0]['active_path']")"
[[ "$(client_session)" == "$sid" ]] || fail "the session id changed"
pass
