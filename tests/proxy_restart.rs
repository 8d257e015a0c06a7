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

/// The proxy is killed under traffic and started again, with other region
/// sizes: the same testpmd, after `port stop` and `port start` (what a
/// NIC reset asks of an app), forwards again in the region its pools live
/// in, zero-copy, and its pool is full after the next stop.
fn proxy_restarts_and_the_guest_resumes(tag: &str, sig: i32) {
    let dir = Scratch::new(tag);
    let sock = format!("/tmp/iop-{tag}/s0/sock");
    let prefix = format!("iop_{tag}");
    let eal = ["--vdev", "net_null0"];
    let mut proxy = Proxy::start(
        &dir,
        &prefix,
        &eal,
        &format!("add port 0 queues 1\nadd socket {sock} 0 0\n"),
    );
    let mut g = Guest::start_interactive(&dir, "guest", &sock);
    g.cmd("start");
    std::thread::sleep(Duration::from_secs(1));
    proxy.proc.signal(sig);
    proxy.proc.wait_exit(Duration::from_secs(10));
    g.proc.wait_for("link down", 1, Duration::from_secs(10));
    g.cmd("stop");
    g.stop_ports_all_back("0");
    // Another heap and buffer size: the region resumed keeps its own.
    let proxy = Proxy::start(
        &dir,
        &prefix,
        &eal,
        &format!("add port 0 queues 1\nadd socket {sock} 0 0 heap 32 buffers 256\n"),
    );
    g.cmd("port start 0");
    assert!(
        proxy.proc.text().contains("connected, protocol v8"),
        "{}",
        proxy.proc.text()
    );
    g.cmd("clear port xstats all");
    g.cmd("start");
    std::thread::sleep(Duration::from_secs(1));
    g.cmd("stop");
    g.cmd("show port xstats 0");
    assert!(
        g.xstat("rx_good_packets") > 10_000,
        "no traffic after resume"
    );
    assert_eq!(g.xstat("tx_copies"), 0);
    assert_eq!(proxy.socket_field(&sock, "payload_copies"), 0);
    g.stop_ports_all_back("0");
    g.quit();
    proxy.stop(&[&sock]);
}

#[test]
fn a_sigkilled_proxy_restarted_resumes_the_guest() {
    proxy_restarts_and_the_guest_resumes("prk", libc::SIGKILL);
}

#[test]
fn a_sigtermed_proxy_restarted_resumes_the_guest() {
    proxy_restarts_and_the_guest_resumes("prt", libc::SIGTERM);
}

/// A proxy restarted with a smaller MTU on the NIC: the guest, set up for
/// the old one, refuses to resume, with the reason in both logs, and its
/// port stays down.
#[test]
fn a_resume_onto_a_smaller_mtu_is_refused_with_the_reason() {
    let (dir, net, sock, mut proxy) = Proxy::veth_port("pmtu", "", " queues 1", "0");
    let vdev = format!("net_af_packet0,iface={}", net.host);
    let mut g = Guest::start_interactive(&dir, "guest", &sock);
    g.cmd("start");
    proxy.proc.signal(libc::SIGKILL);
    proxy.proc.wait_exit(Duration::from_secs(10));
    g.proc.wait_for("link down", 1, Duration::from_secs(10));
    g.cmd("stop");
    g.stop_ports_all_back("0");
    let mut proxy = Proxy::start(
        &dir,
        "iop_pmtu",
        &["--vdev", &vdev],
        &format!("add port 0 queues 1 mtu 1000\nadd socket {sock} 0 0\n"),
    );
    g.cmd("port start 0");
    let text = g.proc.text();
    assert!(
        text.contains("cannot resume: the NIC's MTU shrank from 1500 to 1000"),
        "{text}"
    );
    proxy.proc.wait_for(
        "guest refused: the NIC's MTU shrank",
        1,
        Duration::from_secs(5),
    );
    g.cmd("show port info 0");
    assert!(
        g.proc.text().contains("Link status: down"),
        "{}",
        g.proc.text()
    );
    g.quit();
    proxy.stop(&[&sock]);
}

/// The proxy is killed under traffic and started again: the same testpmd,
/// with nothing typed, forwards again within 3 s of the proxy's ready
/// line (its port reconnects by itself, devarg `reconnect`), and its pool
/// is full after it stops.
#[test]
fn a_forwarding_guest_resumes_by_itself_after_a_proxy_restart() {
    let dir = Scratch::new("pauto");
    let sock = "/tmp/iop-pauto/s0/sock";
    let cmds = format!("add port 0 queues 1\nadd socket {sock} 0 0\n");
    let eal = ["--vdev", "net_null0"];
    let mut proxy = Proxy::start(&dir, "iop_pauto", &eal, &cmds);
    let mut g = Guest::start_interactive(&dir, "guest", sock);
    g.cmd("start");
    std::thread::sleep(Duration::from_secs(1));
    let before = proxy.socket_field(sock, "tx_packets");
    assert!(before > 10_000, "no traffic before: {before}");
    proxy.proc.signal(libc::SIGKILL);
    proxy.proc.wait_exit(Duration::from_secs(10));
    g.proc.wait_for("link down", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let proxy = Proxy::start(&dir, "iop_pauto", &eal, &cmds);
    let ready = std::time::Instant::now();
    let resumed = loop {
        let n = proxy.socket_field(sock, "tx_packets");
        if n > 0 {
            break ready.elapsed();
        }
        assert!(
            ready.elapsed() < Duration::from_secs(3),
            "not forwarding 3 s after the proxy's ready line:\n{}",
            g.proc.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "forwarding again {} ms after the proxy was ready",
        resumed.as_millis()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(proxy.socket_field(sock, "tx_packets") > 10_000);
    assert_eq!(proxy.socket_field(sock, "payload_copies"), 0);
    g.cmd("stop");
    g.stop_ports_all_back("0");
    g.quit();
    proxy.stop(&[sock]);
}
