//! A mapping of the shared memfd, and the checked views into it.
//!
//! All offset arithmetic on the region happens here: an offset that comes
//! from the peer becomes a pointer only through [`Region::ptr`] or an
//! [`AreaView`], each of which checks the range first. Rings
//! ([`Region::producer`], [`Region::consumer`]) hold the mapping, so it
//! lives as long as they do, whatever order their owners drop in.

use crate::layout::ValidLayout;
use crate::msg::ProtoError;
use crate::ring::{in_flight_at, ring_bytes, Consumer, Producer, RING_HDR_SIZE};
use crate::wake::{queue_ctl_off, QueueCtl, QUEUE_CTL_SIZE};
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One `MAP_SHARED` mapping of a memfd, unmapped when its last holder
/// (the [`Region`], or a ring) drops it. It may sit at the start of a
/// larger reservation of address space, into which it grows by mapping
/// further memfds after its end ([`Region::grow`]); `len` only grows.
pub(crate) struct Mapping {
    base: NonNull<u8>,
    /// Bytes mapped from `base`: the first memfd, then each grown part.
    len: AtomicUsize,
    /// Bytes of address space reserved from `base` (at least `len`).
    reserve: usize,
    fd: OwnedFd,
    /// Held while a part is being mapped: one grower at a time.
    grow_lock: Mutex<()>,
}

// SAFETY: the mapping is process-wide memory. Its contents are only ever
// reached through raw pointers and atomics (rings), never through Rust
// references; Mapping itself is immutable after creation.
unsafe impl Send for Mapping {}
// SAFETY: as above; &Mapping gives only the base address and length.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the reservation Region::map made (the
        // memfd and every grown part are mapped inside it); this is the
        // last holder (the Arc's count reached zero), so no ring or view
        // refers to it any more.
        unsafe { unmap(self.base, self.reserve) }
    }
}

/// A read-write mapping of a guest's region. Clones share the mapping
/// (each queue pair's owner holds one).
#[derive(Clone)]
pub struct Region {
    map: Arc<Mapping>,
}

impl Region {
    /// Maps `len` bytes of `fd` (which must be at least that long).
    pub fn map(fd: OwnedFd, len: usize) -> io::Result<Region> {
        Region::map_growable(fd, len, len, 4096)
    }

