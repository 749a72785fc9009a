#!/usr/bin/env bash
# RTT-based failure detection, the safe half: a healthy but jittery path must never be given up.
# Router rig, DEFAULT policy on both daemons (no [Policy] at all), and on BOTH uplinks, in EACH
# direction, a delay of 20 ms +- 10 (uniform per packet, packets may reorder: flap.sh netem-both
# ... delay 20ms 10ms; nfq_delay.py on this kernel): the tunnel's round trip is 40 ms +- 20.
# The delay is in place before the client starts, so the detector only ever sees the jittery path.
# Load through the tunnel for JITTER_SECONDS (deploy/netns/bursty.py, every byte checked):
# request/response bursts of random size with think times of 0..500 ms, bulk TCP uploads of
# 2..6 MiB every ~25 s, and one-way UDP bursts every ~10 s that the gateway never answers (so the
# client sends with nothing coming back: the detector's suspicion is raised, the probe it sends
# must clear it).
# Asserts, over the run (from the first event after the client attached to the end):
#   - no TRANSPORT_SWITCH and no STATE_CHANGE at all (the session stays ATTACHED on up0), also
#     checked by sampling the status every 5 s; the same session id at the end;
#   - the load ran without error;
#   - sessions[0].suspicion exists in the status JSON (a binary without the RTT-based detector
#     fails here, after everything else was checked) and suspicion.confirmed == 0; its counters
#     (raised/cleared/confirmed/probes) and the suspicion probes per second are printed.
# Also checked first, so that a broken rig never passes as "no switch": the ping RTT through the
# tunnel is 40 ms +- 20 on average (between 25 and 70 ms).
#
# CI runs the default (120 s of load, ~140 s in all, within deploy/test.sh's 300 s per script).
# The full run of the issue is 10 minutes (beyond the CI budget, run it by hand):
#     JITTER_SECONDS=600 bash Tests/integration/suspicion_jitter.sh
# env: JITTER_SECONDS (10..3600, default 120), JITTER_SEED (the load's random seed; printed)
. "$(dirname "$0")/suspicion_lib.bash"
DURATION="${JITTER_SECONDS:-120}"
[[ "$DURATION" =~ ^[0-9]+$ ]] && (( DURATION >= 10 && DURATION <= 3600 )) || fail "JITTER_SECONDS must be 10..3600"
SEED="${JITTER_SEED:-$(( $(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % 1000000 ))}"
[[ "$SEED" =~ ^[0-9]+$ ]] || fail "JITTER_SEED must be a number"

suspicion_rig ""
step "20 ms +- 10 each way on up0 and up1 (RTT 40 ms +- 20), then the client on the default policy"
for u in up0 up1; do flap netem-both "$u" delay 20ms 10ms; done
suspicion_client_up 15
wait_active up0 5 || fail "up0 should be active at start (is $(active_uplink))"
sid=$(client_session)

# The rig itself: without the delay in both directions this test proves nothing.
out="$(rig_exec "$RIG_CLIENT" ping -c 20 -i 0.1 -W 2 -q 10.77.0.1 2>&1)" || fail "ping through the tunnel failed: $out"
avg="$(sed -nE 's|.*= [0-9.]+/([0-9.]+)/.*|\1|p' <<<"$out")"
echo "    ping through the tunnel: $(sed -nE 's/^(rtt .*)/\1/p' <<<"$out")"
awk -v a="${avg:-0}" 'BEGIN { exit !(a >= 25 && a <= 70) }' || fail "tunnel RTT avg ${avg:-?} ms, want 40 +- 15: the jitter rig is not in place"
sleep 3   # the standby's RTT is measured too (StandbyProbeIntervalMs 1000)
echo "    paths before the load:"; paths_summary
[[ "$(client_state)" == ATTACHED ]] || fail "client is $(client_state) before the load"
mark=$(ev_lines "$CL_EVENTS")

step "bursty load for ${DURATION} s (seed $SEED): request/response, bulk TCP, one-way UDP"
rm -f "$RIG_DIR/bursty.ready"
# `ip netns exec` itself, not the rig_exec function: $! must be the python process (ip execs it),
# not a subshell, for the SIGTERM that makes it print its counters.
ip netns exec "$RIG_GW" python3 "$REPO/deploy/netns/bursty.py" serve 10.77.0.1 --ready-file "$RIG_DIR/bursty.ready" \
    --max-seconds $(( DURATION + 120 )) >"$RIG_DIR/bursty-serve.json" 2>"$RIG_DIR/bursty-serve.err" &
SRV_PID=$!
rig_wait_for "[[ -f '$RIG_DIR/bursty.ready' ]]" 10 || fail "bursty server did not start: $(cat "$RIG_DIR/bursty-serve.err")"
c0="$(suspicion_counters)"; t_start=$(now_ms)
rig_exec "$RIG_CLIENT" timeout $(( DURATION + 60 )) python3 "$REPO/deploy/netns/bursty.py" client 10.77.0.1 "$DURATION" \
    --seed "$SEED" >"$RIG_DIR/bursty-client.json" 2>"$RIG_DIR/bursty-client.err" &
