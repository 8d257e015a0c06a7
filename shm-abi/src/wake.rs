//! Wake-ups between a guest and the proxy (protocol v10): a guest queue
//! that sleeps until the proxy hands it packets (rx interrupts), and a
//! proxy lcore that waits for its NIC's interrupts and is kicked when a
//! guest sends meanwhile.
//!
//! Per queue pair:
//! - its control line: 64 bytes at region offset `q * 64`, in the page
//!   before the rings ([`QueueCtl`]), two words each with one writer:
//!   - `rx_armed` (guest): "wake me". The guest sets it before it sleeps
//!     and clears it when it polls again; the proxy clears it when it
//!     wakes the guest, so one arm gives at most one wake-up.
//!   - `proxy_waiting` (proxy): the lcore serving the queue waits for an
//!     interrupt; a guest that publishes tx kicks it.
//! - its rx wake socket: a `SOCK_SEQPACKET` pair the guest makes and keeps
//!   (the app's epoll waits on one end); START passes the other end to the
//!   proxy.
//! - its tx kick socket: a pair the proxy makes; START_ACK passes one end
//!   to the guest, the lcore's epoll waits on the other.
//!
//! A wake-up or kick is one 1-byte message, sent without ever blocking
//! ([`wake`]); a socket pair, unlike an eventfd, gives neither side a
//! file description the other can make blocking.
//!
//! Rx: the two sides order their accesses as Dekker's. The proxy publishes
//! rx descriptors, then (full fence) reads `rx_armed`; the guest arms, then
//! (full fence) looks at the rx ring. One of them sees the other's store,
//! so a packet is never left on the ring of a guest asleep.
//!
//! Tx: the proxy sets `proxy_waiting`, then (full fence) looks at the tx
//! rings; the guest publishes tx, then reads `proxy_waiting` without a
//! fence (none on the tx fast path). A guest whose read passes its own
//! publish may miss the waiting lcore: its packet then waits out the
//! lcore's bounded wait (`set idle ... wait`), never longer.

use crate::region::Mapping;
use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Arc;

/// Bytes of one queue pair's control line.
pub const QUEUE_CTL_SIZE: u64 = 64;

/// Region offset of queue pair `q`'s control line.
pub const fn queue_ctl_off(q: u16) -> u64 {
    q as u64 * QUEUE_CTL_SIZE
}

/// A control line, as laid out in the region.
#[repr(C)]
struct CtlLine {
    rx_armed: AtomicU32,
    proxy_waiting: AtomicU32,
    _pad: [u8; 56],
}
const _: () = assert!(std::mem::size_of::<CtlLine>() == QUEUE_CTL_SIZE as usize);

/// One queue pair's control line. Made only by
/// [`crate::region::Region::queue_ctl`], from a validated layout; holds
/// the mapping.
pub struct QueueCtl {
    line: *const CtlLine,
    _map: Arc<Mapping>,
}

// SAFETY: the line is reached only through atomics; the pointer stays
// valid while `_map` lives.
unsafe impl Send for QueueCtl {}

impl QueueCtl {
    /// # Safety
    /// `line` points to `QUEUE_CTL_SIZE` bytes inside `map`, 64-byte
    /// aligned.
    pub(crate) unsafe fn new(line: *mut u8, map: Arc<Mapping>) -> QueueCtl {
        QueueCtl {
            line: line as *const CtlLine,
            _map: map,
        }
    }

    fn line(&self) -> &CtlLine {
        // SAFETY: valid while the mapping lives (new()); only atomics in it.
        unsafe { &*self.line }
    }

    /// Guest: wake me after the next rx publish. The fence orders the arm
    /// before the caller's look at the rx ring (see the module doc).
    pub fn arm_rx(&self) {
        self.line().rx_armed.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Guest: polling again, no wake-up needed.
    pub fn disarm_rx(&self) {
        self.line().rx_armed.store(0, Ordering::Relaxed);
    }

    /// Proxy, right after publishing rx descriptors: whether the guest
    /// was armed, disarming it. The line is only read while the guest
    /// does not arm, so it stays in this core's cache.
    #[inline]
    pub fn take_rx_armed(&self) -> bool {
        fence(Ordering::SeqCst);
        let armed = &self.line().rx_armed;
        armed.load(Ordering::Relaxed) != 0 && armed.swap(0, Ordering::Relaxed) != 0
    }
}

impl QueueCtl {
    /// Proxy: about to wait for interrupts (`true`; the caller fences and
    /// looks at the tx ring after), or polling again.
    pub fn set_proxy_waiting(&self, on: bool) {
        self.line()
            .proxy_waiting
            .store(on as u32, Ordering::Relaxed);
    }

    /// Guest, after publishing tx: whether to kick the proxy. A plain
    /// load of a line the proxy writes only when it starts or stops
    /// waiting.
    #[inline]
    pub fn proxy_waiting(&self) -> bool {
        self.line().proxy_waiting.load(Ordering::Relaxed) != 0
    }
}

/// A queue's wake socket pair: `(wait, kick)`. The guest's epoll waits on
/// `wait`; `kick` (and the copy START passes) sends wake-ups to it.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )?)
}

/// Sends one wake-up on `kick`. Never blocks whatever the descriptor's
/// flags (`MSG_DONTWAIT`), never raises SIGPIPE; a full socket (the
/// guest has not read the last ones) is as good as a wake-up sent.
#[inline]
pub fn wake(kick: BorrowedFd<'_>) -> bool {
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    matches!(
        socket::send(kick.as_raw_fd(), &[1], flags),
        Ok(1) | Err(Errno::EAGAIN)
    )
}

