//! Jumbo frames end to end: a veth with MTU 9000, the proxy's NIC port on
//! it at MTU 9000 (net_pcap: in DPDK 22.11 net_af_packet and net_tap refuse
//! an MTU above 1500, their `max_rx_pktlen` being 1518 and 1522 bytes), and
//! frames of 7000..8000 bytes through testpmd both ways, intact: as chains
//! of the default 2 KiB mbufs with `--enable-scatter`, and in one mbuf with
//! `--mbuf-size=9216`. An app that takes neither is told why it cannot
//! start.
mod common;
use common::*;
use std::time::Duration;

const FRAMES: u32 = 300;

#[test]
fn jumbo_frames_as_chains_and_in_one_buffer() {
    let tag = "jb";
    let dir = Scratch::new(tag);
    let net = Netns::new(tag);
    net.set_mtu(9000);
    let sock = format!("/tmp/iop-{tag}/s0/sock");
    let vdev = format!("net_pcap0,iface={}", net.host);
    let proxy = Proxy::start(
        &dir,
        &format!("iop_{tag}"),
        &["--vdev", &vdev],
        &format!("add port 0 queues 1 mtu 9000\nadd socket {sock} 0 0\n"),
    );
    assert!(
        proxy.proc.text().contains("MTU 9000"),
        "{}",
        proxy.proc.text()
    );

    // Default mbufs without scatter cannot take 9018-byte frames.
    Guest::refused(&sock, &["--max-pkt-len=9000"], "enable rx scatter");

    // 2048 rx descriptors, as for a NIC: a burst of jumbo frames takes four
    // or five 2 KiB buffers each, and the frames come faster than a busy
    // two-core host turns buffers around (with the default 320 posted, up
    // to 66 of 300 frames found no buffer: rx_nombuf at the NIC).
    for (name, args) in [
        (
            "chains",
            &["--enable-scatter", "--max-pkt-len=9000", "--rxd=2048"][..],
        ),
        // testpmd's default pool, 155456 mbufs of 9216 bytes, needs 1.4 GiB:
        // the socket's buffer area grows from 512 MiB to hold it.
        (
            "single",
            &["--mbuf-size=9216", "--max-pkt-len=9000", "--rxd=2048"][..],
        ),
    ] {
        let mut g = Guest::start_interactive_with(&dir, name, &sock, args);
        g.cmd("start");
        let r = net.flows_sized(FRAMES, 8, 7000, 8000);
        assert_eq!(r.bad, 0, "{name}: frames came back altered: {r:?}");
        assert_eq!(
            r.matched,
            FRAMES,
            "{name}: not every frame came back: {r:?}\n{}",
            proxy.counters()
        );
        std::thread::sleep(Duration::from_millis(300));
        g.cmd("stop");
        g.cmd("show port xstats 0");
        assert_eq!(g.xstat("tx_copies"), 0, "{name}: copied on tx");
        assert_eq!(g.xstat("rx_chain_drops"), 0, "{name}");
        assert_eq!(g.xstat("rx_errors"), 0, "{name}");
        assert!(g.xstat("rx_good_bytes") >= 7000 * FRAMES as u64, "{name}");
        g.stop_ports_all_back("0");
        g.quit();
    }
    assert_eq!(proxy.socket_field(&sock, "payload_copies"), 0);
    assert_eq!(proxy.socket_field(&sock, "bad_descriptors"), 0);
    proxy.stop(&[&sock]);
}
