//! Guest rx/tx queues and their burst functions.
//!
//! The guest behaves towards the proxy like a NIC driver towards its NIC:
//! it posts empty buffers (fill ring) and gets packets back (rx ring); it
//! posts packets (tx ring) and gets the buffers back once sent (txdone ring).
//! A descriptor carries a buffer offset, never a pointer: the guest maps it
//! back to its mbuf through the geometry of its own pools and confirms with
//! the mbuf's `buf_addr`.
//!
//! Each queue counts the buffers it has out. Keeping that below the ring
//! size means the proxy can always give every buffer back.

use bus_shm::guest::{find_extent, Extent};
use dpdk_sys as sys;
use shm_abi::desc::{
    Desc, RxMeta, TxMeta, LEN_EMPTY, LEN_NOT_SENT, LEN_REJECTED, LEN_SENT, MAX_SEGS, RX_META,
    RX_META_LEN, RX_META_OL_FLAGS, RX_OFFLOAD_SCATTER, SEG_MORE, TX_ACTION_FLAGS, TX_META,
    TX_META_LEN, TX_RECYCLE,
};
use shm_abi::hint;
use shm_abi::region::AreaView;
use shm_abi::ring::{Consumer, Producer};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

// The protocol's rx metadata flags are DPDK's mbuf flags, bit for bit.
const _: () = assert!(
    RX_META_OL_FLAGS
        == (sys::RTE_MBUF_F_RX_RSS_HASH
            | sys::RTE_MBUF_F_RX_IP_CKSUM_MASK
            | sys::RTE_MBUF_F_RX_L4_CKSUM_MASK) as u64
);

// So is the scatter rx offload in HELLO_ACK's rx_offloads.
const _: () = assert!(RX_OFFLOAD_SCATTER == sys::RTE_ETH_RX_OFFLOAD_SCATTER as u64);

/// Refill the fill ring when at least this many entries are free.
const REFILL_MIN: u32 = 32;
const REFILL_MAX: u32 = 64;
const RECLAIM_MAX: usize = 64;

/// Counters written by the polling thread, read by stats_get().
#[derive(Default)]
pub struct Counter(AtomicU64);
impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a plain read-modify-write without a locked op.
        self.0
            .store(self.0.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// How many buffers the rx ring may have to take back: the ones the rx
/// queue posted plus the ones the tx queue handed over for recycling. Each
/// count has one writer (rx or tx thread); both sides keep a margin of
/// `BUDGET_SLACK` for the other's updates they have not seen yet.
#[repr(C, align(64))]
#[derive(Default)]
pub struct RxBudget {
    posted: AtomicU64,
    returned: AtomicU64,
    _pad: [u64; 6],
    recycled: AtomicU64,
    /// Nonzero while control pauses the pair's queues (a reconnect): a
    /// burst that sees it touches nothing and returns 0. Read per burst,
    /// written only by control: its line stays shared in the caches.
    pub pause: PauseLine,
    /// Each queue's side of a pause, on its own line.
    pub rx_gate: Gate,
    pub tx_gate: Gate,
}

#[repr(C, align(64))]
#[derive(Default)]
pub struct PauseLine(pub AtomicU32);

impl std::ops::Deref for PauseLine {
    type Target = AtomicU32;
    fn deref(&self) -> &AtomicU32 {
        &self.0
    }
}

/// One queue's side of a pause: `busy` while a burst runs, `ack` the pause
/// it last saw. Control sets the pause, waits 10 ms (so that every store
/// either side made before is visible to the other), then waits until each
/// queue acknowledged it or is not in a burst: from then on no burst
/// touches the rings or the buffers until the pause ends.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Gate {
    busy: AtomicBool,
    ack: AtomicU32,
}

impl Gate {
    /// At a burst's start: false (and acknowledged) if paused.
    #[inline(always)]
    fn enter(&self, pause: &AtomicU32) -> bool {
        self.busy.store(true, Ordering::Relaxed);
        let e = pause.load(Ordering::Relaxed);
        if e != 0 {
            self.ack.store(e, Ordering::Release);
            self.busy.store(false, Ordering::Release);
            return false;
        }
        true
    }
    #[inline(always)]
    fn leave(&self) {
        self.busy.store(false, Ordering::Release);
    }
    /// Whether this queue is out of the datapath for pause `e`.
    pub fn quiet(&self, e: u32) -> bool {
        self.ack.load(Ordering::Acquire) == e || !self.busy.load(Ordering::Acquire)
    }
}
pub(crate) const BUDGET_SLACK: u32 = 128;

