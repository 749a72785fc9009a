#!/usr/bin/env bash
# Reproduce mobile-network life on the router rig (rig.sh rig_create_router).
#
# usage: flap.sh [-p PREFIX | -e RIG_ENV_FILE] COMMAND [ARGS]
#   link-down UPLINK            client side: carrier gone (ip link set upN down)
#   link-up UPLINK              bring it back, restore addresses and the default routes
#   addr-del UPLINK             client side: remove the uplink's addresses (link stays up)
#   addr-add UPLINK             restore addresses and default routes
#   blackhole UPLINK            at the router: silently drop everything from/to that uplink;
#                               the client sees no link or address change
#   unblackhole [UPLINK]        undo (every uplink when none given)
#   mtu UPLINK SIZE             at the router: silently drop packets longer than SIZE bytes (IP
#                               length, nft `meta length`) from and to that uplink, both ways, with
#                               no ICMP error: a small carrier MTU with ICMP filtered (UDP GSO is
#                               turned off on the devices that feed it: a veth would pass a whole
#                               GSO burst where a wire carries its segments)
#   mtu-clear [UPLINK]          undo (every uplink when none given)
#   netem UPLINK ARGS...        e.g. `netem up0 loss 30%`, `netem up0 delay 100ms`,
#                               `netem up0 delay 100ms loss 5%`, `netem up0 delay 20ms 10ms`
#                               (jitter: each packet 20 ms +- 10, uniform; packets may reorder);
#                               at the router side of the uplink's veth (router -> client
#                               direction only), replaces earlier netem on that uplink
#   netem-both UPLINK ARGS...   the same ARGS in each direction of the uplink (router -> client and
#                               client -> router, drawn independently): `netem-both up0 delay 20ms
#                               10ms` makes the uplink's round trip 40 ms +- 20
#   netem-clear [UPLINK]        undo either (every uplink when none given)
#   flap UPLINK HZ SECONDS      link down/up HZ times a second for SECONDS (bounded), ends up
#   status                      links, rules, qdiscs and filters of the rig
#
# The rig is found from RIG_CLIENT/RIG_ROUTER in the environment (exported by rig.sh), or
# -p PREFIX (namespaces PREFIXclient, PREFIXrouter), or -e FILE (the rig's rig.env).
#
# Kernels without sch_netem (tc says "Specified qdisc kind is unknown") get the same effect from
# netfilter: loss with the iptables `statistic` match, delay and jitter with nfq_delay.py on an
# NFQUEUE (in the router's FORWARD chain: -o rtN for router -> client, also -i rtN for netem-both;
# one delayer per uplink serves both directions). The fallback emulates `loss P%` and
# `delay D [J]` (J uniform, as netem without a distribution table); correlation, distribution,
# rate and the like are logged and ignored. With real netem, netem-both puts the second qdisc on
# the client's side of the veth (upN egress).
set -euo pipefail

FLAP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=rig.sh
. "$FLAP_DIR/rig.sh"

usage() { sed -n '2,37p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }

while getopts "p:e:h" opt; do
    case "$opt" in
        p) RIG_PREFIX="$OPTARG"; RIG_CLIENT="${OPTARG}client"; RIG_ROUTER="${OPTARG}router" ;;
        e) rig_load_env "$OPTARG" || { echo "flap: cannot read $OPTARG" >&2; exit 2; } ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -ge 1 ]] || usage
[[ -n "${RIG_CLIENT:-}" && -n "${RIG_ROUTER:-}" ]] || {
    echo "flap: no rig: export RIG_CLIENT and RIG_ROUTER, or pass -p PREFIX / -e FILE" >&2; exit 2; }
C="$RIG_CLIENT" R="$RIG_ROUTER"

