//! A port whose proxy went away, served again by the proxy started anew,
//! with no action by the app: a thread of ours pauses the port's queues,
//! takes back what the dead proxy held, waits for the socket with backoff,
//! resumes the region (the `sock` bus's `resume`, protocol v8), starts the
//! queues again and lets the datapath go on. For the app it is a link
//! flap. The same steps serve the app's own `port stop` / `port start`.

use crate::queue::{self, RxQueue, TxQueue};
use crate::{link_update, log, port_ptr, Port};
use bus_shm::guest::{Conn, ResumeError};
use dpdk_sys as sys;
use shm_abi::msg::Start;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Longest wait between attempts, by default (devarg `reconnect=<ms>`).
pub const DEFAULT_MS: u32 = 1000;
/// The first wait; each failed attempt doubles it, up to the devarg.
const FIRST_WAIT: Duration = Duration::from_millis(50);

/// The port's queue pairs: (rx, tx), either null if not set up.
///
/// # Safety
/// `dev` is a net_shm port.
unsafe fn queue_pairs(dev: *mut sys::rte_eth_dev) -> Vec<(*mut RxQueue, *mut TxQueue)> {
    // SAFETY: the caller's contract; ethdev's queue arrays.
    unsafe {
        let data = (*dev).data;
        (0..(*data).nb_rx_queues as usize)
            .map(|k| {
                (
                    *(*data).rx_queues.add(k) as *mut RxQueue,
                    if k < (*data).nb_tx_queues as usize {
                        *(*data).tx_queues.add(k) as *mut TxQueue
                    } else {
                        std::ptr::null_mut()
                    },
                )
            })
            .collect()
    }
}

/// Frees what came back on the rx and txdone rings (as a port stop does).
///
/// # Safety
/// `dev` is a net_shm port whose queues are not polled.
unsafe fn drain(dev: *mut sys::rte_eth_dev) {
    // SAFETY: the caller's contract.
    unsafe {
        for (rxq, txq) in queue_pairs(dev) {
            if !rxq.is_null() {
                (*rxq).drain();
            }
            if !txq.is_null() {
                (*txq).drain();
            }
        }
    }
}

/// Takes back what a proxy that went away held, once the rx and txdone
/// rings are drained: empties the fill and tx rings (their consumer is
/// gone), frees every mbuf still marked as held by it, and resets the
/// rings' budgets.
///
/// # Safety
/// `dev` is a net_shm port whose queues are not polled (stopped, or
/// paused) and drained, and its proxy is gone.
pub(crate) unsafe fn take_back(dev: *mut sys::rte_eth_dev) {
    // SAFETY: the caller's contract.
    unsafe {
        for (rxq, txq) in queue_pairs(dev) {
            if !rxq.is_null() {
                (*rxq).fill.discard_unconsumed();
            }
            if !txq.is_null() {
                (*txq).tx.discard_unconsumed();
                (*txq).outstanding = 0;
            }
        }
        let p = &*port_ptr(dev);
        let n = queue::reclaim_held(p.port_id);
        for b in p.budgets.iter() {
            b.reset();
        }
        info!(
            "port {}: {n} buffers the lost proxy held are back in their pools",
            p.port_id
        );
    }
}

/// Takes on the MAC a resuming proxy gives for its NIC as the port's
/// address (logged when it changed). Its MTU and largest frame were
/// checked to be no smaller; the port keeps the limits its queues were
/// set up with.
///
/// # Safety
/// `dev` is the net_shm port of `sock`, its queues not polled.
pub(crate) unsafe fn take_nic(
    dev: *mut sys::rte_eth_dev,
    sock: &bus_shm::guest::SockDevice,
    port_id: u16,
) {
    let Some(conn) = sock.conn() else { return };
    let n = conn.nic();
    // SAFETY: the caller's contract; ethdev's MAC slot of our port.
    let mac = unsafe { &mut (*(*(*dev).data).mac_addrs).addr_bytes };
    if *mac != n.mac {
        info!(
            "port {port_id}: the NIC's MAC is now {}",
            n.mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        );
        *mac = n.mac;
    }
}

/// Attaches every queue pair to its NIC queue (START), fresh buffers
/// posted first. On failure, the index of the pair that failed.
///
/// # Safety
/// `dev` is a net_shm port with all its queues set up, not polled.
pub(crate) unsafe fn start_queues(dev: *mut sys::rte_eth_dev, conn: &Conn) -> Result<(), u16> {
    // SAFETY: the caller's contract.
    unsafe {
        let port_id = (*port_ptr(dev)).port_id;
        for (k, (rxq, txq)) in queue_pairs(dev).into_iter().enumerate() {
            (*rxq).refill(1);
            let start = Start {
                rx_buf_len: sys::dpdk_sys_pktmbuf_data_room_size((*rxq).mp),
                rx_headroom: sys::RTE_PKTMBUF_HEADROOM as u16,
                queue: k as u16,
                scatter: (*rxq).scatter,
                rx_intr: (*rxq).intr.is_some(),
            };
            let wake = (*rxq).intr.as_ref().map(|i| i.kick.as_fd());
            let kick = match conn.start(start, wake) {
                Ok(kick) => kick,
                Err(e) => {
                    err!("port {port_id}: start queue {k}: {e}");
                    return Err(k as u16);
                }
            };
            // The proxy's tx kick socket (v10), with the queue's control
            // line (in this connection's rings region).
            if !txq.is_null() {
                (*txq).kick = kick.and_then(|fd| {
                    let ctl = conn.region()?.queue_ctl(&conn.layout, k as u16).ok()?;
                    Some(Box::new(crate::intr::TxKick { fd, ctl }))
                });
            }
        }
        Ok(())
    }
}

