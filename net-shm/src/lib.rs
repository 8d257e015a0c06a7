//! `net_shm`: the ethdev PMD of a `sock` device (guest side).
//!
//! One port per socket, as many rx/tx queue pairs as the socket serves NIC
//! queues (each pair with its four rings in the region shared with the
//! proxy). Link is up while the proxy is connected and the NIC's
//! link is up; losing the proxy takes the link down with an LSC event.

pub mod queue;

use bus_shm::guest::{Conn, SockDevice, SockDriver};
use dpdk_sys as sys;
use queue::{Area, RxBudget, RxQueue, TxQueue};
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicU32, Ordering};

pub const DRIVER_NAME: &CStr = c"net_shm";
static LOGTYPE: AtomicU32 = AtomicU32::new(sys::RTE_LOGTYPE_PMD);

fn log(level: u32, msg: &str) {
    sys::log(
        level,
        LOGTYPE.load(Ordering::Relaxed),
        &format!("NET_SHM: {msg}"),
    );
}
macro_rules! err { ($($a:tt)*) => { log(sys::RTE_LOG_ERR, &format!($($a)*)) } }
macro_rules! info { ($($a:tt)*) => { log(sys::RTE_LOG_INFO, &format!($($a)*)) } }
mod intr;
mod reconnect;
mod vdev;

/// Registers the driver on the sock bus. Call once, from the constructor.
pub fn register() {
    bus_shm::guest::register_driver(SockDriver {
        name: DRIVER_NAME,
        probe,
        remove,
    });
    vdev::register();
    // SAFETY: constructor time; the name is static.
    let lt = unsafe {
        sys::rte_log_register_type_and_pick_level(c"net.shm".as_ptr(), sys::RTE_LOG_NOTICE)
    };
    if lt >= 0 {
        LOGTYPE.store(lt as u32, Ordering::Relaxed);
    }
}

/// Per-port state, pointed to by `dev_private`.
struct Port {
    sock: &'static SockDevice,
    port_id: u16,
    area: Area,
    ring_entries: u32,
    /// Range of buffers the rx queue keeps posted (its `nb_rx_desc`): at
    /// least what the NIC queue needs, at most what the ring can take back
    /// with recycled buffers on top.
    rx_desc_min: u16,
    rx_desc_max: u16,
    max_mtu: u16,
    max_rx_pktlen: u32,
    started: bool,
    recycle: bool,
    /// Queue pairs the socket serves (protocol v5; 1 before).
    queue_count: u16,
    /// One per queue pair, shared by its rx and tx queue (buffers the rx
    /// ring may take back). Never resized: queues point into it.
    budgets: Box<[RxBudget]>,
    /// Protocol v5: packets of several buffers cross the rings.
    chains: bool,
    /// The NIC's RSS over the queues: hash functions and key.
    rss_hf: u64,
    rss_key: Vec<u8>,
    /// What the proxy's NIC queue tells about received packets (protocol
    /// v4): the rx offloads behind it, and its packet types, ended by
    /// RTE_PTYPE_UNKNOWN as ethdev wants them.
    rx_offloads: u64,
    ptypes: Vec<u32>,
    /// Tx offloads the proxy's NIC applies per packet (protocol v7), and
    /// the entries of its RSS redirection table (0: none to show).
    tx_offloads: u64,
    reta_size: u16,
    /// Protocol v7: tx descriptors may carry tx metadata, and data_off
    /// stays below [`shm_abi::desc::TX_META`].
    tx_meta: bool,
    /// Longest wait between attempts to reach a restarted proxy by
    /// itself (devarg `reconnect=<ms>`; 0: only at the app's port start).
    reconnect_ms: u32,
    /// Held by port stop and by a reconnect while they work on the port.
    ctl: std::sync::Arc<std::sync::Mutex<()>>,
    /// The thread that reconnects, while one runs.
    reconnector: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The port's state, by pointer (for a thread of ours).
///
/// # Safety
/// `dev` must be a net_shm port.
unsafe fn port_ptr(dev: *mut sys::rte_eth_dev) -> *mut Port {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { *((*(*dev).data).dev_private as *mut *mut Port) }
}

/// # Safety
/// `dev` must be a net_shm port.
unsafe fn port<'a>(dev: *mut sys::rte_eth_dev) -> &'a mut Port {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { &mut **((*(*dev).data).dev_private as *mut *mut Port) }
}

/// The port's ops: a static table built at compile time; ethdev only
/// reads it.
static OPS: sys::eth_dev_ops = sys::eth_dev_ops {
    dev_configure: Some(dev_configure),
    dev_start: Some(dev_start),
    dev_stop: Some(dev_stop),
    dev_close: Some(dev_close),
    dev_infos_get: Some(dev_infos_get),
    dev_supported_ptypes_get: Some(supported_ptypes),
    link_update: Some(link_update),
    stats_get: Some(stats_get),
    stats_reset: Some(stats_reset),
    xstats_get: Some(xstats_get),
    xstats_get_names: Some(xstats_get_names),
    xstats_reset: Some(stats_reset),
    promiscuous_enable: Some(noop),
    promiscuous_disable: Some(noop),
    allmulticast_enable: Some(noop),
    allmulticast_disable: Some(noop),
    mtu_set: Some(mtu_set),
    rss_hash_conf_get: Some(rss_hash_conf_get),
    rss_hash_update: Some(rss_hash_update),
    reta_query: Some(reta_query),
    reta_update: Some(reta_update),
    vlan_offload_set: Some(vlan_offload_set),
    rx_queue_setup: Some(rx_queue_setup),
    tx_queue_setup: Some(tx_queue_setup),
    rx_queue_release: Some(rx_queue_release),
    tx_queue_release: Some(tx_queue_release),
    rx_queue_intr_enable: Some(intr::rx_queue_intr_enable),
    rx_queue_intr_disable: Some(intr::rx_queue_intr_disable),
    // SAFETY: every other member is an optional callback: all-zero is None.
    ..unsafe { std::mem::zeroed() }
};

fn ops() -> *const sys::eth_dev_ops {
    &OPS
}

/// Devargs of a port: `-a sock:/path,key=value,...`, or
/// `--vdev net_shm0,path=/path,key=value,...`.
#[derive(Debug, PartialEq, Eq)]
struct Devargs {
    /// Hand tx buffers of the rx pool back as fill buffers (default on).
    recycle: bool,
    /// The proxy's socket (vdev only: a `sock:` device is named by it).
    path: Option<String>,
    /// Longest wait between reconnect attempts, ms (0: off).
    reconnect_ms: u32,
}

fn parse_devargs(args: &str) -> Result<Devargs, String> {
    let mut d = Devargs {
        recycle: true,
        path: None,
        reconnect_ms: reconnect::DEFAULT_MS,
    };
    for kv in args.split(',').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("recycle", "0")) => d.recycle = false,
            Some(("recycle", "1")) => d.recycle = true,
            Some(("path", p)) if !p.is_empty() => d.path = Some(p.to_string()),
            Some(("reconnect", ms)) if ms.parse::<u32>().is_ok() => {
                d.reconnect_ms = ms.parse().unwrap_or(reconnect::DEFAULT_MS)
            }
            _ => {
                return Err(format!(
                    "unknown or bad devarg '{kv}' (known: recycle=0|1, reconnect=<ms>, path=<socket> for the vdev)"
                ))
            }
        }
    }
    Ok(d)
}

