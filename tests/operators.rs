//! What an operator does with the project: runs the demo (from a clone
//! anywhere, and it fails loudly when it did not do its job), installs it
//! like a DPDK driver (`make install`, then a stock testpmd needs no `-d`),
//! runs the proxy as its systemd unit says, and installs the Debian
//! package. Installing for real touches the system: each test removes what
//! it installed, also when it fails (a guard), and checks that nothing is
//! left behind.
mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    if !out.status.success() {
        panic!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn make(args: &[&str]) -> Output {
    run(Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(root())
        .args(args))
}

/// Every file under `dirs` (that exist).
fn files_under(dirs: &[&str]) -> BTreeSet<PathBuf> {
    fn walk(p: &Path, out: &mut BTreeSet<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&path, out);
                } else {
                    out.insert(path);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for d in dirs {
        walk(Path::new(d), &mut out);
    }
    out
}

fn pmd_dir() -> String {
    let out = run(Command::new("bash").arg(root().join("scripts/pmd-path.sh")));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn plugin_name() -> String {
    std::fs::read_dir(pmds())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("librte_sock_shm.so."))
        .expect("a plugin in target/pmds")
}

/// The demo from a clone in a world-writable parent (/tmp), where EAL
/// refuses to load plugins: it stages the plugin elsewhere, says so, and
/// passes only because packets went both ways. (The build that `make demo`
/// runs first is the one every other test uses: copied in.)
#[test]
fn the_demo_works_from_a_clone_under_tmp() {
    let dir = Scratch::new("wwdemo");
    let clone = dir.path("repo");
    run(Command::new("git")
        .args(["clone", "-q"])
        .arg(root())
        .arg(&clone));
    std::fs::create_dir_all(clone.join("target/release")).unwrap();
    std::fs::copy(proxy_bin(), clone.join("target/release/dpdk-io-proxy")).unwrap();
    std::fs::create_dir_all(clone.join("target/pmds")).unwrap();
    std::fs::copy(
        pmds().join(plugin_name()),
        clone.join("target/pmds").join(plugin_name()),
    )
    .unwrap();
    let out = Command::new("bash")
        .arg(clone.join("scripts/demo.sh"))
        .env("DEMO_SECONDS", "4")
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        out.status.success(),
        "demo failed in {}:\n{t}",
        clone.display()
    );
    assert!(t.contains("which is world-writable"), "{t}");
    assert!(t.contains("== demo OK"), "{t}");
    assert!(!t.contains("insecure"), "EAL refused the plugin:\n{t}");
}

/// A demo whose guest cannot attach (a socket path where there is none)
/// exits non-zero and says why.
#[test]
fn the_demo_fails_loudly_when_the_guest_does() {
    let out = Command::new("bash")
        .arg(root().join("scripts/demo.sh"))
        .env("DEMO_SECONDS", "3")
        .env("DEMO_GUEST_SOCKET", "/tmp/iop-nowhere/sock")
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        !out.status.success(),
        "the demo passed without a guest:\n{t}"
    );
    assert!(t.contains("== demo FAILED: the guest"), "{t}");
}

/// `make install DESTDIR=...` lays out exactly the expected files, the
/// plugin in the system DPDK's plugin directory (derived, not written
/// down), and `make uninstall` with the same DESTDIR removes them all.
#[test]
fn make_install_destdir_lays_out_the_files_and_uninstall_removes_them() {
    let dir = Scratch::new("destdir");
    let dest = dir.path("dest");
    let d = format!("DESTDIR={}", dest.display());
    make(&["install", &d, "PREFIX=/usr"]);
    let got: BTreeSet<String> = files_under(&[dest.to_str().unwrap()])
        .iter()
        .map(|p| p.strip_prefix(&dest).unwrap().display().to_string())
        .collect();
    let pmd = pmd_dir();
    assert!(pmd.contains("/dpdk/pmds-"), "{pmd}");
    let mut want: BTreeSet<String> = [
        "usr/sbin/dpdk-io-proxy".to_string(),
        format!("{}/{}", &pmd[1..], plugin_name()),
        "usr/share/man/man8/dpdk-io-proxy.8".into(),
        "lib/systemd/system/dpdk-io-proxy.service".into(),
        "etc/default/dpdk-io-proxy".into(),
        "etc/dpdk-io-proxy/dpdk-io-proxy.cmds".into(),
    ]
    .into_iter()
    .collect();
    for doc in [
        "README.md",
        "architecture.md",
        "building.md",
        "performance.md",
        "protocol.md",
        "threat-model.md",
    ] {
        want.insert(format!("usr/share/doc/dpdk-io-proxy/{doc}"));
    }
    assert_eq!(got, want);
    let unit =
        std::fs::read_to_string(dest.join("lib/systemd/system/dpdk-io-proxy.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/sbin/dpdk-io-proxy $EAL_ARGS -- --cmds /etc/dpdk-io-proxy/dpdk-io-proxy.cmds $LCORE"),
        "{unit}"
    );
    make(&["uninstall", &d, "PREFIX=/usr"]);
    let left = files_under(&[dest.to_str().unwrap()]);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Debian's testpmd with no `-d` (the installed plugin), a second at
/// `sock`: its counts.
fn stock_guest_without_d(dir: &Scratch, sock: &str) -> GuestCounts {
    let testpmd = Path::new("/usr/bin/dpdk-testpmd");
    let g = Guest::start_other(dir, "guest", sock, testpmd, None);
    std::thread::sleep(Duration::from_secs(1));
    g.stop(libc::SIGINT)
}

/// Runs `make uninstall` (or `dpkg --purge`) when dropped, so that a failed
/// test leaves no plugin in the system's DPDK plugin directory.
struct Installed(Vec<String>);
impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new(&self.0[0]).args(&self.0[1..]).output();
    }
}

