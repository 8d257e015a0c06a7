//! The proxy's view of one guest's region: its rings, the buffers the
//! proxy holds for it, and the moves between the rings and mbuf headers
//! that the datapath makes.
//!
//! The NIC never sees an mbuf header the guest can write: the headers are
//! in the proxy's own memory (the `shm_proxy` pools, `pool_ops.rs`),
//! attached to guest buffers only after the guest's descriptor was copied
//! out of the ring and checked ([`BufferRules`] makes a [`ValidTx`] or
//! [`ValidFill`]; nothing else attaches). The payload is the only thing in
//! shared memory the NIC touches.
//!
//! A [`GuestRegion`] is reached by three parties: the control thread, the
//! datapath lcore, and the mempool callbacks that DPDK calls from inside
//! our own calls into it (`rte_eth_tx_burst`, `rte_pktmbuf_free`,
//! `rte_eth_rx_queue_setup`, ...). It therefore lives in a [`GuestCell`]
//! and is reached through a raw pointer: each party makes a `&mut` for a
//! scope that calls no DPDK function, and never holds one across such a
//! call. The functions that do call into DPDK take the raw pointer.

use crate::dma::BAD_IOVA;
use crate::stats::SocketStats;
use crate::wakeup::TxKick;
use dpdk_sys as sys;
use shm_abi::desc::{
    BufferRules, Desc, Rejected, RxMeta, TxMeta, ValidFill, ValidTx, ValidTxMeta, DATA_OFF_MASK,
    LEN_EMPTY, LEN_NOT_SENT, LEN_SENT, MAX_SEGS, RX_META, RX_META_LEN, RX_META_OL_FLAGS,
    RX_RSS_HASH, SEG_MORE, TX_RECYCLE,
};
use shm_abi::hint;
use shm_abi::layout::ValidLayout;
use shm_abi::region::{AreaView, Region};
use shm_abi::ring::{Consumer, Producer, RingError};
use shm_abi::wake::{self, QueueCtl};
use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Packets per NIC burst, and most descriptors moved per ring per round.
pub const BURST: usize = 32;

/// What a header's buffer is: none (the header is free), a fill buffer
/// (the NIC receives into it; it goes back on the rx ring), or a guest tx
/// buffer (it goes back on txdone, or becomes a fill buffer if `recycle`).
pub const ORIGIN_NONE: u8 = 0;
pub const ORIGIN_FILL: u8 = 1;
pub const ORIGIN_TX: u8 = 2;

/// Private area after each proxy mbuf header (priv_size bytes).
#[repr(C)]
pub struct HdrPriv {
    /// Region offset of the attached buffer (checked when attached).
    pub buf_off: u64,
    pub origin: u8,
    /// What the guest is told when a tx buffer goes back (LEN_SENT or LEN_NOT_SENT).
    pub status: u16,
    /// A tx buffer the guest handed over for recycling: once the NIC is
    /// done with it, it becomes a fill buffer (and comes back on rx).
    pub recycle: bool,
}
pub const HDR_PRIV_SIZE: u16 = 16;
const _: () = assert!(std::mem::size_of::<HdrPriv>() <= HDR_PRIV_SIZE as usize);

// The protocol's tx metadata flags are DPDK's mbuf flags, bit for bit.
const _: () = assert!(
    shm_abi::desc::TX_META_OL_FLAGS
        == sys::RTE_MBUF_F_TX_IP_CKSUM
            | sys::RTE_MBUF_F_TX_IPV4
            | sys::RTE_MBUF_F_TX_IPV6
            | sys::RTE_MBUF_F_TX_VLAN
            | sys::RTE_MBUF_F_TX_L4_MASK
        && shm_abi::desc::TX_TCP_CKSUM == sys::RTE_MBUF_F_TX_TCP_CKSUM
        && shm_abi::desc::TX_UDP_CKSUM == sys::RTE_MBUF_F_TX_UDP_CKSUM
        && shm_abi::desc::TX_OFFLOADS_PASSED
            == (sys::RTE_ETH_TX_OFFLOAD_VLAN_INSERT
                | sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM
                | sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM
                | sys::RTE_ETH_TX_OFFLOAD_TCP_CKSUM) as u64
);

/// # Safety
/// `m` must be a header of a `shm_proxy` pool, not used through another
/// reference while the result lives.
#[inline]
pub unsafe fn hdr_priv<'a>(m: *mut sys::rte_mbuf) -> &'a mut HdrPriv {
    // SAFETY: a shm_proxy header has HDR_PRIV_SIZE bytes of private area
    // right after the rte_mbuf (priv_size, set by the pool's init).
    unsafe { &mut *((m as *mut u8).add(std::mem::size_of::<sys::rte_mbuf>()) as *mut HdrPriv) }
}

/// The IOVA of the checked buffer at region offset `off`, given the
/// region's ([`GuestRegion::iova_base`]).
#[inline]
fn iova_at(iova_base: u64, off: u64) -> u64 {
    if iova_base == BAD_IOVA {
        BAD_IOVA
    } else {
        iova_base.wrapping_add(off)
    }
}

/// One queue pair of a connected guest's region, as the proxy sees it: its
/// four rings, the buffer area, and the buffers the proxy holds for the
/// queue. See the module doc for who reaches it, and how.
pub struct GuestRegion {
    /// The mapping that holds the buffer area: the region of this queue's
    /// rings, or the one the guest shares between its sockets.
    pub(crate) buffers: Region,
    pub layout: ValidLayout,
    pub(crate) fill: Consumer,
    pub(crate) rx: Producer,
    pub(crate) tx: Consumer,
    pub(crate) txdone: Producer,
    /// Checked fill buffers waiting for the NIC, without a header yet.
    pub(crate) staged: Vec<ValidFill>,
    pub(crate) staged_cap: usize,
    /// Headers of the rx pool's backend, each attached to a fill buffer.
    pub(crate) ready: Vec<*mut sys::rte_mbuf>,
    /// Free (unattached) headers of the rx pool and of the tx pool.
    pub(crate) free_hdrs: Vec<*mut sys::rte_mbuf>,
    pub(crate) free_tx_hdrs: Vec<*mut sys::rte_mbuf>,
    /// What a descriptor must satisfy: the buffer area, the fill buffers'
    /// room and headroom the guest promised at START, the largest frame.
    pub rules: BufferRules,
    pub port_id: u16,
    /// The guest reads rx metadata (protocol v4): what the NIC set in a
    /// received header goes into the buffer's headroom.
    pub rx_meta: bool,
    /// The guest takes frames of several buffers on rx (v5 START with
    /// scatter, on a NIC that scatters); else a chain is dropped.
    pub rx_chains: bool,
    /// The mbuf tx offload flags the guest may ask for in tx metadata
    /// (v7, `shm_abi::desc::tx_meta_flags` of the NIC's passed offloads).
    pub tx_meta_flags: u64,
    /// The tx ring is in the middle of a chain that was rejected: its
    /// remaining buffers are rejected too.
    pub(crate) tx_skip: bool,
    /// IOVA of region offset 0 as the NIC sees the buffer area
    /// (`dma::DmaArea`), or `dma::BAD_IOVA` when the buffers have none.
    pub iova_base: u64,
    /// The rx pool (behind the NIC rx queue) and the tx pool.
    pub mp: *mut sys::rte_mempool,
    pub tx_mp: *mut sys::rte_mempool,
    pub stats: Arc<SocketStats>,
    /// Set when the guest broke the protocol; the control side disconnects it.
    pub broken: bool,
    /// The queue's control line (v10), and its rx wake socket while the
    /// guest's START asked for rx interrupts: a guest armed when rx is
    /// published is woken (`shm_abi::wake`).
    pub(crate) ctl: QueueCtl,
    pub(crate) rx_wake: Option<OwnedFd>,
    /// The queue's tx kick socket (v10, made at START): what a guest that
    /// sends while its lcore waits for interrupts kicks.
    pub(crate) tx_kick: Option<TxKick>,
}