fn probe(sock: &'static SockDevice) -> Result<(), String> {
    let conn = sock.conn().ok_or("not connected")?;
    let args = parse_devargs(
        &sock
            .devargs()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )?;
    if args.path.is_some() && !sock.is_foreign() {
        return Err(
            "path= names the socket of a net_shm vdev; a sock: device is named by it".into(),
        );
    }
    let l = conn.layout;
    let name = sock.name();
    // Posted buffers plus recycled ones must fit the rx ring with slack.
    let rx_desc_max = l
        .ring_entries
        .saturating_sub(2 * queue::BUDGET_SLACK)
        .min(u16::MAX as u32);
    if conn.info.rx_fill_min > rx_desc_max {
        return Err(format!(
            "the NIC queue needs {} posted buffers, more than a ring of {} allows \
             (use fewer NIC rx descriptors or a bigger ring)",
            conn.info.rx_fill_min, l.ring_entries
        ));
    }
    // SAFETY: ethdev allocation on the init thread; every pointer stored in
    // the port's data lives as long as the port.
    unsafe {
        let dev = sys::rte_eth_dev_allocate(name.as_ptr());
        if dev.is_null() {
            return Err("cannot allocate ethdev (name in use or too many ports)".into());
        }
        let data = (*dev).data;
        let holder = sys::rte_zmalloc(c"net_shm".as_ptr(), std::mem::size_of::<*mut Port>(), 0)
            as *mut *mut Port;
        let mac = sys::rte_zmalloc(c"net_shm_mac".as_ptr(), 6, 0) as *mut sys::rte_ether_addr;
        if holder.is_null() || mac.is_null() {
            sys::rte_eth_dev_release_port(dev);
            return Err("out of memory".into());
        }
        (*mac).addr_bytes = conn.info.mac;
        let p = Box::new(Port {
            sock,
            port_id: (*data).port_id,
            area: conn.buffer_area().ok_or("buffer area outside region")?,
            ring_entries: l.ring_entries,
            rx_desc_max: rx_desc_max as u16,
            // Never above the maximum, even for a tiny ring (clamp needs it).
            rx_desc_min: conn.info.rx_fill_min.max(64).min(rx_desc_max) as u16,
            max_mtu: conn.info.mtu,
            max_rx_pktlen: conn.info.max_rx_pktlen,
            started: false,
            recycle: args.recycle,
            queue_count: l.queue_count,
            budgets: (0..l.queue_count).map(|_| RxBudget::default()).collect(),
            chains: conn.version >= 5,
            rss_hf: conn.info.rss_hf,
            rss_key: conn.info.rss_key.clone(),
            rx_offloads: conn.info.rx_offloads,
            ptypes: conn
                .info
                .ptypes
                .iter()
                .copied()
                .filter(|&t| t != sys::RTE_PTYPE_UNKNOWN)
                .chain([sys::RTE_PTYPE_UNKNOWN])
                .collect(),
            tx_offloads: conn.info.tx_offloads & shm_abi::desc::TX_OFFLOADS_PASSED,
            reta_size: conn.info.reta_size,
            tx_meta: conn.version >= 7,
            reconnect_ms: args.reconnect_ms,
            ctl: Default::default(),
            reconnector: std::sync::Mutex::new(None),
        });
        *holder = Box::into_raw(p);
        (*data).dev_private = holder as *mut c_void;
        (*data).mac_addrs = mac;
        (*data).mtu = conn.info.mtu;
        (*data).numa_node = sys::rte_socket_id() as i32;
        (*data).dev_flags |= sys::RTE_ETH_DEV_INTR_LSC | sys::RTE_ETH_DEV_AUTOFILL_QUEUE_XSTATS;
        (*dev).device = sock.rte_device();
        (*dev).dev_ops = ops();
        (*dev).rx_pkt_burst = Some(queue::rx_burst);
        (*dev).tx_pkt_burst = Some(queue::tx_burst);
        *sock.driver_data.lock().unwrap() = dev as usize;
        sock.set_link_notify(link_changed, dev as *mut c_void);
        sys::rte_eth_dev_probing_finish(dev);
        info!(
            "port {} on {} (NIC {} queue {}{})",
            (*data).port_id,
            sock.path,
            conn.info.nic_name,
            conn.info.nic_queue,
            if l.queue_count > 1 {
                format!(", {} queue pairs", l.queue_count)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn remove(sock: &'static SockDevice) {
    let dev = *sock.driver_data.lock().unwrap() as *mut sys::rte_eth_dev;
    if dev.is_null() {
        return;
    }
    // SAFETY: our port; closing releases it (ethdev frees dev_private).
    unsafe {
        if (*dev).state != sys::RTE_ETH_DEV_UNUSED {
            sys::rte_eth_dev_close((*(*dev).data).port_id);
        }
    }
    *sock.driver_data.lock().unwrap() = 0;
}

fn link_changed(sock: &'static SockDevice, arg: *mut c_void) {
    let dev = arg as *mut sys::rte_eth_dev;
    if *sock.driver_data.lock().unwrap() != dev as usize {
        return;
    }
    // SAFETY: the port is alive (driver_data cleared on removal).
    unsafe {
        link_update(dev, 0);
        sys::rte_eth_dev_callback_process(dev, sys::RTE_ETH_EVENT_INTR_LSC, std::ptr::null_mut());
        if sock.conn().is_some_and(|c| c.proxy_gone()) {
            reconnect::spawn(dev);
        }
    }
}

unsafe extern "C" fn noop(_dev: *mut sys::rte_eth_dev) -> c_int {
    0
}

unsafe extern "C" fn dev_configure(dev: *mut sys::rte_eth_dev) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm dev_configure", -libc::EIO, || {
            let data = (*dev).data;
            let p = port(dev);
            let (nrx, ntx) = ((*data).nb_rx_queues, (*data).nb_tx_queues);
            // Queue pair k has one set of rings, attached by rx queue k's
            // START: tx queue k rides on it, so there are at most as many
            // tx queues as rx queues (l3fwd: a tx queue per lcore).
            if ntx > nrx {
                err!(
                    "port {}: tx queue k goes out with rx queue k here: at most as many tx queues as rx queues (asked {nrx} rx, {ntx} tx)",
                    p.port_id
                );
                return -libc::EINVAL;
            }
            let conf = &(*data).dev_conf;
            if nrx > 1 && conf.rxmode.mq_mode & sys::RTE_ETH_MQ_RX_RSS_FLAG == 0 {
                info!(
                    "port {}: {nrx} rx queues without RSS asked: the proxy's NIC spreads packets over them anyway",
                    p.port_id
                );
            }
            if let Err(e) = rss_conf_check(p, &conf.rx_adv_conf.rss_conf) {
                return e;
            }
            let version = p.sock.conn().map_or(0, |c| c.version);
            if let Err(e) = intr::check_configure(dev, version) {
                return e;
            }
            0
        })
    }
}

