//! Offloads that pass through (protocol v7): tx checksums and VLAN
//! insertion the proxy's NIC has are offered to the guest and applied by
//! that NIC, asked per packet with tx metadata; VLAN stripping is done by
//! the guest port; the NIC's RSS redirection table is shown to the guest.
//! Kernel traffic, stock testpmd, frames checked where the kernel gets them.
mod common;
use common::*;

fn offloads(iface: &str, ns: Option<&str>, dst: &str, count: u32, mode: &[&str]) -> (u32, u32) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns, "/usr/bin/python3"]);
            c
        }
        None => std::process::Command::new("/usr/bin/python3"),
    };
    cmd.arg(root().join("tests/tools/offloads.py"))
        .args([iface, dst, &count.to_string()])
        .args(mode);
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "offloads.py failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("offloads.py: {text}");
    (json_number(&text, "received"), json_number(&text, "good"))
}

/// net_tap computes checksums for packets that ask: frames sent with wrong
/// IPv4 and UDP checksums come back from testpmd's csum engine (hardware
/// checksums on) with both right, and nothing was copied.
#[test]
fn tx_checksums_are_applied_by_the_proxys_nic() {
    let iface = "iopcsumtap";
    let vdev = format!("net_tap0,iface={iface}");
    let (dir, sock, proxy) = Proxy::one_queue("txcsum", &vdev, "");
    let mut g = Guest::start_interactive(&dir, "guest", &sock);
    g.cmd("show port 0 tx_offload capabilities");
    let caps = g.proc.text();
    for o in ["IPV4_CKSUM", "UDP_CKSUM", "TCP_CKSUM"] {
        assert!(caps.contains(o), "no {o} offered:\n{caps}");
    }
    g.cmd("port stop 0");
    g.cmd("csum set ip hw 0");
    g.cmd("csum set udp hw 0");
    g.cmd("csum set tcp hw 0");
    g.cmd("port start 0");
    g.cmd("set fwd csum");
    g.cmd("start");
    sh(&["ip", "link", "set", "dev", iface, "up"]);
    let (received, good) = offloads(iface, None, "02:00:00:00:00:01", 200, &["cksum"]);
    g.cmd("stop");
    g.cmd("show port xstats 0");
    assert!(received >= 190, "{received} of 200 came back");
    assert_eq!(good, received, "frames with wrong checksums");
    assert!(g.xstat("tx_offloaded") >= received as u64);
    assert_eq!(g.xstat("tx_copies"), 0);
    assert_eq!(g.xstat("tx_rejected"), 0);
    assert_eq!(proxy.socket_field(&sock, "payload_copies"), 0);
    assert_eq!(proxy.socket_field(&sock, "bad_descriptors"), 0);
    assert_eq!(proxy.socket_field(&sock, "tx_offload_errors"), 0);
    g.quit();
    proxy.stop(&[&sock]);
}

/// Without the offload turned on at the guest, the same frames come back
/// as they went: wrong. (The check above can fail.)
#[test]
fn without_the_offload_checksums_stay_as_sent() {
    let iface = "iopnocsumtap";
    let vdev = format!("net_tap0,iface={iface}");
    let (dir, sock, proxy) = Proxy::one_queue("notxcsum", &vdev, "");
    let mut g = Guest::start_interactive(&dir, "guest", &sock);
    g.cmd("set fwd io");
    g.cmd("start");
    sh(&["ip", "link", "set", "dev", iface, "up"]);
    let (received, good) = offloads(iface, None, "02:00:00:00:00:01", 50, &["cksum"]);
    g.cmd("stop");
    assert!(received >= 45, "{received} of 50 came back");
    assert_eq!(good, 0, "checksums fixed without an offload");
    g.quit();
    proxy.stop(&[&sock]);
}

