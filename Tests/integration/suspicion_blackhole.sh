#!/usr/bin/env bash
# RTT-based failure detection, the fast half: a blackhole at the router on the active uplink, under
# a TCP stream, on the DEFAULT policy (ProbeIntervalMs 200, DeadAfterMs 1000; only
# PreemptToPreferred = false on the client, so that nothing moves back after the unblackhole).
# The silent path must be suspected from its smoothed RTT (PTO = srtt + max(4 rttvar, granularity)
# + reply delay) and, silent for ~3 PTOs while the standby answers, abandoned with PROBE_TIMEOUT
# far below DeadAfterMs.
# Each of SUSP_ROUNDS rounds (default 3, 1..5) blackholes the uplink active at that moment (up0,
# up1, up0, ...), then undoes it and waits until that uplink is a live standby again. Per round:
#   - exactly one TRANSPORT_SWITCH, reason PROBE_TIMEOUT, from the blackholed uplink to the other,
#     in the round's window (blackhole, 2 s held, unblackhole, settled: ATTACHED, the other path a
#     live standby, no lost probe left in either path's 20-probe window: ~20 s at the standby's
#     1 Hz, so a round takes ~25 s; the last one only waits 3 s after the unblackhole);
#   - the switch's event ts less than SUSP_LIMIT_MS (500) after the blackhole was applied (the
#     time is taken before flap.sh starts: the measure includes flap.sh's ~10-30 ms, it never
#     flatters the detector);
#   - status sessions[0].suspicion.confirmed >= 1 after the switch.
# At the end: the session id is the one from the start (client and gateway) and the stream's
# sha256 and byte count match at both ends. The timing and status-field checks are reported
# together at the end, so a binary without the RTT-based detector still runs every round.
# env: SUSP_ROUNDS (1..5), SUSP_LIMIT_MS (default 500)
. "$(dirname "$0")/suspicion_lib.bash"
ROUNDS="${SUSP_ROUNDS:-3}"; LIMIT_MS="${SUSP_LIMIT_MS:-500}"
[[ "$ROUNDS" =~ ^[0-9]+$ ]] && (( ROUNDS >= 1 && ROUNDS <= 5 )) || fail "SUSP_ROUNDS must be 1..5"
[[ "$LIMIT_MS" =~ ^[0-9]+$ ]] || fail "SUSP_LIMIT_MS must be a number of ms"

other_uplink() { if [[ "$1" == up0 ]]; then echo up1; else echo up0; fi; }
path_status() { client_status_py "print(next((p.get('status') for p in s0.get('paths', []) if p.get('uplink') == '$1' and p.get('transport', 'udp') == 'udp'), 'none'))"; }
# settled_line : "yes" when the client is ATTACHED with one active path, every other (the other
# uplink's, and each uplink's TCP path) a live standby, and
# no loss left in either path's window, else what is missing. A blackholed path's unanswered probes
# count as lost once it answers again and stay in its 20-probe window (20 s at the standby's 1 Hz):
# a round started before they are gone would switch to a path that turns VOLATILE at once.
settled_line() {
    client_status_py '
ps = s0.get("paths", [])
why = []
if s0.get("state") != "ATTACHED": why.append("state %s" % s0.get("state"))
if sorted(p.get("status") for p in ps) != ["active"] + ["standby"] * (len(ps) - 1): why.append("paths %s" % [p.get("status") for p in ps])
why += ["%s loss %s%%" % (p.get("uplink"), p.get("loss_pct")) for p in ps if p.get("loss_pct")]
print("; ".join(why) or "yes")
'
}
# settle WHAT : wait (bounded, 40 s) until settled; prints how long it took
settle() {
    local t=$(now_ms)
    rig_wait_for '[[ "$(settled_line)" == yes ]]' 40 0.25 || fail "$1: not settled within 40 s: $(settled_line)"
    echo "    settled $(( $(now_ms) - t )) ms after $1 (ATTACHED, a live standby, no loss in either window)"
}

suspicion_rig "PreemptToPreferred = false"
suspicion_client_up 10
wait_active up0 5 || fail "up0 should be active at start (is $(active_uplink))"
settle "the start"
sid=$(client_session)
start_stream 150 10 --stop-file "$RIG_DIR/stream.stop"
sleep 2
kill -0 "$SEND_PID" 2>/dev/null || fail "the TCP stream did not start: $(cat "$RIG_DIR/send.err")"

