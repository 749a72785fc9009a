#!/usr/bin/env bash
# Never wedged (c): 15 % random loss each way on both uplinks (every packet kind) while the
# active uplink up0 flaps 5 times (1 s down, 1 s up) under a ping; then the loss stops. The session
# must converge: client ATTACHED, the gateway bound to the client's active path, binding_version
# equal on both sides, ping answered, no new STALE_VERSION rejects over 2 s, same session id.
# The whole cycle runs CHAOS_RUNS times (default 3) on the same session; each run prints its
# convergence time after the heal.
# The gateway grants 60 switches a minute: the runs' own churn (about 10 switches each) must not
# spend its budget, whose refusals are a policy verdict (a reconnected TCP path cannot be bound
# again until the gateway's minute allows). A refused move while the path in use works is the
# simulation's lossyFlapsGatewayBudgetSpent scenario.
# env: CHAOS_RUNS (1..10), CHAOS_LOSS_PCT (default 15), CHAOS_FLAPS (default 5)
. "$(dirname "$0")/chaos_lib.bash"
GW_POLICY="MaxSwitchesPerMinute = 60"
RUNS="${CHAOS_RUNS:-3}"; LOSS="${CHAOS_LOSS_PCT:-15}"; FLAPS="${CHAOS_FLAPS:-5}"
[[ "$RUNS" =~ ^[0-9]+$ ]] && (( RUNS >= 1 && RUNS <= 10 )) || fail "CHAOS_RUNS must be 1..10"
[[ "$FLAPS" =~ ^[0-9]+$ ]] && (( FLAPS >= 1 && FLAPS <= 20 )) || fail "CHAOS_FLAPS must be 1..20"

chaos_setup
wait_active up0 5 || fail "up0 should be active at start (is $(active_uplink))"
wait_converged "$(now_ms)" 5 || fail "not converged at start: $CONV_LINE"
sid=$(client_session)
times=()
for (( run = 1; run <= RUNS; run++ )); do
    step "run $run/$RUNS: ${LOSS} % loss each way on up0 and up1, $FLAPS flaps of up0 (active: $(active_uplink))"
    for u in up0 up1; do
        drop add "$u" to-gw all "$LOSS"
        drop add "$u" to-client all "$LOSS"
    done
    rig_exec "$RIG_CLIENT" ping -i 0.05 -W 1 -w $(( FLAPS * 2 + 1 )) -q 10.77.0.1 >"$RIG_DIR/lossy-ping.$run" 2>&1 &
    ping_pid=$!
    for (( f = 1; f <= FLAPS; f++ )); do
        flap link-down up0
        sleep 1
        flap link-up up0
        sleep 1
    done
    echo "    dropped at the router: $(drop_count | awk '{ n += $2 } END { print n + 0 }') packets"
    drop clear
    t_heal=$(now_ms)
    wait "$ping_pid" 2>/dev/null || true
    echo "    ping during the chaos: $(sed -nE 's/^([0-9]+ packets transmitted.*loss).*/\1/p' "$RIG_DIR/lossy-ping.$run")"
    assert_converged "$t_heal" "heal (run $run)"
    rejects_mark
    times+=("$CONV_MS")
    ping_check 10 8
    assert_same_session "$sid"
    assert_rejects_stopped 2
    # A preemption back to up0 may be under way: it must end converged too.
    wait_converged "$(now_ms)" 5 || { chaos_diag; fail "run $run: diverged again after convergence: $CONV_LINE"; }
    echo "    run $run: converged in ${times[-1]} ms after heal; now $(active_uplink)"
done
echo "    convergence after heal per run: ${times[*]} ms"
pass "$RUNS runs, converged in ${times[*]} ms after heal"
