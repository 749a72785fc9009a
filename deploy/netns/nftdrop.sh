#!/usr/bin/env bash
# Drop chosen jvpn messages at the router of the router rig (rig.sh rig_create_router), with nft.
#
# usage: nftdrop.sh [-p PREFIX | -e RIG_ENV_FILE] COMMAND [ARGS]
#   add UPLINK DIR KIND [PCT]   drop KIND frames crossing UPLINK in direction DIR, all of them
#                               (PCT 100, the default) or a random PCT % (numgen random mod 100)
#   del UPLINK DIR KIND         remove the rule(s) added with that UPLINK DIR KIND
#   clear [UPLINK]              remove every rule of this helper (only those of UPLINK if given)
#   count [UPLINK DIR KIND]     packets dropped so far, one line "UPLINK/DIR/KIND/PCT PACKETS" per rule
#   list                        the helper's nft table with handles and counters
#   sizes                       the size table in force (CHAOS_WIRE), one line per kind
#
#   UPLINK  up0..up9: the client uplink; the rule sits on the router's rtN side of it
#   DIR     to-gw (client -> gateway; aliases to-gateway, up) or
#           to-client (gateway -> client; aliases down)
#   KIND    all        every forwarded packet of that uplink and direction (any protocol)
#           udp, tcp   every UDP (TCP) packet of that uplink and direction, any port: "UDP is
#                      blocked here", or loss on the TCP transport
#           jvpn       every UDP datagram to/from the gateway port (NFTDROP_PORT)
#           data       type-4 frames of any size; keepalive = type 4 with no inner packet
#           control    every type-5 frame
#           init response cookie probe probe-reply reattach ack reject close nat-hint
#           challenge path-response path-mtu path-mtu-ack: one message kind, by UDP payload length
#                      and first byte (MTU probes are probes padded to any size: raw:5:LEN)
#           raw:TYPE:LEN[,LEN...]  first payload byte TYPE and UDP payload length(s) LEN
#                      (LEN empty = any length), for sizes not in the table
#   PCT     1..100; 0 = count only (the rule matches and counts, drops nothing): check that a
#           kind's sizes match what a build sends (`count` afterwards)
#
# Message kinds are recognised by the UDP payload length (nft `udp length` = 8 + payload) and the
# first payload byte (`@th,64,8`), from the size table below. Two tables:
#   CHAOS_WIRE=v2 (default)  the sizes of the reworked control protocol
#   CHAOS_WIRE=v1            today's sizes (initiation 144, response 76, reject 50; no cookie,
#                            no path challenge): reproduce the old wedges with the old code
# Probe and probe reply (49), PATH_CHALLENGE and PATH_RESPONSE (41), PATH_MTU and its ack (39) have
# one size: the direction tells them apart. A kind that does not exist in the chosen table is an error (exit 2).
#
# env: NFTDROP_PORT (default 51820): the gateway's UDP port, matched as dport on to-gw and sport on
#      to-client for every kind but `all`; empty = any UDP port.
#
# The rig is found like flap.sh does: RIG_ROUTER in the environment, -p PREFIX or -e FILE. All
# rules live in one table `inet jvchaos` (chain `drops`, hook forward) of the router namespace,
# each with a counter and the comment UPLINK/DIR/KIND/PCT; the table goes away with the rig.
# Needs nft (Debian package nftables).
set -euo pipefail

NFTDROP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=rig.sh
. "$NFTDROP_DIR/rig.sh"

# --- the size table: KIND -> "TYPE:LEN[,LEN...]" (UDP payload bytes; empty LEN = any length) ---
declare -A NFTDROP_SIZES_V2=(
    [init]="1:160"          # handshake initiation, client -> gw
    [response]="2:92"       # handshake response, gw -> client
    [cookie]="3:64"         # cookie reply, gw -> client
    [data]="4:"             # data frame: 32 + inner IP packet
    [keepalive]="4:32"      # data frame with no inner packet
    [control]="5:"          # every control frame: 32 + control message
    [probe]="5:49"          # client -> gw
    [probe-reply]="5:49"    # gw -> client, same size as the probe
    [reattach]="5:70"       # REATTACH_REQUEST, client -> gw
    [ack]="5:65"            # REATTACH_ACK, gw -> client
    [reject]="5:58"         # gw -> client
    [close]="5:34"
    [nat-hint]="5:40,52"    # IPv4 / IPv6, gw -> client
    [challenge]="5:41"      # PATH_CHALLENGE, gw -> client
    [path-response]="5:41"  # PATH_RESPONSE, client -> gw
    [path-mtu]="5:39"       # PATH_MTU, client -> gw
    [path-mtu-ack]="5:39"   # PATH_MTU_ACK, gw -> client
)
declare -A NFTDROP_SIZES_V1=(
    [init]="1:144"
    [response]="2:76"
    [data]="4:"
    [keepalive]="4:32"
    [control]="5:"
    [probe]="5:49"
    [probe-reply]="5:49"
    [reattach]="5:70"
    [ack]="5:65"
    [reject]="5:50"
    [close]="5:34"
    [nat-hint]="5:40,52"
)
NFTDROP_KINDS="init response cookie data keepalive control probe probe-reply reattach ack reject close nat-hint challenge path-response path-mtu path-mtu-ack"

