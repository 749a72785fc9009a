#!/usr/bin/env bash
# The Debian package (deploy/package/build-deb.sh) installed with dpkg -i on this machine: the
# binary runs with the toolchain hidden, `jvpn check` accepts an example given fresh keys, the
# unit, man page, completions and /etc/jvpn (0700) are in place; dpkg -r removes everything but
# the admin's config in /etc/jvpn. Packages $JVPN_BIN, which deploy/test.sh builds with
# --static-swift-stdlib (no second release build). A chroot would be cleaner, but debootstrap
# needs the network and minutes; the machine is left as found (purge, own files removed).
. "$(dirname "$0")/lib.bash"
work="$(mktemp -d /tmp/jvpn-pkgtest.XXXXXX)"
etc_existed=0; [[ -d /etc/jvpn ]] && etc_existed=1
admin_conf="/etc/jvpn/pkgtest-$$.conf"
lock_fd=""
cleanup_pkg() {
    rm -f "$admin_conf"
    if dpkg-query -W -f='${Status}' jvpn 2>/dev/null | grep -q 'ok'; then dpkg --purge jvpn >/dev/null 2>&1 || true; fi
    if [[ $etc_existed == 0 && -d /etc/jvpn ]]; then rmdir /etc/jvpn 2>/dev/null || true; fi
    rm -rf "$work"
    return 0
}
trap cleanup_pkg EXIT INT TERM

# dpkg takes its own lock and fails at once when busy (another apt run, another helper's test).
dpkg_retry() {
    local i
    for i in $(seq 1 60); do
        if "$@" >"$work/dpkg.log" 2>&1; then return 0; fi
        grep -q 'lock' "$work/dpkg.log" || { cat "$work/dpkg.log" >&2; return 1; }
        sleep 1
    done
    cat "$work/dpkg.log" >&2
    return 1
}

exec {lock_fd}>/run/lock/jvpn-package-test.lock
flock -w 120 "$lock_fd" || fail "another package test holds /run/lock/jvpn-package-test.lock"
if dpkg-query -W -f='${Status}' jvpn 2>/dev/null | grep -q 'installed'; then
    trap - EXIT; rm -rf "$work"
    fail "a jvpn package is installed on this machine already; this test would replace it"
fi

step "build-deb.sh --binary $JVPN_BIN"
# gzip: xz takes ~15 s more for the same check.
deb="$(bash "$REPO/deploy/package/build-deb.sh" --binary "$JVPN_BIN" --out "$work" --compress gzip 2>"$work/build.log" | tail -1)" ||
    fail "build-deb.sh failed: $(tail -5 "$work/build.log")"
[[ -f "$deb" ]] || fail "no .deb: $(tail -5 "$work/build.log")"
echo "    $(basename "$deb"), $(stat -c %s "$deb") bytes; $(dpkg-deb -f "$deb" Depends)"
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$work/contents"

step "dpkg -i"
dpkg_retry dpkg -i "$deb" || fail "dpkg -i failed"
[[ "$(dpkg-query -W -f='${Status}' jvpn)" == "install ok installed" ]] || fail "not installed"
[[ "$(stat -c %a /etc/jvpn)" == 700 || $etc_existed == 1 ]] || fail "/etc/jvpn has mode $(stat -c %a /etc/jvpn), want 700"
for f in /usr/bin/jvpn /lib/systemd/system/jvpn@.service /usr/share/man/man1/jvpn.1.gz \
         /usr/share/bash-completion/completions/jvpn /usr/share/zsh/vendor-completions/_jvpn \
         /usr/share/fish/vendor_completions.d/jvpn.fish /usr/share/doc/jvpn/examples/gateway.conf; do
    [[ -s "$f" ]] || fail "$f missing or empty"
done
rig_output_has '^ExecStart=/usr/bin/jvpn up /etc/jvpn/%i.conf --foreground$' cat /lib/systemd/system/jvpn@.service ||
    fail "the installed unit does not start /usr/bin/jvpn"

step "jvpn --version and check with the toolchain out of sight"
rig_output_has 'libswift' ldd /usr/bin/jvpn && fail "/usr/bin/jvpn loads the Swift runtime: $(ldd /usr/bin/jvpn | grep swift)"
version="$(unshare -m sh -c 'mount -t tmpfs none /opt && exec env -i PATH=/usr/bin:/bin /usr/bin/jvpn --version')" ||
    fail "/usr/bin/jvpn --version fails without /opt (the toolchain)"
[[ "$version" == "$(dpkg-query -W -f='${Version}' jvpn)" ]] || fail "version $version != package $(dpkg-query -W -f='${Version}' jvpn)"
JVPN_BIN=/usr/bin/jvpn bash /usr/share/doc/jvpn/examples/make-keys.sh "$work/keys" >/dev/null || fail "make-keys.sh from the package"
out="$(unshare -m sh -c "mount -t tmpfs none /opt && exec /usr/bin/jvpn check '$work/keys/gateway.conf'")" || fail "jvpn check on the example: $out"
[[ "$out" == *": ok (server "* ]] || fail "unexpected check output: $out"
echo "    jvpn $version; $out"
rig_output_has 'timeline' sh -c 'zcat /usr/share/man/man1/jvpn.1.gz' || fail "the man page lacks the timeline command"
rig_output_has '^complete .* jvpn$' bash -c '. /usr/share/bash-completion/completions/jvpn && complete -p jvpn' ||
    fail "bash completion does not load"
rig_output_has 'JVPN\(1\)' sh -c 'MANWIDTH=80 man -l /usr/share/man/man1/jvpn.1.gz 2>/dev/null || true' || fail "man cannot format the page"

step "dpkg -r leaves only the admin's config"
cp "$work/keys/gateway.conf" "$admin_conf" && chmod 600 "$admin_conf"
dpkg_retry dpkg -r jvpn || fail "dpkg -r failed"
left=()
while read -r p; do
    [[ "$p" == / || -z "$p" ]] && continue
    p="${p%/}"
    [[ -e "$p" && ! -d "$p" ]] && left+=("$p")
    [[ -d "$p" && ( "$p" == /usr/share/doc/jvpn* ) ]] && left+=("$p/")
done <"$work/contents"
[[ ${#left[@]} -eq 0 ]] || fail "left after dpkg -r: ${left[*]}"
[[ -f "$admin_conf" ]] || fail "dpkg -r removed the admin's config"
[[ -x /usr/bin/jvpn ]] && fail "/usr/bin/jvpn still there"
rm -f "$admin_conf"
dpkg_retry dpkg --purge jvpn || fail "dpkg --purge failed"
[[ $etc_existed == 1 || ! -d /etc/jvpn ]] || fail "/etc/jvpn left after purge although empty"
pass "$(basename "$deb") installs, runs without the toolchain, removes cleanly"
