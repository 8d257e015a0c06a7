//! Who may attach: the socket file's owner and mode (the kernel refuses
//! `connect` to others), and the peer uids the proxy serves (`SO_PEERCRED`,
//! refused with ERROR and a log line). Guests are stock testpmd in the
//! unprivileged bwrap sandbox, as other users.
mod common;
use common::*;
use std::process::Stdio;
use std::time::Duration;

/// Runs a sandboxed guest as `uid` until it gives up: its output.
fn refused_guest(dir: &Scratch, sock: &str, uid: u32) -> String {
    let out = Guest::sandboxed(dir, sock, uid)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "uid {uid} attached:\n{text}");
    text
}

#[test]
fn a_socket_of_mode_0600_admits_its_owner_only() {
    let dir = Scratch::new("acc600");
    let sock = "/tmp/iop-acc600/s0/sock";
    let proxy = Proxy::start(
        &dir,
        "iop_acc600",
        &["--vdev", "net_null0"],
        &format!("add port 0 queues 1\nadd socket {sock} 0 0 owner 65534 mode 0600\n"),
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(sock).unwrap();
    assert_eq!(
        (meta.uid(), meta.permissions().mode() & 0o777),
        (65534, 0o600)
    );
    // Another user: the kernel refuses the connection.
    let text = refused_guest(&dir, sock, 65533);
    assert!(text.contains("Permission denied"), "{text}");
    assert!(proxy.guest_gone(sock), "a guest got in");
    // The owner: attached, and traffic flows.
    let g = Guest::start_sandboxed(&dir, "owner", sock);
    std::thread::sleep(Duration::from_secs(1));
    let counts = g.stop(0);
    assert!(counts.rx > 10_000, "{counts:?}");
    proxy.stop(&[sock]);
}

#[test]
fn the_default_mode_keeps_other_users_out() {
    let dir = Scratch::new("accdef");
    let sock = "/tmp/iop-accdef/s0/sock";
    let proxy = Proxy::start(
        &dir,
        "iop_accdef",
        &["--vdev", "net_null0"],
        &format!("add port 0 queues 1\nadd socket {sock} 0 0\n"),
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "world-connectable by default");
    let text = refused_guest(&dir, sock, 65534);
    assert!(text.contains("Permission denied"), "{text}");
    proxy.stop(&[sock]);
}

#[test]
fn allow_uid_refuses_other_peers_with_the_reason() {
    let dir = Scratch::new("accuid");
    let sock = "/tmp/iop-accuid/s0/sock";
    let mut proxy = Proxy::start(
        &dir,
        "iop_accuid",
        &["--vdev", "net_null0"],
        &format!("add port 0 queues 1\nadd socket {sock} 0 0 mode 0666 allow_uid 65534\n"),
    );
    // Anyone may connect, but the proxy serves uid 65534 only.
    let text = refused_guest(&dir, sock, 65533);
    assert!(text.contains("not allowed"), "{text}");
    proxy.proc.wait_for(
        "peer uid 65533 gid 65533 is not allowed",
        1,
        Duration::from_secs(5),
    );
    let g = Guest::start_sandboxed(&dir, "allowed", sock);
    std::thread::sleep(Duration::from_secs(1));
    let counts = g.stop(0);
    assert!(counts.rx > 10_000, "{counts:?}");
    proxy.stop(&[sock]);
}
