#!/usr/bin/env bash
# Runs Debian's stock dpdk-testpmd as an unprivileged guest of the proxy,
# isolated as a container would be (packaging/Containerfile and its
# `podman run` line): another uid (65534, or GUEST_UID), its own user, pid,
# ipc, uts, cgroup and network namespaces, no hugepages, and of this
# machine only /usr and the socket's directory (at /run/io) - with
# bubblewrap, which works where docker and podman do not. Run as root.
#   scripts/guest-sandbox.sh <socket directory> [testpmd application options]
# e.g. scripts/guest-sandbox.sh /run/dpdk-io-proxy/guest0 --forward-mode=macswap
# The socket must let that uid connect (add socket ... owner 65534).
# The plugin: the installed one (make install) if there is one, else this
# checkout's, copied where that uid can read it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOCK_DIR="${1:?usage: guest-sandbox.sh <socket directory> [testpmd options]}"
shift
GUEST_UID="${GUEST_UID:-65534}"
[ -d "$SOCK_DIR" ] || { echo "guest-sandbox.sh: no directory $SOCK_DIR" >&2; exit 1; }

plugin=()
installed=$(bash "$ROOT/scripts/pmd-path.sh")
if ! ls "$installed"/librte_sock_shm.so.* >/dev/null 2>&1; then
    # Root-owned, not world-writable (EAL checks), readable by the guest.
    stage=/run/dpdk-io-proxy-guest/pmds
    install -d -m 0755 "$stage"
    for f in "$ROOT"/target/pmds/librte_sock_shm.so.*; do
        [ -e "$f" ] || { echo "guest-sandbox.sh: no plugin in $ROOT/target/pmds (make build)" >&2; exit 1; }
        install -m 0644 "$f" "$stage/.$(basename "$f").$$"
        mv -f "$stage/.$(basename "$f").$$" "$stage/$(basename "$f")"
    done
    plugin=(--ro-bind "$stage" /pmds)
fi
exec setpriv --reuid="$GUEST_UID" --regid="$GUEST_UID" --clear-groups -- \
    bwrap --unshare-all --die-with-parent \
    --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin \
    --ro-bind /sys /sys --proc /proc --dev /dev --tmpfs /tmp \
    "${plugin[@]}" --bind "$SOCK_DIR" /run/io -- \
    /usr/bin/stdbuf -oL -eL /usr/bin/dpdk-testpmd ${plugin:+-d /pmds} \
    -l 0,1 --no-huge -m1 --no-shconf -a sock:/run/io/sock -- --no-mlockall "$@"