/// Whether `rc` asks for RSS the proxy's NIC already does: hash functions
/// it uses (asking for fewer is accepted, with a note: the NIC hashes on
/// what it hashes), and its key or none.
///
/// # Safety
/// `rc.rss_key` is null or points to `rc.rss_key_len` bytes.
unsafe fn rss_conf_check(p: &Port, rc: &sys::rte_eth_rss_conf) -> Result<(), c_int> {
    if rc.rss_hf & !p.rss_hf != 0 {
        err!(
            "port {}: RSS hash functions 0x{:x} asked, the proxy's NIC hashes on 0x{:x} (set at the proxy's add port)",
            p.port_id,
            rc.rss_hf,
            p.rss_hf
        );
        return Err(-libc::ENOTSUP);
    }
    if !rc.rss_key.is_null() && rc.rss_key_len > 0 {
        // SAFETY: the caller's contract.
        let key = unsafe { std::slice::from_raw_parts(rc.rss_key, rc.rss_key_len as usize) };
        if key != p.rss_key.as_slice() {
            err!(
                "port {}: an RSS key of its own cannot be set: the proxy's NIC keeps its key for all its sockets",
                p.port_id
            );
            return Err(-libc::ENOTSUP);
        }
    }
    if rc.rss_hf != 0 && rc.rss_hf != p.rss_hf {
        info!(
            "port {}: RSS on 0x{:x} asked, the proxy's NIC hashes on 0x{:x}",
            p.port_id, rc.rss_hf, p.rss_hf
        );
    }
    Ok(())
}

unsafe extern "C" fn rss_hash_update(
    dev: *mut sys::rte_eth_dev,
    rc: *mut sys::rte_eth_rss_conf,
) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made, and
    // a valid rss_conf for the call.
    unsafe {
        sys::ffi_guard(
            "net_shm rss_hash_update",
            -libc::EIO,
            || match rss_conf_check(port(dev), &*rc) {
                Ok(()) => 0,
                Err(e) => e,
            },
        )
    }
}

unsafe extern "C" fn rss_hash_conf_get(
    dev: *mut sys::rte_eth_dev,
    rc: *mut sys::rte_eth_rss_conf,
) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made, and
    // a valid rss_conf whose key, if not null, has room for hash_key_size
    // bytes (the size dev_infos_get reports, ethdev checks it).
    unsafe {
        sys::ffi_guard("net_shm rss_hash_conf_get", -libc::EIO, || {
            let p = port(dev);
            let rc = &mut *rc;
            rc.rss_hf = p.rss_hf;
            if !rc.rss_key.is_null() && !p.rss_key.is_empty() {
                std::ptr::copy_nonoverlapping(p.rss_key.as_ptr(), rc.rss_key, p.rss_key.len());
                rc.rss_key_len = p.rss_key.len() as u8;
            }
            0
        })
    }
}

/// The NIC's RSS redirection table, as this port's queue indexes (the
/// proxy translates it; it refuses if some entries go to NIC queues this
/// socket does not serve).
unsafe extern "C" fn reta_query(
    dev: *mut sys::rte_eth_dev,
    conf: *mut sys::rte_eth_rss_reta_entry64,
    size: u16,
) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made, from
    // the thread controlling the port; `conf` has size / 64 groups.
    unsafe {
        sys::ffi_guard("net_shm reta_query", -libc::EIO, || {
            reta_op(dev, conf, size, false)
        })
    }
}

/// Accepted when it asks for the table the NIC already has (the proxy's
/// NIC is shared: a guest cannot change it); refused otherwise.
unsafe extern "C" fn reta_update(
    dev: *mut sys::rte_eth_dev,
    conf: *mut sys::rte_eth_rss_reta_entry64,
    size: u16,
) -> c_int {
    // SAFETY: as reta_query.
    unsafe {
        sys::ffi_guard("net_shm reta_update", -libc::EIO, || {
            reta_op(dev, conf, size, true)
        })
    }
}