impl RxBudget {
    /// Nothing out: the proxy that held the buffers is gone, and they are
    /// back in their pools ([`reclaim_held`]).
    pub fn reset(&self) {
        for c in [&self.posted, &self.returned, &self.recycled] {
            c.store(0, Ordering::Relaxed);
        }
    }
    #[inline]
    fn out(&self) -> u32 {
        let p = self.posted.load(Ordering::Relaxed);
        let r = self.recycled.load(Ordering::Relaxed);
        let b = self.returned.load(Ordering::Relaxed);
        p.wrapping_add(r).wrapping_sub(b) as u32
    }
    #[inline]
    fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// What an mbuf's `port` says while the proxy of guest port `port_id`
/// holds it (posted for rx, or handed over for tx): set when it goes on
/// the fill or tx ring, cleared when it comes back on rx or txdone. No
/// ethdev port id has bit 15 set, nor is this `RTE_MBUF_PORT_INVALID`.
/// If the proxy dies, the mbufs still marked are the ones it held
/// ([`reclaim_held`]).
#[inline(always)]
pub fn held_mark(port_id: u16) -> u16 {
    0x8000 | (port_id & 0x3fff)
}

const PORT_INVALID: u16 = u16::MAX;

/// Gives back to their pools the mbufs the proxy of port `port_id` held
/// when it went away: every mbuf of the buffer area's pools still marked
/// [`held_mark`]. Returns how many.
///
/// # Safety
/// The port's queues are stopped (not polled), and the proxy is gone: no
/// one else touches a marked mbuf. Mbufs of other ports' pools may be in
/// use on other lcores: only the mark is read (volatile) of those.
pub unsafe fn reclaim_held(port_id: u16) -> u64 {
    let mark = held_mark(port_id);
    let mut n = 0;
    for e in bus_shm::guest::mbuf_extents() {
        for k in 0..e.count {
            let m = (e.start + k * e.stride) as *mut sys::rte_mbuf;
            // SAFETY: an object of a live mbuf pool (the extent's); only
            // this port's queues write this mark, and they are stopped.
            unsafe {
                let port = std::ptr::addr_of!((*m).port);
                if port.read_volatile() == mark {
                    (*m).port = PORT_INVALID;
                    (*m).next = std::ptr::null_mut();
                    (*m).nb_segs = 1;
                    sys::dpdk_sys_pktmbuf_free(m);
                    n += 1;
                }
            }
        }
    }
    n
}

/// The buffer area of the connection's region (which lives for the rest
/// of the process).
pub type Area = AreaView<'static>;

/// The mbuf whose buffer starts at region offset `off`, found through
/// `extent` (or the registry when None), confirmed by its `buf_addr`.
///
/// # Safety
/// Extents describe live pools of mbufs in this process.
#[inline]
unsafe fn mbuf_at(area: &Area, extent: Option<&Extent>, off: u64) -> Option<*mut sys::rte_mbuf> {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let buf = area.addr(off);
        let e = match extent {
            Some(e) => *e,
            None => find_extent(buf)?,
        };
        let m = e.object_of(buf)? as *mut sys::rte_mbuf;
        ((*m).buf_addr as usize == buf).then_some(m)
    }
}

/// The rx checksum verdict bits of `ol_flags`.
const CKSUM_FLAGS: u64 =
    sys::RTE_MBUF_F_RX_IP_CKSUM_MASK as u64 | sys::RTE_MBUF_F_RX_L4_CKSUM_MASK as u64;

#[repr(C, align(64))]
pub struct RxQueue {
    pub fill: Producer,
    pub rx: Consumer,
    pub mp: *mut sys::rte_mempool,
    /// Where `mp`'s mbufs are.
    pub extent: Extent,
    pub area: Area,
    pub port_id: u16,
    pub headroom: u16,
    /// Protocol v4: rx descriptors may carry [`RX_META`].
    pub rx_meta: bool,
    /// The app enabled rx checksum offloads the proxy's NIC does not have:
    /// the verdicts are computed here.
    pub sw_cksum: bool,
    /// Protocol v5: rx descriptors may say [`SEG_MORE`]; `scatter`: the
    /// app takes chained mbufs (else a chain is dropped and counted).
    pub chains: bool,
    pub scatter: bool,
    /// Buffers the rx ring may have to take back, shared with the tx queue.
    pub budget: *const RxBudget,
    /// How many fresh buffers to keep out (enough for the NIC's ring).
    pub fill_target: u32,
    pub broken: bool,
    pub packets: Counter,
    pub bytes: Counter,
    pub nombuf: Counter,
    /// Packets still queued when the port stopped (freed unread).
    pub stop_discards: Counter,
    pub empty_returns: Counter,
    pub bad_desc: Counter,
    // Cold, after everything a burst without chains touches:
    /// The frame being received in several buffers: its first and last.
    pub chain_head: *mut sys::rte_mbuf,
    pub chain_tail: *mut sys::rte_mbuf,
    /// A chain was dropped before its end: drop its buffers up to it.
    pub chain_skip: bool,
    /// Frames dropped because they came in several buffers to an app that
    /// did not enable scatter, or broken off.
    pub chain_drops: Counter,
    /// The app enabled VLAN stripping: done here (the proxy's NIC hands
    /// tagged frames on as they are).
    pub vlan_strip: bool,
    /// Rx interrupts (protocol v10), when the app asked for them.
    pub intr: Option<crate::intr::RxIntr>,
}

