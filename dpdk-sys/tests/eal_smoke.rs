//! Starts the EAL for real in a child process (EAL can initialise only once
//! per process), with net_null as the NIC: mbuf pool, port setup, one rx
//! burst through the shim, free, and a check that every mbuf came back.
use std::process::Command;

const CHILD_ENV: &str = "DPDK_SYS_SMOKE_CHILD";

#[test]
fn eal_smoke_in_child_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "eal_smoke_in_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("SMOKE OK"),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

fn child() {
    use dpdk_sys::*;
    let args: Vec<String> = [
        "smoke",
        "-l",
        "0",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--vdev",
        "net_null0",
        // 22.11 refuses --in-memory with --no-huge (legacy mem); --no-shconf
        // likewise leaves no files behind.
        "--no-shconf",
        "--log-level",
        "lib.eal:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    eal_init(&args).expect("EAL init");
    // SAFETY: EAL is initialised; all pointers passed are valid for the calls.
    unsafe {
        assert_eq!(rte_eth_dev_count_avail(), 1, "net_null0 not probed");
        let pool = rte_pktmbuf_pool_create(
            c"smoke".as_ptr(),
            1023,
            0,
            0,
            RTE_MBUF_DEFAULT_BUF_SIZE,
            SOCKET_ID_ANY,
        );
        assert!(!pool.is_null(), "pool: {}", strerror(rte_errno()));
        let before = rte_mempool_avail_count(pool);
        assert_eq!(before, 1023);

        let conf: rte_eth_conf = std::mem::zeroed();
        assert_eq!(rte_eth_dev_configure(0, 1, 1, &conf), 0);
        assert_eq!(
            rte_eth_rx_queue_setup(0, 0, 128, 0, std::ptr::null(), pool),
            0
        );
        assert_eq!(rte_eth_tx_queue_setup(0, 0, 128, 0, std::ptr::null()), 0);
        assert_eq!(rte_eth_dev_start(0), 0);

        let mut pkts = [std::ptr::null_mut::<rte_mbuf>(); 32];
        let n = dpdk_sys_eth_rx_burst(0, 0, pkts.as_mut_ptr(), 32);
        assert_eq!(n, 32, "net_null returns full bursts");
        assert_eq!(rte_mempool_avail_count(pool), before - 32);
        for &m in &pkts[..n as usize] {
            assert_eq!((*m).pkt_len, 64, "net_null default packet size");
            assert_eq!((*m).pool, pool);
            dpdk_sys_pktmbuf_free(m);
        }
        assert_eq!(rte_mempool_avail_count(pool), before, "all mbufs returned");

        let mut stats: rte_eth_stats = std::mem::zeroed();
        assert_eq!(rte_eth_stats_get(0, &mut stats), 0);
        assert_eq!(stats.ipackets, 32);
        assert_eq!(rte_eth_dev_stop(0), 0);
        rte_eth_dev_close(0);
        rte_mempool_free(pool);
        rte_eal_cleanup();
    }
    println!("SMOKE OK");
}