/// Stops every queue's bursts: sets the pause, waits until each queue
/// acknowledged it or is not in a burst (see `queue::Gate`).
fn pause(p: &Port) {
    for b in p.budgets.iter() {
        b.pause.store(1, Ordering::SeqCst);
    }
    // Every store either side made before is visible to the other then.
    std::thread::sleep(Duration::from_millis(10));
    let t0 = Instant::now();
    while !p
        .budgets
        .iter()
        .all(|b| b.rx_gate.quiet(1) && b.tx_gate.quiet(1))
    {
        if t0.elapsed() > Duration::from_secs(1) {
            info!("port {}: waiting for a burst to end", p.port_id);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub(crate) fn unpause(p: &Port) {
    for b in p.budgets.iter() {
        b.pause.store(0, Ordering::Release);
    }
}

/// Starts the reconnect thread of port `dev` unless one runs or the port
/// does not want it (devarg `reconnect=0`, or not started).
///
/// # Safety
/// `dev` is a live net_shm port.
pub(crate) unsafe fn spawn(dev: *mut sys::rte_eth_dev) {
    // SAFETY: the caller's contract.
    let p = unsafe { &*port_ptr(dev) };
    if p.reconnect_ms == 0 || !p.started {
        return;
    }
    let mut t = p.reconnector.lock().unwrap_or_else(|e| e.into_inner());
    if t.as_ref().is_some_and(|h| !h.is_finished()) {
        return;
    }
    if let Some(h) = t.take() {
        let _ = h.join();
    }
    let d = dev as usize;
    *t = std::thread::Builder::new()
        .name(format!("net_shm-rc{}", p.port_id))
        .spawn(move || {
            // SAFETY: the port outlives the thread: dev_close joins it
            // (`forget`) before the port is freed.
            unsafe { run(d as *mut sys::rte_eth_dev) }
        })
        .ok();
}

/// Waits for the reconnect thread to end (port close).
///
/// # Safety
/// `dev` is a net_shm port, stopped.
pub(crate) unsafe fn forget(dev: *mut sys::rte_eth_dev) {
    // SAFETY: the caller's contract.
    let p = unsafe { &*port_ptr(dev) };
    let h = p
        .reconnector
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(h) = h {
        let _ = h.join();
    }
}

/// The reconnect thread: pause and take back once, then try the socket
/// with backoff until the proxy resumes the port, the app stops it, or
/// the resume is refused for good.
///
/// # Safety
/// `dev` is a live net_shm port for the whole run (see `spawn`).
unsafe fn run(dev: *mut sys::rte_eth_dev) {
    // SAFETY: this function's contract: a live net_shm port.
    let pp = unsafe { port_ptr(dev) };
    let mut wait = FIRST_WAIT;
    let mut paused = false;
    let mut attempts = 0u32;
    loop {
        std::thread::sleep(wait);
        // SAFETY: the port lives (contract); its control lock serializes
        // us with the app's port stop.
        let p = unsafe { &*pp };
        let ctl = p.ctl.clone();
        let _ctl = ctl.lock().unwrap_or_else(|e| e.into_inner());
        let max = Duration::from_millis(p.reconnect_ms as u64);
        wait = (wait * 2).min(max.max(FIRST_WAIT));
        if !p.started {
            // The app stopped the port: its next start resumes.
            unpause(p);
            return;
        }
        let Some(conn) = p.sock.conn() else { return };
        if !conn.proxy_gone() {
            unpause(p);
            return;
        }
        if !paused {
            pause(p);
            // SAFETY: as above; the queues are not polled once paused.
            unsafe {
                drain(dev);
                take_back(dev);
            }
            paused = true;
        }
        attempts += 1;
        match bus_shm::guest::resume(p.sock) {
            // SAFETY: as above.
            Ok(()) => unsafe { take_nic(dev, p.sock, p.port_id) },
            Err(ResumeError::Retry(e)) => {
                if attempts == 1 || attempts.is_power_of_two() {
                    info!(
                        "port {}: proxy not back yet ({e}); retrying every {} ms at most",
                        p.port_id, p.reconnect_ms
                    );
                }
                continue;
            }
            Err(ResumeError::Refused(e)) => {
                err!(
                    "port {}: cannot resume: {e}; the port stays down",
                    p.port_id
                );
                return;
            }
        }
        // SAFETY: as above.
        if unsafe { start_queues(dev, conn) }.is_err() {
            if !conn.proxy_gone() {
                // A proxy that refuses a queue holds the others' buffers:
                // nothing to take back; the app's port stop does it.
                err!(
                    "port {}: the resumed proxy refused a queue; the port stays down",
                    p.port_id
                );
                return;
            }
            // The proxy went away again: from the top.
            // SAFETY: as above.
            unsafe {
                drain(dev);
                take_back(dev);
            }
            continue;
        }
        unpause(p);
        info!(
            "port {}: resumed with the restarted proxy after {attempts} attempt{}",
            p.port_id,
            if attempts == 1 { "" } else { "s" }
        );
        // The app hears of it without our lock held: its LSC callback
        // may stop the port.
        drop(_ctl);
        // SAFETY: the port lives (contract).
        unsafe {
            link_update(dev, 0);
            sys::rte_eth_dev_callback_process(
                dev,
                sys::RTE_ETH_EVENT_INTR_LSC,
                std::ptr::null_mut(),
            );
        }
        return;
    }
}