/// Reads every wake-up waiting on `wait`, without blocking; returns how
/// many there were.
pub fn drain(wait: BorrowedFd<'_>) -> u64 {
    let mut n = 0;
    let mut b = [0u8; 16];
    while let Ok(1..) = socket::recv(wait.as_raw_fd(), &mut b, MsgFlags::MSG_DONTWAIT) {
        n += 1;
    }
    n
}

/// Why a descriptor a guest passed is not a wake socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeFdError {
    /// Not a unix `SOCK_SEQPACKET` socket.
    NotSeqpacket,
    /// Its peer is not the guest process itself (a socket connected to
    /// some other listener): the proxy would write into someone else's
    /// socket.
    ForeignPeer {
        pid: i32,
        uid: u32,
    },
    Io(i32),
}

impl std::fmt::Display for WakeFdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WakeFdError::NotSeqpacket => {
                write!(
                    f,
                    "the rx wake descriptor is not a unix SOCK_SEQPACKET socket"
                )
            }
            WakeFdError::ForeignPeer { pid, uid } => write!(
                f,
                "the rx wake socket's peer is process {pid} (uid {uid}), not the guest"
            ),
            WakeFdError::Io(e) => write!(
                f,
                "the rx wake descriptor: {}",
                io::Error::from_raw_os_error(*e)
            ),
        }
    }
}

impl std::error::Error for WakeFdError {}

/// Checks that `fd`, passed by guest process `pid` (uid `uid`), is a wake
/// socket: a unix `SOCK_SEQPACKET` socket whose peer that same process
/// made (`socketpair`), so that a wake-up reaches the guest and no one
/// else. Sending on it then never blocks ([`wake`]).
pub fn check_wake_fd(fd: BorrowedFd<'_>, pid: i32, uid: u32) -> Result<(), WakeFdError> {
    let err = |e: Errno| match e {
        Errno::ENOTSOCK => WakeFdError::NotSeqpacket,
        e => WakeFdError::Io(e as i32),
    };
    // A name of another family than AF_UNIX does not parse as a UnixAddr.
    let unix = match socket::getsockname::<UnixAddr>(fd.as_raw_fd()) {
        Ok(_) => true,
        Err(Errno::EINVAL) => false,
        Err(e) => return Err(err(e)),
    };
    if !unix || socket::getsockopt(&fd, sockopt::SockType).map_err(err)? != SockType::SeqPacket {
        return Err(WakeFdError::NotSeqpacket);
    }
    let cred = socket::getsockopt(&fd, sockopt::PeerCredentials).map_err(err)?;
    if cred.pid() != pid || cred.uid() != uid {
        return Err(WakeFdError::ForeignPeer {
            pid: cred.pid(),
            uid: cred.uid(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn me() -> (i32, u32) {
        (
            nix::unistd::getpid().as_raw(),
            nix::unistd::getuid().as_raw(),
        )
    }

    #[test]
    fn a_wake_reaches_the_other_end_and_drains() {
        let (wait, kick) = pair().unwrap();
        assert_eq!(drain(wait.as_fd()), 0);
        assert!(wake(kick.as_fd()));
        assert!(wake(kick.as_fd()));
        assert_eq!(drain(wait.as_fd()), 2);
        assert_eq!(drain(wait.as_fd()), 0);
    }

    #[test]
    fn a_full_socket_does_not_block_the_waker() {
        let (wait, kick) = pair().unwrap();
        // Blocking again: only MSG_DONTWAIT keeps the waker going.
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        fcntl(kick.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty())).unwrap();
        for _ in 0..100_000 {
            assert!(wake(kick.as_fd()));
        }
        assert!(drain(wait.as_fd()) > 0);
    }

    #[test]
    fn only_the_guests_own_seqpacket_pair_is_a_wake_socket() {
        let (pid, uid) = me();
        let (_wait, kick) = pair().unwrap();
        assert_eq!(check_wake_fd(kick.as_fd(), pid, uid), Ok(()));
        assert_eq!(
            check_wake_fd(kick.as_fd(), pid + 1, uid),
            Err(WakeFdError::ForeignPeer { pid, uid })
        );
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert_eq!(
            check_wake_fd(r.as_fd(), pid, uid),
            Err(WakeFdError::NotSeqpacket)
        );
        let (d, _d2) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let d: OwnedFd = d.into();
        assert_eq!(
            check_wake_fd(d.as_fd(), pid, uid),
            Err(WakeFdError::NotSeqpacket)
        );
    }
}

#[cfg(test)]
mod ctl_tests {
    use crate::layout::Layout;
    use crate::region::tests::memfd_region;

    #[test]
    fn one_arm_gives_one_wake_and_the_flags_are_per_queue() {
        let l = Layout::compute_queues(4096, 64, 4, 4096, 4096);
        let r = memfd_region(l.region_size as usize);
        let v = l.validate(l.region_size).unwrap();
        let (guest, proxy) = (r.queue_ctl(&v, 2).unwrap(), r.queue_ctl(&v, 2).unwrap());
        let other = r.queue_ctl(&v, 3).unwrap();
        assert!(r.queue_ctl(&v, 4).is_err());
        assert!(!proxy.take_rx_armed());
        guest.arm_rx();
        assert!(!other.take_rx_armed());
        assert!(proxy.take_rx_armed());
        assert!(!proxy.take_rx_armed(), "one arm, one wake-up");
        guest.arm_rx();
        guest.disarm_rx();
        assert!(!proxy.take_rx_armed());
        proxy.set_proxy_waiting(true);
        assert!(guest.proxy_waiting() && !other.proxy_waiting());
        proxy.set_proxy_waiting(false);
        assert!(!guest.proxy_waiting());
    }
}
