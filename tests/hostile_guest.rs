//! A hostile guest: speaks the protocol by hand, then lies. Its descriptors
//! point outside the buffer area (into the rings, the heap, past the end)
//! or hand over for recycling what cannot be a fill buffer, and finally it
//! publishes an impossible ring index. The proxy must reject and count what
//! it can, disconnect the guest when the rings are corrupt, and keep
//! serving: a stock testpmd then gets the same socket and forwards.
mod common;
use common::*;
use shm_abi::desc::{Desc, TX_RECYCLE};
use shm_abi::msg::{self, Hello, Msg, Start};
use shm_abi::region::Region;
use shm_abi::socket::{self as wire, Received};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

fn send(fd: &OwnedFd, m: Msg) {
    wire::send(fd.as_raw_fd(), &m, msg::VERSION_MAX, None).unwrap();
}

fn recv(fd: &OwnedFd) -> Received {
    for _ in 0..100 {
        if let Ok(Some(m)) = wire::recv(fd.as_raw_fd(), true) {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no reply from proxy");
}

#[test]
fn hostile_guest_is_contained_and_the_socket_keeps_working() {
    let (dir, sock, mut proxy) = Proxy::one_queue("hostile", "net_null0", "");
    let sock = sock.as_str();
    // A guest that speaks only an older protocol is refused, clearly.
    let old = connect_seqpacket(sock);
    send(
        &old,
        Msg::Hello(Hello {
            version_min: 1,
            version_max: 1,
            pid: std::process::id(),
            name: "old".into(),
            flags: 0,
            resume: None,
        }),
    );
    match recv(&old).msg {
        Msg::Error(s) => {
            assert!(s.text.contains("no common protocol version"), "{s:?}");
            assert_eq!(s.code, -libc::ENOTSUP, "the errno says why");
        }
        other => panic!("{other:?}"),
    }
    drop(old);

    let fd = connect_seqpacket(sock);
    send(
        &fd,
        Msg::Hello(Hello {
            version_min: msg::VERSION_MIN,
            version_max: msg::VERSION_MAX,
            pid: std::process::id(),
            name: "hostile".into(),
            flags: 0,
            resume: None,
        }),
    );
    let reply = recv(&fd);
    let ack = match reply.msg {
        Msg::HelloAck(a) => a,
        other => panic!("proxy refused: {other:?}"),
    };
    let l = ack.layout;
    let region = Region::map(reply.fd.expect("memfd"), l.region_size as usize).unwrap();
    let mut fill = region.producer(l.fill_off, l.ring_entries).unwrap();
    let mut tx = region.producer(l.tx_off, l.ring_entries).unwrap();

    // Fill buffers pointing at the rings, the heap, the last bytes of the
    // region, and one with a length that runs past the end.
    let bad = [
        l.fill_off,
        l.heap_off,
        l.region_size - 64,
        l.buf_off + l.buf_len - 1000,
    ];
    for off in bad {
        fill.push(Desc::new(off, 128, 0)).unwrap();
    }
    let start = Start {
        rx_buf_len: 2176,
        rx_headroom: 128,
        queue: 0,
        scatter: false,
        rx_intr: false,
    };
    wire::send(fd.as_raw_fd(), &Msg::Start(start), ack.version, None).unwrap();
    match recv(&fd).msg {
        Msg::StartAck(s) => assert_eq!(s.code, 0, "{s:?}"),
        other => panic!("{other:?}"),
    }

    // Frames to send from outside the buffer area, and absurd lengths.
    for off in bad {
        tx.push(Desc::new(off, 0, 1514)).unwrap();
    }
    tx.push(Desc::new(l.buf_off + l.buf_len - 1024, 0, 1514))
        .unwrap(); // runs past the area
    tx.push(Desc::new(l.buf_off, 0, 3)).unwrap(); // shorter than an Ethernet header

    // Handed over for recycling, so to be a fill buffer next: one whose
    // packet ends past a fill buffer's room, one with no room left in the
    // area.
    let past_room = Desc::new(l.buf_off, 2100 | TX_RECYCLE, 200);
    let no_room = Desc::new(l.buf_off + l.buf_len - 1000, 128 | TX_RECYCLE, 64);
    tx.push(past_room).unwrap();
    tx.push(no_room).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let rejected = proxy.socket_field(sock, "bad_descriptors");
    assert_eq!(rejected, 12, "every bad descriptor rejected and counted");
    assert_eq!(
        proxy.socket_field(sock, "tx_packets"),
        0,
        "nothing of it reached the NIC"
    );
    assert_eq!(proxy.socket_field(sock, "payload_copies"), 0);

    // Now an impossible producer index on the fill ring.
    // SAFETY: the test plays the hostile guest writing its own region.
    unsafe {
        let prod = region.base().add(l.fill_off as usize) as *mut u32;
        std::ptr::write_volatile(prod, std::ptr::read_volatile(prod).wrapping_add(1_000_000));
    }
    proxy
        .proc
        .wait_for("guest corrupted its rings", 1, Duration::from_secs(5));
    assert!(
        wire::recv(fd.as_raw_fd(), true)
            .map(|m| m.is_none())
            .unwrap_or(false),
        "proxy should close the socket"
    );
    drop(region);
    drop(fd);

    // The socket serves a real guest again.
    let guest = Guest::start(&dir, "guest", sock);
    std::thread::sleep(Duration::from_secs(2));
    let g = guest.stop(libc::SIGINT);
    assert!(g.rx > 10_000 && g.tx > 10_000, "{g:?}");
    proxy.stop(&[sock]);
}

/// GROW (protocol v6): the buffer area grows by a memfd the guest maps
/// right after it, up to the socket's `max_buffers`; past that the answer
/// is ERROR with ENOMEM, naming the limit.
#[test]
fn buffer_area_grows_up_to_the_sockets_limit() {
    let dir = Scratch::new("grow");
    let sock = "/tmp/iop-grow/s0/sock";
    let proxy = Proxy::start(
        &dir,
        "iop_grow",
        &["--vdev", "net_null0"],
        &format!("add port 0 queues 1\nadd socket {sock} 0 0 buffers 512 max_buffers 600\n"),
    );
    let fd = connect_seqpacket(sock);
    send(
        &fd,
        Msg::Hello(Hello {
            version_min: 6,
            version_max: msg::VERSION_MAX,
            pid: std::process::id(),
            name: "grow".into(),
            flags: 0,
            resume: None,
        }),
    );
    let r = recv(&fd);
    let Msg::HelloAck(ack) = r.msg else {
        panic!("{:?}", r.msg)
    };
    let l = ack.layout;
    assert_eq!((l.buf_len, l.buf_max), (512 << 20, 600 << 20));
    let region = Region::map_growable(
        r.fd.unwrap(),
        l.region_size as usize,
        (l.buf_off + l.buf_max) as usize,
        l.page_size as usize,
    )
    .unwrap();
    let grow = |bytes: u64| {
        wire::send(fd.as_raw_fd(), &Msg::Grow(msg::Grow { bytes }), 6, None).unwrap();
        recv(&fd)
    };
    let r = grow(50 << 20);
    let Msg::GrowAck(g) = r.msg else {
        panic!("{:?}", r.msg)
    };
    assert_eq!((g.offset, g.len), (l.region_size, 50 << 20));
    let off = region
        .grow(std::os::fd::AsFd::as_fd(&r.fd.unwrap()), g.len as usize)
        .unwrap();
    assert_eq!(off, g.offset);
    // The proxy maps the same memory: what it holds is what we see.
    let v = l.validate(l.region_size).unwrap();
    assert!(region.buffers(&v).unwrap().contains(off, g.len));
    // 562 of 600 MiB used: 100 more is refused, and says why.
    match grow(100 << 20).msg {
        Msg::Error(s) => {
            assert_eq!(s.code, -libc::ENOMEM, "{s:?}");
            assert!(s.text.contains("max_buffers"), "{s:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(proxy
        .proc
        .text()
        .contains("buffers grew by 50 MiB to 562 MiB"));
    drop(fd);
    assert!(proxy.guest_gone(sock));
    proxy.stop(&[sock]);
}

/// A RESUME (v8) whose region is not what the proxy can safely map is
/// refused with the reason, and the socket keeps serving.
#[test]
fn resume_with_a_region_that_is_not_a_sealed_memfd_of_its_layout_is_refused() {
    let (dir, sock, proxy) = Proxy::one_queue("hresume", "net_null0", "");
    let sock = sock.as_str();
    let hello = |resume| {
        Msg::Hello(Hello {
            version_min: msg::VERSION_MAX,
            version_max: msg::VERSION_MAX,
            pid: std::process::id(),
            name: "resumer".into(),
            flags: msg::HELLO_RESUME,
            resume,
        })
    };
    // A layout the proxy itself made.
    let c = connect_seqpacket(sock);
    let mut plain = hello(None);
    if let Msg::Hello(h) = &mut plain {
        h.flags = 0;
    }
    send(&c, plain);
    let l = match recv(&c).msg {
        Msg::HelloAck(a) => a.layout,
        other => panic!("{other:?}"),
    };
    drop(c);
    assert!(proxy.guest_gone(sock));
    // The layout without the memfd.
    let c = connect_seqpacket(sock);
    send(&c, hello(Some(l)));
    match recv(&c).msg {
        Msg::Error(s) => {
            assert!(s.text.contains("without the region"), "{s:?}");
            assert_eq!(s.code, -libc::EINVAL);
        }
        other => panic!("{other:?}"),
    }
    drop(c);
    assert!(proxy.guest_gone(sock));
    let memfd = |seal: bool, len: u64| -> OwnedFd {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscalls on a descriptor we own.
        unsafe {
            let fd = libc::memfd_create(c"resume".as_ptr(), libc::MFD_ALLOW_SEALING);
            assert!(fd >= 0);
            assert_eq!(libc::ftruncate(fd, len as i64), 0);
            if seal {
                let s = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
                assert_eq!(libc::fcntl(fd, libc::F_ADD_SEALS, s), 0);
            }
            OwnedFd::from_raw_fd(fd)
        }
    };
    let file = std::fs::File::create("/tmp/iop-hresume/not-a-memfd").unwrap();
    file.set_len(l.region_size).unwrap();
    let cases: [(OwnedFd, &str, i32); 3] = [
        (memfd(false, l.region_size), "not sealed", libc::EACCES),
        (
            memfd(true, l.region_size - 4096),
            "bytes, its layout says",
            libc::EINVAL,
        ),
        (file.into(), "not a memfd", libc::EACCES),
    ];
    for (fd, why, errno) in cases {
        let c = connect_seqpacket(sock);
        wire::send(
            c.as_raw_fd(),
            &hello(Some(l)),
            msg::VERSION_MAX,
            Some(fd.as_raw_fd()),
        )
        .unwrap();
        match recv(&c).msg {
            Msg::Error(s) => {
                assert!(s.text.contains(why), "{why}: {s:?}");
                assert_eq!(s.code, -errno, "{s:?}");
            }
            other => panic!("{why}: {other:?}"),
        }
        assert!(proxy.guest_gone(sock));
    }
    // A region of its own making, sealed, of the layout's size: resumed.
    // Then the parts it claims its area grew by (RESUME_PART, v9): each
    // must be the next 2 MiB steps at the area's end, a sealed memfd of
    // the announced size; what is not is refused and nothing is mapped.
    let c = connect_seqpacket(sock);
    let own = memfd(true, l.region_size);
    wire::send(
        c.as_raw_fd(),
        &hello(Some(l)),
        msg::VERSION_MAX,
        Some(own.as_raw_fd()),
    )
    .unwrap();
    assert!(matches!(recv(&c).msg, Msg::HelloAck(_)));
    let end = l.region_size;
    let part = |offset, len| Msg::ResumePart(msg::GrowAck { offset, len });
    let two = 2u64 << 20;
    let cases: [(Msg, Option<OwnedFd>, &str); 5] = [
        (part(end, two), None, "without its memfd"),
        (
            part(end + two, two),
            Some(memfd(true, two)),
            "does not follow",
        ),
        (part(end, 4096), Some(memfd(true, 4096)), "does not follow"),
        (part(end, two), Some(memfd(false, two)), "not sealed"),
        (part(end, two), Some(memfd(true, 2 * two)), "were announced"),
    ];
    for (m, fd, why) in cases {
        wire::send(
            c.as_raw_fd(),
            &m,
            msg::VERSION_MAX,
            fd.as_ref().map(|f| f.as_raw_fd()),
        )
        .unwrap();
        match recv(&c).msg {
            Msg::Error(s) => assert!(s.text.contains(why), "{why}: {s:?}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    let good = memfd(true, two);
    wire::send(
        c.as_raw_fd(),
        &part(end, two),
        msg::VERSION_MAX,
        Some(good.as_raw_fd()),
    )
    .unwrap();
    match recv(&c).msg {
        Msg::GrowAck(a) => assert_eq!((a.offset, a.len), (end, two)),
        other => panic!("a good part: {other:?}"),
    }
    drop(c);
    assert!(proxy.guest_gone(sock));
    // The socket still serves a stock guest.
    let g = Guest::start(&dir, "guest", sock);
    std::thread::sleep(Duration::from_secs(1));
    let counts = g.stop(libc::SIGINT);
    assert!(counts.rx > 10_000, "{counts:?}");
    proxy.stop(&[sock]);
}

#[test]
fn rx_wake_sockets_that_could_reach_someone_else_are_refused() {
    let (_dir, sock, proxy) = Proxy::one_queue("hwake", "net_null0", "");
    let sock = sock.as_str();
    let fd = connect_seqpacket(sock);
    send(
        &fd,
        Msg::Hello(Hello {
            version_min: msg::VERSION_MAX,
            version_max: msg::VERSION_MAX,
            pid: std::process::id(),
            name: "waker".into(),
            flags: 0,
            resume: None,
        }),
    );
    let reply = recv(&fd);
    let Msg::HelloAck(ack) = reply.msg else {
        panic!("{:?}", reply.msg)
    };
    let l = ack.layout;
    let region = Region::map(reply.fd.expect("memfd"), l.region_size as usize).unwrap();
    let layout = l.validate(l.region_size).unwrap();
    let start = Msg::Start(Start {
        rx_buf_len: 2176,
        rx_headroom: 128,
        queue: 0,
        scatter: false,
        rx_intr: true,
    });
    let start_with = |pass: Option<&OwnedFd>| {
        wire::send(
            fd.as_raw_fd(),
            &start,
            ack.version,
            pass.map(|p| p.as_raw_fd()),
        )
        .unwrap();
        match recv(&fd).msg {
            Msg::StartAck(s) => s,
            other => panic!("{other:?}"),
        }
    };
    // A pipe; a datagram socket (it could be connected anywhere); a
    // seqpacket socket connected to someone else's listener (the proxy's
    // own socket: its peer is the proxy). No wake socket at all.
    let mut p = [0; 2];
    // SAFETY: pipe writes two descriptors, wrapped right away.
    let (pipe_r, _pipe_w) = unsafe {
        use std::os::fd::FromRawFd;
        assert_eq!(libc::pipe(p.as_mut_ptr()), 0);
        (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1]))
    };
    let (dgram, _dgram_peer) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let foreign = connect_seqpacket(sock);
    let cases: [(Option<OwnedFd>, &str, i32); 4] = [
        (None, "no wake socket", libc::EINVAL),
        (Some(pipe_r), "not a unix SOCK_SEQPACKET", libc::EINVAL),
        (
            Some(dgram.into()),
            "not a unix SOCK_SEQPACKET",
            libc::EINVAL,
        ),
        (
            Some(foreign),
            &format!("peer is process {}", proxy.proc.pid()),
            libc::EACCES,
        ),
    ];
    for (pass, why, errno) in cases {
        let s = start_with(pass.as_ref());
        assert!(s.text.contains(why), "{why}: {s:?}");
        assert_eq!(s.code, -errno, "{s:?}");
    }
    // The guest's own pair: accepted. Armed, with fill buffers posted
    // after, the proxy's first rx publish wakes it, once, and disarms it.
    let (wait, kick) = shm_abi::wake::pair().unwrap();
    let s = start_with(Some(&kick));
    assert_eq!(s.code, 0, "{s:?}");
    drop(kick);
    let ctl = region.queue_ctl(&layout, 0).unwrap();
    let mut fill = region.producer(l.fill_off, l.ring_entries).unwrap();
    let mut rx = region.consumer(l.rx_off, l.ring_entries).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(shm_abi::wake::drain(std::os::fd::AsFd::as_fd(&wait)), 0);
    ctl.arm_rx();
    assert!(!rx.pending(), "rx before any fill buffer");
    for k in 0..64 {
        fill.push(Desc::new(l.buf_off + k * 4096, 128, 0)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.available(1).unwrap() > 0, "net_null delivered nothing");
    assert_eq!(
        shm_abi::wake::drain(std::os::fd::AsFd::as_fd(&wait)),
        1,
        "one arm, one wake-up"
    );
    assert_eq!(proxy.socket_field(sock, "rx_wakes"), 1);
    drop(fd);
    assert!(proxy.guest_gone(sock));
}
