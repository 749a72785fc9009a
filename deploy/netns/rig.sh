#!/usr/bin/env bash
# Network-namespace test rigs for jvpn.
#
# Sourceable library (scripts, integration tests, demo, bench) and a small CLI:
#   rig.sh create basic|router|two-clients   build a rig, print `export` lines (no auto cleanup)
#   rig.sh cleanup PREFIX                     tear down a rig created by `create`
#   rig.sh cleanup-all                        tear down every rig (all jv-*- namespaces)
#   rig.sh list                               list rig namespaces
#   rig.sh selftest                           build every rig kind, check it, clean up
#
# Library use:
#   . deploy/netns/rig.sh
#   rig_init                 # unique prefix + cleanup trap on EXIT INT TERM
#   rig_create_router        # exports RIG_CLIENT RIG_ROUTER RIG_GW RIG_GW_IP ...
#   rig_exec "$RIG_CLIENT" ping -c1 "$RIG_GW_IP"
#
# Names are unique per run (prefix jv-<6 hex>-) so parallel runs never collide, and every
# process left in a rig namespace is killed on cleanup, also when the caller fails.
#
# Addressing (all rigs):
#   basic:       client up0 10.201.0.2/24, fd00:201::2/64  <->  gateway eth0 10.201.0.1/24, fd00:201::1/64
#   router:      client up0 10.201.0.2/24 -> router rt0 10.201.0.1 (default route metric 100)
#                client up1 10.202.0.2/24 -> router rt1 10.202.0.1 (default route metric 200)
#                router rtg 10.203.0.254/24 <-> gateway eth0 10.203.0.1/24 (default via router)
#                (IPv6 alongside: fd00:20N::2 / ::1, fd00:203::1 / ::fe)
#   two-clients: gateway bridge br0 10.201.0.1/24 fd00:201::1/64, client up0 10.201.0.2, client2 up0 10.201.0.3
#   router + rig_add_router_client: client2 up0 10.211.0.2/24 -> router rt9 10.211.0.1

# Not `set -e` here: the caller decides its own shell options.

RIG_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RIG_REPO="$(cd "$RIG_LIB_DIR/../.." && pwd)"
: "${JVPN_BIN:=$RIG_REPO/.build/release/jvpn}"
export JVPN_BIN RIG_LIB_DIR RIG_REPO

