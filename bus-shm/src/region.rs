//! A mapping of the shared memfd and the unix-socket plumbing around it.
//!
//! Offsets that come from the peer are checked here, once, before any
//! pointer is formed from them.

use crate::proto::{ProtoError, MAX_MSG};
use crate::ring::{in_flight_at, ring_bytes, Consumer, Producer, RING_HDR_SIZE};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

/// A `MAP_SHARED` read-write mapping of a memfd, unmapped on drop.
pub struct Region {
    base: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is process-wide memory; access to its contents goes
// through atomics (rings) or through DPDK objects with their own rules.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

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
        Ok(Region {
            base: map_shared(fd.as_raw_fd(), len, libc::PROT_READ | libc::PROT_WRITE)?,
            len,
            fd,
        })
    }

    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// True if `[off, off + len)` lies inside the region.
    pub fn contains(&self, off: u64, len: u64) -> bool {
        off.checked_add(len)
            .is_some_and(|end| end <= self.len as u64)
    }

    /// Pointer to `off`, if `[off, off + len)` lies inside the region.
    pub fn ptr(&self, off: u64, len: u64) -> Option<*mut u8> {
        // SAFETY: in bounds, checked just before.
        self.contains(off, len)
            .then(|| unsafe { self.base.as_ptr().add(off as usize) })
    }

    /// Offset of `p` if it points into the region.
    pub fn offset_of(&self, p: *const u8) -> Option<u64> {
        let off = (p as usize).checked_sub(self.base.as_ptr() as usize)?;
        (off < self.len).then_some(off as u64)
    }

    fn ring_base(&self, off: u64, entries: u32) -> Result<*mut u8, ProtoError> {
        if !off.is_multiple_of(64) || !entries.is_power_of_two() {
            return Err(ProtoError::Invalid("ring alignment"));
        }
        self.ptr(off, ring_bytes(entries) as u64)
            .ok_or(ProtoError::Invalid("ring outside region"))
    }

    /// The producing end of the ring at `off`. Only one may exist per ring.
    pub fn producer(&self, off: u64, entries: u32) -> Result<Producer, ProtoError> {
        let base = self.ring_base(off, entries)?;
        // SAFETY: range and alignment checked; the caller keeps the region
        // alive as long as the ring (both live in the same connection).
        Ok(unsafe { Producer::new(base, entries) })
    }

    /// The consuming end of the ring at `off`. Only one may exist per ring.
    pub fn consumer(&self, off: u64, entries: u32) -> Result<Consumer, ProtoError> {
        let base = self.ring_base(off, entries)?;
        // SAFETY: as for producer().
        Ok(unsafe { Consumer::new(base, entries) })
    }

    /// Keeps the mapping for the rest of the process (memory handed to
    /// DPDK's heap must never go away).
    pub fn leak(self) -> (*mut u8, usize) {
        let r = (self.base.as_ptr(), self.len);
        std::mem::forget(self);
        r
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what map() mapped; nothing refers to it
        // any more (owners drop rings and pools first).
        unsafe { unmap(self.base, self.len) }
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
    libc::munmap(base.as_ptr() as *mut libc::c_void, len);
}

/// Sends one message, optionally with a file descriptor.
pub fn send_msg(fd: RawFd, bytes: &[u8], pass: Option<RawFd>) -> io::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let fds;
    let cmsg: Vec<ControlMessage> = match pass {
        Some(f) => {
            fds = [f];
            vec![ControlMessage::ScmRights(&fds)]
        }
        None => Vec::new(),
    };
    let n =
        sendmsg::<()>(fd, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None).map_err(io::Error::from)?;
    if n != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short send"));
    }
    Ok(())
}

/// Receives one message (at most MAX_MSG bytes) and any passed fd.
/// Returns Ok(None) at end of stream.
pub fn recv_msg(fd: RawFd, nonblock: bool) -> io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut cmsg_space = nix::cmsg_space!([RawFd; 2]);
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
    if nonblock {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let (n, fd_out, truncated) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg =
            recvmsg::<()>(fd, &mut iov, Some(&mut cmsg_space), flags).map_err(io::Error::from)?;
        let mut got: Option<OwnedFd> = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // SAFETY: the kernel just installed f in our table; we own it.
                    let owned = unsafe { OwnedFd::from_raw_fd(f) };
                    if got.is_none() {
                        got = Some(owned);
                    } // extra fds are closed by dropping `owned`
                }
            }
        }
        (msg.bytes, got, msg.flags.contains(MsgFlags::MSG_TRUNC))
    };
    if n == 0 && fd_out.is_none() {
        return Ok(None);
    }
    if truncated {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too long",
        ));
    }
    buf.truncate(n);
    Ok(Some((buf, fd_out)))
}
