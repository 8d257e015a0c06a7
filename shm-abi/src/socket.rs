//! Messages on the unix socket, with the file descriptors they carry.
//!
//! [`recv`] takes every descriptor the kernel installs with a message,
//! whatever the message and however many, keeps the ones the message type
//! carries ([`Msg::fds_expected`]) and closes the rest before returning:
//! a peer cannot fill this process's fd table by attaching descriptors.
//! Its control buffer holds the kernel's maximum per message
//! (`SCM_MAX_FD`, 253), so no descriptor is ever left installed behind a
//! truncated control message.

use crate::msg::{Msg, ProtoError, MAX_MSG};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Most descriptors Linux passes with one message (`SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;

/// A received message, with the descriptor it carries if its type carries one.
#[derive(Debug)]
pub struct Received {
    /// The version in the message's header.
    pub version: u16,
    pub msg: Msg,
    pub fd: Option<OwnedFd>,
}

/// Why [`recv`] returned no message.
#[derive(Debug)]
pub enum RecvError {
    /// The socket failed, or (non-blocking) had nothing: `WouldBlock`.
    Io(io::Error),
    /// The bytes are not a message (any descriptors with them are closed).
    Malformed(ProtoError),
    /// More bytes than any message has.
    TooLong,
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Io(e) => write!(f, "{e}"),
            RecvError::Malformed(e) => write!(f, "malformed message: {e}"),
            RecvError::TooLong => write!(f, "message longer than {MAX_MSG} bytes"),
        }
    }
}

impl std::error::Error for RecvError {}

impl RecvError {
    pub fn would_block(&self) -> bool {
        matches!(self, RecvError::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
    /// The errno a C caller returns.
    pub fn errno(&self) -> i32 {
        match self {
            RecvError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
            RecvError::Malformed(e) => e.errno(),
            RecvError::TooLong => libc::EMSGSIZE,
        }
    }
}

/// Sends one message, with `pass` attached if given.
pub fn send(fd: RawFd, msg: &Msg, version: u16, pass: Option<RawFd>) -> io::Result<()> {
    send_bytes(fd, &msg.encode(version), pass)
}

/// Sends raw bytes as one message (tests play a broken peer with it).
pub fn send_bytes(fd: RawFd, bytes: &[u8], pass: Option<RawFd>) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::io::IoSlice;
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

/// Control buffer for [`recv_raw`]: room for `SCM_MAX_FD` descriptors and a
/// second header, u64-aligned as `cmsghdr` wants.
#[repr(C, align(8))]
struct CmsgBuf([u8; 1280]);
// SAFETY: CMSG_SPACE only computes a size from its argument.
const _: () = assert!(unsafe { libc::CMSG_SPACE((SCM_MAX_FD * 4) as u32) } as usize + 64 <= 1280);

/// Receives one datagram: its bytes (None at end of stream) and every
/// descriptor that came with it, each now owned here.
fn recv_raw(fd: RawFd, nonblock: bool) -> io::Result<(Option<Vec<u8>>, Vec<OwnedFd>, bool)> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut cbuf = CmsgBuf([0; 1280]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.0.as_mut_ptr() as *mut libc::c_void;
    mh.msg_controllen = cbuf.0.len();
    let mut flags = libc::MSG_CMSG_CLOEXEC;
    if nonblock {
        flags |= libc::MSG_DONTWAIT;
    }
    // SAFETY: mh points at iov, buf and cbuf, which live across the call
    // and have the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut mh, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled mh.msg_control up to msg_controllen with
    // well-formed headers; CMSG_FIRSTHDR/NXTHDR stay inside it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const RawFd;
                let bytes = (*c).cmsg_len as usize - (data as usize - c as usize);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    // The kernel installed it in our table: we own it now,
                    // and dropping it closes it.
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    let truncated = mh.msg_flags & libc::MSG_TRUNC != 0;
    if n == 0 && fds.is_empty() {
        return Ok((None, fds, false));
    }
    buf.truncate(n as usize);
    Ok((Some(buf), fds, truncated))
}

/// Receives one message. `Ok(None)` at end of stream. Descriptors the
/// message's type does not carry are closed, as are all of them when the
/// bytes are not a message.
pub fn recv(fd: RawFd, nonblock: bool) -> Result<Option<Received>, RecvError> {
    let (bytes, mut fds, truncated) = recv_raw(fd, nonblock).map_err(RecvError::Io)?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    if truncated {
        return Err(RecvError::TooLong);
    }
    let (version, msg) = Msg::decode(&bytes).map_err(RecvError::Malformed)?;
    fds.truncate(Msg::fds_expected(msg.type_code()));
    Ok(Some(Received {
        version,
        msg,
        fd: fds.pop(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{Link, Status, VERSION_MAX};
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;

    /// Descriptors of this process open on memfds called `name` (other
    /// tests run in parallel threads and open descriptors of their own).
    fn open_fds(name: &str) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().contains(name))
            .count()
    }

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    /// Sends `bytes` with `n` descriptors (of one memfd called `name`),
    /// in one SCM_RIGHTS message.
    fn send_with_fds(fd: &OwnedFd, bytes: &[u8], n: usize, name: &str) {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let probe = memfd::MemfdOptions::default().create(name).unwrap();
        let fds: Vec<RawFd> = vec![probe.as_raw_fd(); n];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [std::io::IoSlice::new(bytes)];
        sendmsg::<()>(fd.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).unwrap();
    }

    #[test]
    fn unexpected_descriptors_are_closed() {
        let (a, b) = pair();
        let link = Msg::Link(Link { up: true, speed: 1 }).encode(VERSION_MAX);
        let status = Msg::Error(Status::error(1, "x")).encode(VERSION_MAX);
        let name = "fd-probe-unexpected";
        for n in [1, 2, 3, 16, SCM_MAX_FD] {
            for bytes in [&link[..], &status[..], b"garbage", &[][..]] {
                send_with_fds(&a, bytes, n, name);
                let r = recv(b.as_raw_fd(), true);
                match r {
                    Ok(Some(r)) => assert!(r.fd.is_none()),
                    Ok(None) | Err(RecvError::Malformed(_)) => {}
                    Err(e) => panic!("{e}"),
                }
                assert_eq!(open_fds(name), 0, "{n} fds with {bytes:?}");
            }
        }
    }

    #[test]
    fn hello_ack_keeps_one_descriptor() {
        use crate::layout::Layout;
        use crate::msg::HelloAck;
        let (a, b) = pair();
        let ack = Msg::HelloAck(HelloAck {
            version: VERSION_MAX,
            layout: Layout::compute(4096, 64, 1 << 20, 1 << 20),
            mac: [0; 6],
            mtu: 1500,
            max_rx_pktlen: 1518,
            link_speed: 0,
            link_up: false,
            nic_port: 0,
            nic_queue: 0,
            nic_name: String::new(),
            rx_fill_min: 0,
            rx_offloads: 0,
            ptypes: vec![],
            tx_offloads: 0,
            reta_size: 0,
            rss_hf: 0,
            rss_key: vec![],
            shared_buffers: false,
        })
        .encode(VERSION_MAX);
        let name = "fd-probe-ack";
        send_with_fds(&a, &ack, 5, name);
        let r = recv(b.as_raw_fd(), false).unwrap().unwrap();
        assert!(r.fd.is_some());
        assert_eq!(open_fds(name), 1, "the memfd, and no other");
        drop(r);
        assert_eq!(open_fds(name), 0);
    }
}
