//! The proxy dies under a running guest: the guest's port goes link down,
//! and nothing the dead proxy held is lost: every buffer posted for rx or
//! handed over for tx comes back to the guest's pool when the app stops
//! its port (the mbufs the proxy holds are marked; see
//! `net_shm::queue::held_mark`).
mod common;
use common::*;
use std::time::Duration;

/// Signals the proxy while `g` forwards through it, waits for it to exit
/// and for the guest's link to go down.
fn kill_under_traffic(proxy: &mut Proxy, g: &mut Guest, sig: i32) {
    proxy.proc.signal(sig);
    proxy.proc.wait_exit(Duration::from_secs(10));
    g.proc.wait_for("link down", 1, Duration::from_secs(10));
}

fn proxy_dies_under_traffic(tag: &str, sig: i32) {
    let (dir, sock, mut proxy) = Proxy::one_queue(tag, "net_null0", "");
    let mut g = Guest::start_interactive(&dir, "guest", &sock);
    g.cmd("start");
    std::thread::sleep(Duration::from_secs(1));
    kill_under_traffic(&mut proxy, &mut g, sig);
    // A planned stop says so (BYE); a crash is a bare close.
    assert_eq!(
        g.proc.text().contains("proxy going away on purpose"),
        sig == libc::SIGTERM,
        "{}",
        g.proc.text()
    );
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
    kill_under_traffic(&mut proxy, &mut g, sig);
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
        proxy.proc.text().contains(&format!(
            "connected, protocol v{}",
            shm_abi::msg::VERSION_MAX
        )),
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
    kill_under_traffic(&mut proxy, &mut g, libc::SIGKILL);
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
    let rate = |proxy: &Proxy| {
        let a = proxy.socket_field(sock, "tx_packets");
        std::thread::sleep(Duration::from_secs(1));
        proxy.socket_field(sock, "tx_packets") - a
    };
    let before = rate(&proxy);
    assert!(before > 10_000, "no traffic before: {before}");
    kill_under_traffic(&mut proxy, &mut g, libc::SIGKILL);
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
    std::thread::sleep(Duration::from_secs(1));
    let after = rate(&proxy);
    eprintln!(
        "forwarding again {} ms after the proxy was ready; {before} packets/s before, {after} after",
        resumed.as_millis()
    );
    // Same machine, same minute: no lasting slowdown (the host's vCPU
    // placement alone moves two-core rates by 2x; see docs/performance.md).
    assert!(
        after * 2 > before,
        "slower after the resume: {before} -> {after}"
    );
    assert_eq!(proxy.socket_field(sock, "payload_copies"), 0);
    // net_null draws a new MAC at each start: the port takes it on.
    let log = proxy.proc.text();
    let mac = log[log.find(", MAC ").expect("MAC in the proxy's log") + 6..][..17].to_string();
    g.cmd("show port info 0");
    let info = g.proc.text();
    let shown = &info[info.rfind("MAC address: ").unwrap() + 13..][..17];
    assert!(
        shown.eq_ignore_ascii_case(&mac),
        "port MAC {shown}, NIC {mac}"
    );
    g.cmd("stop");
    g.stop_ports_all_back("0");
    g.quit();
    proxy.stop(&[sock]);
}

