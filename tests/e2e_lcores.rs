//! Several datapath lcores: each socket's queues are polled by one of
//! them (chosen with `add socket ... lcore`, or the least loaded), and a
//! guest that leaves and comes back pauses only the lcore polling its
//! queues: a guest on another lcore forwards on, with no gap.
mod common;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits up to 30 s for the guest on `sock` to forward (packets both ways).
fn forwarding(proxy: &Proxy, sock: &str) {
    let t = Instant::now();
    while proxy.socket_field(sock, "rx_packets") == 0 || proxy.socket_field(sock, "tx_packets") == 0
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{sock}: no traffic: {}",
            proxy.counters()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_guest_restarts_on_one_lcore_while_the_other_forwards_on() {
    let dir = Scratch::new("lc");
    let socks = ["/tmp/iop-lc/a/sock", "/tmp/iop-lc/b/sock"];
    let proxy = Proxy::start_on(
        &dir,
        "iop_lc",
        &["-l", "0,1", "--vdev", "net_null0", "--vdev", "net_null1"],
        &format!(
            "add port 0 queues 1\nadd port 1 queues 1\nadd socket {} 0 0 lcore 1\nadd socket {} 1 0\n",
            socks[0], socks[1]
        ),
        "0,1",
    );
    // a where it was asked for; b on the least loaded lcore, the other.
    assert_eq!(proxy.socket_field(socks[0], "lcore"), 1);
    assert_eq!(proxy.socket_field(socks[1], "lcore"), 0);
    assert_eq!(proxy.lcore_field(0, "queues"), 1);
    assert_eq!(proxy.lcore_field(1, "queues"), 1);

    let ga = Guest::start(&dir, "ga", socks[0]);
    let gb = Guest::start(&dir, "gb", socks[1]);
    forwarding(&proxy, socks[0]);
    forwarding(&proxy, socks[1]);

    // a's counters, sampled for as long as b goes and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, prefix, path) = (stop.clone(), proxy.prefix.clone(), socks[0].to_string());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let json = telemetry(&prefix, "/io_proxy/sockets");
                samples.push((
                    Instant::now(),
                    socket_field_of(&json, &path, "rx_packets"),
                    socket_field_of(&json, &path, "tx_packets"),
                ));
            }
            samples
        })
    };
    let pauses = [
        proxy.lcore_field(0, "pauses"),
        proxy.lcore_field(1, "pauses"),
    ];
    std::thread::sleep(Duration::from_millis(300));
    let restart = Instant::now();
    gb.kill();
    assert!(proxy.guest_gone(socks[1]), "b's guest not seen gone");
    let rx_b = proxy.socket_field(socks[1], "rx_packets");
    let gb = Guest::start(&dir, "gb2", socks[1]);
    let t = Instant::now();
    while proxy.socket_field(socks[1], "rx_packets") == rx_b {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "b's new guest gets nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let restarted = restart.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();

    // Every sample of a's counters is above the one before, through the
    // whole of b's restart.
    assert!(samples.len() >= 5, "too few samples: {samples:?}");
    let during = samples.iter().filter(|s| s.0 >= restart).count();
    assert!(
        during >= 3,
        "too few samples during the restart: {samples:?}"
    );
    for w in samples.windows(2) {
        assert!(
            w[1].1 > w[0].1 && w[1].2 > w[0].2,
            "a's counters stood still between {:?} and {:?} (b restarted in {restarted:?}): {samples:?}",
            w[0].0.duration_since(samples[0].0),
            w[1].0.duration_since(samples[0].0),
        );
    }
    // b's detach and attach paused b's lcore, never a's.
    assert_eq!(
        proxy.lcore_field(1, "pauses"),
        pauses[1],
        "a's lcore was paused"
    );
    assert!(
        proxy.lcore_field(0, "pauses") >= pauses[0] + 2,
        "b's lcore was not paused for b's detach and attach"
    );
    eprintln!(
        "b restarted in {restarted:?}; {} samples of a, {during} during the restart",
        samples.len()
    );
    for (g, sock) in [(ga, socks[0]), (gb, socks[1])] {
        let c = g.stop(libc::SIGINT);
        assert!(c.rx > 0 && c.tx > 0, "{sock}: {c:?}");
    }
    proxy.stop(&socks);
}

