#!/usr/bin/env bash
# Installs what ironnet's tests need, and nothing that is already there.
# Idempotent: safe to run on every test run. Needs root (or sudo) only when
# a package is actually missing.
set -euo pipefail

# Debian packages the test suite needs: the packet-level tests run guests
# in network namespaces (iproute2), lease addresses with Debian's stock DHCP
# client (isc-dhcp-client), ping (iputils-ping) and move TCP through the
# dp with offloads (iperf3); the etcd store test starts a real etcd on
# loopback (etcd-server).
packages=(iproute2 iputils-ping isc-dhcp-client iperf3 etcd-server)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust 1.95 or newer (https://rustup.rs)" >&2
    exit 1
fi
