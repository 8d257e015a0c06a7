//! Several ports in one app: a stock testpmd with two `sock:` ports on two
//! NIC ports (net_af_packet on two veths) forwards between them with no
//! copy (the second socket shares the first one's buffer area), and the
//! proxy lets a process share only a region of its own.
mod common;
use common::*;
use shm_abi::msg::{self, Hello, Msg, HELLO_SHARE_BUFFERS};
use shm_abi::socket as wire;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

const FRAMES: u32 = 1000;
const FLOWS: u32 = 32;

#[test]
fn testpmd_io_between_two_sock_ports_zero_copy() {
    let (dir, net, hosts, proxy, socks) = Proxy::two_ports("tp");
    let g =
        Guest::start_interactive_ports(&dir, "g", &[&socks[0], &socks[1]], &["--forward-mode=io"]);
    io_both_ways_zero_copy(g, &net, &hosts, proxy, &socks);
}

/// The `net_shm` vdev (`--vdev net_shm0,path=...`, for apps that name ports
/// by vdev devargs) is the same port as a `sock:` device: one of each in
/// one app forward between each other with no copy.
#[test]
fn net_shm_vdev_and_sock_port_in_one_app_zero_copy() {
    let (dir, net, hosts, proxy, socks) = Proxy::two_ports("tv");
    let vdev = format!("net_shm0,path={}", socks[1]);
    let g = Guest::start_interactive_ports(&dir, "g", &[&socks[0], &vdev], &["--forward-mode=io"]);
    io_both_ways_zero_copy(g, &net, &hosts, proxy, &socks);

    // Without a socket the vdev is refused, saying what is missing.
    let mut cmd = Guest::command_ports(&["net_shm0"], &[]);
    let mut bad = Proc::spawn(&mut cmd, dir.path("nopath.log"), false);
    let st = bad.wait_exit(Duration::from_secs(30));
    assert!(!st.success(), "a net_shm vdev without path= came up");
    assert!(
        bad.text().contains("give path=<the proxy's socket>"),
        "{}",
        bad.text()
    );
}

/// testpmd `g` (io forwarding, at its prompt) moves frames both ways
/// between the two veths, intact, with no copy at either end; then every
/// mbuf comes back at port stop and it quits.
fn io_both_ways_zero_copy(
    mut g: Guest,
    net: &Netns,
    hosts: &[String; 2],
    proxy: Proxy,
    socks: &[String; 2],
) {
    g.cmd("start");
    for (from, to) in [(&hosts[0], &hosts[1]), (&hosts[1], &hosts[0])] {
        let r = net.across(from, to, &net.host_mac(), FRAMES, FLOWS, "");
        assert_eq!(r.sent, FRAMES);
        assert_eq!(r.bad, 0, "{from} -> {to}: frames altered: {r:?}");
        assert_eq!(r.matched, FRAMES, "{from} -> {to}: not all through: {r:?}");
    }
    std::thread::sleep(Duration::from_millis(300));
    g.cmd("stop");
    for port in 0..2 {
        g.cmd(&format!("show port xstats {port}"));
        assert_eq!(g.xstat("tx_copies"), 0, "port {port} copied on tx");
        assert!(g.xstat("tx_good_packets") >= FRAMES as u64, "port {port}");
    }
    for s in socks {
        assert_eq!(proxy.socket_field(s, "payload_copies"), 0);
        assert!(proxy.socket_field(s, "tx_packets") >= FRAMES as i64, "{s}");
    }
    let log = proxy.proc.text();
    assert!(
        log.contains("buffers shared with the guest's other sockets"),
        "the second socket did not share the first one's buffers:\n{log}"
    );
    g.stop_ports_all_back("all");
    g.quit();
    proxy.stop(&[&socks[0], &socks[1]]);
}

fn hello(flags: u32) -> Msg {
    Msg::Hello(Hello {
        version_min: msg::VERSION_MIN,
        version_max: msg::VERSION_MAX,
        pid: std::process::id(),
        name: "share".into(),
        flags,
        resume: None,
    })
}

