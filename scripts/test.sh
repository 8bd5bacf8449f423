#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every unit,
# property and integration test of the workspace (fuzz harnesses included).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo test --workspace --locked "$@"
