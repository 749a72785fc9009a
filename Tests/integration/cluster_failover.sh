#!/usr/bin/env bash
# A gateway cluster on etcd: three etcd members (real Raft), two gateways on one LAN with a service
# host behind them, a client with two uplinks and both gateways as Endpoint.
#  1. the session opens on gw-a, which records it in etcd and answers ARP for the client on the LAN;
#  2. kill -9 gw-a under a checksummed TCP stream from the service host: the stream completes intact,
#     the session id is the same, the client is on gw-b (OWNERSHIP_CHANGE gw-a => gw-b, TRANSPORT_SWITCH);
#  3. gw-a restarts and rejoins without taking the session back;
#  4. one etcd member dies: nothing changes;
#  5. the client loses its way to gw-b, which stays up: it resumes on gw-a; gw-b sees that through its
#     watch and lets go (OWNERSHIP_CHANGE, TRANSPORT_SWITCH to node:gw-a, its proxy ARP/NDP
#     withdrawn), and the service host sends to gw-a (gratuitous ARP, unsolicited NA), IPv4 and IPv6;
#  6. gw-a is cut off from etcd: it stops serving once its lease is over, the client moves to gw-b;
#  7. gw-a reaches etcd again and the client is reloaded with PreemptToPreferred = true (off until
#     then, so that steps 3-6 see only failures): it moves back to gw-a, its first Endpoint, once
#     stable on gw-b for StableWindowMs (OWNERSHIP_CHANGE gw-b => gw-a BETTER_PATH on both gateways).
# LeaseTtlS = 2 (the least [Cluster] takes) and short waits: it runs in CI (30-45 s).
. "$(dirname "$0")/lib.bash"
. "$REPO/deploy/cluster/etcd.sh"
. "$REPO/deploy/cluster/rig.sh"
rig_init
cluster_rig_create || fail "rig"
cluster_etcd_start || fail "etcd cluster did not start"
POLICY=$'ProbeIntervalMs = 100\nStandbyProbeIntervalMs = 500\nDeadAfterMs = 600\nMaxSwitchesPerMinute = 60\nStableWindowMs = 2000\nPreemptToPreferred = false'
TTL=2
cluster_write_configs "$POLICY" "$TTL"
GWA_EVENTS="$RIG_DIR/gw-a.events.jsonl" GWB_EVENTS="$RIG_DIR/gw-b.events.jsonl" CL_EVENTS="$RIG_DIR/$CL.events.jsonl"
GW_EVENTS="$GWB_EVENTS"

cluster_gw_up a || fail "gw-a up"
rig_wait_for "rig_output_has '\"etcd\": *\"ok\"' rig_exec $CR_GWA $JVPN_BIN status $(tun_name ga) --json" 10 || fail "gw-a never reached etcd"
# The etcd client's event-loop threads start after the capabilities are dropped: every thread of a
# clustered gateway holds CAP_NET_ADMIN and CAP_NET_RAW only (hardening.sh checks a standalone one).
GWA_PID="$(cluster_gw_pid a)"
tab=$'\t'
for st in /proc/"$GWA_PID"/task/*/status; do
    s="$(cat "$st")"
    grep -qxF "CapEff:${tab}0000000000003000" <<<"$s" && grep -qxF "CapPrm:${tab}0000000000003000" <<<"$s" \
        || fail "$st: $(grep -E '^(Name|CapEff|CapPrm)' <<<"$s" | tr '\n' ' ')"
done
step "gw-a threads, each CapEff=CapPrm=3000: $(cat /proc/"$GWA_PID"/task/*/comm | sort | uniq -c | tr -s ' \n' ' ')"
cluster_gw_up b || fail "gw-b up"
rig_exec "$CR_CLIENT" "$JVPN_BIN" up "$RIG_DIR/client.conf" --wait 15 || fail "client up"
wait_state ATTACHED 15 || fail "client not ATTACHED"
SID="$(client_session)"
gw_field() { status_field "$(cluster_gw_ns "$1")" "$(tun_name "g$1")" "$2"; }
rig_wait_for "[[ \$(gw_field a \"s['cluster']['owned_sessions']\") == 1 ]]" 5 || fail "gw-a does not own the session"
step "session $SID on gw-a; members: $(gw_field a "s['cluster']['members']")"
rig_output_has 'cluster: node gw-a +etcd ok +serving true +owned sessions 1 +members \[gw-a, gw-b\]' \
    rig_exec "$CR_GWA" "$JVPN_BIN" status "$(tun_name ga)" || fail "no cluster line in gw-a's status"
