#!/usr/bin/env bash
# jvpn demo: one TCP stream survives its uplink going away, several times.
#
#   client ns (up0, up1) --- router ns --- gateway ns
#
# Installs its packages (deploy/install-deps.sh), builds jvpn if needed, starts a gateway and a client (`Uplinks = up0, up1`), shows status,
# runs a paced TCP transfer with a SHA-256 checksum through the tunnel while up0 is taken down
# and brought back DEMO_FLAPS times, then prints status, the event timeline, and tears down.
# Exit 0 only if the transfer arrived complete and intact.
#
# usage: deploy/netns/demo.sh            (as root)
# env:   JVPN_BIN (default $REPO/.build/release/jvpn), DEMO_FLAPS (3), DEMO_MBPS (20),
#        DEMO_FLAP_MODE (link: link-down/up | blackhole: silent drop at the router)
set -euo pipefail

DEMO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=rig.sh
. "$DEMO_DIR/rig.sh"
FLAP="$DEMO_DIR/flap.sh"
FLAPS="${DEMO_FLAPS:-3}"
MBPS="${DEMO_MBPS:-20}"
MODE="${DEMO_FLAP_MODE:-link}"
DOWN_S=3 UP_S=4 LEAD_S=3

[[ $EUID -eq 0 ]] || { echo "demo.sh needs root (network namespaces, TUN)" >&2; exit 1; }
[[ "$FLAPS" =~ ^[0-9]+$ && "$FLAPS" -le 20 ]] || { echo "DEMO_FLAPS: 0..20" >&2; exit 2; }
case "$MODE" in link|blackhole) ;; *) echo "DEMO_FLAP_MODE: link or blackhole" >&2; exit 2 ;; esac

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "packages (deploy/install-deps.sh)"
"$DEMO_DIR/../install-deps.sh"
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"

step "jvpn binary"
rig_jvpn_ensure_built
echo "$JVPN_BIN"

step "router rig: client with two uplinks, a router, a gateway"
rig_init
rig_create_router
export RIG_CLIENT RIG_ROUTER   # for flap.sh

GW="${RIG_ID}g" CL="${RIG_ID}c"
D="$RIG_DIR/demo"; mkdir -p "$D"; chmod 700 "$D"
jv_gw() { rig_exec "$RIG_GW" "$JVPN_BIN" "$@"; }
jv_cl() { rig_exec "$RIG_CLIENT" "$JVPN_BIN" "$@"; }
demo_down() {
    timeout 10 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL" >/dev/null 2>&1 || true
    timeout 10 ip netns exec "$RIG_GW" "$JVPN_BIN" down "$GW" >/dev/null 2>&1 || true
}
rig_on_cleanup demo_down

step "keys and configs ($D)"
rig_jvpn_keypair gw
rig_jvpn_keypair client
rig_jvpn_pair_configs "$D" "$GW" "$CL" 51820 "up0, up1"
sed 's/^PrivateKey = .*/PrivateKey = (hidden)/' "$D/$CL.conf"

step "jvpn up (gateway $GW, client $CL)"
timeout 30 ip netns exec "$RIG_GW" "$JVPN_BIN" up "$D/$GW.conf"
timeout 30 ip netns exec "$RIG_CLIENT" "$JVPN_BIN" up "$D/$CL.conf"
rig_wait_for "ip netns exec '$RIG_CLIENT' ping -c1 -W1 10.77.0.1" 15 ||
    { echo "tunnel does not pass ping" >&2; exit 1; }

step "jvpn status (client)"
jv_cl status "$CL" || true

duration=$(( LEAD_S + FLAPS * (DOWN_S + UP_S) + 2 ))
step "TCP transfer through the tunnel: ${duration}s at ${MBPS} Mbit/s, flapping up0 ${FLAPS}x ($MODE)"
rm -f "$D/ready"
rig_exec "$RIG_GW" python3 "$DEMO_DIR/xfer.py" serve 10.77.0.1 9000 --ready-file "$D/ready" \
    --idle-timeout 30 >"$D/recv.json" 2>"$D/recv.err" &
recv_pid=$!
rig_wait_for "[[ -f '$D/ready' ]]" 10 || { echo "receiver did not start" >&2; exit 1; }
rig_exec "$RIG_CLIENT" python3 "$DEMO_DIR/xfer.py" send 10.77.0.1 9000 "$duration" --mbps "$MBPS" \
    --idle-timeout 30 >"$D/send.json" 2>"$D/send.err" &
send_pid=$!
# A ping alongside, 20 per second: lost pings x 50 ms ~ outage seen inside the tunnel.
ping_count=$(( duration * 20 ))
rig_exec "$RIG_CLIENT" ping -c "$ping_count" -i 0.05 -W 1 -q 10.77.0.1 >"$D/ping.txt" 2>&1 &
ping_pid=$!

sleep "$LEAD_S"
for (( i = 1; i <= FLAPS; i++ )); do
    if [[ "$MODE" == link ]]; then "$FLAP" link-down up0; else "$FLAP" blackhole up0; fi
    sleep 1
    jv_cl status "$CL" --json 2>/dev/null | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)["sessions"][0]
    print("    state %s, active path %s" % (s.get("state"), s.get("active_path")))
except Exception:
    pass' || true
    sleep $(( DOWN_S - 1 ))
    if [[ "$MODE" == link ]]; then "$FLAP" link-up up0; else "$FLAP" unblackhole up0; fi
    sleep "$UP_S"
done

rc=0
wait "$send_pid" || rc=1
wait "$recv_pid" || rc=1
wait "$ping_pid" || true

step "transfer result"
echo "sent:     $(cat "$D/send.json")"
echo "received: $(cat "$D/recv.json")"
grep -E 'packets|rtt' "$D/ping.txt" | sed 's/^/ping:     /' || true
python3 - "$D/send.json" "$D/recv.json" <<'EOF' || rc=1
import json, sys
try:
    s = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
except Exception as e:
    print("RESULT: FAIL (no result: %s)" % e); sys.exit(1)
ok = "error" not in s and "error" not in r and s["bytes"] == r["bytes"] and s["sha256"] == r["sha256"] and s["bytes"] > 0
print("RESULT: %s  (%d bytes, sha256 %s, longest stall %s ms)" % (
    "PASS" if ok else "FAIL", r.get("bytes", 0), "match" if ok else "MISMATCH", r.get("max_stall_ms")))
sys.exit(0 if ok else 1)
EOF

step "jvpn status (client)"
jv_cl status "$CL" || true
step "jvpn status --json (client)"
jv_cl status "$CL" --json | python3 -m json.tool || true
step "jvpn events (client): the session timeline"
jv_cl events "$CL" || true
step "jvpn events (gateway)"
jv_gw events "$GW" || true

step "jvpn down"
jv_cl down "$CL" || rc=1
jv_gw down "$GW" || rc=1
[[ $rc -eq 0 ]] && step "demo OK" || step "demo FAILED"
exit "$rc"
