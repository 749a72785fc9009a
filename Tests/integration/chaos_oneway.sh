#!/usr/bin/env bash
# Never wedged (b): one direction of an uplink is broken (gateway -> client lost at the router,
# client -> gateway still delivered), so the gateway hears everything the client sends there.
#   variant startup: broken on up0 (the preferred uplink) before `jvpn up`: the client must end
#     ATTACHED on up1 within ~5 s with the gateway bound to up1's address (not to the first
#     initiation's up0 address: no split brain), traffic flows; once up0 heals the client preempts
#     back to it (BETTER_PATH), the gateway follows, same session id.
#   variant midsession: on up0, break only its gw->client direction: PROBE_TIMEOUT switch to up1,
#     gateway bound to up1, traffic flows, same session id, no STALE_VERSION reject loop.
# env: CHAOS_WIRE (see deploy/netns/nftdrop.sh); kind `all` does not depend on the wire sizes.
. "$(dirname "$0")/chaos_lib.bash"
chaos_variants startup midsession

case "$CHAOS_VARIANT" in
startup)
    chaos_setup "" noclient
    step "startup: gw->client on up0 dropped before the client starts"
    drop add up0 to-client all 100
    t0=$(now_ms)
    rc=0
    rig_exec "$RIG_CLIENT" "$JVPN_BIN" up "$RIG_DIR/c1.conf" --wait 10 || rc=$?
    echo "    jvpn up returned $rc after $(( $(now_ms) - t0 )) ms"
    assert_converged "$t0" "jvpn up" up1 6000
    conv_up=$CONV_MS
    [[ "$(status_field "$RIG_GW" "$GW" "s['sessions'][0]['paths'][0]['path'].split(':')[0]")" == 10.202.0.2 ]] \
        || fail "gateway not bound to the client's up1 address"
    echo "    dropped at the router: $(drop_count up0 to-client all)"
    sid=$(client_session)
    ping_check 10 8
    assert_same_session "$sid"
    step "heal up0: preempt back to it"
    mark=$(ev_mark "$CL_EVENTS")
    drop clear
    t_heal=$(now_ms)
    assert_converged "$t_heal" "heal of up0" up0 8000
    conv=$CONV_MS
    rejects_mark
    n=$(ev_since "$CL_EVENTS" "$mark" "e['event']=='TRANSPORT_SWITCH' and e['reason']=='BETTER_PATH' and e['to_path'].startswith('up0/')")
    (( n >= 1 )) || { chaos_diag; fail "no BETTER_PATH switch to up0 after the heal"; }
    ping_check 10 8
    assert_same_session "$sid"
    assert_rejects_stopped 2
    pass "startup: converged on up1 $conv_up ms after jvpn up started, back on up0 (converged in $conv ms after heal)"
    ;;
midsession)
    chaos_setup
    step "midsession: tunnel on up0, then its gw->client direction breaks"
    wait_active up0 5 || fail "up0 should be active at start (is $(active_uplink))"
    wait_converged "$(now_ms)" 5 up0 || fail "not converged at start: $CONV_LINE"
    sid=$(client_session)
    mark=$(ev_mark "$CL_EVENTS")
    drop add up0 to-client all 100
    t0=$(now_ms)
    assert_converged "$t0" "break of up0's return direction" up1
    conv=$CONV_MS
    rejects_mark
    n=$(ev_since "$CL_EVENTS" "$mark" "e['event']=='TRANSPORT_SWITCH' and e['reason']=='PROBE_TIMEOUT' and e['to_path'].startswith('up1/')")
    (( n >= 1 )) || { chaos_diag; fail "the switch to up1 was not a PROBE_TIMEOUT switch"; }
    rig_output_has "state UP" ip -n "$RIG_CLIENT" link show up0 || fail "up0 went down: not a one-way break"
    ping_check 10 8
    assert_same_session "$sid"
    assert_rejects_stopped 2
    converged_now up1 >/dev/null || { chaos_diag; fail "diverged again (still one-way broken): $(converged_now up1)"; }
    echo "    dropped at the router: $(drop_count up0 to-client all)"
    pass "midsession: PROBE_TIMEOUT switch, converged in $conv ms after the break"
    ;;
esac
