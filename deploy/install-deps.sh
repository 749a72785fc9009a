#!/usr/bin/env bash
# Install what jvpn needs to build, test and benchmark on Debian/Ubuntu. Idempotent: when every
# package is already installed it does not even run `apt-get update`.
#
# Run it (`deploy/install-deps.sh`) or source it (`. deploy/install-deps.sh`): when sourced it also
# puts /opt/swift/usr/bin on the caller's PATH if `swift` is not found.

JVPN_DEPS=(
    libsodium-dev libmnl-dev pkg-config
    # OpenSSL 3's static libcrypto.a: its ChaCha20 and Poly1305 seal the transport frames (linked
    # into the binary, which then needs no libssl3).
    libssl-dev
    iproute2 iperf3 wireguard-go wireguard-tools
    # deploy/bench/peers.sh --stages follows pings through packet captures.
    tcpdump
    iputils-ping procps psmisc netcat-openbsd iptables nftables ethtool python3
    gcc libc6-dev
    # Tests/integration/timeline.sh renders the timeline SVG to PNG (about 20 s to install here).
    chromium fonts-dejavu-core
    # etcd (a three-member cluster) for the gateway-cluster tests.
    etcd-server curl
)

jvpn_deps_missing() {
    local p
    for p in "${JVPN_DEPS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}

jvpn_install_deps() {
    local missing sudo=()
    missing="$(jvpn_deps_missing | tr '\n' ' ')"
    if [[ -z "${missing// /}" ]]; then
        echo "install-deps: all ${#JVPN_DEPS[@]} packages present"
    else
        if [[ $EUID -ne 0 ]]; then
            if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
                echo "install-deps: missing: $missing; need root or sudo" >&2; return 1
            fi
        fi
        echo "install-deps: installing: $missing"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        # shellcheck disable=SC2086
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
    fi

    if ! command -v swift >/dev/null 2>&1; then
        if [[ -x /opt/swift/usr/bin/swift ]]; then
            export PATH="/opt/swift/usr/bin:$PATH"
            # Future login shells too; scripts in this repo add it themselves.
            if [[ $EUID -eq 0 && -d /etc/profile.d && ! -f /etc/profile.d/opt-swift.sh ]]; then
                echo 'case ":$PATH:" in *:/opt/swift/usr/bin:*) ;; *) PATH="/opt/swift/usr/bin:$PATH" ;; esac' \
                    >/etc/profile.d/opt-swift.sh
            fi
            echo "install-deps: swift found in /opt/swift/usr/bin (added to PATH)"
        else
            echo "install-deps: WARNING: swift not on PATH and not in /opt/swift/usr/bin" >&2
        fi
    fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    jvpn_install_deps
else
    # Sourced: leave the caller's shell options alone.
    jvpn_install_deps
fi