rig_exec "$CR_SVC" ping -c 2 -W 1 10.77.0.2 >/dev/null || fail "service host cannot reach the client through gw-a"
rig_exec "$CR_SVC" ping -6 -c 2 -W 1 fd77::2 >/dev/null || fail "service host cannot reach the client's IPv6 address through gw-a (NDP)"

step "kill -9 gw-a under a TCP stream from the service host"
rm -f "$RIG_DIR/ready"
rig_exec "$CR_CLIENT" python3 "$REPO/deploy/netns/xfer.py" serve 10.77.0.2 9000 --ready-file "$RIG_DIR/ready" \
    --idle-timeout 30 >"$RIG_DIR/recv.json" 2>"$RIG_DIR/recv.err" &
RECV_PID=$!
rig_wait_for "[[ -f '$RIG_DIR/ready' ]]" 10 || fail "receiver did not start"
rig_exec "$CR_SVC" python3 "$REPO/deploy/netns/xfer.py" send 10.77.0.2 9000 4 --mbps 20 --idle-timeout 30 \
    >"$RIG_DIR/send.json" 2>"$RIG_DIR/send.err" &
SEND_PID=$!
sleep 1
cluster_gw_kill a || fail "no gw-a daemon to kill"
finish_stream
[[ "$(client_session)" == "$SID" ]] || fail "the session id changed: $(client_session) != $SID"
rig_output_has '10\.204\.0\.1' status_field "$CR_CLIENT" "$CL" "s['sessions'][0]['active_path']" || fail "client not on gw-b"
has_event "$GWB_EVENTS" "e['event'] == 'OWNERSHIP_CHANGE' and e['from_node'] == 'gw-a' and e['to_node'] == 'gw-b'" \
    || fail "no OWNERSHIP_CHANGE gw-a => gw-b on gw-b"
has_event "$CL_EVENTS" "e['event'] == 'TRANSPORT_SWITCH' and '10.204.0.1' in e['to_path']" || fail "no client TRANSPORT_SWITCH to gw-b"
step "on gw-b, same session $SID: $(python3 -c "import json;print([l for l in open('$CL_EVENTS') if 'TRANSPORT_SWITCH' in l][-1].strip())")"

step "gw-a restarts and rejoins without taking the session"
cluster_gw_up a || fail "gw-a restart"
rig_wait_for "rig_output_has 'gw-a' gw_field b \"s['cluster']['members']\"" 10 || fail "gw-a not back in the membership"
# Once gw-a has read the session's record, a second to take it back if it were to.
rig_wait_for "[[ \$(gw_field a \"s['cluster']['records']\") == 1 ]]" 5 || fail "gw-a did not load the session's record"
sleep 1
[[ "$(gw_field a "s['cluster']['owned_sessions']")" == 0 ]] || fail "gw-a took a session back"
[[ "$(gw_field b "s['cluster']['owned_sessions']")" == 1 ]] || fail "gw-b lost the session"
rig_exec "$CR_SVC" ping -c 2 -W 1 10.77.0.2 >/dev/null || fail "service host lost the client"
rig_exec "$CR_SVC" ping -6 -c 1 -W 1 fd77::2 >/dev/null || fail "service host lost the client's IPv6 address"
GWB_MAC="$(rig_exec "$CR_GWB" cat /sys/class/net/lan0/address)"
rig_output_has "lladdr $GWB_MAC" ip -n "$CR_SVC" -6 neigh show fd77::2 || fail "the service host's IPv6 neighbour entry is not gw-b's"

step "one etcd member dies: nothing changes"
SWITCHES="$(count_events "$CL_EVENTS" "e['event'] == 'TRANSPORT_SWITCH'")"
etcd_member_kill e0
# Longer than the lease: gw-b renewed it through the members left.
sleep "$((TTL + 1))"
[[ "$(count_events "$CL_EVENTS" "e['event'] == 'TRANSPORT_SWITCH'")" == "$SWITCHES" ]] || fail "the client moved after an etcd member died"
[[ "$(gw_field b "s['cluster']['etcd']")" == ok ]] || fail "gw-b lost etcd with two members of three up"
rig_exec "$CR_SVC" ping -c 2 -W 1 10.77.0.2 >/dev/null || fail "traffic stopped after an etcd member died"
# The client's TCP paths connect only to the session's gateway: since its restart gw-a, which does
# not hold the session, has been offered no TCP connection (it could open none of its frames).
[[ "$(gw_field a "s['tcp']['accepted']")" == 0 ]] || fail "the client keeps connecting over TCP to gw-a: $(gw_field a "s['tcp']")"

