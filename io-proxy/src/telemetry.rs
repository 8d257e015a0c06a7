//! The `/io_proxy/...` telemetry commands.

use crate::datapath::Datapath;
use crate::dma;
use crate::nic::mac_str;
use crate::proxy::Proxy;
use crate::session::{RingDepths, RING_NAMES};
use crate::stats::{get, SocketStats};
use dpdk_sys as sys;
use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

struct PortRow {
    id: u16,
    name: String,
    driver: String,
    queues: u16,
    rss: bool,
    mac: String,
}
struct SocketRow {
    path: String,
    port: u16,
    queues: Vec<u16>,
    lcores: Vec<u32>,
    connected: bool,
    /// Queue pairs attached to their NIC queue.
    started: usize,
    pid: i64,
    guest: String,
    /// Per NIC queue served.
    stats: Vec<Arc<SocketStats>>,
    rings: Option<Arc<RingDepths>>,
    /// DMA state of the guest's buffers and their first IOVA, while started.
    dma: Option<(String, u64)>,
    /// The guest's buffer area (it may grow while this snapshot lives).
    buffers: Option<Arc<crate::session::GuestBuffers>>,
}
/// A steering rule, its hits read at publish time (the rule's handle
/// stays with the control thread, which may destroy it).
struct FlowRow {
    id: u32,
    port: u16,
    target: crate::flow::Target,
    pattern: String,
    hits: Option<u64>,
}
/// (port, NIC queue).
type PortQueue = (u16, u16);

#[derive(Default)]
struct Snapshot {
    ports: Vec<PortRow>,
    sockets: Vec<SocketRow>,
    flows: Vec<FlowRow>,
    /// Each datapath lcore, and the queues it polls.
    datapaths: Vec<(Arc<Datapath>, Vec<PortQueue>)>,
    idle: String,
}
static SNAPSHOT: Mutex<Option<Snapshot>> = Mutex::new(None);

/// Makes the current ports and sockets visible to telemetry.
pub fn publish(p: &Proxy) {
    let snap = Snapshot {
        ports: p
            .ports
            .values()
            .map(|n| PortRow {
                id: n.id,
                name: n.name.clone(),
                driver: n.driver.clone(),
                queues: n.nb_queues,
                rss: n.rss,
                mac: mac_str(&n.mac),
            })
            .collect(),
        sockets: p
            .sockets
            .iter()
            .map(|s| SocketRow {
                path: s.path.clone(),
                port: s.port,
                queues: s.queues.clone(),
                lcores: s.lcores.clone(),
                connected: s.session.is_some(),
                started: s
                    .session
                    .as_ref()
                    .map_or(0, |x| x.started.iter().filter(|&&b| b).count()),
                pid: s.session.as_ref().map_or(-1, |x| x.pid as i64),
                guest: s.session.as_ref().map_or(String::new(), |x| x.name.clone()),
                stats: s.stats.clone(),
                rings: s.session.as_ref().and_then(|x| x.rings.clone()),
                dma: s.session.as_ref().and_then(|x| {
                    let a = x.dma.as_ref()?;
                    Some((a.state.clone(), a.iova()))
                }),
                buffers: s.session.as_ref().map(|x| x.buffers.clone()),
            })
            .collect(),
        flows: p
            .flows
            .list
            .iter()
            .map(|f| FlowRow {
                id: f.id,
                port: f.port,
                target: f.target.clone(),
                pattern: f.pattern.to_string(),
                hits: crate::flow::Flows::hits(f),
            })
            .collect(),
        datapaths: p
            .lcores
            .datapaths()
            .iter()
            .map(|dp| (dp.clone(), p.lcores.polled_by(dp.lcore)))
            .collect(),
        idle: p.lcores.idle().to_string(),
    };
    *SNAPSHOT.lock().unwrap_or_else(|e| e.into_inner()) = Some(snap);
}

fn cs(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap()
}

/// # Safety
/// `d` is a dict container being filled (`rte_tel_data_start_dict`).
unsafe fn add_u64(d: *mut sys::rte_tel_data, k: &str, v: u64) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        sys::compat::tel_data_add_dict_u64(d, cs(k).as_ptr(), v);
    }
}
/// # Safety
/// As [`add_u64`].
unsafe fn add_str(d: *mut sys::rte_tel_data, k: &str, v: &str) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        sys::rte_tel_data_add_dict_string(d, cs(k).as_ptr(), cs(v).as_ptr());
    }
}

