//! A guest killed at random moments, over and over (during EAL init, at
//! HELLO, at START, while forwarding), while another guest forwards on
//! another socket: the proxy's fd count and memory stay flat, and the
//! other guest's traffic goes on untouched.
mod common;
use common::*;
use std::time::{Duration, Instant};

const CYCLES: u32 = 100;

/// The proxy's malloc heap: bytes allocated and allocations (telemetry
/// `/eal/heap_info`), which a leak would grow.
fn heap_in_use(proxy: &Proxy) -> (u64, u64) {
    let j = proxy.telemetry("/eal/heap_info,0");
    (
        json_number(&j, "Alloc_size"),
        json_number(&j, "Alloc_count"),
    )
}

/// The proxy's resident memory in KiB (`VmRSS`: anonymous, file and
/// shared-memory pages it has mapped).
fn rss_kb(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    number_after(&s, "VmRSS:")
}

#[test]
fn a_guest_killed_at_random_moments_leaves_the_proxy_and_the_other_guest_as_they_were() {
    let dir = Scratch::new("churn");
    let (a, b) = ("/tmp/iop-churn/a/sock", "/tmp/iop-churn/b/sock");
    let proxy = Proxy::start(
        &dir,
        "iop_churn",
        &["--vdev", "net_null0", "--vdev", "net_null1"],
        &format!(
            "add port 0 queues 1\nadd port 1 queues 1\nadd socket {a} 0 0\nadd socket {b} 1 0\n"
        ),
    );
    let steady = Guest::start(&dir, "steady", b);
    let pid = proxy.proc.pid();
    // A seed from the clock, printed: a failing run can be replayed.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut next = move || {
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut baseline = None;
    let mut attached = 0;
    let started = Instant::now();
    for cycle in 0..CYCLES {
        // A small pool and no PCI scan: it starts sooner.
        let mut cmd = std::process::Command::new("stdbuf");
        cmd.args(["-oL", "-eL", "dpdk-testpmd", "-d"])
            .arg(pmds())
            .args(GUEST_EAL)
            .args(["--no-pci", "-a", &format!("sock:{a}")])
            .args(["--", "--forward-mode=macswap", "--total-num-mbufs=16384"]);
        let mut p = Proc::spawn(&mut cmd, dir.path("churn.log"), true);
        // A third of the kills at any moment of the first 2 s (EAL init,
        // HELLO, pool creation, START), the rest while it forwards.
        if next() % 3 == 0 {
            std::thread::sleep(Duration::from_millis(next() % 2000));
        } else {
            p.wait_for("Press enter to exit", 1, Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(next() % 500));
        }
        if p.text().contains("Press enter to exit") {
            attached += 1;
        }
        p.signal(libc::SIGKILL);
        p.wait_exit(Duration::from_secs(10));
        assert!(
            proxy.guest_gone(a),
            "cycle {cycle}: the dead guest still holds {a}"
        );
        if cycle == 9 {
            // After the first allocations of pools and headers.
            baseline = Some((proxy.fd_count(), rss_kb(pid), heap_in_use(&proxy)));
        }
    }
    let (fds0, rss0, heap0) = baseline.unwrap();
    let (fds, rss, heap) = (proxy.fd_count(), rss_kb(pid), heap_in_use(&proxy));
    eprintln!(
        "{CYCLES} cycles in {:.0} s, {attached} killed while forwarding; proxy fds {fds0} -> {fds}, RSS {rss0} -> {rss} KiB, heap in use (bytes, allocations) {heap0:?} -> {heap:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        attached >= CYCLES / 2,
        "too few kills while forwarding: {attached}"
    );
    assert_eq!(fds, fds0, "proxy fd count grew");
    assert_eq!(heap, heap0, "proxy malloc heap grew");
    // Pages of EAL's preallocated memory may be touched as pools come and
    // go at new places (13 MiB once in early runs here): bounded, not a
    // leak while the heap in use is flat.
    assert!(
        rss <= rss0 + 32 * 1024,
        "proxy RSS grew: {rss0} -> {rss} KiB"
    );
    // The other guest: still forwarding, nothing rejected or lost, and its
    // count agrees with the proxy's.
    let before = proxy.socket_field(b, "tx_packets");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        proxy.socket_field(b, "tx_packets") > before,
        "the steady guest stopped"
    );
    assert_eq!(proxy.socket_field(b, "bad_descriptors"), 0);
    assert_eq!(proxy.socket_field(b, "lost_returns"), 0);
    let g = steady.stop(0);
    assert!(g.rx > 100_000, "{g:?}");
    assert_eq!(proxy.socket_field(b, "tx_packets") as u64, g.tx);
    proxy.stop(&[a, b]);
}
