//! Helpers for the end-to-end tests: real processes (dpdk-io-proxy, stock
//! dpdk-testpmd guests), a veth pair into a network namespace, telemetry
//! through the stock dpdk-telemetry.py.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn built(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} missing: run `make build` first",
        p.display()
    );
    p
}

pub fn proxy_bin() -> PathBuf {
    built(root().join("target/release/dpdk-io-proxy"))
}

pub fn pmds() -> PathBuf {
    built(root().join("target/pmds"))
}

/// The number after the first `key` in `text` (and any blanks), up to a
/// space, a comma, a closing brace or the end of the line.
pub fn number_after<T: std::str::FromStr>(text: &str, key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
        + key.len();
    text[at..]
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == ',' || c == '}')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{key:?} in:\n{text}: {e:?}"))
}

/// The number after `"key": ` in a flat piece of JSON text.
pub fn json_number<T: std::str::FromStr>(json: &str, key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    number_after(json, &format!("\"{key}\": "))
}

/// A scratch directory for one test, removed when dropped.
pub struct Scratch(pub PathBuf);
impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = PathBuf::from(format!("/tmp/iop-{name}"));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var_os("IOP_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process whose output goes to a log file; killed when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub stdin: Option<ChildStdin>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, log: PathBuf, keep_stdin: bool) -> Proc {
        let f = std::fs::File::create(&log).unwrap();
        cmd.stdout(f.try_clone().unwrap()).stderr(f);
        cmd.stdin(if keep_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdin = child.stdin.take();
        Proc { child, log, stdin }
    }
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    /// The log so far (apps may print bytes that are not UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }
    /// Waits until the log contains `needle` `times` times.
    pub fn wait_for(&mut self, needle: &str, times: usize, timeout: Duration) {
        let t0 = Instant::now();
        loop {
            let text = self.text();
            if text.matches(needle).count() >= times {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "{} exited ({st}) before '{needle}':\n{text}",
                    self.log.display()
                );
            }
            if t0.elapsed() > timeout {
                panic!(
                    "no '{needle}' (x{times}) in {} after {timeout:?}:\n{text}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }
    /// Waits for exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if t0.elapsed() > timeout {
                panic!(
                    "{} did not exit within {timeout:?}:\n{}",
                    self.log.display(),
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub struct Proxy {
    pub proc: Proc,
    pub prefix: String,
}

impl Proxy {
    /// Starts the proxy on lcore 0 with `eal` options and the command file
    /// `cmds`; returns once it is serving.
    pub fn start(dir: &Scratch, prefix: &str, eal: &[&str], cmds: &str) -> Proxy {
        Proxy::start_as(Command::new(proxy_bin()), dir, prefix, eal, cmds)
    }

    /// As [`Proxy::start`], with datapath lcores `lcores` (`0,1`).
    pub fn start_on(dir: &Scratch, prefix: &str, eal: &[&str], cmds: &str, lcores: &str) -> Proxy {
        Proxy::start_as_on(Command::new(proxy_bin()), dir, prefix, eal, cmds, lcores)
    }

    /// As [`Proxy::start`], with `cmd` the proxy binary to run (or what
    /// runs it: another release's root, say).
    pub fn start_as(cmd: Command, dir: &Scratch, prefix: &str, eal: &[&str], cmds: &str) -> Proxy {
        Proxy::start_as_on(cmd, dir, prefix, eal, cmds, "0")
    }

    fn start_as_on(
        mut cmd: Command,
        dir: &Scratch,
        prefix: &str,
        eal: &[&str],
        cmds: &str,
        lcores: &str,
    ) -> Proxy {
        Proxy::args(&mut cmd, dir, prefix, eal, cmds, lcores);
        let mut proc = Proc::spawn(&mut cmd, dir.path("proxy.log"), false);
        proc.wait_for("dpdk-io-proxy ready", 1, Duration::from_secs(20));
        Proxy {
            proc,
            prefix: prefix.to_string(),
        }
    }

    /// Runs a proxy with these options to its end (its start-up must
    /// fail): its exit code and output.
    pub fn run_to_end(
        dir: &Scratch,
        prefix: &str,
        eal: &[&str],
        cmds: &str,
        lcores: &str,
    ) -> (Option<i32>, String) {
        let mut cmd = Command::new(proxy_bin());
        Proxy::args(&mut cmd, dir, prefix, eal, cmds, lcores);
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    }

    /// The proxy's arguments: `eal` after the test defaults, the command
    /// file `cmds` (written to `dir`), datapath `lcores`.
    fn args(
        cmd: &mut Command,
        dir: &Scratch,
        prefix: &str,
        eal: &[&str],
        cmds: &str,
        lcores: &str,
    ) {
        let cmds_file = dir.path("proxy.cmds");
        std::fs::write(&cmds_file, cmds).unwrap();
        cmd.args([
            "--no-huge",
            "-m",
            "512",
            "--no-pci",
            "--file-prefix",
            prefix,
        ])
        .args(eal)
        .arg("--")
        .arg("--cmds")
        .arg(&cmds_file)
        .arg(lcores)
        .current_dir(&dir.0);
    }

    /// A scratch directory `/tmp/iop-TAG` and a proxy (EAL prefix `iop_TAG`)
    /// serving queue 0 of the single-queue port 0 (`vdev`, plus
    /// `port_opts` on its `add port` line) on `/tmp/iop-TAG/s0/sock`.
    pub fn one_queue(tag: &str, vdev: &str, port_opts: &str) -> (Scratch, String, Proxy) {
        Proxy::one_queue_then(tag, vdev, port_opts, "")
    }

    /// As [`Proxy::one_queue`], with more command lines after the set-up.
    pub fn one_queue_then(
        tag: &str,
        vdev: &str,
        port_opts: &str,
        more: &str,
    ) -> (Scratch, String, Proxy) {
        let dir = Scratch::new(tag);
        let sock = format!("/tmp/iop-{tag}/s0/sock");
        let proxy = Proxy::start(
            &dir,
            &format!("iop_{tag}"),
            &["--vdev", vdev],
            &format!("add port 0 queues 1{port_opts}\nadd socket {sock} 0 0\n{more}"),
        );
        (dir, sock, proxy)
    }

    /// A veth into a new namespace, a proxy with a net_af_packet port on it
    /// (`vdev_args` after `iface=...`, `port_opts` on `add port 0 ...`) and
    /// a socket for NIC queues `queues` at `/tmp/iop-TAG/s0/sock`.
    pub fn veth_port(
        tag: &str,
        vdev_args: &str,
        port_opts: &str,
        queues: &str,
    ) -> (Scratch, Netns, String, Proxy) {
        let dir = Scratch::new(tag);
        let net = Netns::new(tag);
        let sock = format!("/tmp/iop-{tag}/s0/sock");
        let vdev = format!("net_af_packet0,iface={}{vdev_args}", net.host);
        let proxy = Proxy::start(
            &dir,
            &format!("iop_{tag}"),
            &["--vdev", &vdev],
            &format!("add port 0{port_opts}\nadd socket {sock} 0 {queues}\n"),
        );
        (dir, net, sock, proxy)
    }

    /// Two veths into one namespace (host ends returned), a proxy with one
    /// net_af_packet port on each and a socket per port
    /// (`/tmp/iop-TAG/a/sock` for port 0, `.../b/sock` for port 1).
    pub fn two_ports(tag: &str) -> (Scratch, Netns, [String; 2], Proxy, [String; 2]) {
        Proxy::two_ports_with(tag, "")
    }

    /// As [`Proxy::two_ports`], with `socket_opts` on both `add socket` lines.
    pub fn two_ports_with(
        tag: &str,
        socket_opts: &str,
    ) -> (Scratch, Netns, [String; 2], Proxy, [String; 2]) {
        let dir = Scratch::new(tag);
        let mut net = Netns::new(tag);
        let hosts = [net.host.clone(), net.add_veth()];
        let socks = [
            format!("/tmp/iop-{tag}/a/sock"),
            format!("/tmp/iop-{tag}/b/sock"),
        ];
        let v0 = format!("net_af_packet0,iface={}", hosts[0]);
        let v1 = format!("net_af_packet1,iface={}", hosts[1]);
        let proxy = Proxy::start(
            &dir,
            &format!("iop_{tag}"),
            &["--vdev", &v0, "--vdev", &v1],
            &format!(
                "add port 0 queues 1\nadd port 1 queues 1\nadd socket {} 0 0{socket_opts}\nadd socket {} 1 0{socket_opts}\n",
                socks[0], socks[1]
            ),
        );
        (dir, net, hosts, proxy, socks)
    }

    /// A field of `/io_proxy/datapath`.
    pub fn datapath_field(&self, field: &str) -> u64 {
        json_number(&self.telemetry("/io_proxy/datapath"), field)
    }

    /// Runs a telemetry command through the stock dpdk-telemetry.py.
    pub fn telemetry(&self, command: &str) -> String {
        telemetry(&self.prefix, command)
    }

    /// The NIC's and the sockets' counters, for an assertion's message
    /// (where frames went missing: `rx_nombuf`, `rx_no_buffer`, ...).
    pub fn counters(&self) -> String {
        format!(
            "NIC: {}\nsocket: {}",
            self.telemetry("/ethdev/stats,0"),
            self.telemetry("/io_proxy/sockets")
        )
    }

    /// A numeric field of the socket at `path` in /io_proxy/sockets.
    pub fn socket_field(&self, path: &str, field: &str) -> i64 {
        socket_field_of(&self.telemetry("/io_proxy/sockets"), path, field)
    }

    /// A numeric field of datapath lcore `lcore` in /io_proxy/datapath.
    pub fn lcore_field(&self, lcore: u32, field: &str) -> u64 {
        let json = self.telemetry("/io_proxy/datapath");
        let at = json
            .find(&format!("\"lcore{lcore}\": {{"))
            .unwrap_or_else(|| panic!("no lcore {lcore} in telemetry: {json}"));
        let obj = &json[at..json[at..].find('}').map(|e| at + e).unwrap()];
        json_number(obj, field)
    }

    /// Waits up to 5 s for the proxy to see the guest on `path` gone.
    pub fn guest_gone(&self, path: &str) -> bool {
        (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            self.socket_field(path, "connected") == 0
        })
    }

    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.proc.pid()))
            .unwrap()
            .count()
    }

    /// SIGTERM, and checks the proxy exits 0 and removes its sockets.
    pub fn stop(mut self, sockets: &[&str]) -> String {
        self.proc.signal(libc::SIGTERM);
        let st = self.proc.wait_exit(Duration::from_secs(20));
        let text = self.proc.text();
        assert!(st.success(), "proxy exit {st}:\n{text}");
        for s in sockets {
            assert!(!Path::new(s).exists(), "proxy left {s} behind");
        }
        text
    }
}

/// The guests' EAL options (the seed's, bar the socket and plugin).
pub const GUEST_EAL: [&str; 5] = ["-l", "0,1", "--no-huge", "-m1", "--no-shconf"];

/// A stock dpdk-testpmd attached to a proxy socket, exactly as in the
/// seed: `-l 0,1 --no-huge -m1 --no-shconf -a sock:PATH -- --forward-mode=macswap`.
pub struct Guest {
    pub proc: Proc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestCounts {
    pub rx: u64,
    pub tx: u64,
}

impl Guest {
    pub fn start(dir: &Scratch, name: &str, sock: &str) -> Guest {
        Self::spawn(dir, name, Self::command(sock, &[]))
    }

    /// A guest whose device has devargs (`-a sock:PATH,DEVARGS`).
    pub fn start_devargs(dir: &Scratch, name: &str, sock: &str, devargs: &str) -> Guest {
        Self::spawn(dir, name, Self::command(&format!("{sock},{devargs}"), &[]))
    }

    /// `testpmd` with the same options, and `-d plugin` if given (without,
    /// it must have the drivers built in).
    pub fn start_other(
        dir: &Scratch,
        name: &str,
        sock: &str,
        testpmd: &Path,
        plugin: Option<&Path>,
    ) -> Guest {
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "-eL"]).arg(testpmd);
        if let Some(p) = plugin {
            cmd.arg("-d").arg(p);
        }
        cmd.args(GUEST_EAL)
            .arg("-a")
            .arg(format!("sock:{sock}"))
            .args(["--", "--forward-mode=macswap"]);
        Self::spawn(dir, name, cmd)
    }

    /// The same guest at its interactive prompt (`-i`), driven by `cmd()`.
    pub fn start_interactive(dir: &Scratch, name: &str, sock: &str) -> Guest {
        Self::start_interactive_with(dir, name, sock, &[])
    }

    /// As `start_interactive`, with more testpmd options.
    pub fn start_interactive_with(dir: &Scratch, name: &str, sock: &str, args: &[&str]) -> Guest {
        let args: Vec<&str> = ["-i"].iter().chain(args).copied().collect();
        let mut proc = Proc::spawn(
            &mut Self::command(sock, &args),
            dir.path(&format!("{name}.log")),
            true,
        );
        proc.wait_for("testpmd>", 1, Duration::from_secs(60));
        Guest { proc }
    }

    pub fn command(sock: &str, app_args: &[&str]) -> Command {
        Self::command_ports(&[sock], app_args)
    }

    /// Runs testpmd on `sock` with `app_args` to its end: it must fail to
    /// start, and its output must say `reason`.
    pub fn refused(sock: &str, app_args: &[&str], reason: &str) {
        let out = Self::command(sock, app_args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {app_args:?}:\n{text}");
        assert!(text.contains(reason), "no '{reason}' in:\n{text}");
    }

    /// testpmd with one `sock:` port per socket, in order; an entry
    /// `net_shmN,path=...` is a `net_shm` vdev instead.
    pub fn command_ports(socks: &[&str], app_args: &[&str]) -> Command {
        // stdbuf: testpmd's stdout is a file here; line-buffer it so its
        // progress can be read while it runs.
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "-eL", "dpdk-testpmd"])
            .arg("-d")
            .arg(pmds())
            .args(GUEST_EAL);
        for sock in socks {
            if sock.starts_with("net_shm") {
                cmd.arg("--vdev").arg(sock); // net_shmN,path=...
            } else {
                cmd.arg("-a").arg(format!("sock:{sock}"));
            }
        }
        cmd.args(["--", "--forward-mode=macswap"]).args(app_args);
        cmd
    }

    /// testpmd at its prompt with one port per socket.
    pub fn start_interactive_ports(
        dir: &Scratch,
        name: &str,
        socks: &[&str],
        args: &[&str],
    ) -> Guest {
        let args: Vec<&str> = ["-i"].iter().chain(args).copied().collect();
        let mut proc = Proc::spawn(
            &mut Self::command_ports(socks, &args),
            dir.path(&format!("{name}.log")),
            true,
        );
        proc.wait_for("testpmd>", 1, Duration::from_secs(60));
        Guest { proc }
    }

    /// Types a command at the testpmd prompt and waits for the next prompt.
    pub fn cmd(&mut self, line: &str) {
        let prompts = self.proc.text().matches("testpmd>").count();
        let stdin = self.proc.stdin.as_mut().expect("interactive guest");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        if line != "quit" {
            self.proc
                .wait_for("testpmd>", prompts + 1, Duration::from_secs(30));
        }
    }

    /// An xstat from the last `show port xstats` output.
    pub fn xstat(&self, name: &str) -> u64 {
        let text = self.proc.text();
        let key = format!("{name}: ");
        let last = text
            .rfind(&key)
            .unwrap_or_else(|| panic!("no xstat {name} in:\n{text}"));
        number_after(&text[last..], &key)
    }

    /// `port stop <ports>` ("0", "all"), then every mbuf of testpmd's pool
    /// must be back in it: nothing held by the proxy or lost on the way.
    pub fn stop_ports_all_back(&mut self, ports: &str) {
        self.cmd(&format!("port stop {ports}"));
        let (back, size) = self.pool_fill();
        assert_eq!(back, size, "mbufs not all back after port stop");
    }

    /// `quit` at the prompt, and the exit.
    pub fn quit(mut self) {
        self.cmd("quit");
        self.proc.wait_exit(Duration::from_secs(30));
    }

    /// Mbufs of testpmd's pool that are back in it (backend plus lcore
    /// caches) and the pool's size, from a fresh `dump_mempool`.
    pub fn pool_fill(&mut self) -> (u64, u64) {
        self.cmd("dump_mempool");
        let text = self.proc.text();
        let start = text
            .rfind("mempool <mb_pool_0>")
            .unwrap_or_else(|| panic!("no mb_pool_0 in dump_mempool:\n{text}"));
        let block = &text[start..];
        let block = &block[..block[1..].find("mempool <").map_or(block.len(), |e| e + 1)];
        let field = |name: &str| -> u64 { number_after(block, &format!("  {name}=")) };
        (
            field("total_cache_count") + field("common_pool_count"),
            field("size"),
        )
    }

    /// The same guest as an unprivileged container would run it: uid 65534,
    /// its own user, pid, ipc, uts and network namespaces (bwrap), and of
    /// the host only /usr, the plugin and the socket's directory.
    pub fn start_sandboxed(dir: &Scratch, name: &str, sock: &str) -> Guest {
        Self::spawn(dir, name, Self::sandboxed(dir, sock, 65534))
    }

    /// The command of [`Guest::start_sandboxed`], as user and group `uid`:
    /// the README's `scripts/guest-sandbox.sh` (the isolation of the
    /// container image, packaging/Containerfile). The socket must be named
    /// `sock`.
    pub fn sandboxed(_dir: &Scratch, sock: &str, uid: u32) -> Command {
        let sock = Path::new(sock);
        assert_eq!(sock.file_name().unwrap(), "sock");
        let mut cmd = Command::new("bash");
        cmd.arg(root().join("scripts/guest-sandbox.sh"))
            .arg(sock.parent().unwrap())
            .arg("--forward-mode=macswap")
            .env("GUEST_UID", uid.to_string());
        cmd
    }

    fn spawn(dir: &Scratch, name: &str, mut cmd: Command) -> Guest {
        // stdin stays open: testpmd forwards until it reads a line.
        let mut proc = Proc::spawn(&mut cmd, dir.path(&format!("{name}.log")), true);
        proc.wait_for("Press enter to exit", 1, Duration::from_secs(60));
        Guest { proc }
    }

    /// Stops testpmd with `sig` (0: Enter on its stdin, as a user would)
    /// and returns its final forward statistics.
    pub fn stop(mut self, sig: i32) -> GuestCounts {
        if sig == 0 {
            let mut stdin = self.proc.stdin.take().expect("stdin");
            stdin.write_all(b"\n").unwrap();
        } else {
            self.proc.signal(sig);
        }
        let status = self.proc.wait_exit(Duration::from_secs(30));
        let text = self.proc.text();
        let block = text
            .rfind("Forward statistics for port 0")
            .map(|i| &text[i..])
            .unwrap_or_else(|| panic!("no forward statistics ({status}) in:\n{text}"));
        GuestCounts {
            rx: number_after(block, "RX-packets:"),
            tx: number_after(block, "TX-packets:"),
        }
    }

    pub fn kill(mut self) {
        self.proc.signal(libc::SIGKILL);
        self.proc.wait_exit(Duration::from_secs(10));
    }
}

