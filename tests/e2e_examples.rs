//! DPDK's own example apps as guests, unmodified: built from Debian's
//! `dpdk-doc` sources with pkg-config, each with two `sock:` ports on two
//! NIC ports (net_af_packet on two veths). Frames entering one veth leave
//! the other, intact, and nothing is copied at either end.
mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const FRAMES: u32 = 1000;
const FLOWS: u32 = 32;

/// Runs example `bin` as the guest of both sockets, with its own file
/// prefix (its telemetry answers `telemetry(prefix, ...)`), and waits for
/// `ready` in its output.
fn run_guest(
    dir: &Scratch,
    bin: &Path,
    prefix: &str,
    socks: &[String; 2],
    app_args: &[&str],
    ready: &str,
) -> Proc {
    run_example(dir, bin, prefix, socks, "1", app_args, ready)
}

/// Frames both ways between the two veths, then no copies at either end.
fn check_forwarding(
    net: &Netns,
    hosts: &[String; 2],
    proxy: &Proxy,
    socks: &[String; 2],
    guest_prefix: &str,
    flag: &str,
) {
    for (from, to) in [(&hosts[0], &hosts[1]), (&hosts[1], &hosts[0])] {
        let r = net.across(from, to, &net.host_mac(), FRAMES, FLOWS, flag);
        assert_eq!(r.sent, FRAMES);
        assert_eq!(r.bad, 0, "{from} -> {to}: frames altered: {r:?}");
        assert_eq!(r.matched, FRAMES, "{from} -> {to}: not all through: {r:?}");
    }
    no_copies_either_end(guest_prefix, proxy, socks, FRAMES);
}

#[test]
fn skeleton_forwards_between_two_sock_ports() {
    let bin = example("skeleton", "basicfwd");
    let (dir, net, hosts, proxy, socks) = Proxy::two_ports("ske");
    let mut g = run_guest(&dir, &bin, "iop_ske_g", &socks, &[], "forwarding packets");
    check_forwarding(&net, &hosts, &proxy, &socks, "iop_ske_g", "");
    g.signal(libc::SIGKILL);
    g.wait_exit(Duration::from_secs(10));
    proxy.stop(&[&socks[0], &socks[1]]);
}

#[test]
fn l2fwd_forwards_between_two_sock_ports() {
    let bin = example("l2fwd", "l2fwd");
    let (dir, net, hosts, proxy, socks) = Proxy::two_ports("l2f");
    // Both ports on one lcore (-q 2), no periodic statistics (-T 0).
    let mut g = run_guest(
        &dir,
        &bin,
        "iop_l2f_g",
        &socks,
        &["-p", "0x3", "-q", "2", "-T", "0"],
        "entering main loop",
    );
    // l2fwd rewrites both MAC addresses; the rest must arrive unchanged.
    check_forwarding(
        &net,
        &hosts,
        &proxy,
        &socks,
        "iop_l2f_g",
        "--macs-rewritten",
    );
    g.signal(libc::SIGINT);
    g.wait_exit(Duration::from_secs(30));
    assert!(
        g.text().contains("Bye"),
        "l2fwd did not close its ports cleanly"
    );
    proxy.stop(&[&socks[0], &socks[1]]);
}

#[test]
fn l3fwd_routes_from_port_0_out_of_port_1() {
    let bin = example("l3fwd", "l3fwd");
    // Its LPM tables take 195 MiB of heap, more than the sockets' heap
    // areas (64 MiB each, untuned): it says so as any DPDK app does, with
    // EAL's -m (with --no-huge, anonymous memory taken only as used).
    let (dir, net, hosts, proxy, socks) = Proxy::two_ports_with("l3f", "");
    // across.py sends to 10.200.0.1: routed out of port 1.
    let v4 = dir.path("routes_v4.cfg");
    let v6 = dir.path("routes_v6.cfg");
    std::fs::write(&v4, "R10.200.0.0/16 1\nR10.100.0.0/16 0\n").unwrap();
    std::fs::write(&v6, "R2001:0200:0000:0000:0000:0000:0000:0000/64 0\n").unwrap();
    let rule4 = format!("--rule_ipv4={}", v4.display());
    let rule6 = format!("--rule_ipv6={}", v6.display());
    // Its default port configuration: RSS, and rx checksum offload, which
    // net_af_packet lacks (the guest port verifies checksums itself).
    let mut g = run_example(
        &dir,
        &bin,
        "iop_l3f_g",
        &socks,
        "256",
        &[
            "-p",
            "0x3",
            "--config=(0,0,1),(1,0,1)",
            &rule4,
            &rule6,
            "--parse-ptype",
        ],
        "entering main loop",
    );
    let r = net.across(
        &hosts[0],
        &hosts[1],
        &net.host_mac(),
        FRAMES,
        FLOWS,
        "--ip-forwarded",
    );
    assert_eq!(r.sent, FRAMES);
    assert_eq!(r.bad, 0, "frames altered beyond TTL and checksum: {r:?}");
    assert_eq!(r.matched, FRAMES, "not all routed through: {r:?}");
    let x = telemetry("iop_l3f_g", "/ethdev/xstats,1");
    assert_eq!(json_number::<u64>(&x, "tx_copies"), 0, "{x}");
    assert_eq!(
        json_number::<u64>(&x, "tx_good_packets"),
        FRAMES as u64,
        "{x}"
    );
    assert_eq!(proxy.socket_field(&socks[1], "payload_copies"), 0);
    assert!(
        g.text().contains("checksums verified in software"),
        "l3fwd's checksum offload was not served in software:\n{}",
        g.text()
    );
    g.signal(libc::SIGINT);
    g.wait_exit(Duration::from_secs(30));
    // With -m1 the tables do not fit the sockets' heap areas: l3fwd fails.
    let out = Command::new(&bin)
        .arg("-d")
        .arg(pmds())
        .args(["-l", "1", "--no-huge", "-m1", "--no-pci"])
        .args(["--file-prefix", "iop_l3f_g1"])
        .arg("-a")
        .arg(format!("sock:{}", socks[0]))
        .arg("-a")
        .arg(format!("sock:{}", socks[1]))
        .args([
            "--",
            "-p",
            "0x3",
            "--config=(0,0,1),(1,0,1)",
            &rule4,
            &rule6,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "l3fwd ran in -m1:\n{text}");
    assert!(
        text.contains("Unable to create the l3fwd LPM table"),
        "not the LPM tables that failed:\n{text}"
    );
    proxy.stop(&[&socks[0], &socks[1]]);
}
