#!/usr/bin/env bash
# Local hardening of the running daemons:
# - every thread holds exactly CAP_NET_ADMIN and CAP_NET_RAW (effective, permitted, bounding),
#   nothing inheritable or ambient, and no_new_privs;
# - clients of the control socket and of /metrics that connect and send nothing or half a request
#   do not stall the main loop: meanwhile `jvpn status` answers, the tunnel carries pings, and the
#   client session stays ATTACHED at the same state_version (its probes kept running: a 2 s stall
#   would be a PROBE_TIMEOUT with the default DeadAfterMs = 1000).
. "$(dirname "$0")/lib.bash"
rig_init
rig_create_basic
jvpn_keys gw c1
GW=$(tun_name g); CL=$(tun_name c)
write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32"
sed -i "/^EventLog/a MetricsListen = 127.0.0.1:9586" "$RIG_DIR/gw.conf"
write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/24" "$RIG_GW_IP:51820" "10.77.0.0/24"

rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up: $(cat /run/jvpn/$GW.log)"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || fail "client up: $(cat /run/jvpn/$CL.log)"

step "capabilities of every daemon thread"
# CAP_NET_ADMIN (12) and CAP_NET_RAW (13), as /proc prints the mask.
want=0000000000003000
t=$'\t'   # /proc/PID/status separates name and value with a tab
for ns in "$RIG_GW" "$RIG_CLIENT"; do
    pids="$(rig_pids_by_comm "$ns" '^jvpn$')"
    [[ -n "$pids" ]] || fail "no jvpn daemon in $ns"
    for pid in $pids; do
        threads=0
        for st in /proc/"$pid"/task/*/status; do
            s="$(cat "$st")"
            for field in "CapEff:${t}$want" "CapPrm:${t}$want" "CapBnd:${t}$want" "CapInh:${t}0000000000000000" \
                         "CapAmb:${t}0000000000000000" "NoNewPrivs:${t}1"; do
                grep -qxF "$field" <<<"$s" || fail "$st: want '$field', got: $(grep -E '^(Cap|NoNewPrivs)' <<<"$s" | tr '\n' ' ')"
            done
            threads=$((threads + 1))
        done
        # main, event log writer, pump send and receive (+ metrics on the gateway)
        (( threads >= 4 )) || fail "pid $pid in $ns: only $threads threads checked"
        echo "    pid $pid in $ns: $threads threads, each CapEff=CapPrm=CapBnd=$want, NoNewPrivs 1"
        # Without [Cluster] nothing of the etcd client starts: no event loop (NIO-*) and no Swift
        # concurrency pool thread (*-qos), and status says cluster null.
        names="$(cat /proc/"$pid"/task/*/comm)"
        if rig_output_has 'NIO-|qos' echo "$names"; then fail "pid $pid in $ns runs cluster machinery: $(tr '\n' ' ' <<<"$names")"; fi
    done
done
[[ "$(status_field "$RIG_GW" "$GW" "s['cluster']")" == None ]] || fail "status cluster is not null without [Cluster]"

step "silent and half-request clients on the control socket and /metrics"
v0="$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['state_version']")"
p0="$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['active_path']")"
# Each holder keeps opening batches of 12 connections (more than either server keeps), half of them
# silent, half with half a request, for 3 s: longer than any per-connection deadline.
hold() { # hold NS KIND ADDRESS READYFILE
    rig_exec "$1" timeout 10 python3 - "$2" "$3" "$4" <<'PY'
import socket, sys, time
kind, address, ready = sys.argv[1:4]
def conn(silent):
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(address)
        half = b"stat"
    else:
        host, port = address.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
        half = b"GET /metrics HTTP/1.1\r\n"
    if not silent:
        s.send(half)
    return s
batches = []
for i in range(15):
    batches.append([conn(j % 2 == 0) for j in range(12)])
    if i == 0:
        open(ready, "w").close()
    if len(batches) > 3:
        for s in batches.pop(0):
            s.close()
    time.sleep(0.2)
PY
}
hold "$RIG_CLIENT" unix "/run/jvpn/$CL.sock" "$RIG_DIR/ctl.ready" &
ctl_holder=$!
hold "$RIG_GW" tcp 127.0.0.1:9586 "$RIG_DIR/metrics.ready" &
metrics_holder=$!
rig_wait_for "[[ -f $RIG_DIR/ctl.ready && -f $RIG_DIR/metrics.ready ]]" 5 || fail "holders did not start"

timeout 2 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" status "$CL" --json >"$RIG_DIR/status.json" \
    || fail "jvpn status did not answer within 2 s while the control socket was held"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$RIG_DIR/status.json" || fail "status JSON unreadable"
code="$(rig_exec "$RIG_GW" python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9586/metrics", timeout=2).status)')" \
    || fail "no /metrics answer within 2 s while half requests were held"
[[ "$code" == 200 ]] || fail "/metrics answered $code"
out="$(rig_exec "$RIG_CLIENT" ping -c 10 -i 0.1 -W 1 10.77.0.1 2>&1)" || fail "ping through the tunnel: $out"
grep -qE ' 0% packet loss' <<<"$out" || fail "ping lost packets while clients were held: $out"
wait "$ctl_holder" || fail "control socket holder failed"
wait "$metrics_holder" || fail "metrics holder failed"

v1="$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['state_version']")"
state="$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['state']")"
p1="$(status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['active_path']")"
[[ "$state" == ATTACHED && "$v1" == "$v0" && "$p1" == "$p0" ]] \
    || fail "session moved while clients were held: $state v$v0 -> v$v1, $p0 -> $p1"
echo "    status, /metrics and pings answered; session ATTACHED at v$v1 on $p1 throughout"

rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL" || fail "client down"
rig_exec "$RIG_GW" "$JVPN_BIN" down "$GW" || fail "gateway down"
assert_clean "$RIG_CLIENT" "$CL"
pass