#[repr(C, align(64))]
pub struct TxQueue {
    pub tx: Producer,
    pub done: Consumer,
    pub copy_pool: *mut sys::rte_mempool,
    pub area: Area,
    /// Buffers on the tx path that will come back on txdone.
    pub outstanding: u32,
    pub limit: u32,
    /// The largest frame the proxy's NIC sends.
    pub max_frame: u32,
    /// Protocol v5: a chained mbuf goes out as one descriptor per segment
    /// ([`SEG_MORE`]); data_off must then stay below the flag bits.
    pub data_off_limit: u16,
    pub chains: bool,
    /// [`held_mark`] of the port.
    pub held: u16,
    /// Mbuf flags that keep a packet off the common path: not zero-copy
    /// (indirect, external), or asking for a tx offload the NIC applies
    /// (then it carries tx metadata, v7).
    pub slow_flags: u64,
    /// The rx queue's pool and budget while the port runs (else null):
    /// buffers of that pool go back to the proxy as fill buffers.
    pub recycle_pool: *mut sys::rte_mempool,
    pub budget: *const RxBudget,
    /// The queue's tx kick socket (v10, from START_ACK): a burst that
    /// publishes while the proxy's lcore waits for interrupts kicks it.
    pub kick: Option<Box<crate::intr::TxKick>>,
    pub broken: bool,
    pub packets: Counter,
    pub bytes: Counter,
    pub copies: Counter,
    pub recycled: Counter,
    pub not_sent: Counter,
    pub rejected: Counter,
    pub bad_desc: Counter,
    // Cold, after everything a common burst touches:
    /// Bytes of the packets counted in `not_sent` and `rejected`.
    pub unsent_bytes: Counter,
    /// Frames longer than the NIC's largest, dropped here (as a NIC would).
    pub oversize: Counter,
    /// Packets sent with tx offloads for the proxy's NIC to apply.
    pub offloaded: Counter,
    /// The tx offload flags the app enabled that the proxy's NIC applies.
    pub meta_flags: u64,
}

/// The tx metadata for packet `m`: its offload flags the NIC applies
/// (`allowed`), its header lengths and VLAN tag.
///
/// # Safety
/// `m` is a valid packet mbuf.
unsafe fn tx_meta_of(m: *const sys::rte_mbuf, allowed: u64) -> TxMeta {
    // SAFETY: the caller's contract; reading the tx_offload bit fields.
    unsafe {
        let t = (*m).tx_offload;
        TxMeta {
            ol_flags: (*m).ol_flags & allowed,
            l2_len: (t & 0x7f) as u16,
            l3_len: ((t >> 7) & 0x1ff) as u16,
            l4_len: ((t >> 16) & 0xff) as u16,
            vlan_tci: (*m).vlan_tci,
        }
    }
}

/// Writes `meta` into the [`TX_META_LEN`] bytes of `m`'s headroom right
/// before its data.
///
/// # Safety
/// `m` is a direct mbuf the caller alone holds, `data_off >= TX_META_LEN`.
unsafe fn put_tx_meta(m: *mut sys::rte_mbuf, meta: TxMeta) {
    // SAFETY: the caller's contract: the bytes lie in m's own buffer.
    unsafe {
        let p = ((*m).buf_addr as *mut u8).add(((*m).data_off - TX_META_LEN) as usize) as *mut u64;
        let [w0, w1] = meta.to_words();
        p.write_unaligned(w0.to_le());
        p.add(1).write_unaligned(w1.to_le());
    }
}

impl RxQueue {
    /// Takes one buffer of a frame in several: links it after the ones
    /// before, and returns the whole frame with its last buffer (`more`
    /// clear). The frame's first buffer carries no rx metadata: the proxy
    /// sets none on chains.
    ///
    /// # Safety
    /// `m` is an mbuf of ours that the rx ring gave back, its data checked
    /// to lie in its buffer.
    #[cold]
    unsafe fn chain_segment(
        &mut self,
        m: *mut sys::rte_mbuf,
        data_off: u16,
        len: u16,
        more: bool,
    ) -> Option<*mut sys::rte_mbuf> {
        // SAFETY: the caller's contract; the chain's mbufs are ours.
        unsafe {
            (*m).data_off = data_off;
            (*m).data_len = len;
            (*m).pkt_len = len as u32;
            (*m).nb_segs = 1;
            (*m).next = std::ptr::null_mut();
            if self.chain_skip {
                sys::dpdk_sys_pktmbuf_free(m);
                self.chain_skip = more;
                return None;
            }
            if self.chain_head.is_null() {
                (*m).port = self.port_id;
                (*m).ol_flags = 0;
                (*m).packet_type = 0;
                (*m).vlan_tci = 0;
                (*m).vlan_tci_outer = 0;
                (*m).hash.rss = 0;
                self.chain_head = m;
            } else {
                let h = self.chain_head;
                (*self.chain_tail).next = m;
                (*h).nb_segs += 1;
                (*h).pkt_len += len as u32;
            }
            self.chain_tail = m;
            if more {
                return None;
            }
            let h = std::mem::replace(&mut self.chain_head, std::ptr::null_mut());
            self.chain_tail = std::ptr::null_mut();
            if !self.scatter {
                self.chain_drops.add(1);
                sys::dpdk_sys_pktmbuf_free(h);
                return None;
            }
            Some(h)
        }
    }

