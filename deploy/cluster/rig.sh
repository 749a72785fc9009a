#!/usr/bin/env bash
# A gateway cluster in network namespaces (sourced after deploy/netns/rig.sh and etcd.sh):
#
#   client [up0 10.201.0.2, up1 10.202.0.2] -> router -> gw-a eth0 10.203.0.1 / gw-b eth0 10.204.0.1
#   LAN bridge 10.50.0.0/24 and fd50::/64 (namespace "lan"): gw-a lan0 .1 ::1, gw-b lan0 .2 ::2,
#   service host svc0 .100 ::100, etcd members e0 e1 e2 at .11 .12 .13 (namespace "etcd", ports 2379/2380)
#
# The service host reaches the clients' tunnel addresses (10.77.0.0/24, fd77::/64) on-link through
# the LAN: the gateway that owns a client's session answers ARP/NDP for its addresses (proxy
# neighbours) and announces a takeover with a gratuitous ARP / unsolicited neighbour advertisement.
#
#   cluster_rig_create            namespaces, links, addresses; exports CR_* names
#   cluster_etcd_start            the three etcd members (real Raft), waits for quorum
#   cluster_write_configs POLICY  keys and configs for gw-a, gw-b (shared gateway key) and the client
#   cluster_gw_up NAME / cluster_gw_kill NAME   start a gateway daemon / kill -9 it
#   cluster_gw_metrics NAME       its /metrics (MetricsListen 127.0.0.1:9586 in its namespace)
#   cluster_gws_stop              SIGTERM to both gateways at once (a cleanup hook, before etcd stops)

cluster_rig_create() {
    rig_require || return 1
    CR_CLIENT="${RIG_PREFIX}client" CR_ROUTER="${RIG_PREFIX}router" CR_LAN="${RIG_PREFIX}lan"
    CR_SVC="${RIG_PREFIX}svc" CR_ETCD="${RIG_PREFIX}etcd"
    CR_GWA="${RIG_PREFIX}gwa" CR_GWB="${RIG_PREFIX}gwb"
    local ns
    for ns in "$CR_CLIENT" "$CR_ROUTER" "$CR_LAN" "$CR_SVC" "$CR_ETCD" "$CR_GWA" "$CR_GWB"; do rig_ns_add "$ns" || return 1; done
    # WAN: two uplinks to the router, one link from the router to each gateway.
    local i
    for i in 0 1; do
        rig_veth "$CR_CLIENT" "up$i" "$CR_ROUTER" "rt$i" || return 1
        rig_addr "$CR_CLIENT" "up$i" "10.20$((i + 1)).0.2/24"
        rig_addr "$CR_ROUTER" "rt$i" "10.20$((i + 1)).0.1/24"
        ip -n "$CR_CLIENT" route add default via "10.20$((i + 1)).0.1" dev "up$i" metric "$((100 + i * 100))"
    done
    rig_veth "$CR_ROUTER" rga "$CR_GWA" eth0 && rig_veth "$CR_ROUTER" rgb "$CR_GWB" eth0 || return 1
    rig_addr "$CR_ROUTER" rga 10.203.0.254/24 && rig_addr "$CR_GWA" eth0 10.203.0.1/24
    rig_addr "$CR_ROUTER" rgb 10.204.0.254/24 && rig_addr "$CR_GWB" eth0 10.204.0.1/24
    ip -n "$CR_GWA" route add default via 10.203.0.254
    ip -n "$CR_GWB" route add default via 10.204.0.254
    rig_exec "$CR_ROUTER" sysctl -qw net.ipv4.ip_forward=1
    # LAN: a bridge in its own namespace, one port per host.
    ip -n "$CR_LAN" link add br0 type bridge && ip -n "$CR_LAN" link set br0 up || return 1
    local pair host ifname addr
    for pair in "$CR_GWA:lan0:10.50.0.1" "$CR_GWB:lan0:10.50.0.2" "$CR_SVC:svc0:10.50.0.100" "$CR_ETCD:lan0:10.50.0.11"; do
        IFS=: read -r host ifname addr <<<"$pair"
        local port="p$(( ${#CR_PORTS[@]} + 0 ))${ifname:0:3}"
        CR_PORTS+=("$port")
        rig_veth "$host" "$ifname" "$CR_LAN" "$port" || return 1
        ip -n "$CR_LAN" link set "$port" master br0
        rig_addr "$host" "$ifname" "$addr/24"
        [[ "$host" != "$CR_ETCD" ]] && rig_addr "$host" "$ifname" "fd50::${addr##*.}/64"
    done
    rig_addr "$CR_ETCD" lan0 10.50.0.12/24 && rig_addr "$CR_ETCD" lan0 10.50.0.13/24
    for ns in "$CR_GWA" "$CR_GWB"; do rig_exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1; done
    # The service host: the clients' addresses are on-link (answered for by their owning gateway).
    ip -n "$CR_SVC" route add 10.77.0.0/24 dev svc0
    ip -n "$CR_SVC" -6 route add fd77::/64 dev svc0
    RIG_CLIENT="$CR_CLIENT"
    export CR_CLIENT CR_ROUTER CR_LAN CR_SVC CR_ETCD CR_GWA CR_GWB RIG_CLIENT
    rig_log "cluster rig: $CR_CLIENT [up0 up1] -> $CR_ROUTER -> $CR_GWA, $CR_GWB; LAN 10.50.0.0/24 with $CR_SVC and etcd"
}
CR_PORTS=()

