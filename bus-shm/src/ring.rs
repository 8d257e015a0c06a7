//! Single-producer single-consumer descriptor rings in shared memory.
//!
//! Each index has exactly one writer: the producer owns `prod`, the consumer
//! owns `cons`. Each side keeps its own index privately and only *writes* the
//! shared copy (Release); it never reads its own index back, so the peer
//! cannot move it. The peer's index is read (Acquire) only when the cached
//! view says the ring is empty or full, and is validated before use: a peer
//! that publishes an impossible index gets [`RingError::Corrupt`], never a
//! panic, a loop or an out-of-bounds access.
//!
//! A descriptor is one `u64` read and written with an atomic (relaxed)
//! access: it is copied out whole, then validated by the caller.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Size of a ring's index block: two cache lines, one per index.
pub const RING_HDR_SIZE: usize = 128;
/// Size of one descriptor: 8 per cache line.
pub const DESC_SIZE: usize = 8;

/// Bytes needed for a ring of `entries` descriptors (header included).
pub const fn ring_bytes(entries: u32) -> usize {
    RING_HDR_SIZE + entries as usize * DESC_SIZE
}

/// One buffer descriptor as it crosses the boundary: a single u64,
/// `buf_off / 8 (u32) | data_len (u16) | data_off (u16)`.
///
/// - `buf_off`: offset of the buffer (the mbuf's `buf_addr`) in the region,
///   a multiple of 8
/// - `data_off`, `data_len`: as in `rte_mbuf`
///
/// No pointer and no id crosses: the guest maps `buf_off` back to its mbuf
/// through the geometry of its own pools. Status travels in `data_len` on
/// the rings that return buffers (see `LEN_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub buf_off: u32,
    pub data_len: u16,
    pub data_off: u16,
}

/// rx ring: a fill buffer handed back without a packet.
pub const LEN_EMPTY: u16 = 0;
/// txdone ring: sent.
pub const LEN_SENT: u16 = 0;
/// txdone ring: the proxy rejected the descriptor (bad offset or length).
pub const LEN_REJECTED: u16 = 0xffff;
/// txdone ring: not sent (NIC queue full, or the port stopped).
pub const LEN_NOT_SENT: u16 = 0xfffe;

/// tx ring, in `data_off`: the buffer is from the pool of the port's rx
/// queue; once sent (or not), the proxy keeps it as a fill buffer instead of
/// returning it on txdone. It comes back on the rx ring.
pub const TX_RECYCLE: u16 = 0x8000;

/// rx ring, in `data_off` (protocol v4): the [`RX_META_LEN`] bytes right
/// before the packet, in the buffer's headroom, hold its rx metadata
/// ([`RxMeta`]).
pub const RX_META: u16 = 0x8000;
pub const RX_META_LEN: u16 = 16;

/// The mbuf `ol_flags` rx metadata may carry: the RSS hash's presence and
/// the checksum verdicts. Both sides mask with it.
pub const RX_META_OL_FLAGS: u64 = (dpdk_sys::RTE_MBUF_F_RX_RSS_HASH
    | dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK
    | dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_MASK) as u64;

/// What the NIC told about a received packet, as the proxy passes it on:
/// the RSS hash, the packet type and the checksum flags. In the buffer as
/// two little-endian u64: `hash | packet_type << 32`, then `ol_flags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    pub rss: u32,
    pub packet_type: u32,
    pub ol_flags: u64,
}

impl RxMeta {
    pub fn to_words(self) -> [u64; 2] {
        [
            self.rss as u64 | (self.packet_type as u64) << 32,
            self.ol_flags,
        ]
    }
    pub fn from_words(w: [u64; 2]) -> RxMeta {
        RxMeta {
            rss: w[0] as u32,
            packet_type: (w[0] >> 32) as u32,
            ol_flags: w[1],
        }
    }
}

