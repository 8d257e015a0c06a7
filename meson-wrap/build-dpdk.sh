#!/bin/sh
# Builds a DPDK 22.11 source tree with net/shm in it, the short way: only
# the drivers a demo needs (bus/vdev, net/null, net/shm, mempool/ring),
# static libraries, and dpdk-testpmd linked with them, so that
#   BUILD_DIR/app/dpdk-testpmd --no-huge -m1 -a sock:/path/to/sock
# attaches to dpdk-io-proxy with no plugin (-d). Incremental on re-runs.
# For another driver set or options: add-to-dpdk.sh, then meson as usual.
# Usage: meson-wrap/build-dpdk.sh DPDK_SRC BUILD_DIR
set -eu
src=${1:?usage: $0 DPDK_SRC BUILD_DIR} build=${2:?usage: $0 DPDK_SRC BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
"$here/add-to-dpdk.sh" "$src"
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$src" --default-library=static \
        -Denable_drivers=bus/vdev,net/null,net/shm,mempool/ring \
        -Denable_apps=test-pmd -Dtests=false
fi
ninja -C "$build"
