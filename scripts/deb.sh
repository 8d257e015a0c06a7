#!/usr/bin/env bash
# Builds the Debian package of this tree (dpkg-buildpackage over debian/,
# binary only, with this machine's cargo) into target/deb/, and runs
# lintian on it: exits non-zero if the build fails or lintian reports an
# error. Run after `make build` (the package build reuses target/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/deb"
rm -rf "$OUT" && mkdir -p "$OUT"
# -d: cargo comes from rustup, not from a Debian package. dpkg-buildpackage
# writes the package, .buildinfo and .changes next to the tree (..): moved
# into target/deb right after.
dpkg-buildpackage -b -us -uc -d >"$OUT/build.log" 2>&1 || {
    tail -30 "$OUT/build.log" >&2
    echo "deb.sh: dpkg-buildpackage failed (log: $OUT/build.log)" >&2
    exit 1
}
for f in ../dpdk-io-proxy_*_amd64.deb ../dpdk-io-proxy_*_amd64.changes ../dpdk-io-proxy_*_amd64.buildinfo; do
    [ -e "$f" ] && mv "$f" "$OUT/"
done
deb=$(ls "$OUT"/dpdk-io-proxy_*_amd64.deb)
echo "package: $deb"
lintian --fail-on error "$deb" | tee "$OUT/lintian.log"
echo "lintian: $(grep -c '^E:' "$OUT/lintian.log" || true) errors, $(grep -c '^W:' "$OUT/lintian.log" || true) warnings"