/// A new, empty dict container (None when out of memory).
///
/// # Safety
/// EAL is initialised (telemetry commands run after it).
unsafe fn new_dict() -> Option<*mut sys::rte_tel_data> {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let c = sys::rte_tel_data_alloc();
        if c.is_null() {
            return None;
        }
        sys::rte_tel_data_start_dict(c);
        Some(c)
    }
}

/// Adds container `c` to dict `d` under `k`; `d` takes ownership.
///
/// # Safety
/// As [`add_u64`]; `c` is a container from [`new_dict`], not added elsewhere.
unsafe fn add_dict(d: *mut sys::rte_tel_data, k: &str, c: *mut sys::rte_tel_data) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        sys::rte_tel_data_add_dict_container(d, cs(k).as_ptr(), c, 0);
    }
}

unsafe extern "C" fn tel_ports(
    _cmd: *const c_char,
    _params: *const c_char,
    d: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: the telemetry library calls its commands with a fresh
    // output container `d`, valid for the call.
    unsafe {
        sys::ffi_guard("io_proxy telemetry tel_ports", -libc::EIO, || {
            let g = SNAPSHOT.lock().unwrap_or_else(|e| e.into_inner());
            sys::rte_tel_data_start_dict(d);
            let Some(snap) = g.as_ref() else { return 0 };
            for p in &snap.ports {
                let Some(c) = new_dict() else {
                    return -libc::ENOMEM;
                };
                add_u64(c, "port_id", p.id as u64);
                add_str(c, "name", &p.name);
                add_str(c, "driver", &p.driver);
                add_u64(c, "queues", p.queues as u64);
                add_u64(c, "rss", p.rss as u64);
                add_str(c, "mac", &p.mac);
                let mut st: sys::rte_eth_stats = std::mem::zeroed();
                sys::rte_eth_stats_get(p.id, &mut st);
                add_u64(c, "rx_packets", st.ipackets);
                add_u64(c, "tx_packets", st.opackets);
                add_u64(c, "rx_missed", st.imissed);
                add_dict(d, &format!("port{}", p.id), c);
            }
            0
        })
    }
}