    /// Drops the frame being received in several buffers (a bad buffer
    /// broke it); with `more`, its remaining buffers too as they come.
    fn drop_chain(&mut self, more: bool) {
        let h = std::mem::replace(&mut self.chain_head, std::ptr::null_mut());
        self.chain_tail = std::ptr::null_mut();
        if !h.is_null() {
            // SAFETY: a chain of our mbufs, not handed out.
            unsafe { sys::dpdk_sys_pktmbuf_free(h) };
        }
        // Once per frame: a bad buffer while skipping is the same frame.
        if !self.chain_skip {
            self.chain_drops.add(1);
        }
        self.chain_skip = more;
    }

    /// Posts fresh buffers while there is room in the ring and the budget
    /// is below `fill_target`.
    pub fn refill(&mut self, min: u32) {
        loop {
            let Ok(room) = self.fill.free(REFILL_MAX) else {
                self.broken = true;
                return;
            };
            // SAFETY: the budget lives in the port, as long as the queue.
            let budget = unsafe { &*self.budget };
            // Fresh buffers fill the budget to `fill_target` only; the rest
            // is left to buffers recycled by the tx queue.
            let want = room
                .min(self.fill_target.saturating_sub(budget.out()))
                .min(REFILL_MAX);
            if want < min || want == 0 {
                return;
            }
            let mut mbufs = [std::ptr::null_mut::<sys::rte_mbuf>(); REFILL_MAX as usize];
            // SAFETY: mp is the queue's pool; mbufs has room for `want`.
            if unsafe { sys::dpdk_sys_pktmbuf_alloc_bulk(self.mp, mbufs.as_mut_ptr(), want) } != 0 {
                self.nombuf.add(want as u64);
                return;
            }
            for (i, &m) in mbufs[..want as usize].iter().enumerate() {
                // SAFETY: a fresh mbuf of our pool, checked at queue setup to
                // lie in the buffer area.
                let off = self
                    .area
                    .offset_of_known(unsafe { (*m).buf_addr } as *const u8);
                // SAFETY: as above; its first line was just written by alloc.
                unsafe { (*m).port = held_mark(self.port_id) };
                self.fill.write(i as u32, Desc::new(off, self.headroom, 0));
            }
            self.fill.publish(want);
            RxBudget::add(&budget.posted, want as u64);
        }
    }

    /// Frees what came back after the proxy let go of everything (stop).
    pub fn drain(&mut self) {
        let h = std::mem::replace(&mut self.chain_head, std::ptr::null_mut());
        self.chain_tail = std::ptr::null_mut();
        self.chain_skip = false;
        if !h.is_null() {
            self.stop_discards.add(1);
            // SAFETY: a frame of our mbufs, not handed out.
            unsafe { sys::dpdk_sys_pktmbuf_free(h) };
        }
        if let Ok(n) = self.rx.available(u32::MAX) {
            for i in 0..n {
                let d = self.rx.read(i);
                if d.data_len != LEN_EMPTY {
                    self.stop_discards.add(1);
                }
                // SAFETY: our pool's extent.
                if let Some(m) = unsafe { mbuf_at(&self.area, Some(&self.extent), d.offset()) } {
                    // SAFETY: our mbuf, returned by the proxy.
                    unsafe {
                        (*m).port = PORT_INVALID;
                        sys::dpdk_sys_pktmbuf_free(m)
                    };
                }
            }
            self.rx.release(n);
            // SAFETY: as in refill().
            RxBudget::add(unsafe { &(*self.budget).returned }, n as u64);
        }
    }
}

impl TxQueue {
    fn reclaim(&mut self) {
        let Ok(n) = self.done.available(RECLAIM_MAX as u32) else {
            self.broken = true;
            return;
        };
        let n = n.min(RECLAIM_MAX as u32);
        if n == 0 {
            return;
        }
        let mut done = [std::ptr::null_mut::<sys::rte_mbuf>(); RECLAIM_MAX];
        let mut k = 0;
        let mut last: Option<Extent> = None;
        for i in 0..n {
            let d = self.done.read(i);
            let buf = self.area.addr(d.offset());
            // Most completions come from one pool: try the last one first.
            let hit = last
                .filter(|e| e.object_of(buf).is_some())
                .or_else(|| find_extent(buf));
            // SAFETY: extents describe live pools of this process.
            let Some(m) = hit.and_then(|e| unsafe { mbuf_at(&self.area, Some(&e), d.offset()) })
            else {
                self.bad_desc.add(1);
                continue;
            };
            last = hit;
            // SAFETY: our mbuf, back from the proxy (see held_mark).
            unsafe { (*m).port = PORT_INVALID };
            match d.data_len {
                LEN_SENT => {}
                LEN_REJECTED => {
                    self.rejected.add(1);
                    // SAFETY: our mbuf, back from the proxy.
                    self.unsent_bytes.add(unsafe { (*m).data_len } as u64);
                }
                LEN_NOT_SENT => {
                    self.not_sent.add(1);
                    // SAFETY: as above.
                    self.unsent_bytes.add(unsafe { (*m).data_len } as u64);
                }
                _ => self.bad_desc.add(1),
            }
            done[k] = m;
            k += 1;
        }
        self.done.release(n);
        self.outstanding = self.outstanding.saturating_sub(n);
        if k > 0 {
            // SAFETY: the proxy is done with these buffers; one reference
            // each is ours (tx_burst took it).
            unsafe { sys::rte_pktmbuf_free_bulk(done.as_mut_ptr(), k as u32) };
        }
    }

