#!/usr/bin/env bash
# Build a Debian package of jvpn: deploy/package/build-deb.sh [--binary PATH] [--out DIR] [--compress xz|gzip|zstd|none]
#
#   /usr/bin/jvpn                          release binary with the Swift runtime linked in
#                                          (--static-swift-stdlib) and OpenSSL's ChaCha20 and
#                                          Poly1305 (from libcrypto.a): needs only libc,
#                                          libstdc++, libsodium and libmnl, not the toolchain;
#                                          stripped
#   /lib/systemd/system/jvpn@.service      deploy/systemd/jvpn@.service with ExecStart=/usr/bin/jvpn
#   /usr/share/man/man1/jvpn.1.gz          from the CLI itself (ArgumentParser's generate-manual
#                                          reading `jvpn --experimental-dump-help`), offline
#   bash, zsh and fish completions         from `jvpn --generate-completion-script`
#   /etc/jvpn/                             mode 0700, empty (your NAME.conf and keys go there)
#   /usr/share/doc/jvpn/                   README, OPERATIONS, CONFIG, examples/ (+ make-keys.sh)
#
# Without --binary it runs `swift build -c release --static-swift-stdlib` (a no-op when
# deploy/test.sh has just built the same commit: it builds its release binary the same way). A
# binary that loads libswiftCore.so is refused. Depends: is computed from the binary's libraries
# (ldd + dpkg -S). Prints the path of the .deb on its last line.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"

binary="" out="$REPO/.build/deb" compress="xz"
while (($#)); do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --compress) compress="$2"; shift 2 ;;
        *) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
say() { echo "build-deb: $*" >&2; }

if [[ -z "$binary" ]]; then
    say "swift build -c release --static-swift-stdlib"
    (cd "$REPO" && swift build -c release --static-swift-stdlib >&2)
    binary="$REPO/.build/release/jvpn"
fi
[[ -x "$binary" ]] || { say "no executable at $binary"; exit 1; }
libs="$(ldd "$binary")"
if grep -qE 'libswift|libFoundation|libdispatch|libBlocksRuntime' <<<"$libs"; then
    say "$binary loads the Swift runtime from the toolchain; build it with --static-swift-stdlib"
    exit 1
fi

version="$("$binary" --version)"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d /tmp/jvpn-deb.XXXXXX)"
trap 'rm -rf "$stage"' EXIT
root="$stage/jvpn_${version}_$arch"

install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/share/man/man1" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/jvpn/examples"
install -d -m 0700 "$root/etc/jvpn"
strip --strip-unneeded -o "$root/usr/bin/jvpn" "$binary"
chmod 0755 "$root/usr/bin/jvpn"

sed -e 's|^ExecStart=/usr/local/bin/jvpn |ExecStart=/usr/bin/jvpn |' \
    -e 's|^Documentation=.*|Documentation=man:jvpn(1) file:///usr/share/doc/jvpn/OPERATIONS.md|' \
    "$REPO/deploy/systemd/jvpn@.service" >"$root/lib/systemd/system/jvpn@.service"
grep -q '^ExecStart=/usr/bin/jvpn up /etc/jvpn/%i.conf --foreground$' "$root/lib/systemd/system/jvpn@.service" ||
    { say "the unit's ExecStart line changed; update the rewrite here"; exit 1; }

"$root/usr/bin/jvpn" --generate-completion-script bash >"$root/usr/share/bash-completion/completions/jvpn"
"$root/usr/bin/jvpn" --generate-completion-script zsh >"$root/usr/share/zsh/vendor-completions/_jvpn"
"$root/usr/bin/jvpn" --generate-completion-script fish >"$root/usr/share/fish/vendor_completions.d/jvpn.fish"

# The man page: swift-argument-parser's own generator (a dependency already resolved, so no
# network), run on the binary being packaged.
say "man page (swift build --product generate-manual)"
(cd "$REPO" && swift build --product generate-manual >&2)
mkdir "$stage/man"
"$REPO/.build/debug/generate-manual" "$root/usr/bin/jvpn" --date "$(date -u +%Y-%m-%d)" \
    --authors "the jvpn authors" --output-directory "$stage/man" >&2
gzip -9 -n -c "$stage/man/jvpn.1" >"$root/usr/share/man/man1/jvpn.1.gz"

for f in README.md docs/OPERATIONS.md docs/CONFIG.md; do install -m 0644 "$REPO/$f" "$root/usr/share/doc/jvpn/"; done
install -m 0644 "$REPO"/deploy/examples/*.conf "$root/usr/share/doc/jvpn/examples/"
install -m 0755 "$REPO/deploy/examples/make-keys.sh" "$root/usr/share/doc/jvpn/examples/"
cat >"$root/usr/share/doc/jvpn/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: jvpn
Comment: built from commit $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)

Files: *
Copyright: the jvpn authors
License: none-stated
 The source tree carries no license file.
EOF

# Depends: the package of every shared library the binary loads (libc6, libstdc++6, libsodium23, libmnl0, ...).
depends="$(awk '/=> \// { print $3 }' <<<"$libs" | while read -r lib; do
    dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')"
[[ -n "$depends" ]] || { say "could not map the binary's libraries to packages"; exit 1; }
installed_kb="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"

cat >"$root/DEBIAN/control" <<EOF
Package: jvpn
Version: $version
Architecture: $arch
Maintainer: jvpn authors <jvpn@localhost>
Installed-Size: $installed_kb
Depends: $depends
Section: net
Priority: optional
Description: userspace VPN whose session survives its transports
 IP packets from a TUN device are sealed with ChaCha20-Poly1305 and carried over
 UDP on one of several uplinks; when an uplink dies, degrades or flaps, the
 session moves to another one (reason-coded, authenticated) without touching
 the tunnel. One systemd instance per tunnel: systemctl enable --now jvpn@NAME
 runs /etc/jvpn/NAME.conf.
EOF

# Maintainer scripts: tell systemd about the unit; stop running tunnels before the binary goes.
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then systemctl stop 'jvpn@*.service' || true; fi
exit 0
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
# Purge removes the event logs too; /etc/jvpn (configs and keys) is the admin's and stays.
if [ "$1" = purge ]; then rm -rf /var/log/jvpn; fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/jvpn_${version}_$arch.deb"
dpkg-deb --root-owner-group -Z"$compress" --build "$root" "$deb" >&2
say "$(dpkg-deb -f "$deb" Package Version Depends | tr '\n' ' ')"
echo "$deb"
