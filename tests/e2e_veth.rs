//! Tests 2 and 3: real kernel traffic through a veth pair into
//! net_af_packet (qpairs=2), a port with 2 queues served on 2 sockets to 2
//! stock testpmd guests.
mod common;
use common::*;
use std::time::Duration;

const FRAMES: u32 = 1000;
const FLOWS: u32 = 64;

fn setup(tag: &str) -> (Scratch, Netns, Proxy, [String; 2]) {
    let dir = Scratch::new(tag);
    let net = Netns::new(tag);
    let socks = [
        format!("/tmp/iop-{tag}/q0/sock"),
        format!("/tmp/iop-{tag}/q1/sock"),
    ];
    let vdev = format!("net_af_packet0,iface={},qpairs=2", net.host);
    let proxy = Proxy::start(
        &dir,
        &format!("iop_{tag}"),
        &["--vdev", &vdev],
        &format!(
            "add port 0 queues 2\nadd socket {} 0 0\nadd socket {} 0 1\n",
            socks[0], socks[1]
        ),
    );
    (dir, net, proxy, socks)
}

fn all_back(r: &FlowResult) {
    assert_eq!(r.sent, FRAMES);
    assert_eq!(r.bad, 0, "frames came back altered: {r:?}");
    assert_eq!(
        r.matched, FRAMES,
        "not every frame came back swapped and intact: {r:?}"
    );
}

#[test]
fn veth_two_queues_two_guests_macswap() {
    let (dir, net, proxy, socks) = setup("t2");
    // g0 at its prompt, so that its pool can be inspected after a stop.
    let mut g0 = Guest::start_interactive(&dir, "g0", &socks[0]);
    g0.cmd("start");
    let g1 = Guest::start(&dir, "g1", &socks[1]);
    let r = net.flows(FRAMES, FLOWS);
    all_back(&r);
    std::thread::sleep(Duration::from_millis(500));
    g0.cmd("stop");
    g0.cmd("port stop 0");
    g0.cmd("show port xstats 0");
    let c0 = GuestCounts {
        rx: g0.xstat("rx_good_packets"),
        tx: g0.xstat("tx_good_packets"),
    };
    // The NIC is idle now, so the proxy still held fill buffers (from the
    // fill ring and recycled ones in its mempool cache): the stop must have
    // given every one of them back.
    let (back, size) = g0.pool_fill();
    assert_eq!(back, size, "g0's mbufs not all back after port stop");
    g0.cmd("quit");
    g0.proc.wait_exit(Duration::from_secs(30));
    let c1 = g1.stop(libc::SIGINT);
    assert!(c0.rx > 0 && c1.rx > 0, "RSS did not spread: {c0:?} {c1:?}");
    assert_eq!(c0.rx + c1.rx, FRAMES as u64);
    for (s, c) in socks.iter().zip([c0, c1]) {
        assert_eq!(
            proxy.socket_field(s, "rx_packets") as u64,
            c.rx,
            "{s}: telemetry rx vs guest"
        );
        assert_eq!(
            proxy.socket_field(s, "tx_packets") as u64,
            c.tx,
            "{s}: telemetry tx vs guest"
        );
        assert_eq!(proxy.socket_field(s, "payload_copies"), 0);
    }
    proxy.stop(&[&socks[0], &socks[1]]);
}

#[test]
fn veth_guests_stopped_and_killed_then_replaced() {
    let (dir, net, proxy, socks) = setup("t3");
    let fds_idle = proxy.fd_count();
    let g0 = Guest::start(&dir, "g0", &socks[0]);
    let g1 = Guest::start(&dir, "g1", &socks[1]);
    all_back(&net.flows(FRAMES, FLOWS));
    let fds_busy = proxy.fd_count();
    assert!(
        fds_busy > fds_idle,
        "guests hold no fds? {fds_idle} -> {fds_busy}"
    );

    g0.stop(libc::SIGINT);
    g1.kill();
    let mut proxy = proxy;
    proxy.proc.wait_for("gone", 2, Duration::from_secs(15));
    for s in &socks {
        assert_eq!(proxy.socket_field(s, "connected"), 0);
    }
    assert_eq!(
        proxy.fd_count(),
        fds_idle,
        "fds leaked after the guests left"
    );

    let n0 = Guest::start(&dir, "n0", &socks[0]);
    let n1 = Guest::start(&dir, "n1", &socks[1]);
    all_back(&net.flows(FRAMES, FLOWS));
    assert_eq!(
        proxy.fd_count(),
        fds_busy,
        "fd count differs with new guests"
    );
    let c0 = n0.stop(libc::SIGINT);
    let c1 = n1.stop(libc::SIGINT);
    assert_eq!(c0.rx + c1.rx, FRAMES as u64, "{c0:?} {c1:?}");
    proxy.stop(&[&socks[0], &socks[1]]);
}