    /// Maps `len` bytes of `fd` at the start of `reserve` bytes of address
    /// space (at least `len`; a multiple of `align`, a power of two at least
    /// the page size, which the base is aligned to): the region can then
    /// grow in place up to `reserve` ([`Region::grow`]).
    pub fn map_growable(
        fd: OwnedFd,
        len: usize,
        reserve: usize,
        align: usize,
    ) -> io::Result<Region> {
        check_size(fd.as_fd(), len)?;
        if reserve < len || !align.is_power_of_two() || !reserve.is_multiple_of(align) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot reserve {reserve} bytes aligned to {align} for {len}"),
            ));
        }
        let base = if reserve == len {
            map_shared(fd.as_raw_fd(), len, libc::PROT_READ | libc::PROT_WRITE)?
        } else {
            let base = reserve_space(reserve, align)?;
            // SAFETY: the start of the reservation just made, which nothing
            // else uses; a failure leaves it as it was, and it is released.
            if let Err(e) = unsafe { map_fixed(base, fd.as_fd(), len) } {
                // SAFETY: the reservation made above, unused.
                unsafe { unmap(base, reserve) };
                return Err(e);
            }
            base
        };
        Ok(Region {
            map: Arc::new(Mapping {
                base,
                len: AtomicUsize::new(len),
                reserve,
                fd,
                grow_lock: Mutex::new(()),
            }),
        })
    }

    /// Maps the first `len` bytes of `fd` right after the region's end,
    /// inside its reservation; returns the region offset they start at.
    /// Views made before keep their bounds; views made after see the whole.
    pub fn grow(&self, fd: BorrowedFd<'_>, len: usize) -> io::Result<u64> {
        check_size(fd, len)?;
        let _one = self.map.grow_lock.lock().unwrap_or_else(|e| e.into_inner());
        let cur = self.map.len.load(Ordering::Relaxed);
        if cur
            .checked_add(len)
            .is_none_or(|end| end > self.map.reserve)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{len} more bytes exceed the {} reserved", self.map.reserve),
            ));
        }
        // SAFETY: `base + cur` is inside this mapping's reservation, past
        // every byte any view or ring may reach (all are bounded by `len`,
        // which only grows after this mapping is in place).
        unsafe { map_fixed(self.map.base.add(cur), fd, len)? };
        self.map.len.store(cur + len, Ordering::Release);
        Ok(cur as u64)
    }

    /// Bytes of address space the region may grow into.
    pub fn reserved(&self) -> usize {
        self.map.reserve
    }

    pub fn base(&self) -> *mut u8 {
        self.map.base.as_ptr()
    }
    /// Bytes mapped (grows, see [`Region::grow`]).
    pub fn len(&self) -> usize {
        self.map.len.load(Ordering::Acquire)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.map.fd.as_fd()
    }

    /// True if `[off, off + len)` lies inside the region.
    pub fn contains(&self, off: u64, len: u64) -> bool {
        off.checked_add(len)
            .is_some_and(|end| end <= self.len() as u64)
    }

    /// Pointer to `off`, if `[off, off + len)` lies inside the region.
    pub fn ptr(&self, off: u64, len: u64) -> Option<*mut u8> {
        self.contains(off, len)
            .then(|| self.base().wrapping_add(off as usize))
    }

    /// Offset of `p` if it points into the region.
    pub fn offset_of(&self, p: *const u8) -> Option<u64> {
        let off = (p as usize).checked_sub(self.base() as usize)?;
        (off < self.len()).then_some(off as u64)
    }

    /// A view of `[start, start + len)`, if it lies inside the region.
    pub fn area(&self, start: u64, len: u64) -> Option<AreaView<'_>> {
        self.contains(start, len).then(|| AreaView {
            base: self.base() as usize,
            start,
            end: start + len,
            _region: PhantomData,
        })
    }

    /// The buffer area of `l` (a layout validated for this region): from
    /// `buf_off` to the region's end, which is where it grows.
    pub fn buffers(&self, l: &ValidLayout) -> Option<AreaView<'_>> {
        self.area(l.buf_off, (self.len() as u64).checked_sub(l.buf_off)?)
    }

    fn ring_base(&self, off: u64, entries: u32) -> Result<*mut u8, ProtoError> {
        if !off.is_multiple_of(64) || !entries.is_power_of_two() {
            return Err(ProtoError::Invalid("ring alignment"));
        }
        self.ptr(off, ring_bytes(entries) as u64)
            .ok_or(ProtoError::Invalid("ring outside region"))
    }

    /// The producing end of the ring at `off`. Only one may exist per ring
    /// in this process; it keeps the mapping alive.
    pub fn producer(&self, off: u64, entries: u32) -> Result<Producer, ProtoError> {
        let base = self.ring_base(off, entries)?;
        // SAFETY: range and alignment checked; the producer holds the
        // mapping (`self.map`), so the memory lives as long as it.
        Ok(unsafe { Producer::new(base, entries, self.map.clone()) })
    }

    /// The consuming end of the ring at `off`. Only one may exist per ring
    /// in this process; it keeps the mapping alive.
    pub fn consumer(&self, off: u64, entries: u32) -> Result<Consumer, ProtoError> {
        let base = self.ring_base(off, entries)?;
        // SAFETY: as for producer().
        Ok(unsafe { Consumer::new(base, entries, self.map.clone()) })
    }

    /// Queue pair `q`'s control line (protocol v10), if the region has
    /// the queue: it lies before the rings ([`Layout::validate`] checks).
    ///
    /// [`Layout::validate`]: crate::layout::Layout::validate
    pub fn queue_ctl(&self, l: &ValidLayout, q: u16) -> Result<QueueCtl, ProtoError> {
        if q >= l.queue_count {
            return Err(ProtoError::Invalid("no such queue"));
        }
        let line = self
            .ptr(queue_ctl_off(q), QUEUE_CTL_SIZE)
            .ok_or(ProtoError::Invalid("queue control line outside region"))?;
        // SAFETY: inside the mapping (checked), 64-byte aligned (a
        // multiple of 64 from the page-aligned base); the line holds the
        // mapping.
        Ok(unsafe { QueueCtl::new(line, self.map.clone()) })
    }

    /// Keeps the mapping for the rest of the process (memory handed to
    /// DPDK's heap must never go away).
    pub fn leak(self) -> (*mut u8, usize) {
        let r = (self.base(), self.len());
        std::mem::forget(self.map);
        r
    }
}