    pub fn drain(&mut self) {
        while self.outstanding > 0 {
            let before = self.outstanding;
            self.reclaim();
            if self.outstanding == before {
                break; // the proxy is gone: what it held is lost with it
            }
        }
    }

    /// A copy of `m` in a buffer of the shared area (for chains, indirect or
    /// external mbufs, and mbufs from pools outside the area).
    ///
    /// # Safety
    /// `m` must be a valid packet mbuf.
    unsafe fn copy_into_area(&mut self, m: *mut sys::rte_mbuf) -> Option<*mut sys::rte_mbuf> {
        // SAFETY: the caller upholds this function's `# Safety` contract.
        unsafe {
            if self.copy_pool.is_null() {
                return None;
            }
            let c = sys::dpdk_sys_pktmbuf_alloc(self.copy_pool);
            if c.is_null() {
                return None;
            }
            let len = (*m).pkt_len;
            let room = (*c).buf_len as u32 - (*c).data_off as u32;
            if len > room {
                sys::dpdk_sys_pktmbuf_free(c);
                return None;
            }
            let dst = ((*c).buf_addr as *mut u8).add((*c).data_off as usize);
            let mut seg = m;
            let mut done = 0usize;
            while !seg.is_null() && done < len as usize {
                let n = ((*seg).data_len as usize).min(len as usize - done);
                let src = ((*seg).buf_addr as *const u8).add((*seg).data_off as usize);
                std::ptr::copy_nonoverlapping(src, dst.add(done), n);
                done += n;
                seg = (*seg).next;
            }
            (*c).data_len = done as u16;
            (*c).pkt_len = done as u32;
            self.copies.add(1);
            Some(c)
        }
    }
}

/// The descriptors of one rx burst made into packets in `pkts`: how many,
/// and their bytes. `CHAINS`: the burst has SEG_MORE, or a frame goes on
/// from the last; without it the loop has no test for either.
///
/// # Safety
/// As [`rx_burst`]; `avail` descriptors are available on the rx ring and
/// `pkts` has room for them.
#[inline(always)]
unsafe fn rx_descs<const CHAINS: bool>(
    q: &mut RxQueue,
    pkts: *mut *mut sys::rte_mbuf,
    avail: u32,
) -> (usize, u64) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut got = 0usize;
        let mut bytes = 0u64;
        // The flag bits of data_off on this connection; without CHAINS
        // the burst has no SEG_MORE and no frame goes on.
        let more_flag = if CHAINS { SEG_MORE } else { 0 };
        let flags = more_flag | if q.rx_meta { RX_META } else { 0 };
        // In the middle of a frame of several buffers (or of dropping
        // one): every buffer goes through chain_segment until it ends.
        let mut in_chain = CHAINS && (!q.chain_head.is_null() || q.chain_skip);
        for i in 0..avail {
            let d = q.rx.read(i);
            let Some(m) = mbuf_at(&q.area, Some(&q.extent), d.offset()) else {
                q.bad_desc.add(1);
                continue;
            };
            // Back from the proxy: no longer held (see held_mark).
            (*m).port = q.port_id;
            if d.data_len == LEN_EMPTY {
                q.empty_returns.add(1);
                sys::dpdk_sys_pktmbuf_free(m);
                continue;
            }
            let has_meta = q.rx_meta && d.data_off & RX_META != 0;
            let more = d.data_off & more_flag != 0;
            let data_off = d.data_off & !flags;
            if data_off as u32 + d.data_len as u32 > (*m).buf_len as u32 {
                q.bad_desc.add(1);
                sys::dpdk_sys_pktmbuf_free(m);
                if in_chain || more {
                    q.drop_chain(more);
                    in_chain = q.chain_skip;
                }
                continue;
            }
            if more || in_chain {
                // A frame in several buffers (v5): linked as they come,
                // handed out with its last one.
                let done = q.chain_segment(m, data_off, d.data_len, more);
                in_chain = !q.chain_head.is_null() || q.chain_skip;
                if let Some(c) = done {
                    bytes += (*c).pkt_len as u64;
                    *pkts.add(got) = c;
                    got += 1;
                }
                continue;
            }
            let meta = if has_meta && data_off >= RX_META_LEN {
                // SAFETY: in this mbuf's own buffer (data_off was checked
                // against buf_len), the bytes right before the packet.
                let p = ((*m).buf_addr as *const u8).add((data_off - RX_META_LEN) as usize)
                    as *const u64;
                RxMeta::from_words([
                    u64::from_le(p.read_unaligned()),
                    u64::from_le(p.add(1).read_unaligned()),
                ])
            } else {
                RxMeta::default()
            };
            // As rte_pktmbuf_reset() leaves it (recycled buffers skipped
            // it), plus what the NIC told.
            (*m).data_off = data_off;
            (*m).data_len = d.data_len;
            (*m).pkt_len = d.data_len as u32;
            (*m).port = q.port_id;
            (*m).nb_segs = 1;
            (*m).ol_flags = meta.ol_flags & RX_META_OL_FLAGS;
            (*m).packet_type = meta.packet_type;
            (*m).vlan_tci = 0;
            (*m).vlan_tci_outer = 0;
            (*m).hash.rss = meta.rss;
            bytes += d.data_len as u64;
            *pkts.add(got) = m;
            got += 1;
        }
        (got, bytes)
    }
}

