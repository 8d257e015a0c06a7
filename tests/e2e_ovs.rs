//! Open vSwitch with DPDK as a guest: Debian's `ovs-vswitchd-dpdk` (OVS
//! 3.1, DPDK 22.11), unmodified and with its default settings apart from
//! `dpdk-extra` (the plugin, `--no-huge`, `--legacy-mem`, a file prefix for
//! telemetry). Its two `type=dpdk` ports name the proxy's sockets in
//! `options:dpdk-devargs` through the `net_shm` vdev; a flow forwards
//! between them, and frames from one veth leave the other intact with no
//! payload copy. OVS runs from the packages `scripts/setup.sh` unpacks into
//! `.sdk/ovs`, with its database, sockets and logs in the test's scratch
//! directory and `ovs-vswitchd` in the test's network namespace (its
//! bridge's internal port is a tap there), so nothing is left behind.
mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const FRAMES: u32 = 1000;
const FLOWS: u32 = 32;
const GUEST_PREFIX: &str = "iop_ovs_g";

fn ovs_root() -> PathBuf {
    let r = root().join(".sdk/ovs");
    assert!(
        r.join(".complete").exists(),
        "no Open vSwitch in {} (scripts/setup.sh unpacks it)",
        r.display()
    );
    r
}

/// `ovsdb-server` and `ovs-vswitchd` of one test; killed when dropped.
struct Ovs {
    run: PathBuf,
    db: String,
    _ovsdb: Proc,
    vswitchd: Option<Proc>,
}

impl Ovs {
    /// Environment that keeps every OVS tool in the scratch directory.
    fn env(cmd: &mut Command, run: &PathBuf) {
        for var in [
            "OVS_RUNDIR",
            "OVS_LOGDIR",
            "OVS_DBDIR",
            "OVS_SYSCONFDIR",
            "OVS_PKGDATADIR",
        ] {
            cmd.env(var, run);
        }
    }

    fn tool(&self, bin: &str, args: &[&str]) -> String {
        let mut cmd = Command::new(ovs_root().join(bin));
        Ovs::env(&mut cmd, &self.run);
        if bin.ends_with("ovs-vsctl") {
            cmd.arg(format!("--db={}", self.db)).arg("--timeout=30");
        }
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{bin} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn vsctl(&self, args: &[&str]) -> String {
        self.tool("usr/bin/ovs-vsctl", args)
    }

    fn ofctl(&self, args: &[&str]) -> String {
        self.tool("usr/bin/ovs-ofctl", args)
    }

    /// Starts ovsdb-server on a new database and ovs-vswitchd (DPDK
    /// enabled) inside network namespace `ns`.
    fn start(dir: &Scratch, ns: &str) -> Ovs {
        let o = ovs_root();
        let run = dir.path("ovs");
        std::fs::create_dir_all(&run).unwrap();
        let conf = run.join("conf.db");
        let db = format!("unix:{}", run.join("db.sock").display());
        let st = Command::new(o.join("usr/bin/ovsdb-tool"))
            .arg("create")
            .arg(&conf)
            .arg(o.join("usr/share/openvswitch/vswitch.ovsschema"))
            .status()
            .unwrap();
        assert!(st.success(), "ovsdb-tool create");
        let mut cmd = Command::new(o.join("usr/sbin/ovsdb-server"));
        Ovs::env(&mut cmd, &run);
        cmd.arg(&conf)
            .arg(format!("--remote=p{db}"))
            .arg(format!("--unixctl={}", run.join("ovsdb.ctl").display()))
            .arg(format!("--log-file={}", run.join("ovsdb.log").display()));
        let ovsdb = Proc::spawn(&mut cmd, dir.path("ovsdb.out"), false);
        let mut ovs = Ovs {
            run: run.clone(),
            db: db.clone(),
            _ovsdb: ovsdb,
            vswitchd: None,
        };
        let t0 = Instant::now();
        while !run.join("db.sock").exists() {
            assert!(t0.elapsed() < Duration::from_secs(20), "no ovsdb socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        ovs.vsctl(&["--no-wait", "init"]);
        let extra = format!(
            "other_config:dpdk-extra=-d {} --no-huge --legacy-mem --file-prefix {GUEST_PREFIX}",
            pmds().display()
        );
        ovs.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            "other_config:dpdk-init=true",
            &extra,
        ]);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "env"]);
        for var in ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"] {
            cmd.arg(format!("{var}={}", run.display()));
        }
        cmd.arg(o.join("usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"))
            .arg(&db)
            .arg(format!("--unixctl={}", run.join("vswitchd.ctl").display()))
            .arg(format!("--log-file={}", run.join("vswitchd.log").display()));
        let mut vswitchd = Proc::spawn(&mut cmd, dir.path("vswitchd.out"), false);
        vswitchd.wait_for("DPDK Enabled - initialized", 1, Duration::from_secs(60));
        ovs.vswitchd = Some(vswitchd);
        ovs
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.run.join("vswitchd.log")).unwrap_or_default()
    }

    /// Waits until interface `iface` has an OpenFlow port and link up.
    fn wait_up(&self, iface: &str) {
        let t0 = Instant::now();
        loop {
            let state = self.vsctl(&["get", "Interface", iface, "link_state", "ofport"]);
            let mut lines = state.lines();
            let (link, ofport) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
            if link.trim_matches('"') == "up" && ofport.parse::<i64>().is_ok_and(|p| p > 0) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{iface}: link_state {link}, ofport {ofport}; vswitchd log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        // ovs-vswitchd first: it is the guest of the proxy's sockets.
        self.vswitchd.take();
    }
}

