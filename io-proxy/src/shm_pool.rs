//! The proxy's view of one guest's region, and the `shm_proxy` mempools that
//! carry the guest's buffers through the NIC.
//!
//! The NIC never sees an mbuf header the guest can write: the pools' objects
//! are mbuf headers in the proxy's own memory, attached to guest buffers
//! after the guest's descriptor was copied out and validated. The payload is
//! the only thing in shared memory the NIC touches.
//!
//! Each guest has two header pools:
//! - the **rx pool**, behind the NIC rx queue. A header that is free in this
//!   pool (in its backend or in an lcore's mempool cache) stays attached to
//!   a fill buffer: the NIC's next receive buffer. Fill buffers come from the
//!   guest's fill ring, or are tx buffers the guest flagged for recycling:
//!   those get an rx-pool header in `take_tx`, so when the NIC frees them
//!   after sending they go into the lcore cache and are the next buffers the
//!   NIC receives into, without a call into this module in between.
//! - the **tx pool** (no cache), for the other tx buffers: freeing one
//!   returns its buffer to the guest on the txdone ring.

use crate::dma::BAD_IOVA;
use bus_shm::proto::Layout;
use bus_shm::region::Region;
use bus_shm::ring::{
    Consumer, Desc, Producer, RingError, RxMeta, LEN_EMPTY, LEN_NOT_SENT, LEN_REJECTED, LEN_SENT,
    RX_META, RX_META_LEN, RX_META_OL_FLAGS, TX_RECYCLE,
};
use dpdk_sys as sys;
use std::ffi::{c_int, c_uint, c_void, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub const OPS_NAME: &CStr = c"shm_proxy";

/// What a header's buffer is: none (the header is free), a fill buffer
/// (the NIC receives into it; it goes back on the rx ring), or a guest tx
/// buffer (it goes back on txdone, or becomes a fill buffer if `recycle`).
pub const ORIGIN_NONE: u8 = 0;
pub const ORIGIN_FILL: u8 = 1;
pub const ORIGIN_TX: u8 = 2;

/// Lcore cache of the rx pool: a few bursts of fill buffers.
pub const RX_POOL_CACHE: u32 = 128;

/// Private area after each proxy mbuf header (priv_size bytes).
#[repr(C)]
pub struct HdrPriv {
    /// Region offset of the attached buffer.
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

/// # Safety
/// `m` must be a header of a `shm_proxy` pool.
#[inline]
pub unsafe fn hdr_priv<'a>(m: *mut sys::rte_mbuf) -> &'a mut HdrPriv {
    &mut *((m as *mut u8).add(std::mem::size_of::<sys::rte_mbuf>()) as *mut HdrPriv)
}

/// Per-socket counters, read by telemetry and `show stats`.
#[derive(Default)]
pub struct SocketStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// NIC packets dropped: no guest, guest ring full, or foreign mbufs.
    pub rx_drops: AtomicU64,
    /// NIC queue had no guest buffer to receive into.
    pub rx_no_buffer: AtomicU64,
    /// Guest packets the NIC did not take.
    pub tx_drops: AtomicU64,
    /// Descriptors from the guest that failed validation.
    pub bad_descriptors: AtomicU64,
    /// Buffers that could not be returned (guest ring full: a broken guest).
    pub lost_returns: AtomicU64,
    /// Packets whose payload the proxy copied. The proxy has no copy path:
    /// this stays 0 by construction, and telemetry shows it.
    pub payload_copies: AtomicU64,
    /// The guest broke the ring protocol; the control side disconnects it.
    pub guest_broken: std::sync::atomic::AtomicBool,
}

impl SocketStats {
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        // One writer at a time (the datapath, or control while it is paused).
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// Most guest tx descriptors `take_tx` handles in one call.
const TX_BURST_MAX: usize = crate::datapath::BURST;
/// Most packets `deliver_rx` gathers before handing them to the ring.
const RX_BURST_MAX: usize = crate::datapath::BURST;

/// What checking and attaching a burst's buffers needs from a
/// [`GuestRegion`], read once per burst (`take_tx`, `stage_fills`): the
/// loops' error paths call out with `&mut self`, so the compiler would
/// reload every field per packet.
#[derive(Clone, Copy)]
struct BurstView {
    base: usize,
    buf_start: u64,
    buf_end: u64,
    rx_room: u16,
    max_frame: u32,
    iova_base: u64,
}

impl BurstView {
    fn of(g: &GuestRegion) -> BurstView {
        BurstView {
            base: g.region.base() as usize,
            buf_start: g.layout.buf_off,
            buf_end: g.layout.buf_off + g.layout.buf_len,
            rx_room: g.rx_room,
            max_frame: g.max_frame,
            iova_base: g.iova_base,
        }
    }

    /// Is `[off, off + len)` wholly inside the buffer area?
    #[inline]
    fn in_buffers(&self, off: u64, len: u64) -> bool {
        off >= self.buf_start && off + len <= self.buf_end
    }

    #[inline]
    fn iova(&self, off: u64) -> u64 {
        iova_at(self.iova_base, off)
    }
}

/// The IOVA of the validated buffer at region offset `off`, given the
/// region's (`GuestRegion::iova_base`).
#[inline]
fn iova_at(iova_base: u64, off: u64) -> u64 {
    if iova_base == BAD_IOVA {
        BAD_IOVA
    } else {
        iova_base.wrapping_add(off)
    }
}

/// One connected guest's shared state, as the proxy sees it. Owned by the
/// control side; used by the datapath and the pool ops only while attached.
pub struct GuestRegion {
    pub region: Region,
    pub layout: Layout,
    pub fill: Consumer,
    pub rx: Producer,
    pub tx: Consumer,
    pub txdone: Producer,
    /// Validated fill buffers waiting for the NIC, without a header yet.
    staged: Vec<Desc>,
    staged_cap: usize,
    /// Headers of the rx pool's backend, each attached to a fill buffer.
    ready: Vec<*mut sys::rte_mbuf>,
    /// Free (unattached) headers of the rx pool and of the tx pool.
    free_hdrs: Vec<*mut sys::rte_mbuf>,
    free_tx_hdrs: Vec<*mut sys::rte_mbuf>,
    /// Data room the guest promised for every fill buffer.
    pub rx_room: u16,
    pub rx_headroom: u16,
    pub max_frame: u32,
    pub port_id: u16,
    /// The guest reads rx metadata (protocol v4): what the NIC set in a
    /// received header goes into the buffer's headroom.
    pub rx_meta: bool,
    /// IOVA of region offset 0 as the NIC sees the buffer area
    /// (`dma::DmaArea`), or `dma::BAD_IOVA` when the buffers have none.
    pub iova_base: u64,
    /// The rx pool (behind the NIC rx queue) and the tx pool.
    pub mp: *mut sys::rte_mempool,
    pub tx_mp: *mut sys::rte_mempool,
    pub stats: Arc<SocketStats>,
    /// Set when the guest broke the protocol; the control side disconnects it.
    pub broken: bool,
}

// SAFETY: used by one thread at a time (control, or the datapath while the
// queue is attached and the control side waits); see datapath.rs.
unsafe impl Send for GuestRegion {}

impl GuestRegion {
    pub fn new(
        region: Region,
        layout: Layout,
        stats: Arc<SocketStats>,
        port_id: u16,
    ) -> Result<Box<Self>, String> {
        fn e<T>(r: Result<T, bus_shm::proto::ProtoError>) -> Result<T, String> {
            r.map_err(|e| format!("guest region: {e}"))
        }
        let n = layout.ring_entries;
        Ok(Box::new(GuestRegion {
            fill: e(region.consumer(layout.fill_off, n))?,
            rx: e(region.producer(layout.rx_off, n))?,
            tx: e(region.consumer(layout.tx_off, n))?,
            txdone: e(region.producer(layout.txdone_off, n))?,
            region,
            layout,
            staged: Vec::with_capacity(n as usize),
            staged_cap: n as usize,
            ready: Vec::new(),
            free_hdrs: Vec::new(),
            free_tx_hdrs: Vec::new(),
            rx_room: 0,
            rx_headroom: 0,
            max_frame: 0,
            port_id,
            rx_meta: false,
            iova_base: BAD_IOVA,
            mp: std::ptr::null_mut(),
            tx_mp: std::ptr::null_mut(),
            stats,
            broken: false,
        }))
    }

    fn corrupt(&mut self, _e: RingError) {
        self.broken = true;
    }

    /// Moves fill descriptors into `staged`, validating each; rejected ones
    /// go straight back to the guest.
    fn stage_fills(&mut self) {
        let room = (self.staged_cap - self.staged.len()) as u32;
        if room == 0 {
            return;
        }
        let avail = match self.fill.available(room) {
            Ok(a) => a.min(room),
            Err(e) => return self.corrupt(e),
        };
        let v = BurstView::of(self);
        for i in 0..avail {
            let d = self.fill.read(i);
            let fits = d.data_off == self.rx_headroom && d.data_len == 0;
            if fits && v.in_buffers(d.offset(), v.rx_room as u64) {
                self.staged.push(d);
            } else {
                SocketStats::add(&self.stats.bad_descriptors, 1);
                self.return_rx(Desc {
                    data_len: LEN_EMPTY,
                    ..d
                });
            }
        }
        self.fill.release(avail);
    }

    fn return_rx(&mut self, d: Desc) {
        match self.rx.push(d) {
            Ok(true) => {}
            Ok(false) => SocketStats::add(&self.stats.lost_returns, 1),
            Err(e) => self.corrupt(e),
        }
    }

    fn return_tx(&mut self, d: Desc) {
        match self.txdone.push(d) {
            Ok(true) => {}
            Ok(false) => SocketStats::add(&self.stats.lost_returns, 1),
            Err(e) => self.corrupt(e),
        }
    }

    /// Points a free header at the buffer at `off` (already validated).
    ///
    /// # Safety
    /// `m` is a free header of this guest's pool; the range is in the region.
    #[inline]
    unsafe fn attach(&self, m: *mut sys::rte_mbuf, off: u64, buf_len: u16, d: &Desc, origin: u8) {
        let buf = self.region.base().add(off as usize);
        (*m).buf_addr = buf as *mut c_void;
        (*m).buf_iova = iova_at(self.iova_base, off);
        (*m).buf_len = buf_len;
        (*m).data_off = d.data_off;
        (*m).data_len = d.data_len;
        (*m).pkt_len = d.data_len as u32;
        (*m).nb_segs = 1;
        (*m).next = std::ptr::null_mut();
        (*m).ol_flags = 0;
        (*m).refcnt = 1;
        (*m).port = self.port_id;
        (*m).__bindgen_anon_1.packet_type = 0;
        (*m).__bindgen_anon_3.tx_offload = 0;
        (*m).__bindgen_anon_2.hash.rss = 0;
        (*m).vlan_tci = 0;
        let p = hdr_priv(m);
        p.buf_off = off;
        p.origin = origin;
        p.status = LEN_SENT;
        p.recycle = false;
    }

    /// Points an rx-pool header from `free_hdrs` at a recycled tx buffer
    /// (validated). Lighter than [`attach`](Self::attach): such a header
    /// came from the NIC's rx or from a pool free, so `refcnt` is 1,
    /// `nb_segs` 1 and `next` NULL already (the mbuf library's invariants for
    /// both), and the fields it does not set are ones a NIC's tx reads only
    /// under an offload flag, which it clears. Only the header's first line
    /// and its private word are written.
    ///
    /// # Safety
    /// `m` is a header of the rx pool taken from `free_hdrs`; `d` is
    /// validated and its buffer has `v.rx_room` bytes.
    #[inline]
    unsafe fn retarget_fill(v: &BurstView, m: *mut sys::rte_mbuf, d: &Desc) {
        let off = d.offset();
        (*m).buf_addr = v.base.wrapping_add(off as usize) as *mut c_void;
        (*m).buf_iova = v.iova(off);
        (*m).buf_len = v.rx_room;
        (*m).data_off = d.data_off;
        (*m).data_len = d.data_len;
        (*m).pkt_len = d.data_len as u32;
        (*m).ol_flags = 0;
        let p = hdr_priv(m);
        p.buf_off = off;
        p.origin = ORIGIN_FILL;
    }

    /// Takes up to `out.len()` guest tx descriptors, validated and attached
    /// to headers; invalid ones are returned as rejected. Returns how many
    /// headers it put in `out`, and their bytes.
    pub fn take_tx(&mut self, out: &mut [*mut sys::rte_mbuf]) -> (usize, u64) {
        let want = out.len().min(self.free_tx_hdrs.len()).min(TX_BURST_MAX) as u32;
        if want == 0 {
            return (0, 0);
        }
        let avail = match self.tx.available(want) {
            Ok(a) => a.min(want) as usize,
            Err(e) => {
                self.corrupt(e);
                return (0, 0);
            }
        };
        let v = BurstView::of(self);
        // Each descriptor is copied out of the ring once; all that follows
        // uses the copy. Payload lines are prefetched at the same time: a
        // software NIC copies them out on this core right after, and each
        // was just written by the guest's core. A recycled buffer is written
        // next (the NIC receives into it).
        let mut descs = [Desc::default(); TX_BURST_MAX];
        for (i, slot) in descs[..avail].iter_mut().enumerate() {
            let d = self.tx.read(i as u32);
            let p = v
                .base
                .wrapping_add(d.offset() as usize)
                .wrapping_add((d.data_off & !TX_RECYCLE) as usize);
            if d.data_off & TX_RECYCLE != 0 {
                sys::prefetch_write(p as *const u8);
            } else {
                sys::prefetch(p as *const u8);
            }
            *slot = d;
        }
        self.tx.release(avail as u32);
        let (mut n, mut bytes) = (0, 0u64);
        for d in &descs[..avail] {
            let recycle = d.data_off & TX_RECYCLE != 0;
            let d = Desc {
                data_off: d.data_off & !TX_RECYCLE,
                ..*d
            };
            let end = d.data_off as u64 + d.data_len as u64;
            let len_ok = d.data_len >= 14 && d.data_len as u32 <= v.max_frame;
            let ok = if recycle {
                // It will be a fill buffer next: it must be one, rx_room
                // bytes in the buffer area, with the packet within them.
                len_ok && end <= v.rx_room as u64 && v.in_buffers(d.offset(), v.rx_room as u64)
            } else {
                len_ok && v.in_buffers(d.offset(), end)
            };
            if !ok {
                SocketStats::add(&self.stats.bad_descriptors, 1);
                if recycle {
                    self.return_rx(Desc {
                        data_len: LEN_EMPTY,
                        ..d
                    });
                } else {
                    self.return_tx(Desc {
                        data_len: LEN_REJECTED,
                        ..d
                    });
                }
                continue;
            }
            let free_rx_hdr = if recycle { self.free_hdrs.pop() } else { None };
            let m = match free_rx_hdr {
                // The common case: an rx-pool header, so that the NIC frees
                // it into the rx pool as a fill buffer (see the module doc).
                Some(m) => {
                    // SAFETY: m is a free header of the rx pool (see
                    // retarget_fill); d is validated above.
                    unsafe { Self::retarget_fill(&v, m, &d) };
                    m
                }
                // No rx-pool header free, or not a recycled buffer: a
                // tx-pool header, which recycles the buffer when freed if
                // asked to.
                None => {
                    let m = self.free_tx_hdrs.pop().expect("checked above");
                    // SAFETY: m is a free header of the tx pool; d is validated.
                    unsafe {
                        self.attach(m, d.offset(), end as u16, &d, ORIGIN_TX);
                        hdr_priv(m).recycle = recycle;
                    }
                    m
                }
            };
            out[n] = m;
            n += 1;
            bytes += d.data_len as u64;
        }
        (n, bytes)
    }

    /// Hands received packets to the guest. Each mbuf must be one of our
    /// headers. Returns how many were delivered; the rest are freed (their
    /// buffers go back empty). The descriptors are staged: the caller
    /// publishes them with `self.rx.publish_staged()`, best after other
    /// work (see [`Producer::stage_all`]).
    ///
    /// # Safety
    /// Every pointer in `pkts` is a received mbuf owned by the caller.
    pub unsafe fn deliver_rx(&mut self, pkts: &[*mut sys::rte_mbuf]) -> usize {
        // Chosen once per burst: a NIC that tells nothing about its packets
        // (net_null) costs the loop no test per packet.
        if self.rx_meta {
            self.deliver_rx_with::<true>(pkts)
        } else {
            self.deliver_rx_with::<false>(pkts)
        }
    }

    /// [`deliver_rx`](Self::deliver_rx), passing rx metadata if `META`.
    #[inline(always)]
    unsafe fn deliver_rx_with<const META: bool>(&mut self, pkts: &[*mut sys::rte_mbuf]) -> usize {
        let mut delivered = 0;
        for burst in pkts.chunks(RX_BURST_MAX) {
            delivered += self.deliver_burst::<META>(burst);
        }
        delivered
    }

    /// [`deliver_rx_with`](Self::deliver_rx_with) for at most
    /// `RX_BURST_MAX` packets. The burst's descriptors and freed headers
    /// are gathered in locals and handed over once
    /// ([`stage_delivered`](Self::stage_delivered)): the loop writes no
    /// field of `self` per packet, and the ring's non-temporal stores go
    /// out back to back.
    #[inline(always)]
    unsafe fn deliver_burst<const META: bool>(&mut self, pkts: &[*mut sys::rte_mbuf]) -> usize {
        let mut room = match self.rx.free(pkts.len() as u32) {
            Ok(r) => r,
            Err(e) => {
                self.corrupt(e);
                0
            }
        };
        let mut descs = [Desc::default(); RX_BURST_MAX];
        let mut hdrs = [std::ptr::null_mut::<sys::rte_mbuf>(); RX_BURST_MAX];
        let (mut n, mut delivered, mut bytes) = (0usize, 0usize, 0u64);
        let base = self.region.base() as usize;
        let mp = self.mp;
        for &m in pkts {
            // Only the header's first line is read: its buffer's offset is
            // where buf_addr points (set by us, from a validated offset).
            let ours = (*m).pool == mp && (*m).nb_segs == 1 && (*m).data_len != LEN_EMPTY;
            if !ours || room == 0 {
                // Rare. What is gathered goes to the ring first, as the
                // free may return a buffer on it.
                self.stage_delivered(&descs[..n], &hdrs[..n]);
                delivered += n;
                n = 0;
                SocketStats::add(&self.stats.rx_drops, 1);
                sys::dpdk_sys_pktmbuf_free(m);
                room = self.rx.free(1).unwrap_or(0);
                continue;
            }
            let off = ((*m).buf_addr as usize).wrapping_sub(base) as u64;
            let mut data_off = (*m).data_off;
            if META {
                let flags = (*m).ol_flags & RX_META_OL_FLAGS;
                let packet_type = (*m).__bindgen_anon_1.packet_type;
                // A software NIC tells nothing: no store, no call.
                if flags != 0 || packet_type != 0 {
                    data_off = self.put_rx_meta(m, off, data_off, flags, packet_type);
                }
            }
            let len = (*m).data_len;
            descs[n] = Desc::new(off, data_off, len);
            hdrs[n] = m;
            n += 1;
            room -= 1;
            bytes += len as u64;
        }
        self.stage_delivered(&descs[..n], &hdrs[..n]);
        delivered += n;
        if delivered > 0 {
            SocketStats::add(&self.stats.rx_packets, delivered as u64);
            SocketStats::add(&self.stats.rx_bytes, bytes);
        }
        delivered
    }

    /// Stages the rx descriptors of delivered packets. Their buffers now
    /// belong to the guest and their headers are free again (a header's
    /// origin is set when it is next attached).
    #[inline(always)]
    fn stage_delivered(&mut self, descs: &[Desc], hdrs: &[*mut sys::rte_mbuf]) {
        self.rx.stage_all(descs);
        self.free_hdrs.extend_from_slice(hdrs);
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
        let rss = if flags & sys::RTE_MBUF_F_RX_RSS_HASH as u64 != 0 {
            (*m).__bindgen_anon_2.hash.rss
        } else {
            0
        };
        let meta = RxMeta {
            rss,
            packet_type,
            ol_flags: flags,
        };
        let at = off + (data_off - RX_META_LEN) as u64;
        let Some(p) = self.region.ptr(at, RX_META_LEN as u64) else {
            return data_off;
        };
        // SAFETY: in the region (checked), 8-byte aligned (buffer offsets
        // and the NIC's headroom are), in the buffer's headroom, which the
        // guest does not use until it reads this descriptor.
        let words = p as *mut u64;
        let [w0, w1] = meta.to_words();
        words.write_unaligned(w0.to_le());
        words.add(1).write_unaligned(w1.to_le());
        data_off | RX_META
    }

    /// Returns every buffer the proxy holds or that waits in the guest's
    /// fill and tx rings (STOP). Headers must all be back in the pools: the
    /// NIC no longer uses them and no lcore polls this guest.
    pub fn return_all(&mut self) {
        if !self.mp.is_null() {
            // SAFETY: no lcore uses the pool any more (see above).
            unsafe { sys::dpdk_sys_mempool_flush_caches(self.mp) };
        }
        while let Some(m) = self.ready.pop() {
            // SAFETY: a header of the rx pool, attached to a fill buffer.
            let p = unsafe { hdr_priv(m) };
            let off = p.buf_off;
            p.origin = ORIGIN_NONE;
            self.free_hdrs.push(m);
            self.return_rx(Desc::new(off, 0, LEN_EMPTY));
        }
        // What is staged, then what the fill ring still holds, a staging
        // area's worth at a time.
        loop {
            self.stage_fills();
            if self.staged.is_empty() {
                break;
            }
            while let Some(d) = self.staged.pop() {
                self.return_rx(Desc {
                    data_len: LEN_EMPTY,
                    ..d
                });
            }
            if self.broken {
                break;
            }
        }
        if let Ok(n) = self.tx.available(u32::MAX) {
            for i in 0..n {
                let d = self.tx.read(i);
                if d.data_off & TX_RECYCLE != 0 {
                    self.return_rx(Desc {
                        data_len: LEN_EMPTY,
                        ..d
                    });
                } else {
                    self.return_tx(Desc {
                        data_len: LEN_NOT_SENT,
                        ..d
                    });
                }
            }
            self.tx.release(n);
        }
    }
}

/// Free headers are kept in the GuestRegion; the pool's pool_data points at it.
///
/// # Safety
/// `mp` is a `shm_proxy` pool whose GuestRegion is alive.
unsafe fn guest<'a>(mp: *const sys::rte_mempool) -> &'a mut GuestRegion {
    &mut *((*mp).__bindgen_anon_1.pool_data as *mut GuestRegion)
}

unsafe extern "C" fn ops_alloc(mp: *mut sys::rte_mempool) -> c_int {
    sys::ffi_guard("shm_proxy ops_alloc", -libc::EIO, || {
        // The creator passed the GuestRegion as pool_config.
        if (*mp).pool_config.is_null() {
            return -libc::EINVAL;
        }
        (*mp).__bindgen_anon_1.pool_data = (*mp).pool_config;
        let g = guest(mp);
        let n = (*mp).size as usize;
        // Full capacity now: the datapath never allocates.
        if mp == g.mp {
            g.free_hdrs = Vec::with_capacity(n);
            g.ready = Vec::with_capacity(n);
        } else {
            g.free_tx_hdrs = Vec::with_capacity(n);
        }
        0
    })
}

unsafe extern "C" fn ops_free(_mp: *mut sys::rte_mempool) {}

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

/// A NIC (or the datapath) gives headers back. Rx-pool headers of fill
/// buffers stay attached (the next receive buffers); tx buffers go back to
/// the guest on txdone, or become fill buffers when flagged for recycling.
unsafe extern "C" fn ops_enqueue(
    mp: *mut sys::rte_mempool,
    objs: *const *mut c_void,
    n: c_uint,
) -> c_int {
    sys::ffi_guard("shm_proxy ops_enqueue", -libc::EIO, || {
        let g = guest(mp);
        let rx_pool = mp == g.mp;
        let (mut to_rx, mut to_txdone, mut lost) =
            (ReturnBatch::default(), ReturnBatch::default(), 0u64);
        for i in 0..n as usize {
            let m = *objs.add(i) as *mut sys::rte_mbuf;
            let p = hdr_priv(m);
            let empty = Desc::new(p.buf_off, 0, LEN_EMPTY);
            let returned = match p.origin {
                ORIGIN_FILL if rx_pool => {
                    g.ready.push(m);
                    continue;
                }
                ORIGIN_TX if p.recycle && g.staged.len() < g.staged_cap => {
                    g.staged.push(Desc::new(p.buf_off, g.rx_headroom, 0));
                    true
                }
                // A fill buffer the NIC did not use, or a recycled one that
                // finds the staging area full: back to the guest, empty.
                ORIGIN_FILL => to_rx.push(&mut g.rx, n, empty, &mut g.broken),
                ORIGIN_TX if p.recycle => to_rx.push(&mut g.rx, n, empty, &mut g.broken),
                ORIGIN_TX => {
                    let d = Desc::new(p.buf_off, 0, p.status);
                    to_txdone.push(&mut g.txdone, n, d, &mut g.broken)
                }
                _ => true,
            };
            if !returned {
                lost += 1;
            }
            p.origin = ORIGIN_NONE;
            p.recycle = false;
            if rx_pool {
                g.free_hdrs.push(m);
            } else {
                g.free_tx_hdrs.push(m);
            }
        }
        to_rx.publish(&mut g.rx);
        to_txdone.publish(&mut g.txdone);
        if lost > 0 {
            SocketStats::add(&g.stats.lost_returns, lost);
        }
        0
    })
}

unsafe extern "C" fn ops_dequeue(
    mp: *mut sys::rte_mempool,
    objs: *mut *mut c_void,
    n: c_uint,
) -> c_int {
    sys::ffi_guard("shm_proxy ops_dequeue", -libc::EIO, || {
        let g = guest(mp);
        if mp != g.mp {
            // Nothing allocates from the tx pool (take_tx uses its free list).
            return -libc::ENOBUFS;
        }
        let n = n as usize;
        let from_ready = n.min(g.ready.len());
        let rest = n - from_ready;
        if g.staged.len() < rest {
            g.stage_fills();
        }
        if g.staged.len() < rest || g.free_hdrs.len() < rest {
            // The mempool library first asks for a burst plus a cache refill
            // and then, if that fails, for the burst alone: count the latter.
            if n <= (*mp).cache_size as usize || (*mp).cache_size == 0 {
                SocketStats::add(&g.stats.rx_no_buffer, n as u64);
            }
            return -libc::ENOBUFS;
        }
        for i in 0..from_ready {
            *objs.add(i) = g.ready.pop().expect("counted above") as *mut c_void;
        }
        // From the end: cheapest, and any order is fine for the guest.
        let start = g.staged.len() - rest;
        // The NIC writes each buffer's first data line next (at the
        // guest's headroom, checked when staged); own them all now rather
        // than one at a time as its stores drain.
        for d in &g.staged[start..] {
            let p =
                (g.region.base() as usize).wrapping_add(d.offset() as usize + d.data_off as usize);
            sys::prefetch_write(p as *const u8);
        }
        for (i, k) in (start..g.staged.len()).enumerate() {
            let d = g.staged[k];
            let m = g.free_hdrs.pop().expect("checked above");
            g.attach(m, d.offset(), g.rx_room, &d, ORIGIN_FILL);
            *objs.add(from_ready + i) = m as *mut c_void;
        }
        g.staged.truncate(start);
        0
    })
}

unsafe extern "C" fn ops_get_count(mp: *const sys::rte_mempool) -> c_uint {
    sys::ffi_guard("shm_proxy ops_get_count", 0, || {
        let g = guest(mp);
        if mp == g.mp {
            (g.ready.len() + g.free_hdrs.len().min(g.staged.len())) as c_uint
        } else {
            g.free_tx_hdrs.len() as c_uint
        }
    })
}

/// Clears each object before the library enqueues it, so that every
/// header starts with origin NONE.
unsafe extern "C" fn ops_populate(
    mp: *mut sys::rte_mempool,
    max_objs: c_uint,
    vaddr: *mut c_void,
    iova: sys::rte_iova_t,
    len: usize,
    obj_cb: sys::rte_mempool_populate_obj_cb_t,
    obj_cb_arg: *mut c_void,
) -> c_int {
    sys::ffi_guard("shm_proxy ops_populate", -libc::EIO, || {
        std::ptr::write_bytes(vaddr as *mut u8, 0, len);
        sys::rte_mempool_op_populate_default(mp, max_objs, vaddr, iova, len, obj_cb, obj_cb_arg)
    })
}

/// Registers the `shm_proxy` ops (once, before the first guest).
pub fn register_ops() -> Result<(), String> {
    let r = sys::register_mempool_ops(OPS_NAME, |o| {
        o.alloc = Some(ops_alloc);
        o.free = Some(ops_free);
        o.enqueue = Some(ops_enqueue);
        o.dequeue = Some(ops_dequeue);
        o.get_count = Some(ops_get_count);
        o.populate = Some(ops_populate);
    });
    if r < 0 {
        return Err("cannot register shm_proxy mempool ops (ops table full)".into());
    }
    Ok(())
}

unsafe extern "C" fn init_hdr(
    mp: *mut sys::rte_mempool,
    _arg: *mut c_void,
    obj: *mut c_void,
    _idx: c_uint,
) {
    sys::ffi_guard("shm_proxy init_hdr", (), || {
        let m = obj as *mut sys::rte_mbuf;
        std::ptr::write_bytes(
            m as *mut u8,
            0,
            std::mem::size_of::<sys::rte_mbuf>() + HDR_PRIV_SIZE as usize,
        );
        (*m).pool = mp;
        (*m).priv_size = HDR_PRIV_SIZE;
        (*m).refcnt = 1;
        (*m).nb_segs = 1;
        (*m).port = u16::MAX;
    })
}

/// Creates the two header pools of a guest (see the module doc), `n`
/// headers each, and sets `g.mp` and `g.tx_mp`. The rx pool's data room is
/// the guest's rx buffer size. `g` must outlive the pools ([`free_pools`]).
pub fn create_pools(name: &str, n: u32, g: &mut GuestRegion, socket: i32) -> Result<(), String> {
    g.mp = create_pool(name, n, RX_POOL_CACHE, g, socket, true)?;
    match create_pool(&format!("{name}t"), n, 0, g, socket, false) {
        Ok(mp) => {
            g.tx_mp = mp;
            Ok(())
        }
        Err(e) => {
            free_pools(g);
            Err(e)
        }
    }
}

/// Frees the pools of `g`. Neither the NIC nor the datapath may hold one
/// of their headers.
pub fn free_pools(g: &mut GuestRegion) {
    for mp in [&mut g.mp, &mut g.tx_mp] {
        if !mp.is_null() {
            // SAFETY: per the contract above, nothing uses the pool.
            unsafe { sys::rte_mempool_free(*mp) };
            *mp = std::ptr::null_mut();
        }
    }
}

fn create_pool(
    name: &str,
    n: u32,
    cache: u32,
    g: &mut GuestRegion,
    socket: i32,
    rx_pool: bool,
) -> Result<*mut sys::rte_mempool, String> {
    let cname = std::ffi::CString::new(name).unwrap();
    // SAFETY: standard mempool creation sequence; g outlives the pool (the
    // caller frees the pool before dropping g).
    unsafe {
        let elt = std::mem::size_of::<sys::rte_mbuf>() as u32 + HDR_PRIV_SIZE as u32;
        let mp = sys::rte_mempool_create_empty(
            cname.as_ptr(),
            n,
            elt,
            cache,
            std::mem::size_of::<sys::rte_pktmbuf_pool_private>() as u32,
            socket,
            0,
        );
        if mp.is_null() {
            return Err(format!(
                "cannot create pool {name}: {}",
                sys::strerror(sys::rte_errno())
            ));
        }
        let mut priv_: sys::rte_pktmbuf_pool_private = std::mem::zeroed();
        priv_.mbuf_data_room_size = g.rx_room;
        priv_.mbuf_priv_size = HDR_PRIV_SIZE;
        sys::rte_pktmbuf_pool_init(mp, &mut priv_ as *mut _ as *mut c_void);
        let r = sys::rte_mempool_set_ops_byname(
            mp,
            OPS_NAME.as_ptr(),
            g as *mut GuestRegion as *mut c_void,
        );
        if r != 0 {
            sys::rte_mempool_free(mp);
            return Err(format!("set ops: {}", sys::strerror(-r)));
        }
        // ops_alloc (called by populate) tells the pools apart by g.mp.
        if rx_pool {
            g.mp = mp;
        }
        if sys::rte_mempool_populate_default(mp) < 0 {
            sys::rte_mempool_free(mp);
            if rx_pool {
                g.mp = std::ptr::null_mut();
            }
            return Err(format!(
                "populate {name}: {}",
                sys::strerror(sys::rte_errno())
            ));
        }
        sys::rte_mempool_obj_iter(mp, Some(init_hdr), std::ptr::null_mut());
        Ok(mp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{alloc_zeroed, dealloc, Layout as AllocLayout};
    use std::os::fd::OwnedFd;

    /// A guest region on a plain memfd, and the guest's end of its tx ring.
    fn guest() -> (Box<GuestRegion>, Producer) {
        let layout = Layout::compute(4096, 64, 1 << 20, 1 << 20);
        let m = memfd::MemfdOptions::default().create("iova-test").unwrap();
        m.as_file().set_len(layout.region_size).unwrap();
        let r = Region::map(OwnedFd::from(m.into_file()), layout.region_size as usize).unwrap();
        let guest_tx = r.producer(layout.tx_off, layout.ring_entries).unwrap();
        let mut g = GuestRegion::new(r, layout, Arc::new(SocketStats::default()), 0).unwrap();
        g.rx_room = 2048;
        g.rx_headroom = 128;
        g.max_frame = 1518;
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