/// Takes an 802.1Q tag off the front of received packet `m`, into
/// `vlan_tci`, as a NIC's VLAN strip offload does (`RTE_MBUF_F_RX_VLAN`,
/// `_STRIPPED`). Frames without one are left alone.
///
/// # Safety
/// `m` is a packet of ours whose first segment's data lies in its buffer.
#[cold]
unsafe fn strip_vlan(m: *mut sys::rte_mbuf) {
    const TPID_8021Q: [u8; 2] = [0x81, 0x00];
    // SAFETY: the caller's contract; only the first segment's data is
    // read and moved, within it.
    unsafe {
        if (*m).data_len < 18 {
            return;
        }
        let p = ((*m).buf_addr as *mut u8).add((*m).data_off as usize);
        if [*p.add(12), *p.add(13)] != TPID_8021Q {
            return;
        }
        (*m).vlan_tci = u16::from_be_bytes([*p.add(14), *p.add(15)]);
        // The addresses move up over the tag.
        std::ptr::copy(p, p.add(4), 12);
        (*m).data_off += 4;
        (*m).data_len -= 4;
        (*m).pkt_len -= 4;
        (*m).ol_flags |= (sys::RTE_MBUF_F_RX_VLAN | sys::RTE_MBUF_F_RX_VLAN_STRIPPED) as u64;
    }
}

/// `eth_rx_burst_t` of net_shm.
///
/// # Safety
/// Called by ethdev with the queue pointer set at setup and room for `n` mbufs.
pub unsafe extern "C" fn rx_burst(
    q: *mut std::ffi::c_void,
    pkts: *mut *mut sys::rte_mbuf,
    n: u16,
) -> u16 {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        sys::ffi_guard("net_shm rx_burst", 0, || {
            let q = &mut *(q as *mut RxQueue);
            // SAFETY: the budget lives in the port, as long as the queue.
            let b = &*q.budget;
            if !b.rx_gate.enter(&b.pause) {
                return 0;
            }
            let done = (|| {
                if q.broken {
                    return 0;
                }
                let avail = match q.rx.available(n as u32) {
                    Ok(a) => a.min(n as u32),
                    Err(_) => {
                        q.broken = true;
                        return 0;
                    }
                };
                // Start every packet's mbuf header on its way before touching any,
                // so that the misses overlap; with write intent, as the loop below
                // writes that line (a read prefetch may leave it shared with the
                // proxy's core, and the stores then wait for the upgrade). Hints
                // only: the descriptors are read again and validated below. The
                // payload is left alone: an app that does not read it (io
                // forwarding) would pull lines the proxy writes next into this
                // core's cache for nothing.
                let mut seen = 0u16;
                for i in 0..avail {
                    let d = q.rx.read(i);
                    seen |= d.data_off;
                    let buf = q.area.addr(d.offset());
                    hint::prefetch_write(buf.wrapping_sub(q.extent.buf_delta) as *const u8);
                }
                let (got, bytes) = if q.chains
                    && (seen & SEG_MORE != 0 || !q.chain_head.is_null() || q.chain_skip)
                {
                    rx_descs::<true>(q, pkts, avail)
                } else {
                    rx_descs::<false>(q, pkts, avail)
                };
                if q.sw_cksum {
                    for k in 0..got {
                        let m = *pkts.add(k);
                        // SAFETY: a one-segment packet of ours, its length checked
                        // against its buffer above; the helper reads only its data.
                        let verdict = sys::dpdk_sys_sw_rx_cksum(m);
                        (*m).ol_flags = ((*m).ol_flags & !CKSUM_FLAGS) | verdict;
                    }
                }
                if q.vlan_strip {
                    for k in 0..got {
                        strip_vlan(*pkts.add(k));
                    }
                }
                if avail > 0 {
                    q.rx.release(avail);
                    RxBudget::add(&(*q.budget).returned, avail as u64);
                }
                q.refill(REFILL_MIN);
                q.packets.add(got as u64);
                q.bytes.add(bytes);
                got as u16
            })();
            b.rx_gate.leave();
            done
        })
    }
}

/// What [`TxQueue::send_chain`] did with a chained mbuf.
enum ChainTx {
    /// On the ring: `descs` descriptors, of which `to_txdone` come back on
    /// txdone (the others are recycled).
    Sent { descs: u32, to_txdone: u32 },
    /// Not enough ring room for all its segments now.
    NoRoom,
    /// Not zero-copy (a segment shared, indirect, external, outside the
    /// area, or too many segments): the caller copies it.
    Copy,
}

/// What [`TxQueue::tx_other`] did with a packet the common case does not
/// take.
enum OtherTx {
    /// Longer than the NIC sends: freed and counted.
    Dropped,
    /// On the ring as a chain (see [`ChainTx::Sent`]), `len` bytes.
    Chain {
        descs: u32,
        to_txdone: u32,
        len: u32,
    },
    /// One buffer of the area (at `.1`) to send with `data_off` flags `.2`
    /// ([`TX_META`] or none): a copy (the original is freed), or the packet
    /// itself with tx metadata in its headroom.
    One(*mut sys::rte_mbuf, u64, u16),
    /// Not now (no ring room for the chain, no copy buffer): the burst ends.
    Stop,
}

