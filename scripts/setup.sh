#!/usr/bin/env bash
# One-time (idempotent) machine setup for dpdk-io-proxy, run as root.
#  - Debian packages: DPDK 22.11 runtime + dev, build and test tools
#  - driver-SDK headers (bus_driver.h, dev_driver.h, ethdev_driver.h, ...)
#    from the Debian source package matching the installed libdpdk-dev
#    and the whole source tree (meson-wrap builds it with net/shm in it)
#  - hugepages, when the kernel lets us (never required)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SDK_BASE="${DPDK_SDK_DIR:-$ROOT/.sdk}"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[setup] %s\n' "$*"; }

PKGS=(dpdk dpdk-dev libdpdk-dev libclang-dev clang pkg-config meson ninja-build debootstrap
      python3-pyelftools bubblewrap iproute2 python3-scapy dpkg-dev procps
      python3-matplotlib make gcc linux-perf valgrind dpdk-doc iputils-ping
      debhelper lintian)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    log "adding deb-src entries"
    cat > /etc/apt/sources.list.d/dpdk-io-proxy-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    APT_UPDATE=1
fi

if [ "${#missing[@]}" -gt 0 ] || [ -n "${APT_UPDATE:-}" ]; then
    log "apt-get update"
    apt-get update -q >/dev/null
fi
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- driver SDK headers ----------------------------------------------------
DPDK_VER="$(dpkg-query -W -f='${Version}' libdpdk-dev)"        # e.g. 22.11.11-0+deb12u1
UPSTREAM="${DPDK_VER%%-*}"
SDK="$SDK_BASE/dpdk-$UPSTREAM"
if [ ! -f "$SDK/.complete" ] || [ "$(cat "$SDK/.complete")" != "$DPDK_VER" ] \
        || [ ! -f "$SDK/src/meson.build" ]; then
    log "fetching dpdk source $DPDK_VER for the driver-SDK headers and the meson build"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    ( cd "$work" && apt-get source -q --download-only "dpdk=$DPDK_VER" >/dev/null )
    tarball="$(ls "$work"/dpdk_*.orig.tar.* | head -1)"
    mkdir -p "$work/src"
    tar -xf "$tarball" -C "$work/src" --strip-components=1
    rm -rf "$SDK"
    bash "$ROOT/scripts/sdk-headers.sh" "$work/src" "$SDK"
    # The whole tree too: meson-wrap builds it with net/shm in it (tests).
    mv "$work/src" "$SDK/src"
    echo "$DPDK_VER" > "$SDK/.complete"
    rm -rf "$work"; trap - EXIT
    log "SDK headers in $SDK/include ($(ls "$SDK/include" | wc -l) files)"
fi

# --- Open vSwitch with DPDK (a guest in the tests) -------------------------
# Debian's packages unpacked into the checkout, not installed: installing
# them would start system-wide ovsdb-server and ovs-vswitchd services. The
# tests run these binaries with their own run directory.
OVS_PKGS=(openvswitch-common openvswitch-switch openvswitch-switch-dpdk)
OVS_VER="$(apt-cache policy openvswitch-switch-dpdk | awk '/Candidate:/ {print $2}')"
OVS="$SDK_BASE/ovs"
if [ -n "$OVS_VER" ] && [ "$OVS_VER" != "(none)" ] \
        && { [ ! -f "$OVS/.complete" ] || [ "$(cat "$OVS/.complete")" != "$OVS_VER" ]; }; then
    log "unpacking Open vSwitch $OVS_VER (DPDK build) into $OVS"
    # The shared libraries its binaries link (small, no services).
    ovs_libs=(libbpf1 libcap-ng0 libnuma1 libssl3 libunbound8 libxdp1)
    ovs_missing=()
    for p in "${ovs_libs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || ovs_missing+=("$p")
    done
    [ "${#ovs_missing[@]}" -eq 0 ] || apt-get install -y -q --no-install-recommends "${ovs_missing[@]}" >/dev/null
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    chmod 755 "$work"   # apt fetches as _apt
    ( cd "$work" && apt-get download -q "${OVS_PKGS[@]/%/=$OVS_VER}" >/dev/null )
    rm -rf "$OVS"; mkdir -p "$OVS"
    for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$OVS"; done
    echo "$OVS_VER" > "$OVS/.complete"
    rm -rf "$work"; trap - EXIT
fi

# --- unprivileged user namespaces (bwrap sandbox for guests, tests) -------
if [ -e /proc/sys/kernel/unprivileged_userns_clone ]; then
    sysctl -qw kernel.unprivileged_userns_clone=1 || true
fi

# --- hugepages (optional) ----------------------------------------------------
want=${HUGEPAGES_2M:-512}
hp=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ -w "$hp" ]; then
    cur=$(cat "$hp")
    if [ "$cur" -lt "$want" ]; then
        echo "$want" > "$hp" 2>/dev/null || true
    fi
    log "2 MiB hugepages: $(cat "$hp") reserved (wanted $want)"
    if ! mountpoint -q /dev/hugepages 2>/dev/null; then
        mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
    fi
else
    log "hugepages not configurable here; carrying on with plain pages"
fi
log "done"

# --- fuzzing (cargo-fuzz on the nightly toolchain) ---------------------------
# make test runs a short smoke of each fuzz target (fuzz/); cargo-fuzz is
# built from crates.io once and cached in ~/.cargo/bin.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    if cargo +nightly --version >/dev/null 2>&1; then
        log "installing cargo-fuzz"
        cargo install cargo-fuzz --locked --quiet
    else
        log "no nightly toolchain: the fuzz smoke in make test will fail (rustup toolchain install nightly)"
    fi
fi
