//! net/shm built into a DPDK source tree (meson-wrap): the tree's own
//! dpdk-testpmd, linked statically with the drivers, attaches to the proxy
//! with `-a sock:` and no plugin, and forwards; so does Debian's testpmd
//! with the tree's shared `librte_net_shm.so` as its plugin.
mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

/// The source tree `scripts/setup.sh` keeps: the DPDK the system has.
fn dpdk_source() -> std::path::PathBuf {
    let out = Command::new("pkg-config")
        .args(["--modversion", "libdpdk"])
        .output()
        .expect("pkg-config");
    let version = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let src = root().join(format!(".sdk/dpdk-{version}/src"));
    assert!(
        src.join("meson.build").is_file(),
        "no DPDK source tree at {} (run scripts/setup.sh)",
        src.display()
    );
    src
}

#[test]
fn dpdk_tree_with_net_shm_builds_working_drivers() {
    let build = root().join("target/meson-dpdk");
    let log = root().join("target/meson-dpdk.log");
    let st = Command::new(root().join("meson-wrap/build-dpdk.sh"))
        .arg(dpdk_source())
        .arg(&build)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(root().join("target/meson-dpdk.err")).unwrap())
        .status()
        .expect("meson-wrap/build-dpdk.sh");
    let err = std::fs::read_to_string(root().join("target/meson-dpdk.err")).unwrap_or_default();
    assert!(st.success(), "in-tree build failed ({st}):\n{err}");
    let testpmd = build.join("app/dpdk-testpmd");
    // The PMD is described like a C driver (pmdinfogen ran on it).
    let bin = std::fs::read(&testpmd).unwrap();
    let info = br#"{"name": "net_shm", "params": "path=<socket> recycle=<0|1> reconnect=<ms>""#;
    assert!(
        bin.windows(info.len()).any(|w| w == info),
        "no net_shm PMD info in {}",
        testpmd.display()
    );

    // Static: no DPDK library of the system, no plugin directory.
    let ldd = Command::new("ldd").arg(&testpmd).output().unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    assert!(!ldd.contains("librte_"), "{ldd}");

    let (dir, sock, proxy) = Proxy::one_queue("meson", "net_null0", "");
    let sock = sock.as_str();
    let mut sent = 0;
    // The tree's static testpmd; then the tree's shared driver, loaded into
    // Debian's testpmd like the plugin (same DPDK version and ABI).
    let shared = build.join("drivers/librte_net_shm.so.23.0");
    let guests = [
        ("static", testpmd.clone(), None),
        ("shared", "dpdk-testpmd".into(), Some(shared.as_path())),
    ];
    for (name, bin, plugin) in guests {
        let guest = Guest::start_other(&dir, name, sock, &bin, plugin);
        std::thread::sleep(Duration::from_secs(2));
        let g = guest.stop(0);
        assert!(
            g.rx > 100_000 && g.tx > 100_000,
            "{name}: too little traffic: {g:?}"
        );
        sent += g.tx;
        // The proxy notices the guest leave before the next one comes.
        assert!(proxy.guest_gone(sock), "{name}: guest exit not noticed");
        assert_eq!(
            proxy.socket_field(sock, "tx_packets") as u64,
            sent,
            "{name}"
        );
    }
    assert_eq!(proxy.socket_field(sock, "payload_copies"), 0);
    proxy.stop(&[sock]);
}