#[test]
fn open_vswitch_bridges_two_sock_ports() {
    let (dir, net, hosts, proxy, socks) = Proxy::two_ports("ovs");
    let ovs = Ovs::start(&dir, &net.ns);
    ovs.vsctl(&[
        "add-br",
        "br0",
        "--",
        "set",
        "bridge",
        "br0",
        "datapath_type=netdev",
    ]);
    for (i, s) in socks.iter().enumerate() {
        let port = format!("p{i}");
        ovs.vsctl(&[
            "add-port",
            "br0",
            &port,
            "--",
            "set",
            "Interface",
            &port,
            "type=dpdk",
            &format!("options:dpdk-devargs=net_shm{i},path={s}"),
        ]);
    }
    for p in ["p0", "p1"] {
        ovs.wait_up(p);
    }
    let log = ovs.log();
    assert!(
        log.contains("Device 'net_shm0,path=") && log.contains("attached to DPDK"),
        "OVS did not attach the vdev:\n{log}"
    );
    // Its default pool (262144 mbufs, 753 MiB) does not fit the socket's
    // first 512 MiB of buffers: the area grows for it.
    let plog = proxy.proc.text();
    assert!(
        plog.contains("buffers grew by") && !log.contains("objects need"),
        "the buffer area did not grow for OVS's pool:\n{plog}\n{log}"
    );

    // A flow each way between the two ports, nothing else.
    let br = format!("unix:{}", dir.path("ovs/br0.mgmt").display());
    ovs.ofctl(&["del-flows", &br]);
    ovs.ofctl(&["add-flow", &br, "in_port=p0,actions=output:p1"]);
    ovs.ofctl(&["add-flow", &br, "in_port=p1,actions=output:p0"]);

    for (from, to) in [(&hosts[0], &hosts[1]), (&hosts[1], &hosts[0])] {
        let r = net.across(from, to, &net.host_mac(), FRAMES, FLOWS, "");
        assert_eq!(r.sent, FRAMES);
        assert_eq!(r.bad, 0, "{from} -> {to}: frames altered: {r:?}");
        assert_eq!(
            r.matched,
            FRAMES,
            "{from} -> {to}: not all through: {r:?}\n{}",
            ovs.ofctl(&["dump-flows", &br])
        );
    }
    no_copies_either_end(GUEST_PREFIX, &proxy, &socks, FRAMES);

    // Removing a port detaches its vdev: the proxy frees that socket's
    // guest, the other port keeps its.
    ovs.vsctl(&["del-port", "br0", "p1"]);
    assert!(proxy.guest_gone(&socks[1]), "detached port's guest stays");
    assert!(
        ovs.log().contains("Device 'net_shm1,path="),
        "{}",
        ovs.log()
    );
    assert_eq!(
        proxy.socket_field(&socks[0], "connected"),
        1,
        "removing p1 took p0's connection"
    );

    drop(ovs);
    assert!(proxy.guest_gone(&socks[0]), "OVS's exit not noticed");
    proxy.stop(&[&socks[0], &socks[1]]);
}