/// A checked window `[start, end)` of a region, by region offsets: every
/// pointer it gives is inside the window. Borrowed from the [`Region`], so
/// it cannot outlive the mapping. Copy it into a hot loop: it is three
/// words.
#[derive(Clone, Copy)]
pub struct AreaView<'r> {
    base: usize,
    start: u64,
    end: u64,
    _region: PhantomData<&'r Region>,
}

impl<'r> AreaView<'r> {
    /// Region offsets of the window.
    pub fn start(&self) -> u64 {
        self.start
    }
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Is `[off, off + len)` wholly inside the window?
    #[inline]
    pub fn contains(&self, off: u64, len: u64) -> bool {
        off >= self.start && off.checked_add(len).is_some_and(|e| e <= self.end)
    }

    /// Pointer to region offset `off`, if `[off, off + len)` is inside.
    #[inline]
    pub fn ptr(&self, off: u64, len: u64) -> Option<*mut u8> {
        self.contains(off, len)
            .then(|| self.base.wrapping_add(off as usize) as *mut u8)
    }

    /// Copies the two little-endian words at region offset `off` out of the
    /// window, if `[off, off + 16)` is inside: the value a peer wrote, read
    /// once, to be checked before use (the peer may rewrite it meanwhile).
    #[inline]
    pub fn read_words(&self, off: u64) -> Option<[u64; 2]> {
        let p = self.ptr(off, 16)? as *const [u8; 8];
        // SAFETY: 16 bytes inside the window, which lies in the mapping
        // this view borrows; volatile, because the peer may write them at
        // any time; byte arrays, because nothing aligns them.
        let (w0, w1) = unsafe {
            (
                std::ptr::read_volatile(p),
                std::ptr::read_volatile(p.add(1)),
            )
        };
        Some([u64::from_le_bytes(w0), u64::from_le_bytes(w1)])
    }

    /// Pointer to region offset `off`, which the caller has checked to lie
    /// inside the window (a [`crate::desc::ValidTx`] or
    /// [`crate::desc::ValidFill`] checked against [`crate::desc::BufferRules`]
    /// made from this window). Only address arithmetic: forming the
    /// pointer is safe, using it is the caller's contract.
    #[inline]
    pub fn at_checked(&self, off: u64) -> *mut u8 {
        debug_assert!(off >= self.start && off < self.end);
        self.base.wrapping_add(off as usize) as *mut u8
    }

    /// The address region offset `off` has in this process, with no check:
    /// for looking a buffer up (the lookup confirms it), never to access.
    #[inline]
    pub fn addr(&self, off: u64) -> usize {
        self.base.wrapping_add(off as usize)
    }

    /// Region offset of `p`, which the caller knows lies in the window (an
    /// object of a pool it placed there): arithmetic only.
    #[inline]
    pub fn offset_of_known(&self, p: *const u8) -> u64 {
        let off = (p as usize).wrapping_sub(self.base) as u64;
        debug_assert!(off >= self.start && off < self.end);
        off
    }