/// Sends `count` frames on `flows` flows from the namespace through a
/// macswap guest and checks that every one came back whole; `what` says
/// when, in the failure message with the proxy's counters.
pub fn all_frames_back(net: &Netns, proxy: &Proxy, count: u32, flows: u32, what: &str) {
    let r = net.flows(count, flows);
    assert_eq!(
        (r.sent, r.matched, r.bad),
        (count, count, 0),
        "{what}: {r:?}\n{}",
        proxy.counters()
    );
}

/// A numeric field of the socket at `path` in a /io_proxy/sockets answer.
pub fn socket_field_of(json: &str, path: &str, field: &str) -> i64 {
    let at = json
        .find(&format!("\"path\": \"{path}\""))
        .unwrap_or_else(|| panic!("{path} not in telemetry: {json}"));
    let obj = &json[at..json[at..].find('}').map(|e| at + e).unwrap()];
    json_number(obj, field)
}

/// The JSON answer of the DPDK process with file prefix `prefix` to a
/// telemetry `command`.
pub fn telemetry(prefix: &str, command: &str) -> String {
    let mut child = Command::new("dpdk-telemetry.py")
        .args(["-f", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{command}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .rfind(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from dpdk-telemetry.py: {text}"))
        .to_string()
}

/// After `frames` crossed both ways between the two ports of the guest
/// with EAL prefix `guest_prefix` (sockets `socks`): no payload was copied
/// at either end, and each port sent at least that many.
pub fn no_copies_either_end(guest_prefix: &str, proxy: &Proxy, socks: &[String; 2], frames: u32) {
    std::thread::sleep(Duration::from_millis(300));
    for port in 0..2 {
        let x = telemetry(guest_prefix, &format!("/ethdev/xstats,{port}"));
        assert_eq!(json_number::<u64>(&x, "tx_copies"), 0, "port {port}: {x}");
        assert!(
            json_number::<u64>(&x, "tx_good_packets") >= frames as u64,
            "{x}"
        );
    }
    for s in socks {
        assert_eq!(proxy.socket_field(s, "payload_copies"), 0, "{s}");
        assert!(proxy.socket_field(s, "tx_packets") >= frames as i64, "{s}");
    }
}

/// Runs a command (program and arguments) and asserts it succeeded.
pub fn sh(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?} failed");
}

/// A veth pair: `host` in our namespace (the proxy's NIC through
/// net_af_packet), its peer in a new network namespace (the traffic source).
pub struct Netns {
    pub ns: String,
    pub host: String,
    pub peer: String,
    /// More veth pairs (host end, peer end in the namespace): add_veth.
    pub more: Vec<(String, String)>,
}

/// As [`Netns::flows`], from interface `iface` of this namespace (a tap
/// a PMD made: frames sent on it go to the PMD, what the PMD sends comes
/// back on it), with frames of `min..=max` bytes.
pub fn flows_via(iface: &str, count: u32, flows: u32, min: u32, max: u32) -> FlowResult {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(root().join("tests/tools/flows.py")).args([
        iface,
        "02:00:00:00:00:01",
        &count.to_string(),
        &flows.to_string(),
        "20",
        &min.to_string(),
        &max.to_string(),
    ]);
    run_flows(cmd)
}

/// Runs a `flows.py` command and reads its JSON line.
fn run_flows(mut cmd: Command) -> FlowResult {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "flows.py failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |k: &str| -> u32 { json_number(&text, k) };
    FlowResult {
        sent: get("sent"),
        replies: get("replies"),
        matched: get("matched"),
        bad: get("bad"),
        missing: get("missing"),
    }
}

/// What `across.py` saw: frames sent on one veth and leaving another.
#[derive(Debug)]
pub struct AcrossResult {
    pub sent: u32,
    pub received: u32,
    pub matched: u32,
    pub bad: u32,
}

impl Netns {
    /// Removes the namespace and the host end of the veth (with its peer),
    /// if they exist.
    fn delete(&self) {
        for args in [["netns", "del", &self.ns], ["link", "del", &self.host]] {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        }
        for (host, _) in &self.more {
            let _ = Command::new("ip")
                .args(["link", "del", host])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Runs a command inside the namespace and asserts it succeeded.
    pub fn run(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend_from_slice(args);
        sh(&all);
    }

    /// A veth pair `host`/`peer`, the peer moved into the namespace, both
    /// up without IPv6 (the kernel would send router and neighbour
    /// solicitations).
    fn veth_pair(&self, host: &str, peer: &str) {
        sh(&[
            "ip", "link", "add", host, "type", "veth", "peer", "name", peer,
        ]);
        sh(&["ip", "link", "set", peer, "netns", &self.ns]);
        sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{host}.disable_ipv6=1"),
        ]);
        sh(&["ip", "link", "set", host, "up"]);
        self.run(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{peer}.disable_ipv6=1"),
        ]);
        self.run(&["ip", "link", "set", peer, "up"]);
    }

    /// Another veth pair into the namespace: returns its host end.
    pub fn add_veth(&mut self) -> String {
        let n = self.more.len() + 2;
        let (host, peer) = (format!("{}h{n}", self.ns), format!("{}p{n}", self.ns));
        let _ = Command::new("ip")
            .args(["link", "del", &host])
            .stderr(Stdio::null())
            .status();
        self.more.push((host.clone(), peer.clone()));
        self.veth_pair(&host, &peer);
        host
    }

    /// The namespace end of the veth whose host end is `host`.
    pub fn peer_of(&self, host: &str) -> String {
        if host == self.host {
            return self.peer.clone();
        }
        self.more
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no veth {host}"))
    }

    /// Sends `count` frames over `flows` flows into host veth `from` (to
    /// `dst_mac`) and checks what leaves host veth `to` (tests/tools/across.py;
    /// `flag`: "" or one of its --options).
    pub fn across(
        &self,
        from: &str,
        to: &str,
        dst_mac: &str,
        count: u32,
        flows: u32,
        flag: &str,
    ) -> AcrossResult {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "/usr/bin/python3"])
            .arg(root().join("tests/tools/across.py"))
            .args([
                &self.peer_of(from),
                &self.peer_of(to),
                dst_mac,
                &count.to_string(),
                &flows.to_string(),
                "20",
            ]);
        if !flag.is_empty() {
            cmd.arg(flag);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "across.py failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let get = |k: &str| -> u32 { json_number(&text, k) };
        AcrossResult {
            sent: get("sent"),
            received: get("received"),
            matched: get("matched"),
            bad: get("bad"),
        }
    }

    pub fn new(tag: &str) -> Netns {
        let n = Netns {
            ns: format!("iop{tag}"),
            host: format!("iop{tag}h"),
            peer: format!("iop{tag}p"),
            more: Vec::new(),
        };
        // Left over from an earlier run that was killed.
        n.delete();
        sh(&["ip", "netns", "add", &n.ns]);
        n.veth_pair(&n.host, &n.peer);
        n
    }

    pub fn host_mac(&self) -> String {
        std::fs::read_to_string(format!("/sys/class/net/{}/address", self.host))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Sends `count` frames over `flows` flows (60..1514 bytes) from the
    /// namespace and checks the macswapped replies.
    pub fn flows(&self, count: u32, flows: u32) -> FlowResult {
        self.flows_within(count, flows, 20)
    }

    /// As [`Netns::flows`], with frames of `min..=max` bytes.
    pub fn flows_sized(&self, count: u32, flows: u32, min: u32, max: u32) -> FlowResult {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "/usr/bin/python3"])
            .arg(root().join("tests/tools/flows.py"))
            .arg(&self.peer)
            .arg(self.host_mac())
            .args([count, flows, 20, min, max].map(|n| n.to_string()));
        run_flows(cmd)
    }

    /// Sets the MTU of both ends of the first veth.
    pub fn set_mtu(&self, mtu: u32) {
        let mtu = mtu.to_string();
        sh(&["ip", "link", "set", &self.host, "mtu", &mtu]);
        self.run(&["ip", "link", "set", &self.peer, "mtu", &mtu]);
    }

    /// As [`Netns::flows`], into host veth `host` (any of the namespace's).
    pub fn flows_at(&self, host: &str, count: u32, flows: u32) -> FlowResult {
        let mac = std::fs::read_to_string(format!("/sys/class/net/{host}/address")).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "/usr/bin/python3"])
            .arg(root().join("tests/tools/flows.py"))
            .args([&self.peer_of(host), mac.trim()])
            .args([count, flows, 20].map(|n| n.to_string()));
        run_flows(cmd)
    }

    /// As [`Netns::flows`], waiting at most `secs` for the replies.
    pub fn flows_within(&self, count: u32, flows: u32, secs: u32) -> FlowResult {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "/usr/bin/python3"])
            .arg(root().join("tests/tools/flows.py"))
            .args([
                &self.peer,
                &self.host_mac(),
                &count.to_string(),
                &flows.to_string(),
                &secs.to_string(),
            ]);
        run_flows(cmd)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct FlowResult {
    pub sent: u32,
    pub replies: u32,
    pub matched: u32,
    pub bad: u32,
    pub missing: u32,
}

