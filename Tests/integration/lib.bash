#!/usr/bin/env bash
# Shared helpers for the namespace integration tests. Each test sources this, builds a rig with
# deploy/netns/rig.sh (unique names, cleanup trap) and drives the real jvpn binary.
set -euo pipefail
TEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$TEST_DIR/../.." && pwd)"
: "${JVPN_BIN:=$REPO/.build/debug/jvpn}"
export JVPN_BIN
# shellcheck source=../../deploy/netns/rig.sh
. "$REPO/deploy/netns/rig.sh"

TEST_NAME="$(basename "$0" .sh)"
# On failure, the tail of both event logs (when a test has set them) goes with the message: the rig
# and its files are gone once the test exits.
fail() {
    echo "FAIL [$TEST_NAME]: $*" >&2
    local f
    for f in "${CL_EVENTS:-}" "${GW_EVENTS:-}"; do
        [[ -n "$f" && -f "$f" ]] || continue
        echo "    last events of $(basename "$f"):" >&2
        tail -n 25 "$f" | cut -c1-300 | sed 's/^/      /' >&2
    done
    exit 1
}
pass() { echo "PASS [$TEST_NAME]${1:+: $1}"; }
step() { echo "--- [$TEST_NAME] $*"; }

# The control socket path (/run/jvpn/NAME.sock) is shared by all namespaces: names carry the rig id.
tun_name() { echo "j${RIG_ID:2:6}$1"; }