problems=()
times=()
for (( r = 1; r <= ROUNDS; r++ )); do
    act="$(active_uplink)"; oth="$(other_uplink "$act")"
    [[ "$act" == up0 || "$act" == up1 ]] || fail "round $r: no active uplink ($act)"
    [[ "$(path_status "$oth")" == standby ]] || fail "round $r: the standby $oth is not alive ($(path_status "$oth"))"
    kill -0 "$SEND_PID" 2>/dev/null || fail "round $r: the TCP stream already ended: $(cat "$RIG_DIR/send.err" "$RIG_DIR/send.json" 2>/dev/null)"
    mark=$(ev_lines "$CL_EVENTS")
    c0="$(suspicion_counters)"
    step "round $r/$ROUNDS: blackhole the active $act at the router (standby $oth), suspicion before: $c0"
    t0=$(now_ms)
    flap blackhole "$act"
    t1=$(now_ms)
    rig_wait_for "(( \$(count_events '$CL_EVENTS' \"e['event']=='TRANSPORT_SWITCH'\" $mark) >= 1 ))" 5 0.05 ||
        fail "round $r: no TRANSPORT_SWITCH within 5 s of blackholing $act (active: $(active_uplink), state $(client_state))"
    c1="$(suspicion_counters)"
    sleep 2   # held blackholed: nothing may move back to the dead path
    flap unblackhole "$act"
    if (( r < ROUNDS )); then
        settle "the unblackhole of $act"
    else
        sleep 3   # the last round: only a look for a switch back once the path answers again
    fi
    sw="$(events_after "$CL_EVENTS" "$mark" "e['event']=='TRANSPORT_SWITCH'")"
    sc="$(events_after "$CL_EVENTS" "$mark" "e['event']=='STATE_CHANGE'")"
    echo "    client events of the round (ms since the blackhole; TRANSPORT_SWITCH and STATE_CHANGE):"
    while read -r ts rest; do if [[ -n "$ts" ]]; then echo "      +$(( ts - t0 )) ms  $rest"; fi; done <<<"$(sort -n <<<"$sw"$'\n'"$sc")"
    nsw=$(grep -c . <<<"$sw" || true)
    (( nsw == 1 )) || fail "round $r: $nsw TRANSPORT_SWITCH events in the round, want exactly 1"
    read -r ts _ paths reason rec <<<"$sw"
    [[ "$reason" == PROBE_TIMEOUT ]] || fail "round $r: switch reason $reason, want PROBE_TIMEOUT"
    [[ "$paths" == "$act/"*"=>$oth/"* && "$paths" != *"/tcp/"* ]] || fail "round $r: switch $paths is not $act -> $oth over UDP"
    [[ "$(active_uplink)" == "$oth" ]] || fail "round $r: active is $(active_uplink) after the round, want $oth"
    ms=$(( ts - t0 ))
    times+=("$ms")
    det="$(awk -v t0="$t0" '$2 == "STATE_CHANGE" && $4 == "PROBE_TIMEOUT" { print $1 - t0; exit }' <<<"$sc")"
    echo "    switch $ms ms after the blackhole (flap.sh took $(( t1 - t0 )) ms; $(( ts - t1 )) ms after it returned;" \
         "${det:+PROBE_TIMEOUT state change at +$det ms; }${rec}); limit $LIMIT_MS ms; suspicion after the switch: $c1"
    (( ms < LIMIT_MS )) || problems+=("round $r: switch $ms ms after the blackhole (limit $LIMIT_MS ms; DeadAfterMs is 1000)")
    case "$c1" in
        MISSING*|ERROR*) problems+=("round $r: suspicion counters required, got '$c1': a jvpn without the RTT-based detector") ;;
        *) read -r _ _ conf _ <<<"$c1"
           (( conf >= 1 )) || problems+=("round $r: suspicion.confirmed = $conf after the PROBE_TIMEOUT switch, want >= 1") ;;
    esac
done
: >"$RIG_DIR/stream.stop"
finish_stream
same_session "$sid"
echo "    paths at the end:"; paths_summary
echo "    suspicion at the end: $(suspicion_counters)"
echo "    blackhole -> switch per round: ${times[*]} ms (limit $LIMIT_MS ms)"
if (( ${#problems[@]} > 0 )); then
    printf '    problem: %s\n' "${problems[@]}" >&2
    fail "${#problems[@]} problem(s): ${problems[0]}$( (( ${#problems[@]} > 1 )) && echo " (and $(( ${#problems[@]} - 1 )) more above)")"
fi
pass "$ROUNDS blackholes, switch after ${times[*]} ms (PROBE_TIMEOUT, limit $LIMIT_MS ms), same session, stream intact"
