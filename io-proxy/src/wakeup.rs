//! What an idle datapath lcore waits on besides its NIC's rx interrupts:
//! the tx kick socket of each guest queue it serves (protocol v10,
//! `shm_abi::wake`). The proxy makes the pair at START, keeps one end here
//! and passes the other with START_ACK; a guest that publishes tx while
//! the lcore waits sends one byte on it.

use dpdk_sys as sys;
use shm_abi::wake;
use std::cell::UnsafeCell;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// The proxy's end of a queue's tx kick socket, and its registration with
/// the epoll instance of the lcore polling the queue.
pub struct TxKick {
    fd: OwnedFd,
    /// EAL's record of the registration: its epoll wait reaches it by the
    /// pointer registered, so it sits in a box that never moves, and is
    /// touched only by the lcore (between its waits) and by EAL within
    /// them, on that same thread.
    ev: Box<UnsafeCell<sys::rte_epoll_event>>,
}

// SAFETY: the registration record is used by one thread at a time: the
// lcore holding the queue (the GuestRegion's rule, guest_region.rs).
unsafe impl Send for TxKick {}

impl TxKick {
    /// A new kick socket pair: ours, and the guest's end for START_ACK.
    pub fn new() -> std::io::Result<(TxKick, OwnedFd)> {
        let (ours, theirs) = wake::pair()?;
        // SAFETY: all-zero is a valid C struct (status INVALID, no callback).
        let mut ev: sys::rte_epoll_event = unsafe { std::mem::zeroed() };
        ev.epdata.event = (libc::EPOLLIN | libc::EPOLLET) as u32;
        Ok((
            TxKick {
                fd: ours,
                ev: Box::new(UnsafeCell::new(ev)),
            },
            theirs,
        ))
    }

    /// Registers the socket with epoll instance `epfd`, moving it from
    /// another lcore's if it was there; true once it is registered.
    pub fn register(&self, epfd: RawFd) -> bool {
        let ev = self.ev.get();
        let fd = self.fd.as_raw_fd();
        // SAFETY: `ev` is our boxed record (see the field); EAL's epoll
        // control only records the epoll instance and status in it. No
        // EAL wait runs on it meanwhile (the caller is the lcore, between
        // its waits).
        unsafe {
            let valid = (*ev).status == sys::RTE_EPOLL_VALID;
            if valid && (*ev).epfd == epfd {
                return true;
            }
            if valid {
                sys::rte_epoll_ctl((*ev).epfd, libc::EPOLL_CTL_DEL, fd, ev);
            }
            sys::rte_epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, ev) == 0
        }
    }

    /// Reads the kicks that came; how many.
    pub fn drain(&self) -> u64 {
        wake::drain(self.fd.as_fd())
    }
}
