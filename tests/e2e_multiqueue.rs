//! Many queues per port: one socket serves 4 NIC queues of a
//! net_af_packet port (qpairs=4, the kernel's fanout hash spreads the
//! flows); one stock testpmd with `--rxq=4 --txq=4` on one core forwards
//! them, each guest queue on its own rings.
mod common;
use common::*;
use std::time::Duration;

const FRAMES: u32 = 2000;
const FLOWS: u32 = 64;
const QUEUES: usize = 4;

#[test]
fn one_socket_four_queues_rss_spreads_over_guest_queues() {
    let (dir, net, sock, proxy) = Proxy::veth_port(
        "mq",
        &format!(",qpairs={QUEUES}"),
        &format!(" queues {QUEUES}"),
        "0-3",
    );
    let mut g =
        Guest::start_interactive_with(&dir, "g", &sock, &["--rxq=4", "--txq=4", "--nb-cores=1"]);
    g.cmd("show port info 0");
    let info = g.proc.text();
    assert!(
        info.contains("Max possible RX queues: 4"),
        "the port does not offer 4 queues:\n{info}"
    );
    g.cmd("start");
    let r = net.flows(FRAMES, FLOWS);
    assert_eq!(r.sent, FRAMES);
    assert_eq!(r.bad, 0, "frames came back altered: {r:?}");
    assert_eq!(r.matched, FRAMES, "not every frame came back intact: {r:?}");
    std::thread::sleep(Duration::from_millis(300));
    g.cmd("stop");
    g.cmd("show port xstats 0");
    let per_queue: Vec<u64> = (0..QUEUES)
        .map(|k| g.xstat(&format!("rx_q{k}_packets")))
        .collect();
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "not every guest queue got traffic: {per_queue:?}"
    );
    eprintln!("rx per guest queue: {per_queue:?}");
    assert_eq!(per_queue.iter().sum::<u64>(), FRAMES as u64);
    let tx_per_queue: Vec<u64> = (0..QUEUES)
        .map(|k| g.xstat(&format!("tx_q{k}_packets")))
        .collect();
    assert_eq!(tx_per_queue.iter().sum::<u64>(), FRAMES as u64);
    assert_eq!(g.xstat("tx_copies"), 0);
    // The proxy counts the same per queue: guest queue k is NIC queue k.
    for (k, &n) in per_queue.iter().enumerate() {
        assert_eq!(
            proxy.socket_field(&sock, &format!("q{k}_rx_packets")) as u64,
            n,
            "queue {k}: proxy vs guest"
        );
    }
    assert_eq!(proxy.socket_field(&sock, "queues_started"), QUEUES as i64);
    assert_eq!(proxy.socket_field(&sock, "payload_copies"), 0);
    // Every buffer comes back when the port stops, from all four queues.
    g.stop_ports_all_back("0");
    g.quit();
    proxy.stop(&[&sock]);
}

#[test]
fn more_queues_than_served_are_refused_with_a_reason() {
    let (_dir, sock, proxy) = Proxy::one_queue("mqr", "net_null0", "");
    let mut cmd = Guest::command(&sock, &["--rxq=2", "--txq=2"]);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run testpmd");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "testpmd started with 2 queues:\n{text}"
    );
    assert!(
        text.contains("max_rx_queues (1)") || text.contains("nb_rxq=2 >"),
        "no reason given:\n{text}"
    );
    proxy.stop(&[&sock]);
}