CLI_PID=$!

problems=()
bad_samples=0; samples=0
deadline=$(( t_start + (DURATION + 70) * 1000 )); next_print=$(( t_start + 30000 ))
while kill -0 "$CLI_PID" 2>/dev/null && (( $(now_ms) < deadline )); do
    sleep 5
    st="$(client_state 2>/dev/null || echo '?')"; up="$(active_uplink 2>/dev/null || echo '?')"
    samples=$(( samples + 1 ))
    if [[ "$st" != ATTACHED || "$up" != up0 ]]; then
        bad_samples=$(( bad_samples + 1 ))
        echo "    +$(( ($(now_ms) - t_start) / 1000 )) s: client $st on $up"
    fi
    if (( $(now_ms) >= next_print )); then
        next_print=$(( next_print + 30000 ))
        echo "    +$(( ($(now_ms) - t_start) / 1000 )) s: $st on $up; suspicion $(suspicion_counters)"
        paths_summary
    fi
done
rc=0; wait "$CLI_PID" || rc=$?
t_end=$(now_ms)
c1="$(suspicion_counters)"
kill -TERM "$SRV_PID" 2>/dev/null || true
wait "$SRV_PID" 2>/dev/null || true
secs="$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", (b - a) / 1000 }')"
echo "    load: $(cat "$RIG_DIR/bursty-client.json" 2>/dev/null)"
echo "    gateway saw: $(cat "$RIG_DIR/bursty-serve.json" 2>/dev/null)"
(( rc == 0 )) || problems+=("the load failed (exit $rc): $(tail -c 300 "$RIG_DIR/bursty-client.json" 2>/dev/null) $(tail -n 3 "$RIG_DIR/bursty-client.err" 2>/dev/null)")
for pidf in "$RIG_DIR"/nfq-rt0.pid "$RIG_DIR"/nfq-rt1.pid; do
    kill -0 "$(cat "$pidf" 2>/dev/null || echo 0)" 2>/dev/null || problems+=("the delayer of $(basename "$pidf" .pid) died during the run: the rig, not jvpn")
done

sw="$(events_after "$CL_EVENTS" "$mark" "e['event']=='TRANSPORT_SWITCH'")"
sc="$(events_after "$CL_EVENTS" "$mark" "e['event']=='STATE_CHANGE'")"
nsw=$(grep -c . <<<"$sw" || true); nsc=$(grep -c . <<<"$sc" || true)
echo "    over ${secs} s: $nsw TRANSPORT_SWITCH, $nsc STATE_CHANGE; $bad_samples of $samples status samples not ATTACHED on up0"
if (( nsw + nsc > 0 )); then
    while read -r ts rest; do if [[ -n "$ts" ]]; then echo "      +$(( ts - t_start )) ms  $rest"; fi; done <<<"$(sort -n <<<"$sw"$'\n'"$sc")"
fi
first_ev() { local ts rest; read -r ts rest <<<"$1"; echo "+$(( ts - t_start )) ms $rest"; }
(( nsw == 0 )) || problems+=("$nsw TRANSPORT_SWITCH on a healthy jittery path (first: $(first_ev "$sw"))")
(( nsc == 0 )) || problems+=("$nsc STATE_CHANGE, want none: the session must stay ATTACHED (first: $(first_ev "$sc"))")
(( bad_samples == 0 )) || problems+=("$bad_samples status samples not ATTACHED on up0")
[[ "$(client_session)" == "$sid" ]] || problems+=("the session id changed: $sid -> $(client_session)")
echo "    paths at the end:"; paths_summary

case "$c0 $c1" in
    *MISSING*|*ERROR*)
        echo "    suspicion counters: before '$c0', after '$c1'"
        problems+=("suspicion counters required, got '${c1}': a jvpn without the RTT-based detector (nothing to judge)") ;;
    *)
        read -r r0 l0 f0 p0 <<<"$c0"; read -r r1 l1 f1 p1 <<<"$c1"
        echo "    suspicion over ${secs} s: raised $(( r1 - r0 )), cleared $(( l1 - l0 )), confirmed $(( f1 - f0 )), probes $(( p1 - p0 )) (totals now: raised $r1 cleared $l1 confirmed $f1 probes $p1)"
        echo "    suspicion probes per second: $(awk -v p=$(( p1 - p0 )) -v s="$secs" 'BEGIN { printf "%.2f", p / s }'); raised per second: $(awk -v p=$(( r1 - r0 )) -v s="$secs" 'BEGIN { printf "%.2f", p / s }')"
        (( f1 == 0 )) || problems+=("suspicion.confirmed = $f1 on a healthy jittery path, want 0") ;;
esac

if (( ${#problems[@]} > 0 )); then
    printf '    problem: %s\n' "${problems[@]}" >&2
    fail "${#problems[@]} problem(s): ${problems[0]}$( (( ${#problems[@]} > 1 )) && echo " (and $(( ${#problems[@]} - 1 )) more above)")"
fi
pass "${secs} s of bursty load on a 40 +- 20 ms path: no switch, no state change, suspicion confirmed 0"
