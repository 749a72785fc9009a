#!/usr/bin/env bash
# Checks deploy/systemd/jvpn@.service with systemd's own tools; a CI step.
#
#   deploy/systemd/verify.sh                 # ExecStart checked against a stub executable
#   JVPN_BIN=.build/debug/jvpn deploy/systemd/verify.sh   # ... against the built binary
#   deploy/systemd/verify.sh --self-test     # also proves that a broken unit is caught
#
# Works without systemd running (containers, CI VMs whose PID 1 is not systemd): both
# `systemd-analyze verify` and `systemd-analyze security --offline=true` only read unit files.
# Installs the systemd package with apt-get when systemd-analyze is missing.
#
# Why a copy of the unit: `verify` refuses an ExecStart binary that does not exist, and CI does not
# install jvpn into /usr/local/bin. The copy differs from the shipped unit only in that path, and the
# shipped ExecStart line itself is checked against the contract below.
#
# Fails on: a non-zero exit of `verify`, ANY diagnostic it prints (unknown keys and bad values are
# only warnings to systemd, and would silently drop hardening), a security exposure above
# JVPN_MAX_EXPOSURE tenths (default 30 = 3.0 on systemd's scale from 0 = locked down to 10 = exposed;
# the unit scores 2.2 with systemd 252), or a missing contract line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
unit=${JVPN_UNIT:-$here/jvpn@.service}
max_exposure=${JVPN_MAX_EXPOSURE:-30}

if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "verify.sh: systemd-analyze missing; run as root to install it (apt-get install systemd)" >&2
        exit 1
    fi
    echo "verify.sh: installing systemd (for systemd-analyze)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
echo "verify.sh: $(systemd-analyze --version | head -1)"

if [ "${1:-}" = "--self-test" ]; then
    # A check that cannot fail proves nothing: each broken copy must be refused.
    st=$(mktemp -d /tmp/jvpn-verify-selftest.XXXXXX)
    trap 'rm -rf "$st"' EXIT
    n=0
    for edit in 's/^UMask=0077$/UMaks=0077/' 's/^Restart=on-failure$/Restart=sometimes/' \
                's/^ProtectSystem=strict$/ProtectSystem=full/' '/^CapabilityBoundingSet=/d' \
                '/^SystemCallFilter=/d; /^RestrictAddressFamilies=/d; /^RestrictNamespaces=/d; /^ProtectKernel/d; /^MemoryDenyWriteExecute=/d'; do
        n=$((n + 1))
        sed "$edit" "$unit" >"$st/jvpn@.service"
        if JVPN_UNIT="$st/jvpn@.service" "$0" >"$st/out" 2>&1; then
            echo "verify.sh: SELF-TEST FAIL: a unit edited with '$edit' passed" >&2
            exit 1
        fi
        echo "verify.sh: self-test $n: refused a unit edited with '$edit'"
    done
    rm -rf "$st"
    trap - EXIT
fi

fail=0
need() {  # need 'exact line' : the shipped unit must contain it
    if ! grep -qxF -- "$1" "$unit"; then
        echo "verify.sh: FAIL: $unit lacks the line: $1" >&2
        fail=1
    fi
}
need 'ExecStart=/usr/local/bin/jvpn up /etc/jvpn/%i.conf --foreground'
need 'Type=notify'
need 'Restart=on-failure'
need 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW'
need 'ProtectSystem=strict'
need 'PrivateTmp=yes'
need 'NoNewPrivileges=yes'
need 'DeviceAllow=/dev/net/tun rw'

work=$(mktemp -d /tmp/jvpn-verify.XXXXXX)
trap 'rm -rf "$work"' EXIT

bin=${JVPN_BIN:-}
if [ -n "$bin" ]; then
    bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
    [ -x "$bin" ] || { echo "verify.sh: JVPN_BIN=$bin is not executable" >&2; exit 1; }
else
    bin="$work/jvpn"
    printf '#!/bin/sh\nexit 0\n' >"$bin"
    chmod 755 "$bin"
fi
sed "s#^ExecStart=/usr/local/bin/jvpn #ExecStart=$bin #" "$unit" >"$work/jvpn@.service"
grep -q "^ExecStart=$bin up /etc/jvpn/%i.conf --foreground\$" "$work/jvpn@.service" ||
    { echo "verify.sh: FAIL: could not point the copy's ExecStart at $bin" >&2; exit 1; }

# An instance name exercises %i; verify reads the template from the copy's directory.
out="$work/verify.out"
rc=0
(cd "$work" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$work/jvpn@ci.service") >"$out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$out" ]; then
    echo "verify.sh: FAIL: systemd-analyze verify (exit $rc):" >&2
    sed 's/^/  /' "$out" >&2
    fail=1
else
    echo "verify.sh: systemd-analyze verify: clean"
fi

rc=0
(cd "$work" && SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=true --man=no --no-pager \
    --threshold="$max_exposure" "$work/jvpn@ci.service") >"$out" 2>&1 || rc=$?
score=$(grep -o 'Overall exposure level for [^:]*: [0-9.]*' "$out" | awk '{print $NF}' || true)
if [ "$rc" -ne 0 ]; then
    echo "verify.sh: FAIL: exposure ${score:-?} is above $max_exposure/10 (or the analysis failed):" >&2
    grep -E '✗|Overall|rror' "$out" | sed 's/^/  /' >&2 || sed 's/^/  /' "$out" >&2
    fail=1
else
    echo "verify.sh: systemd-analyze security: exposure ${score:-?} (limit $max_exposure/10)"
fi

if [ "$fail" -ne 0 ]; then
    echo "verify.sh: FAILED" >&2
    exit 1
fi
echo "verify.sh: OK"
