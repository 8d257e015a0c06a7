//! The polling loop of one datapath lcore.
//!
//! Each datapath lcore has a [`Datapath`]: the NIC queues it polls and
//! their guests (`lcores.rs` says which lcore polls which queue). It holds
//! its state lock for as long as it runs; the control thread asks it to
//! pause (one relaxed atomic load per round) and then owns the state until
//! it lets go. Lcores share nothing on the fast path: no lock, syscall or
//! allocation per packet, and each queue's counters on lines of their own.
//!
//! An lcore whose queues moved nothing for a while backs off ([`IdleMode`]):
//! it waits for the NIC's rx interrupts where every queue it polls has
//! them (ports added with `intr`), else it sleeps between rounds, longer
//! the longer it stays idle.

use crate::guest_region::{self, hdr_priv, GuestPtr, GuestSlot, BURST};
use crate::stats::SocketStats;
use dpdk_sys as sys;
use shm_abi::desc::{LEN_NOT_SENT, LEN_REJECTED};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One NIC queue the datapath polls.
pub struct DpQueue {
    pub port: u16,
    pub queue: u16,
    /// The guest attached to this queue, if one has started (reached as
    /// guest_region.rs says: never by a reference across a DPDK call).
    pub guest: Option<GuestPtr>,
    pub stats: Arc<SocketStats>,
    /// Rounds in a row that this queue moved nothing (saturating).
    quiet: u32,
    /// The NIC queue's rx interrupt, as the lcore's idle wait sees it.
    intr: Intr,
}

/// Whether an idle lcore may wait for a queue's rx interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intr {
    /// Poll it: the port was added without `intr`, or the PMD refused
    /// the registration (logged once).
    Off,
    /// To be registered with the lcore's epoll (again after a pause: the
    /// port may have been stopped and started, which drops it).
    Unknown,
    Ready,
}

impl DpQueue {
    /// `intr`: the port was set up for rx interrupts.
    pub fn new(port: u16, queue: u16, stats: Arc<SocketStats>, intr: bool) -> DpQueue {
        DpQueue {
            port,
            queue,
            guest: None,
            stats,
            quiet: 0,
            intr: if intr { Intr::Unknown } else { Intr::Off },
        }
    }
}

// SAFETY: the GuestRegion behind the pointer is used only by whichever
// thread holds the state lock (see module doc).
unsafe impl Send for DpQueue {}

/// A queue that moved nothing for this many rounds is quiet: while other
/// queues of its lcore are busy, it is polled only every
/// [`QUIET_EVERY`]th round, so that idle guests cost a busy one little.
/// When the whole lcore is idle every queue is polled every round.
const QUIET_ROUNDS: u32 = 256;
const QUIET_EVERY: u32 = 8;

/// How a datapath lcore waits when its queues have nothing (`set idle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleMode {
    /// Busy polling, always: the lowest latency, a whole core.
    Poll,
    /// After `after_us` in which no queue moved a packet, back off. If
    /// `wait_ms` > 0 and every queue of the lcore has rx interrupts, wait
    /// for one, `wait_ms` at most (a guest's own tx then waits up to that
    /// too: its ring raises no interrupt). Otherwise sleep between rounds:
    /// first [`FIRST_SLEEP_US`], doubling up to `max_us`; the first packet
    /// after an idle period then waits up to `max_us` (plus the wake-up)
    /// more than with polling.
    Sleep {
        after_us: u32,
        max_us: u32,
        wait_ms: u32,
    },
}

/// The first sleep of an idle period, in microseconds.
pub const FIRST_SLEEP_US: u32 = 10;

impl Default for IdleMode {
    fn default() -> IdleMode {
        IdleMode::Sleep {
            after_us: 1000,
            max_us: 100,
            wait_ms: 1,
        }
    }
}

