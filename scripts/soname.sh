#!/usr/bin/env bash
# Prints the SONAME of a shared object: the plugin's says which DPDK ABI it
# is for (librte_sock_shm.so.23.0), and it is installed under that name.
set -euo pipefail
name=$(LC_ALL=C readelf -d "${1:?usage: soname.sh <file.so>}" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ -n "$name" ] || { echo "soname.sh: $1 has no SONAME" >&2; exit 1; }
echo "$name"
