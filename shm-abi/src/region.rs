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
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::Arc;

/// One `MAP_SHARED` mapping of a memfd, unmapped when its last holder
/// (the [`Region`], or a ring) drops it.
pub(crate) struct Mapping {
    base: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is process-wide memory. Its contents are only ever
// reached through raw pointers and atomics (rings), never through Rust
// references; Mapping itself is immutable after creation.
unsafe impl Send for Mapping {}
// SAFETY: as above; &Mapping gives only the base address and length.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what Region::map mapped; this is the
        // last holder (the Arc's count reached zero), so no ring or view
        // refers to it any more.
        unsafe { unmap(self.base, self.len) }
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
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)?;
        if (st.st_size as u64) < len as u64 || len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("memfd is {} bytes, layout needs {len}", st.st_size),
            ));
        }
        let base = map_shared(fd.as_raw_fd(), len, libc::PROT_READ | libc::PROT_WRITE)?;
        Ok(Region {
            map: Arc::new(Mapping { base, len, fd }),
        })
    }

    pub fn base(&self) -> *mut u8 {
        self.map.base.as_ptr()
    }
    pub fn len(&self) -> usize {
        self.map.len
    }
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
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

    /// The buffer area of `l` (a layout validated for this region).
    pub fn buffers(&self, l: &ValidLayout) -> Option<AreaView<'_>> {
        self.area(l.buf_off, l.buf_len)
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
