#!/usr/bin/env bash
# A three-member (or N-member) etcd cluster for tests and benchmarks: real Raft, started and
# stopped by the caller, data on tmpfs (etcd 3.4 has no --unsafe-no-fsync; fsync to /dev/shm is
# cheap), every member on its own loopback or namespace address.
#
# Library (source it):
#   etcd_cluster_start DIR NAME:NS:IP:CLIENT_PORT:PEER_PORT ...   start the members, wait until the
#                                                  cluster answers; NS empty = this namespace
#   etcd_cluster_endpoints                         "http://IP:PORT, ..." (for [Cluster] Etcd =)
#   etcd_member_kill NAME                          kill -9 one member, wait until it has exited
#   etcd_member_start NAME                         start it again (it rejoins with its data dir)
#   etcd_member_freeze NAME                        SIGSTOP one member: connections to it are still
#                                                  accepted by the kernel, nothing answers them
#   etcd_leader                                    the name of the member that leads now
#   etcd_cluster_stop                              kill every member, remove the data
#
# CLI (the unit tests of JVPNCluster use this):
#   etcd.sh start DIR [BASE_PORT]   three members on 127.0.0.1, ports BASE, BASE+1 / BASE+10.. ;
#                                   prints the client endpoints, one per line; pids in DIR/pids
#   etcd.sh stop DIR                kill the members listed in DIR/pids, remove DIR
#   etcd.sh kill DIR NAME           kill -9 one member (e0, e1, e2)
#   etcd.sh restart DIR NAME        start that member again
#   etcd.sh freeze DIR NAME         SIGSTOP one member (stop and kill still end it)
#   etcd.sh leader DIR              the leader's name (tests that mean to lose a follower ask)

ETCD_BIN="${ETCD_BIN:-$(command -v etcd || echo /usr/bin/etcd)}"
ETCD_MEMBERS=()          # NAME:NS:IP:CLIENT:PEER
ETCD_DIR=""