/// Fills the entries `conf`'s masks select with the proxy's table, or
/// (`update`) checks that they ask for what it has.
///
/// # Safety
/// As the ethdev ops: `dev` is our port, `conf` has `size / 64` groups.
unsafe fn reta_op(
    dev: *mut sys::rte_eth_dev,
    conf: *mut sys::rte_eth_rss_reta_entry64,
    size: u16,
    update: bool,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        let p = port(dev);
        let table = match reta_table(p, size) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let group = sys::RTE_ETH_RETA_GROUP_SIZE as usize;
        for (k, &q) in table.iter().enumerate() {
            let c = &mut *conf.add(k / group);
            if c.mask >> (k % group) & 1 == 0 {
                continue;
            }
            if !update {
                c.reta[k % group] = q;
            } else if c.reta[k % group] != q {
                err!(
                    "port {}: RSS redirection table entry {k} is queue {q} at the proxy's NIC, which this port cannot change (asked {})",
                    p.port_id,
                    c.reta[k % group]
                );
                return -libc::ENOTSUP;
            }
        }
        0
    }
}

/// The redirection table of `size` entries, fetched from the proxy, or
/// the errno (logged).
fn reta_table(p: &Port, size: u16) -> Result<Vec<u16>, c_int> {
    if size != p.reta_size || p.reta_size == 0 {
        err!(
            "port {}: the RSS redirection table has {} entries, asked {size}",
            p.port_id,
            p.reta_size
        );
        return Err(-libc::EINVAL);
    }
    let Some(conn) = p.sock.conn() else {
        return Err(-libc::ENOTCONN);
    };
    conn.reta().map_err(|e| {
        err!("port {}: RSS redirection table: {}", p.port_id, e.text);
        -e.errno
    })
}

/// VLAN stripping on or off (done in rx_burst): taken while the port is
/// stopped, for the queues set up and those to come.
unsafe extern "C" fn vlan_offload_set(dev: *mut sys::rte_eth_dev, mask: c_int) -> c_int {
    // SAFETY: as the other ops; the queues are not polled while the port
    // is stopped (checked first).
    unsafe {
        sys::ffi_guard("net_shm vlan_offload_set", -libc::EIO, || {
            let p = port(dev);
            if mask & sys::RTE_ETH_VLAN_STRIP_MASK as c_int == 0 {
                return 0;
            }
            if p.started {
                err!(
                    "port {}: VLAN stripping is set while the port is stopped (port stop {} first)",
                    p.port_id,
                    p.port_id
                );
                return -libc::EBUSY;
            }
            let data = (*dev).data;
            let on =
                (*data).dev_conf.rxmode.offloads & sys::RTE_ETH_RX_OFFLOAD_VLAN_STRIP as u64 != 0;
            for k in 0..(*data).nb_rx_queues as usize {
                let rxq = *(*data).rx_queues.add(k) as *mut RxQueue;
                if !rxq.is_null() {
                    (*rxq).vlan_strip = on;
                }
            }
            0
        })
    }
}

unsafe extern "C" fn dev_infos_get(
    dev: *mut sys::rte_eth_dev,
    info: *mut sys::rte_eth_dev_info,
) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm dev_infos_get", -libc::EIO, || {
            let p = port(dev);
            let info = &mut *info;
            info.max_rx_queues = p.queue_count;
            info.max_tx_queues = p.queue_count;
            info.flow_type_rss_offloads = p.rss_hf;
            info.hash_key_size = p.rss_key.len() as u8;
            info.max_mac_addrs = 1;
            info.min_mtu = 68;
            info.max_mtu = p.max_mtu;
            info.max_rx_pktlen = p.max_rx_pktlen;
            info.min_rx_bufsize = 128;
            // Like a NIC's rx ring: nb_rx_desc buffers stay posted. The default
            // is what the proxy's NIC queue needs.
            info.rx_desc_lim.nb_max = p.rx_desc_max;
            info.rx_desc_lim.nb_min = p.rx_desc_min;
            info.rx_desc_lim.nb_align = 1;
            info.tx_desc_lim.nb_max = p.ring_entries as u16;
            info.tx_desc_lim.nb_min = 64;
            info.tx_desc_lim.nb_align = 1;
            // Checksums and VLAN insertion as the proxy's NIC has them: it
            // applies them, asked per packet with tx metadata.
            info.tx_offload_capa = sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS as u64 | p.tx_offloads;
            info.tx_queue_offload_capa = info.tx_offload_capa;
            // The results of the proxy's NIC rx offloads arrive as rx metadata.
            // Checksum verdicts always: the NIC's, or computed in rx_burst
            // for an app that enables them; VLAN stripping in rx_burst.
            info.rx_offload_capa = p.rx_offloads
                | sys::RTE_ETH_RX_OFFLOAD_CHECKSUM as u64
                | sys::RTE_ETH_RX_OFFLOAD_VLAN_STRIP as u64;
            info.reta_size = p.reta_size;
            info.speed_capa = sys::RTE_ETH_LINK_SPEED_FIXED;
            info.default_rxportconf.ring_size = p.rx_desc_min;
            info.default_txportconf.ring_size = p.ring_entries as u16;
            info.default_rxportconf.nb_queues = 1;
            info.default_txportconf.nb_queues = 1;
            0
        })
    }
}

/// The packet types the proxy's NIC recognizes (none before protocol v4).
unsafe extern "C" fn supported_ptypes(dev: *mut sys::rte_eth_dev) -> *const u32 {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm supported_ptypes", std::ptr::null(), || {
            let p = port(dev);
            if p.ptypes.len() > 1 {
                p.ptypes.as_ptr()
            } else {
                std::ptr::null()
            }
        })
    }
}

