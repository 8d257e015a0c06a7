//! A hostile guest: speaks the protocol by hand, then lies. Its descriptors
//! point outside the buffer area (into the rings, the heap, past the end)
//! or hand over for recycling what cannot be a fill buffer, and finally it
//! publishes an impossible ring index. The proxy must reject and count what
//! it can, disconnect the guest when the rings are corrupt, and keep
//! serving: a stock testpmd then gets the same socket and forwards.
mod common;
use bus_shm::proto::{self, Hello, HelloAck, Reader, Start, Status};
use bus_shm::region::{recv_msg, send_msg, Region};
use bus_shm::ring::{Desc, TX_RECYCLE};
use common::*;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

fn connect(path: &str) -> OwnedFd {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    fd
}

fn recv(fd: &OwnedFd) -> (Vec<u8>, Option<OwnedFd>) {
    for _ in 0..100 {
        if let Ok(Some(m)) = recv_msg(fd.as_raw_fd(), true) {
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
    let old = connect(sock);
    let v1 = Hello {
        version_min: 1,
        version_max: 1,
        pid: std::process::id(),
        name: "old".into(),
    };
    send_msg(old.as_raw_fd(), v1.encode().bytes(), None).unwrap();
    let (msg, _) = recv(&old);
    let (mut r, t, _) = Reader::new(&msg).unwrap();
    assert_eq!(t, proto::MSG_ERROR);
    let why = Status::decode(&mut r).unwrap().text;
    assert!(why.contains("no common protocol version"), "{why}");
    drop(old);

    let fd = connect(sock);
    let hello = Hello {
        version_min: proto::VERSION_MIN,
        version_max: proto::VERSION_MAX,
        pid: std::process::id(),
        name: "hostile".into(),
    };
    send_msg(fd.as_raw_fd(), hello.encode().bytes(), None).unwrap();
    let (msg, memfd) = recv(&fd);
    let (mut r, t, _) = Reader::new(&msg).unwrap();
    if t == proto::MSG_ERROR {
        panic!("proxy refused: {:?}", Status::decode(&mut r));
    }
    assert_eq!(t, proto::MSG_HELLO_ACK);
    let ack = HelloAck::decode(&mut r).unwrap();
    let l = ack.layout;
    let region = Region::map(memfd.expect("memfd"), l.region_size as usize).unwrap();
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
    };
    send_msg(fd.as_raw_fd(), start.encode(ack.version).bytes(), None).unwrap();
    let (msg, _) = recv(&fd);
    let (mut r, t, _) = Reader::new(&msg).unwrap();
    assert_eq!(t, proto::MSG_START_ACK);
    assert_eq!(Status::decode(&mut r).unwrap().code, 0);

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
        recv_msg(fd.as_raw_fd(), true)
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
