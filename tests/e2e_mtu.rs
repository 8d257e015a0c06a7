//! The NIC's MTU, set at the proxy (`add port ... mtu`), is the guest's:
//! it reports it, and a frame longer than it is dropped and counted as an
//! error at the guest, never reported as sent.
mod common;
use common::*;
use std::time::Duration;

#[test]
fn guest_sees_the_nic_mtu_and_counts_longer_frames_as_errors() {
    let (dir, net, sock, proxy) = Proxy::veth_port("mtu", "", " queues 1 mtu 1400", "0");
    // The proxy set the kernel interface's MTU through the PMD.
    let kernel_mtu = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", net.host)).unwrap();
    assert_eq!(kernel_mtu.trim(), "1400");
    let mut g = Guest::start_interactive_with(
        &dir,
        "g",
        &sock,
        &["--forward-mode=txonly", "--txpkts=1500"],
    );
    g.cmd("show port info 0");
    assert!(
        g.proc.text().contains("MTU: 1400"),
        "the guest port does not report the NIC's MTU:\n{}",
        g.proc.text()
    );
    // 1500-byte frames: longer than a 1400 MTU allows (1418).
    g.cmd("start");
    std::thread::sleep(Duration::from_millis(500));
    g.cmd("stop");
    g.cmd("show port xstats 0");
    let oversize = g.xstat("tx_oversize");
    assert!(oversize > 0, "no frame counted as too long");
    assert_eq!(
        g.xstat("tx_good_packets"),
        0,
        "too-long frames reported sent"
    );
    assert!(g.xstat("tx_errors") >= oversize);
    assert_eq!(proxy.socket_field(&sock, "tx_packets"), 0);
    // Frames that fit go out.
    g.cmd("set txpkts 1000");
    g.cmd("start");
    std::thread::sleep(Duration::from_millis(500));
    g.cmd("stop");
    g.cmd("show port xstats 0");
    assert!(g.xstat("tx_good_packets") > 0);
    assert_eq!(g.xstat("tx_oversize"), oversize);
    assert!(proxy.socket_field(&sock, "tx_packets") > 0);
    g.quit();
    proxy.stop(&[&sock]);
}