/// A [`GuestRegion`] and the flag that says a scope is using it. Everyone
/// but its owner ([`GuestCell`]) reaches it by a [`GuestPtr`] and
/// [`GuestSlot::enter`]; see the module doc.
pub struct GuestSlot {
    /// Set while a [`GuestRef`] lives. One thread uses a slot at a time,
    /// so relaxed accesses suffice: the flag catches re-entry (a DPDK call
    /// made inside a scope, calling back into the pool ops), not races.
    busy: AtomicBool,
    region: UnsafeCell<GuestRegion>,
}

/// How the datapath, the pool ops and control name a guest's region.
pub type GuestPtr = *const GuestSlot;

/// The only `&mut GuestRegion` there is: made by [`GuestSlot::enter`],
/// released when dropped.
pub struct GuestRef<'a> {
    slot: &'a GuestSlot,
    g: &'a mut GuestRegion,
}

impl std::ops::Deref for GuestRef<'_> {
    type Target = GuestRegion;
    #[inline(always)]
    fn deref(&self) -> &GuestRegion {
        self.g
    }
}

impl std::ops::DerefMut for GuestRef<'_> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut GuestRegion {
        self.g
    }
}

impl Drop for GuestRef<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.slot.busy.store(false, Ordering::Relaxed);
    }
}

#[cold]
#[inline(never)]
fn reentered() -> ! {
    // Two live `&mut GuestRegion`: a scope called into DPDK, which called
    // back into the pool ops. Undefined behaviour if let through, so stop.
    crate::log::err(
        "internal error: a guest region was entered twice (re-entrant DPDK call); aborting",
    );
    eprintln!("dpdk-io-proxy: a guest region was entered twice (re-entrant DPDK call); aborting");
    std::process::abort();
}

impl GuestSlot {
    /// The region, for a scope that calls no DPDK function. Aborts the
    /// process if another scope holds it: that would be two `&mut` to one
    /// region, what this type exists to rule out.
    ///
    /// # Safety
    /// `s` points to a live slot (its [`GuestCell`] is not dropped), and
    /// only one thread uses it at a time (datapath.rs).
    #[inline(always)]
    pub unsafe fn enter<'a>(s: GuestPtr) -> GuestRef<'a> {
        // SAFETY: live (contract); a shared reference to the slot only
        // touches the atomic and the UnsafeCell's address.
        let slot = unsafe { &*s };
        if slot.busy.load(Ordering::Relaxed) {
            reentered();
        }
        slot.busy.store(true, Ordering::Relaxed);
        // SAFETY: no other GuestRef lives (the flag, one thread at a time),
        // so this is the only reference to the region.
        let g = unsafe { &mut *slot.region.get() };
        GuestRef { slot, g }
    }
}

/// The owner of a [`GuestSlot`]. Freed when dropped: by then no pool,
/// queue or datapath may refer to it (the session drops it after
/// `stop_guest` freed the pools).
pub struct GuestCell(NonNull<GuestSlot>);

// SAFETY: the region is used by one thread at a time: control, or the
// datapath while the queue is attached and control waits (datapath.rs).
unsafe impl Send for GuestCell {}

impl GuestCell {
    pub fn new(g: GuestRegion) -> GuestCell {
        let b = Box::new(GuestSlot {
            busy: AtomicBool::new(false),
            region: UnsafeCell::new(g),
        });
        GuestCell(NonNull::from(Box::leak(b)))
    }

    /// The pointer the other parties use.
    pub fn get(&self) -> GuestPtr {
        self.0.as_ptr()
    }
}

impl Drop for GuestCell {
    fn drop(&mut self) {
        // SAFETY: made by Box::leak in new(); this is the owner, and by
        // its contract nothing refers to the region any more.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// The buffer area of `region` that `rules` describe (a function of the
/// two fields, so that callers can borrow the others mutably meanwhile).
#[inline]
pub(crate) fn buffer_area<'r>(region: &'r Region, rules: &BufferRules) -> AreaView<'r> {
    region
        .area(rules.buf_start, rules.buf_end - rules.buf_start)
        .expect("the buffer area of a validated layout is in its region")
}

/// The free headers take_tx attaches guest tx buffers to.
struct HeaderStock<'a> {
    free_hdrs: &'a mut Vec<*mut sys::rte_mbuf>,
    free_tx_hdrs: &'a mut Vec<*mut sys::rte_mbuf>,
    port_id: u16,
    rx_room: u16,
    /// What tx metadata may ask for; whether a header of this round got
    /// offload flags.
    meta_flags: u64,
    offloads: bool,
}

impl HeaderStock<'_> {
    /// A header attached to the checked tx buffer `v` (at `buf`, `iova`):
    /// of the rx pool for a recycled buffer while one is free (the NIC
    /// frees it into the rx pool as a fill buffer, see pool_ops.rs), else
    /// of the tx pool. The caller made sure a tx-pool header is free.
    #[inline(always)]
    fn header_for(&mut self, v: &ValidTx, buf: *mut u8, iova: u64) -> *mut sys::rte_mbuf {
        let free_rx_hdr = if v.recycle() {
            self.free_hdrs.pop()
        } else {
            None
        };
        match free_rx_hdr {
            Some(m) => {
                // SAFETY: m is a free header of the rx pool; v is checked
                // and, being recycled, holds rx_room bytes.
                unsafe { retarget_fill(m, buf, iova, self.rx_room, v) };
                m
            }
            None => {
                let m = self.free_tx_hdrs.pop().expect("want <= free_tx_hdrs");
                // SAFETY: m is a free header of the tx pool; v is checked.
                unsafe {
                    attach(
                        m,
                        buf,
                        iova,
                        v.offset(),
                        v.end(),
                        v.data_off(),
                        v.data_len(),
                        ORIGIN_TX,
                        self.port_id,
                    );
                    hdr_priv(m).recycle = v.recycle();
                }
                m
            }
        }
    }
}