    /// Region offset of `p`, if `[p, p + len)` lies in the window and is
    /// 8-byte aligned (so it can travel in a descriptor).
    #[inline]
    pub fn offset_of(&self, p: *const u8, len: u64) -> Option<u64> {
        let off = (p as u64).checked_sub(self.base as u64)?;
        (self.contains(off, len) && off.is_multiple_of(8)).then_some(off)
    }
}

/// A second, read-only mapping of the start of a region, from which another
/// thread (telemetry) reads ring indexes. It has its own lifetime, so the
/// reader never depends on the datapath's mapping staying in place.
pub struct RingWatch {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: read-only memory, read only through atomic loads.
unsafe impl Send for RingWatch {}
// SAFETY: as above.
unsafe impl Sync for RingWatch {}

impl RingWatch {
    /// Maps the first `len` bytes of `fd` read-only (`len` a multiple of the
    /// memfd's page size).
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<RingWatch> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty watch"));
        }
        Ok(RingWatch {
            base: map_shared(fd.as_raw_fd(), len, libc::PROT_READ)?,
            len,
        })
    }

    /// Entries in flight in the ring at `off` (see [`in_flight_at`]); `None`
    /// if the ring is not inside the watch or its indexes are impossible.
    pub fn in_flight(&self, off: u64, entries: u32) -> Option<u32> {
        let end = off.checked_add(RING_HDR_SIZE as u64)?;
        if end > self.len as u64 || !off.is_multiple_of(64) {
            return None;
        }
        // SAFETY: an aligned index block inside this mapping, read only.
        unsafe { in_flight_at(self.base.as_ptr().add(off as usize), entries) }
    }
}

impl Drop for RingWatch {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what map() mapped; the watch is only
        // read through &self, so nothing refers to it any more.
        unsafe { unmap(self.base, self.len) }
    }
}

/// Fails unless `fd` holds at least `len` bytes (and `len` is not 0).
fn check_size(fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)?;
    if (st.st_size as u64) < len as u64 || len == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("memfd is {} bytes, {len} needed", st.st_size),
        ));
    }
    Ok(())
}