# write_gateway_conf FILE NAME PORT [PEER_PUB ALLOWED]...
write_gateway_conf() {
    local file="$1" name="$2" port="$3"; shift 3
    {
        echo "[Interface]"
        echo "Name = $name"
        echo "PrivateKeyFile = $RIG_DIR/gw.key"
        echo "Address = 10.77.0.1/24, fd77::1/64"
        echo "ListenPort = $port"
        echo "EventLog = $RIG_DIR/$name.events.jsonl"
        while (($#)); do
            echo
            echo "[Peer]"
            echo "PublicKey = $(cat "$RIG_DIR/$1.pub")"
            echo "AllowedIPs = $2"
            shift 2
        done
        # The gateway enforces its own MaxSwitchesPerMinute on REATTACHes: the tests give it the
        # clients' policy (GW_POLICY) so that the two agree.
        if [[ -n "${GW_POLICY:-}" ]]; then echo; echo "[Policy]"; echo "$GW_POLICY"; fi
    } >"$file"
}

# write_client_conf FILE NAME KEYNAME ADDRESSES ENDPOINTS ALLOWED [EXTRA_INTERFACE_LINES] [POLICY_LINES]
write_client_conf() {
    local file="$1" name="$2" key="$3" addrs="$4" endpoints="$5" allowed="$6" extra="${7:-}" policy="${8:-}"
    {
        echo "[Interface]"
        echo "Name = $name"
        echo "PrivateKeyFile = $RIG_DIR/$key.key"
        echo "Address = $addrs"
        echo "EventLog = $RIG_DIR/$name.events.jsonl"
        [[ -n "$extra" ]] && echo "$extra"
        echo
        echo "[Peer]"
        echo "PublicKey = $(cat "$RIG_DIR/gw.pub")"
        echo "Endpoint = $endpoints"
        echo "AllowedIPs = $allowed"
        if [[ -n "$policy" ]]; then echo; echo "[Policy]"; echo "$policy"; fi
    } >"$file"
}

# status_field NS NAME PYEXPR  -> evaluates PYEXPR on the status JSON (as `s`)
status_field() {
    rig_exec "$1" "$JVPN_BIN" status "$2" --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($3)"
}

# transfer_check FROM_NS TO_NS TO_IP MB : sends MB random bytes over TCP and compares sha256
transfer_check() {
    local from="$1" to="$2" ip="$3" mb="$4" port="${5:-5201}"
    local src="$RIG_DIR/payload.$port" dst="$RIG_DIR/received.$port"
    head -c "$((mb * 1024 * 1024))" /dev/urandom >"$src"
    rig_exec "$to" timeout 120 nc -l -p "$port" >"$dst" &
    local lpid=$!
    rig_wait_for "rig_output_has ':$port ' rig_exec $to ss -ltn" 5 || fail "listener on $port did not start"
    rig_exec "$from" timeout 120 nc -N "$ip" "$port" <"$src" || fail "sender failed (connection reset or timeout)"
    wait "$lpid" || fail "receiver failed"
    local a b
    a="$(sha256sum <"$src" | cut -d' ' -f1)"
    b="$(sha256sum <"$dst" | cut -d' ' -f1)"
    [[ "$a" == "$b" ]] || fail "checksum mismatch after ${mb} MB: $a != $b ($(stat -c %s "$dst") bytes received)"
    echo "    ${mb} MB transferred, sha256 $a matches at both ends"
    rm -f "$src" "$dst"
}

jvpn_keys() { local k; for k in "$@"; do rig_jvpn_keypair "$k"; done; }

# No interface, route or rule from jvpn left in NS after down.
assert_clean() {
    local ns="$1" name="$2"
    ip -n "$ns" link show "$name" >/dev/null 2>&1 && fail "interface $name still present in $ns"
    rig_output_has "dev $name( |$)" ip -n "$ns" route show table all && fail "routes via $name left in $ns"
    rig_output_has 'fwmark|suppress_prefixlength' ip -n "$ns" rule show && fail "policy rules left in $ns: $(ip -n "$ns" rule show)"
    rig_output_has 'fwmark|suppress_prefixlength' ip -n "$ns" -6 rule show && fail "IPv6 policy rules left in $ns"
    [[ -S /run/jvpn/$name.sock ]] && fail "control socket /run/jvpn/$name.sock left"
    return 0
}

# has_event FILE PYEXPR : true when some event line `e` satisfies PYEXPR
has_event() {
    python3 - "$1" "$2" <<'PY'
import json, sys
ok = False
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    try:
        if eval(sys.argv[2]):
            ok = True
    except Exception:
        pass
sys.exit(0 if ok else 1)
PY
}

# count_events FILE PYEXPR [FROM_LINE] : events (as `e`) satisfying PYEXPR, from line FROM_LINE on
# (0-based; default 0: all of them)
count_events() {
    python3 - "$1" "$2" "${3:-0}" <<'PY'
import json, sys
n = 0
try:
    lines = open(sys.argv[1]).read().splitlines()[int(sys.argv[3]):]
except OSError:
    lines = []
for line in lines:
    try:
        e = json.loads(line)
        if eval(sys.argv[2]):
            n += 1
    except Exception:
        pass
print(n)
PY
}

RIG_POLICY="ProbeIntervalMs = 50
StandbyProbeIntervalMs = 200
DeadAfterMs = 300
StableWindowMs = 1000
SwitchCooldownMs = 200
MaxSwitchesPerMinute = 30"

# router_setup [EXTRA_POLICY_LINES] : router rig, gateway + client (Uplinks up0, up1), both up
# (the client only written, not started, with CLIENT_UP=0; PEER_EXTRA adds lines to its [Peer]).
router_setup() {
    rig_init
    rig_create_router
    export RIG_CLIENT RIG_ROUTER
    jvpn_keys gw c1
    GW=$(tun_name g); CL=$(tun_name c)
    # Extra policy lines override the rig's lines with the same key.
    local policy="$RIG_POLICY" line key
    while IFS= read -r line; do
        [[ -z "$line" ]] && continue
        key="${line%%=*}"; key="${key// /}"
        policy="$(grep -v "^$key " <<<"$policy")"$'\n'"$line"
    done <<<"${1:-}"
    # CLIENT_ADDRS / CLIENT_ALLOWED / GW_PEER_ALLOWED: the tunnel's addresses (IPv6 inside, say).
    GW_POLICY="$policy" write_gateway_conf "$RIG_DIR/gw.conf" "$GW" 51820 c1 "${GW_PEER_ALLOWED:-10.77.0.2/32}"
    write_client_conf "$RIG_DIR/c1.conf" "$CL" c1 "${CLIENT_ADDRS:-10.77.0.2/24}" "$RIG_GW_IP:51820" "${CLIENT_ALLOWED:-10.77.0.0/24}" \
        "${CLIENT_EXTRA:-Uplinks = up0, up1}" "$policy"
    if [[ -n "${PEER_EXTRA:-}" ]]; then
        python3 - "$RIG_DIR/c1.conf" "$PEER_EXTRA" <<'PY'
import sys
path, extra = sys.argv[1], sys.argv[2]
text = open(path).read().replace("AllowedIPs", extra + "\nAllowedIPs", 1)
open(path, "w").write(text)
PY
    fi
    rig_exec "$RIG_GW" "$JVPN_BIN" up "$RIG_DIR/gw.conf" || fail "gateway up"
    CL_EVENTS="$RIG_DIR/$CL.events.jsonl"; GW_EVENTS="$RIG_DIR/$GW.events.jsonl"
    # BEFORE_CLIENT_UP: a command (eval'd) that shapes the network before the client measures it.
    if [[ -n "${BEFORE_CLIENT_UP:-}" ]]; then eval "$BEFORE_CLIENT_UP"; fi
    [[ "${CLIENT_UP:-1}" == 1 ]] || return 0
    rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || fail "client up"
}

FLAP="$REPO/deploy/netns/flap.sh"
flap() { "$FLAP" "$@" >/dev/null 2>&1 || fail "flap.sh $*"; }
client_state() { status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['state']"; }
client_session() { status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['session']"; }
active_uplink() { status_field "$RIG_CLIENT" "$CL" "s['sessions'][0]['active_path'].split('/')[0]"; }

# wait_active UPLINK SECONDS
wait_active() { rig_wait_for "[[ \$(active_uplink) == $1 ]]" "$2" 0.05; }
wait_state() { rig_wait_for "[[ \$(client_state) == $1 ]]" "$2" 0.05; }

# start_stream SECONDS MBPS [SENDER_ARGS...] : paced TCP stream through the tunnel with a checksum at
# both ends (SENDER_ARGS go to `xfer.py send`, e.g. --stop-file FILE to end it before SECONDS)
start_stream() {
    rm -f "$RIG_DIR/ready"
    rig_exec "$RIG_GW" python3 "$REPO/deploy/netns/xfer.py" serve 10.77.0.1 9000 --ready-file "$RIG_DIR/ready" \
        --idle-timeout 30 >"$RIG_DIR/recv.json" 2>"$RIG_DIR/recv.err" &
    RECV_PID=$!
    rig_wait_for "[[ -f '$RIG_DIR/ready' ]]" 10 || fail "receiver did not start"
    rig_exec "$RIG_CLIENT" python3 "$REPO/deploy/netns/xfer.py" send 10.77.0.1 9000 "$1" --mbps "$2" \
        --idle-timeout 30 "${@:3}" >"$RIG_DIR/send.json" 2>"$RIG_DIR/send.err" &
    SEND_PID=$!
}

# finish_stream : both ends done, same byte count and sha256, no reset
finish_stream() {
    wait "$SEND_PID" || fail "sender failed (connection reset?): $(cat "$RIG_DIR/send.err")"
    wait "$RECV_PID" || fail "receiver failed: $(cat "$RIG_DIR/recv.err")"
    python3 - "$RIG_DIR/send.json" "$RIG_DIR/recv.json" <<'PY' || fail "stream corrupted"
import json, sys
s = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
assert s["bytes"] > 0 and s["bytes"] == r["bytes"], (s, r)
assert s["sha256"] == r["sha256"], (s, r)
print("    stream intact: %d bytes, sha256 %s..., longest stall %d ms" % (r["bytes"], r["sha256"][:16], r["max_stall_ms"]))
PY
}

# xfer_start NAME FROM_NS TO_NS TO_HOST PORT SECONDS MBPS : a paced TCP stream (xfer.py) from FROM_NS
# to TO_HOST:PORT in TO_NS, with a checksum at both ends; several may run at once under distinct NAMEs
declare -gA XFER_SEND XFER_RECV
xfer_start() {
    local n="$1" from="$2" to="$3" host="$4" port="$5" secs="$6" mbps="$7"
    rm -f "$RIG_DIR/$n.ready"
    rig_exec "$to" python3 "$REPO/deploy/netns/xfer.py" serve "$host" "$port" --ready-file "$RIG_DIR/$n.ready" \
        --idle-timeout 30 >"$RIG_DIR/$n.recv.json" 2>"$RIG_DIR/$n.recv.err" &
    XFER_RECV[$n]=$!
    rig_wait_for "[[ -f '$RIG_DIR/$n.ready' ]]" 10 || fail "receiver of $n did not start"
    rig_exec "$from" python3 "$REPO/deploy/netns/xfer.py" send "$host" "$port" "$secs" --mbps "$mbps" \
        --idle-timeout 30 >"$RIG_DIR/$n.send.json" 2>"$RIG_DIR/$n.send.err" &
    XFER_SEND[$n]=$!
}

# xfer_finish NAME MAX_STALL_MS : both ends done, same bytes and sha256, and the receiver never waited
# longer than MAX_STALL_MS between two reads
xfer_finish() {
    local n="$1" max="$2"
    wait "${XFER_SEND[$n]}" || fail "$n: sender failed: $(cat "$RIG_DIR/$n.send.err" "$RIG_DIR/$n.send.json")"
    wait "${XFER_RECV[$n]}" || fail "$n: receiver failed: $(cat "$RIG_DIR/$n.recv.err" "$RIG_DIR/$n.recv.json")"
    python3 - "$RIG_DIR/$n.send.json" "$RIG_DIR/$n.recv.json" "$max" "$n" <<'PY' || fail "$n: stream corrupted or stalled"
import json, sys
s = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2])); limit = int(sys.argv[3])
print("    %s: %d bytes, sha256 %s..., longest stall %d ms (limit %d)" % (sys.argv[4], r["bytes"], r["sha256"][:16], r["max_stall_ms"], limit))
assert s["bytes"] > 0 and s["bytes"] == r["bytes"], (s, r)
assert s["sha256"] == r["sha256"], (s, r)
assert r["max_stall_ms"] <= limit, r
PY
}

# path_mtu UPLINK : the client's status `mtu` of that uplink's UDP path
path_mtu() {
    status_field "$RIG_CLIENT" "$CL" "[p['mtu'] for p in s['sessions'][0]['paths'] if p['uplink'] == '$1' and p['transport'] == 'udp'][0]"
}

# udp_block / udp_unblock : the router drops every forwarded UDP packet (all uplinks, both ways),
# set and lifted in one nft transaction so that no uplink is blocked before another.
udp_block() {
    rig_exec "$RIG_ROUTER" nft -f - <<'NFT' || fail "nft: cannot block UDP"
table inet jvudpblock {
    chain forward { type filter hook forward priority -20; policy accept; meta l4proto udp counter drop; }
}
NFT
}
udp_unblock() { rig_exec "$RIG_ROUTER" nft delete table inet jvudpblock || fail "nft: cannot unblock UDP"; }
