//! Other DPDK releases than the host's 22.11: Debian 13's DPDK 24.11 and
//! Debian sid's 25.11, each in a root filesystem of that release
//! (scripts/rootfs.sh, cached in .roots/; scripts/test.sh builds the proxy
//! in each with scripts/build-root.sh).
//!
//! - The proxy built on each release, run in its root, serves a stock
//!   Debian 12 testpmd guest (DPDK 22.11, this plugin) kernel traffic
//!   through a veth: the protocol does not depend on DPDK's version.
//! - Each release's own packaged testpmd, given this 22.11 plugin, fails
//!   with the loader's reason and no crash; from a `-d` directory it does
//!   not load it at all (EAL takes only `*.so.<its ABI>`).
//!
//! The guest drivers for 24.11 and 25.11 need those releases' driver-SDK
//! headers, which only their source packages hold (docs/building.md).
mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const FRAMES: u32 = 1000;
const FLOWS: u32 = 32;

fn rootfs(suite: &str) -> PathBuf {
    let r = root().join(".roots").join(suite);
    assert!(
        r.join(".complete").exists(),
        "{} missing: run `bash scripts/build-root.sh {suite}` (scripts/test.sh does)",
        r.display()
    );
    r
}

/// `prog` run inside the root of `suite` (scripts/in-root.sh) as root,
/// with this machine's network (the veth), /tmp (the sockets), /run/dpdk
/// (telemetry) and /sys, and `binds` (host path, path in the root).
fn in_root(suite: &str, binds: &[(PathBuf, &str)], prog: &str) -> Command {
    rootfs(suite);
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/in-root.sh")).arg(suite);
    for (src, dst) in binds {
        cmd.arg("--bind").arg(src).arg(dst);
    }
    cmd.arg(prog);
    cmd
}

fn proxy_of(suite: &str) -> PathBuf {
    let p = root().join(format!("target/root-{suite}/release/dpdk-io-proxy"));
    assert!(
        p.exists(),
        "{} missing: run `bash scripts/build-root.sh {suite}`",
        p.display()
    );
    p
}

/// The proxy built against `suite`'s DPDK (`release`), in its root, on a
/// net_af_packet port: a Debian 12 testpmd guest forwards every frame back
/// intact, and both ends count them alike.
fn proxy_of_release_serves_a_22_11_guest(suite: &str, release: &str) {
    let tag = format!("rel{suite}");
    let dir = Scratch::new(&tag);
    let net = Netns::new(&tag);
    let sock = format!("/tmp/iop-{tag}/s0/sock");
    // The binary is bound into the root at a path of its own.
    let cmd = in_root(
        suite,
        &[(proxy_of(suite), "/opt/dpdk-io-proxy")],
        "/opt/dpdk-io-proxy",
    );
    let vdev = format!("net_af_packet0,iface={}", net.host);
    let proxy = Proxy::start_as(
        cmd,
        &dir,
        &format!("iop_{tag}"),
        &["--vdev", &vdev],
        &format!("add port 0 queues 1\nadd socket {sock} 0 0\n"),
    );
    let log = proxy.proc.text();
    assert!(
        log.contains(&format!("(DPDK {release}")),
        "not the proxy of DPDK {release}:\n{log}"
    );
    let g = Guest::start(&dir, "guest", &sock);
    let r = net.flows(FRAMES, FLOWS);
    assert_eq!(
        (r.sent, r.matched, r.bad),
        (FRAMES, FRAMES, 0),
        "frames not all back intact: {r:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let c = g.stop(libc::SIGINT);
    assert_eq!(c.rx, FRAMES as u64, "{c:?}");
    assert_eq!(proxy.socket_field(&sock, "rx_packets") as u64, c.rx);
    assert_eq!(proxy.socket_field(&sock, "tx_packets") as u64, c.tx);
    assert_eq!(proxy.socket_field(&sock, "payload_copies"), 0);
    let log = proxy.stop(&[&sock]);
    assert!(log.contains("connected, protocol v"), "{log}");
}

#[test]
fn the_proxy_built_on_dpdk_24_11_serves_a_22_11_guest() {
    proxy_of_release_serves_a_22_11_guest("trixie", "24.11");
}

#[test]
fn the_proxy_built_on_dpdk_25_11_serves_a_22_11_guest() {
    proxy_of_release_serves_a_22_11_guest("sid", "25.11");
}

/// The packaged testpmd of `suite`, given this build's plugin (DPDK 22.11,
/// ABI 23.0): by file, EAL refuses it with the loader's reason (the 22.11
/// libraries it needs) and exits with an error, no crash; from a
/// directory it takes only its own ABI's files, so the `sock` bus is not
/// there and the device is refused.
fn packaged_testpmd_refuses_the_22_11_plugin(suite: &str) {
    let plugin = std::fs::read_dir(pmds())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("librte_sock_shm.so."))
        .expect("a plugin in target/pmds");
    assert_eq!(
        plugin, "librte_sock_shm.so.23.0",
        "named by DPDK 22.11's ABI"
    );
    for (d, reason) in [
        (
            format!("/pmds/{plugin}"),
            "librte_ethdev.so.23: cannot open",
        ),
        ("/pmds".to_string(), "Unable to parse device 'sock:"),
    ] {
        let mut cmd = in_root(suite, &[(pmds(), "/pmds")], "dpdk-testpmd");
        cmd.args([
            "-l",
            "0,1",
            "--no-huge",
            "-m1",
            "--no-shconf",
            "-d",
            &d,
            "-a",
            "sock:/tmp/nowhere/sock",
            "--",
            "--stats-period",
            "1",
        ]);
        let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), None, "crashed:\n{text}");
        assert!(!out.status.success(), "started with -d {d}:\n{text}");
        assert!(text.contains(reason), "-d {d}: no {reason:?} in:\n{text}");
    }
}

#[test]
fn dpdk_24_11_testpmd_refuses_the_22_11_plugin_cleanly() {
    packaged_testpmd_refuses_the_22_11_plugin("trixie");
}

#[test]
fn dpdk_25_11_testpmd_refuses_the_22_11_plugin_cleanly() {
    packaged_testpmd_refuses_the_22_11_plugin("sid");
}