/// `len` bytes of address space, aligned to `align`, that nothing can
/// touch (PROT_NONE, no memory behind it).
fn reserve_space(len: usize, align: usize) -> io::Result<NonNull<u8>> {
    let total = len
        .checked_add(align)
        .ok_or_else(|| io::Error::other("reservation too large"))?;
    // SAFETY: a new anonymous mapping where the kernel chooses.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let start = p as usize;
    let base = start.next_multiple_of(align);
    // SAFETY: the slack before and after the aligned part is ours (just
    // mapped) and unused.
    unsafe {
        if base > start {
            libc::munmap(p, base - start);
        }
        let tail = start + total - (base + len);
        if tail > 0 {
            libc::munmap((base + len) as *mut libc::c_void, tail);
        }
    }
    NonNull::new(base as *mut u8).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// Maps the first `len` bytes of `fd` read-write at `at`, replacing what
/// was there.
///
/// # Safety
/// `[at, at + len)` is address space this process reserved for it, which
/// nothing reads or writes.
unsafe fn map_fixed(at: NonNull<u8>, fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
    // SAFETY: per the contract, MAP_FIXED replaces only our reservation.
    let p = unsafe {
        libc::mmap(
            at.as_ptr() as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A fresh `MAP_SHARED` mapping of the first `len` bytes of `fd`.
fn map_shared(fd: RawFd, len: usize, prot: libc::c_int) -> io::Result<NonNull<u8>> {
    // SAFETY: a new mapping where the kernel chooses; nothing else is
    // affected, and an invalid fd or length only makes mmap fail.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p as *mut u8).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// # Safety
/// `base` and `len` are exactly one mapping made by [`map_shared`], no
/// longer used.
unsafe fn unmap(base: NonNull<u8>, len: usize) {
    // SAFETY: per the contract, a whole mapping nobody uses.
    unsafe { libc::munmap(base.as_ptr() as *mut libc::c_void, len) };
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::desc::Desc;
    use crate::layout::Layout;

    /// A region of `len` bytes on a fresh memfd.
    pub(crate) fn memfd_region(len: usize) -> Region {
        let m = memfd::MemfdOptions::default().create("abi-test").unwrap();
        m.as_file().set_len(len as u64).unwrap();
        Region::map(OwnedFd::from(m.into_file()), len).unwrap()
    }

    fn memfd(len: usize) -> OwnedFd {
        let m = memfd::MemfdOptions::default().create("abi-grow").unwrap();
        m.as_file().set_len(len as u64).unwrap();
        OwnedFd::from(m.into_file())
    }

    #[test]
    fn a_region_grows_in_place_within_its_reservation() {
        let l = Layout {
            buf_max: 3 << 20,
            ..Layout::compute(4096, 64, 1 << 20, 1 << 20)
        };
        let v = l.validate(l.region_size).unwrap();
        let reserve = (l.buf_off + l.buf_max) as usize;
        let r = Region::map_growable(
            memfd(l.region_size as usize),
            l.region_size as usize,
            reserve,
            4096,
        )
        .unwrap();
        let before = r.buffers(&v).unwrap();
        assert_eq!(before.end(), l.region_size);
        // SAFETY: inside the mapped area (test).
        unsafe { before.at_checked(l.buf_off).write(7) };
        let seg = memfd(1 << 20);
        assert_eq!(r.grow(seg.as_fd(), 1 << 20).unwrap(), l.region_size);
        assert_eq!(r.len() as u64, l.region_size + (1 << 20));
        // Old views keep their bounds, new ones cover the new part, which
        // is the segment's memory.
        assert!(!before.contains(l.region_size, 1));
        let after = r.buffers(&v).unwrap();
        assert!(after.contains(l.region_size, 1 << 20));
        // SAFETY: the grown part is mapped (test).
        unsafe { after.at_checked(l.region_size + 4096).write(9) };
        let mut b = [0u8; 1];
        nix::sys::uio::pread(seg.as_fd(), &mut b, 4096).unwrap();
        assert_eq!(b[0], 9);
        let first = {
            // SAFETY: mapped since the start (test).
            unsafe { after.at_checked(l.buf_off).read() }
        };
        assert_eq!(first, 7);
        // Never past the reservation, never from a short memfd.
        assert!(r.grow(memfd(2 << 20).as_fd(), 2 << 20).is_err());
        assert!(r.grow(memfd(4096).as_fd(), 1 << 20).is_err());
        assert!(r.grow(memfd(1 << 20).as_fd(), 1 << 20).is_ok());
        assert_eq!(r.len(), reserve);
    }

    #[test]
    fn rings_keep_the_mapping_alive() {
        let l = Layout::compute(4096, 64, 1 << 20, 1 << 20);
        let r = memfd_region(l.region_size as usize);
        let mut p = r.producer(l.tx_off, l.ring_entries).unwrap();
        let mut c = r.consumer(l.tx_off, l.ring_entries).unwrap();
        // The region goes first; the rings still work on mapped memory.
        drop(r);
        assert!(p.push(Desc::new(4096, 0, 60)).unwrap());
        assert_eq!(c.available(1), Ok(1));
        assert_eq!(c.read(0).data_len, 60);
    }

    #[test]
    fn views_check_every_range() {
        let r = memfd_region(1 << 20);
        assert!(r.area(4096, 1 << 20).is_none(), "past the end");
        assert!(r.area(u64::MAX, 2).is_none(), "overflow");
        let v = r.area(4096, 8192).unwrap();
        assert!(v.ptr(4096, 8192).is_some());
        assert!(v.ptr(4095, 1).is_none());
        assert!(v.ptr(4096, 8193).is_none());
        assert!(v.ptr(u64::MAX - 1, 4).is_none());
        let p = v.ptr(8192, 64).unwrap();
        assert_eq!(v.offset_of(p, 64), Some(8192));
        assert_eq!(v.offset_of(p.wrapping_add(4), 8), None, "unaligned");
        assert_eq!(v.offset_of(r.base(), 8), None, "outside the window");
    }
}
