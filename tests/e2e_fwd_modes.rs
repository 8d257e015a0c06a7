//! Every testpmd forward mode that makes sense on one port, on a sock
//! port of a net_af_packet NIC on a veth into a netns: traffic counted at
//! both ends, nothing copied, and icmpecho answering a real ping.
mod common;
use common::*;
use std::time::Duration;

/// Runs testpmd in `mode` (with `extra` options) for a while, with the
/// kernel sending into the veth, and returns (rx, tx, tx_copies).
fn run_mode(dir: &Scratch, net: &Netns, sock: &str, mode: &str, extra: &[&str]) -> (u64, u64, u64) {
    let mode_arg = format!("--forward-mode={mode}");
    let args: Vec<&str> = [mode_arg.as_str()].iter().chain(extra).copied().collect();
    let mut g = Guest::start_interactive_with(dir, mode, sock, &args);
    g.cmd("start");
    // Traffic from the namespace: UDP flows of mixed sizes (replies are
    // counted at the guest; most modes send none flows.py would match).
    let r = net.flows_within(300, 8, 2);
    assert_eq!(r.sent, 300);
    std::thread::sleep(Duration::from_millis(300));
    g.cmd("stop");
    g.cmd("show port xstats 0");
    let counts = (
        g.xstat("rx_good_packets"),
        g.xstat("tx_good_packets"),
        g.xstat("tx_copies"),
    );
    g.quit();
    counts
}

#[test]
fn testpmd_forward_modes_on_one_port() {
    let (dir, net, sock, proxy) = Proxy::veth_port("fm", "", " queues 1", "0");
    // Modes that send back what they receive: everything comes back.
    for mode in ["io", "mac", "macswap", "5tswap"] {
        let (rx, tx, copies) = run_mode(&dir, &net, &sock, mode, &[]);
        assert!(rx >= 300, "{mode}: received {rx}");
        assert_eq!(tx, rx, "{mode}: not everything sent back");
        assert_eq!(copies, 0, "{mode}: copies");
    }
    // csum: software rx checksum verdicts (af_packet has none) and tx.
    let (rx, tx, copies) = run_mode(&dir, &net, &sock, "csum", &["--enable-rx-cksum"]);
    assert!(
        rx >= 300 && tx == rx && copies == 0,
        "csum: {rx} {tx} {copies}"
    );
    // rxonly receives, sends nothing.
    let (rx, tx, _) = run_mode(&dir, &net, &sock, "rxonly", &[]);
    assert!(rx >= 300 && tx == 0, "rxonly: {rx} {tx}");
    // Generators: txonly (also two segments per packet) and flowgen send.
    for (mode, extra) in [
        ("txonly", &[][..]),
        ("txonly", &["--txpkts=64,64"][..]),
        ("flowgen", &[][..]),
    ] {
        let (_, tx, copies) = run_mode(&dir, &net, &sock, mode, extra);
        assert!(tx > 1000, "{mode} {extra:?}: sent {tx}");
        assert_eq!(copies, 0, "{mode} {extra:?}: copies");
    }
    assert_eq!(proxy.socket_field(&sock, "payload_copies"), 0);
    assert_eq!(proxy.socket_field(&sock, "bad_descriptors"), 0);

    // icmpecho answers a real ping from the namespace (its address is the
    // guest's: the reply comes from testpmd, through the proxy).
    let mut g = Guest::start_interactive_with(&dir, "icmp", &sock, &["--forward-mode=icmpecho"]);
    g.cmd("start");
    let mac = net.host_mac();
    net.run(&["ip", "addr", "add", "10.211.0.1/24", "dev", &net.peer]);
    net.run(&[
        "ip",
        "neigh",
        "replace",
        "10.211.0.2",
        "lladdr",
        &mac,
        "dev",
        &net.peer,
        "nud",
        "permanent",
    ]);
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.ns,
            "ping",
            "-c",
            "3",
            "-W",
            "2",
            "10.211.0.2",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "no reply to ping:\n{text}");
    assert!(text.contains("3 received"), "{text}");
    g.cmd("stop");
    g.quit();
    proxy.stop(&[&sock]);
}
