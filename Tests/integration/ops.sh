#!/usr/bin/env bash
# Operator features for real: Prometheus /metrics scraped inside the namespace, events exported to
# a syslog receiver on loopback as RFC 5424 with the JSON event as the message, the daemon log
# free of private keys, and the CLI niceties (--version, completion scripts, genkey -o 0600,
# events --session/--since filters).
. "$(dirname "$0")/lib.bash"
rig_init
rig_create_basic
jvpn_keys gw c1
GW=$(tun_name g); CL=$(tun_name c)
write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "10.77.0.2/32"
sed -i "/^EventLog/a MetricsListen = 127.0.0.1:9586\nEventSyslog = udp://127.0.0.1:5514" "$RIG_DIR/gw.conf"
write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "10.77.0.2/24" "$RIG_GW_IP:51820" "10.77.0.0/24"

step "syslog receiver on loopback in the gateway namespace"
rig_exec "$RIG_GW" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 5514)); s.settimeout(20)
out = open(sys.argv[1], "w")
open(sys.argv[1] + ".ready", "w").close()
try:
    while True:
        d, _ = s.recvfrom(65535); out.write(d.decode() + "\n"); out.flush()
except socket.timeout:
    pass
' "$RIG_DIR/syslog.txt" 2>/dev/null &
rig_wait_for "[[ -f $RIG_DIR/syslog.txt.ready ]]" 5 || fail "syslog receiver"

rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up: $(cat /run/jvpn/$GW.log)"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || fail "client up"
rig_exec "$RIG_CLIENT" ping -c 5 -i 0.1 -W 2 10.77.0.1 >/dev/null || fail "ping"
sleep 1.5

step "scrape /metrics"
rig_exec "$RIG_GW" python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9586/metrics", timeout=5).read().decode())' >"$RIG_DIR/metrics.txt" \
    || fail "scrape failed"
for m in 'jvpn_session_state{' 'state="ATTACHED"' 'jvpn_rx_bytes_total' 'jvpn_switches_total' 'jvpn_rejects_total' 'jvpn_events_dropped' 'jvpn_recovery_latency_ms'; do
    grep -qF "$m" "$RIG_DIR/metrics.txt" || fail "metrics lack $m"
done
grep -E '^jvpn_session_state\{.*state="ATTACHED".*\} 1' "$RIG_DIR/metrics.txt" >/dev/null || fail "ATTACHED session not 1"
code=$(rig_exec "$RIG_GW" python3 -c 'import urllib.request,urllib.error
try: urllib.request.urlopen("http://127.0.0.1:9586/nope", timeout=5)
except urllib.error.HTTPError as e: print(e.code)')
[[ "$code" == 404 ]] || fail "unknown path gave $code"

step "syslog got the events"
rig_wait_for "grep -q STATE_CHANGE $RIG_DIR/syslog.txt" 5 || fail "no STATE_CHANGE via syslog"
python3 - "$RIG_DIR/syslog.txt" <<'PY' || fail "syslog format"
import json, re, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
m = re.match(r'^<(\d+)>1 (\S+) (\S+) jvpn (\S+) (\S+) - (\{.*\})$', lines[0].strip())
assert m, lines[0]
assert int(m.group(1)) in (28, 29, 30), m.group(1)
e = json.loads(m.group(6))
assert e["event"] == m.group(5) and e["event"] == "STATE_CHANGE", e
PY

step "events filters"
sid=$(client_session_id() { status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['session']"; }; client_session_id)
n_all=$(rig_exec "$RIG_CLIENT" "$JVPN_BIN" events "$CL" | wc -l)
n_sid=$(rig_exec "$RIG_CLIENT" "$JVPN_BIN" events "$CL" --session "$sid" | wc -l)
n_none=$(rig_exec "$RIG_CLIENT" "$JVPN_BIN" events "$CL" --session 0000000000000000 | wc -l)
n_future=$(rig_exec "$RIG_CLIENT" "$JVPN_BIN" events "$CL" --since 2999-01-01T00:00:00Z | wc -l)
(( n_all >= 1 && n_sid == n_all && n_none == 0 && n_future == 0 )) || fail "events filters: all=$n_all sid=$n_sid none=$n_none future=$n_future"

step "no private key in any log"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL"; rig_exec "$RIG_GW" "$JVPN_BIN" down "$GW"
for k in gw c1; do
    grep -rqF "$(cat "$RIG_DIR/$k.key")" /run/jvpn/"$GW".log /run/jvpn/"$CL".log "$RIG_DIR"/*.jsonl "$RIG_DIR/syslog.txt" \
        && fail "private key of $k found in a log"
done
grep -q "up: server" /run/jvpn/"$GW".log || fail "daemon log lacks the start line"

step "CLI"
# Whole output first: `cmd | grep -q` under pipefail fails when grep exits before cmd has written all.
out="$("$JVPN_BIN" --version)"; grep -qE '^[0-9]+\.[0-9]+' <<<"$out" || fail "--version"
out="$("$JVPN_BIN" --generate-completion-script bash)"; grep -q "_jvpn" <<<"$out" || fail "bash completion"
out="$("$JVPN_BIN" --generate-completion-script zsh)"; grep -q "#compdef jvpn" <<<"$out" || fail "zsh completion"
"$JVPN_BIN" genkey -o "$RIG_DIR/new.key"
[[ "$(stat -c %a "$RIG_DIR/new.key")" == 600 ]] || fail "genkey -o mode $(stat -c %a "$RIG_DIR/new.key")"
"$JVPN_BIN" pubkey <"$RIG_DIR/new.key" >/dev/null || fail "pubkey of genkey -o output"
pass
