//! An idle proxy backs off: with a guest attached and no traffic its
//! datapath lcore sleeps between rounds (telemetry `idle_sleeps`) and
//! takes a fraction of its core; kernel traffic that then arrives is
//! forwarded whole. `set idle poll` keeps it busy polling, never asleep.
mod common;
use common::*;
use std::time::{Duration, Instant};

/// The share of one CPU the proxy used over `d`.
fn cpu_share(proxy: &Proxy, d: Duration) -> f64 {
    let (c0, t0) = (cpu_seconds(proxy.proc.pid()), Instant::now());
    std::thread::sleep(d);
    (cpu_seconds(proxy.proc.pid()) - c0) / t0.elapsed().as_secs_f64()
}

fn idle_proxy(tag: &str, setting: &str) -> (Scratch, Netns, String, Proxy, Guest) {
    let (dir, net, sock, proxy) = Proxy::veth_port(tag, "", &format!(" queues 1\n{setting}"), "0");
    let g = Guest::start(&dir, "g", &sock);
    let t = Instant::now();
    while proxy.socket_field(&sock, "started") == 0 {
        assert!(t.elapsed() < Duration::from_secs(30), "guest not started");
        std::thread::sleep(Duration::from_millis(100));
    }
    (dir, net, sock, proxy, g)
}

#[test]
fn an_idle_proxy_sleeps_and_wakes_for_traffic() {
    let (_dir, net, sock, proxy, g) = idle_proxy("id", "");
    let sleeps = proxy.lcore_field(0, "idle_sleeps");
    let share = cpu_share(&proxy, Duration::from_secs(2));
    let slept = proxy.lcore_field(0, "idle_sleeps") - sleeps;
    eprintln!(
        "idle: {:.1} % of a CPU, {slept} sleeps in 2 s",
        share * 100.0
    );
    // 100 us sleeps at most: thousands of them, and far from a whole core.
    assert!(slept > 2000, "the idle lcore slept {slept} times in 2 s");
    assert!(
        share < 0.5,
        "an idle proxy took {:.0} % of a CPU",
        share * 100.0
    );

    all_frames_back(&net, &proxy, 1000, 16, "after the idle period");
    g.stop(libc::SIGINT);
    proxy.stop(&[&sock]);
}

#[test]
fn set_idle_poll_keeps_the_lcore_polling() {
    let (_dir, net, sock, proxy, g) = idle_proxy("ip", "set idle poll\n");
    // (It slept before the command ran, while it had no queue.)
    let sleeps = proxy.lcore_field(0, "idle_sleeps");
    let share = cpu_share(&proxy, Duration::from_secs(2));
    eprintln!("idle poll: {:.1} % of a CPU", share * 100.0);
    assert_eq!(proxy.lcore_field(0, "idle_sleeps"), sleeps);
    assert!(
        share > 0.8,
        "a polling proxy took only {:.0} % of a CPU",
        share * 100.0
    );
    assert!(proxy
        .telemetry("/io_proxy/datapath")
        .contains("\"idle\": \"poll\""));
    all_frames_back(&net, &proxy, 1000, 16, "while polling");
    g.stop(libc::SIGINT);
    proxy.stop(&[&sock]);
}

/// A port added with `intr` (net_tap, whose rx interrupt is its tap's
/// descriptor): the idle lcore waits for the interrupt instead of sleeping
/// in steps, takes a few percent of a CPU; the kernel's frames wake it,
/// and so does a guest that sends on its own (its tx kick, protocol v10).
#[test]
fn an_idle_lcore_waits_for_the_nics_rx_interrupt_and_the_guests_kick() {
    let iface = "iopiwtap";
    let vdev = format!("net_tap0,iface={iface}");
    // Waits of up to 100 ms: a guest's packet that no kick announced
    // would wait that long.
    let (dir, sock, proxy) =
        Proxy::one_queue_then("iw", &vdev, " intr", "set idle sleep 100 wait 100\n");
    sh(&[
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{iface}.disable_ipv6=1"),
    ]);
    sh(&["ip", "link", "set", iface, "up"]);
    let mut g = Guest::start_interactive(&dir, "g", &sock);
    g.cmd("start");
    std::thread::sleep(Duration::from_millis(500));
    let (waits, sleeps) = (
        proxy.lcore_field(0, "intr_waits"),
        proxy.lcore_field(0, "idle_sleeps"),
    );
    let share = cpu_share(&proxy, Duration::from_secs(2));
    let waited = proxy.lcore_field(0, "intr_waits") - waits;
    eprintln!(
        "idle with rx interrupts: {:.1} % of a CPU, {waited} waits in 2 s",
        share * 100.0
    );
    // Nothing arrives: waits that run their 100 ms out, no timed sleep.
    assert!(waited >= 10, "the idle lcore waited {waited} times in 2 s");
    assert_eq!(
        proxy.lcore_field(0, "idle_sleeps"),
        sleeps,
        "it slept instead"
    );
    assert!(
        share < 0.05,
        "an idle proxy waiting for interrupts took {:.1} % of a CPU",
        share * 100.0
    );

    // The guest sends a burst of its own: it kicks the waiting lcore,
    // whose wait ends early (nothing else arrives on the tap).
    let tap_rx = || -> u64 {
        std::fs::read_to_string(format!("/sys/class/net/{iface}/statistics/rx_packets"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (wakes, on_tap) = (proxy.lcore_field(0, "intr_wakes"), tap_rx());
    g.cmd("stop");
    g.cmd("start tx_first");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        tap_rx() >= on_tap + 32,
        "the guest's burst did not reach the tap"
    );
    assert!(proxy.socket_field(&sock, "tx_kicks") > 0, "no kick");
    assert!(
        proxy.lcore_field(0, "intr_wakes") > wakes,
        "the kick did not end the lcore's wait"
    );

    // The kernel's frames wake it too.
    let wakes = proxy.lcore_field(0, "intr_wakes");
    let r = flows_via(iface, 1000, 16, 60, 1514);
    assert_eq!(
        (r.matched, r.bad),
        (1000, 0),
        "frames lost or altered: {r:?}\n{}",
        proxy.counters()
    );
    assert!(
        proxy.lcore_field(0, "intr_wakes") > wakes,
        "no rx interrupt woke the lcore"
    );
    g.cmd("stop");
    g.quit();
    proxy.stop(&[&sock]);
}
