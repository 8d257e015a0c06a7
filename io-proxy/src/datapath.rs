//! The polling loop on the datapath lcore.
//!
//! The datapath holds the state lock for as long as it runs; the control
//! thread asks it to pause (one relaxed atomic load per loop) and then owns
//! the state until it lets go. No lock, syscall or allocation per packet.

use crate::shm_pool::{hdr_priv, GuestRegion, SocketStats};
use bus_shm::ring::LEN_NOT_SENT;
use dpdk_sys as sys;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub const BURST: usize = 32;

/// One NIC queue the datapath polls.
pub struct DpQueue {
    pub port: u16,
    pub queue: u16,
    /// The guest attached to this queue, if one has started.
    pub guest: Option<*mut GuestRegion>,
    pub stats: Arc<SocketStats>,
}

// SAFETY: the GuestRegion behind the pointer is used only by whichever
// thread holds the state lock (see module doc).
unsafe impl Send for DpQueue {}

#[derive(Default)]
pub struct DpState {
    pub queues: Vec<DpQueue>,
}

#[derive(Default)]
pub struct Datapath {
    state: Mutex<DpState>,
    pause: AtomicBool,
    quit: AtomicBool,
}

impl Datapath {
    /// Stops the loop between two polls and returns the state.
    pub fn pause(&self) -> Paused<'_> {
        self.pause.store(true, Ordering::Release);
        let guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Paused {
            dp: self,
            guard: Some(guard),
        }
    }

    /// Makes run() return: the inner loop watches only `pause`.
    pub fn stop(&self) {
        self.quit.store(true, Ordering::Release);
        self.pause.store(true, Ordering::Release);
    }

    /// Runs until stop().
    pub fn run(&self) {
        let mut rx = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        let mut tx = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        while !self.quit.load(Ordering::Relaxed) {
            {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                while !self.pause.load(Ordering::Relaxed) {
                    for q in st.queues.iter_mut() {
                        // SAFETY: we hold the state lock, so the guest
                        // region (if any) is ours to use.
                        unsafe { poll(q, &mut rx, &mut tx) };
                    }
                }
            }
            while self.pause.load(Ordering::Acquire) && !self.quit.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }
}

/// The state while the datapath is paused; resumes it when dropped.
pub struct Paused<'a> {
    dp: &'a Datapath,
    guard: Option<MutexGuard<'a, DpState>>,
}
impl std::ops::Deref for Paused<'_> {
    type Target = DpState;
    fn deref(&self) -> &DpState {
        self.guard.as_ref().unwrap()
    }
}
impl std::ops::DerefMut for Paused<'_> {
    fn deref_mut(&mut self) -> &mut DpState {
        self.guard.as_mut().unwrap()
    }
}
impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.guard.take();
        self.dp.pause.store(false, Ordering::Release);
    }
}

/// One round on one queue: NIC rx -> guest, guest tx -> NIC.
///
/// # Safety
/// Caller holds the state lock; `q.guest` points to a live GuestRegion.
#[inline]
unsafe fn poll(
    q: &mut DpQueue,
    rx: &mut [*mut sys::rte_mbuf; BURST],
    tx: &mut [*mut sys::rte_mbuf; BURST],
) {
    let n = sys::dpdk_sys_eth_rx_burst(q.port, q.queue, rx.as_mut_ptr(), BURST as u16) as usize;
    let Some(g) = q.guest else {
        if n > 0 {
            for &m in &rx[..n] {
                sys::dpdk_sys_pktmbuf_free(m);
            }
            SocketStats::add(&q.stats.rx_drops, n as u64);
        }
        return;
    };
    let g = &mut *g;
    if n > 0 {
        g.deliver_rx(&rx[..n]);
    }
    tx_from_guest(q.port, q.queue, g, tx);
    if g.broken {
        g.stats.guest_broken.store(true, Ordering::Relaxed);
    }
}

/// Moves one burst of the guest's tx ring to the NIC. Returns how many
/// descriptors were taken (sent or not).
///
/// # Safety
/// Caller holds the state lock or the datapath is paused.
#[inline]
pub unsafe fn tx_from_guest(
    port: u16,
    queue: u16,
    g: &mut GuestRegion,
    tx: &mut [*mut sys::rte_mbuf; BURST],
) -> usize {
    let k = g.take_tx(tx);
    if k == 0 {
        return 0;
    }
    let bytes: u64 = tx[..k].iter().map(|&m| (*m).data_len as u64).sum();
    let sent = sys::dpdk_sys_eth_tx_burst(port, queue, tx.as_mut_ptr(), k as u16) as usize;
    let mut unsent_bytes = 0;
    for &m in &tx[sent..k] {
        unsent_bytes += (*m).data_len as u64;
        hdr_priv(m).status = LEN_NOT_SENT;
        sys::dpdk_sys_pktmbuf_free(m);
    }
    SocketStats::add(&g.stats.tx_packets, sent as u64);
    SocketStats::add(&g.stats.tx_bytes, bytes - unsent_bytes);
    if sent < k {
        SocketStats::add(&g.stats.tx_drops, (k - sent) as u64);
    }
    k
}

/// Sends what the guest had queued for tx before its queue is detached, so
/// that packets its tx_burst accepted are not dropped by a stop.
///
/// # Safety
/// The datapath is paused.
pub unsafe fn flush_tx(port: u16, queue: u16, g: &mut GuestRegion) {
    let mut tx = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
    let rounds = g.layout.ring_entries as usize / BURST + 2;
    for _ in 0..rounds {
        if tx_from_guest(port, queue, g, &mut tx) == 0 {
            break;
        }
    }
}