impl TxQueue {
    /// A packet that is not one direct buffer of the area: too long (dropped
    /// and counted as a NIC would, never reported as sent), a chain of such
    /// buffers (zero-copy, v5), or anything else (copied).
    ///
    /// # Safety
    /// `m` is a valid packet mbuf the caller owns.
    #[cold]
    #[inline(never)]
    unsafe fn tx_other(
        &mut self,
        m: *mut sys::rte_mbuf,
        at: u32,
        room: u32,
        recycled: &mut u32,
        recycle_room: u32,
    ) -> OtherTx {
        // SAFETY: the caller's contract.
        unsafe {
            if (*m).pkt_len > self.max_frame {
                self.oversize.add(1);
                sys::dpdk_sys_pktmbuf_free(m);
                return OtherTx::Dropped;
            }
            let meta = if (*m).ol_flags & self.slow_flags & TX_ACTION_FLAGS != 0 {
                Some(tx_meta_of(m, self.meta_flags))
            } else {
                None
            };
            if (*m).nb_segs > 1 && self.chains {
                let len = (*m).pkt_len;
                match self.send_chain(m, at, room, recycled, recycle_room, meta) {
                    ChainTx::Sent { descs, to_txdone } => {
                        if meta.is_some() {
                            self.offloaded.add(1);
                        }
                        return OtherTx::Chain {
                            descs,
                            to_txdone,
                            len,
                        };
                    }
                    ChainTx::NoRoom => return OtherTx::Stop,
                    ChainTx::Copy => {}
                }
            }
            if let Some(meta) = meta {
                // The packet itself, if its own headroom can take the metadata.
                if (*m).nb_segs == 1
                    && (*m).ol_flags & NOT_ZERO_COPY == 0
                    && (*m).refcnt == 1
                    && (TX_META_LEN..self.data_off_limit).contains(&(*m).data_off)
                {
                    if let Some(off) = self
                        .area
                        .offset_of((*m).buf_addr as *const u8, (*m).buf_len as u64)
                    {
                        put_tx_meta(m, meta);
                        return OtherTx::One(m, off, TX_META);
                    }
                }
            }
            let Some(c) = self.copy_into_area(m) else {
                return OtherTx::Stop;
            };
            let Some(off) = self
                .area
                .offset_of((*c).buf_addr as *const u8, (*c).buf_len as u64)
            else {
                sys::dpdk_sys_pktmbuf_free(c);
                return OtherTx::Stop;
            };
            sys::dpdk_sys_pktmbuf_free(m);
            match meta {
                // A fresh buffer of the copy pool: its headroom is ours.
                Some(meta) if (*c).data_off >= TX_META_LEN => {
                    put_tx_meta(c, meta);
                    OtherTx::One(c, off, TX_META)
                }
                _ => OtherTx::One(c, off, 0),
            }
        }
    }
}

impl TxQueue {
    /// Writes chained mbuf `m` as one descriptor per segment from ring
    /// slot `at` (the proxy links them into one packet again), if every
    /// segment can go as it is and `room` has slots for all. Each segment
    /// is then unlinked: it comes back (txdone, or recycled) on its own.
    ///
    /// # Safety
    /// `m` is a valid packet mbuf the caller owns.
    #[cold]
    unsafe fn send_chain(
        &mut self,
        m: *mut sys::rte_mbuf,
        at: u32,
        room: u32,
        recycled: &mut u32,
        recycle_room: u32,
        meta: Option<TxMeta>,
    ) -> ChainTx {
        let mut segs = [(std::ptr::null_mut::<sys::rte_mbuf>(), 0u64); MAX_SEGS];
        let mut n = 0;
        let mut seg = m;
        // SAFETY: the caller's chain; only read until it is known to go.
        unsafe {
            while !seg.is_null() {
                if n == MAX_SEGS
                    || (*seg).refcnt != 1
                    || (*seg).ol_flags & NOT_ZERO_COPY != 0
                    || (*seg).data_off >= self.data_off_limit
                    || (*seg).data_len == 0
                    || (n == 0 && meta.is_some() && (*seg).data_off < TX_META_LEN)
                {
                    return ChainTx::Copy;
                }
                let Some(off) = self
                    .area
                    .offset_of((*seg).buf_addr as *const u8, (*seg).buf_len as u64)
                else {
                    return ChainTx::Copy;
                };
                segs[n] = (seg, off);
                n += 1;
                seg = (*seg).next;
            }
            if at + n as u32 > room {
                return ChainTx::NoRoom;
            }
            let mut to_txdone = 0;
            if let Some(meta) = meta {
                put_tx_meta(segs[0].0, meta);
            }
            for (k, &(s, off)) in segs[..n].iter().enumerate() {
                let more = if k + 1 < n { SEG_MORE } else { 0 };
                let more = if k == 0 && meta.is_some() {
                    more | TX_META
                } else {
                    more
                };
                let recycle = *recycled < recycle_room && (*s).pool == self.recycle_pool;
                let flag = if recycle {
                    *recycled += 1;
                    (*s).tx_offload = 0;
                    TX_RECYCLE
                } else {
                    to_txdone += 1;
                    0
                };
                self.tx.write(
                    at + k as u32,
                    Desc::new(off, (*s).data_off | more | flag, (*s).data_len),
                );
                (*s).port = self.held;
                (*s).next = std::ptr::null_mut();
                (*s).nb_segs = 1;
                (*s).pkt_len = (*s).data_len as u32;
            }
            ChainTx::Sent {
                descs: n as u32,
                to_txdone,
            }
        }
    }
}