unsafe extern "C" fn dev_start(dev: *mut sys::rte_eth_dev) -> c_int {
    sys::ffi_guard("net_shm dev_start", -libc::EIO, || {
        // SAFETY: ethdev calls us with a configured net_shm port.
        unsafe {
            let p = port(dev);
            let data = (*dev).data;
            let n = (*data).nb_rx_queues;
            let Some(conn) = p.sock.conn() else {
                return -libc::ENOTCONN;
            };
            // Its proxy went away: serve the port again in the same region,
            // with the pools the app has (a restarted proxy).
            if conn.proxy_gone() {
                if let Err(e) = bus_shm::guest::resume(p.sock) {
                    err!("port {}: cannot resume: {e}", p.port_id);
                    return -libc::ENOTCONN;
                }
                reconnect::take_nic(dev, p.sock, p.port_id);
                info!("port {}: resumed with the restarted proxy", p.port_id);
            }
            let ntx = (*data).nb_tx_queues as usize;
            for k in 0..n as usize {
                let rxq = *(*data).rx_queues.add(k) as *mut RxQueue;
                let txq_missing = k < ntx && (*(*data).tx_queues.add(k)).is_null();
                if rxq.is_null() || txq_missing {
                    err!(
                        "port {}: set up rx and tx queue {k} before start",
                        p.port_id
                    );
                    return -libc::EINVAL;
                }
            }
            if intr::wanted(dev) {
                if let Err(e) = intr::install(dev) {
                    return e;
                }
            }
            // Each queue pair attaches to its NIC queue in turn; if one
            // fails, those before it are stopped again.
            if let Err(k) = reconnect::start_queues(dev, conn) {
                p.started = k > 0;
                dev_stop(dev);
                return -libc::EIO;
            }
            // A pause a reconnect left (the app stopped the port meanwhile).
            reconnect::unpause(p);
            for k in 0..n as usize {
                *(*data).rx_queue_state.as_mut_ptr().add(k) =
                    sys::RTE_ETH_QUEUE_STATE_STARTED as u8;
                if k >= ntx {
                    continue;
                }
                // Tx buffers of the rx pool may now go back as fill buffers.
                if p.recycle {
                    let rxq = *(*data).rx_queues.add(k) as *mut RxQueue;
                    let txq = *(*data).tx_queues.add(k) as *mut TxQueue;
                    (*txq).recycle_pool = (*rxq).mp;
                }
                *(*data).tx_queue_state.as_mut_ptr().add(k) =
                    sys::RTE_ETH_QUEUE_STATE_STARTED as u8;
            }
            p.started = true;
            link_update(dev, 0);
            0
        }
    })
}

unsafe extern "C" fn dev_stop(dev: *mut sys::rte_eth_dev) -> c_int {
    sys::ffi_guard("net_shm dev_stop", -libc::EIO, || {
        // SAFETY: ethdev calls us with a net_shm port; the queues are not
        // polled while the port stops (ethdev contract).
        unsafe {
            // Not while a reconnect works on the port.
            let ctl = (*port_ptr(dev)).ctl.clone();
            let _ctl = ctl.lock().unwrap_or_else(|e| e.into_inner());
            let p = port(dev);
            let data = (*dev).data;
            if p.started {
                if let Some(conn) = p.sock.conn() {
                    if !conn.proxy_gone() {
                        if let Err(e) = conn.stop() {
                            err!("port {}: stop: {e}", p.port_id);
                        }
                    }
                }
            }
            p.started = false;
            for k in 0..(*data).nb_rx_queues as usize {
                let rxq = *(*data).rx_queues.add(k) as *mut RxQueue;
                if !rxq.is_null() {
                    (*rxq).drain();
                }
                *(*data).rx_queue_state.as_mut_ptr().add(k) =
                    sys::RTE_ETH_QUEUE_STATE_STOPPED as u8;
            }
            for k in 0..(*data).nb_tx_queues as usize {
                let txq = *(*data).tx_queues.add(k) as *mut TxQueue;
                if !txq.is_null() {
                    (*txq).recycle_pool = std::ptr::null_mut();
                    (*txq).drain();
                }
                *(*data).tx_queue_state.as_mut_ptr().add(k) =
                    sys::RTE_ETH_QUEUE_STATE_STOPPED as u8;
            }
            // A proxy that went away kept what it held: take it back.
            if p.sock.conn().is_none_or(|c| c.proxy_gone()) {
                reconnect::take_back(dev);
            }
            sys::dpdk_sys_eth_linkstatus_set(dev, 0, 0);
            0
        }
    })
}

unsafe extern "C" fn dev_close(dev: *mut sys::rte_eth_dev) -> c_int {
    sys::ffi_guard("net_shm dev_close", -libc::EIO, || {
        // SAFETY: closing our port; ethdev releases it after we return.
        unsafe {
            let data = (*dev).data;
            if port(dev).started {
                dev_stop(dev);
            }
            reconnect::forget(dev);
            for k in 0..(*data).nb_rx_queues {
                rx_queue_release(dev, k);
            }
            for k in 0..(*data).nb_tx_queues {
                tx_queue_release(dev, k);
            }
            intr::uninstall(dev);
            let holder = (*data).dev_private as *mut *mut Port;
            let p = Box::from_raw(*holder);
            *p.sock.driver_data.lock().unwrap() = 0;
            *holder = std::ptr::null_mut();
            0
        }
    })
}

unsafe extern "C" fn link_update(dev: *mut sys::rte_eth_dev, _wait: c_int) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm link_update", -libc::EIO, || {
            let p = port(dev);
            let (up, speed) = match p.sock.conn() {
                Some(c) => (p.started && c.link_up() && !c.proxy_gone(), c.link_speed()),
                None => (false, 0),
            };
            sys::dpdk_sys_eth_linkstatus_set(dev, up as c_int, speed)
        })
    }
}

unsafe extern "C" fn mtu_set(dev: *mut sys::rte_eth_dev, mtu: u16) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm mtu_set", -libc::EIO, || {
            let p = port(dev);
            if mtu > p.max_mtu {
                err!(
                    "port {}: MTU {mtu} above the NIC's {} (set by the proxy)",
                    p.port_id,
                    p.max_mtu
                );
                return -libc::EINVAL;
            }
            0
        })
    }
}