log() { printf '[flap %s] %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }

uplink_idx() {
    rig_uplink_index "$1" || { echo "flap: bad uplink '$1' (want up0..up9)" >&2; exit 2; }
}

restore_uplink() {
    # Link down drops the default route (and the IPv6 addresses); put back what the rig built.
    local u="$1" i s4 s6 m k
    i="$(uplink_idx "$u")"; s4="$(rig_uplink_subnet4 "$i")"; s6="$(rig_uplink_subnet6 "$i")"
    m="$(rig_uplink_metric "$i")"
    ip -n "$C" addr replace "$s4.2/24" dev "$u"
    ip -n "$C" addr replace "$s6::2/64" dev "$u" nodad
    for k in $(seq 1 50); do
        if ip -n "$C" route replace default via "$s4.1" dev "$u" metric "$m" 2>/dev/null &&
           ip -n "$C" -6 route replace default via "$s6::1" dev "$u" metric "$m" 2>/dev/null; then
            return 0
        fi
        sleep 0.02
    done
    log "warning: could not restore default routes on $u"
}

netem_supported() {
    # Probe once per namespace on a throwaway dummy link.
    if ip -n "$R" link add jvprobe0 type dummy 2>/dev/null; then
        local ok=1
        tc -n "$R" qdisc add dev jvprobe0 root netem delay 1ms 2>/dev/null && ok=0
        ip -n "$R" link del jvprobe0 2>/dev/null || true
        return "$ok"
    fi
    return 1
}

nfq_num() { echo $(( 4200 + $1 )); }

netfilter_clear() {
    local u="$1" i chain t pidf
    i="$(uplink_idx "$u")"; chain="JVFLAP-rt$i"
    for t in iptables ip6tables; do
        while rig_exec "$R" "$t" -D FORWARD -o "rt$i" -j "$chain" 2>/dev/null; do :; done
        while rig_exec "$R" "$t" -D FORWARD -i "rt$i" -j "$chain" 2>/dev/null; do :; done
        rig_exec "$R" "$t" -F "$chain" 2>/dev/null || true
        rig_exec "$R" "$t" -X "$chain" 2>/dev/null || true
    done
    for pidf in "${RIG_DIR:-/tmp}/nfq-rt$i.pid" "/tmp/${RIG_PREFIX:-x}nfq-rt$i.pid"; do
        if [[ -f "$pidf" ]]; then
            local pid k; pid="$(cat "$pidf")"
            kill -TERM "$pid" 2>/dev/null || true
            # The queue number is reused at once: wait (bounded) until the old delayer is gone.
            for k in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$pidf"
        fi
    done
}

netem_clear_one() {
    local u="$1" i; i="$(uplink_idx "$u")"
    tc -n "$R" qdisc del dev "rt$i" root 2>/dev/null || true
    # netem-both's client -> router half (real netem only; deleting the default qdisc is a no-op)
    tc -n "$C" qdisc del dev "$u" root 2>/dev/null || true
    netfilter_clear "$u"
}

# to_ms TIME : netem time (100ms, 1.5s, 500us, bare number = ms) in milliseconds
to_ms() {
    case "$1" in
        *ms) echo "${1%ms}" ;;
        *us) awk -v v="${1%us}" 'BEGIN { print v / 1000 }' ;;
        *s) awk -v v="${1%s}" 'BEGIN { print v * 1000 }' ;;
        *) echo "$1" ;;
    esac
}

