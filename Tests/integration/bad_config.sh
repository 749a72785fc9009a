#!/usr/bin/env bash
# Bad configs: `jvpn check` and `jvpn up` exit 2 and name FILE:LINE: for each problem; a key
# file that is not 0600 is refused; bad CLI input gets exit 2, never a crash.
. "$(dirname "$0")/lib.bash"
D="$(mktemp -d /tmp/jvpn-badcfg.XXXX)"
trap 'rm -rf "$D"' EXIT
# The configs below hold inline keys: written 0600 so that each case tests only its own problem.
umask 077
KEY="$("$JVPN_BIN" genkey)"
PUB="$(echo "$KEY" | "$JVPN_BIN" pubkey)"

expect_bad() { # expect_bad FILE LINE REGEX
    local f="$1" line="$2" re="$3" out rc
    set +e; out="$("$JVPN_BIN" check "$f" 2>&1)"; rc=$?; set -e
    [[ $rc == 2 ]] || fail "check $f exited $rc, want 2 (output: $out)"
    grep -qE "^$f:$line: .*$re" <<<"$out" || fail "check $f: want '$f:$line: ...$re', got: $out"
    set +e; out="$("$JVPN_BIN" up "$f" 2>&1)"; rc=$?; set -e
    [[ $rc == 2 ]] || fail "up $f exited $rc, want 2"
    grep -qE "^$f:$line: " <<<"$out" || fail "up $f does not print FILE:LINE: ($out)"
}

printf '[Interface]\nPrivateKey = %s\nAddress = 10.77.0.2/24\nBogus = 1\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.0.0.1:51820\nAllowedIPs = 10.77.0.0/24\n' "$KEY" "$PUB" >"$D/unknown-key.conf"
expect_bad "$D/unknown-key.conf" 4 "Bogus"
printf '[Interface]\nPrivateKey = %s\nAddress = 10.77.0.300/24\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.0.0.1:51820\nAllowedIPs = 10.77.0.0/24\n' "$KEY" "$PUB" >"$D/bad-address.conf"
expect_bad "$D/bad-address.conf" 3 ""
printf '[Interface]\nPrivateKey = %s\nAddress = 10.77.0.2/24\n\n[Peer]\nPublicKey = notakey\nEndpoint = 10.0.0.1:51820\nAllowedIPs = 10.77.0.0/24\n' "$KEY" >"$D/bad-pub.conf"
expect_bad "$D/bad-pub.conf" 6 ""
printf '[Interface]\nPrivateKey = %s\nAddress = 10.77.0.2/24\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.0.0.1:99999\nAllowedIPs = 10.77.0.0/24\n' "$KEY" "$PUB" >"$D/bad-port.conf"
expect_bad "$D/bad-port.conf" 7 ""
printf '[Interface]\nPrivateKey = %s\nAddress = 10.77.0.2/24\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.0.0.1:51820\nAllowedIPs = 10.77.0.0/24\n\n[Policy]\nProbeIntervalMs = -5\n' "$KEY" "$PUB" >"$D/bad-policy.conf"
expect_bad "$D/bad-policy.conf" 11 "ProbeIntervalMs"
printf '[Interface]\nAddress = 10.77.0.2/24\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.0.0.1:51820\nAllowedIPs = 10.77.0.0/24\n' "$PUB" >"$D/no-key.conf"
expect_bad "$D/no-key.conf" 1 "PrivateKey"
echo "$KEY" >"$D/open.key"; chmod 644 "$D/open.key"
printf '[Interface]\nPrivateKeyFile = %s\nAddress = 10.77.0.2/24\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.0.0.1:51820\nAllowedIPs = 10.77.0.0/24\n' "$D/open.key" "$PUB" >"$D/open-keyfile.conf"
expect_bad "$D/open-keyfile.conf" 2 "0600"

step "key files: symlink, directory, FIFO and foreign owner are refused"
echo "$KEY" >"$D/good.key"
ln -s "$D/good.key" "$D/link.key"
mkdir "$D/dir.key"
mkfifo "$D/fifo.key"
cp "$D/good.key" "$D/uid1.key"; chown 1 "$D/uid1.key"
for k in link:"symbolic link" dir:"is a directory" fifo:"is a FIFO" uid1:"owned by uid 1"; do
    printf '[Interface]\nPrivateKeyFile = %s\nAddress = 10.77.0.2/24\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.0.0.1:51820\nAllowedIPs = 10.77.0.0/24\n' "$D/${k%%:*}.key" "$PUB" >"$D/${k%%:*}-keyfile.conf"
    expect_bad "$D/${k%%:*}-keyfile.conf" 2 "${k#*:}"
done

step "an inline key in a config others can read is refused"
printf '[Interface]\nAddress = 10.77.0.2/24\nPrivateKey = %s\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.0.0.1:51820\nAllowedIPs = 10.77.0.0/24\n' "$KEY" "$PUB" >"$D/inline.conf"
"$JVPN_BIN" check "$D/inline.conf" >/dev/null || fail "an inline key in a 0600 config must pass check"
chmod 644 "$D/inline.conf"
expect_bad "$D/inline.conf" 3 "PrivateKey is inline but $D/inline.conf is readable by others \(mode 0644\); chmod 600 $D/inline.conf or use PrivateKeyFile"

step "several problems are all reported"
printf '[Interface]\nPrivateKey = %s\nAddress = nope\nMTU = 5\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.77.0.0/24\nWhat = 1\n' "$KEY" "$PUB" >"$D/many.conf"
set +e; out="$("$JVPN_BIN" check "$D/many.conf" 2>&1)"; rc=$?; set -e
[[ $rc == 2 ]] || fail "many: exit $rc"
(( $(grep -cE "^$D/many.conf:[0-9]+: " <<<"$out") >= 3 )) || fail "many: want >= 3 diagnostics, got: $out"

step "CLI input errors"
set +e
echo "garbage" | "$JVPN_BIN" pubkey >/dev/null 2>&1; [[ $? == 2 ]] || fail "pubkey garbage must exit 2"
"$JVPN_BIN" check "$D/does-not-exist.conf" >/dev/null 2>&1; [[ $? == 2 ]] || fail "missing file must exit 2"
head -c 3000 /dev/urandom >"$D/binary.conf"; "$JVPN_BIN" check "$D/binary.conf" >/dev/null 2>&1; rc=$?
[[ $rc == 2 ]] || fail "binary config must exit 2 (got $rc)"
"$JVPN_BIN" up --wait -3 "$D/many.conf" >/dev/null 2>&1; rc=$?; [[ $rc == 2 ]] || fail "bad --wait exit $rc"
"$JVPN_BIN" status "nonexistent0" >/dev/null 2>&1; [[ $? == 1 ]] || fail "status of a non-running interface must exit 1"
set -e
pass