/// net_af_packet inserts VLAN tags: frames tagged 100 from the namespace
/// are stripped by the guest port (the app enabled it), and testpmd's mac
/// engine sends them back tagged 200 by the NIC: exactly one tag, 200, arrives.
#[test]
fn vlan_strip_and_insert() {
    let (dir, net, sock, proxy) = Proxy::veth_port("vlan", "", " queues 1", "0");
    let mut g = Guest::start_interactive_with(&dir, "guest", &sock, &["--enable-hw-vlan-strip"]);
    g.cmd("show port 0 tx_offload capabilities");
    assert!(g.proc.text().contains("VLAN_INSERT"), "{}", g.proc.text());
    g.cmd("port stop 0");
    g.cmd("tx_vlan set 0 200");
    g.cmd("port start 0");
    // io forwards mbufs untouched; mac sets the engines' tx flags (VLAN).
    g.cmd("set fwd mac");
    g.cmd("set verbose 1");
    g.cmd("start");
    let mac = net.host_mac();
    let (received, good) = offloads(&net.peer, Some(&net.ns), &mac, 100, &["vlan", "100", "200"]);
    g.cmd("stop");
    g.cmd("set verbose 0");
    g.cmd("show port xstats 0");
    let text = g.proc.text();
    assert!(
        text.contains("VLAN tci=0x64"),
        "no stripped tag 100 in:\n{text}"
    );
    assert!(received >= 95, "{received} of 100 came back");
    assert_eq!(good, received, "frames without exactly the tag 200");
    assert!(g.xstat("tx_offloaded") >= received as u64);
    assert_eq!(g.xstat("tx_copies"), 0);
    assert_eq!(proxy.socket_field(&sock, "payload_copies"), 0);
    g.quit();
    proxy.stop(&[&sock]);
}

/// The RSS redirection table of a 4-queue NIC port, as the guest of a
/// socket serving all four sees it: the NIC's own (net_null spreads its
/// table over the queues), and an update asking for the same is accepted
/// while one asking for another is refused with the reason.
#[test]
fn reta_query_shows_the_nics_table() {
    let (dir, sock, proxy) = {
        let dir = Scratch::new("reta");
        let sock = "/tmp/iop-reta/s0/sock".to_string();
        let proxy = Proxy::start(
            &dir,
            "iop_reta",
            &["--vdev", "net_null0"],
            &format!("add port 0 queues 4\nadd socket {sock} 0 0-3\n"),
        );
        (dir, sock, proxy)
    };
    let mut g = Guest::start_interactive_with(&dir, "guest", &sock, &["--rxq=4", "--txq=4"]);
    g.cmd("show port info 0");
    let info = g.proc.text();
    let size: u16 = number_after(&info, "Redirection table size: ");
    assert!(size >= 64, "{info}");
    let masks = vec!["0xffffffffffffffff"; size as usize / 64].join(",");
    g.cmd(&format!("show port 0 rss reta {size} ({masks})"));
    let text = g.proc.text();
    let entries: Vec<(u32, u32)> = text
        .lines()
        .filter(|l| l.starts_with("RSS RETA configuration: hash index="))
        .map(|l| (number_after(l, "hash index="), number_after(l, "queue=")))
        .collect();
    assert_eq!(entries.len(), size as usize, "{text}");
    assert!(entries.iter().all(|&(_, q)| q < 4), "{text}");
    let distinct: std::collections::BTreeSet<u32> = entries.iter().map(|e| e.1).collect();
    assert_eq!(distinct.len(), 4, "not spread over the 4 queues: {text}");
    // The same entry again: accepted. Another: refused.
    let (i0, q0) = entries[0];
    g.cmd(&format!("port config 0 rss reta ({i0},{q0})"));
    g.cmd(&format!("port config 0 rss reta ({i0},{})", (q0 + 1) % 4));
    let text = g.proc.text();
    assert!(text.contains("cannot change"), "{text}");
    g.quit();
    proxy.stop(&[&sock]);
}
