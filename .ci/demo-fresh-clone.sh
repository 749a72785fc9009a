#!/usr/bin/env bash
# The README's first command, checked as a new user meets it: `deploy/netns/demo.sh` run from a
# fresh clone of the commit under test (only what is committed), with one flap (DEMO_FLAPS=1).
#
# The clone gets no build of its own: a release build costs over a minute on a CI machine, and
# deploy/test.sh has just built the same commit with the same command. DEMO_JVPN_BIN (default:
# this checkout's .build/release/jvpn) is handed to the demo as JVPN_BIN; without it the demo
# builds in the clone as it does for a user (rig_jvpn_ensure_built).
#
# Bounded (DEMO_TIMEOUT_S, 180 by default); the clone, its rig namespaces and daemons are removed
# on every exit. Exit status: the demo's.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
commit="$(git -C "$REPO" rev-parse HEAD)"
work="$(mktemp -d /tmp/jvpn-demo-clone.XXXXXX)"
prefix="jv-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')-"
cleanup() {
    bash "$REPO/deploy/netns/rig.sh" cleanup "$prefix" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

git clone --quiet --no-checkout "$REPO" "$work/jvpn"
git -C "$work/jvpn" checkout --quiet --detach "$commit"
echo "demo-fresh-clone: $commit in $work/jvpn"

bin="${DEMO_JVPN_BIN:-$REPO/.build/release/jvpn}"
env=(DEMO_FLAPS=1 RIG_PREFIX="$prefix")
if [[ -x "$bin" ]]; then
    env+=(JVPN_BIN="$bin")
    echo "demo-fresh-clone: jvpn from $bin"
else
    echo "demo-fresh-clone: no release binary at $bin; the demo builds one in the clone"
fi

rc=0
env "${env[@]}" timeout --kill-after=10 "${DEMO_TIMEOUT_S:-180}" bash "$work/jvpn/deploy/netns/demo.sh" || rc=$?
echo "demo-fresh-clone: demo exit $rc"
exit "$rc"
