#!/bin/sh
# Run by meson (meson.build next to this file): builds the Rust drivers
# against the DPDK tree being built, as a static library, and links it
# into one relocatable object (whole archive: the drivers register from an
# ELF constructor that nothing references).
# Usage: cargo-build.sh CARGO DPDK_SRC DPDK_BUILD OUTPUT.o
set -eu
cargo=$1 src=$2 build=$3 out=$4
# This file is a symlink into the repository: its crates are four levels up.
here=$(dirname "$(readlink -f "$0")")
workspace=$(cd "$here/../../../.." && pwd)
target="$(dirname "$out")/cargo-target"

# Headers, build config and pkg-config data of this tree, not the system's.
PKG_CONFIG_PATH="$build/meson-uninstalled" \
RTE_SDK_SRC="$src" \
CARGO_TARGET_DIR="$target" \
    "$cargo" rustc --manifest-path "$workspace/Cargo.toml" -p dpdk-shm-plugin \
    --release --lib --crate-type staticlib --quiet

cp "$target/release/librte_sock_shm.a" "$out"
