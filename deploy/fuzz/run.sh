#!/usr/bin/env bash
# Builds one libFuzzer target of this package and runs it on a seed corpus of valid messages.
#
#   deploy/fuzz/run.sh TARGET [RUNS]     TARGET: frame | control | handshake, or any target added
#                                        as README.md describes (product fuzz-TARGET)
#                                        RUNS: inputs to try, default 10000000
#   JVPN_FUZZ_MAX_TIME=SECONDS           wall-clock bound, default 600
#
# The corpus lives in deploy/fuzz/.corpus/TARGET (grown by libFuzzer, kept between runs); crash
# inputs are saved as deploy/fuzz/.artifacts/TARGET/crash-*. Reproduce one with
#   .build/release/fuzz-TARGET .artifacts/TARGET/crash-...
# Exit status: 0 when the run ends without a finding, libFuzzer's non-zero status otherwise.
set -euo pipefail

target=${1:?usage: run.sh TARGET [RUNS]}
runs=${2:-10000000}
max_time=${JVPN_FUZZ_MAX_TIME:-600}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export PATH=/opt/swift/usr/bin:$PATH

flags=(-c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift build "${flags[@]}" --product "fuzz-$target" >"$log" 2>&1 || { cat "$log"; exit 1; }
binary="$(swift build "${flags[@]}" --show-bin-path)/fuzz-$target"

corpus=.corpus/$target
artifacts=.artifacts/$target
mkdir -p "$corpus" "$artifacts"
# Each target writes its own seeds (messages built by the current code) and exits.
JVPN_FUZZ_WRITE_SEEDS="$corpus" "$binary"

status=0
SWIFT_BACKTRACE=enable=no "$binary" -runs="$runs" -max_total_time="$max_time" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || status=$?
# The result: libFuzzer's "Done N runs in S second(s)" line, or the report of what it found.
if [ "$status" -eq 0 ]; then
    grep -E '^Done [0-9]+ runs' "$log" || tail -n 5 "$log"
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
else
    grep -E 'ERROR|property violated|Fatal error|artifact|Test unit written' "$log" || tail -n 40 "$log"
fi
exit "$status"
