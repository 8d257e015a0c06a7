#!/usr/bin/env bash
# Builds (once, cached) a Debian root filesystem of another release in
# <checkout>/.roots/<suite>, with that release's packaged DPDK (dpdk-dev:
# its stock dpdk-testpmd; libdpdk-dev: public headers and libdpdk.pc) and
# what building the proxy there needs (gcc, libclang, pkg-config; the Rust
# toolchain is this machine's, bound in by scripts/build-root.sh).
#   scripts/rootfs.sh <suite>        the root, in .roots/<suite>
#   scripts/rootfs.sh <suite> sdk    also the DPDK source package of the
#                                    root's libdpdk-dev, for the driver-SDK
#                                    headers no -dev package installs, in
#                                    .roots/<suite>.sdk/{src,include,private}
# Suites: trixie (DPDK 24.11), sid (DPDK 25.11). Run as root; needs only
# Debian's archive. A half-built root is rebuilt (its stamp comes last).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="${1:?usage: rootfs.sh <suite> [sdk]}"
WANT_SDK="${2:-}"
BASE="${DPDK_ROOTS_DIR:-$ROOT/.roots}"
R="$BASE/$SUITE"
SDK="$BASE/$SUITE.sdk"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export DEBIAN_FRONTEND=noninteractive
PKGS=(dpdk dpdk-dev libdpdk-dev pkg-config ca-certificates gcc libc6-dev libclang-dev)

log() { printf '[rootfs %s] %s\n' "$SUITE" "$*"; }

case "$SUITE" in
    trixie|sid) ;;
    *) echo "rootfs.sh: suite '$SUITE' is not one the tests use (trixie, sid)" >&2; exit 2 ;;
esac

if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get install -y -q --no-install-recommends debootstrap >/dev/null
fi

# A command in the root, as root, with its own /proc and /dev.
in_root() {
    bwrap --bind "$R" / --proc /proc --dev /dev --ro-bind /etc/resolv.conf /etc/resolv.conf \
        --clearenv --setenv PATH /usr/sbin:/usr/bin:/sbin:/bin \
        --setenv DEBIAN_FRONTEND noninteractive --setenv HOME /root "$@"
}

if [ ! -f "$R/.complete" ] || [ "$(cat "$R/.complete")" != "${PKGS[*]}" ]; then
    rm -rf "$R"
    mkdir -p "$BASE"
    log "debootstrap with ${PKGS[*]} (a few minutes, once)"
    t0=$(date +%s)
    # The archive signs trixie and sid with keys bookworm's keyring has.
    inc=$(IFS=,; echo "${PKGS[*]}")
    if ! debootstrap --variant=minbase --include="$inc" "$SUITE" "$R" "$MIRROR" \
            > "$BASE/$SUITE.debootstrap.log" 2>&1; then
        tail -20 "$BASE/$SUITE.debootstrap.log" >&2
        echo "rootfs.sh: debootstrap of $SUITE failed (log: $BASE/$SUITE.debootstrap.log)" >&2
        exit 1
    fi
    printf 'deb %s %s main\ndeb-src %s %s main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" \
        > "$R/etc/apt/sources.list"
    rm -f "$R"/var/cache/apt/archives/*.deb
    log "root ready in $(( $(date +%s) - t0 )) s: $(du -sm "$R" | cut -f1) MiB, DPDK $(
        dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Version}' libdpdk-dev)"
    echo "${PKGS[*]}" > "$R/.complete"
fi
[ "$WANT_SDK" = sdk ] || exit 0

VER="$(dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Version}' libdpdk-dev)"
if [ ! -f "$SDK/.complete" ] || [ "$(cat "$SDK/.complete")" != "$VER" ]; then
    log "fetching the dpdk $VER source package"
    rm -rf "$SDK" "$R/tmp/dpdk-src"
    mkdir -p "$SDK/src" "$R/tmp/dpdk-src"
    chmod 777 "$R/tmp/dpdk-src"   # apt fetches as _apt
    in_root apt-get update -q >/dev/null
    if ! in_root sh -c "cd /tmp/dpdk-src && apt-get source -q --download-only dpdk=$VER" >&2; then
        echo "rootfs.sh: the source package dpdk $VER of $SUITE cannot be fetched from $MIRROR" \
             "(above): without it there are no driver-SDK headers for DPDK ${VER%%-*}" \
             "(see docs/building.md)" >&2
        exit 1
    fi
    tarball="$(ls "$R"/tmp/dpdk-src/dpdk_*.orig.tar.* | head -1)"
    tar -xf "$tarball" -C "$SDK/src" --strip-components=1
    rm -rf "$R/tmp/dpdk-src"
    bash "$ROOT/scripts/sdk-headers.sh" "$SDK/src" "$SDK"
    echo "$VER" > "$SDK/.complete"
    log "DPDK ${VER%%-*}: source in $SDK/src, SDK headers in $SDK/include"
fi
