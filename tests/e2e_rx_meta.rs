//! Rx metadata: what the proxy's NIC tells about a received packet (packet
//! type, checksum verdicts) reaches the guest's mbufs. net_tap parses every
//! packet it receives and, with the checksum offload the proxy turns on,
//! checks its checksums; the kernel sends UDP out of the tap interface.
mod common;
use common::*;
use std::time::Duration;

#[test]
fn nic_packet_type_and_checksum_flags_reach_the_guest() {
    let iface = "iopmetatap";
    let vdev = format!("net_tap0,iface={iface}");
    let (dir, sock, proxy) = Proxy::one_queue("rxmeta", &vdev, "");
    let sock = sock.as_str();
    let mut guest = Guest::start_interactive_with(&dir, "guest", sock, &["--enable-rx-cksum"]);
    // The guest port offers what the NIC queue delivers.
    guest.cmd("show port 0 rx_offload capabilities");
    let caps = guest.proc.text();
    assert!(caps.contains("IPV4_CKSUM"), "{caps}");
    guest.cmd("set fwd rxonly");
    guest.cmd("set verbose 1");
    guest.cmd("start");
    sh(&["ip", "link", "set", "dev", iface, "up"]);
    sh(&["ip", "addr", "add", "10.199.0.1/24", "dev", iface]);
    sh(&[
        "ip",
        "neigh",
        "replace",
        "10.199.0.2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        iface,
        "nud",
        "permanent",
    ]);
    // UDP datagrams to a neighbour that is the guest: out of the tap
    // interface, into the proxy's NIC, on to the guest.
    sh(&[
        "/usr/bin/python3",
        "-c",
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for _ in range(3):\n    s.sendto(b'x' * 64, ('10.199.0.2', 9)); time.sleep(0.2)",
    ]);
    guest.proc.wait_for("L3_IPV4", 1, Duration::from_secs(10));
    let text = guest.proc.text();
    let line = text
        .lines()
        .find(|l| l.contains("type=0x0800"))
        .unwrap_or_else(|| panic!("no IPv4 packet in:\n{text}"));
    assert!(
        line.contains("hw ptype: L2_ETHER L3_IPV4"),
        "no packet type from the NIC: {line}"
    );
    assert!(line.contains("L4_UDP"), "no L4 packet type: {line}");
    assert!(
        text.contains("RTE_MBUF_F_RX_IP_CKSUM_GOOD"),
        "no IP checksum verdict from the NIC:\n{text}"
    );
    guest.cmd("stop");
    guest.cmd("quit");
    guest.proc.wait_exit(Duration::from_secs(30));
    proxy.stop(&[sock]);
}