/// The unit's `ExecStart` line with its `Environment=` and
/// `EnvironmentFile=` values put in, as systemd does: `$VAR` unbraced
/// becomes the variable's words.
fn exec_start_of(unit: &str) -> Vec<String> {
    let mut env = std::collections::HashMap::new();
    let mut set = |kv: &str| {
        if let Some((k, v)) = kv.split_once('=') {
            env.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
        }
    };
    let mut exec = None;
    for line in unit.lines() {
        if let Some(v) = line.strip_prefix("Environment=") {
            // Assignments separated by blanks (none quoted in our unit).
            v.split_whitespace().for_each(&mut set);
        } else if let Some(f) = line.strip_prefix("EnvironmentFile=") {
            // One KEY=VALUE per line, the value maybe in double quotes.
            if let Ok(t) = std::fs::read_to_string(f.trim_start_matches('-')) {
                t.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .for_each(&mut set);
            }
        } else if let Some(v) = line.strip_prefix("ExecStart=") {
            exec = Some(v.to_string());
        }
    }
    exec.expect("ExecStart")
        .split_whitespace()
        .flat_map(|w| match w.strip_prefix('$') {
            Some(var) => env[var]
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
            None => vec![w.to_string()],
        })
        .collect()
}

/// Installed for real (`make install`, PREFIX /usr/local): the unit
/// verifies; the proxy runs as the unit's ExecStart says (systemd is not
/// PID 1 here), with the installed configuration files edited as an
/// operator would; a stock testpmd with no `-d` finds the installed plugin
/// and forwards; SIGTERM (the unit's KillSignal) stops the proxy cleanly
/// and removes its socket. `make uninstall` leaves nothing behind.
#[test]
fn installed_for_real_the_unit_runs_and_a_stock_testpmd_needs_no_d() {
    let watched = [
        "/usr/local/sbin",
        "/usr/local/share/man/man8",
        "/usr/local/share/doc",
        "/usr/local/lib/systemd",
        "/etc/default",
        "/etc/dpdk-io-proxy",
    ];
    let pmd = pmd_dir();
    let mut dirs: Vec<&str> = watched.to_vec();
    dirs.push(&pmd);
    let before = files_under(&dirs);
    let root_dir = root().display().to_string();
    let _guard = Installed(
        ["make", "-s", "-C", &root_dir, "uninstall"]
            .map(String::from)
            .to_vec(),
    );
    make(&["install"]);
    let unit_path = "/usr/local/lib/systemd/system/dpdk-io-proxy.service";
    let verify = Command::new("systemd-analyze")
        .args(["verify", unit_path])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
    // What an operator writes: a NIC (here net_null) and a socket.
    let sock = "/run/dpdk-io-proxy/op0/sock";
    let default = std::fs::read_to_string("/etc/default/dpdk-io-proxy").unwrap();
    let cmds = std::fs::read_to_string("/etc/dpdk-io-proxy/dpdk-io-proxy.cmds").unwrap();
    std::fs::write(
        "/etc/default/dpdk-io-proxy",
        "EAL_ARGS=\"--no-pci --vdev net_null0 --no-huge -m 512 --file-prefix iop_unit\"\nLCORE=0\n",
    )
    .unwrap();
    std::fs::write(
        "/etc/dpdk-io-proxy/dpdk-io-proxy.cmds",
        format!("add port 0 queues 1\nadd socket {sock} 0 0\n"),
    )
    .unwrap();
    let exec = exec_start_of(&std::fs::read_to_string(unit_path).unwrap());
    assert_eq!(exec[0], "/usr/local/sbin/dpdk-io-proxy");
    // systemd's RuntimeDirectory=.
    std::fs::create_dir_all("/run/dpdk-io-proxy").unwrap();
    let dir = Scratch::new("unit");
    let mut cmd = Command::new(&exec[0]);
    cmd.args(&exec[1..]);
    let mut proc = Proc::spawn(&mut cmd, dir.path("proxy.log"), false);
    proc.wait_for(
        "dpdk-io-proxy ready: 1 port(s), 1 socket(s)",
        1,
        Duration::from_secs(20),
    );
    let c = stock_guest_without_d(&dir, sock);
    assert!(c.rx > 10_000 && c.tx > 10_000, "{c:?}");
    // Installed and given with -d as well: the second copy stays idle.
    let g = Guest::start(&dir, "guest2", sock);
    assert!(
        g.proc
            .text()
            .contains("another copy of this plugin is loaded already"),
        "{}",
        g.proc.text()
    );
    let c = g.stop(libc::SIGINT);
    assert!(c.rx > 10_000, "{c:?}");
    proc.signal(libc::SIGTERM);
    let st = proc.wait_exit(Duration::from_secs(20));
    assert!(st.success(), "{st}:\n{}", proc.text());
    assert!(!Path::new(sock).exists(), "socket left behind");
    // Back to the installed configuration, which uninstall then removes.
    std::fs::write("/etc/default/dpdk-io-proxy", default).unwrap();
    std::fs::write("/etc/dpdk-io-proxy/dpdk-io-proxy.cmds", cmds).unwrap();
    let _ = std::fs::remove_dir("/run/dpdk-io-proxy/op0");
    make(&["uninstall"]);
    assert_eq!(
        files_under(&dirs),
        before,
        "make uninstall left something behind"
    );
}