step "the client loses its way to gw-b, which stays up: it resumes on gw-a, gw-b lets go through its watch"
rig_exec "$CR_ROUTER" nft add table inet cut && rig_exec "$CR_ROUTER" nft add chain inet cut through '{ type filter hook forward priority 0; }' \
    && rig_exec "$CR_ROUTER" nft add rule inet cut through ip daddr 10.204.0.1 drop || fail "nft"
rig_wait_for "rig_output_has '10\.203\.0\.1' status_field $CR_CLIENT $CL \"s['sessions'][0]['active_path']\"" 10 0.1 \
    || fail "client did not move to gw-a"
[[ "$(client_session)" == "$SID" ]] || fail "the session id changed"
rig_wait_for "has_event $GWB_EVENTS \"e['event'] == 'OWNERSHIP_CHANGE' and e['from_node'] == 'gw-b' and e['to_node'] == 'gw-a'\"" 5 0.1 \
    || fail "gw-b did not see gw-a take the session"
has_event "$GWB_EVENTS" "e['event'] == 'TRANSPORT_SWITCH' and e['to_path'] == 'node:gw-a'" || fail "no TRANSPORT_SWITCH to node:gw-a on gw-b"
has_event "$GWA_EVENTS" "e['event'] == 'TRANSPORT_SWITCH' and e['from_path'] == 'node:gw-b'" || fail "no TRANSPORT_SWITCH from node:gw-b on gw-a"
[[ "$(gw_field b "s['cluster']['owned_sessions']")" == 0 ]] || fail "gw-b still owns the session (dual-active)"
rig_wait_for "! rig_output_has '10\.77\.0\.2' ip -n $CR_GWB neigh show proxy" 5 0.1 || fail "gw-b still answers ARP for the client"
rig_output_has '10\.77\.0\.2' ip -n "$CR_GWA" neigh show proxy || fail "gw-a does not answer ARP for the client"
rig_wait_for "rig_exec $CR_SVC ping -c 1 -W 1 10.77.0.2" 5 0.2 || fail "service host cannot reach the client through gw-a"
GWA_MAC="$(rig_exec "$CR_GWA" cat /sys/class/net/lan0/address)"
rig_output_has "lladdr $GWA_MAC" ip -n "$CR_SVC" neigh show 10.77.0.2 || fail "the service host does not send to gw-a ($GWA_MAC)"
# IPv6: gw-b's NDP proxy entry is gone and the unsolicited advertisement moved the service host's entry.
rig_output_has 'fd77::2' ip -n "$CR_GWA" -6 neigh show proxy || fail "gw-a does not answer NDP for the client"
! rig_output_has 'fd77::2' ip -n "$CR_GWB" -6 neigh show proxy || fail "gw-b still answers NDP for the client"
rig_output_has "lladdr $GWA_MAC" ip -n "$CR_SVC" -6 neigh show fd77::2 || fail "the service host's IPv6 neighbour entry is not gw-a's"
rig_exec "$CR_SVC" ping -6 -c 1 -W 1 fd77::2 >/dev/null || fail "service host cannot reach the client's IPv6 address through gw-a"
# Metrics (set about once a second): gw-b let one session go; gw-a owns it and timed its etcd requests.
rig_wait_for "rig_output_has '^jvpn_cluster_released_total\{[^}]*\} [1-9]' cluster_gw_metrics b" 3 0.2 || fail "gw-b's metrics: nothing released"
rig_wait_for "rig_output_has '^jvpn_cluster_owned_sessions\{[^}]*\} 1' cluster_gw_metrics a" 3 0.2 || fail "gw-a's metrics: no owned session"
M="$(cluster_gw_metrics a)"
for m in '^jvpn_cluster_etcd_up\{[^}]*\} 1' '^jvpn_cluster_store_latency_ms\{[^}]*quantile="0.99"[^}]*\} [0-9.]*[1-9]' \
         '^jvpn_cluster_store_requests_total\{[^}]*\} [1-9]' '^jvpn_cluster_cas_conflicts_total\{[^}]*\} [0-9]'; do
    rig_output_has "$m" echo "$M" || fail "gw-a's metrics lack $m"