/// The port's rx and tx queues that are set up.
///
/// # Safety
/// `dev` must be a net_shm port; its queue slots are null or hold queues
/// made by this driver's queue setup.
unsafe fn queues(dev: *mut sys::rte_eth_dev) -> (Vec<&'static RxQueue>, Vec<&'static TxQueue>) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let data = (*dev).data;
        let set_up = |slots: *mut *mut c_void, n: u16| -> Vec<*const c_void> {
            if slots.is_null() {
                return Vec::new();
            }
            (0..n as usize)
                .map(|k| *slots.add(k) as *const c_void)
                .filter(|q| !q.is_null())
                .collect()
        };
        let rx = set_up((*data).rx_queues, (*data).nb_rx_queues)
            .into_iter()
            .map(|q| &*(q as *const RxQueue))
            .collect();
        let tx = set_up((*data).tx_queues, (*data).nb_tx_queues)
            .into_iter()
            .map(|q| &*(q as *const TxQueue))
            .collect();
        (rx, tx)
    }
}

unsafe extern "C" fn stats_get(dev: *mut sys::rte_eth_dev, s: *mut sys::rte_eth_stats) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm stats_get", -libc::EIO, || {
            let (rx, tx) = queues(dev);
            let s = &mut *s;
            let per_queue = s.q_ipackets.len();
            s.rx_nombuf = 0;
            for (k, q) in rx.iter().enumerate() {
                s.ipackets += q.packets.get();
                s.ibytes += q.bytes.get();
                s.rx_nombuf += q.nombuf.get();
                s.ierrors += q.bad_desc.get() + q.chain_drops.get();
                if k < per_queue {
                    s.q_ipackets[k] = q.packets.get();
                    s.q_ibytes[k] = q.bytes.get();
                }
            }
            for (k, q) in tx.iter().enumerate() {
                // What the proxy did not send (NIC full, rejected) is an
                // error, not a sent packet; so is a frame too long.
                let unsent = q.not_sent.get() + q.rejected.get();
                let packets = q.packets.get().saturating_sub(unsent);
                let bytes = q.bytes.get().saturating_sub(q.unsent_bytes.get());
                s.opackets += packets;
                s.obytes += bytes;
                s.oerrors += unsent + q.oversize.get();
                if k < per_queue {
                    s.q_opackets[k] = packets;
                    s.q_obytes[k] = bytes;
                }
            }
            0
        })
    }
}

unsafe extern "C" fn stats_reset(dev: *mut sys::rte_eth_dev) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm stats_reset", -libc::EIO, || {
            let (rx, tx) = queues(dev);
            for q in rx {
                for c in [
                    &q.packets,
                    &q.bytes,
                    &q.nombuf,
                    &q.bad_desc,
                    &q.empty_returns,
                    &q.stop_discards,
                    &q.chain_drops,
                ] {
                    c.reset();
                }
                if let Some(i) = &q.intr {
                    i.wakeups.reset();
                }
            }
            for q in tx {
                for c in [
                    &q.packets,
                    &q.bytes,
                    &q.copies,
                    &q.not_sent,
                    &q.rejected,
                    &q.unsent_bytes,
                    &q.oversize,
                    &q.bad_desc,
                    &q.recycled,
                    &q.offloaded,
                ] {
                    c.reset();
                }
            }
            0
        })
    }
}

const XSTATS: [&str; 11] = [
    "rx_discarded_at_stop",
    "tx_recycled",
    "rx_empty_returns",
    "rx_bad_descriptors",
    "tx_copies",
    "tx_not_sent",
    "tx_rejected",
    "tx_oversize",
    "rx_chain_drops",
    "tx_offloaded",
    "rx_intr_wakeups",
];

unsafe extern "C" fn xstats_get_names(
    _dev: *mut sys::rte_eth_dev,
    names: *mut sys::rte_eth_xstat_name,
    size: u32,
) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm xstats_get_names", -libc::EIO, || {
            if !names.is_null() {
                for (i, n) in XSTATS.iter().enumerate().take(size as usize) {
                    let dst = &mut (*names.add(i)).name;
                    dst.fill(0);
                    for (j, b) in n.bytes().enumerate() {
                        dst[j] = b as _;
                    }
                }
            }
            XSTATS.len() as c_int
        })
    }
}

unsafe extern "C" fn xstats_get(
    dev: *mut sys::rte_eth_dev,
    xs: *mut sys::rte_eth_xstat,
    n: u32,
) -> c_int {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm xstats_get", -libc::EIO, || {
            if (n as usize) < XSTATS.len() || xs.is_null() {
                return XSTATS.len() as c_int;
            }
            let (rx, tx) = queues(dev);
            let rx_sum = |f: fn(&RxQueue) -> u64| rx.iter().map(|q| f(q)).sum::<u64>();
            let tx_sum = |f: fn(&TxQueue) -> u64| tx.iter().map(|q| f(q)).sum::<u64>();
            let values = [
                rx_sum(|q| q.stop_discards.get()),
                tx_sum(|q| q.recycled.get()),
                rx_sum(|q| q.empty_returns.get()),
                rx_sum(|q| q.bad_desc.get()) + tx_sum(|q| q.bad_desc.get()),
                tx_sum(|q| q.copies.get()),
                tx_sum(|q| q.not_sent.get()),
                tx_sum(|q| q.rejected.get()),
                tx_sum(|q| q.oversize.get()),
                rx_sum(|q| q.chain_drops.get()),
                tx_sum(|q| q.offloaded.get()),
                rx_sum(|q| q.intr.as_ref().map_or(0, |i| i.wakeups.get())),
            ];
            for (i, v) in values.iter().enumerate() {
                (*xs.add(i)).id = i as u64;
                (*xs.add(i)).value = *v;
            }
            XSTATS.len() as c_int
        })
    }
}

