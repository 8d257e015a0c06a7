//! Test 1: net_null as the NIC, one stock testpmd guest in macswap; traffic
//! flows both ways and the proxy's and the guest's counters agree.
mod common;
use common::*;
use std::time::Duration;

#[test]
fn null_nic_one_guest_counters_agree() {
    // With the datapath's cycle accounting on, checked below.
    let (dir, sock, proxy) = Proxy::one_queue_then("null", "net_null0", "", "set timing on\n");
    let sock = sock.as_str();
    // Interactive, so that the counters can be read with the port stopped.
    let mut guest = Guest::start_interactive(&dir, "guest", sock);
    assert_eq!(proxy.socket_field(sock, "connected"), 1);
    assert_eq!(proxy.socket_field(sock, "started"), 1);
    assert_eq!(
        proxy.socket_field(sock, "guest_pid"),
        guest.proc.pid() as i64
    );
    guest.cmd("start");
    std::thread::sleep(Duration::from_secs(3));
    guest.cmd("stop");
    guest.cmd("port stop 0");
    guest.cmd("show port xstats 0");
    let rx = guest.xstat("rx_good_packets");
    let tx = guest.xstat("tx_good_packets");
    let discarded = guest.xstat("rx_discarded_at_stop");
    assert!(
        rx > 100_000 && tx > 100_000,
        "too little traffic: rx {rx} tx {tx}"
    );
    assert_eq!(
        proxy.socket_field(sock, "started"),
        0,
        "port stop not seen by the proxy"
    );
    // Exactly what the guest received, plus what was still queued when its
    // port stopped, is what the proxy delivered; and what the guest sent is
    // what the proxy took from it.
    assert_eq!(
        proxy.socket_field(sock, "rx_packets") as u64,
        rx + discarded,
        "rx: guest {rx} + {discarded} queued"
    );
    assert_eq!(proxy.socket_field(sock, "tx_packets") as u64, tx, "tx");
    // The cycle accounting saw the same packets (bar what the stop flushed
    // outside the polling loop: at most a ring's worth) and charged cycles
    // to every stage.
    assert_eq!(proxy.datapath_field("timing"), 1);
    let timed_rx = proxy.datapath_field("nic_rx_packets");
    let timed_tx = proxy.datapath_field("nic_tx_packets");
    assert!(
        timed_rx >= rx + discarded,
        "timed rx {timed_rx} < {rx} + {discarded}"
    );
    assert!(
        timed_tx <= tx && timed_tx + 4096 >= tx,
        "timed tx {timed_tx}, guest sent {tx}"
    );
    for stage in ["nic_rx", "to_guest", "from_guest", "nic_tx"] {
        let c = proxy.datapath_field(&format!("{stage}_cycles_per_packet"));
        assert!((1..10_000).contains(&c), "{stage}: {c} cycles per packet");
    }
    assert_eq!(proxy.socket_field(sock, "payload_copies"), 0);
    assert_eq!(proxy.socket_field(sock, "bad_descriptors"), 0);
    // The stop gave every buffer back: fill stock, recycled buffers the
    // proxy's mempool cache held, and what was queued.
    let (back, size) = guest.pool_fill();
    assert_eq!(
        back, size,
        "mbufs of the guest's pool not back after port stop"
    );

    // Again after a restart of the port: new proxy pools, same socket, and
    // the counters keep agreeing.
    guest.cmd("port start 0");
    guest.cmd("start");
    std::thread::sleep(Duration::from_secs(1));
    guest.cmd("stop");
    guest.cmd("port stop 0");
    guest.cmd("show port xstats 0");
    let rx2 = guest.xstat("rx_good_packets");
    let discarded2 = guest.xstat("rx_discarded_at_stop");
    assert!(
        rx2 > rx + 100_000,
        "no traffic after restart: rx {rx} -> {rx2}"
    );
    assert_eq!(
        proxy.socket_field(sock, "rx_packets") as u64,
        rx2 + discarded2,
        "rx after restart"
    );
    assert_eq!(
        proxy.socket_field(sock, "tx_packets") as u64,
        guest.xstat("tx_good_packets"),
        "tx after restart"
    );
    let (back, size) = guest.pool_fill();
    assert_eq!(back, size, "mbufs not back after the second port stop");
    guest.cmd("quit");
    guest.proc.wait_exit(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        proxy.socket_field(sock, "connected"),
        0,
        "guest exit not noticed"
    );
    let log = proxy.stop(&[sock]);
    assert!(log.contains("final stats"), "{log}");
}