pub const NOT_ZERO_COPY: u64 = sys::RTE_MBUF_F_INDIRECT | sys::RTE_MBUF_F_EXTERNAL;

/// `eth_tx_burst_t` of net_shm.
///
/// # Safety
/// Called by ethdev with the queue pointer set at setup and `n` valid mbufs.
pub unsafe extern "C" fn tx_burst(
    q: *mut std::ffi::c_void,
    pkts: *mut *mut sys::rte_mbuf,
    n: u16,
) -> u16 {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        sys::ffi_guard("net_shm tx_burst", 0, || {
            let q = &mut *(q as *mut TxQueue);
            // SAFETY: the budget lives in the port, as long as the queue.
            let b = &*q.budget;
            if !b.tx_gate.enter(&b.pause) {
                return 0;
            }
            let done = (|| {
                if q.broken {
                    return 0;
                }
                q.reclaim();
                let room = match q.tx.free(n as u32) {
                    // Descriptors: a chained packet takes one per segment.
                    Ok(r) => r.min(q.limit - q.outstanding),
                    Err(_) => {
                        q.broken = true;
                        return 0;
                    }
                };
                // `taken` packets of the burst are consumed (sent or dropped),
                // `packets` of them sent, in `sent` descriptors.
                let mut taken = 0usize;
                let mut packets = 0u64;
                let mut sent = 0u32;
                let mut bytes = 0u64;
                let mut recycled = 0u32;
                let mut to_done = 0u32;
                let recycle_room = if q.recycle_pool.is_null() {
                    0
                } else {
                    let b = &*q.budget;
                    (q.limit - BUDGET_SLACK).saturating_sub(b.out())
                };
                while sent < room && taken < n as usize {
                    let orig = *pkts.add(taken);
                    let mut m = orig;
                    let mut off = None;
                    // The common case: one direct buffer of the area holding a
                    // frame the NIC sends, data_off below the flag bits.
                    let mut flags = 0;
                    if (*m).nb_segs == 1
                        && (*m).ol_flags & q.slow_flags == 0
                        && (*m).data_off < q.data_off_limit
                        && (*m).data_len as u32 <= q.max_frame
                    {
                        off = q
                            .area
                            .offset_of((*m).buf_addr as *const u8, (*m).buf_len as u64);
                    }
                    if off.is_none() {
                        match q.tx_other(orig, sent, room, &mut recycled, recycle_room) {
                            OtherTx::Dropped => {
                                taken += 1;
                                continue;
                            }
                            OtherTx::Chain {
                                descs,
                                to_txdone,
                                len,
                            } => {
                                bytes += len as u64;
                                sent += descs;
                                to_done += to_txdone;
                                taken += 1;
                                packets += 1;
                                continue;
                            }
                            OtherTx::One(c, o, f) => {
                                m = c;
                                off = Some(o);
                                flags = f;
                                // It goes on the ring below.
                                if f & TX_META != 0 {
                                    q.offloaded.add(1);
                                }
                            }
                            OtherTx::Stop => break,
                        }
                    }
                    let Some(off) = off else { break };
                    bytes += (*m).data_len as u64;
                    // A buffer of the rx pool that only the PMD now holds can go
                    // straight back to the proxy's fill stock after it is sent.
                    let recycle = recycled < recycle_room
                        && (*m).pool == q.recycle_pool
                        && (*m).refcnt == 1
                        && (*m).data_off < TX_RECYCLE;
                    let data_off = if recycle {
                        recycled += 1;
                        // It skips rte_pktmbuf_reset(): clear what the app may have set.
                        (*m).tx_offload = 0;
                        (*m).data_off | TX_RECYCLE | flags
                    } else {
                        to_done += 1;
                        (*m).data_off | flags
                    };
                    q.tx.write(sent, Desc::new(off, data_off, (*m).data_len));
                    (*m).port = q.held;
                    // The proxy's side reads the packet's first line next (a
                    // software NIC copies it; DDIO reads it from the shared cache).
                    hint::cldemote(
                        ((*m).buf_addr as *const u8).wrapping_add((*m).data_off as usize),
                    );
                    sent += 1;
                    taken += 1;
                    packets += 1;
                }
                if sent > 0 {
                    q.tx.publish(sent);
                    if let Some(k) = &q.kick {
                        k.kick_if_waiting();
                    }
                    q.tx.demote_published(sent);
                    q.tx.prepare(n as u32);
                    q.outstanding += to_done;
                    if recycled > 0 {
                        RxBudget::add(&(*q.budget).recycled, recycled as u64);
                        q.recycled.add(recycled as u64);
                    }
                }
                q.packets.add(packets);
                q.bytes.add(bytes);
                taken as u16
            })();
            b.tx_gate.leave();
            done
        })
    }
}