impl std::fmt::Display for IdleMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdleMode::Poll => write!(f, "poll"),
            IdleMode::Sleep {
                after_us,
                max_us,
                wait_ms,
            } => write!(f, "sleep {max_us} after {after_us} wait {wait_ms}"),
        }
    }
}

#[derive(Default)]
pub struct DpState {
    pub queues: Vec<DpQueue>,
    pub idle: IdleMode,
}

pub struct Datapath {
    /// The EAL lcore this loop runs on.
    pub lcore: u32,
    state: Mutex<DpState>,
    pause: AtomicBool,
    quit: AtomicBool,
    pub timing: DpTiming,
    pub sleeps: DpSleeps,
    /// Times control paused this lcore (written by control only).
    pub pauses: AtomicU64,
    /// The epoll instance its idle wait blocks on: the rx interrupts of
    /// its queues are registered there.
    epfd: OwnedFd,
}

/// What the idle back-off did: one writer (the lcore), others read.
#[derive(Default)]
#[repr(align(64))]
pub struct DpSleeps {
    /// Sleeps between idle rounds, and the microseconds asked for.
    pub count: AtomicU64,
    pub asked_us: AtomicU64,
    /// Waits for rx interrupts, and those an interrupt ended (the others
    /// ran out their `wait_ms`).
    pub intr_waits: AtomicU64,
    pub intr_wakes: AtomicU64,
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

/// Where an lcore is in an idle period.
#[derive(Default)]
struct IdleClock {
    /// TSC of the first round that moved nothing; 0 while busy.
    since: u64,
    /// The next sleep, in microseconds.
    next_us: u32,
}

impl Datapath {
    pub fn new(lcore: u32) -> std::io::Result<Datapath> {
        // SAFETY: epoll_create1 makes a new descriptor or fails.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Datapath {
            lcore,
            state: Mutex::new(DpState::default()),
            pause: AtomicBool::new(false),
            quit: AtomicBool::new(false),
            timing: DpTiming::default(),
            sleeps: DpSleeps::default(),
            pauses: AtomicU64::new(0),
            // SAFETY: a fresh descriptor, ours alone.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Asks the loop to stop between two rounds; [`Datapath::held`] then
    /// waits until it has.
    pub(crate) fn request_pause(&self) {
        self.pauses.fetch_add(1, Ordering::Relaxed);
        self.pause.store(true, Ordering::Release);
    }

    /// The state, once the loop stopped (after [`Datapath::request_pause`]).
    pub(crate) fn held(&self) -> MutexGuard<'_, DpState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets the loop go on (the state's guard dropped first).
    pub(crate) fn resume(&self) {
        self.pause.store(false, Ordering::Release);
    }

    /// Makes run() return: the inner loop watches only `pause`.
    pub fn stop(&self) {
        self.quit.store(true, Ordering::Release);
        self.pause.store(true, Ordering::Release);
    }

