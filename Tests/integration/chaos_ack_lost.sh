#!/usr/bin/env bash
# Never wedged (a): the active uplink goes down and everything the gateway sends back on the other
# uplink is lost for 2 s, so the client's REATTACH moves the binding (binding_version bumped) but
# the client never hears the REATTACH_ACK. Once the loss stops the two sides must agree again:
# client ATTACHED on up1, gateway bound to the client's up1 address, the same binding_version on
# both sides, the same session id, traffic flows, and the STALE_VERSION rejects stop.
#   variant all: drop ALL gw->client traffic on up1 for 2 s
#   variant ack: drop only REATTACH_ACK (type-5, 65-byte payload) gw->client on up1 for 2 s
# env: CHAOS_WIRE=v1 keys the drop rules on today's sizes (see deploy/netns/nftdrop.sh).
. "$(dirname "$0")/chaos_lib.bash"
chaos_variants all ack
KIND=all; [[ "$CHAOS_VARIANT" == ack ]] && KIND=ack
# CHAOS_KIND overrides the dropped kind; CHAOS_KIND=raw:9: matches nothing: a control run of the
# same steps (a plain link-down switch) that today's code passes.
KIND="${CHAOS_KIND:-$KIND}"

chaos_setup
step "variant $CHAOS_VARIANT (wire $CHAOS_WIRE): tunnel up on up0"
wait_active up0 5 || fail "up0 should be active at start (is $(active_uplink))"
wait_converged "$(now_ms)" 5 up0 || fail "not converged at start: $CONV_LINE"
echo "    $CONV_LINE"
sid=$(client_session)
ping_check 3 3

step "drop $KIND gw->client on up1, then up0 link down; keep dropping 2 s"
drop add up1 to-client "$KIND" 100
t_down=$(now_ms)
flap link-down up0
sleep 2
dropped="$(drop_count up1 to-client "$KIND")"
echo "    dropped at the router: $dropped"
drop clear
t_heal=$(now_ms)
echo "    loss healed $(( t_heal - t_down )) ms after link-down"
[[ "${dropped##* }" =~ ^[0-9]+$ ]] && (( ${dropped##* } > 0 )) || echo "    WARNING: the drop rule matched nothing (wrong wire sizes for this build? CHAOS_WIRE=$CHAOS_WIRE)"

step "after the heal: converged on up1"
assert_converged "$t_heal" "heal" up1
conv=$CONV_MS
rejects_mark
[[ "$(status_field "$RIG_GW" "$GW" "[x for x in s['sessions'] if x['session']=='$sid'][0]['paths'][0]['path'].split(':')[0]")" == 10.202.0.2 ]] \
    || fail "gateway not bound to the client's up1 address"
ping_check 10 8
assert_same_session "$sid"
assert_rejects_stopped 2
converged_now up1 >/dev/null || { chaos_diag; fail "diverged again after convergence: $(converged_now up1)"; }
pass "variant $CHAOS_VARIANT converged in $conv ms after heal"
