#!/usr/bin/env bash
# The main job: dpdk-io-proxy owns a NIC (net_null, or the one given in
# DEMO_VDEV), serves queue 0 on a unix socket, and a stock, unmodified
# dpdk-testpmd attaches to it with -a sock:... and forwards in macswap mode
# with no hugepages of its own (--no-huge -m1). Runs DEMO_SECONDS (10).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${DEMO_SECONDS:-10}
VDEV=${DEMO_VDEV:-net_null0}
DIR=/tmp/io-proxy-demo
SOCK=$DIR/socket_0_0/sock
rm -rf "$DIR" && mkdir -p "$DIR"
cat > "$DIR/dpdk-io-proxy.cmds" <<CMDS
add port 0 queues 1
add socket $SOCK 0 0
CMDS

echo "== starting dpdk-io-proxy on lcore 0 with $VDEV"
(cd "$DIR" && exec "$OLDPWD/target/release/dpdk-io-proxy" --no-huge -m 512 --no-pci \
    --vdev "$VDEV" --file-prefix io-proxy-demo -- 0 </dev/null >"$DIR/proxy.log" 2>&1) &
PROXY=$!
trap 'kill -INT $PROXY 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q 'dpdk-io-proxy ready' "$DIR/proxy.log" 2>/dev/null && break; sleep 0.2; done
cat "$DIR/proxy.log" | grep -v '^EAL' || true

echo "== stock dpdk-testpmd as the guest, for ${SECONDS_TO_RUN}s:"
echo "   dpdk-testpmd -d target/pmds -l 0,1 --no-huge -m1 --no-shconf -a sock:$SOCK -- --forward-mode=macswap"
# Halfway through, the proxy's view of the running guest (ring depths too).
proxy_sockets() { echo /io_proxy/sockets | dpdk-telemetry.py -f io-proxy-demo | tail -1; }
(sleep $((SECONDS_TO_RUN / 2)); echo "== telemetry while the guest runs: /io_proxy/sockets"
 proxy_sockets) &
MIDRUN=$!
set +e
timeout -s INT "$SECONDS_TO_RUN" stdbuf -oL dpdk-testpmd -d target/pmds -l 0,1 --no-huge -m1 --no-shconf \
    -a "sock:$SOCK" -- --forward-mode=macswap --stats-period 2 </dev/null 2>&1 \
    | grep -v -e '^EAL' -e '^\s*$' -e 'eth_virtio_pci_init' | tr -d '\033' | sed 's/\[2J\[1;1H//'
set -e
wait $MIDRUN || true

echo "== telemetry (stock dpdk-telemetry.py -f io-proxy-demo): /io_proxy/sockets"
proxy_sockets
kill -INT $PROXY; wait $PROXY || true
trap - EXIT
echo "== proxy log"
grep -v '^EAL' "$DIR/proxy.log" | tail -8