    /// Runs until stop().
    pub fn run(&self) {
        // Sleeps of tens of microseconds: the default timer slack (50 us)
        // would stretch each one.
        // SAFETY: prctl on this thread, with an integer argument.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
        // SAFETY: plain read of a value EAL set at init.
        let us = (unsafe { sys::rte_get_tsc_hz() } / 1_000_000).max(1);
        let mut rx = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        let mut tx = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        while !self.quit.load(Ordering::Relaxed) {
            {
                let mut st = self.held();
                let st = &mut *st;
                let mut clock = IdleClock::default();
                let mut round = 0u32;
                let mut busy = false;
                // Control may have stopped and started a port meanwhile,
                // which drops its interrupts' registration.
                for q in st.queues.iter_mut() {
                    if q.intr == Intr::Ready {
                        q.intr = Intr::Unknown;
                    }
                }
                while !self.pause.load(Ordering::Relaxed) {
                    let timed = self.timing.on.load(Ordering::Relaxed);
                    round = round.wrapping_add(1);
                    // Quiet queues wait their turn only while others move.
                    let all = !busy || round.is_multiple_of(QUIET_EVERY);
                    busy = false;
                    for q in st.queues.iter_mut() {
                        if q.quiet >= QUIET_ROUNDS && !all {
                            continue;
                        }
                        // SAFETY: we hold the state lock, so the guest
                        // region (if any) is ours to use.
                        let moved = unsafe {
                            if timed {
                                poll::<true>(q, &mut rx, &mut tx, &self.timing)
                            } else {
                                poll::<false>(q, &mut rx, &mut tx, &self.timing)
                            }
                        };
                        if moved {
                            q.quiet = 0;
                            busy = true;
                        } else {
                            q.quiet = q.quiet.saturating_add(1);
                        }
                    }
                    if busy {
                        clock.since = 0;
                    } else if let IdleMode::Sleep {
                        after_us,
                        max_us,
                        wait_ms,
                    } = st.idle
                    {
                        let limits = (after_us, max_us, wait_ms);
                        self.idle_round(&mut st.queues, &mut clock, us, limits);
                    }
                }
            }
            while self.pause.load(Ordering::Acquire) && !self.quit.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }

    /// A round that moved nothing: once the lcore has been idle for
    /// `after_us`, wait for an rx interrupt (`wait_ms` at most) if every
    /// queue has one, else sleep, a little longer each time up to `max_us`.
    #[cold]
    fn idle_round(
        &self,
        queues: &mut [DpQueue],
        clock: &mut IdleClock,
        tsc_per_us: u64,
        (after_us, max_us, wait_ms): (u32, u32, u32),
    ) {
        // SAFETY: reads the TSC, nothing else.
        let now = unsafe { sys::dpdk_sys_tsc_cycles() };
        if clock.since == 0 {
            clock.since = now;
            clock.next_us = FIRST_SLEEP_US.min(max_us);
            return;
        }
        if now.wrapping_sub(clock.since) < after_us as u64 * tsc_per_us {
            return;
        }
        if wait_ms > 0
            && !queues.is_empty()
            && queues
                .iter_mut()
                .all(|q| self.intr_ready(q) && self.kick_ready(q))
        {
            self.wait_intr(queues, wait_ms);
            return;
        }
        let d = clock.next_us;
        std::thread::sleep(std::time::Duration::from_micros(d as u64));
        SocketStats::add(&self.sleeps.count, 1);
        SocketStats::add(&self.sleeps.asked_us, d as u64);
        clock.next_us = d.saturating_mul(2).min(max_us);
    }
}

impl Datapath {
    /// Whether queue `q`'s rx interrupt is registered with this lcore's
    /// epoll, registering it if it is not yet.
    fn intr_ready(&self, q: &mut DpQueue) -> bool {
        if q.intr == Intr::Unknown {
            let epfd = self.epfd.as_raw_fd();
            let ctl = |op| {
                // SAFETY: an ethdev control call on a port and queue that
                // exist (`add port`); it only adds or removes the queue's
                // event fd in an epoll instance.
                unsafe {
                    sys::rte_eth_dev_rx_intr_ctl_q(q.port, q.queue, epfd, op, std::ptr::null_mut())
                }
            };
            let mut r = ctl(sys::RTE_INTR_EVENT_ADD as i32);
            if r == -libc::EEXIST {
                // Registered with another lcore's epoll (the queue moved):
                // removed from wherever it is, then here.
                ctl(sys::RTE_INTR_EVENT_DEL as i32);
                r = ctl(sys::RTE_INTR_EVENT_ADD as i32);
            }
            q.intr = if r == 0 {
                Intr::Ready
            } else {
                crate::log::err(&format!(
                    "port {} queue {}: no rx interrupt ({}): lcore {} sleeps between polls instead",
                    q.port,
                    q.queue,
                    sys::strerror(r),
                    self.lcore
                ));
                Intr::Off
            };
        }
        q.intr == Intr::Ready
    }