/// Where take_tx gives rejected buffers back.
struct Giveback<'a> {
    rx: &'a mut Producer,
    txdone: &'a mut Producer,
    stats: &'a SocketStats,
    broken: &'a mut bool,
}

impl Giveback<'_> {
    fn give(&mut self, r: Rejected) {
        give_back(self.rx, self.txdone, self.stats, self.broken, r);
    }
}

/// The header for a packet in one buffer, `d`, and its length; or None,
/// with the buffer given back rejected, if `d` or its tx metadata fails its
/// check.
#[inline(always)]
fn take_one(
    stock: &mut HeaderStock<'_>,
    back: &mut Giveback<'_>,
    rules: &BufferRules,
    d: Desc,
    area: &AreaView<'_>,
    iova_base: u64,
) -> Option<(*mut sys::rte_mbuf, u16)> {
    let checked = rules.check_tx(d).and_then(|v| {
        let meta = if v.meta() {
            Some(tx_meta(area, &v, v.data_len(), stock.meta_flags)?)
        } else {
            None
        };
        Some((v, meta))
    });
    let Some((v, meta)) = checked else {
        SocketStats::add(&back.stats.bad_descriptors, 1);
        back.give(BufferRules::reject_tx(d));
        return None;
    };
    let m = stock.header_for(
        &v,
        area.at_checked(v.offset()),
        iova_at(iova_base, v.offset()),
    );
    if let Some(meta) = meta {
        // SAFETY: m was just attached, not yet handed to DPDK.
        unsafe { apply_tx_meta(m, &meta) };
        stock.offloads = true;
    }
    Some((m, v.data_len()))
}

/// The tx metadata before checked buffer `v` (flagged [`ValidTx::meta`]),
/// copied out and checked against the offloads the guest may ask for and
/// the `head_len` bytes of the packet's first buffer.
#[cold]
#[inline(never)]
fn tx_meta(area: &AreaView<'_>, v: &ValidTx, head_len: u16, allowed: u64) -> Option<ValidTxMeta> {
    TxMeta::from_words(area.read_words(v.meta_offset())?).check(allowed, head_len)
}

/// Sets checked tx metadata on a header: the NIC applies it on send.
///
/// # Safety
/// `m` is a header of ours, attached and not yet handed to DPDK.
#[cold]
#[inline(never)]
unsafe fn apply_tx_meta(m: *mut sys::rte_mbuf, meta: &ValidTxMeta) {
    let t = meta.get();
    // SAFETY: per the contract, m is ours alone to write. The lengths fit
    // DPDK's bit fields (l2_len 7 bits, l3_len 9, l4_len 8: checked).
    unsafe {
        (*m).ol_flags = t.ol_flags;
        (*m).tx_offload = t.l2_len as u64 | (t.l3_len as u64) << 7 | (t.l4_len as u64) << 16;
        (*m).vlan_tci = t.vlan_tci;
    }
}

/// The chain of headers for packet `pkt` (its descriptors, the last
/// without SEG_MORE), and its length; or None, with every buffer given back
/// rejected, if any buffer or the whole fails its check or `ok` is false
/// (a chain cut short, or the tail of a rejected one).
#[cold]
#[inline(never)]
fn take_chain(
    stock: &mut HeaderStock<'_>,
    back: &mut Giveback<'_>,
    rules: &BufferRules,
    pkt: &[Desc],
    ok: bool,
    area: &AreaView<'_>,
    iova_base: u64,
) -> Option<(*mut sys::rte_mbuf, u32)> {
    let mut segs = [None::<ValidTx>; MAX_SEGS];
    let mut len = 0u32;
    let mut ok = ok && pkt.len() <= MAX_SEGS;
    let mut meta = None;
    if ok {
        for (k, &d) in pkt.iter().enumerate() {
            match rules.check_tx_seg(d) {
                // Tx metadata goes with the first buffer only.
                Some(v) if v.meta() && k > 0 => ok = false,
                Some(v) => {
                    if v.meta() {
                        meta = tx_meta(area, &v, v.data_len(), stock.meta_flags);
                        ok = ok && meta.is_some();
                    }
                    len += v.data_len() as u32;
                    segs[k] = Some(v);
                }
                None => ok = false,
            }
        }
        ok = ok && rules.check_packet(pkt.len(), len);
    }
    if !ok {
        SocketStats::add(&back.stats.bad_descriptors, pkt.len() as u64);
        for &d in pkt {
            back.give(BufferRules::reject_tx(d));
        }
        return None;
    }
    let mut first: *mut sys::rte_mbuf = std::ptr::null_mut();
    let mut prev: *mut sys::rte_mbuf = std::ptr::null_mut();
    for v in segs[..pkt.len()].iter().flatten() {
        let m = stock.header_for(
            v,
            area.at_checked(v.offset()),
            iova_at(iova_base, v.offset()),
        );
        if first.is_null() {
            first = m;
        } else {
            // SAFETY: both are headers of ours, attached above and not yet
            // handed to DPDK.
            unsafe { (*prev).next = m };
        }
        prev = m;
    }
    // SAFETY: as above.
    unsafe {
        (*first).nb_segs = pkt.len() as u16;
        (*first).pkt_len = len;
        if let Some(meta) = meta {
            apply_tx_meta(first, &meta);
            stock.offloads = true;
        }
    }
    Some((first, len))
}

/// Where a rejected descriptor's buffer goes: back on the rx ring (empty)
/// or on txdone. A ring without room loses it (counted); a corrupt ring
/// marks the guest broken.
fn give_back(
    rx: &mut Producer,
    txdone: &mut Producer,
    stats: &SocketStats,
    broken: &mut bool,
    r: Rejected,
) {
    let (ring, d) = match r {
        Rejected::ToRx(d) => (rx, d),
        Rejected::ToTxDone(d) => (txdone, d),
    };
    match ring.push(d) {
        Ok(true) => {}
        Ok(false) => SocketStats::add(&stats.lost_returns, 1),
        Err(RingError::Corrupt) => *broken = true,
    }
}

/// Points free header `m` at a checked buffer.
///
/// # Safety
/// `m` is a free header of this guest's pools, not otherwise referenced;
/// `buf` is the address of the checked region offset `off`.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn attach(
    m: *mut sys::rte_mbuf,
    buf: *mut u8,
    iova: u64,
    off: u64,
    buf_len: u16,
    data_off: u16,
    data_len: u16,
    origin: u8,
    port: u16,
) {
    // SAFETY: per the contract, m is ours alone to write.
    unsafe {
        (*m).buf_addr = buf as *mut c_void;
        (*m).buf_iova = iova;
        (*m).buf_len = buf_len;
        (*m).data_off = data_off;
        (*m).data_len = data_len;
        (*m).pkt_len = data_len as u32;
        (*m).nb_segs = 1;
        (*m).next = std::ptr::null_mut();
        (*m).ol_flags = 0;
        (*m).refcnt = 1;
        (*m).port = port;
        (*m).packet_type = 0;
        (*m).tx_offload = 0;
        (*m).hash.rss = 0;
        (*m).vlan_tci = 0;
        let p = hdr_priv(m);
        p.buf_off = off;
        p.origin = origin;
        p.status = LEN_SENT;
        p.recycle = false;
    }
}