/// The Debian package: builds (dpkg-buildpackage over debian/), lintian
/// finds no error, installs (`dpkg -i`): `--version` of the installed
/// proxy, a stock testpmd without `-d` forwards through it; `dpkg --purge`
/// removes every file it installed.
#[test]
fn the_debian_package_builds_installs_and_purges_cleanly() {
    let out = run(Command::new("bash").arg(root().join("scripts/deb.sh")));
    let t = text(&out);
    assert!(t.contains("lintian: 0 errors"), "{t}");
    let deb = std::fs::read_dir(root().join("target/deb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb in target/deb");
    let _guard = Installed(
        ["dpkg", "--purge", "dpdk-io-proxy"]
            .map(String::from)
            .to_vec(),
    );
    run(Command::new("dpkg").arg("-i").arg(&deb));
    let listed =
        String::from_utf8(run(Command::new("dpkg").args(["-L", "dpdk-io-proxy"])).stdout).unwrap();
    let files: Vec<&str> = listed.lines().filter(|l| Path::new(l).is_file()).collect();
    let plugin = format!("{}/{}", pmd_dir(), plugin_name());
    for f in [
        "/usr/sbin/dpdk-io-proxy",
        plugin.as_str(),
        "/lib/systemd/system/dpdk-io-proxy.service",
    ] {
        assert!(files.contains(&f), "{f} not in the package:\n{listed}");
    }
    let v = run(Command::new("/usr/sbin/dpdk-io-proxy").arg("--version"));
    assert!(
        text(&v).starts_with("dpdk-io-proxy 0.1.0 (protocol v"),
        "{}",
        text(&v)
    );
    let dir = Scratch::new("deb");
    let sock = "/tmp/iop-deb/s0/sock";
    let proxy = Proxy::start_as(
        Command::new("/usr/sbin/dpdk-io-proxy"),
        &dir,
        "iop_deb",
        &["--vdev", "net_null0"],
        &format!("add port 0 queues 1\nadd socket {sock} 0 0\n"),
    );
    let c = stock_guest_without_d(&dir, sock);
    assert!(c.rx > 10_000, "{c:?}");
    proxy.stop(&[sock]);
    run(Command::new("dpkg").args(["--purge", "dpdk-io-proxy"]));
    for f in &files {
        assert!(!Path::new(f).exists(), "{f} left after purge");
    }
}