unsafe extern "C" fn tel_sockets(
    _cmd: *const c_char,
    _params: *const c_char,
    d: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: the telemetry library calls its commands with a fresh
    // output container `d`, valid for the call.
    unsafe {
        sys::ffi_guard("io_proxy telemetry tel_sockets", -libc::EIO, || {
            let g = SNAPSHOT.lock().unwrap_or_else(|e| e.into_inner());
            sys::rte_tel_data_start_dict(d);
            let Some(snap) = g.as_ref() else { return 0 };
            for (i, s) in snap.sockets.iter().enumerate() {
                let Some(c) = new_dict() else {
                    return -libc::ENOMEM;
                };
                add_str(c, "path", &s.path);
                add_u64(c, "port", s.port as u64);
                add_u64(c, "queue", s.queues[0] as u64);
                add_str(c, "queues", &crate::proxy::queue_list(&s.queues));
                add_u64(c, "lcore", s.lcores[0] as u64);
                add_str(c, "lcores", &crate::proxy::lcore_list(&s.lcores));
                add_u64(c, "connected", s.connected as u64);
                add_u64(c, "started", (s.started > 0) as u64);
                add_u64(c, "queues_started", s.started as u64);
                // int before 24.11, int64_t since.
                sys::rte_tel_data_add_dict_int(c, c"guest_pid".as_ptr(), s.pid as _);
                add_str(c, "guest", &s.guest);
                // The socket's totals, then each queue's where it has several.
                let sum = |f: fn(&SocketStats) -> &AtomicU64| -> u64 {
                    s.stats.iter().map(|st| get(f(st))).sum()
                };
                add_u64(c, "rx_packets", sum(|st| &st.rx_packets));
                add_u64(c, "rx_bytes", sum(|st| &st.rx_bytes));
                add_u64(c, "tx_packets", sum(|st| &st.tx_packets));
                add_u64(c, "tx_bytes", sum(|st| &st.tx_bytes));
                add_u64(c, "rx_drops", sum(|st| &st.rx_drops));
                add_u64(c, "tx_drops", sum(|st| &st.tx_drops));
                add_u64(c, "rx_no_buffer", sum(|st| &st.rx_no_buffer));
                add_u64(c, "bad_descriptors", sum(|st| &st.bad_descriptors));
                add_u64(c, "tx_offload_errors", sum(|st| &st.tx_offload_errors));
                add_u64(c, "lost_returns", sum(|st| &st.lost_returns));
                add_u64(c, "payload_copies", sum(|st| &st.payload_copies));
                add_u64(c, "rx_wakes", sum(|st| &st.rx_wakes));
                add_u64(c, "tx_kicks", sum(|st| &st.tx_kicks));
                if s.stats.len() > 1 {
                    for (k, st) in s.stats.iter().enumerate() {
                        add_u64(c, &format!("q{k}_rx_packets"), get(&st.rx_packets));
                        add_u64(c, &format!("q{k}_tx_packets"), get(&st.tx_packets));
                    }
                }
                // Where the guest's buffers wait right now (a sample): in the rx
                // ring the guest is behind, in the tx ring the proxy is.
                if let Some(r) = &s.rings {
                    add_u64(c, "ring_entries", r.ring_entries() as u64);
                    for k in 0..s.started.max(1) as u16 {
                        let prefix = if s.stats.len() > 1 {
                            format!("q{k}_")
                        } else {
                            String::new()
                        };
                        for (name, n) in RING_NAMES.iter().zip(r.read(k)) {
                            if let Some(n) = n {
                                add_u64(c, &format!("{prefix}{name}_ring_used"), n as u64);
                            }
                        }
                    }
                }
                if let Some(b) = &s.buffers {
                    // The guest's buffer area now, and what it may grow to.
                    add_u64(c, "buffers_mb", (b.end() - b.layout.buf_off) >> 20);
                    add_u64(c, "max_buffers_mb", b.layout.buf_max >> 20);
                }
                if let Some((state, iova)) = &s.dma {
                    add_str(c, "dma", state);
                    if *iova != dma::BAD_IOVA {
                        add_u64(c, "buf_iova", *iova);
                    }
                }
                add_dict(d, &format!("socket{i}"), c);
            }
            0
        })
    }
}

unsafe extern "C" fn tel_datapath(
    _cmd: *const c_char,
    _params: *const c_char,
    d: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: the telemetry library calls its commands with a fresh
    // output container `d`, valid for the call.
    unsafe {
        sys::ffi_guard("io_proxy telemetry tel_datapath", -libc::EIO, || {
            let g = SNAPSHOT.lock().unwrap_or_else(|e| e.into_inner());
            sys::rte_tel_data_start_dict(d);
            let Some(snap) = g.as_ref() else { return 0 };
            // The totals over every lcore, then each lcore's own.
            let sum = |f: &dyn Fn(&Datapath) -> u64| -> u64 {
                snap.datapaths.iter().map(|(dp, _)| f(dp)).sum()
            };
            let on = sum(&|dp| dp.timing.on.load(Ordering::Relaxed) as u64) > 0;
            add_u64(d, "timing", on as u64);
            add_u64(d, "tsc_hz", sys::rte_get_tsc_hz());
            add_str(d, "idle", &snap.idle);
            add_u64(d, "lcores", snap.datapaths.len() as u64);
            add_u64(d, "idle_cycles", sum(&|dp| get(&dp.timing.idle)));
            add_u64(d, "idle_sleeps", sum(&|dp| get(&dp.sleeps.count)));
            add_u64(d, "intr_waits", sum(&|dp| get(&dp.sleeps.intr_waits)));
            let mut totals = [("", 0u64, 0u64); 4];
            for (dp, _) in &snap.datapaths {
                for (t, (name, cycles, packets)) in totals.iter_mut().zip(dp.timing.stages()) {
                    *t = (name, t.1 + cycles, t.2 + packets);
                }
            }
            for (name, cycles, packets) in totals {
                add_u64(d, &format!("{name}_cycles"), cycles);
                add_u64(d, &format!("{name}_packets"), packets);
                add_u64(
                    d,
                    &format!("{name}_cycles_per_packet"),
                    (cycles + packets / 2) / packets.max(1),
                );
            }
            for (dp, polled) in &snap.datapaths {
                let Some(c) = new_dict() else {
                    return -libc::ENOMEM;
                };
                add_u64(c, "queues", polled.len() as u64);
                add_str(c, "polls", &crate::lcores::port_queue_list(polled));
                add_u64(c, "pauses", get(&dp.pauses));
                add_u64(c, "idle_sleeps", get(&dp.sleeps.count));
                add_u64(c, "idle_sleep_us", get(&dp.sleeps.asked_us));
                add_u64(c, "intr_waits", get(&dp.sleeps.intr_waits));
                add_u64(c, "intr_wakes", get(&dp.sleeps.intr_wakes));
                add_u64(c, "idle_cycles", get(&dp.timing.idle));
                for (name, cycles, packets) in dp.timing.stages() {
                    add_u64(c, &format!("{name}_cycles"), cycles);
                    add_u64(c, &format!("{name}_packets"), packets);
                }
                add_dict(d, &format!("lcore{}", dp.lcore), c);
            }
            0
        })
    }
}