# netem_apply one|both UPLINK ARGS...
netem_apply() {
    local dirs="$1" u="$2"; shift 2
    local i; i="$(uplink_idx "$u")"
    [[ $# -ge 2 ]] || { echo "flap: netem UPLINK loss N% | delay Nms [JITTERms] ..." >&2; exit 2; }
    local where="router->$u"
    [[ "$dirs" == both ]] && where="router<->$u, each way"
    netem_clear_one "$u"
    if netem_supported; then
        tc -n "$R" qdisc replace dev "rt$i" root netem "$@"
        if [[ "$dirs" == both ]]; then tc -n "$C" qdisc replace dev "$u" root netem "$@"; fi
        log "netem on rt$i ($where): $*"
        return 0
    fi
    # Fallback: netfilter. Parse the subset we emulate: loss P%, delay D [JITTER].
    local loss="" delay_ms="" jitter_ms="" a
    while [[ $# -gt 0 ]]; do
        a="$1"; shift
        case "$a" in
            loss) loss="${1%\%}"; shift ;;
            delay)
                delay_ms="$(to_ms "$1")"; shift
                # netem: delay TIME [JITTER [CORRELATION]]
                if [[ $# -gt 0 && "$1" =~ ^[0-9.]+(ms|us|s)?$ ]]; then jitter_ms="$(to_ms "$1")"; shift; fi
                while [[ $# -gt 0 && "$1" =~ ^[0-9.]+(ms|us|s|%)?$ ]]; do log "ignoring '$1' (correlation: not emulated without netem)"; shift; done
                ;;
            *) log "ignoring netem argument '$a' (kernel has no netem)" ;;
        esac
    done
    if [[ "$jitter_ms" =~ ^0*\.?0*$ ]]; then jitter_ms=""; fi
    local chain="JVFLAP-rt$i" t
    for t in iptables ip6tables; do
        rig_exec "$R" "$t" -N "$chain"
        rig_exec "$R" "$t" -I FORWARD -o "rt$i" -j "$chain"
        if [[ "$dirs" == both ]]; then rig_exec "$R" "$t" -I FORWARD -i "rt$i" -j "$chain"; fi
    done
    if [[ -n "$delay_ms" ]]; then
        # One userspace delayer does both delay and loss, so loss is not applied twice.
        local pidf="${RIG_DIR:-/tmp}/nfq-rt$i.pid" extra=()
        [[ -d "${RIG_DIR:-}" ]] || pidf="/tmp/${RIG_PREFIX:-x}nfq-rt$i.pid"
        [[ -n "$loss" ]] && extra+=(--loss "$loss")
        [[ -n "$jitter_ms" ]] && extra+=(--jitter "$jitter_ms")
        rm -f "$pidf"
        rig_exec "$R" python3 "$FLAP_DIR/nfq_delay.py" "$(nfq_num "$i")" "$delay_ms" "${extra[@]}" \
            --pidfile "$pidf" >/dev/null 2>&1 &
        # The queue must be bound before traffic is sent to it (NFQUEUE without a listener drops);
        # the delayer writes its pid file once bound.
        rig_wait_for "[[ -s '$pidf' ]]" 5 0.05 || { log "nfq_delay.py failed to start"; exit 1; }
        for t in iptables ip6tables; do
            rig_exec "$R" "$t" -A "$chain" -j NFQUEUE --queue-num "$(nfq_num "$i")"
        done
        log "netfilter on rt$i ($where): delay ${delay_ms}ms${jitter_ms:+ jitter +-${jitter_ms}ms (uniform)}${loss:+ loss ${loss}%} (nfq_delay.py)"
    elif [[ -n "$loss" ]]; then
        local p; p="$(awk -v l="$loss" 'BEGIN { printf "%.4f", l / 100 }')"
        for t in iptables ip6tables; do
            rig_exec "$R" "$t" -A "$chain" -m statistic --mode random --probability "$p" -j DROP
        done
        log "netfilter on rt$i ($where): loss ${loss}%"
    fi
}

blackhole_prefs() { echo "$(( 100 + $1 )) $(( 120 + $1 ))"; }

blackhole_one() {
    local u="$1" i s4 s6 p1 p2
    i="$(uplink_idx "$u")"; s4="$(rig_uplink_subnet4 "$i")"; s6="$(rig_uplink_subnet6 "$i")"
    read -r p1 p2 < <(blackhole_prefs "$i")
    unblackhole_one "$u"
    # After the local table (pref 0): the router still answers ARP/ND and pings to itself, so
    # the client's link, neighbour and address all look fine; forwarded traffic vanishes. Both
    # directions of a family in one `ip -batch`: they go dark together, not one `ip` process
    # apart (tens of ms on a busy host, while answers still come back the other way).
    printf 'rule add iif rt%s blackhole pref %s\nrule add to %s iif rtg blackhole pref %s\n' \
        "$i" "$p1" "$s4.0/24" "$p2" | ip -n "$R" -batch -
    printf 'rule add iif rt%s blackhole pref %s\nrule add to %s iif rtg blackhole pref %s\n' \
        "$i" "$p1" "$s6::/64" "$p2" | ip -n "$R" -6 -batch -
    log "blackhole $u at router (rt$i)"
}

unblackhole_one() {
    local u="$1" i p1 p2 f
    i="$(uplink_idx "$u")"
    read -r p1 p2 < <(blackhole_prefs "$i")
    for f in -4 -6; do
        while ip -n "$R" "$f" rule del pref "$p1" 2>/dev/null; do :; done
        while ip -n "$R" "$f" rule del pref "$p2" 2>/dev/null; do :; done
    done
}

mtu_table() { echo "jvmtu_rt$(uplink_idx "$1")"; }

mtu_clear_one() {
    rig_exec "$R" nft delete table inet "$(mtu_table "$1")" 2>/dev/null || true
}

mtu_one() {
    local u="$1" size="$2" i t
    i="$(uplink_idx "$u")"; t="$(mtu_table "$u")"
    [[ "$size" =~ ^[0-9]+$ ]] || usage
    mtu_clear_one "$u"
    # A veth hands a UDP GSO burst on whole, where a wire would carry its segments: `meta length`
    # at the router would see the burst. The senders towards this uplink segment in software then.
    ip netns exec "$C" ethtool -K "$u" tx-udp-segmentation off >/dev/null 2>&1 || log "warning: ethtool -K $u failed"
    if [[ -n "${RIG_GW:-}" ]]; then
        ip netns exec "$RIG_GW" ethtool -K "${RIG_GW_IF:-eth0}" tx-udp-segmentation off >/dev/null 2>&1 || log "warning: ethtool on the gateway failed"
    fi
    rig_exec "$R" nft "add table inet $t; add chain inet $t toobig { type filter hook forward priority -10; policy accept; };
        add rule inet $t toobig iifname rt$i meta length > $size drop; add rule inet $t toobig oifname rt$i meta length > $size drop"
    log "mtu $u: the router drops packets over $size bytes to and from rt$i (no ICMP)"
}

all_uplinks() { ip -n "$C" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^up[0-9]$' || true; }

cmd="$1"; shift
case "$cmd" in
    link-down)
        [[ $# -eq 1 ]] || usage
        uplink_idx "$1" >/dev/null
        ip -n "$C" link set "$1" down
        log "link-down $1"
        ;;
    link-up)
        [[ $# -eq 1 ]] || usage
        ip -n "$C" link set "$1" up
        restore_uplink "$1"
        log "link-up $1"
        ;;
    addr-del)
        [[ $# -eq 1 ]] || usage
        uplink_idx "$1" >/dev/null
        ip -n "$C" addr flush dev "$1" scope global
        log "addr-del $1"
        ;;
    addr-add)
        [[ $# -eq 1 ]] || usage
        restore_uplink "$1"
        log "addr-add $1"
        ;;
    blackhole)
        [[ $# -eq 1 ]] || usage
        blackhole_one "$1"
        ;;
    unblackhole)
        if [[ $# -eq 1 ]]; then unblackhole_one "$1"; log "unblackhole $1"
        else for u in $(all_uplinks); do unblackhole_one "$u"; done; log "unblackhole all"; fi
        ;;
    mtu)
        [[ $# -eq 2 ]] || usage
        mtu_one "$1" "$2"
        ;;
    mtu-clear)
        if [[ $# -eq 1 ]]; then mtu_clear_one "$1"; log "mtu-clear $1"
        else for u in $(all_uplinks); do mtu_clear_one "$u"; done; log "mtu-clear all"; fi
        ;;
    netem)
        [[ $# -ge 3 ]] || usage
        netem_apply one "$@"
        ;;
    netem-both)
        [[ $# -ge 3 ]] || usage
        netem_apply both "$@"
        ;;
    netem-clear)
        if [[ $# -eq 1 ]]; then netem_clear_one "$1"; log "netem-clear $1"
        else for u in $(all_uplinks); do netem_clear_one "$u"; done; log "netem-clear all"; fi
        ;;
    flap)
        [[ $# -eq 3 ]] || usage
        u="$1" hz="$2" secs="$3"
        uplink_idx "$u" >/dev/null
        [[ "$hz" =~ ^[0-9]+(\.[0-9]+)?$ && "$secs" =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage
        cycles="$(awk -v h="$hz" -v s="$secs" 'BEGIN { c = int(h * s + 0.999); if (c < 1) c = 1; if (c > 10000) c = 10000; print c }')"
        half="$(awk -v h="$hz" 'BEGIN { printf "%.3f", 0.5 / h }')"
        log "flap $u: $cycles cycles, ${half}s down / ${half}s up"
        trap 'ip -n "$C" link set "$u" up 2>/dev/null; restore_uplink "$u"' EXIT
        for (( n = 0; n < cycles; n++ )); do
            ip -n "$C" link set "$u" down
            sleep "$half"
            ip -n "$C" link set "$u" up
            restore_uplink "$u"
            sleep "$half"
        done
        trap - EXIT
        log "flap $u done (link up)"
        ;;
    status)
        echo "== client $C"; ip -n "$C" -br addr; ip -n "$C" route; ip -n "$C" -6 route | grep default || true
        echo "== router $R"; ip -n "$R" -br addr; ip -n "$R" rule; ip -n "$R" -6 rule
        tc -n "$R" qdisc show; tc -n "$C" qdisc show | grep netem || true
        rig_exec "$R" iptables -S 2>/dev/null | grep JVFLAP || true
        rig_exec "$R" nft list ruleset 2>/dev/null | grep -A4 'table inet jvmtu' || true
        ;;
    *) usage ;;
esac
