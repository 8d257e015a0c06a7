#!/usr/bin/env bash
# The main job. For now (foundation): the EAL smoke run through dpdk-sys.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p dpdk-sys --test eal_smoke -- --nocapture