rig_log() { printf '[rig %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rig_die() { rig_log "ERROR: $*"; return 1; }

# rig_exec NS cmd...  run a command inside a namespace
rig_exec() {
    local ns="$1"; shift
    ip netns exec "$ns" "$@"
}

# rig_wait_for "CMD" TIMEOUT_SECONDS [INTERVAL]  poll CMD (eval'd) until it succeeds; 1 on timeout
rig_wait_for() {
    local cmd="$1" timeout="${2:-10}" interval="${3:-0.1}"
    local ms; ms="$(awk -v t="$timeout" 'BEGIN { printf "%d", t * 1000 }')"
    local deadline=$(( $(date +%s%N) + ms * 1000000 ))
    while :; do
        if eval "$cmd" >/dev/null 2>&1; then return 0; fi
        if (( $(date +%s%N) >= deadline )); then return 1; fi
        sleep "$interval"
    done
}

# rig_output_has ERE CMD... : true when CMD's whole output matches ERE. `CMD | grep -q` is wrong under
# pipefail: grep exits at the first match, CMD dies of SIGPIPE and the pipeline reports failure.
rig_output_has() {
    local pattern="$1" out; shift
    out="$("$@" 2>/dev/null)" || true
    grep -qE -- "$pattern" <<<"$out"
}

rig_random_id() {
    # 6 hex chars: enough to avoid collisions between parallel runs, short enough for IFNAMSIZ
    od -An -N3 -tx1 /dev/urandom | tr -d ' \n'
}

# rig_init [PREFIX]  choose the run's unique prefix and install the cleanup trap
rig_init() {
    if [[ -z "${RIG_PREFIX:-}" ]]; then
        local id; id="$(rig_random_id)"
        RIG_PREFIX="jv-${id}-"
    fi
    [[ -n "${1:-}" ]] && RIG_PREFIX="$1"
    # RIG_ID: prefix without dashes, used to name interfaces/sockets outside the namespaces
    # (/run/jvpn/NAME.sock and /var/run/wireguard/NAME.sock are not per-namespace).
    RIG_ID="${RIG_PREFIX//-/}"
    RIG_DIR="$(mktemp -d "/tmp/${RIG_PREFIX}XXXX")"
    RIG_CLEANED=0
    RIG_CLEANUP_HOOKS=()
    export RIG_PREFIX RIG_ID RIG_DIR
    trap 'rig_cleanup' EXIT
    trap 'rig_cleanup; trap - EXIT; exit 130' INT
    trap 'rig_cleanup; trap - EXIT; exit 143' TERM
}

# rig_on_cleanup "CMD"  run CMD (eval'd, errors ignored) at cleanup, before namespaces go away
rig_on_cleanup() {
    RIG_CLEANUP_HOOKS+=("$1")
}

rig_namespaces() {
    local prefix="${1:-$RIG_PREFIX}"
    ip netns list 2>/dev/null | awk -v p="$prefix" 'index($1, p) == 1 { print $1 }'
}

# Kill every process in NS: TERM, bounded wait, then KILL.
rig_kill_ns_pids() {
    local ns="$1" pids i
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
    [[ -z "${pids// /}" ]] && return 0
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for i in $(seq 1 30); do
        pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
        [[ -z "${pids// /}" ]] && return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    for i in $(seq 1 20); do
        pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
        [[ -z "${pids// /}" ]] && return 0
        sleep 0.1
    done
}

# rig_cleanup [PREFIX]  idempotent; safe to call from traps and by hand
rig_cleanup() {
    local rc=$?
    local prefix="${1:-${RIG_PREFIX:-}}"
    [[ -z "$prefix" ]] && return "$rc"
    if [[ -z "${1:-}" ]]; then
        [[ "${RIG_CLEANED:-0}" == 1 ]] && return "$rc"
        RIG_CLEANED=1
        local h
        for h in "${RIG_CLEANUP_HOOKS[@]+"${RIG_CLEANUP_HOOKS[@]}"}"; do
            eval "$h" >/dev/null 2>&1 || true
        done
    fi
    local ns
    for ns in $(rig_namespaces "$prefix"); do
        rig_kill_ns_pids "$ns"
    done
    for ns in $(rig_namespaces "$prefix"); do
        ip netns del "$ns" 2>/dev/null || true
    done
    local id="${prefix//-/}"
    rm -f /run/jvpn/"${id}"*.sock /var/run/wireguard/"${id}"*.sock 2>/dev/null || true
    if [[ -z "${1:-}" && -n "${RIG_DIR:-}" && -d "${RIG_DIR}" && "${RIG_KEEP_DIR:-0}" != 1 ]]; then
        rm -rf "$RIG_DIR"
    fi
    return "$rc"
}

rig_ns_add() {
    local ns="$1"
    ip netns add "$ns" || return 1
    ip -n "$ns" link set lo up
    # Two uplinks to different routers: strict reverse-path filtering would drop legit replies.
    rig_exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    rig_exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# rig_veth NS_A IF_A NS_B IF_B  one veth pair created directly inside the two namespaces
rig_veth() {
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" || return 1
    ip -n "$1" link set "$2" up && ip -n "$3" link set "$4" up
}

rig_addr() {
    # rig_addr NS IF ADDR/LEN ; nodad so IPv6 is usable at once
    local extra=""
    [[ "$3" == *:* ]] && extra="nodad"
    # shellcheck disable=SC2086
    ip -n "$1" addr add "$3" dev "$2" $extra
}

rig_require() {
    [[ $EUID -eq 0 ]] || { rig_die "rigs need root"; return 1; }
    [[ -n "${RIG_PREFIX:-}" ]] || rig_init
}

rig_write_env() {
    # A file other processes (flap.sh run by hand) can source to find this rig.
    local f="$RIG_DIR/rig.env" v
    : >"$f"
    for v in RIG_KIND RIG_PREFIX RIG_ID RIG_DIR RIG_CLIENT RIG_CLIENT2 RIG_ROUTER RIG_GW \
             RIG_GW_IP RIG_GW_IP6 RIG_CLIENT_IP RIG_CLIENT_IP6 RIG_CLIENT2_IP RIG_CLIENT2_IP6 \
             RIG_GW_IF RIG_UPLINKS; do
        printf 'export %s=%q\n' "$v" "${!v-}" >>"$f"
    done
}

rig_create_basic() {
    rig_require || return 1
    RIG_KIND=basic
    RIG_CLIENT="${RIG_PREFIX}client"
    RIG_GW="${RIG_PREFIX}gw"
    RIG_ROUTER="" RIG_CLIENT2=""
    rig_ns_add "$RIG_CLIENT" && rig_ns_add "$RIG_GW" || return 1
    rig_veth "$RIG_CLIENT" up0 "$RIG_GW" eth0 || return 1
    rig_addr "$RIG_CLIENT" up0 10.201.0.2/24
    rig_addr "$RIG_CLIENT" up0 fd00:201::2/64
    rig_addr "$RIG_GW" eth0 10.201.0.1/24
    rig_addr "$RIG_GW" eth0 fd00:201::1/64
    ip -n "$RIG_CLIENT" route add default via 10.201.0.1 dev up0 metric 100
    ip -n "$RIG_CLIENT" -6 route add default via fd00:201::1 dev up0 metric 100
    RIG_GW_IP=10.201.0.1 RIG_GW_IP6=fd00:201::1 RIG_GW_IF=eth0
    RIG_CLIENT_IP=10.201.0.2 RIG_CLIENT_IP6=fd00:201::2
    RIG_CLIENT2_IP="" RIG_CLIENT2_IP6=""
    RIG_UPLINKS="up0"
    export RIG_KIND RIG_CLIENT RIG_GW RIG_ROUTER RIG_CLIENT2 RIG_GW_IP RIG_GW_IP6 RIG_GW_IF \
           RIG_CLIENT_IP RIG_CLIENT_IP6 RIG_CLIENT2_IP RIG_CLIENT2_IP6 RIG_UPLINKS
    rig_write_env
    rig_log "basic rig: $RIG_CLIENT ($RIG_CLIENT_IP) <-> $RIG_GW ($RIG_GW_IP)"
}

# Uplink N of the router rig: client upN 10.20(1+N).0.2/24 <-> router rtN 10.20(1+N).0.1/24
rig_uplink_index() { local u="$1"; [[ "$u" =~ ^up([0-9])$ ]] || return 1; echo "${BASH_REMATCH[1]}"; }
rig_uplink_subnet4() { echo "10.20$(( $1 + 1 )).0"; }
rig_uplink_subnet6() { echo "fd00:20$(( $1 + 1 ))"; }
rig_uplink_metric()  { echo "$(( ($1 + 1) * 100 ))"; }

rig_create_router() {
    rig_require || return 1
    local n="${RIG_NUM_UPLINKS:-2}" i s4 s6
    RIG_KIND=router
    RIG_CLIENT="${RIG_PREFIX}client"
    RIG_ROUTER="${RIG_PREFIX}router"
    RIG_GW="${RIG_PREFIX}gw"
    RIG_CLIENT2=""
    rig_ns_add "$RIG_CLIENT" && rig_ns_add "$RIG_ROUTER" && rig_ns_add "$RIG_GW" || return 1
    RIG_UPLINKS=""
    for (( i = 0; i < n; i++ )); do
        s4="$(rig_uplink_subnet4 "$i")"; s6="$(rig_uplink_subnet6 "$i")"
        rig_veth "$RIG_CLIENT" "up$i" "$RIG_ROUTER" "rt$i" || return 1
        rig_addr "$RIG_CLIENT" "up$i" "$s4.2/24"
        rig_addr "$RIG_CLIENT" "up$i" "$s6::2/64"
        rig_addr "$RIG_ROUTER" "rt$i" "$s4.1/24"
        rig_addr "$RIG_ROUTER" "rt$i" "$s6::1/64"
        ip -n "$RIG_CLIENT" route add default via "$s4.1" dev "up$i" metric "$(rig_uplink_metric "$i")"
        ip -n "$RIG_CLIENT" -6 route add default via "$s6::1" dev "up$i" metric "$(rig_uplink_metric "$i")"
        RIG_UPLINKS+="${RIG_UPLINKS:+ }up$i"
    done
    rig_veth "$RIG_ROUTER" rtg "$RIG_GW" eth0 || return 1
    rig_addr "$RIG_ROUTER" rtg 10.203.0.254/24
    rig_addr "$RIG_ROUTER" rtg fd00:203::fe/64
    rig_addr "$RIG_GW" eth0 10.203.0.1/24
    rig_addr "$RIG_GW" eth0 fd00:203::1/64
    ip -n "$RIG_GW" route add default via 10.203.0.254 dev eth0
    ip -n "$RIG_GW" -6 route add default via fd00:203::fe dev eth0
    rig_exec "$RIG_ROUTER" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    RIG_GW_IP=10.203.0.1 RIG_GW_IP6=fd00:203::1 RIG_GW_IF=eth0
    RIG_CLIENT_IP=10.201.0.2 RIG_CLIENT_IP6=fd00:201::2
    RIG_CLIENT2_IP="" RIG_CLIENT2_IP6=""
    export RIG_KIND RIG_CLIENT RIG_GW RIG_ROUTER RIG_CLIENT2 RIG_GW_IP RIG_GW_IP6 RIG_GW_IF \
           RIG_CLIENT_IP RIG_CLIENT_IP6 RIG_CLIENT2_IP RIG_CLIENT2_IP6 RIG_UPLINKS
    rig_write_env
    rig_log "router rig: $RIG_CLIENT [$RIG_UPLINKS] -> $RIG_ROUTER -> $RIG_GW ($RIG_GW_IP)"
}

# rig_add_router_client : a second client namespace on a router rig, for tests that need a client
# the first one's routes cannot disturb: client2 up0 10.211.0.2/24 <-> router rt9 10.211.0.1/24,
# default route via the router. Exports RIG_CLIENT2 RIG_CLIENT2_IP.
rig_add_router_client() {
    [[ "${RIG_KIND:-}" == router ]] || { rig_die "rig_add_router_client needs a router rig"; return 1; }
    RIG_CLIENT2="${RIG_PREFIX}client2"
    rig_ns_add "$RIG_CLIENT2" || return 1
    rig_veth "$RIG_CLIENT2" up0 "$RIG_ROUTER" rt9 || return 1
    rig_addr "$RIG_CLIENT2" up0 10.211.0.2/24
    rig_addr "$RIG_ROUTER" rt9 10.211.0.1/24
    ip -n "$RIG_CLIENT2" route add default via 10.211.0.1 dev up0 metric 100
    RIG_CLIENT2_IP=10.211.0.2
    export RIG_CLIENT2 RIG_CLIENT2_IP
    rig_write_env
}

# rig_drop_at_router_ingress PREFIX : the router drops packets to PREFIX as they arrive from the
# gateway (nft netdev ingress on rtg), before routing; a blackhole route if nft is missing.
rig_drop_at_router_ingress() {
    if command -v nft >/dev/null 2>&1 &&
        rig_exec "$RIG_ROUTER" nft "add table netdev rigdrop; add chain netdev rigdrop in { type filter hook ingress device rtg priority 0; }; add rule netdev rigdrop in ip daddr $1 drop"; then
        return 0
    fi
    ip -n "$RIG_ROUTER" route add blackhole "$1"
}

rig_create_two_clients() {
    rig_require || return 1
    RIG_KIND=two-clients
    RIG_CLIENT="${RIG_PREFIX}client"
    RIG_CLIENT2="${RIG_PREFIX}client2"
    RIG_GW="${RIG_PREFIX}gw"
    RIG_ROUTER=""
    rig_ns_add "$RIG_CLIENT" && rig_ns_add "$RIG_CLIENT2" && rig_ns_add "$RIG_GW" || return 1
    ip -n "$RIG_GW" link add br0 type bridge || return 1
    ip -n "$RIG_GW" link set br0 up
    rig_veth "$RIG_CLIENT" up0 "$RIG_GW" p1 || return 1
    rig_veth "$RIG_CLIENT2" up0 "$RIG_GW" p2 || return 1
    ip -n "$RIG_GW" link set p1 master br0
    ip -n "$RIG_GW" link set p2 master br0
    rig_addr "$RIG_GW" br0 10.201.0.1/24
    rig_addr "$RIG_GW" br0 fd00:201::1/64
    rig_addr "$RIG_CLIENT" up0 10.201.0.2/24
    rig_addr "$RIG_CLIENT" up0 fd00:201::2/64
    rig_addr "$RIG_CLIENT2" up0 10.201.0.3/24
    rig_addr "$RIG_CLIENT2" up0 fd00:201::3/64
    local c
    for c in "$RIG_CLIENT" "$RIG_CLIENT2"; do
        ip -n "$c" route add default via 10.201.0.1 dev up0 metric 100
        ip -n "$c" -6 route add default via fd00:201::1 dev up0 metric 100
    done
    RIG_GW_IP=10.201.0.1 RIG_GW_IP6=fd00:201::1 RIG_GW_IF=br0
    RIG_CLIENT_IP=10.201.0.2 RIG_CLIENT_IP6=fd00:201::2
    RIG_CLIENT2_IP=10.201.0.3 RIG_CLIENT2_IP6=fd00:201::3
    RIG_UPLINKS="up0"
    export RIG_KIND RIG_CLIENT RIG_GW RIG_ROUTER RIG_CLIENT2 RIG_GW_IP RIG_GW_IP6 RIG_GW_IF \
           RIG_CLIENT_IP RIG_CLIENT_IP6 RIG_CLIENT2_IP RIG_CLIENT2_IP6 RIG_UPLINKS
    rig_write_env
    rig_log "two-clients rig: $RIG_CLIENT, $RIG_CLIENT2 -> br0 in $RIG_GW ($RIG_GW_IP)"
}

# rig_load_env [FILE|PREFIX]  pick up a rig made elsewhere (rig.sh create, another script)
rig_load_env() {
    local arg="${1:-}" f=""
    if [[ -f "$arg" ]]; then f="$arg"
    elif [[ -n "$arg" ]]; then
        local found=(/tmp/"${arg}"*/rig.env)
        [[ -f "${found[0]}" ]] && f="${found[0]}"
    fi
    [[ -n "$f" && -f "$f" ]] || return 1
    # shellcheck disable=SC1090
    . "$f"
}

# --- jvpn helpers shared by tests, demo and bench -------------------------------------------

# rig_jvpn_ensure_built: build the release binary when JVPN_BIN is the default and missing
rig_jvpn_ensure_built() {
    if [[ -x "$JVPN_BIN" ]]; then return 0; fi
    if [[ "$JVPN_BIN" == "$RIG_REPO/.build/release/jvpn" ]]; then
        command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
        rig_log "building jvpn (swift build -c release)"
        (cd "$RIG_REPO" && swift build -c release) >&2 || return 1
    fi
    [[ -x "$JVPN_BIN" ]] || { rig_die "jvpn binary not found at $JVPN_BIN (set JVPN_BIN)"; return 1; }
}

# rig_jvpn_keypair NAME -> writes $RIG_DIR/NAME.key (0600) and $RIG_DIR/NAME.pub
rig_jvpn_keypair() {
    local name="$1"
    ( umask 077; "$JVPN_BIN" genkey >"$RIG_DIR/$name.key" ) || return 1
    "$JVPN_BIN" pubkey <"$RIG_DIR/$name.key" >"$RIG_DIR/$name.pub" || return 1
}

# rig_jvpn_pair_configs DIR GW_NAME CL_NAME PORT UPLINKS [POLICY_LINES]
# Writes DIR/GW_NAME.conf (gateway 10.77.0.1/24 on PORT) and DIR/CL_NAME.conf (client 10.77.0.2/32,
# `Uplinks = UPLINKS`, optional [Policy] lines), mode 0600, from the keys of rig_jvpn_keypair gw/client.
rig_jvpn_pair_configs() {
    local dir="$1" gw="$2" cl="$3" port="$4" uplinks="$5" policy="${6:-}"
    # The keys are inline: the files must never exist readable by others (jvpn refuses that).
    local old_umask; old_umask="$(umask)"
    umask 077
    cat >"$dir/$gw.conf" <<EOF || { umask "$old_umask"; return 1; }
[Interface]
PrivateKey = $(cat "$RIG_DIR/gw.key")
Address = 10.77.0.1/24
ListenPort = $port
EventLog = $dir/$gw.events.jsonl

[Peer]
PublicKey = $(cat "$RIG_DIR/client.pub")
AllowedIPs = 10.77.0.2/32
EOF
    cat >"$dir/$cl.conf" <<EOF || { umask "$old_umask"; return 1; }
[Interface]
PrivateKey = $(cat "$RIG_DIR/client.key")
Address = 10.77.0.2/32
Uplinks = $uplinks
EventLog = $dir/$cl.events.jsonl

[Peer]
PublicKey = $(cat "$RIG_DIR/gw.pub")
Endpoint = $RIG_GW_IP:$port
AllowedIPs = 10.77.0.0/24
EOF
    # Both sides get the policy: the gateway enforces its own MaxSwitchesPerMinute on REATTACHes.
    if [[ -n "$policy" ]]; then printf '\n[Policy]\n%s\n' "$policy" | tee -a "$dir/$gw.conf" >>"$dir/$cl.conf"; fi
    umask "$old_umask"
    chmod 600 "$dir/$gw.conf" "$dir/$cl.conf"
}

# rig_pids_by_comm NS REGEX -> pids of processes in NS whose comm matches
rig_pids_by_comm() {
    local ns="$1" re="$2" p c
    for p in $(ip netns pids "$ns" 2>/dev/null); do
        c="$(cat "/proc/$p/comm" 2>/dev/null)" || continue
        [[ "$c" =~ $re ]] && echo "$p"
    done
    return 0
}

# --- self test --------------------------------------------------------------------------------

rig_selftest() {
    local kind fails=0
    for kind in basic router two-clients; do
        (
            set -euo pipefail
            RIG_PREFIX=""
            rig_init
            case "$kind" in
                basic) rig_create_basic ;;
                router) rig_create_router ;;
                two-clients) rig_create_two_clients ;;
            esac
            rig_exec "$RIG_CLIENT" ping -c1 -W2 "$RIG_GW_IP" >/dev/null
            rig_exec "$RIG_CLIENT" ping -6 -c1 -W2 "$RIG_GW_IP6" >/dev/null
            if [[ "$kind" == router ]]; then
                # up1 path: source-bound ping via the second uplink
                rig_exec "$RIG_CLIENT" ping -I up1 -c1 -W2 "$RIG_GW_IP" >/dev/null
            fi
            if [[ "$kind" == two-clients ]]; then
                rig_exec "$RIG_CLIENT2" ping -c1 -W2 "$RIG_GW_IP" >/dev/null
                rig_exec "$RIG_CLIENT" ping -c1 -W2 "$RIG_CLIENT2_IP" >/dev/null
            fi
            # a stray process must be killed by cleanup
            rig_exec "$RIG_GW" sleep 300 >/dev/null 2>&1 &
            disown
            echo "$RIG_PREFIX" >"/tmp/rig-selftest-prefix.$$"
        ) || { rig_log "selftest $kind: FAIL"; fails=$((fails + 1)); }
        local p; p="$(cat "/tmp/rig-selftest-prefix.$$" 2>/dev/null || true)"; rm -f "/tmp/rig-selftest-prefix.$$"
        if [[ -n "$p" && -n "$(rig_namespaces "$p")" ]]; then
            rig_log "selftest $kind: namespaces left behind: $(rig_namespaces "$p" | tr '\n' ' ')"
            fails=$((fails + 1))
        else
            rig_log "selftest $kind: ok (cleanup left nothing)"
        fi
    done
    return "$fails"
}