/// Points an rx-pool header from `free_hdrs` at a recycled tx buffer.
/// Lighter than [`attach`]: such a header came from the NIC's rx or from a
/// pool free, so `refcnt` is 1, `nb_segs` 1 and `next` NULL already (the
/// mbuf library's invariants for both), and the fields it does not set are
/// ones a NIC's tx reads only under an offload flag, which it clears. Only
/// the header's first line and its private word are written.
///
/// # Safety
/// `m` is a header of the rx pool taken from `free_hdrs`; `buf` is the
/// address of `v`'s buffer, which holds `rx_room` bytes.
#[inline]
unsafe fn retarget_fill(m: *mut sys::rte_mbuf, buf: *mut u8, iova: u64, rx_room: u16, v: &ValidTx) {
    // SAFETY: per the contract, m is ours alone to write.
    unsafe {
        (*m).buf_addr = buf as *mut c_void;
        (*m).buf_iova = iova;
        (*m).buf_len = rx_room;
        (*m).data_off = v.data_off();
        (*m).data_len = v.data_len();
        (*m).pkt_len = v.data_len() as u32;
        // One segment until a chain links it (`next` is null: every path
        // that frees a header unlinks it, and it is on the second line).
        (*m).nb_segs = 1;
        (*m).ol_flags = 0;
        let p = hdr_priv(m);
        p.buf_off = v.offset();
        p.origin = ORIGIN_FILL;
    }
}

/// Buffers going back to the guest on one ring in one call: the ring's room
/// is looked up at the first one, and one publish covers them all.
#[derive(Default)]
struct ReturnBatch {
    room: Option<u32>,
    n: u32,
}

impl ReturnBatch {
    /// Writes `d` (at most `most` in this batch); false when the ring has no
    /// room (a broken guest: the buffer is lost) or is corrupt.
    fn push(&mut self, ring: &mut Producer, most: u32, d: Desc, broken: &mut bool) -> bool {
        let room = *self.room.get_or_insert_with(|| {
            ring.free(most).unwrap_or_else(|_| {
                *broken = true;
                0
            })
        });
        if self.n >= room {
            return false;
        }
        ring.write(self.n, d);
        self.n += 1;
        true
    }

    fn publish(&self, ring: &mut Producer) {
        if self.n > 0 {
            ring.publish(self.n);
        }
    }
}

impl GuestRegion {
    /// The proxy's side of queue pair `queue` of a guest's region, whose
    /// own buffer area holds the buffers.
    pub fn new(
        region: Region,
        layout: ValidLayout,
        queue: u16,
        stats: Arc<SocketStats>,
        port_id: u16,
    ) -> Result<GuestRegion, shm_abi::msg::ProtoError> {
        let buffers = region.clone();
        GuestRegion::with_buffers(&region, layout, queue, buffers, &layout, stats, port_id)
    }

    /// The proxy's side of queue pair `queue` of the rings in `region`
    /// (laid out as `layout`), whose buffers are the buffer area of
    /// `buffers` (laid out as `buf_layout`).
    pub fn with_buffers(
        region: &Region,
        layout: ValidLayout,
        queue: u16,
        buffers: Region,
        buf_layout: &ValidLayout,
        stats: Arc<SocketStats>,
        port_id: u16,
    ) -> Result<GuestRegion, shm_abi::msg::ProtoError> {
        let n = layout.ring_entries;
        let rings = layout
            .queue(queue)
            .ok_or(shm_abi::msg::ProtoError::Invalid("no such queue"))?;
        Ok(GuestRegion {
            fill: region.consumer(rings.fill, n)?,
            rx: region.producer(rings.rx, n)?,
            tx: region.consumer(rings.tx, n)?,
            txdone: region.producer(rings.txdone, n)?,
            buffers,
            rules: BufferRules {
                buf_start: buf_layout.buf_off,
                buf_end: buf_layout.buf_off + buf_layout.buf_len,
                ..BufferRules::default()
            },
            layout,
            staged: Vec::with_capacity(n as usize),
            staged_cap: n as usize,
            ready: Vec::new(),
            free_hdrs: Vec::new(),
            free_tx_hdrs: Vec::new(),
            port_id,
            rx_meta: false,
            rx_chains: false,
            tx_meta_flags: 0,
            tx_skip: false,
            iova_base: BAD_IOVA,
            mp: std::ptr::null_mut(),
            tx_mp: std::ptr::null_mut(),
            stats,
            broken: false,
            ctl: region.queue_ctl(&layout, queue)?,
            rx_wake: None,
            tx_kick: None,
        })
    }

    /// The mapping that holds the buffer area.
    pub fn buffers(&self) -> &Region {
        &self.buffers
    }

    /// Moves fill descriptors into `staged`, checking each; rejected ones
    /// go straight back to the guest.
    pub fn stage_fills(&mut self) {
        let room = (self.staged_cap - self.staged.len()) as u32;
        if room == 0 {
            return;
        }
        let avail = match self.fill.available(room) {
            Ok(a) => a.min(room),
            Err(RingError::Corrupt) => {
                self.broken = true;
                return;
            }
        };
        let rules = self.rules;
        for i in 0..avail {
            match rules.check_fill(self.fill.read(i)) {
                Ok(f) => self.staged.push(f),
                Err(r) => {
                    SocketStats::add(&self.stats.bad_descriptors, 1);
                    give_back(
                        &mut self.rx,
                        &mut self.txdone,
                        &self.stats,
                        &mut self.broken,
                        r,
                    );
                }
            }
        }
        self.fill.release(avail);
    }

    /// Gives `d` back on the rx ring, empty.
    pub(crate) fn return_rx(&mut self, d: Desc) {
        give_back(
            &mut self.rx,
            &mut self.txdone,
            &self.stats,
            &mut self.broken,
            Rejected::ToRx(Desc {
                data_len: LEN_EMPTY,
                ..d
            }),
        );
    }

    /// Points free header `m` at the checked fill buffer `f` (ops_dequeue).
    ///
    /// # Safety
    /// `m` is a free header of this guest's rx pool.
    #[inline]
    pub(crate) unsafe fn attach_fill(
        &self,
        area: &AreaView<'_>,
        m: *mut sys::rte_mbuf,
        f: ValidFill,
    ) {
        let off = f.offset();
        // SAFETY: m is free (contract); f was checked against the rules of
        // this area, so the address is its buffer's.
        unsafe {
            attach(
                m,
                area.at_checked(off),
                iova_at(self.iova_base, off),
                off,
                self.rules.rx_room,
                self.rules.rx_headroom,
                0,
                ORIGIN_FILL,
                self.port_id,
            )
        }
    }