/// The guest as an unprivileged container: another uid, its own namespaces
/// (network included), nothing of the host but /usr, the plugin and the
/// socket's directory. It still gets the NIC queue, zero-copy.
#[test]
fn unprivileged_sandboxed_guest() {
    // The socket belongs to the container's user: nobody else may connect.
    let dir = Scratch::new("sandbox");
    let sock = "/tmp/iop-sandbox/s0/sock";
    let proxy = Proxy::start(
        &dir,
        "iop_sandbox",
        &["--vdev", "net_null0"],
        &format!("add port 0 queues 1\nadd socket {sock} 0 0 owner 65534 mode 0600\n"),
    );
    let guest = Guest::start_sandboxed(&dir, "guest", sock);
    std::thread::sleep(Duration::from_secs(2));
    let log = proxy.proc.text();
    assert!(
        log.contains("uid 65534"),
        "guest not seen as uid 65534:\n{log}"
    );
    // A signal would reach bwrap, not testpmd: end it with Enter.
    let g = guest.stop(0);
    assert!(
        g.rx > 100_000 && g.tx > 100_000,
        "too little traffic: {g:?}"
    );
    assert_eq!(proxy.socket_field(sock, "tx_packets") as u64, g.tx);
    assert_eq!(proxy.socket_field(sock, "payload_copies"), 0);
    proxy.stop(&[sock]);
}

/// The proxy dies under a running guest: the guest's link goes down with an
/// LSC event, the app keeps running and exits cleanly when asked.
#[test]
fn proxy_killed_guest_sees_link_down_and_survives() {
    let (dir, sock, mut proxy) = Proxy::one_queue("proxykill", "net_null0", "");
    let sock = sock.as_str();
    let mut guest = Guest::start(&dir, "guest", sock);
    std::thread::sleep(Duration::from_secs(1));
    proxy.proc.signal(libc::SIGKILL);
    proxy.proc.wait_exit(Duration::from_secs(10));
    guest
        .proc
        .wait_for("link state change event", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        guest.proc.child.try_wait().unwrap().is_none(),
        "guest died with the proxy:\n{}",
        guest.proc.text()
    );
    let g = guest.stop(0);
    assert!(g.rx > 0 && g.tx > 0, "{g:?}");
}

/// The guest's rx queue size (`--rxd`) is the number of buffers it keeps
/// posted, like a NIC ring. The proxy says how many its NIC queue needs:
/// fewer is refused by ethdev with the range, more is used.
#[test]
fn guest_rx_ring_size_is_checked_against_the_nic_queue() {
    // net_null takes a buffer only when it "receives": its queue holds none.
    // None held + the proxy's rx-pool cache (128) + two bursts (64).
    let (_dir, sock, proxy, mut guest) = rxd_refused("rxd", "net_null0", 0, 100, 192);
    let sock = sock.as_str();
    // 2048: what apps commonly ask for (testpmd --rxd=2048, OVS).
    guest.cmd("port config all rxd 2048");
    guest.cmd("port start 0");
    guest.cmd("start");
    std::thread::sleep(Duration::from_secs(1));
    guest.cmd("stop");
    guest.cmd("show port xstats 0");
    assert!(
        guest.xstat("rx_good_packets") > 10_000,
        "no traffic with --rxd 2048"
    );
    // Forwarding stopped, port started: the NIC keeps receiving until the
    // 2048 posted buffers (plus at most a burst recycled on top) all wait in
    // the rx ring, bar less than one burst left in the proxy. Telemetry
    // shows where they are.
    std::thread::sleep(Duration::from_millis(300));
    let used = |ring: &str| proxy.socket_field(sock, &format!("{ring}_ring_used"));
    assert_eq!(proxy.socket_field(sock, "ring_entries"), 4096);
    let rx = used("rx");
    assert!(
        (2048 - 31..=2048 + 32).contains(&rx),
        "rx_ring_used {rx}, posted 2048"
    );
    assert_eq!((used("fill"), used("tx"), used("txdone")), (0, 0, 0));
    guest.cmd("quit");
    guest.proc.wait_exit(Duration::from_secs(30));
    proxy.stop(&[sock]);
}

