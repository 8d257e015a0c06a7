//! The NIC's link goes down and up (net_tap, its kernel interface taken
//! down with ip link): the proxy tells its guests, each gets LSC events.
mod common;
use common::*;
use std::time::Duration;

fn ip_link(iface: &str, state: &str) {
    sh(&["ip", "link", "set", "dev", iface, state]);
}

#[test]
fn nic_link_changes_reach_the_guest_as_lsc_events() {
    let iface = "ioplinktap";
    let vdev = format!("net_tap0,iface={iface}");
    let (dir, sock, mut proxy) = Proxy::one_queue("link", &vdev, "");
    let sock = sock.as_str();
    let mut guest = Guest::start(&dir, "guest", sock);
    let events_before = guest.proc.text().matches("link state change event").count();
    ip_link(iface, "down");
    proxy
        .proc
        .wait_for("port 0: link down", 1, Duration::from_secs(5));
    guest.proc.wait_for(
        "link state change event",
        events_before + 1,
        Duration::from_secs(5),
    );
    ip_link(iface, "up");
    proxy
        .proc
        .wait_for("port 0: link up", 1, Duration::from_secs(5));
    guest.proc.wait_for(
        "link state change event",
        events_before + 2,
        Duration::from_secs(5),
    );
    guest.stop(libc::SIGINT);
    proxy.stop(&[sock]);
}