# --- CLI ----------------------------------------------------------------------------------------

rig_main() {
    local cmd="${1:-help}"; shift || true
    case "$cmd" in
        create)
            RIG_PREFIX="${RIG_PREFIX:-}"
            rig_init
            trap - EXIT INT TERM   # the rig outlives this process; `rig.sh cleanup PREFIX` removes it
            RIG_KEEP_DIR=1
            case "${1:-}" in
                basic) rig_create_basic ;;
                router) rig_create_router ;;
                two-clients|two_clients) rig_create_two_clients ;;
                *) echo "usage: rig.sh create basic|router|two-clients" >&2; rig_cleanup; return 2 ;;
            esac || { rig_cleanup; return 1; }
            cat "$RIG_DIR/rig.env"
            ;;
        cleanup)
            [[ -n "${1:-}" ]] || { echo "usage: rig.sh cleanup PREFIX" >&2; return 2; }
            RIG_CLEANED=1 rig_cleanup "$1"
            rm -rf /tmp/"$1"???? 2>/dev/null || true
            ;;
        cleanup-all)
            local p
            for p in $(ip netns list | awk '{print $1}' | grep -oE '^jv-[0-9a-f]{6}-' | sort -u); do
                rig_cleanup "$p"
                rm -rf /tmp/"$p"???? 2>/dev/null || true
            done
            ;;
        list) ip netns list | awk '{print $1}' | grep -E '^jv-[0-9a-f]{6}-' || true ;;
        selftest) rig_selftest ;;
        *) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [[ "$cmd" == help ]] ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    rig_main "$@"
fi