done
rig_exec "$CR_ROUTER" nft delete table inet cut || fail "nft"

step "gw-a is cut off from etcd: it stops serving after its lease, the client moves to gw-b"
rig_exec "$CR_GWA" nft add table inet cut && rig_exec "$CR_GWA" nft add chain inet cut out '{ type filter hook output priority 0; }' \
    && rig_exec "$CR_GWA" nft add rule inet cut out tcp dport 2379 drop || fail "nft"
rig_wait_for "rig_output_has 'STORE_UNAVAILABLE' cat $GWA_EVENTS" 8 0.1 || fail "gw-a kept serving without etcd"
rig_wait_for "rig_output_has '10\.204\.0\.1' status_field $CR_CLIENT $CL \"s['sessions'][0]['active_path']\"" 10 0.1 \
    || fail "client did not move to gw-b"
[[ "$(client_session)" == "$SID" ]] || fail "the session id changed"
rig_wait_for "rig_exec $CR_SVC ping -c 1 -W 1 10.77.0.2" 5 0.2 || fail "service host cannot reach the client through gw-b"

step "gw-a reaches etcd again, the client's policy now preempts: back to gw-a once stable on gw-b"
rig_exec "$CR_GWA" nft delete table inet cut || fail "nft"
rig_wait_for "[[ \$(gw_field a \"s['cluster']['etcd']\") == ok ]]" 10 || fail "gw-a did not reach etcd again"
ON_GWB_AT="$(python3 -c "import json;print([json.loads(l)['ts'] for l in open('$CL_EVENTS') if 'TRANSPORT_SWITCH' in l][-1])")"
sed -i 's/^PreemptToPreferred = false$/PreemptToPreferred = true/' "$RIG_DIR/client.conf"
out="$(rig_exec "$CR_CLIENT" "$JVPN_BIN" reload "$CL")" || fail "client reload: $out"
rig_wait_for "rig_output_has '10\.203\.0\.1' status_field $CR_CLIENT $CL \"s['sessions'][0]['active_path']\"" 10 0.1 \
    || fail "client did not move back to gw-a"
[[ "$(client_session)" == "$SID" ]] || fail "the session id changed"
has_event "$CL_EVENTS" "e['event'] == 'TRANSPORT_SWITCH' and '10.203.0.1' in e['to_path'] and e['reason'] == 'BETTER_PATH'" \
    || fail "the client's move to gw-a is not a BETTER_PATH TRANSPORT_SWITCH"
BACK_AT="$(python3 -c "import json;print([json.loads(l)['ts'] for l in open('$CL_EVENTS') if 'TRANSPORT_SWITCH' in l][-1])")"
python3 - "$ON_GWB_AT" "$BACK_AT" <<'PY' || fail "preempted before the session was stable on gw-b for StableWindowMs"
import sys
from datetime import datetime
on, back = (datetime.fromisoformat(t.replace('Z', '+00:00')) for t in sys.argv[1:])
sys.exit(0 if (back - on).total_seconds() >= 2.0 else 1)
PY
for g in a b; do
    rig_wait_for "has_event $RIG_DIR/gw-$g.events.jsonl \"e['event'] == 'OWNERSHIP_CHANGE' and e['from_node'] == 'gw-b' and e['to_node'] == 'gw-a' and e['reason'] == 'BETTER_PATH'\"" 5 0.1 \
        || fail "no OWNERSHIP_CHANGE gw-b => gw-a BETTER_PATH on gw-$g"
done
rig_wait_for "[[ \$(gw_field b \"s['cluster']['owned_sessions']\") == 0 ]]" 5 0.1 || fail "gw-b still owns the session (dual-active)"
rig_wait_for "rig_exec $CR_SVC ping -c 1 -W 1 10.77.0.2" 5 0.2 || fail "service host cannot reach the client through gw-a"
step "back on gw-a $(( $(date -d "$BACK_AT" +%s%3N) - $(date -d "$ON_GWB_AT" +%s%3N) )) ms after the move to gw-b"
pass "kill -9, rejoin, etcd member loss, a live owner left behind, a partition, preemption back: one session $SID throughout"