/// A NIC that keeps its descriptor ring filled (net_tap takes a buffer per
/// descriptor at start) needs that many more posted by the guest.
#[test]
fn guest_rx_ring_covers_what_the_nic_holds() {
    // 256 held by the NIC + 128 + 64.
    let (_dir, sock, proxy, mut guest) =
        rxd_refused("rxdtap", "net_tap0,iface=iop_rxdtap", 256, 300, 448);
    let sock = sock.as_str();
    guest.cmd("port config all rxd 448");
    guest.cmd("port start 0");
    assert_eq!(proxy.socket_field(sock, "started"), 1);
    guest.cmd("quit");
    guest.proc.wait_exit(Duration::from_secs(30));
    proxy.stop(&[sock]);
}

/// A proxy serving `vdev` with 256 NIC rx descriptors, which it reports as
/// holding `held` buffers, and an interactive guest started with
/// `--rxd=rxd`, which ethdev refuses with the queue's minimum `min`: the
/// guest's port stays stopped.
fn rxd_refused(
    tag: &str,
    vdev: &str,
    held: u32,
    rxd: u32,
    min: u32,
) -> (Scratch, String, Proxy, Guest) {
    let (dir, sock, proxy) = Proxy::one_queue(tag, vdev, " rxd 256");
    let log = proxy.proc.text();
    assert!(
        log.contains(&format!(
            "1 queues of 256 rx descriptors holding {held} buffers each"
        )),
        "{log}"
    );
    let guest = Guest::start_interactive_with(&dir, "guest", &sock, &[&format!("--rxd={rxd}")]);
    let text = guest.proc.text();
    assert!(
        text.contains(&format!("Invalid value for nb_rx_desc(={rxd})"))
            && text.contains(&format!(">= {min}")),
        "--rxd={rxd} not refused with the NIC queue's minimum:\n{text}"
    );
    assert_eq!(proxy.socket_field(&sock, "started"), 0);
    (dir, sock, proxy, guest)
}

/// The guest's buffers are registered with EAL as external memory and
/// DMA-mapped for the port's device while, and only while, the guest is
/// attached: after a port stop, and after the guest is killed, nothing is
/// left registered. Under IOVA-as-VA (here: `--no-huge`) the buffers' IOVA
/// is their address in the proxy, the last 512 MiB of the guest's region.
#[test]
fn guest_buffers_are_dma_mapped_only_while_attached() {
    let (dir, sock, proxy) = Proxy::one_queue("dma", "net_null0", "");
    let sock = sock.as_str();
    let areas = || json_number::<u64>(&proxy.telemetry("/io_proxy/dma"), "external_areas");
    let dma = proxy.telemetry("/io_proxy/dma");
    assert!(dma.contains("\"iova_mode\": \"va\""), "{dma}");
    assert_eq!(areas(), 0, "registered before any guest");

    let mut guest = Guest::start_interactive(&dir, "guest", sock);
    assert_eq!(areas(), 1, "guest started, buffers not registered");
    let sockets = proxy.telemetry("/io_proxy/sockets");
    assert!(
        sockets.contains("\"dma\": \"registered, net_null0 does no DMA\""),
        "{sockets}"
    );
    // The region is the largest mapping of the guest's memfd.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", proxy.proc.pid())).unwrap();
    let region_end = maps
        .lines()
        .filter(|l| l.contains("memfd:io-proxy-p0q0"))
        .map(|l| {
            let (a, b) = l
                .split_whitespace()
                .next()
                .unwrap()
                .split_once('-')
                .unwrap();
            let (a, b) = (
                u64::from_str_radix(a, 16).unwrap(),
                u64::from_str_radix(b, 16).unwrap(),
            );
            (b - a, b)
        })
        .max()
        .unwrap_or_else(|| panic!("no region mapping in:\n{maps}"))
        .1;
    assert_eq!(
        proxy.socket_field(sock, "buf_iova") as u64,
        region_end - (512 << 20),
        "IOVA of the buffer area"
    );

    guest.cmd("port stop 0");
    assert_eq!(proxy.socket_field(sock, "started"), 0);
    assert_eq!(areas(), 0, "still registered after port stop");
    guest.cmd("port start 0");
    assert_eq!(areas(), 1, "not registered again on port start");

    guest.kill();
    assert!(proxy.guest_gone(sock), "killed guest not noticed");
    assert_eq!(areas(), 0, "a killed guest's buffers stay registered");
    proxy.stop(&[sock]);
}

