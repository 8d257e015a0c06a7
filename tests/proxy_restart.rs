//! The proxy dies under a running guest: the guest's port goes link down,
//! and nothing the dead proxy held is lost: every buffer posted for rx or
//! handed over for tx comes back to the guest's pool when the app stops
//! its port (the mbufs the proxy holds are marked; see
//! `net_shm::queue::held_mark`).
mod common;
use common::*;
use std::time::Duration;

fn proxy_dies_under_traffic(tag: &str, sig: i32) {
    let (dir, sock, mut proxy) = Proxy::one_queue(tag, "net_null0", "");
    let mut g = Guest::start_interactive(&dir, "guest", &sock);
    g.cmd("start");
    std::thread::sleep(Duration::from_secs(1));
    proxy.proc.signal(sig);
    proxy.proc.wait_exit(Duration::from_secs(10));
    g.proc.wait_for("link down", 1, Duration::from_secs(10));
    g.cmd("stop");
    g.cmd("show port xstats 0");
    assert!(g.xstat("rx_good_packets") > 10_000, "no traffic before");
    g.stop_ports_all_back("0");
    g.quit();
}

#[test]
fn buffers_a_sigkilled_proxy_held_come_back_at_port_stop() {
    proxy_dies_under_traffic("pkill", libc::SIGKILL);
}

#[test]
fn buffers_a_sigtermed_proxy_held_come_back_at_port_stop() {
    proxy_dies_under_traffic("pterm", libc::SIGTERM);
}