NFT_TABLE="jvchaos"
NFT_CHAIN="drops"

nd_usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 2; }
nd_log() { printf '[nftdrop %s] %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }
nd_die() { echo "nftdrop: $*" >&2; exit 2; }

nd_nft() { ip netns exec "$R" nft "$@"; }

nd_wire() {
    case "${CHAOS_WIRE:-v2}" in
        v1|v2) echo "${CHAOS_WIRE:-v2}" ;;
        *) nd_die "CHAOS_WIRE must be v1 or v2, not '${CHAOS_WIRE}'" ;;
    esac
}

# nd_size_of KIND -> "TYPE:LENS" from the table in force, or from raw:TYPE:LENS
nd_size_of() {
    local k="$1" w; w="$(nd_wire)"
    if [[ "$k" == raw:* ]]; then
        [[ "$k" =~ ^raw:([0-9]+):([0-9,]*)$ ]] || nd_die "bad raw kind '$k' (want raw:TYPE:LEN[,LEN])"
        echo "${BASH_REMATCH[1]}:${BASH_REMATCH[2]}"
        return
    fi
    local v
    if [[ "$w" == v1 ]]; then v="${NFTDROP_SIZES_V1[$k]-}"; else v="${NFTDROP_SIZES_V2[$k]-}"; fi
    [[ -n "$v" ]] || nd_die "unknown kind '$k' in wire $w (kinds: all udp tcp jvpn $NFTDROP_KINDS raw:T:L)"
    echo "$v"
}

nd_dir() {
    case "$1" in
        to-gw|to-gateway|up) echo to-gw ;;
        to-client|down) echo to-client ;;
        *) nd_die "bad direction '$1' (want to-gw or to-client)" ;;
    esac
}

nd_ensure_table() {
    nd_nft list chain inet "$NFT_TABLE" "$NFT_CHAIN" >/dev/null 2>&1 && return 0
    nd_nft add table inet "$NFT_TABLE"
    # Before the rig's own forwarding (there is none in nft), policy accept: only our drops.
    nd_nft add chain inet "$NFT_TABLE" "$NFT_CHAIN" '{ type filter hook forward priority -10; policy accept; }'
}

