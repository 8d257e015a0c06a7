#!/usr/bin/env bash
# Prints the directory EAL loads plugins from by itself (RTE_EAL_PMD_PATH in
# rte_build_config.h of the DPDK pkg-config finds): a plugin installed there
# needs no -d ("/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0" on Debian 12).
set -euo pipefail
for dir in $(pkg-config --cflags-only-I libdpdk | tr ' ' '\n' | sed -n 's/^-I//p'); do
    f="$dir/rte_build_config.h"
    if [ -f "$f" ]; then
        path=$(sed -n 's/^#define RTE_EAL_PMD_PATH "\(.*\)"$/\1/p' "$f")
        [ -n "$path" ] || { echo "pmd-path.sh: no RTE_EAL_PMD_PATH in $f (DPDK built without a plugin directory)" >&2; exit 1; }
        echo "$path"
        exit 0
    fi
done
echo "pmd-path.sh: rte_build_config.h not found (pkg-config libdpdk)" >&2
exit 1