/// The port and connection a queue setup applies to.
///
/// # Safety
/// `dev` must be a net_shm port.
unsafe fn queue_target<'a>(
    dev: *mut sys::rte_eth_dev,
    qid: u16,
) -> Result<(&'a mut Port, &'static Conn), c_int> {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let p = port(dev);
        let conn = p.sock.conn().ok_or(-libc::ENOTCONN)?;
        if qid >= p.queue_count {
            return Err(-libc::EINVAL);
        }
        Ok((p, conn))
    }
}

unsafe extern "C" fn rx_queue_setup(
    dev: *mut sys::rte_eth_dev,
    qid: u16,
    nb_desc: u16,
    _socket: u32,
    conf: *const sys::rte_eth_rxconf,
    mp: *mut sys::rte_mempool,
) -> c_int {
    sys::ffi_guard("net_shm rx_queue_setup", -libc::EIO, || {
        // SAFETY: ethdev contract: valid port, stopped, valid pool.
        unsafe {
            let (p, conn) = match queue_target(dev, qid) {
                Ok(t) => t,
                Err(e) => return e,
            };
            // The pool's buffers must be in the shared area, or the proxy
            // cannot receive into them.
            let m = sys::dpdk_sys_pktmbuf_alloc(mp);
            if m.is_null() {
                err!("port {}: rx pool is empty", p.port_id);
                return -libc::ENOMEM;
            }
            let buf = (*m).buf_addr as usize;
            // The area as it is now: it may have grown for this pool.
            let area = conn.buffer_area().unwrap_or(p.area);
            let inside = area
                .offset_of(buf as *const u8, (*m).buf_len as u64)
                .is_some();
            let extent = bus_shm::guest::find_extent(buf);
            let headroom = (*m).data_off;
            sys::dpdk_sys_pktmbuf_free(m);
            let (true, Some(extent)) = (inside, extent) else {
                err!(
                    "port {}: rx mempool is not in the shared area; create it with rte_pktmbuf_pool_create() \
                     (the sock bus makes shared_mem the platform mbuf ops) and do not force other ops",
                    p.port_id
                );
                return -libc::EINVAL;
            };
            // A frame of the NIC's must fit one buffer, unless the app takes
            // chains and the NIC scatters.
            let room = sys::dpdk_sys_pktmbuf_data_room_size(mp) as u32;
            let scatter = ((*(*dev).data).dev_conf.rxmode.offloads
                | conf.as_ref().map_or(0, |c| c.offloads))
                & sys::RTE_ETH_RX_OFFLOAD_SCATTER as u64
                != 0;
            let nic_scatter = p.rx_offloads & sys::RTE_ETH_RX_OFFLOAD_SCATTER as u64 != 0;
            if room < headroom as u32 + p.max_rx_pktlen && !(scatter && nic_scatter && p.chains) {
                err!(
                    "port {} rx queue {qid}: mbufs of {room} bytes cannot hold the NIC's {}-byte frames after {headroom} bytes of headroom; {}",
                    p.port_id,
                    p.max_rx_pktlen,
                    if nic_scatter && p.chains {
                        "enable rx scatter (testpmd --enable-scatter) or use larger mbufs"
                    } else {
                        "the proxy's NIC does not scatter: use larger mbufs"
                    }
                );
                return -libc::EINVAL;
            }
            rx_queue_release(dev, qid);
            let l = conn.layout;
            let (Some(rings), Some(region)) = (l.queue(qid), conn.region()) else {
                return -libc::EINVAL;
            };
            let (Ok(fill), Ok(rx)) = (
                region.producer(rings.fill, l.ring_entries),
                region.consumer(rings.rx, l.ring_entries),
            ) else {
                return -libc::EINVAL;
            };
            // Rx interrupts: the queue's wake socket and control line.
            let intr = if intr::wanted(dev) {
                let made = region
                    .queue_ctl(&l, qid)
                    .map_err(|e| e.to_string())
                    .and_then(|ctl| intr::RxIntr::new(ctl).map_err(|e| e.to_string()));
                match made {
                    Ok(i) => Some(i),
                    Err(e) => {
                        err!("port {} rx queue {qid}: rx interrupt: {e}", p.port_id);
                        return -libc::ENOMEM;
                    }
                }
            } else {
                None
            };
            let q = Box::new(RxQueue {
                fill,
                rx,
                mp,
                extent,
                area,
                port_id: p.port_id,
                headroom,
                // As the proxy decides it, from the same HELLO_ACK.
                rx_meta: conn.info.rx_meta(),
                chains: p.chains,
                scatter: {
                    let asked = (*(*dev).data).dev_conf.rxmode.offloads
                        | conf.as_ref().map_or(0, |c| c.offloads);
                    asked & sys::RTE_ETH_RX_OFFLOAD_SCATTER as u64 != 0
                },
                chain_head: std::ptr::null_mut(),
                chain_tail: std::ptr::null_mut(),
                chain_skip: false,
                chain_drops: Default::default(),
                sw_cksum: {
                    let asked = (*(*dev).data).dev_conf.rxmode.offloads
                        | conf.as_ref().map_or(0, |c| c.offloads);
                    let sw = asked & sys::RTE_ETH_RX_OFFLOAD_CHECKSUM as u64 & !p.rx_offloads;
                    if sw != 0 {
                        info!(
                            "port {} rx queue {qid}: checksums verified in software (the proxy's NIC does not: offloads 0x{sw:x})",
                            p.port_id
                        );
                    }
                    sw != 0
                },
                vlan_strip: {
                    let asked = (*(*dev).data).dev_conf.rxmode.offloads
                        | conf.as_ref().map_or(0, |c| c.offloads);
                    asked & sys::RTE_ETH_RX_OFFLOAD_VLAN_STRIP as u64 != 0
                },
                budget: &p.budgets[qid as usize],
                // ethdev checked nb_desc against the limits in dev_info.
                fill_target: nb_desc.clamp(p.rx_desc_min, p.rx_desc_max) as u32,
                broken: false,
                intr,
                packets: Default::default(),
                bytes: Default::default(),
                nombuf: Default::default(),
                stop_discards: Default::default(),
                empty_returns: Default::default(),
                bad_desc: Default::default(),
            });
            *(*(*dev).data).rx_queues.add(qid as usize) = Box::into_raw(q) as *mut c_void;
            0
        }
    })
}

