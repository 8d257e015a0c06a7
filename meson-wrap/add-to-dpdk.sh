#!/bin/sh
# Adds net/shm (the sock bus, the shared_mem mempool and the net_shm PMD)
# to a DPDK 22.11 source tree, as drivers/net/shm: a symlink back to this
# repository plus one line in drivers/net/meson.build. Idempotent.
# Then build DPDK as usual, e.g.
#   meson setup build -Denable_drivers=bus/vdev,net/null,net/shm && ninja -C build
# Usage: meson-wrap/add-to-dpdk.sh DPDK_SRC
set -eu
src=${1:?usage: $0 DPDK_SRC}
here=$(cd "$(dirname "$0")" && pwd)
list="$src/drivers/net/meson.build"
[ -f "$list" ] || { echo "$src: not a DPDK source tree (no drivers/net/meson.build)" >&2; exit 1; }
ln -sfn "$here/drivers/net/shm" "$src/drivers/net/shm"
if ! grep -q "^ *'shm'," "$list"; then
    # Keep the list sorted: before 'softnic'.
    sed -i "s/^\( *\)'softnic',/\1'shm',\n\1'softnic',/" "$list"
    grep -q "^ *'shm'," "$list" || { echo "$list: cannot add 'shm' to the driver list" >&2; exit 1; }
fi
echo "net/shm added to $src"
