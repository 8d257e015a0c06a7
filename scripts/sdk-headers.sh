#!/usr/bin/env bash
# Copies from a DPDK source tree ($1) the headers an out-of-tree bus,
# mempool and ethdev driver needs and no distribution's -dev package
# installs, into $2/include (the driver SDK: what meson lists as
# driver_sdk_headers, installed only with -Denable_driver_sdk=true) and
# $2/private (EAL-private headers: the sock bus grows the guest's malloc
# heap with shared memory, which no public API allows; see
# docs/architecture.md).
set -euo pipefail
SRC="${1:?usage: sdk-headers.sh <dpdk source> <sdk dir>}"
OUT="${2:?usage: sdk-headers.sh <dpdk source> <sdk dir>}"
mkdir -p "$OUT/include" "$OUT/private"
sdk_headers=$(cd "$SRC" && python3 - <<'PY'
import re, pathlib
out = []
for mb in list(pathlib.Path('.').glob('lib/**/meson.build')) + list(pathlib.Path('.').glob('drivers/bus/*/meson.build')):
    text = mb.read_text()
    for m in re.finditer(r"driver_sdk_headers\s*\+?=\s*files\(([^)]*)\)", text):
        for h in re.findall(r"'([^']+\.h)'", m.group(1)):
            out.append(str(mb.parent / h))
print("\n".join(sorted(set(out))))
PY
)
[ -n "$sdk_headers" ] || { echo "sdk-headers.sh: no driver_sdk_headers in $SRC" >&2; exit 1; }
for h in $sdk_headers; do cp "$SRC/$h" "$OUT/include/"; done
for h in lib/eal/common/malloc_heap.h lib/eal/common/malloc_elem.h \
         lib/eal/common/eal_memcfg.h lib/eal/common/eal_private.h \
         lib/eal/common/eal_internal_cfg.h lib/eal/common/eal_thread.h; do
    [ -f "$SRC/$h" ] && cp "$SRC/$h" "$OUT/private/"
done
exit 0
