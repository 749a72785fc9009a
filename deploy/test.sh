#!/usr/bin/env bash
# The project's test command (README, CI): dependencies, build, unit and root tests, then the
# namespace integration scripts. Run as root. Exit non-zero on any failure.
#
#   1. deploy/install-deps.sh            (skip: JVPN_SKIP_DEPS=1)
#   2. swift build
#   3. swift test                        (JVPNCoreTests + root JVPNSystemTests, no filter)
#   4. every Tests/integration/*.sh      (bash scripts using deploy/netns/rig.sh), each bounded;
#                                        they run against the release binary (JVPN_BIN, built here
#                                        with `swift build -c release --static-swift-stdlib` unless
#                                        JVPN_BIN is set: the binary the Debian package ships, so
#                                        package_deb.sh packages it without a second release build)
#
# Budget: the whole run stays under 25 minutes (CI adds install-deps and the demo and must end
# within 30); each step has its own timeout and a script that
# would start past the budget is reported as failed ("no time left") instead of run.
# env: TEST_BUDGET_S (1500), INTEGRATION_TIMEOUT_S (300 per script), SWIFT_BUILD_FLAGS
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"

BUDGET="${TEST_BUDGET_S:-1500}"
PER_SCRIPT="${INTEGRATION_TIMEOUT_S:-300}"
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(elapsed) )); }
say() { printf '\n[test %4ss] %s\n' "$(elapsed)" "$*"; }

results=()
failures=0
record() {   # record NAME rc
    if [[ "$2" -eq 0 ]]; then results+=("PASS  $1"); else results+=("FAIL  $1 (exit $2)"); failures=$((failures + 1)); fi
}
summary() {
    echo
    echo "==================== test summary ($(elapsed)s) ===================="
    printf '%s\n' "${results[@]+"${results[@]}"}"
    echo "failures: $failures"
}

# Bounded step: run_step NAME MAX_SECONDS cmd...
run_step() {
    local name="$1" max="$2" rc=0; shift 2
    local l; l="$(left)"
    (( max > l )) && max="$l"
    if (( max <= 0 )); then record "$name (no time left)" 124; return 1; fi
    say "$name (timeout ${max}s): $*"
    timeout --kill-after=10 "$max" "$@" || rc=$?
    record "$name" "$rc"
    return "$rc"
}

if [[ "${JVPN_SKIP_DEPS:-0}" != 1 ]]; then
    run_step "install-deps" 300 deploy/install-deps.sh || { summary; exit 1; }
fi

# shellcheck disable=SC2086
run_step "swift build" 600 swift build ${SWIFT_BUILD_FLAGS:-} || { summary; exit 1; }
# shellcheck disable=SC2086
run_step "swift test" 700 swift test ${SWIFT_BUILD_FLAGS:-} || true
run_step "systemd unit: systemd-analyze verify" 300 bash deploy/systemd/verify.sh || true

shopt -s nullglob
scripts=(Tests/integration/*.sh)
shopt -u nullglob
if [[ ${#scripts[@]} -gt 0 ]]; then
    if [[ $EUID -ne 0 ]]; then
        for s in "${scripts[@]}"; do record "$s (needs root)" 1; done
    else
        if [[ -z "${JVPN_BIN:-}" ]]; then
            # shellcheck disable=SC2086
            if run_step "swift build -c release --static-swift-stdlib" 600 swift build -c release --static-swift-stdlib ${SWIFT_BUILD_FLAGS:-}; then
                export JVPN_BIN="$REPO/.build/release/jvpn"
            fi
        fi
        if [[ -n "${JVPN_BIN:-}" ]]; then
            export JVPN_BIN
            for s in "${scripts[@]}"; do
                # Each script gets its own rig prefix (rig_init keeps a preset RIG_PREFIX), so a
                # script that died hard is cleaned up here without touching anyone else's rigs.
                pfx="jv-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')-"
                RIG_PREFIX="$pfx" run_step "$s" "$PER_SCRIPT" bash "$s" || true
                bash deploy/netns/rig.sh cleanup "$pfx" >/dev/null 2>&1 || true
            done
        else
            for s in "${scripts[@]}"; do record "$s (no jvpn binary)" 1; done
        fi
    fi
else
    say "no Tests/integration/*.sh scripts"
fi

summary
[[ $failures -eq 0 ]]