    /// Takes up to `out.len()` guest tx descriptors, checked and attached
    /// to headers; rejected ones go back as such. Returns how many headers
    /// it put in `out`, their bytes, and whether any carries tx offload
    /// flags (then the NIC's tx_prepare runs first). Calls no DPDK function.
    pub fn take_tx(&mut self, out: &mut [*mut sys::rte_mbuf]) -> (usize, u64, bool) {
        let want = out.len().min(self.free_tx_hdrs.len()).min(BURST) as u32;
        if want == 0 {
            return (0, 0, false);
        }
        let avail = match self.tx.available(want) {
            Ok(a) => a.min(want) as usize,
            Err(RingError::Corrupt) => {
                self.broken = true;
                return (0, 0, false);
            }
        };
        // The fields this uses, apart: the buffer area view borrows one.
        let GuestRegion {
            buffers,
            rules,
            iova_base,
            tx,
            tx_skip,
            free_hdrs,
            free_tx_hdrs,
            port_id,
            tx_meta_flags,
            rx,
            txdone,
            stats,
            broken,
            ..
        } = self;
        let area = buffer_area(buffers, rules);
        let rules = *rules;
        let iova_base = *iova_base;
        let mut stock = HeaderStock {
            free_hdrs,
            free_tx_hdrs,
            port_id: *port_id,
            rx_room: rules.rx_room,
            meta_flags: *tx_meta_flags,
            offloads: false,
        };
        let mut back = Giveback {
            rx,
            txdone,
            stats,
            broken,
        };
        // Each descriptor is copied out of the ring once; all that follows
        // uses the copy. Payload lines are prefetched at the same time: a
        // software NIC copies them out on this core right after, and each
        // was just written by the guest's core. A recycled buffer is written
        // next (the NIC receives into it). Hints only: nothing is read
        // through these addresses before the check.
        let mut descs = [Desc::default(); BURST];
        // The flags of the whole burst: no SEG_MORE, no chain to go on with,
        // and it takes the one-buffer loop.
        let mut seen = 0u16;
        for (i, slot) in descs[..avail].iter_mut().enumerate() {
            let d = tx.read(i as u32);
            seen |= d.data_off;
            let p = area
                .addr(d.offset())
                .wrapping_add((d.data_off & DATA_OFF_MASK) as usize)
                as *const u8;
            if d.data_off & TX_RECYCLE != 0 {
                hint::prefetch_write(p);
            } else {
                hint::prefetch(p);
            }
            *slot = d;
        }
        let chains = rules.chains;
        let any_chain = *tx_skip || (chains && seen & SEG_MORE != 0);
        if !any_chain {
            tx.release(avail as u32);
            let (mut n, mut bytes) = (0, 0u64);
            for &d in &descs[..avail] {
                if let Some((m, len)) = take_one(&mut stock, &mut back, &rules, d, &area, iova_base)
                {
                    out[n] = m;
                    n += 1;
                    bytes += len as u64;
                }
            }
            return (n, bytes, stock.offloads);
        }
        // Whole packets only: a chain that `want` cut waits for the next
        // round, unless it is longer than a round (then it is rejected, and
        // so is the rest of it next round: `tx_skip`).
        let more = |d: &Desc| chains && d.data_off & SEG_MORE != 0;
        let mut take = avail;
        if avail > 0 && more(&descs[avail - 1]) {
            take = descs[..avail]
                .iter()
                .rposition(|d| !more(d))
                .map_or(0, |i| i + 1);
            if take == 0 && avail == want as usize {
                take = avail;
            }
        }
        tx.release(take as u32);
        let (mut n, mut bytes) = (0, 0u64);
        let mut i = 0;
        while i < take {
            let d = descs[i];
            if more(&d) || *tx_skip {
                // A packet of several buffers, or the rest of a rejected one.
                let start = i;
                while i < take && more(&descs[i]) {
                    i += 1;
                }
                let whole = i < take;
                i = if whole { i + 1 } else { take };
                let skip = std::mem::replace(tx_skip, !whole);
                if let Some((m, len)) = take_chain(
                    &mut stock,
                    &mut back,
                    &rules,
                    &descs[start..i],
                    whole && !skip,
                    &area,
                    iova_base,
                ) {
                    out[n] = m;
                    n += 1;
                    bytes += len as u64;
                }
                continue;
            }
            i += 1;
            if let Some((m, len)) = take_one(&mut stock, &mut back, &rules, d, &area, iova_base) {
                out[n] = m;
                n += 1;
                bytes += len as u64;
            }
        }
        (n, bytes, stock.offloads)
    }

    /// Headers given back to a pool (`ops_enqueue`: the NIC freed them
    /// after sending or did not use them, or the datapath freed them).
    /// Rx-pool headers of fill buffers stay attached (the next receive
    /// buffers); tx buffers go back to the guest on txdone, or become fill
    /// buffers when flagged for recycling. Calls no DPDK function.
    ///
    /// # Safety
    /// Each pointer in `hdrs` is a header of this guest's rx pool (if
    /// `rx_pool`) or tx pool, given back: no one else uses it.
    pub unsafe fn headers_back(&mut self, rx_pool: bool, hdrs: &[*mut sys::rte_mbuf]) {
        let n = hdrs.len() as u32;
        let (mut to_rx, mut to_txdone, mut lost) =
            (ReturnBatch::default(), ReturnBatch::default(), 0u64);
        for &m in hdrs {
            // SAFETY: a header of ours, given back (contract).
            let p = unsafe { hdr_priv(m) };
            let empty = Desc::new(p.buf_off, 0, LEN_EMPTY);
            let returned = match p.origin {
                ORIGIN_FILL if rx_pool => {
                    self.ready.push(m);
                    continue;
                }
                ORIGIN_TX if p.recycle && self.staged.len() < self.staged_cap => {
                    // Checked when the guest sent it (a recycled ValidTx is
                    // a whole fill buffer), kept in our header since.
                    self.staged.push(ValidFill::from_checked(p.buf_off));
                    true
                }
                // A fill buffer the NIC did not use, or a recycled one that
                // finds the staging area full: back to the guest, empty.
                ORIGIN_FILL => to_rx.push(&mut self.rx, n, empty, &mut self.broken),
                ORIGIN_TX if p.recycle => to_rx.push(&mut self.rx, n, empty, &mut self.broken),
                ORIGIN_TX => {
                    let d = Desc::new(p.buf_off, 0, p.status);
                    to_txdone.push(&mut self.txdone, n, d, &mut self.broken)
                }
                _ => true,
            };
            if !returned {
                lost += 1;
            }
            p.origin = ORIGIN_NONE;
            p.recycle = false;
            if rx_pool {
                self.free_hdrs.push(m);
            } else {
                self.free_tx_hdrs.push(m);
            }
        }
        to_rx.publish(&mut self.rx);
        to_txdone.publish(&mut self.txdone);
        if lost > 0 {
            SocketStats::add(&self.stats.lost_returns, lost);
        }
    }