impl Desc {
    /// A descriptor for the buffer at byte offset `off` (a multiple of 8;
    /// offsets up to 32 GiB).
    pub fn new(off: u64, data_off: u16, data_len: u16) -> Desc {
        debug_assert!(off.is_multiple_of(8));
        Desc {
            buf_off: (off / 8) as u32,
            data_len,
            data_off,
        }
    }
    /// Byte offset of the buffer in the region.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.buf_off as u64 * 8
    }
    fn to_word(self) -> u64 {
        self.buf_off as u64 | (self.data_len as u64) << 32 | (self.data_off as u64) << 48
    }
    fn from_word(w: u64) -> Desc {
        Desc {
            buf_off: w as u32,
            data_len: (w >> 32) as u16,
            data_off: (w >> 48) as u16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The peer published an index that no correct peer could.
    Corrupt,
}

/// Shared part of a ring, as laid out in the region.
#[repr(C)]
struct RingIndexes {
    prod: AtomicU32,
    _pad0: [u8; 60],
    cons: AtomicU32,
    _pad1: [u8; 60],
}
const _: () = assert!(std::mem::size_of::<RingIndexes>() == RING_HDR_SIZE);

/// Where a ring lives. Built only from a validated region range.
#[derive(Clone, Copy)]
struct RingMem {
    idx: *const RingIndexes,
    descs: *const AtomicU64,
    mask: u32,
}

// SAFETY: all shared accesses go through atomics; the pointers stay valid
// while the owning region mapping lives (the ring is owned next to it).
unsafe impl Send for RingMem {}

impl RingMem {
    /// # Safety
    /// `base` must point to `ring_bytes(entries)` bytes, 64-byte aligned,
    /// mapped for as long as the ring is used; `entries` a power of two.
    unsafe fn new(base: *mut u8, entries: u32) -> RingMem {
        debug_assert!(entries.is_power_of_two());
        RingMem {
            idx: base as *const RingIndexes,
            descs: base.add(RING_HDR_SIZE) as *const AtomicU64,
            mask: entries - 1,
        }
    }
    fn size(&self) -> u32 {
        self.mask + 1
    }
    #[inline]
    fn slot(&self, pos: u32) -> &AtomicU64 {
        // SAFETY: (pos & mask) < entries, within the validated range.
        unsafe { &*self.descs.add((pos & self.mask) as usize) }
    }
    fn indexes(&self) -> &RingIndexes {
        // SAFETY: valid for the life of the mapping (see new()).
        unsafe { &*self.idx }
    }
    /// Calls `f` once for each cache line holding the `n` slots from
    /// position `from` on (at most a ring's worth), with the line's first
    /// slot among them. For cache hints.
    #[inline]
    fn each_line(&self, from: u32, n: u32, mut f: impl FnMut(*const u8)) {
        const PER_LINE: u32 = (64 / DESC_SIZE) as u32;
        let end = from.wrapping_add(n.min(self.size()));
        let mut pos = from;
        while pos != end {
            f(self.slot(pos) as *const AtomicU64 as *const u8);
            let step = (PER_LINE - (pos & (PER_LINE - 1))).min(end.wrapping_sub(pos));
            pos = pos.wrapping_add(step);
        }
    }
}

/// Entries published and not yet consumed in the ring at `base`, read from
/// its two indexes; `None` if they are impossible (a corrupt peer). For
/// monitoring only: the value may be stale by the time it is used.
///
/// # Safety
/// `base` must point to a ring's index block (`RING_HDR_SIZE` bytes,
/// 64-byte aligned), mapped at least readable while this runs.
pub unsafe fn in_flight_at(base: *const u8, entries: u32) -> Option<u32> {
    let idx = &*(base as *const RingIndexes);
    // Consumer first: it never passes the producer, so reading it first
    // cannot show more entries than there were.
    let cons = idx.cons.load(Ordering::Acquire);
    let prod = idx.prod.load(Ordering::Acquire);
    let n = prod.wrapping_sub(cons);
    (n <= entries).then_some(n)
}

/// The producing end of a ring.
pub struct Producer {
    mem: RingMem,
    /// Published position.
    prod: u32,
    /// Descriptors stored after `prod` by [`stage_all`](Self::stage_all), not yet
    /// published.
    staged: u32,
    cons_cache: u32,
}

impl Producer {
    /// # Safety
    /// As [`RingMem::new`]; only one producer may exist per ring.
    pub unsafe fn new(base: *mut u8, entries: u32) -> Producer {
        let mem = RingMem::new(base, entries);
        // Start from what is published: a fresh region holds zeros; a ring
        // taken over after a stop continues where it was.
        let prod = mem.indexes().prod.load(Ordering::Acquire);
        let mut p = Producer {
            mem,
            prod,
            staged: 0,
            cons_cache: prod,
        };
        let _ = p.refresh();
        p
    }

    fn refresh(&mut self) -> Result<(), RingError> {
        let cons = self.mem.indexes().cons.load(Ordering::Acquire);
        // The consumer can be at most `size` behind us and never ahead.
        if self.prod.wrapping_sub(cons) > self.mem.size() {
            return Err(RingError::Corrupt);
        }
        self.cons_cache = cons;
        Ok(())
    }

    /// Where the next descriptor goes.
    #[inline]
    fn next_pos(&self) -> u32 {
        self.prod.wrapping_add(self.staged)
    }

    /// Free entries; re-reads the consumer index only when the cached view
    /// has less than `want`.
    #[inline]
    pub fn free(&mut self, want: u32) -> Result<u32, RingError> {
        let used = |p: &Self| p.next_pos().wrapping_sub(p.cons_cache);
        let mut free = self.mem.size() - used(self);
        if free < want {
            self.refresh()?;
            free = self.mem.size() - used(self);
        }
        Ok(free)
    }

    /// Writes the `i`-th descriptor after the current producer position.
    /// The caller must have checked `i < free()`.
    #[inline]
    pub fn write(&mut self, i: u32, d: Desc) {
        self.mem
            .slot(self.next_pos().wrapping_add(i))
            .store(d.to_word(), Ordering::Relaxed);
    }

    /// Stores `descs`, in order, for the next [`publish`](Self::publish) (or
    /// [`publish_staged`](Self::publish_staged)), with non-temporal stores:
    /// they neither wait for the line, which the consumer's core holds (it
    /// read the ring a lap ago, or its prefetcher fetched ahead), nor hold
    /// up the stores after them. The publish that follows fences them, so
    /// publishing late (after other work) makes that fence cheap. The caller
    /// must have checked that `free()` has room for them all.
    #[inline]
    pub fn stage_all(&mut self, descs: &[Desc]) {
        let mut pos = self.next_pos();
        for d in descs {
            let slot = self.mem.slot(pos);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: slot is within the ring (see RingMem::slot); an
            // aligned 8-byte store is single-copy atomic, like the relaxed
            // store of `write`.
            unsafe {
                std::arch::x86_64::_mm_stream_si64(slot.as_ptr() as *mut i64, d.to_word() as i64)
            };
            #[cfg(not(target_arch = "x86_64"))]
            slot.store(d.to_word(), Ordering::Relaxed);
            pos = pos.wrapping_add(1);
        }
        self.staged += descs.len() as u32;
    }

    /// Makes the staged descriptors and `n` more written ones visible to
    /// the consumer.
    #[inline]
    pub fn publish(&mut self, n: u32) {
        #[cfg(target_arch = "x86_64")]
        if self.staged > 0 {
            // Non-temporal stores are not ordered with later stores: make
            // them visible before the index.
            // SAFETY: sfence has no operands and no other effect.
            unsafe { std::arch::x86_64::_mm_sfence() };
        }
        self.prod = self.prod.wrapping_add(self.staged + n);
        self.staged = 0;
        self.mem.indexes().prod.store(self.prod, Ordering::Release);
    }

    /// Publishes what [`stage_all`](Self::stage_all) stored, if anything.
    #[inline]
    pub fn publish_staged(&mut self) {
        if self.staged > 0 {
            self.publish(0);
        }
    }

    /// Takes ownership of the lines that the next `n` descriptors will be
    /// written to, ahead of time. The consumer last read them a ring ago, so
    /// the stores would otherwise wait for those lines one at a time. A
    /// hint: it changes nothing the consumer can see.
    #[inline]
    pub fn prepare(&self, n: u32) {
        self.mem
            .each_line(self.next_pos(), n, dpdk_sys::prefetch_write);
    }

    /// Pushes the lines of the last `n` published descriptors and of the
    /// producer index out of this core's caches towards the shared one
    /// ([`dpdk_sys::cldemote`]): the consumer's next read of them is then
    /// served there instead of by a snoop into this core. A hint: it
    /// changes nothing the consumer can see.
    #[inline]
    pub fn demote_published(&self, n: u32) {
        let n = n.min(self.mem.size());
        self.mem
            .each_line(self.prod.wrapping_sub(n), n, dpdk_sys::cldemote);
        dpdk_sys::cldemote(&self.mem.indexes().prod as *const AtomicU32 as *const u8);
    }

    /// Writes one descriptor and publishes it; false when the ring is full.
    pub fn push(&mut self, d: Desc) -> Result<bool, RingError> {
        if self.free(1)? == 0 {
            return Ok(false);
        }
        self.write(0, d);
        self.publish(1);
        Ok(true)
    }

    /// Entries published and not yet consumed (re-reads the consumer index).
    pub fn in_flight(&mut self) -> Result<u32, RingError> {
        self.refresh()?;
        Ok(self.prod.wrapping_sub(self.cons_cache))
    }
}

/// The consuming end of a ring.
pub struct Consumer {
    mem: RingMem,
    cons: u32,
    prod_cache: u32,
}

impl Consumer {
    /// # Safety
    /// As [`RingMem::new`]; only one consumer may exist per ring.
    pub unsafe fn new(base: *mut u8, entries: u32) -> Consumer {
        let mem = RingMem::new(base, entries);
        let cons = mem.indexes().cons.load(Ordering::Acquire);
        Consumer {
            mem,
            cons,
            prod_cache: cons,
        }
    }

    /// Descriptors ready to read; re-reads the producer index only when the
    /// cached view has fewer than `want`.
    #[inline]
    pub fn available(&mut self, want: u32) -> Result<u32, RingError> {
        let mut avail = self.prod_cache.wrapping_sub(self.cons);
        if avail < want {
            let prod = self.mem.indexes().prod.load(Ordering::Acquire);
            if prod.wrapping_sub(self.cons) > self.mem.size() {
                return Err(RingError::Corrupt);
            }
            self.prod_cache = prod;
            avail = prod.wrapping_sub(self.cons);
        }
        Ok(avail)
    }

    /// Copies out the `i`-th available descriptor (`i < available()`).
    /// The copy is all the caller may trust: validate it before use.
    #[inline]
    pub fn read(&self, i: u32) -> Desc {
        Desc::from_word(
            self.mem
                .slot(self.cons.wrapping_add(i))
                .load(Ordering::Relaxed),
        )
    }

    /// Hands `n` read entries back to the producer.
    #[inline]
    pub fn release(&mut self, n: u32) {
        self.cons = self.cons.wrapping_add(n);
        self.mem.indexes().cons.store(self.cons, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(64))]
    struct Mem([u8; ring_bytes(8)]);

    /// A ring of 8 in memory of its own, with both ends. The memory is
    /// returned with them: it does not move with the Box, and must outlive
    /// them.
    fn ring8() -> (Box<Mem>, Producer, Consumer) {
        let mut mem = Box::new(Mem([0; ring_bytes(8)]));
        let base = mem.0.as_mut_ptr();
        // SAFETY: 64-byte aligned, ring_bytes(8) long, and returned with
        // the two ends so that the caller keeps it alive.
        let (p, c) = unsafe { (Producer::new(base, 8), Consumer::new(base, 8)) };
        (mem, p, c)
    }

    #[test]
    fn desc_round_trips_through_a_word() {
        let d = Desc::new(0x7_dead_bee8, 128, 1514);
        assert_eq!(Desc::from_word(d.to_word()), d);
        assert_eq!(d.offset(), 0x7_dead_bee8);
    }

    #[test]
    fn spsc_push_read_release_and_full() {
        let (_mem, mut p, mut c) = ring8();
        for i in 0..8 {
            assert!(p.push(Desc::new(i as u64 * 8, 0, 0)).unwrap());
        }
        assert!(!p.push(Desc::default()).unwrap(), "ring of 8 holds 8");
        assert_eq!(c.available(1).unwrap(), 8);
        assert_eq!(c.read(3).offset(), 24);
        c.release(4);
        assert_eq!(p.free(1).unwrap(), 4);
    }

    #[test]
    fn staged_descriptors_are_unseen_until_published() {
        let (_mem, mut p, mut c) = ring8();
        p.stage_all(&[Desc::new(8, 0, 60), Desc::new(16, 0, 61)]);
        assert_eq!(c.available(8).unwrap(), 0, "staged, not published");
        assert_eq!(p.free(1).unwrap(), 6, "staged entries take room");
        // A plain write goes after the staged ones, and its publish
        // publishes them too.
        p.write(0, Desc::new(24, 0, 62));
        p.publish(1);
        assert_eq!(c.available(8).unwrap(), 3);
        let lens: Vec<u16> = (0..3).map(|i| c.read(i).data_len).collect();
        assert_eq!(lens, [60, 61, 62]);
        c.release(3);
        p.stage_all(&[Desc::new(32, 0, 63)]);
        p.publish_staged();
        p.publish_staged(); // nothing staged: no change
        assert_eq!(c.available(8).unwrap(), 1);
        assert_eq!(c.read(0).offset(), 32);
        c.release(1);
        // A whole burst at once, across the ring's end (positions 4..9).
        let burst: Vec<Desc> = (0..6)
            .map(|i| Desc::new(64 * (i + 1), 0, 70 + i as u16))
            .collect();
        assert_eq!(p.free(7).unwrap(), 8);
        p.stage_all(&[Desc::new(8, 0, 64)]);
        p.stage_all(&burst);
        assert_eq!(c.available(8).unwrap(), 0, "staged, not published");
        assert_eq!(p.free(1).unwrap(), 1);
        p.publish_staged();
        assert_eq!(c.available(8).unwrap(), 7);
        let lens: Vec<u16> = (0..7).map(|i| c.read(i).data_len).collect();
        assert_eq!(lens, [64, 70, 71, 72, 73, 74, 75]);
        assert_eq!(c.read(6).offset(), 384);
    }

    #[test]
    fn demote_walks_any_span_and_changes_nothing() {
        let (_mem, mut p, mut c) = ring8();
        // Spans before, across and past the wrap, and longer than the ring.
        for round in 0..5u64 {
            for i in 0..5u32 {
                p.write(i, Desc::new(64 * (round * 5 + i as u64), 128, 60));
            }
            p.publish(5);
            for n in [0, 1, 5, 8, 9, u32::MAX] {
                p.demote_published(n);
            }
            assert_eq!(c.available(8), Ok(5));
            for i in 0..5u32 {
                assert_eq!(c.read(i).offset(), 64 * (round * 5 + i as u64));
            }
            c.release(5);
        }
    }

    #[test]
    fn in_flight_is_read_from_the_indexes() {
        let mut mem = Box::new(Mem([0; ring_bytes(8)]));
        let base = mem.0.as_mut_ptr();
        // SAFETY: as in ring8(); mem lives to the end of the test.
        let (mut p, mut c) = unsafe { (Producer::new(base, 8), Consumer::new(base, 8)) };
        for i in 0..5 {
            assert!(p.push(Desc::new(i * 8, 0, 0)).unwrap());
        }
        c.release(2);
        // SAFETY: the index block of a live ring.
        assert_eq!(unsafe { in_flight_at(base, 8) }, Some(3));
        // SAFETY: writes the prod index word inside the buffer.
        unsafe { (*(base as *const AtomicU32)).store(1000, Ordering::Release) };
        assert_eq!(unsafe { in_flight_at(base, 8) }, None);
    }

    #[test]
    fn corrupt_peer_index_is_detected_not_trusted() {
        let mut mem = Box::new(Mem([0; ring_bytes(8)]));
        let base = mem.0.as_mut_ptr();
        // SAFETY: as in ring8(); mem lives to the end of the test.
        let mut c = unsafe { Consumer::new(base, 8) };
        // A hostile producer claims 1000 entries in a ring of 8.
        // SAFETY: writes the prod index word inside the buffer.
        unsafe { (*(base as *const AtomicU32)).store(1000, Ordering::Release) };
        assert_eq!(c.available(1), Err(RingError::Corrupt));
        // SAFETY: as above; the cons index lives at offset 64.
        let mut p = unsafe { Producer::new(base.add(0), 8) };
        unsafe { (*(base.add(64) as *const AtomicU32)).store(5000, Ordering::Release) };
        assert_eq!(p.free(9), Err(RingError::Corrupt));
    }
}