/// A guest whose pool grew its buffer area (GROW: testpmd's default pool
/// on a socket of 8 MiB of buffers, as OVS's default pool does) resumes
/// with it (RESUME_PART, v9): the restarted proxy maps each grown part
/// where it was, the guest forwards again by itself, zero-copy, every
/// descriptor accepted, and its pool is full after it stops.
#[test]
fn a_guest_whose_buffer_area_grew_resumes_with_it() {
    let dir = Scratch::new("pgrow");
    let sock = "/tmp/iop-pgrow/s0/sock";
    let cmds = format!("add port 0 queues 1\nadd socket {sock} 0 0 buffers 8\n");
    let eal = ["--vdev", "net_null0"];
    let mut proxy = Proxy::start(&dir, "iop_pgrow", &eal, &cmds);
    let mut g = Guest::start_interactive(&dir, "guest", sock);
    let grown = proxy.socket_field(sock, "buffers_mb");
    assert!(grown > 300, "buffer area {grown} MiB: it did not grow");
    g.cmd("start");
    std::thread::sleep(Duration::from_secs(1));
    kill_under_traffic(&mut proxy, &mut g, libc::SIGKILL);
    let proxy = Proxy::start(&dir, "iop_pgrow", &eal, &cmds);
    let ready = std::time::Instant::now();
    while proxy.socket_field(sock, "tx_packets") == 0 {
        assert!(
            ready.elapsed() < Duration::from_secs(3),
            "not forwarding 3 s after the proxy's ready line:\n{}\n{}",
            g.proc.text(),
            proxy.proc.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        proxy.proc.text().contains("buffers grew back by"),
        "{}",
        proxy.proc.text()
    );
    assert_eq!(proxy.socket_field(sock, "buffers_mb"), grown);
    g.cmd("stop");
    g.cmd("show port xstats 0");
    assert_eq!(g.xstat("tx_copies"), 0);
    assert_eq!(proxy.socket_field(sock, "bad_descriptors"), 0);
    assert_eq!(proxy.socket_field(sock, "payload_copies"), 0);
    g.stop_ports_all_back("0");
    g.quit();
    proxy.stop(&[sock]);
}

fn rss_kb(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    number_after(&s, "VmRSS:")
}

/// Two testpmd guests on two sockets (two NIC ports on veths into a
/// netns, kernel traffic): the proxy is SIGKILLed under traffic and
/// started again; both guests forward again by themselves within 3 s of
/// its ready line, frames sent after that come back intact, and both
/// pools are full after stop.
#[test]
fn two_guests_resume_and_kernel_frames_come_back_intact() {
    let (dir, net, hosts, mut proxy, socks) = Proxy::two_ports("p2g");
    let mut guests: Vec<Guest> = socks
        .iter()
        .enumerate()
        .map(|(k, s)| Guest::start_interactive(&dir, &format!("guest{k}"), s))
        .collect();
    for g in &mut guests {
        g.cmd("start");
    }
    for h in &hosts {
        let r = net.flows_at(h, 200, 8);
        assert_eq!(r.matched, 200, "before: {r:?}");
    }
    let cmds = std::fs::read_to_string(dir.path("proxy.cmds")).unwrap();
    let eal = [
        "--vdev".to_string(),
        format!("net_af_packet0,iface={}", hosts[0]),
        "--vdev".to_string(),
        format!("net_af_packet1,iface={}", hosts[1]),
    ];
    let eal: Vec<&str> = eal.iter().map(|s| s.as_str()).collect();
    proxy.proc.signal(libc::SIGKILL);
    proxy.proc.wait_exit(Duration::from_secs(10));
    let proxy = Proxy::start(&dir, "iop_p2g", &eal, &cmds);
    let ready = std::time::Instant::now();
    for s in &socks {
        while proxy.socket_field(s, "started") == 0 {
            assert!(
                ready.elapsed() < Duration::from_secs(3),
                "{s} not resumed 3 s after the proxy's ready line"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!(
        "both guests started again {} ms after the proxy was ready",
        ready.elapsed().as_millis()
    );
    for h in &hosts {
        let r = net.flows_at(h, 500, 16);
        assert_eq!((r.sent, r.matched, r.bad), (500, 500, 0), "after: {r:?}");
    }
    for s in &socks {
        assert_eq!(proxy.socket_field(s, "payload_copies"), 0);
    }
    for mut g in guests {
        g.cmd("stop");
        g.stop_ports_all_back("0");
        g.quit();
    }
    proxy.stop(&[&socks[0], &socks[1]]);
}

/// 20 kills and restarts of the proxy under traffic, SIGKILL and SIGTERM
/// in turn: the guests never crash, forward after each restart, and
/// neither their fd counts nor their memory grow.
#[test]
fn twenty_proxy_restarts_under_traffic() {
    let dir = Scratch::new("p20");
    let socks = ["/tmp/iop-p20/a/sock", "/tmp/iop-p20/b/sock"];
    let cmds = format!(
        "add port 0 queues 1\nadd port 1 queues 1\nadd socket {} 0 0\nadd socket {} 1 0\n",
        socks[0], socks[1]
    );
    let eal = ["--vdev", "net_null0", "--vdev", "net_null1"];
    let mut proxy = Proxy::start(&dir, "iop_p20", &eal, &cmds);
    let guests: Vec<Guest> = socks
        .iter()
        .enumerate()
        .map(|(k, s)| Guest::start(&dir, &format!("guest{k}"), s))
        .collect();
    let pids: Vec<i32> = guests.iter().map(|g| g.proc.pid()).collect();
    let mut baseline = None;
    for cycle in 0..20 {
        let sig = if cycle % 2 == 0 {
            libc::SIGKILL
        } else {
            libc::SIGTERM
        };
        proxy.proc.signal(sig);
        proxy.proc.wait_exit(Duration::from_secs(10));
        proxy = Proxy::start(&dir, "iop_p20", &eal, &cmds);
        let t0 = std::time::Instant::now();
        for s in &socks {
            while proxy.socket_field(s, "tx_packets") == 0 {
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "cycle {cycle}: {s} not forwarding 5 s after the restart"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for &pid in &pids {
            assert!(
                std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "cycle {cycle}: guest {pid} died"
            );
        }
        if cycle == 1 {
            baseline = Some(
                pids.iter()
                    .map(|&p| (fd_count(p), rss_kb(p)))
                    .collect::<Vec<_>>(),
            );
        }
    }
    let now: Vec<(usize, u64)> = pids.iter().map(|&p| (fd_count(p), rss_kb(p))).collect();
    eprintln!("guests (fds, RSS KiB): after 2 restarts {baseline:?}, after 20 {now:?}");
    for (b, n) in baseline.unwrap().iter().zip(&now) {
        assert_eq!(n.0, b.0, "guest fd count grew");
        assert!(n.1 <= b.1 + 4096, "guest RSS grew: {} -> {} KiB", b.1, n.1);
    }
    for g in guests {
        let c = g.stop(libc::SIGINT);
        assert!(c.rx > 10_000, "{c:?}");
    }
    proxy.stop(&socks);
}

/// One testpmd with two `sock:` ports (io forwarding between two NIC
/// ports, the second socket sharing the first one's buffer area): the
/// proxy is SIGKILLed and started again, both ports resume by themselves
/// (the second shares the resumed area again), and kernel frames cross
/// both ways intact, zero-copy.
#[test]
fn a_two_port_guest_resumes_both_ports() {
    let (dir, net, hosts, mut proxy, socks) = Proxy::two_ports("p2p");
    let mut g =
        Guest::start_interactive_ports(&dir, "g", &[&socks[0], &socks[1]], &["--forward-mode=io"]);
    g.cmd("start");
    let cross = |net: &Netns| {
        for (from, to) in [(&hosts[0], &hosts[1]), (&hosts[1], &hosts[0])] {
            let r = net.across(from, to, &net.host_mac(), 500, 16, "");
            assert_eq!(
                (r.sent, r.matched, r.bad),
                (500, 500, 0),
                "{from} -> {to}: {r:?}"
            );
        }
    };
    cross(&net);
    let cmds = std::fs::read_to_string(dir.path("proxy.cmds")).unwrap();
    let v0 = format!("net_af_packet0,iface={}", hosts[0]);
    let v1 = format!("net_af_packet1,iface={}", hosts[1]);
    let eal = ["--vdev", v0.as_str(), "--vdev", v1.as_str()];
    proxy.proc.signal(libc::SIGKILL);
    proxy.proc.wait_exit(Duration::from_secs(10));
    let proxy = Proxy::start(&dir, "iop_p2p", &eal, &cmds);
    let ready = std::time::Instant::now();
    for s in &socks {
        while proxy.socket_field(s, "started") == 0 {
            assert!(
                ready.elapsed() < Duration::from_secs(5),
                "{s} not resumed 5 s after the proxy's ready line:\n{}",
                g.proc.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(
        proxy
            .proc
            .text()
            .contains("buffers shared with the guest's other sockets"),
        "{}",
        proxy.proc.text()
    );
    cross(&net);
    for s in &socks {
        assert_eq!(proxy.socket_field(s, "payload_copies"), 0);
    }
    g.cmd("stop");
    g.stop_ports_all_back("all");
    g.quit();
    proxy.stop(&[&socks[0], &socks[1]]);
}
