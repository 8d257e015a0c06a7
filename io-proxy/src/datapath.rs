//! The polling loop on the datapath lcore.
//!
//! The datapath holds the state lock for as long as it runs; the control
//! thread asks it to pause (one relaxed atomic load per loop) and then owns
//! the state until it lets go. No lock, syscall or allocation per packet.

use crate::guest_region::{self, hdr_priv, GuestPtr, GuestSlot, BURST};
use crate::stats::SocketStats;
use dpdk_sys as sys;
use shm_abi::desc::{LEN_NOT_SENT, LEN_REJECTED};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One NIC queue the datapath polls.
pub struct DpQueue {
    pub port: u16,
    pub queue: u16,
    /// The guest attached to this queue, if one has started (reached as
    /// guest_region.rs says: never by a reference across a DPDK call).
    pub guest: Option<GuestPtr>,
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
    pub timing: DpTiming,
}

/// Where the datapath lcore's time goes, in TSC cycles, per stage of a
/// round: kept only while asked for (`set timing on`), as reading the clock
/// costs a little in every round. One writer (the lcore); others read.
#[derive(Default)]
#[repr(align(64))]
pub struct DpTiming {
    pub on: AtomicBool,
    /// Rounds that moved nothing, whole.
    pub idle: AtomicU64,
    /// NIC rx burst (the NIC's copies or DMA completions).
    pub nic_rx: AtomicU64,
    pub rx_packets: AtomicU64,
    /// Descriptors of received packets to the guest, and their publish.
    pub to_guest: AtomicU64,
    /// Guest tx descriptors read, checked, attached to headers.
    pub from_guest: AtomicU64,
    pub tx_packets: AtomicU64,
    /// NIC tx burst, and freeing what it did not take.
    pub nic_tx: AtomicU64,
}

impl DpTiming {
    /// Zeroes the counters and starts or stops counting. The datapath
    /// must be paused: it is the counters' only other writer.
    pub fn set(&self, on: bool) {
        for c in self.counters() {
            c.store(0, Ordering::Relaxed);
        }
        self.on.store(on, Ordering::Relaxed);
    }

    fn counters(&self) -> [&AtomicU64; 7] {
        [
            &self.idle,
            &self.nic_rx,
            &self.rx_packets,
            &self.to_guest,
            &self.from_guest,
            &self.tx_packets,
            &self.nic_tx,
        ]
    }