# nd_match UPLINK DIR KIND -> the nft match expression (no verdict)
nd_match() {
    local u="$1" dir="$2" kind="$3" i m port="${NFTDROP_PORT-51820}"
    i="$(rig_uplink_index "$u")" || nd_die "bad uplink '$u' (want up0..up9)"
    if [[ "$dir" == to-gw ]]; then m="iifname \"rt$i\" oifname \"rtg\""
    else m="iifname \"rtg\" oifname \"rt$i\""; fi
    [[ "$kind" == all ]] && { echo "$m"; return; }
    [[ "$kind" == udp || "$kind" == tcp ]] && { echo "$m meta l4proto $kind"; return; }
    m+=" meta l4proto udp"
    if [[ -n "$port" ]]; then
        if [[ "$dir" == to-gw ]]; then m+=" udp dport $port"; else m+=" udp sport $port"; fi
    fi
    [[ "$kind" == jvpn ]] && { echo "$m"; return; }
    local s type lens l set=""
    s="$(nd_size_of "$kind")" || exit 2
    type="${s%%:*}"; lens="${s#*:}"
    if [[ -n "$lens" ]]; then
        for l in ${lens//,/ }; do set+="${set:+, }$(( l + 8 ))"; done
        if [[ "$lens" == *,* ]]; then m+=" udp length { $set }"; else m+=" udp length $set"; fi
    fi
    m+=" @th,64,8 $type"
    echo "$m"
}

nd_add() {
    local u="$1" dir kind="$3" pct="${4:-100}" m tag
    dir="$(nd_dir "$2")" || exit 2
    [[ "$pct" =~ ^[0-9]+$ ]] && (( pct <= 100 )) || nd_die "bad percentage '$pct' (want 0..100)"
    m="$(nd_match "$u" "$dir" "$kind")" || exit 2
    tag="$u/$dir/$kind/$pct"
    nd_ensure_table
    local rnd="" verdict=drop
    (( pct > 0 && pct < 100 )) && rnd=" numgen random mod 100 < $pct"
    (( pct == 0 )) && verdict=""
    # shellcheck disable=SC2086
    nd_nft add rule inet "$NFT_TABLE" "$NFT_CHAIN" $m$rnd counter $verdict comment "\"$tag\""
    nd_log "${verdict:-count} $tag (wire $(nd_wire)): $m$rnd"
    echo "$tag"
}

# nd_handles PREFIX -> handles of rules whose comment starts with PREFIX
nd_handles() {
    local prefix="$1"
    nd_nft -a list chain inet "$NFT_TABLE" "$NFT_CHAIN" 2>/dev/null |
        awk -v p="$prefix" 'match($0, /comment "[^"]*"/) {
            c = substr($0, RSTART + 9, RLENGTH - 10)
            if (index(c, p) == 1 && match($0, /# handle [0-9]+/)) print substr($0, RSTART + 9, RLENGTH - 9)
        }'
}

nd_del_prefix() {
    local h n=0
    for h in $(nd_handles "$1"); do
        nd_nft delete rule inet "$NFT_TABLE" "$NFT_CHAIN" handle "$h"
        n=$((n + 1))
    done
    echo "$n"
}

nd_count() {
    local prefix="${1:-}"
    nd_nft list chain inet "$NFT_TABLE" "$NFT_CHAIN" 2>/dev/null |
        awk -v p="$prefix" 'match($0, /comment "[^"]*"/) {
            c = substr($0, RSTART + 9, RLENGTH - 10)
            if (index(c, p) != 1) next
            n = 0
            if (match($0, /counter packets [0-9]+/)) n = substr($0, RSTART + 16, RLENGTH - 16)
            print c, n
        }'
}

nftdrop_main() {
    local opt OPTIND=1
    while getopts "p:e:h" opt; do
        case "$opt" in
            p) RIG_PREFIX="$OPTARG"; RIG_ROUTER="${OPTARG}router" ;;
            e) rig_load_env "$OPTARG" || nd_die "cannot read $OPTARG" ;;
            *) nd_usage ;;
        esac
    done
    shift $((OPTIND - 1))
    [[ $# -ge 1 ]] || nd_usage
    local cmd="$1"; shift
    if [[ "$cmd" == sizes ]]; then
        local k w; w="$(nd_wire)"
        for k in $NFTDROP_KINDS; do
            if [[ "$w" == v1 ]]; then echo "$k ${NFTDROP_SIZES_V1[$k]-absent}"; else echo "$k ${NFTDROP_SIZES_V2[$k]-absent}"; fi
        done
        return 0
    fi
    [[ -n "${RIG_ROUTER:-}" ]] || nd_die "no rig: export RIG_ROUTER, or pass -p PREFIX / -e FILE"
    command -v nft >/dev/null 2>&1 || nd_die "nft not found (apt-get install nftables)"
    R="$RIG_ROUTER"
    case "$cmd" in
        add)
            [[ $# -eq 3 || $# -eq 4 ]] || nd_usage
            nd_add "$@"
            ;;
        del)
            [[ $# -eq 3 ]] || nd_usage
            local dir n; dir="$(nd_dir "$2")" || exit 2
            n="$(nd_del_prefix "$1/$dir/$3/")"
            nd_log "removed $n rule(s) $1/$dir/$3"
            ;;
        clear)
            [[ $# -le 1 ]] || nd_usage
            if [[ $# -eq 1 ]]; then
                rig_uplink_index "$1" >/dev/null || nd_die "bad uplink '$1'"
                local n; n="$(nd_del_prefix "$1/")"
                nd_log "removed $n rule(s) of $1"
            else
                nd_nft delete table inet "$NFT_TABLE" 2>/dev/null || true
                nd_log "removed every rule"
            fi
            ;;
        count)
            if [[ $# -eq 3 ]]; then local d; d="$(nd_dir "$2")" || exit 2; nd_count "$1/$d/$3/"
            elif [[ $# -eq 0 ]]; then nd_count ""
            else nd_usage; fi
            ;;
        list) nd_nft -a list table inet "$NFT_TABLE" 2>/dev/null || echo "(no rules)" ;;
        *) nd_usage ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    nftdrop_main "$@"
fi