/// A pool larger than the socket's buffer area grows it (protocol v6
/// GROW): testpmd's default pool (about 390 MiB) on a socket of 8 MiB of
/// buffers lies almost wholly in the grown part, and forwards zero-copy,
/// every descriptor accepted.
#[test]
fn a_pool_larger_than_the_buffer_area_grows_it() {
    let dir = Scratch::new("poolgrow");
    let sock = "/tmp/iop-poolgrow/s0/sock".to_string();
    let proxy = Proxy::start(
        &dir,
        "iop_poolgrow",
        &["--vdev", "net_null0"],
        &format!("add port 0 queues 1\nadd socket {sock} 0 0 buffers 8\n"),
    );
    let mut g = Guest::start_interactive(&dir, "g", &sock);
    let log = proxy.proc.text();
    assert!(log.contains("buffers grew by"), "{log}");
    let area = proxy.socket_field(&sock, "buffers_mb");
    assert!(area > 300, "buffer area {area} MiB after growth");
    assert_eq!(proxy.socket_field(&sock, "max_buffers_mb"), 2048);
    g.cmd("start");
    std::thread::sleep(Duration::from_millis(1000));
    g.cmd("stop");
    g.cmd("show port xstats 0");
    assert!(g.xstat("rx_good_packets") > 100_000, "too little traffic");
    assert_eq!(g.xstat("tx_copies"), 0);
    assert_eq!(proxy.socket_field(&sock, "bad_descriptors"), 0);
    g.stop_ports_all_back("0");
    g.quit();
    proxy.stop(&[&sock]);
}

/// A pool past the socket's limit (`max_buffers`, 2048 MiB by default)
/// fails with ENOMEM, which DPDK apps take as "retry with fewer mbufs"
/// (OVS does), not ENOBUFS; the guest's log says how much the pool needs
/// and which limit to raise.
#[test]
fn a_pool_past_the_limit_fails_with_enomem_and_names_the_limit() {
    let (dir, sock, proxy) = Proxy::one_queue("poolnomem", "net_null0", "");
    // About 2.2 GiB of mbufs.
    let mut cmd = Guest::command(&sock, &["--total-num-mbufs=1000000"]);
    let mut guest = Proc::spawn(&mut cmd, dir.path("guest.log"), false);
    let st = guest.wait_exit(Duration::from_secs(60));
    let text = guest.text();
    assert!(
        !st.success(),
        "testpmd started with a pool that cannot fit:\n{text}"
    );
    assert!(
        text.contains("Cannot allocate memory"),
        "the pool's creation did not fail with ENOMEM:\n{text}"
    );
    assert!(
        text.contains("MiB of shared buffers") && text.contains("max_buffers <MiB>"),
        "the guest's log does not name the limit:\n{text}"
    );
    proxy.stop(&[&sock]);
}
