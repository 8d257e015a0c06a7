#!/usr/bin/env bash
# Runs a program inside another Debian release's root (scripts/rootfs.sh)
# as this process itself: a private mount namespace gets the root's /proc,
# /dev, /sys and the binds asked for, then `exec chroot`, so the program
# keeps this pid and takes signals directly (a test's SIGTERM or SIGKILL
# reaches it), and the mounts vanish with it. Network, /tmp and /run/dpdk
# are this machine's: the program sees the host's veths, sockets and
# telemetry directory. Run as root.
#   scripts/in-root.sh <suite> [--bind SRC DST]... <program> [args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="${1:?usage: in-root.sh <suite> [--bind SRC DST]... <program> [args...]}"
shift
R="${DPDK_ROOTS_DIR:-$ROOT/.roots}/$SUITE"
[ -f "$R/.complete" ] || { echo "in-root.sh: no root $R (scripts/rootfs.sh $SUITE)" >&2; exit 1; }
if [ "${IN_ROOT_NS:-}" != 1 ]; then
    mkdir -p /run/dpdk
    IN_ROOT_NS=1 exec unshare --mount --propagation private "$0" "$SUITE" "$@"
fi
mount -t proc proc "$R/proc"
for d in dev sys tmp run/dpdk; do
    mkdir -p "$R/$d"
    mount --rbind "/$d" "$R/$d"
done
while [ "${1:-}" = --bind ]; do
    src="$2" dst="$R$3"
    if [ -d "$src" ]; then mkdir -p "$dst"; else mkdir -p "$(dirname "$dst")"; : > "$dst"; fi
    mount --bind "$src" "$dst"
    shift 3
done
exec chroot "$R" /usr/bin/env -u IN_ROOT_NS "$@"
