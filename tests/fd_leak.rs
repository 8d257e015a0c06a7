//! Descriptors a client attaches to its messages must not stay open in the
//! proxy. A hostile local process sends SCM_RIGHTS with every message type
//! the protocol has (HELLO, START, STOP, and the proxy's own types sent the
//! wrong way), with garbage, with an empty message, in one and in two
//! control messages, 1 to 253 at a time, as the guest of a socket and as a
//! second client the socket refuses. Afterwards the proxy's descriptor
//! count is back to its idle value, and a real guest still forwards.
mod common;
use common::*;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use shm_abi::msg::{self, Hello, Link, Msg, Start, Status};
use shm_abi::socket as wire;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Sends `bytes` carrying `n` copies of one descriptor, split over
/// `cmsgs` SCM_RIGHTS control messages. False if the proxy had already
/// closed the connection (a refused second client may be).
fn send_with_fds(sock: &OwnedFd, bytes: &[u8], n: usize, cmsgs: usize) -> bool {
    let probe = memfd::MemfdOptions::default()
        .create("fd-leak-probe")
        .unwrap();
    let fds: Vec<RawFd> = vec![probe.as_raw_fd(); n];
    let parts: Vec<&[RawFd]> = fds.chunks(n.div_ceil(cmsgs)).collect();
    let cmsg: Vec<ControlMessage> = parts.iter().map(|p| ControlMessage::ScmRights(p)).collect();
    match sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    ) {
        Ok(_) => true,
        Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => false,
        Err(e) => panic!("sendmsg: {e}"),
    }
}

fn hello() -> Vec<u8> {
    Msg::Hello(Hello {
        version_min: msg::VERSION_MIN,
        version_max: msg::VERSION_MAX,
        pid: std::process::id(),
        name: "fdleak".into(),
        flags: 0,
        resume: None,
    })
    .encode(msg::VERSION_MAX)
}

/// Waits for the proxy's answer to a request; None if it closed.
fn reply(sock: &OwnedFd) -> Option<Msg> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        match wire::recv(sock.as_raw_fd(), true) {
            Ok(Some(r)) => return Some(r.msg),
            Ok(None) => return None,
            Err(e) if e.would_block() => std::thread::sleep(Duration::from_millis(5)),
            // Closed with our message unread.
            Err(e) if e.errno() == libc::ECONNRESET => return None,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no answer from the proxy");
}

/// The proxy's descriptor count, once it stopped changing and is at most
/// `want` (or after 5 s).
fn settled_fds(pid: i32, want: usize) -> usize {
    let t0 = Instant::now();
    loop {
        let n = fd_count(pid);
        if n <= want || t0.elapsed() > Duration::from_secs(5) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn descriptors_sent_to_the_proxy_are_closed() {
    let (dir, sock, proxy) = Proxy::one_queue("fdleak", "net_null0", "");
    let sock = sock.as_str();
    let pid = proxy.proc.pid();
    std::thread::sleep(Duration::from_millis(300));
    let idle = fd_count(pid);
    let garbage = b"\x00\x01garbage that is no message".to_vec();
    let wrong_way = [
        Msg::Link(Link { up: true, speed: 1 }).encode(msg::VERSION_MAX),
        Msg::StartAck(Status::ok()).encode(msg::VERSION_MAX),
        Msg::Error(Status::error(libc::EIO, "x")).encode(msg::VERSION_MAX),
    ];
    let start = Msg::Start(Start {
        rx_buf_len: 2176,
        rx_headroom: 128,
        queue: 0,
        scatter: false,
        rx_intr: false,
    })
    .encode(msg::VERSION_MAX);
    let stop = Msg::Stop.encode(msg::VERSION_MAX);
    let mut conns = 0;
    for &(n, cmsgs) in &[(1, 1), (2, 1), (3, 1), (8, 2), (64, 1), (253, 1), (200, 2)] {
        // As the socket's guest: every request carries descriptors.
        let g = connect_seqpacket(sock);
        assert!(send_with_fds(&g, &hello(), n, cmsgs));
        assert!(matches!(reply(&g), Some(Msg::HelloAck(_))));
        assert!(send_with_fds(&g, &start, n, cmsgs));
        assert!(matches!(reply(&g), Some(Msg::StartAck(s)) if s.code == 0));
        assert!(send_with_fds(&g, &stop, n, cmsgs));
        assert!(matches!(reply(&g), Some(Msg::StopAck(s)) if s.code == 0));
        // A second client while the guest is there: refused.
        let second = connect_seqpacket(sock);
        let _ = send_with_fds(&second, &hello(), n, cmsgs);
        // (Its ERROR may be lost to the reset of a close with our message
        // unread.)
        match reply(&second) {
            Some(Msg::Error(s)) => assert_eq!(s.code, -libc::EBUSY, "{s:?}"),
            None => {}
            Some(other) => panic!("{other:?}"),
        }
        drop(second);
        // Messages that are not requests, then garbage: disconnected.
        assert!(send_with_fds(
            &g,
            &wrong_way[conns % wrong_way.len()],
            n,
            cmsgs
        ));
        assert!(
            reply(&g).is_none(),
            "the proxy drops a guest that sends {conns}"
        );
        drop(g);
        assert!(proxy.guest_gone(sock));
        // Garbage, or nothing, as the first message.
        for first in [&garbage, &Vec::new()] {
            let c = connect_seqpacket(sock);
            assert!(send_with_fds(&c, first, n, cmsgs));
            let _ = reply(&c);
            drop(c);
            assert!(proxy.guest_gone(sock));
        }
        conns += 1;
    }
    let after = settled_fds(pid, idle);
    assert_eq!(
        after, idle,
        "proxy descriptors: {idle} idle, {after} after {conns} rounds of clients sending descriptors"
    );
    // The socket still serves a real guest.
    let guest = Guest::start(&dir, "guest", sock);
    std::thread::sleep(Duration::from_secs(2));
    let counts = guest.stop(libc::SIGINT);
    assert!(counts.rx > 10_000 && counts.tx > 10_000, "{counts:?}");
    proxy.stop(&[sock]);
}
