//! The proxy's mempool callbacks run inside its own DPDK calls: a NIC's
//! tx burst frees what it sent, and a free into the tx header pool (which
//! has no lcore cache) calls `ops_enqueue` at once, which uses the guest's
//! region. The proxy must hold no reference to that region across such a
//! call (two `&mut` to one object). Its `GuestSlot` enforces this at run
//! time: a second entry aborts the process.
//!
//! A guest with recycling off sends every buffer through the tx pool, so
//! every NIC free re-enters the proxy: it must forward with the proxy
//! alive, and the proxy's log must not show a second entry. (Holding the
//! region across `rte_eth_tx_burst`, as before this design, makes this
//! test abort the proxy.)
mod common;
use common::*;
use std::time::Duration;

#[test]
fn no_reference_is_held_across_reentrant_frees() {
    let (dir, sock, mut proxy) = Proxy::one_queue("reentry", "net_null0", "");
    let guest = Guest::start_devargs(&dir, "guest", &sock, "recycle=0");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        proxy.proc.child.try_wait().unwrap().is_none(),
        "proxy died:\n{}",
        proxy.proc.text()
    );
    let g = guest.stop(libc::SIGINT);
    assert!(g.rx > 10_000 && g.tx > 10_000, "{g:?}");
    let tx = proxy.socket_field(&sock, "tx_packets");
    assert!(tx > 10_000, "the proxy sent {tx}");
    let log = proxy.stop(&[&sock]);
    assert!(!log.contains("entered twice"), "{log}");
}
