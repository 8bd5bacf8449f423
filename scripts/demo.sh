#!/usr/bin/env bash
# The all-in-one demo: installs what it needs, builds the role binaries and
# runs ironnet-demo (controller, two bond servers, two hypervisors, six
# guests in network namespaces; a measured connectivity matrix). Needs root
# for namespaces and TAP devices; without root it runs the in-memory
# variant. Extra arguments go to ironnet-demo (--once: exit after the matrix).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
    ./scripts/setup.sh
fi
cargo build --release --locked -p ironnet-bins --bins
exec ./target/release/ironnet-demo "$@"
