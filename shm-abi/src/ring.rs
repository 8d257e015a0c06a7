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

use crate::desc::{Desc, DESC_SIZE};
use crate::region::Mapping;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Size of a ring's index block: two cache lines, one per index.
pub const RING_HDR_SIZE: usize = 128;

/// Bytes needed for a ring of `entries` descriptors (header included).
pub const fn ring_bytes(entries: u32) -> usize {
    RING_HDR_SIZE + entries as usize * DESC_SIZE
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
// while the mapping lives, and every ring end holds it (`_map`).
unsafe impl Send for RingMem {}

impl RingMem {
    /// # Safety
    /// `base` must point to `ring_bytes(entries)` bytes, 64-byte aligned,
    /// mapped for as long as the ring is used; `entries` a power of two.
    unsafe fn new(base: *mut u8, entries: u32) -> RingMem {
        debug_assert!(entries.is_power_of_two());
        RingMem {
            idx: base as *const RingIndexes,
            // SAFETY: within the ring_bytes(entries) the caller vouches for.
            descs: unsafe { base.add(RING_HDR_SIZE) } as *const AtomicU64,
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
    // SAFETY: per the contract, an index block, mapped and aligned.
    let idx = unsafe { &*(base as *const RingIndexes) };
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
    /// The memory `mem` points into: kept mapped while this end lives.
    _map: Arc<Mapping>,
    /// Published position.
    prod: u32,
    /// Descriptors stored after `prod` by [`stage_all`](Self::stage_all), not yet
    /// published.
    staged: u32,
    cons_cache: u32,
}

impl Producer {
    /// # Safety
    /// As [`RingMem::new`], with `base` inside `map`; only one producer may
    /// exist per ring.
    pub(crate) unsafe fn new(base: *mut u8, entries: u32, map: Arc<Mapping>) -> Producer {
        // SAFETY: per this function's contract.
        let mem = unsafe { RingMem::new(base, entries) };
        // Start from what is published: a fresh region holds zeros; a ring
        // taken over after a stop continues where it was.
        let prod = mem.indexes().prod.load(Ordering::Acquire);
        let mut p = Producer {
            mem,
            _map: map,
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

    /// Publishes what [`stage_all`](Self::stage_all) stored, if anything;
    /// says whether there was anything.
    #[inline]
    pub fn publish_staged(&mut self) -> bool {
        let any = self.staged > 0;
        if any {
            self.publish(0);
        }
        any
    }

    /// Takes ownership of the lines that the next `n` descriptors will be
    /// written to, ahead of time. The consumer last read them a ring ago, so
    /// the stores would otherwise wait for those lines one at a time. A
    /// hint: it changes nothing the consumer can see.
    #[inline]
    pub fn prepare(&self, n: u32) {
        self.mem
            .each_line(self.next_pos(), n, crate::hint::prefetch_write);
    }

    /// Pushes the lines of the last `n` published descriptors and of the
    /// producer index out of this core's caches towards the shared one
    /// ([`crate::hint::cldemote`]): the consumer's next read of them is then
    /// served there instead of by a snoop into this core. A hint: it
    /// changes nothing the consumer can see.
    #[inline]
    pub fn demote_published(&self, n: u32) {
        let n = n.min(self.mem.size());
        self.mem
            .each_line(self.prod.wrapping_sub(n), n, crate::hint::cldemote);
        crate::hint::cldemote(&self.mem.indexes().prod as *const AtomicU32 as *const u8);
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

    /// Takes back every entry published and not consumed, by moving the
    /// consumer's index up to ours: for when the consumer is gone (a dead
    /// proxy) and the producer has taken the buffers back by other means.
    /// The ring is then empty, at the position it had reached, for the
    /// next consumer to start from.
    pub fn discard_unconsumed(&mut self) {
        self.mem.indexes().cons.store(self.prod, Ordering::Release);
        self.cons_cache = self.prod;
    }
}

/// The consuming end of a ring.
pub struct Consumer {
    mem: RingMem,
    /// The memory `mem` points into: kept mapped while this end lives.
    _map: Arc<Mapping>,
    cons: u32,
    prod_cache: u32,
}

impl Consumer {
    /// # Safety
    /// As [`RingMem::new`], with `base` inside `map`; only one consumer may
    /// exist per ring.
    pub(crate) unsafe fn new(base: *mut u8, entries: u32, map: Arc<Mapping>) -> Consumer {
        // SAFETY: per this function's contract.
        let mem = unsafe { RingMem::new(base, entries) };
        let cons = mem.indexes().cons.load(Ordering::Acquire);
        Consumer {
            mem,
            _map: map,
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

    /// Whether the producer has published entries this end has not read,
    /// from a fresh look at its index (a consumer about to sleep).
    pub fn pending(&self) -> bool {
        self.mem.indexes().prod.load(Ordering::Acquire) != self.cons
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
    use crate::region::tests::memfd_region;
    use crate::region::Region;

    /// A ring of 8 at the start of a region of its own, with both ends.
    fn ring8() -> (Region, Producer, Consumer) {
        let r = memfd_region(4096);
        let (p, c) = (r.producer(0, 8).unwrap(), r.consumer(0, 8).unwrap());
        (r, p, c)
    }

    /// The ring's shared index words, as a hostile peer would write them.
    fn index(r: &Region, which: usize) -> &AtomicU32 {
        // SAFETY: offset 0 (prod) or 64 (cons) of the mapped region, which
        // outlives the reference; u32-aligned.
        unsafe { &*(r.base().add(which * 64) as *const AtomicU32) }
    }

    #[test]
    fn spsc_push_read_release_and_full() {
        let (_r, mut p, mut c) = ring8();
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
        let (_r, mut p, mut c) = ring8();
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
        assert!(p.publish_staged());
        assert!(!p.publish_staged()); // nothing staged: no change
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
        assert!(p.publish_staged());
        assert_eq!(c.available(8).unwrap(), 7);
        let lens: Vec<u16> = (0..7).map(|i| c.read(i).data_len).collect();
        assert_eq!(lens, [64, 70, 71, 72, 73, 74, 75]);
        assert_eq!(c.read(6).offset(), 384);
    }

    #[test]
    fn demote_walks_any_span_and_changes_nothing() {
        let (_r, mut p, mut c) = ring8();
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
        let (r, mut p, mut c) = ring8();
        for i in 0..5 {
            assert!(p.push(Desc::new(i * 8, 0, 0)).unwrap());
        }
        c.release(2);
        // SAFETY: the index block of a live ring.
        assert_eq!(unsafe { in_flight_at(r.base(), 8) }, Some(3));
        index(&r, 0).store(1000, Ordering::Release);
        // SAFETY: as above.
        assert_eq!(unsafe { in_flight_at(r.base(), 8) }, None);
    }

    #[test]
    fn corrupt_peer_index_is_detected_not_trusted() {
        let (r, mut p, mut c) = ring8();
        // A hostile producer claims 1000 entries in a ring of 8.
        index(&r, 0).store(1000, Ordering::Release);
        assert_eq!(c.available(1), Err(RingError::Corrupt));
        // A hostile consumer claims to be 5000 ahead.
        index(&r, 1).store(5000, Ordering::Release);
        assert_eq!(p.free(9), Err(RingError::Corrupt));
    }
}
