#!/usr/bin/env bash
# Builds dpdk-io-proxy against another Debian release's packaged DPDK,
# inside that release's root (scripts/rootfs.sh): its gcc, libclang,
# headers and libraries, with this machine's Rust toolchain bound in.
# The binary lands in target/root-<suite>/release/ and runs in the root.
# Extra arguments go to cargo (e.g. `test -p dpdk-sys --test layout`);
# the default is `build --release -p io-proxy`.
# The guest drivers need DPDK's driver-SDK headers, which only the
# release's source package has (docs/building.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="${1:?usage: build-root.sh <suite> [cargo args]}"
shift
R="${DPDK_ROOTS_DIR:-$ROOT/.roots}/$SUITE"
bash "$ROOT/scripts/rootfs.sh" "$SUITE"
RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
TOOLCHAIN="$(cd "$ROOT" && rustup show active-toolchain | cut -d' ' -f1)"
[ $# -gt 0 ] || set -- build --release -p io-proxy
exec bwrap --bind "$R" / --proc /proc --dev /dev --ro-bind /sys /sys --tmpfs /tmp \
    --ro-bind "$RUSTUP_HOME" /opt/rustup --bind "$CARGO_HOME" /opt/cargo \
    --bind "$ROOT" /src --chdir /src \
    --clearenv --setenv HOME /root --setenv PATH /opt/cargo/bin:/usr/bin:/bin \
    --setenv RUSTUP_HOME /opt/rustup --setenv CARGO_HOME /opt/cargo \
    --setenv RUSTUP_TOOLCHAIN "$TOOLCHAIN" --setenv CARGO_TARGET_DIR "/src/target/root-$SUITE" \
    cargo --offline "$@"
