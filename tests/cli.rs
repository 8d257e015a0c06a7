//! The proxy's command interface: startup file errors, the interactive
//! prompt (under a real pty, through script(1)), signals.
mod common;
use common::*;
use std::process::{Command, Stdio};

#[test]
fn bad_startup_line_stops_with_file_and_line() {
    let dir = Scratch::new("cli-bad");
    let cmds = dir.path("bad.cmds");
    std::fs::write(
        &cmds,
        "add port 0 queues 1\n# fine so far\nadd socket relative/sock 0 0\n",
    )
    .unwrap();
    let out = Command::new(proxy_bin())
        .args([
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--vdev",
            "net_null0",
            "--file-prefix",
            "iop_cli_bad",
            "--",
            "--cmds",
        ])
        .arg(&cmds)
        .arg("0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}:3: socket path must be absolute",
            cmds.display()
        )),
        "no FILE:LINE: reason in:\n{err}"
    );
}

#[test]
fn interactive_bad_command_prints_error_and_usage_and_keeps_running() {
    let text = proxy_at_prompt(
        "cli-tty",
        "net_null0",
        "add port 0 queues 1\n",
        &["frobnicate the port", "add port 9", "show ports"],
    );
    assert!(
        text.contains("error: unknown command 'frobnicate the port'"),
        "{text}"
    );
    assert!(text.contains("error: port 9: no port 9"), "{text}");
    assert!(
        text.matches("add port <port_id> [queues <n>]").count() >= 2,
        "usage not shown after each error:\n{text}"
    );
    assert!(
        text.contains("net_null0"),
        "show ports after errors did not run:\n{text}"
    );
    assert!(text.contains("final stats"), "{text}");
}

/// `--help` lists the options and every command, on stdout, exit 0;
/// `--version` names the protocol range and the DPDK built for; a bad
/// argument is an error (exit 2) with the usage.
#[test]
fn help_and_version() {
    let out = Command::new(proxy_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for word in [
        "usage: dpdk-io-proxy [EAL options --] [--cmds FILE] [LCORES]",
        "--version",
        "add port",
        "add socket",
        "remove socket",
        "add flow",
        "remove flow",
        "show flows",
        "set link",
        "set mtu",
        "set timing",
        "set idle",
        "lcore <list>",
        "show ports",
        "quit",
    ] {
        assert!(help.contains(word), "no {word:?} in --help:\n{help}");
    }
    let out = Command::new(proxy_bin()).arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        v.starts_with("dpdk-io-proxy 0.1.0 (protocol v3..v") && v.contains("built for DPDK 22.11"),
        "{v}"
    );
    let out = Command::new(proxy_bin()).arg("zero").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad LCORES 'zero'"));
    let out = Command::new(proxy_bin()).arg("1,1").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lcore 1 listed twice"));
    let out = Command::new(proxy_bin()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing LCORES"));
}