    /// Whether the guest on queue `q` (if any) can kick this lcore out of
    /// a wait: its tx kick socket registered with our epoll (a guest
    /// before v10 has none, and keeps the lcore from waiting).
    fn kick_ready(&self, q: &DpQueue) -> bool {
        let Some(g) = q.guest else { return true };
        // SAFETY: we hold the state lock (the caller's loop); a short
        // scope whose only outside call is EAL's epoll control.
        let g = unsafe { GuestSlot::enter(g) };
        g.tx_kick
            .as_ref()
            .is_some_and(|k| k.register(self.epfd.as_raw_fd()))
    }

    /// Waits up to `wait_ms` for an rx interrupt of any of `queues` or a
    /// kick from one of their guests (all registered), or for the time to
    /// pass. A packet that came since the last poll has raised its event
    /// already: the wait then returns at once. The guests see
    /// `proxy_waiting` meanwhile; tx they published before they could
    /// see it is found by the look that follows the flag's fence.
    fn wait_intr(&self, queues: &[DpQueue], wait_ms: u32) {
        let guests = || queues.iter().filter_map(|q| q.guest.map(|g| (q, g)));
        let mut pending = false;
        for (_, g) in guests() {
            // SAFETY: we hold the state lock; a short scope, no DPDK call.
            unsafe { GuestSlot::enter(g).ctl.set_proxy_waiting(true) };
        }
        fence(Ordering::SeqCst);
        for (_, g) in guests() {
            // SAFETY: as above.
            pending |= unsafe { GuestSlot::enter(g).tx.pending() };
        }
        if !pending {
            for q in queues {
                // SAFETY: ethdev calls on our ports' queues; a PMD whose
                // interrupt needs no arming (net_tap) says ENOTSUP.
                unsafe { sys::rte_eth_dev_rx_intr_enable(q.port, q.queue) };
            }
            // SAFETY: all-zero is a valid array of plain C structs.
            let mut ev: [sys::rte_epoll_event; 8] = unsafe { std::mem::zeroed() };
            // SAFETY: EAL's wait on our epoll instance, into `ev`; the
            // kick sockets' records it may reach are boxed in live guests
            // (a guest is detached only while this lcore is paused).
            let n = unsafe {
                sys::rte_epoll_wait(
                    self.epfd.as_raw_fd(),
                    ev.as_mut_ptr(),
                    ev.len() as i32,
                    wait_ms as i32,
                )
            };
            for q in queues {
                // SAFETY: as above.
                unsafe { sys::rte_eth_dev_rx_intr_disable(q.port, q.queue) };
            }
            SocketStats::add(&self.sleeps.intr_waits, 1);
            if n > 0 {
                SocketStats::add(&self.sleeps.intr_wakes, 1);
            }
        }
        for (q, g) in guests() {
            // SAFETY: we hold the state lock; a short scope, no DPDK call.
            let kicks = unsafe {
                let g = GuestSlot::enter(g);
                g.ctl.set_proxy_waiting(false);
                g.tx_kick.as_ref().map_or(0, |k| k.drain())
            };
            if kicks > 0 {
                SocketStats::add(&q.stats.tx_kicks, kicks);
            }
        }
    }
}

/// One round on one queue: NIC rx -> guest (descriptors staged), guest
/// tx -> NIC, then the rx descriptors published. `TIMED` rounds also charge
/// their TSC cycles to the stages in `timing`. Returns whether a packet
/// moved.
///
/// # Safety
/// Caller holds the state lock; `q.guest` points to a live GuestRegion.
#[inline]
unsafe fn poll<const TIMED: bool>(
    q: &mut DpQueue,
    rx: &mut [*mut sys::rte_mbuf; BURST],
    tx: &mut [*mut sys::rte_mbuf; BURST],
    timing: &DpTiming,
) -> bool {
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
        return n > 0;
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
    n > 0 || k > 0
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