/// The reply to a HELLO sent with `fd`: the ERROR code, or 0 for HELLO_ACK.
fn hello_reply(sock: &str, flags: u32, fd: Option<i32>) -> i32 {
    let c = connect_seqpacket(sock);
    wire::send(c.as_raw_fd(), &hello(flags), msg::VERSION_MAX, fd).unwrap();
    match wire::recv(c.as_raw_fd(), false).unwrap().unwrap().msg {
        Msg::HelloAck(a) => {
            assert_eq!(a.shared_buffers, flags & HELLO_SHARE_BUFFERS != 0);
            0
        }
        Msg::Error(s) => s.code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_the_same_process_may_share_a_region() {
    let (_dir, _net, _hosts, proxy, socks) = Proxy::two_ports("ts");
    // Not a region of the proxy at all.
    let own = memfd::MemfdOptions::default()
        .create("not-the-proxys")
        .unwrap();
    own.as_file().set_len(1 << 20).unwrap();
    assert_eq!(
        hello_reply(&socks[1], HELLO_SHARE_BUFFERS, Some(own.as_raw_fd())),
        -libc::ENOENT
    );
    // Sharing asked, no region sent.
    assert_eq!(
        hello_reply(&socks[1], HELLO_SHARE_BUFFERS, None),
        -libc::EINVAL
    );
    // This process's region, named by another process (a child that got
    // the memfd from us, as a hostile guest would from a careless one).
    let a = connect_seqpacket(&socks[0]);
    wire::send(a.as_raw_fd(), &hello(0), msg::VERSION_MAX, None).unwrap();
    let r = wire::recv(a.as_raw_fd(), false).unwrap().unwrap();
    assert!(matches!(r.msg, Msg::HelloAck(_)));
    let region: OwnedFd = r.fd.expect("memfd");
    let bytes: String = hello(HELLO_SHARE_BUFFERS)
        .encode(msg::VERSION_MAX)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The child connects on its own, sends the memfd with HELLO and prints
    // the ERROR code the proxy answers.
    let script = r#"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
socket.send_fds(s, [bytes.fromhex(sys.argv[2])], [int(sys.argv[3])])
m = s.recv(512)
print(struct.unpack_from('<H', m, 6)[0], struct.unpack_from('<i', m, 8)[0])
"#;
    let raw = region.as_raw_fd();
    let mut cmd = std::process::Command::new("/usr/bin/python3");
    cmd.args(["-c", script, &socks[1], &bytes, &raw.to_string()]);
    // SAFETY: between fork and exec the child only clears FD_CLOEXEC on
    // one descriptor it inherited (async-signal-safe fcntl).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            libc::fcntl(raw, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.split_whitespace().collect::<Vec<_>>(),
        [msg::MSG_ERROR.to_string(), (-libc::EACCES).to_string()],
        "another process shared this one's region"
    );
    // The owner itself may (and socket b takes a guest again after the refusals).
    assert_eq!(hello_reply(&socks[1], HELLO_SHARE_BUFFERS, Some(raw)), 0);
    drop(a);
    proxy.stop(&[&socks[0], &socks[1]]);
}

#[test]
fn testpmd_port_attach_and_detach_at_runtime() {
    let dir = Scratch::new("hp");
    let socks = ["/tmp/iop-hp/a/sock", "/tmp/iop-hp/b/sock"];
    let proxy = Proxy::start(
        &dir,
        "iop_hp",
        &["--vdev", "net_null0", "--vdev", "net_null1"],
        &format!(
            "add port 0 queues 1\nadd port 1 queues 1\nadd socket {} 0 0\nadd socket {} 1 0\n",
            socks[0], socks[1]
        ),
    );
    let mut g = Guest::start_interactive_with(&dir, "g", socks[0], &["--forward-mode=io"]);
    assert_eq!(proxy.socket_field(socks[1], "connected"), 0);
    let mut fds_after_first = 0;
    for round in 0..2 {
        g.cmd(&format!("port attach sock:{}", socks[1]));
        assert!(
            g.proc.text().matches("Port 1 is attached").count() == round + 1,
            "round {round}: port not attached:\n{}",
            g.proc.text()
        );
        assert_eq!(proxy.socket_field(socks[1], "connected"), 1);
        g.cmd("port start 1");
        g.cmd("start");
        std::thread::sleep(Duration::from_millis(500));
        g.cmd("stop");
        g.cmd("show port xstats 1");
        assert!(
            g.xstat("rx_good_packets") > 0,
            "round {round}: nothing on port 1"
        );
        assert_eq!(g.xstat("tx_copies"), 0);
        g.cmd("port stop 1");
        g.cmd("port detach 1");
        assert!(
            g.proc.text().matches("Device is detached").count() == round + 1,
            "round {round}: not detached:\n{}",
            g.proc.text()
        );
        // The proxy let the guest's side of socket b go.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while proxy.socket_field(socks[1], "connected") != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "socket b still connected"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(proxy.socket_field(socks[0], "connected"), 1);
        // Detach closes the guest's socket: no descriptor left per round.
        let fds = fd_count(g.proc.pid());
        if round == 0 {
            fds_after_first = fds;
        } else {
            let links: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", g.proc.pid()))
                .unwrap()
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .collect();
            assert_eq!(
                fds, fds_after_first,
                "a detached port's socket or region stays open: {links:?}"
            );
        }
    }
    g.quit();
    proxy.stop(&socks);
}