    /// Fills `out` with rx-pool headers attached to fill buffers, all of
    /// them or none (`ops_dequeue`: the NIC's receive buffers). False when
    /// there are too few; `count_miss` counts that as `rx_no_buffer`.
    /// Calls no DPDK function.
    pub fn headers_out(&mut self, out: &mut [*mut sys::rte_mbuf], count_miss: bool) -> bool {
        let n = out.len();
        let from_ready = n.min(self.ready.len());
        let rest = n - from_ready;
        if self.staged.len() < rest {
            self.stage_fills();
        }
        if self.staged.len() < rest || self.free_hdrs.len() < rest {
            if count_miss {
                SocketStats::add(&self.stats.rx_no_buffer, n as u64);
            }
            return false;
        }
        for slot in &mut out[..from_ready] {
            *slot = self.ready.pop().expect("counted above");
        }
        // From the end: cheapest, and any order is fine for the guest.
        let start = self.staged.len() - rest;
        let area = buffer_area(&self.buffers, &self.rules);
        // The NIC writes each buffer's first data line next (at the
        // guest's headroom); own them all now rather than one at a time
        // as its stores drain.
        for f in &self.staged[start..] {
            let p = area.addr(f.offset() + self.rules.rx_headroom as u64);
            hint::prefetch_write(p as *const u8);
        }
        for (slot, k) in out[from_ready..].iter_mut().zip(start..) {
            let f = self.staged[k];
            let m = self.free_hdrs.pop().expect("checked above");
            // SAFETY: m is a free rx-pool header, f a checked fill buffer.
            unsafe { self.attach_fill(&area, m, f) };
            *slot = m;
        }
        self.staged.truncate(start);
        true
    }

    /// Hands the region free headers, as populating its pools does (for
    /// tests and fuzzing, which have no pool).
    #[doc(hidden)]
    pub fn add_free_headers(&mut self, rx: &[*mut sys::rte_mbuf], tx: &[*mut sys::rte_mbuf]) {
        self.free_hdrs.extend_from_slice(rx);
        self.free_tx_hdrs.extend_from_slice(tx);
    }

    /// Free rx-pool headers, free tx-pool headers, and rx-pool headers
    /// attached to fill buffers (for tests and fuzzing: with the ones
    /// lent out, they add up to the pools' sizes).
    #[doc(hidden)]
    pub fn header_counts(&self) -> (usize, usize, usize) {
        (
            self.free_hdrs.len(),
            self.free_tx_hdrs.len(),
            self.ready.len(),
        )
    }

    /// Stages the rx descriptors of delivered packets. Their buffers now
    /// belong to the guest and their headers are free again (a header's
    /// origin is set when it is next attached).
    #[inline(always)]
    fn stage_delivered(&mut self, descs: &[Desc], hdrs: &[*mut sys::rte_mbuf]) {
        self.rx.stage_all(descs);
        self.free_hdrs.extend_from_slice(hdrs);
    }

    /// Makes the staged rx descriptors visible to the guest, and wakes it
    /// if it sleeps on them.
    #[inline]
    pub fn publish_rx(&mut self) {
        if self.rx.publish_staged() && self.rx_wake.is_some() {
            self.wake_rx();
        }
    }

    /// After an rx publish on a queue with rx interrupts: one wake-up if
    /// the guest armed (the fence in `take_rx_armed` orders it after the
    /// publish).
    #[inline(never)]
    fn wake_rx(&mut self) {
        if let Some(fd) = &self.rx_wake {
            if self.ctl.take_rx_armed() {
                wake::wake(fd.as_fd());
                SocketStats::add(&self.stats.rx_wakes, 1);
            }
        }
    }

    /// Writes what the NIC set in received header `m` (`flags`, masked
    /// with [`RX_META_OL_FLAGS`], `packet_type`, the RSS hash) into the
    /// headroom of its buffer at `off`, right before the packet, and returns
    /// the descriptor's `data_off`: flagged [`RX_META`] if it did, as it is
    /// if there is no room before the packet. Out of line: a software NIC
    /// never gets here.
    ///
    /// # Safety
    /// `m` is one of this guest's rx headers, attached to the buffer at `off`.
    #[inline(never)]
    unsafe fn put_rx_meta(
        &self,
        m: *mut sys::rte_mbuf,
        off: u64,
        data_off: u16,
        flags: u64,
        packet_type: u32,
    ) -> u16 {
        if data_off < RX_META_LEN || data_off & RX_META != 0 {
            return data_off;
        }
        let rss = if flags & RX_RSS_HASH != 0 {
            // SAFETY: m is a live header of ours (contract).
            unsafe { (*m).hash.rss }
        } else {
            0
        };
        let meta = RxMeta {
            rss,
            packet_type,
            ol_flags: flags,
        };
        let at = off + (data_off - RX_META_LEN) as u64;
        let Some(p) = buffer_area(&self.buffers, &self.rules).ptr(at, RX_META_LEN as u64) else {
            return data_off;
        };
        // SAFETY: in the buffer area (checked), in the buffer's headroom,
        // which the guest does not use until it reads this descriptor.
        unsafe {
            let words = p as *mut u64;
            let [w0, w1] = meta.to_words();
            words.write_unaligned(w0.to_le());
            words.add(1).write_unaligned(w1.to_le());
        }
        data_off | RX_META
    }
}

/// Hands received packets to the guest. Each mbuf should be one of its
/// headers. Returns how many were delivered; the rest are freed (their
/// buffers go back to the guest empty). The descriptors are staged: the
/// caller publishes them ([`GuestRegion::publish_rx`]), best after other
/// work (see `Producer::stage_all`).
///
/// # Safety
/// `g` is a live region that no one else uses during the call (the
/// datapath holds the state lock); every pointer in `pkts` is a received
/// mbuf owned by the caller.
pub unsafe fn deliver_rx(g: GuestPtr, pkts: &[*mut sys::rte_mbuf]) -> usize {
    // Chosen once per burst: a NIC that tells nothing about its packets
    // (net_null) costs the loop no test per packet.
    // SAFETY: a short read; no other party uses g (contract).
    let meta = unsafe { GuestSlot::enter(g).rx_meta };
    let mut delivered = 0;
    for burst in pkts.chunks(BURST) {
        // SAFETY: per this function's contract.
        delivered += unsafe {
            if meta {
                deliver_burst::<true>(g, burst)
            } else {
                deliver_burst::<false>(g, burst)
            }
        };
    }
    delivered
}

