#!/usr/bin/env bash
# The main job: dpdk-io-proxy owns a NIC (net_null, or the one given in
# DEMO_VDEV), serves queue 0 on a unix socket, and a stock, unmodified
# dpdk-testpmd attaches to it with -a sock:... and forwards in macswap mode
# with no hugepages of its own (--no-huge -m1). Runs DEMO_SECONDS (10).
#
# Exits non-zero, saying why, unless the proxy started, the guest ran to
# the end and packets went both ways (the guest received and sent, and the
# proxy counted both). DEMO_GUEST_SOCKET makes the guest attach elsewhere
# (a test uses it to see the demo fail).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SECONDS_TO_RUN=${DEMO_SECONDS:-10}
VDEV=${DEMO_VDEV:-net_null0}
DIR=/tmp/io-proxy-demo
SOCK=$DIR/socket_0_0/sock
GUEST_SOCK=${DEMO_GUEST_SOCKET:-$SOCK}
PROXY_BIN=$ROOT/target/release/dpdk-io-proxy
PLUGINS=$ROOT/target/pmds

fail() { echo "== demo FAILED: $*" >&2; exit 1; }
[ -x "$PROXY_BIN" ] && [ -d "$PLUGINS" ] || fail "not built: run 'make demo' (it builds first)"

# EAL loads no plugin from under a world-writable directory ("directory
# path /tmp is world-writable and insecure"). A checkout there (a clone in
# /tmp) gets its plugin staged in a private directory under /run; an
# installed plugin (make install) needs no -d at all.
world_writable_above() {
    local d=$1
    while :; do
        if [ -n "$(find "$d" -maxdepth 0 -perm -o+w 2>/dev/null)" ]; then echo "$d"; return; fi
        [ "$d" = / ] && return
        d=$(dirname "$d")
    done
}
STAGED=
cleanup() {
    [ -n "${PROXY:-}" ] && kill -INT "$PROXY" 2>/dev/null || true
    [ -n "$STAGED" ] && rm -rf "$STAGED" || true
}
trap cleanup EXIT
if bad=$(world_writable_above "$PLUGINS") && [ -n "$bad" ]; then
    STAGED=$(mktemp -d /run/dpdk-io-proxy-demo.XXXXXX)
    cp "$PLUGINS"/librte_sock_shm.so.* "$STAGED/"
    echo "== note: $PLUGINS is under $bad, which is world-writable: EAL refuses plugins there,"
    echo "   so the demo loads a copy from $STAGED ('make install' puts the plugin where EAL"
    echo "   looks by itself, then apps need no -d)"
    PLUGINS=$STAGED
fi

rm -rf "$DIR" && mkdir -p "$DIR"
cat > "$DIR/dpdk-io-proxy.cmds" <<CMDS
add port 0 queues 1
add socket $SOCK 0 0
CMDS

echo "== starting dpdk-io-proxy on lcore 0 with $VDEV"
(cd "$DIR" && exec "$PROXY_BIN" --no-huge -m 512 --no-pci \
    --vdev "$VDEV" --file-prefix io-proxy-demo -- 0 </dev/null >"$DIR/proxy.log" 2>&1) &
PROXY=$!
for _ in $(seq 100); do
    grep -q 'dpdk-io-proxy ready' "$DIR/proxy.log" 2>/dev/null && break
    kill -0 "$PROXY" 2>/dev/null || break
    sleep 0.2
done
grep -v '^EAL' "$DIR/proxy.log" || true
grep -q 'dpdk-io-proxy ready' "$DIR/proxy.log" || fail "the proxy did not start (its log is above)"

echo "== stock dpdk-testpmd as the guest, for ${SECONDS_TO_RUN}s:"
echo "   dpdk-testpmd -d $PLUGINS -l 0,1 --no-huge -m1 --no-shconf -a sock:$GUEST_SOCK -- --forward-mode=macswap"
# Halfway through, the proxy's view of the running guest (ring depths too).
proxy_sockets() { echo /io_proxy/sockets | dpdk-telemetry.py -f io-proxy-demo | tail -1; }
(sleep $((SECONDS_TO_RUN / 2)); echo "== telemetry while the guest runs: /io_proxy/sockets"
 proxy_sockets) &
MIDRUN=$!
set +e
timeout --preserve-status -s INT "$SECONDS_TO_RUN" stdbuf -oL dpdk-testpmd -d "$PLUGINS" -l 0,1 \
    --no-huge -m1 --no-shconf -a "sock:$GUEST_SOCK" -- --forward-mode=macswap --stats-period 2 \
    </dev/null >"$DIR/guest.log" 2>&1 &
GUEST=$!
tail -n +1 -f --pid=$GUEST "$DIR/guest.log" | grep --line-buffered -v -e '^EAL' -e '^\s*$' \
    -e 'eth_virtio_pci_init' | tr -d '\033' | sed -u 's/\[2J\[1;1H//'
wait $GUEST
guest_status=$?
set -e
wait $MIDRUN || true

echo "== telemetry (stock dpdk-telemetry.py -f io-proxy-demo): /io_proxy/sockets"
sockets=$(proxy_sockets || true)
echo "$sockets"
kill -INT $PROXY; wait $PROXY || true
PROXY=
echo "== proxy log"
grep -v '^EAL' "$DIR/proxy.log" | tail -8

# Did it do its job? The guest's totals at exit, the proxy's counters.
# (A count not found is empty, not an error.)
total() { { grep -A3 'Accumulated forward statistics' "$DIR/guest.log" | grep -o "$1-packets: *[0-9]*" | grep -o '[0-9]*$' | head -1; } || true; }
counter() { { echo "$sockets" | grep -o "\"$1\": *[0-9]*" | grep -o '[0-9]*$' | head -1; } || true; }
rx=$(total RX); tx=$(total TX)
proxy_rx=$(counter rx_packets); proxy_tx=$(counter tx_packets)
[ "$guest_status" -eq 0 ] || fail "the guest exited with status $guest_status ($DIR/guest.log):
$(grep -e 'SOCK_BUS' -e 'NET_SHM' -e 'MEMPOOL' -e 'Cause' -e 'Error' "$DIR/guest.log" | tail -6)"
[ "${rx:-0}" -gt 0 ] && [ "${tx:-0}" -gt 0 ] \
    || fail "the guest did not move packets both ways (received ${rx:-none}, sent ${tx:-none})"
[ "${proxy_rx:-0}" -gt 0 ] && [ "${proxy_tx:-0}" -gt 0 ] \
    || fail "the proxy did not count packets both ways (to the guest ${proxy_rx:-none}, from it ${proxy_tx:-none})"
echo "== demo OK: the guest received $rx and sent $tx packets through the proxy"