cluster_etcd_start() {
    # At cleanup the gateways go first, both at once, while etcd still answers their lease revocation
    # (each waits up to 2 s for it otherwise).
    rig_on_cleanup "cluster_gws_stop"
    etcd_cluster_start "$RIG_DIR/etcd" "e0:$CR_ETCD:10.50.0.11:2379:2380" "e1:$CR_ETCD:10.50.0.12:2379:2380" \
        "e2:$CR_ETCD:10.50.0.13:2379:2380" || return 1
    rig_on_cleanup "etcd_cluster_stop"
}

# SIGTERM to every gateway daemon at once; waits (at most 3 s) until they are gone.
cluster_gws_stop() {
    local pids=() n p i
    for n in a b; do p="$(cluster_gw_pid "$n")"; [[ -n "$p" ]] && pids+=("$p"); done
    [[ ${#pids[@]} -gt 0 ]] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for i in $(seq 1 30); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
}

# cluster_write_configs [POLICY_LINES] [LEASE_TTL_S]
cluster_write_configs() {
    local policy="${1:-}" ttl="${2:-3}" n
    jvpn_keys gw client
    local etcd_list
    etcd_list="$(etcd_cluster_endpoints)"
    for n in a b; do
        {
            echo "[Interface]"
            echo "Name = $(tun_name "g$n")"
            echo "PrivateKeyFile = $RIG_DIR/gw.key"
            echo "Address = 10.77.0.1/24, fd77::1/64"
            echo "ListenPort = 51820"
            echo "EventLog = $RIG_DIR/gw-$n.events.jsonl"
            echo "MetricsListen = 127.0.0.1:9586"
            echo
            echo "[Peer]"
            echo "PublicKey = $(cat "$RIG_DIR/client.pub")"
            echo "AllowedIPs = 10.77.0.2/32, fd77::2/128"
            echo
            echo "[Cluster]"
            echo "Etcd = $etcd_list"
            echo "NodeId = gw-$n"
            echo "LeaseTtlS = $ttl"
            echo "LanInterface = lan0"
            if [[ -n "$policy" ]]; then echo; echo "[Policy]"; echo "$policy"; fi
        } >"$RIG_DIR/gw-$n.conf"
    done
    CL="$(tun_name c)"
    write_client_conf "$RIG_DIR/client.conf" "$CL" client "10.77.0.2/32, fd77::2/128" "10.203.0.1:51820, 10.204.0.1:51820" \
        "10.77.0.0/24, 10.50.0.0/24, fd77::/64, fd50::/64" "Uplinks = up0, up1" "$policy"
    chmod 600 "$RIG_DIR"/*.conf
    export CL
}

# cluster_gw_up a|b
cluster_gw_up() {
    local ns; ns="$(cluster_gw_ns "$1")"
    rig_exec "$ns" "$JVPN_BIN" up "$RIG_DIR/gw-$1.conf" --wait 10 >>"$RIG_DIR/gw-$1.up.log" 2>&1 || {
        cat "$RIG_DIR/gw-$1.up.log" >&2
        return 1
    }
}

cluster_gw_ns() { if [[ "$1" == a ]]; then echo "$CR_GWA"; else echo "$CR_GWB"; fi; }

# cluster_gw_metrics a|b : the gateway's /metrics text
cluster_gw_metrics() {
    rig_exec "$(cluster_gw_ns "$1")" python3 -c \
        'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9586/metrics", timeout=5).read().decode())'
}

# The daemon's pid (the process serving /run/jvpn/NAME.sock in that namespace).
cluster_gw_pid() {
    local ns; ns="$(cluster_gw_ns "$1")"
    ip netns pids "$ns" | while read -r p; do
        [[ "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" == *"gw-$1.conf"* ]] && echo "$p"
    done | head -n1
}

cluster_gw_kill() {
    local pid; pid="$(cluster_gw_pid "$1")"
    [[ -n "$pid" ]] || return 1
    kill -KILL "$pid"
    # The TUN device and the control socket stay behind a SIGKILL: remove them as a supervisor would.
    local name; name="$(tun_name "g$1")"
    rig_wait_for "! kill -0 $pid" 5 0.05
    ip -n "$(cluster_gw_ns "$1")" link del "$name" 2>/dev/null || true
    rm -f "/run/jvpn/$name.sock"
}