/// [`deliver_rx`] for at most [`BURST`] packets, passing rx metadata if
/// `META`. The burst's descriptors and freed headers are gathered in
/// locals and handed over once: the loop writes no field of the region
/// per packet, and the ring's non-temporal stores go out back to back.
/// Packets it cannot deliver are freed after the region's scope ends: the
/// free calls back into the pool ops, which use the region.
///
/// # Safety
/// As [`deliver_rx`].
#[inline(always)]
unsafe fn deliver_burst<const META: bool>(g: GuestPtr, pkts: &[*mut sys::rte_mbuf]) -> usize {
    let mut drops = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
    let mut n_drops = 0;
    let delivered = {
        // SAFETY: no one else uses g (contract), and this scope calls no
        // DPDK function.
        let mut g = unsafe { GuestSlot::enter(g) };
        let g = &mut *g;
        let mut room = g.rx.free(pkts.len() as u32).unwrap_or_else(|_| {
            g.broken = true;
            0
        });
        let mut descs = [Desc::default(); BURST];
        let mut hdrs = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        let (mut n, mut packets, mut bytes) = (0usize, 0usize, 0u64);
        let area = buffer_area(&g.buffers, &g.rules);
        let mp = g.mp;
        let rx_chains = g.rx_chains;
        for (i, &m) in pkts.iter().enumerate() {
            // SAFETY: m is a received mbuf (contract). Only the header's
            // first line is read: its buffer's offset is where buf_addr
            // points (set by us, from a checked offset).
            let (ours, buf, mut data_off, len) = unsafe {
                (
                    (*m).pool == mp && (*m).nb_segs == 1 && (*m).data_len != LEN_EMPTY,
                    (*m).buf_addr as *const u8,
                    (*m).data_off,
                    (*m).data_len,
                )
            };
            if ours && room == 0 {
                // Rare: the guest may have made room since the first look.
                room = g.rx.free((pkts.len() - i) as u32).unwrap_or(0);
            }
            if !ours || room == 0 {
                // A frame the NIC scattered over several fill buffers goes
                // as a chain to a guest that takes them; anything else is
                // dropped.
                // SAFETY: m is a received mbuf; chain_descs checks that each
                // segment is one of our rx headers.
                let chain = match unsafe { (*m).nb_segs } {
                    segs if segs > 1 && rx_chains => {
                        if room < segs as u32 {
                            room =
                                g.rx.free((pkts.len() - i) as u32 + segs as u32)
                                    .unwrap_or(0);
                        }
                        if room >= segs as u32 {
                            // SAFETY: as above.
                            unsafe { chain_descs(m, &area, mp) }
                        } else {
                            None
                        }
                    }
                    _ => None,
                };
                let Some(chain) = chain else {
                    drops[n_drops] = m;
                    n_drops += 1;
                    continue;
                };
                // Staged with what came before it: the locals are empty
                // again for the one-buffer packets that follow (at most
                // BURST of them).
                g.rx.stage_all(&descs[..n]);
                g.free_hdrs.extend_from_slice(&hdrs[..n]);
                n = 0;
                for &(d, h) in chain.iter() {
                    g.rx.stage_all(std::slice::from_ref(&d));
                    g.free_hdrs.push(h);
                }
                room -= chain.len() as u32;
                packets += 1;
                // SAFETY: as above.
                bytes += unsafe { (*m).pkt_len } as u64;
                continue;
            }
            let off = area.offset_of_known(buf);
            if META {
                // SAFETY: m is one of our rx headers (checked above).
                let (flags, packet_type) =
                    unsafe { ((*m).ol_flags & RX_META_OL_FLAGS, (*m).packet_type) };
                // A software NIC tells nothing: no store, no call.
                if flags != 0 || packet_type != 0 {
                    // SAFETY: m is attached to the buffer at off.
                    data_off = unsafe { g.put_rx_meta(m, off, data_off, flags, packet_type) };
                }
            }
            descs[n] = Desc::new(off, data_off, len);
            hdrs[n] = m;
            n += 1;
            room -= 1;
            packets += 1;
            bytes += len as u64;
        }
        g.stage_delivered(&descs[..n], &hdrs[..n]);
        if packets > 0 {
            SocketStats::add(&g.stats.rx_packets, packets as u64);
            SocketStats::add(&g.stats.rx_bytes, bytes);
        }
        if n_drops > 0 {
            SocketStats::add(&g.stats.rx_drops, n_drops as u64);
        }
        packets
    };
    for &m in &drops[..n_drops] {
        // SAFETY: a received mbuf we own; no reference to g is alive.
        unsafe { sys::dpdk_sys_pktmbuf_free(m) };
    }
    delivered
}

/// The rx descriptors of a frame the NIC scattered over several of this
/// guest's fill buffers, first to last, all but the last flagged
/// [`SEG_MORE`], each with its header (unlinked, ready to be reused), or
/// None if a segment is not one of ours or the chain is too long (the
/// caller drops the frame whole).
///
/// # Safety
/// `m` is a received mbuf chain the caller owns.
#[inline(never)]
unsafe fn chain_descs(
    m: *mut sys::rte_mbuf,
    area: &AreaView<'_>,
    mp: *mut sys::rte_mempool,
) -> Option<SegList> {
    let mut chain = SegList::new();
    let mut seg = m;
    // SAFETY: walking the caller's chain; each segment is checked to be a
    // header of our rx pool (so attached to a checked fill buffer) before
    // its buffer address is used.
    unsafe {
        while !seg.is_null() {
            if (*seg).pool != mp || chain.len() == MAX_SEGS || (*seg).data_len == LEN_EMPTY {
                return None;
            }
            let next = (*seg).next;
            let more = if next.is_null() { 0 } else { SEG_MORE };
            let off = area.offset_of_known((*seg).buf_addr as *const u8);
            chain.push((Desc::new(off, (*seg).data_off | more, (*seg).data_len), seg));
            seg = next;
        }
        // The headers go back to the free list one by one: unlink them.
        for &(_, h) in chain.iter() {
            (*h).next = std::ptr::null_mut();
            (*h).nb_segs = 1;
        }
    }
    Some(chain)
}

/// The segments of one frame with their descriptors: a fixed-capacity
/// list, as the datapath allocates nothing.
struct SegList {
    items: [(Desc, *mut sys::rte_mbuf); MAX_SEGS],
    len: usize,
}

impl SegList {
    fn new() -> SegList {
        SegList {
            items: [(Desc::default(), std::ptr::null_mut()); MAX_SEGS],
            len: 0,
        }
    }
    fn push(&mut self, item: (Desc, *mut sys::rte_mbuf)) {
        self.items[self.len] = item;
        self.len += 1;
    }
    fn len(&self) -> usize {
        self.len
    }
    fn iter(&self) -> std::slice::Iter<'_, (Desc, *mut sys::rte_mbuf)> {
        self.items[..self.len].iter()
    }
}