/// A client socket connected to a proxy socket at `path`, as a guest's.
pub fn connect_seqpacket(path: &str) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    fd
}

/// Descriptors open in process `pid`.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Runs the proxy at a terminal (script(1)) with `vdev`, `setup` as its
/// startup commands, types `lines` at its prompt and returns what it said.
pub fn proxy_at_prompt(tag: &str, vdev: &str, setup: &str, lines: &[&str]) -> String {
    let dir = Scratch::new(tag);
    let cmds = dir.path("p.cmds");
    std::fs::write(&cmds, setup).unwrap();
    let proxy = format!(
        "{} --no-huge -m 256 --no-pci --vdev {vdev} --file-prefix iop_{tag} -- --cmds {} 0",
        proxy_bin().display(),
        cmds.display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &proxy, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    std::thread::sleep(Duration::from_secs(3));
    for line in lines.iter().chain(&["quit"]) {
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

/// Process `pid`'s CPU time (user + system), in seconds.
pub fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz
}

/// Where Debian's dpdk-doc keeps DPDK's example apps.
pub const EXAMPLES: &str = "/usr/share/dpdk/examples";

/// Builds example `name` (its directory under dpdk-doc's examples) into
/// `target/examples`, once, and returns its binary `bin`.
pub fn example(name: &str, bin: &str) -> PathBuf {
    let dir = root().join("target/examples");
    let built = dir.join(name).join("build").join(bin);
    if built.exists() {
        return built;
    }
    std::fs::create_dir_all(&dir).unwrap();
    for d in [name, "common"] {
        let st = Command::new("cp")
            .args(["-rT", &format!("{EXAMPLES}/{d}")])
            .arg(dir.join(d))
            .status()
            .unwrap();
        assert!(
            st.success(),
            "no {EXAMPLES}/{d}: is dpdk-doc installed (scripts/setup.sh)?"
        );
    }
    let out = Command::new("make")
        .args(["-s", "-C"])
        .arg(dir.join(name))
        .output()
        .unwrap();
    assert!(
        out.status.success() && built.exists(),
        "building {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    built
}

/// Runs DPDK example `bin` (from [`example`]) as the guest of `socks`,
/// with its own file prefix (its telemetry answers `telemetry(prefix,
/// ...)`) and EAL's `-m <mem>` (MiB of the app's own heap, beside the
/// socket's heap area), and waits for `ready` in its output.
pub fn run_example(
    dir: &Scratch,
    bin: &Path,
    prefix: &str,
    socks: &[String],
    mem: &str,
    app_args: &[&str],
    ready: &str,
) -> Proc {
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-oL", "-eL"])
        .arg(bin)
        .arg("-d")
        .arg(pmds())
        .args([
            "-l",
            "1",
            "--no-huge",
            "-m",
            mem,
            "--no-pci",
            "--file-prefix",
            prefix,
            "--log-level=net.shm:info",
        ]);
    for s in socks {
        cmd.arg("-a").arg(format!("sock:{s}"));
    }
    cmd.arg("--").args(app_args);
    let mut p = Proc::spawn(&mut cmd, dir.path(&format!("{prefix}.log")), true);
    p.wait_for(ready, 1, Duration::from_secs(60));
    p
}
