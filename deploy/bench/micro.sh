#!/usr/bin/env bash
# Micro-benchmarks of the per-packet work (seal, open, replay window, TSO segmentation, GRO
# coalescing), release build. Usage: deploy/bench/micro.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
swift build -c release --product jvpn-microbench >&2
echo "date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
.build/release/jvpn-microbench
