#!/usr/bin/env bash
# What users trip over: every command's --help shows an example; `jvpn status` with nothing running
# exits 1 and says how to start an interface; `jvpn events --follow` ends by itself when the daemon
# stops (cleanly, after its last event), is killed hard, or was not running in the first place.
. "$(dirname "$0")/lib.bash"
router_setup

step "every --help shows an example"
help="$("$JVPN_BIN" --help)"
mapfile -t commands < <(awk '/^SUBCOMMANDS:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ && n++ { on = 0 }' <<<"$help")
(( ${#commands[@]} >= 8 )) || fail "could not list the subcommands: ${commands[*]}"
[[ "$help" == *"Examples:"* ]] || fail "jvpn --help has no example"
for c in "${commands[@]}"; do
    out="$("$JVPN_BIN" "$c" --help)" || fail "jvpn $c --help failed"
    [[ "$out" =~ Examples?: && "$out" == *"jvpn $c"* ]] || fail "jvpn $c --help shows no example"
done
echo "    ${#commands[@]} commands: ${commands[*]}"

step "status with nothing running: exit 1 and how to start"
name="jn${RIG_ID:2:6}"
rc=0; "$JVPN_BIN" status "$name" >/dev/null 2>"$RIG_DIR/err" || rc=$?
[[ $rc == 1 ]] || fail "status $name: exit $rc, want 1"
[[ "$(cat "$RIG_DIR/err")" == *"$name is not running; start it with \`sudo jvpn up /etc/jvpn/$name.conf\`"* ]] ||
    fail "status $name says: $(cat "$RIG_DIR/err")"
# Without NAME every daemon on the machine counts: look at an empty /run/jvpn of our own.
mkdir -p /run/jvpn
rc=0; unshare -m sh -c "mount -t tmpfs none /run/jvpn && exec '$JVPN_BIN' status" >/dev/null 2>"$RIG_DIR/err" || rc=$?
[[ $rc == 1 && "$(cat "$RIG_DIR/err")" == *"no jvpn interface is running; start one with \`sudo jvpn up /etc/jvpn/NAME.conf\`"* ]] ||
    fail "status without NAME: exit $rc, $(cat "$RIG_DIR/err")"

step "events --follow on an interface that is not running ends at once"
mkdir -p /var/log/jvpn
rig_on_cleanup "rm -f /var/log/jvpn/$name.events.jsonl"
echo '{"ts":"2026-11-22T10:00:00.000Z","event":"AUDIT_EVENT","side":"client","session":"","peer":"","check":"x","result":"pass","detail":"d"}' \
    >"/var/log/jvpn/$name.events.jsonl"
rc=0; timeout 5 "$JVPN_BIN" events "$name" --follow >/dev/null 2>"$RIG_DIR/err" || rc=$?
[[ $rc == 0 && "$(cat "$RIG_DIR/err")" == *"$name is not running; nothing to follow"* ]] ||
    fail "events --follow without a daemon: exit $rc, $(cat "$RIG_DIR/err")"

step "events --follow ends after jvpn down, with the last event printed"
ip netns exec "$RIG_CLIENT" "$JVPN_BIN" events "$CL" --follow >"$RIG_DIR/follow.out" 2>"$RIG_DIR/follow.err" &
follow=$!
rig_wait_for "grep -q HANDSHAKE_OK '$RIG_DIR/follow.out'" 5 || fail "events --follow printed nothing"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL" || fail "down"
rig_wait_for "! kill -0 $follow" 6 || { kill "$follow"; fail "events --follow still running 6 s after down"; }
rc=0; wait "$follow" || rc=$?
[[ $rc == 0 ]] || fail "events --follow exited $rc"
rig_output_has 'TERMINATED +OPERATOR_REQUEST' cat "$RIG_DIR/follow.out" || fail "the last event (TERMINATED) was not printed: $(tail -2 "$RIG_DIR/follow.out")"
rig_output_has "$CL stopped; no more events" cat "$RIG_DIR/follow.err" || fail "no end message: $(cat "$RIG_DIR/follow.err")"

step "events --follow ends when the daemon is killed hard"
ip netns exec "$RIG_GW" "$JVPN_BIN" events "$GW" --follow >"$RIG_DIR/gw.out" 2>"$RIG_DIR/gw.err" &
follow=$!
sleep 1
kill -0 "$follow" 2>/dev/null || fail "events --follow on the running gateway ended early: $(cat "$RIG_DIR/gw.err")"
pids="$(rig_pids_by_comm "$RIG_GW" '^jvpn$' | grep -vx "$follow" || true)"   # the follower is a jvpn too
[[ -n "$pids" ]] || fail "no gateway daemon found"
# shellcheck disable=SC2086
kill -KILL $pids
rig_wait_for "! kill -0 $follow" 8 || { kill "$follow"; fail "events --follow still running 8 s after the daemon died"; }
rc=0; wait "$follow" || rc=$?
[[ $rc == 0 ]] || fail "events --follow exited $rc after the daemon died"
pass "${#commands[@]} commands with examples, status says how to start, --follow ends"