/// Sockets given no lcore go to the least loaded one, queue by queue; an
/// lcore that is not a datapath lcore is refused, saying which are.
#[test]
fn sockets_spread_over_the_lcores_and_a_wrong_lcore_is_refused() {
    let dir = Scratch::new("ls");
    let proxy = Proxy::start_on(
        &dir,
        "iop_ls",
        &["-l", "0,1", "--vdev", "net_null0"],
        "add port 0 queues 4\n\
         add socket /tmp/iop-ls/a/sock 0 0-1\n\
         add socket /tmp/iop-ls/b/sock 0 2\n\
         add socket /tmp/iop-ls/c/sock 0 3 lcore 0\n",
        "0-1",
    );
    let json = proxy.telemetry("/io_proxy/sockets");
    let lcores = |p: &str| -> String {
        let at = json.find(&format!("\"path\": \"{p}\"")).unwrap();
        let obj = &json[at..];
        let k = obj.find("\"lcores\": \"").unwrap() + 11;
        obj[k..k + obj[k..].find('"').unwrap()].to_string()
    };
    assert_eq!(lcores("/tmp/iop-ls/a/sock"), "0,1", "{json}");
    assert_eq!(lcores("/tmp/iop-ls/b/sock"), "0", "{json}");
    assert_eq!(lcores("/tmp/iop-ls/c/sock"), "0", "{json}");
    assert_eq!(proxy.lcore_field(0, "queues"), 3);
    assert_eq!(proxy.lcore_field(1, "queues"), 1);
    drop(proxy);

    let dir = Scratch::new("lw");
    let (code, text) = Proxy::run_to_end(
        &dir,
        "iop_lw",
        &["-l", "0,1", "--vdev", "net_null0"],
        "add port 0 queues 1\nadd socket /tmp/iop-lw/a/sock 0 0 lcore 5\n",
        "0,1",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("lcore 5 is not a datapath lcore (they are 0,1)"),
        "{text}"
    );
}

/// A queue that has been quiet while another on its lcore is busy is
/// polled less often, not forgotten. The busy queue is a net_null queue
/// that no socket serves: the lcore drops a full burst from it every round,
/// whatever the guests do. Kernel traffic that then reaches a quiet guest
/// on the same lcore comes back whole.
#[test]
fn a_quiet_queue_next_to_a_busy_one_is_still_served() {
    let dir = Scratch::new("lq");
    let net = Netns::new("lq");
    let sock = "/tmp/iop-lq/quiet/sock";
    let vdev = format!("net_af_packet0,iface={}", net.host);
    let proxy = Proxy::start(
        &dir,
        "iop_lq",
        &["--vdev", "net_null0", "--vdev", &vdev],
        &format!("add port 0 queues 1\nadd port 1 queues 1\nadd socket {sock} 1 0\n"),
    );
    let quiet = Guest::start(&dir, "quiet", sock);
    let t = Instant::now();
    while proxy.socket_field(sock, "started") == 0 {
        assert!(t.elapsed() < Duration::from_secs(30), "guest not started");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Long enough for the guest's queue to count as quiet.
    std::thread::sleep(Duration::from_secs(1));
    for round in 0..2 {
        all_frames_back(&net, &proxy, 1000, 16, &format!("round {round}"));
        // Quiet again before the next round.
        std::thread::sleep(Duration::from_millis(500));
    }
    let drops = proxy.telemetry("/ethdev/stats,0");
    assert!(
        json_number::<u64>(&drops, "ipackets") > 1_000_000,
        "net_null was not busy: {drops}"
    );
    quiet.stop(libc::SIGINT);
    proxy.stop(&[sock]);
}