unsafe extern "C" fn tel_dma(
    _cmd: *const c_char,
    _params: *const c_char,
    d: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: the telemetry library calls its commands with a fresh
    // output container `d`, valid for the call.
    unsafe {
        sys::ffi_guard("io_proxy telemetry tel_dma", -libc::EIO, || {
            sys::rte_tel_data_start_dict(d);
            add_str(d, "iova_mode", dma::iova_mode_name());
            add_u64(d, "external_areas", dma::external_areas() as u64);
            0
        })
    }
}

unsafe extern "C" fn tel_flows(
    _cmd: *const c_char,
    _params: *const c_char,
    d: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: the telemetry library calls its commands with a fresh
    // output container `d`, valid for the call.
    unsafe {
        sys::ffi_guard("io_proxy telemetry tel_flows", -libc::EIO, || {
            let g = SNAPSHOT.lock().unwrap_or_else(|e| e.into_inner());
            sys::rte_tel_data_start_dict(d);
            let Some(snap) = g.as_ref() else { return 0 };
            for f in &snap.flows {
                let Some(c) = new_dict() else {
                    return -libc::ENOMEM;
                };
                add_u64(c, "port", f.port as u64);
                match &f.target {
                    crate::flow::Target::Queue(q) => add_u64(c, "queue", *q as u64),
                    crate::flow::Target::Rss(qs) => {
                        add_str(c, "rss", &crate::proxy::queue_list(qs))
                    }
                }
                add_str(c, "pattern", &f.pattern);
                // -1: the NIC does not count this rule.
                sys::rte_tel_data_add_dict_int(
                    c,
                    c"hits".as_ptr(),
                    f.hits.map_or(-1, |h| h.min(i32::MAX as u64) as i64) as _,
                );
                add_dict(d, &format!("flow{}", f.id), c);
            }
            0
        })
    }
}

/// Registers the telemetry commands (after EAL init).
pub fn register() {
    // SAFETY: static strings and callbacks that live for the process.
    unsafe {
        sys::rte_telemetry_register_cmd(
            c"/io_proxy/ports".as_ptr(),
            Some(tel_ports),
            c"Ports owned by dpdk-io-proxy, with queue count, RSS and counters".as_ptr(),
        );
        sys::rte_telemetry_register_cmd(
            c"/io_proxy/sockets".as_ptr(),
            Some(tel_sockets),
            c"Sockets served by dpdk-io-proxy: path, port, queue, guest, per-socket counters"
                .as_ptr(),
        );
        sys::rte_telemetry_register_cmd(
            c"/io_proxy/datapath".as_ptr(),
            Some(tel_datapath),
            c"dpdk-io-proxy datapath lcores: queues polled, idle sleeps, TSC cycles per stage while 'set timing on'".as_ptr(),
        );
        sys::rte_telemetry_register_cmd(
            c"/io_proxy/flows".as_ptr(),
            Some(tel_flows),
            c"rte_flow steering rules: port, pattern, queue, hits (-1: not counted)".as_ptr(),
        );
        sys::rte_telemetry_register_cmd(
            c"/io_proxy/dma".as_ptr(),
            Some(tel_dma),
            c"EAL IOVA mode, and how many guest buffer areas are registered as external memory"
                .as_ptr(),
        );
    }
}