/// Returns every buffer the proxy holds or that waits in the guest's
/// fill and tx rings (STOP). Headers must all be back in the pools: the
/// NIC no longer uses them and no lcore polls this guest.
///
/// # Safety
/// `g` is live and no other party uses it (the datapath is paused or does
/// not poll this guest).
pub unsafe fn return_all(g: GuestPtr) {
    // SAFETY: a short read (contract).
    let mp = unsafe { GuestSlot::enter(g).mp };
    if !mp.is_null() {
        // The lcore caches go back through ops_enqueue, which uses g: no
        // reference to it is alive here.
        // SAFETY: no lcore uses the pool any more (contract).
        unsafe { sys::dpdk_sys_mempool_flush_caches(mp) };
    }
    // SAFETY: no other party uses g, and this scope calls no DPDK function.
    let mut g = unsafe { GuestSlot::enter(g) };
    let g = &mut *g;
    while let Some(m) = g.ready.pop() {
        // SAFETY: a header of the rx pool, attached to a fill buffer.
        let p = unsafe { hdr_priv(m) };
        let off = p.buf_off;
        p.origin = ORIGIN_NONE;
        g.free_hdrs.push(m);
        g.return_rx(Desc::new(off, 0, LEN_EMPTY));
    }
    // What is staged, then what the fill ring still holds, a staging
    // area's worth at a time.
    loop {
        g.stage_fills();
        if g.staged.is_empty() {
            break;
        }
        while let Some(f) = g.staged.pop() {
            let d = Desc::new(f.offset(), g.rules.rx_headroom, LEN_EMPTY);
            g.return_rx(d);
        }
        if g.broken {
            break;
        }
    }
    if let Ok(n) = g.tx.available(u32::MAX) {
        for i in 0..n {
            let d = g.tx.read(i);
            let r = if d.data_off & TX_RECYCLE != 0 {
                Rejected::ToRx(Desc {
                    data_len: LEN_EMPTY,
                    data_off: d.data_off & !TX_RECYCLE,
                    ..d
                })
            } else {
                Rejected::ToTxDone(Desc {
                    data_len: LEN_NOT_SENT,
                    ..d
                })
            };
            give_back(&mut g.rx, &mut g.txdone, &g.stats, &mut g.broken, r);
        }
        g.tx.release(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_abi::layout::Layout;
    use std::alloc::{alloc_zeroed, dealloc, Layout as AllocLayout};
    use std::os::fd::OwnedFd;

    /// A guest region on a plain memfd, and the guest's end of its tx ring.
    fn guest() -> (GuestRegion, Producer) {
        let layout = Layout::compute(4096, 64, 1 << 20, 1 << 20);
        let m = memfd::MemfdOptions::default().create("iova-test").unwrap();
        m.as_file().set_len(layout.region_size).unwrap();
        let r = Region::map(OwnedFd::from(m.into_file()), layout.region_size as usize).unwrap();
        let layout = layout.validate(r.len() as u64).unwrap();
        let guest_tx = r.producer(layout.tx_off, layout.ring_entries).unwrap();
        let mut g = GuestRegion::new(r, layout, 0, Arc::new(SocketStats::default()), 0).unwrap();
        g.rules.rx_room = 2048;
        g.rules.rx_headroom = 128;
        g.rules.max_frame = 1518;
        (g, guest_tx)
    }

    /// Zeroed mbuf headers with their private area, freed on drop.
    struct Headers(Vec<*mut sys::rte_mbuf>);
    const HDR: usize = std::mem::size_of::<sys::rte_mbuf>() + HDR_PRIV_SIZE as usize;
    impl Headers {
        fn new(n: usize) -> Headers {
            let l = AllocLayout::from_size_align(HDR, 64).unwrap();
            // SAFETY: non-zero size; freed with the same layout in drop.
            Headers(
                (0..n)
                    .map(|_| unsafe { alloc_zeroed(l) } as *mut _)
                    .collect(),
            )
        }
    }
    impl Drop for Headers {
        fn drop(&mut self) {
            let l = AllocLayout::from_size_align(HDR, 64).unwrap();
            for &m in &self.0 {
                // SAFETY: allocated in new with this layout.
                unsafe { dealloc(m as *mut u8, l) };
            }
        }
    }

    /// Sends one buffer for tx and one for tx-then-recycle through
    /// `take_tx`, and returns the IOVAs their headers carry to the NIC.
    fn tx_iovas(iova_base: u64) -> ([u64; 2], [u64; 2]) {
        let (mut g, mut guest_tx) = guest();
        g.iova_base = iova_base;
        let (tx_hdrs, rx_hdrs) = (Headers::new(2), Headers::new(1));
        g.free_tx_hdrs = tx_hdrs.0.clone();
        g.free_hdrs = rx_hdrs.0.clone();
        let buf = g.layout.buf_off;
        let offs = [buf + 4096, buf + 8192];
        guest_tx.push(Desc::new(offs[0], 128, 60)).unwrap();
        guest_tx
            .push(Desc::new(offs[1], 128 | TX_RECYCLE, 60))
            .unwrap();
        let mut out = [std::ptr::null_mut(); 4];
        assert_eq!(g.take_tx(&mut out).0, 2);
        // SAFETY: take_tx filled the first two with our headers.
        let iovas = unsafe { [(*out[0]).buf_iova, (*out[1]).buf_iova] };
        // The recycled buffer took the rx-pool header (retarget_fill).
        assert_eq!(out[1], rx_hdrs.0[0]);
        (offs, iovas)
    }

    #[test]
    fn headers_carry_the_buffers_iova() {
        let (offs, iovas) = tx_iovas(0x7000_0000_0000);
        assert_eq!(
            iovas,
            [0x7000_0000_0000 + offs[0], 0x7000_0000_0000 + offs[1]]
        );
    }

    #[test]
    fn headers_carry_no_iova_when_the_buffers_have_none() {
        let (_, iovas) = tx_iovas(BAD_IOVA);
        assert_eq!(iovas, [BAD_IOVA, BAD_IOVA]);
    }
}

#[cfg(test)]
mod reentry_tests {
    use super::*;
    use shm_abi::layout::Layout;
    use std::os::fd::OwnedFd;

    fn cell() -> GuestCell {
        let layout = Layout::compute(4096, 64, 1 << 20, 1 << 20);
        let m = memfd::MemfdOptions::default()
            .create("reentry-test")
            .unwrap();
        m.as_file().set_len(layout.region_size).unwrap();
        let r = Region::map(OwnedFd::from(m.into_file()), layout.region_size as usize).unwrap();
        let layout = layout.validate(r.len() as u64).unwrap();
        GuestCell::new(GuestRegion::new(r, layout, 0, Arc::new(SocketStats::default()), 0).unwrap())
    }

    #[test]
    fn scopes_one_after_another_are_fine() {
        let c = cell();
        for _ in 0..3 {
            // SAFETY: the cell is live; this thread is its only user.
            let mut g = unsafe { GuestSlot::enter(c.get()) };
            g.broken = !g.broken;
        }
    }

    /// What the pool ops do when DPDK calls them from inside a scope that
    /// still holds the region (the defect this module is built against):
    /// the second entry aborts the process instead of making a second
    /// `&mut`. Run in a child process, as it dies.
    #[test]
    fn entering_a_held_region_aborts() {
        if std::env::var_os("IOP_REENTER_CHILD").is_some() {
            let c = cell();
            // SAFETY: live cell, one thread; the second entry is the point.
            let _held = unsafe { GuestSlot::enter(c.get()) };
            // SAFETY: as above.
            let _again = unsafe { GuestSlot::enter(c.get()) };
            unreachable!("entered twice");
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "guest_region::reentry_tests::entering_a_held_region_aborts",
            ])
            .env("IOP_REENTER_CHILD", "1")
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("entered twice"));
    }
}