etcd_log() { printf '[etcd %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

_etcd_field() { local IFS=:; read -r -a f <<<"$1"; echo "${f[$2]}"; }

_etcd_member() {   # NAME -> spec
    local m
    for m in "${ETCD_MEMBERS[@]}"; do [[ "$(_etcd_field "$m" 0)" == "$1" ]] && { echo "$m"; return 0; }; done
    return 1
}

_etcd_initial_cluster() {
    local m out=""
    for m in "${ETCD_MEMBERS[@]}"; do
        out+="${out:+,}$(_etcd_field "$m" 0)=http://$(_etcd_field "$m" 2):$(_etcd_field "$m" 4)"
    done
    echo "$out"
}

etcd_member_start() {
    local spec name ns ip cport pport state=new
    spec="$(_etcd_member "$1")" || { etcd_log "no member $1"; return 1; }
    name="$(_etcd_field "$spec" 0)" ns="$(_etcd_field "$spec" 1)" ip="$(_etcd_field "$spec" 2)"
    cport="$(_etcd_field "$spec" 3)" pport="$(_etcd_field "$spec" 4)"
    [[ -d "$ETCD_DIR/$name.data" ]] && state=existing
    local cmd=("$ETCD_BIN" --name "$name" --data-dir "$ETCD_DIR/$name.data"
        --listen-client-urls "http://$ip:$cport" --advertise-client-urls "http://$ip:$cport"
        --listen-peer-urls "http://$ip:$pport" --initial-advertise-peer-urls "http://$ip:$pport"
        --initial-cluster "$(_etcd_initial_cluster)" --initial-cluster-state "$state"
        --initial-cluster-token "jvpn-test" --heartbeat-interval 50 --election-timeout 500
        --log-level warn --logger zap)
    if [[ -n "$ns" ]]; then cmd=(ip netns exec "$ns" "${cmd[@]}"); fi
    "${cmd[@]}" >>"$ETCD_DIR/$name.log" 2>&1 &
    echo "$!" >"$ETCD_DIR/$name.pid"
    # Killing it later is the test's doing, not news for the shell.
    disown "$!" 2>/dev/null || true
}

# etcd_member_url NAME
etcd_member_url() {
    local spec; spec="$(_etcd_member "$1")" || return 1
    echo "http://$(_etcd_field "$spec" 2):$(_etcd_field "$spec" 3)"
}

# _etcd_healthy NAME: the member answers and the cluster has a leader (a write goes through).
_etcd_healthy() {
    local spec ns url out
    spec="$(_etcd_member "$1")" || return 1
    ns="$(_etcd_field "$spec" 1)"
    url="$(etcd_member_url "$1")"
    local cmd=(curl -s -m 1 "$url/health")
    if [[ -n "$ns" ]]; then cmd=(ip netns exec "$ns" "${cmd[@]}"); fi
    out="$("${cmd[@]}" 2>/dev/null)" || return 1
    [[ "$out" == *'"health":"true"'* ]]
}

etcd_cluster_start() {
    ETCD_DIR="$1"; shift
    ETCD_MEMBERS=("$@")
    mkdir -p "$ETCD_DIR"
    local m i
    for m in "${ETCD_MEMBERS[@]}"; do etcd_member_start "$(_etcd_field "$m" 0)" || return 1; done
    for i in $(seq 1 150); do
        local ok=1
        for m in "${ETCD_MEMBERS[@]}"; do _etcd_healthy "$(_etcd_field "$m" 0)" || { ok=0; break; }; done
        ((ok)) && return 0
        sleep 0.1
    done
    etcd_log "cluster did not become healthy in 15 s; logs in $ETCD_DIR"
    return 1
}

etcd_cluster_endpoints() {
    local m out=""
    for m in "${ETCD_MEMBERS[@]}"; do out+="${out:+, }$(etcd_member_url "$(_etcd_field "$m" 0)")"; done
    echo "$out"
}

# Returns once the member has exited (a zombie holds no port; its parent is long gone), at most
# 5 s: a member started again, or the next cluster on the same ports, would find them still held
# (seen with 13 MiB of data: "bind: address already in use").
etcd_member_kill() {
    local pidfile="$ETCD_DIR/$1.pid" pid i state
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || break
        [[ -z "$state" || "$state" == Z ]] && break
        sleep 0.05
    done
    rm -f "$pidfile"
}

# Each member's status names the leader and the member itself; the one whose own id is the leader.
etcd_leader() {
    local m name ns out own leader
    for m in "${ETCD_MEMBERS[@]}"; do
        name="$(_etcd_field "$m" 0)" ns="$(_etcd_field "$m" 1)"
        local cmd=(curl -s -m 1 -X POST -d '{}' "$(etcd_member_url "$name")/v3/maintenance/status")
        if [[ -n "$ns" ]]; then cmd=(ip netns exec "$ns" "${cmd[@]}"); fi
        out="$("${cmd[@]}" 2>/dev/null)" || continue
        [[ "$out" =~ \"member_id\":\"([0-9]+)\" ]] || continue
        own="${BASH_REMATCH[1]}"
        [[ "$out" =~ \"leader\":\"([0-9]+)\" ]] || continue
        leader="${BASH_REMATCH[1]}"
        [[ "$own" == "$leader" ]] && { echo "$name"; return 0; }
    done
    return 1
}

etcd_member_freeze() {
    local pidfile="$ETCD_DIR/$1.pid"
    [[ -f "$pidfile" ]] || return 1
    kill -STOP "$(cat "$pidfile")"
}

etcd_cluster_stop() {
    [[ -n "$ETCD_DIR" ]] || return 0
    local m
    for m in "${ETCD_MEMBERS[@]}"; do etcd_member_kill "$(_etcd_field "$m" 0)"; done
    rm -rf "$ETCD_DIR"
}

# CLI: a loopback cluster whose member list is kept in DIR/members, so that later calls find it.
_etcd_cli_load() {
    ETCD_DIR="$1"
    mapfile -t ETCD_MEMBERS <"$ETCD_DIR/members"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
        start)
            dir="$2" base="${3:-23790}"
            mkdir -p "$dir"
            members=()
            for i in 0 1 2; do members+=("e$i::127.0.0.1:$((base + i)):$((base + 10 + i))"); done
            printf '%s\n' "${members[@]}" >"$dir/members"
            etcd_cluster_start "$dir" "${members[@]}"
            for i in 0 1 2; do echo "http://127.0.0.1:$((base + i))"; done ;;
        stop) _etcd_cli_load "$2"; etcd_cluster_stop ;;
        kill) _etcd_cli_load "$2"; etcd_member_kill "$3" ;;
        restart) _etcd_cli_load "$2"; etcd_member_start "$3" ;;
        freeze) _etcd_cli_load "$2"; etcd_member_freeze "$3" ;;
        leader) _etcd_cli_load "$2"; etcd_leader ;;
        *) echo "usage: $0 start DIR [BASE_PORT] | stop DIR | kill DIR NAME | restart DIR NAME | freeze DIR NAME | leader DIR" >&2
           exit 2 ;;
    esac
fi
