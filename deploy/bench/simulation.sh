#!/usr/bin/env bash
# The deterministic simulations over more seeds than CI runs (CI: 1,200 random schedules of the
# session simulation from seed 1, 100 of the cluster simulation). Each schedule is reproducible:
# a failure prints its seed, and JVPN_SIM_SEED=S / JVPN_CLUSTER_SIM_SEED=S replays it with a trace.
#
# usage: deploy/bench/simulation.sh [--seeds N] [--first-seed S] [--cluster-seeds M]
#   --seeds N          random schedules of the session simulation (default 10000)
#   --first-seed S     the first of them (default 1201: the ones after CI's)
#   --cluster-seeds M  schedules of the cluster simulation, from seed 1 (default 1000)
# Prints each simulation's summary line (schedules, failures, convergence after the heal); exits
# non-zero if any schedule failed.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"

SEEDS=10000
FIRST=1201
CLUSTER=1000
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seeds) SEEDS="$2"; shift 2 ;;
        --first-seed) FIRST="$2"; shift 2 ;;
        --cluster-seeds) CLUSTER="$2"; shift 2 ;;
        *) echo "usage: $0 [--seeds N] [--first-seed S] [--cluster-seeds M]" >&2; exit 2 ;;
    esac
done
for v in "$SEEDS" "$FIRST" "$CLUSTER"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "not a number: $v" >&2; exit 2; }
done

swift build --build-tests
rc=0
JVPN_SIM_SEEDS="$SEEDS" JVPN_SIM_FIRST_SEED="$FIRST" \
    swift test --skip-build --filter 'ConvergenceSimulationTests/testRandomSchedulesConverge' >"${TMPDIR:-/tmp}/jvpn-sim.log" 2>&1 || rc=1
grep -E '^simulation |error:' "${TMPDIR:-/tmp}/jvpn-sim.log" || true
JVPN_CLUSTER_SIM_SEEDS="$CLUSTER" \
    swift test --skip-build --filter 'ClusterSimulationTests/testRandomScheduleConverges' >"${TMPDIR:-/tmp}/jvpn-cluster-sim.log" 2>&1 || rc=1
grep -E '^cluster simulation|error:' "${TMPDIR:-/tmp}/jvpn-cluster-sim.log" || true
echo "simulations: $([[ $rc -eq 0 ]] && echo PASS || echo FAIL) (logs: ${TMPDIR:-/tmp}/jvpn-sim.log, ${TMPDIR:-/tmp}/jvpn-cluster-sim.log)"
exit "$rc"
