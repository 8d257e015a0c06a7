//! Rx interrupt mode (protocol v10): DPDK's stock `l3fwd-power`, in its
//! `--interrupt-only` mode, sleeps in `rte_epoll_wait` on the rx interrupt
//! of its `sock:` port, and the proxy wakes it when it publishes rx.
//! Kernel frames sent one at a time through a veth come back routed, each
//! within a fraction of the app's own 10 ms wait: it was woken, not timed
//! out (it logs every wake-up it had).
mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

const FRAMES: u32 = 40;
const GAP_MS: u32 = 25;

/// What `spaced.py` saw.
struct Spaced {
    sent: u32,
    back: u32,
    median_us: u32,
    text: String,
}

/// Sends `FRAMES` frames into the namespace's veth one at a time, over
/// `flows` UDP flows, and times their return (tests/tools/spaced.py).
fn spaced(net: &Netns, flows: u32) -> Spaced {
    let out = Command::new("ip")
        .args(["netns", "exec", &net.ns, "/usr/bin/python3"])
        .arg(root().join("tests/tools/spaced.py"))
        .args([
            &net.peer,
            &net.host_mac(),
            &FRAMES.to_string(),
            &GAP_MS.to_string(),
            &flows.to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "spaced.py failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = json_number(&text, "back");
    Spaced {
        sent: json_number(&text, "sent"),
        back,
        median_us: if back > 0 {
            json_number(&text, "rtt_median_us")
        } else {
            0
        },
        text,
    }
}

/// Frames one at a time into the veth while l3fwd-power (`g`) sleeps on
/// its rx interrupt: each must come back, woken by the proxy.
fn frames_wake_the_app(net: &Netns, g: &Proc, proxy: &Proxy, sock: &str, what: &str) {
    let wakes_before = g.text().matches("waked up from rx interrupt").count();
    let proxy_before = proxy.socket_field(sock, "rx_wakes");
    let cpu_before = cpu_seconds(g.pid());
    let t0 = std::time::Instant::now();
    let r = spaced(net, 1);
    let share = (cpu_seconds(g.pid()) - cpu_before) / t0.elapsed().as_secs_f64();
    let wakes = g.text().matches("waked up from rx interrupt").count() - wakes_before;
    let proxy_wakes = proxy.socket_field(sock, "rx_wakes") - proxy_before;
    eprintln!(
        "{what}: {} ; app woken {wakes} times, proxy sent {proxy_wakes} wake-ups, app CPU {:.1} %",
        r.text.trim(),
        share * 100.0
    );
    assert_eq!(r.sent, FRAMES);
    assert_eq!(
        r.back,
        FRAMES,
        "{what}: not every frame came back: {}\n{}",
        r.text,
        proxy.counters()
    );
    // Woken by the proxy for (nearly) every frame, spaced wider than the
    // app's 10 ms wait: a timed-out wait logs nothing.
    assert!(
        wakes as u32 >= FRAMES * 3 / 4,
        "{what}: l3fwd-power was woken by an rx interrupt {wakes} times for {FRAMES} frames"
    );
    assert!(
        proxy_wakes as u32 >= FRAMES * 3 / 4,
        "{what}: {proxy_wakes}"
    );
    // A frame waits for a wake-up, not for the 10 ms timeout (5 ms on
    // average).
    assert!(
        r.median_us < 2000,
        "{what}: median round trip {} us: the app sleeps through its packets",
        r.median_us
    );
    // It slept meanwhile: an app polling would take a whole CPU.
    assert!(
        share < 0.3,
        "{what}: l3fwd-power took {:.0} % of a CPU in interrupt mode",
        share * 100.0
    );
}

/// Stock l3fwd-power in interrupt-only mode on `sock`, file prefix
/// `prefix`, its rx queues on lcore 1 as `config` says (`(0,0,1)`), once
/// it sleeps on their interrupts.
fn l3fwd_power(dir: &Scratch, sock: &str, prefix: &str, config: &str) -> Proc {
    let bin = example("l3fwd-power", "l3fwd-power");
    // Its LPM table wants 64 MiB of heap (EAL's -m, as l3fwd); net_af_packet
    // reports no packet types (--parse-ptype).
    let g = run_example(
        dir,
        &bin,
        prefix,
        &[sock.to_string()],
        "256",
        &[
            "-p",
            "0x1",
            &format!("--config={config}"),
            "--interrupt-only",
            "--parse-ptype",
        ],
        "entering main interrupt loop",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !g.text().contains("won't enable"),
        "rx interrupts not enabled:\n{}",
        g.text()
    );
    g
}

#[test]
fn l3fwd_power_sleeps_on_its_rx_interrupt_and_the_proxy_wakes_it() {
    let (dir, net, sock, mut proxy) = Proxy::veth_port("rxi", "", " queues 1", "0");
    let mut g = l3fwd_power(&dir, &sock, "iop_rxi_g", "(0,0,1)");

    frames_wake_the_app(&net, &g, &proxy, &sock, "first proxy");
    let xstats = telemetry("iop_rxi_g", "/ethdev/xstats,0");
    assert!(
        json_number::<u64>(&xstats, "rx_intr_wakeups") > 0,
        "{xstats}"
    );

    // The proxy is killed and started again: the port resumes by itself
    // and START hands the new proxy the same wake socket, on which the
    // app's epoll still waits.
    proxy.proc.signal(libc::SIGKILL);
    proxy.proc.wait_exit(Duration::from_secs(10));
    let vdev = format!("net_af_packet0,iface={}", net.host);
    let proxy = Proxy::start(
        &dir,
        "iop_rxi",
        &["--vdev", &vdev],
        &format!("add port 0 queues 1\nadd socket {sock} 0 0\n"),
    );
    let t = std::time::Instant::now();
    while proxy.socket_field(&sock, "started") == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the port did not resume:\n{}",
            g.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    frames_wake_the_app(&net, &g, &proxy, &sock, "restarted proxy");

    g.signal(libc::SIGINT);
    g.wait_exit(Duration::from_secs(30));
    proxy.stop(&[&sock]);
}

/// Two rx queues, each its own interrupt vector: frames of many flows,
/// which the kernel's fanout hash spreads over both NIC queues, wake
/// l3fwd-power on each of its two queues (one lcore, one epoll).
#[test]
fn l3fwd_power_is_woken_on_each_of_its_two_queues() {
    let (dir, net, sock, proxy) = Proxy::veth_port("rxq", ",qpairs=2", " queues 2", "0-1");
    let mut g = l3fwd_power(&dir, &sock, "iop_rxq_g", "(0,0,1),(0,1,1)");
    let r = spaced(&net, 16);
    eprintln!("two queues: {}", r.text.trim());
    assert_eq!(
        r.back,
        FRAMES,
        "not every frame came back: {}\n{}",
        r.text,
        proxy.counters()
    );
    let text = g.text();
    for q in 0..2 {
        let woken = text
            .matches(&format!("waked up from rx interrupt on port 0 queue {q}"))
            .count();
        eprintln!("queue {q}: woken {woken} times");
        assert!(woken > 0, "queue {q} was never woken:\n{text}");
    }
    g.signal(libc::SIGINT);
    g.wait_exit(Duration::from_secs(30));
    proxy.stop(&[&sock]);
}