    /// Each stage's name, TSC cycles and the packets they moved.
    pub fn stages(&self) -> [(&'static str, u64, u64); 4] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (rx, tx) = (get(&self.rx_packets), get(&self.tx_packets));
        [
            ("nic_rx", get(&self.nic_rx), rx),
            ("to_guest", get(&self.to_guest), rx),
            ("from_guest", get(&self.from_guest), tx),
            ("nic_tx", get(&self.nic_tx), tx),
        ]
    }

    /// `show datapath`.
    pub fn show(&self) -> String {
        if !self.on.load(Ordering::Relaxed) {
            return "datapath timing off ('set timing on' to measure)\n".to_string();
        }
        // SAFETY: plain read of a value EAL set at init.
        let hz = unsafe { sys::rte_get_tsc_hz() };
        let stages = self.stages();
        let busy: u64 = stages.iter().map(|s| s.1).sum();
        let idle = self.idle.load(Ordering::Relaxed);
        let mut out = format!(
            "datapath timing on, TSC {} MHz: busy {:.1} % of {:.2} s polled\n",
            hz / 1_000_000,
            busy as f64 * 100.0 / (busy + idle).max(1) as f64,
            (busy + idle) as f64 / hz.max(1) as f64
        );
        for (name, cycles, packets) in stages {
            out += &format!(
                "  {name:<10} {:>7.1} cycles/packet ({packets} packets)\n",
                cycles as f64 / packets.max(1) as f64
            );
        }
        out
    }
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
                    let timed = self.timing.on.load(Ordering::Relaxed);
                    for q in st.queues.iter_mut() {
                        // SAFETY: we hold the state lock, so the guest
                        // region (if any) is ours to use.
                        unsafe {
                            if timed {
                                poll::<true>(q, &mut rx, &mut tx, &self.timing)
                            } else {
                                poll::<false>(q, &mut rx, &mut tx, &self.timing)
                            }
                        };
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

/// One round on one queue: NIC rx -> guest (descriptors staged), guest
/// tx -> NIC, then the rx descriptors published. `TIMED` rounds also charge
/// their TSC cycles to the stages in `timing`.
///
/// # Safety
/// Caller holds the state lock; `q.guest` points to a live GuestRegion.
#[inline]
unsafe fn poll<const TIMED: bool>(
    q: &mut DpQueue,
    rx: &mut [*mut sys::rte_mbuf; BURST],
    tx: &mut [*mut sys::rte_mbuf; BURST],
    timing: &DpTiming,
) {
    let tsc = || {
        if TIMED {
            // SAFETY: reads the TSC, nothing else.
            unsafe { sys::dpdk_sys_tsc_cycles() }
        } else {
            0
        }
    };
    let t0 = tsc();
    // SAFETY: the port and queue were set up by `add port`; rx has BURST slots.
    let n = unsafe { sys::dpdk_sys_eth_rx_burst(q.port, q.queue, rx.as_mut_ptr(), BURST as u16) }
        as usize;
    let t1 = tsc();
    let Some(g) = q.guest else {
        if n > 0 {
            for &m in &rx[..n] {
                // SAFETY: a received mbuf of the idle pool, ours to free.
                unsafe { sys::dpdk_sys_pktmbuf_free(m) };
            }
            SocketStats::add(&q.stats.rx_drops, n as u64);
        }
        return;
    };
    if n > 0 {
        // SAFETY: we hold the state lock (contract); received mbufs.
        unsafe { guest_region::deliver_rx(g, &rx[..n]) };
    }
    let t2 = tsc();
    let mut t3 = t2;
    // SAFETY: as above.
    let k = unsafe { tx_from_guest(q.port, q.queue, g, &q.stats, tx, TIMED.then_some(&mut t3)) };
    let t4 = tsc();
    // Last: the NIC's work since deliver_rx has covered the wait for the
    // staged descriptors' lines.
    // SAFETY: a short scope with no DPDK call; we hold the state lock.
    let broken = unsafe {
        let mut g = GuestSlot::enter(g);
        g.publish_rx();
        g.broken
    };
    if TIMED {
        let t5 = tsc();
        if n == 0 && k == 0 {
            SocketStats::add(&timing.idle, t5 - t0);
        } else {
            SocketStats::add(&timing.nic_rx, t1 - t0);
            SocketStats::add(&timing.rx_packets, n as u64);
            // The publish is the rx descriptors' too.
            SocketStats::add(&timing.to_guest, (t2 - t1) + (t5 - t4));
            SocketStats::add(&timing.from_guest, t3 - t2);
            SocketStats::add(&timing.tx_packets, k as u64);
            SocketStats::add(&timing.nic_tx, t4 - t3);
        }
    }
    if broken {
        q.stats.guest_broken.store(true, Ordering::Relaxed);
    }
}

/// Moves one burst of the guest's tx ring to the NIC. Returns how many
/// descriptors were taken (sent or not). With `taken_at`, the TSC between
/// taking them and sending goes there.
///
/// # Safety
/// `g` is live and only this thread uses it (the caller holds the state
/// lock, or the datapath is paused); `stats` are the queue's.
#[inline]
pub unsafe fn tx_from_guest(
    port: u16,
    queue: u16,
    g: GuestPtr,
    stats: &SocketStats,
    tx: &mut [*mut sys::rte_mbuf; BURST],
    taken_at: Option<&mut u64>,
) -> usize {
    // SAFETY: take_tx calls no DPDK function; nothing else uses g.
    let (mut k, mut bytes, offloads) = unsafe { GuestSlot::enter(g).take_tx(tx) };
    if let Some(t) = taken_at {
        // SAFETY: reads the TSC, nothing else.
        *t = unsafe { sys::dpdk_sys_tsc_cycles() };
    }
    if offloads {
        // SAFETY: as for tx_burst below.
        (k, bytes) = unsafe { prepare_tx(port, queue, stats, &mut tx[..k], bytes) };
    }
    if k == 0 {
        return 0;
    }
    // No reference to g is alive: the NIC frees what it sent into the
    // pool ops, which use g.
    // SAFETY: the port's queue is set up; tx holds k headers of ours.
    let sent =
        unsafe { sys::dpdk_sys_eth_tx_burst(port, queue, tx.as_mut_ptr(), k as u16) } as usize;
    let mut unsent_bytes = 0;
    for &m in &tx[sent..k] {
        // SAFETY: headers the NIC did not take: still ours, each segment
        // of a chain too.
        unsafe {
            unsent_bytes += (*m).pkt_len as u64;
            let mut seg = m;
            while !seg.is_null() {
                hdr_priv(seg).status = LEN_NOT_SENT;
                seg = (*seg).next;
            }
            sys::dpdk_sys_pktmbuf_free(m);
        }
    }
    SocketStats::add(&stats.tx_packets, sent as u64);
    SocketStats::add(&stats.tx_bytes, bytes - unsent_bytes);
    if sent < k {
        SocketStats::add(&stats.tx_drops, (k - sent) as u64);
    }
    k
}

/// Runs the NIC's tx_prepare over headers that ask for tx offloads (it
/// writes what the NIC needs, such as pseudo-header checksums, into the
/// packets). A packet it refuses goes back to the guest as rejected and
/// is counted (`tx_offload_errors`); the rest close up. Returns how many
/// headers are left at the front of `tx`, and their bytes.
///
/// # Safety
/// As [`tx_from_guest`]: `tx` holds headers of ours, not yet sent.
#[cold]
#[inline(never)]
unsafe fn prepare_tx(
    port: u16,
    queue: u16,
    stats: &SocketStats,
    tx: &mut [*mut sys::rte_mbuf],
    mut bytes: u64,
) -> (usize, u64) {
    let mut k = tx.len();
    let mut at = 0;
    while at < k {
        // SAFETY: the caller's contract; tx[at..k] are our headers.
        let ok = unsafe {
            sys::dpdk_sys_eth_tx_prepare(port, queue, tx[at..].as_mut_ptr(), (k - at) as u16)
        } as usize;
        at += ok;
        if at == k {
            break;
        }
        let m = tx[at];
        // SAFETY: a header the NIC refused to prepare: still ours, each
        // segment of its chain too.
        unsafe {
            bytes -= (*m).pkt_len as u64;
            let mut seg = m;
            while !seg.is_null() {
                hdr_priv(seg).status = LEN_REJECTED;
                seg = (*seg).next;
            }
            sys::dpdk_sys_pktmbuf_free(m);
        }
        SocketStats::add(&stats.tx_offload_errors, 1);
        tx.copy_within(at + 1..k, at);
        k -= 1;
    }
    (k, bytes)
}

/// Sends what the guest had queued for tx before its queue is detached, so
/// that packets its tx_burst accepted are not dropped by a stop.
///
/// # Safety
/// The datapath is paused; `g` is live.
pub unsafe fn flush_tx(port: u16, queue: u16, g: GuestPtr, stats: &SocketStats) {
    let mut tx = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
    // SAFETY: a short read.
    let rounds = unsafe { GuestSlot::enter(g).layout.ring_entries } as usize / BURST + 2;
    for _ in 0..rounds {
        // SAFETY: per this function's contract.
        if unsafe { tx_from_guest(port, queue, g, stats, &mut tx, None) } == 0 {
            break;
        }
    }
}