unsafe extern "C" fn tx_queue_setup(
    dev: *mut sys::rte_eth_dev,
    qid: u16,
    _nb_desc: u16,
    socket: u32,
    conf: *const sys::rte_eth_txconf,
) -> c_int {
    sys::ffi_guard("net_shm tx_queue_setup", -libc::EIO, || {
        // SAFETY: ethdev contract: valid, stopped port.
        unsafe {
            let (p, conn) = match queue_target(dev, qid) {
                Ok(t) => t,
                Err(e) => return e,
            };
            tx_queue_release(dev, qid);
            let l = conn.layout;
            let (Some(rings), Some(region)) = (l.queue(qid), conn.region()) else {
                return -libc::EINVAL;
            };
            let (Ok(tx), Ok(done)) = (
                region.producer(rings.tx, l.ring_entries),
                region.consumer(rings.txdone, l.ring_entries),
            ) else {
                return -libc::EINVAL;
            };
            // Packets that cannot go zero-copy (chains, clones, foreign
            // pools) are copied into buffers of this small shared pool.
            let name = std::ffi::CString::new(format!("net_shm_tx{}", p.port_id)).unwrap();
            let mut copy_pool = sys::rte_mempool_lookup(name.as_ptr());
            if copy_pool.is_null() {
                copy_pool = sys::rte_pktmbuf_pool_create(
                    name.as_ptr(),
                    511,
                    0,
                    0,
                    (p.max_rx_pktlen as u16)
                        .saturating_add(sys::RTE_PKTMBUF_HEADROOM as u16)
                        .max(sys::RTE_MBUF_DEFAULT_BUF_SIZE),
                    socket as i32,
                );
            }
            if copy_pool.is_null() {
                info!(
                    "port {}: no tx copy pool ({}); chained mbufs will not be sent",
                    p.port_id,
                    sys::strerror(sys::rte_errno())
                );
            }
            // The offloads the app enabled that the NIC applies.
            let asked =
                (*(*dev).data).dev_conf.txmode.offloads | conf.as_ref().map_or(0, |c| c.offloads);
            let meta_flags = shm_abi::desc::tx_meta_flags(asked & p.tx_offloads);
            if meta_flags != 0 {
                info!(
                    "port {} tx queue {qid}: offloads 0x{:x} applied by the proxy's NIC",
                    p.port_id,
                    asked & p.tx_offloads
                );
            }
            let q = Box::new(TxQueue {
                tx,
                done,
                copy_pool,
                // As it is now (the copy pool may have grown it).
                area: conn.buffer_area().unwrap_or(p.area),
                outstanding: 0,
                limit: l.ring_entries,
                recycle_pool: std::ptr::null_mut(),
                budget: &p.budgets[qid as usize],
                kick: None,
                broken: false,
                packets: Default::default(),
                bytes: Default::default(),
                copies: Default::default(),
                recycled: Default::default(),
                not_sent: Default::default(),
                rejected: Default::default(),
                unsent_bytes: Default::default(),
                oversize: Default::default(),
                chains: p.chains,
                held: queue::held_mark(p.port_id),
                data_off_limit: if p.tx_meta {
                    shm_abi::desc::TX_META
                } else if p.chains {
                    shm_abi::desc::SEG_MORE
                } else {
                    shm_abi::desc::TX_RECYCLE
                },
                meta_flags,
                slow_flags: queue::NOT_ZERO_COPY | (meta_flags & shm_abi::desc::TX_ACTION_FLAGS),
                offloaded: Default::default(),
                max_frame: p.max_rx_pktlen.max(64),
                bad_desc: Default::default(),
            });
            *(*(*dev).data).tx_queues.add(qid as usize) = Box::into_raw(q) as *mut c_void;
            0
        }
    })
}

unsafe extern "C" fn rx_queue_release(dev: *mut sys::rte_eth_dev, qid: u16) {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm rx_queue_release", (), || {
            release_queue((*(*dev).data).rx_queues, qid, RxQueue::drain);
        })
    }
}

unsafe extern "C" fn tx_queue_release(dev: *mut sys::rte_eth_dev, qid: u16) {
    // SAFETY: ethdev calls its ops only with a port this driver made
    // (dev_private holds our Port), from the thread controlling the port;
    // the pointers it passes are valid for the call.
    unsafe {
        sys::ffi_guard("net_shm tx_queue_release", (), || {
            release_queue((*(*dev).data).tx_queues, qid, TxQueue::drain);
        })
    }
}

/// Drains and frees queue `qid` of the ethdev queue array `queues`, if it
/// is set up, and clears its slot.
///
/// # Safety
/// `queues` is null or the device's rx or tx queue array, with more than
/// `qid` slots; each slot is null or holds a `Q` made by `Box::into_raw`
/// at queue setup.
unsafe fn release_queue<Q>(queues: *mut *mut c_void, qid: u16, drain: fn(&mut Q)) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        if queues.is_null() {
            return;
        }
        let slot = queues.add(qid as usize);
        let q = *slot as *mut Q;
        if !q.is_null() {
            let mut q = Box::from_raw(q);
            drain(&mut q);
            *slot = std::ptr::null_mut();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devargs() {
        assert_eq!(
            parse_devargs("").unwrap(),
            Devargs {
                recycle: true,
                path: None,
                reconnect_ms: reconnect::DEFAULT_MS,
            }
        );
        assert_eq!(
            parse_devargs("recycle=0,path=/run/a.sock,reconnect=0").unwrap(),
            Devargs {
                recycle: false,
                path: Some("/run/a.sock".into()),
                reconnect_ms: 0,
            }
        );
        assert!(parse_devargs("reconnect=soon").is_err());
        assert!(parse_devargs("recycle=maybe")
            .unwrap_err()
            .contains("recycle=0|1"));
        assert!(parse_devargs("bogus=1").is_err());
    }
}
