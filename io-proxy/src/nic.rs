//! NIC ports owned by the proxy: configuration with RSS, and swapping the
//! mempool behind one rx queue when a guest attaches or leaves.

use crate::error::ProxyError;
use crate::log;
use crate::stats::SocketStats;
use dpdk_sys as sys;
use shm_abi::msg::MAX_PTYPES;
use std::sync::Arc;

/// Descriptor counts when neither the command nor the PMD names one (the
/// ethdev fallback).
const NB_RXD_FALLBACK: u16 = sys::RTE_ETH_DEV_FALLBACK_RX_RINGSIZE as u16;
const NB_TXD_FALLBACK: u16 = sys::RTE_ETH_DEV_FALLBACK_TX_RINGSIZE as u16;

pub struct NicPort {
    pub id: u16,
    pub name: String,
    pub driver: String,
    pub nb_queues: u16,
    pub nb_rxd: u16,
    /// Buffers each rx queue keeps posted, as counted in its pool right
    /// after start: a NIC's descriptor ring; none for a NIC that takes a
    /// buffer only as a packet arrives (net_null, net_af_packet, net_pcap).
    pub rx_held: u32,
    pub socket: i32,
    pub mac: [u8; 6],
    pub mtu: u16,
    pub max_rx_pktlen: u32,
    pub rss: bool,
    /// The NIC scatters frames over several buffers (rx offload SCATTER).
    pub scatter: bool,
    /// The RSS hash functions in use and the key (empty if the PMD does
    /// not tell), for guests that spread over several queues.
    pub rss_hf: u64,
    pub rss_key: Vec<u8>,
    /// The PMD can set up an rx queue while the port runs.
    pub runtime_rx_setup: bool,
    /// Rx offloads turned on whose results go to the guests as rx
    /// metadata (checksum status, RSS hash).
    pub rx_offloads: u64,
    /// Packet types the PMD recognizes (`rte_eth_dev_get_supported_ptypes`).
    pub ptypes: Vec<u32>,
    /// Tx offloads turned on that guests may ask for per packet
    /// (checksums, VLAN insertion: `shm_abi::desc::TX_OFFLOADS_PASSED`).
    pub tx_offloads: u64,
    /// Entries of the RSS redirection table (0: no RSS, or the PMD cannot
    /// show it).
    pub reta_size: u16,
    /// Pool of the rx queues that have no guest (their packets are dropped),
    /// its buffers' data room (a frame of the MTU fits), and its size.
    pub idle_pool: *mut sys::rte_mempool,
    pub idle_room: u16,
    idle_count: u32,
    /// Per-queue counters, shared with the sockets serving them.
    pub queue_stats: Vec<Arc<SocketStats>>,
}

// SAFETY: the pool pointer is only used by the control thread.
unsafe impl Send for NicPort {}

fn check(what: &str, r: i32) -> Result<(), ProxyError> {
    if r < 0 {
        Err(ProxyError::dpdk(what, r))
    } else {
        Ok(())
    }
}

/// A C string owned by DPDK, or "" for NULL.
pub(crate) fn cstr_field(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: DPDK returns NUL-terminated names.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

impl NicPort {
    /// Configures `id` with `nb_queues` rx/tx queue pairs, RSS over them when
    /// the device supports it, and starts it.
    /// `mtu` 0 keeps the PMD's. `intr`: with rx interrupts (for idle
    /// lcores to wait on; a PMD without them fails at configure or start,
    /// or later when a lcore registers them).
    pub fn add(
        id: u16,
        nb_queues: u16,
        rxd: u16,
        mtu: u16,
        intr: bool,
    ) -> Result<NicPort, ProxyError> {
        // SAFETY: ethdev control calls on the control thread; all pointers
        // are to locals that outlive the calls.
        unsafe {
            if sys::rte_eth_dev_is_valid_port(id) == 0 {
                return Err(ProxyError::NotFound(format!(
                    "no port {id} (ports: {})",
                    sys::rte_eth_dev_count_avail()
                )));
            }
            let mut info: sys::rte_eth_dev_info = std::mem::zeroed();
            check("dev_info", sys::rte_eth_dev_info_get(id, &mut info))?;
            if nb_queues == 0 || nb_queues > info.max_rx_queues || nb_queues > info.max_tx_queues {
                return Err(ProxyError::Unsupported(format!(
                    "port {id} supports at most {} rx / {} tx queues, asked {nb_queues}",
                    info.max_rx_queues, info.max_tx_queues
                )));
            }
            let mut conf: sys::rte_eth_conf = std::mem::zeroed();
            let wanted = sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_TCP | sys::RTE_ETH_RSS_UDP;
            let rss_hf = info.flow_type_rss_offloads & wanted;
            let rss = nb_queues > 1 && rss_hf != 0;
            if rss {
                conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            }
            // What the NIC can tell about each packet, for the guests.
            let mut wanted_rx = sys::RTE_ETH_RX_OFFLOAD_CHECKSUM as u64;
            if rss {
                wanted_rx |= sys::RTE_ETH_RX_OFFLOAD_RSS_HASH as u64;
            }
            // Scatter where the NIC has it: a frame longer than a guest's
            // buffer then arrives in several (for guests that take chains).
            wanted_rx |= sys::RTE_ETH_RX_OFFLOAD_SCATTER as u64;
            conf.rxmode.offloads = info.rx_offload_capa & wanted_rx;
            // On tx: chains (guests send them), and the offloads guests may
            // ask for per packet. A NIC applies them only to packets that
            // ask, though some pick a slower tx path once any is on.
            conf.txmode.offloads = info.tx_offload_capa
                & (shm_abi::desc::TX_OFFLOADS_PASSED | sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS as u64);
            // The MTU at configure too: a PMD without mtu_set (net_pcap)
            // takes it only there.
            conf.rxmode.mtu = mtu as u32;
            if intr {
                conf.intr_conf.set_rxq(1);
            }
            let mut name = [0 as std::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
            sys::rte_eth_dev_get_name_by_port(id, name.as_mut_ptr());
            let socket = sys::rte_eth_dev_socket_id(id);
            let socket = if socket < 0 {
                sys::rte_socket_id() as i32
            } else {
                socket
            };
            let what = if mtu == 0 {
                "configure".to_string()
            } else {
                format!(
                    "configure with MTU {mtu} (the device takes {}..{}, frames up to {} bytes)",
                    info.min_mtu, info.max_mtu, info.max_rx_pktlen
                )
            };
            check(
                &what,
                sys::rte_eth_dev_configure(id, nb_queues, nb_queues, &conf),
            )?;
            // The PMD's preferred ring sizes, as an ethdev app gets them by
            // asking for 0: the guest keeps as many buffers posted.
            let or = |v: u16, d: u16| if v == 0 { d } else { v };
            let mut nb_rxd = or(rxd, or(info.default_rxportconf.ring_size, NB_RXD_FALLBACK));
            let mut nb_txd = or(info.default_txportconf.ring_size, NB_TXD_FALLBACK);
            check(
                "adjust descriptors",
                sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rxd, &mut nb_txd),
            )?;
            if mtu != 0 {
                set_mtu_checked(id, mtu, &info)?;
            }
            let mut cur_mtu = 1500u16;
            sys::rte_eth_dev_get_mtu(id, &mut cur_mtu);
            let idle_count = (nb_queues as u32 * nb_rxd as u32 + 512).next_power_of_two() - 1;
            let idle_room = room_for(cur_mtu);
            let idle_pool = idle_pool(id, idle_count, idle_room, socket)?;
            for q in 0..nb_queues {
                check(
                    "rx queue setup",
                    sys::rte_eth_rx_queue_setup(
                        id,
                        q,
                        nb_rxd,
                        socket as u32,
                        std::ptr::null(),
                        idle_pool,
                    ),
                )?;
                check(
                    "tx queue setup",
                    sys::rte_eth_tx_queue_setup(id, q, nb_txd, socket as u32, std::ptr::null()),
                )?;
            }
            check("start", sys::rte_eth_dev_start(id))?;
            // Nothing polls the port yet: what is out of the pool, the
            // queues hold.
            let rx_held = (sys::rte_mempool_in_use_count(idle_pool) as u32)
                .div_ceil(nb_queues as u32)
                .min(nb_rxd as u32);
            let (mut rss_hf, mut rss_key) = (0, Vec::new());
            if rss {
                let mut key = [0u8; shm_abi::msg::MAX_RSS_KEY];
                let mut rc: sys::rte_eth_rss_conf = std::mem::zeroed();
                rc.rss_key = key.as_mut_ptr();
                rc.rss_key_len = key.len() as u8;
                // A PMD whose key is longer than ours fails: hf alone then.
                if sys::rte_eth_dev_rss_hash_conf_get(id, &mut rc) == 0 {
                    rss_key = key[..(rc.rss_key_len as usize).min(key.len())].to_vec();
                } else {
                    rc = std::mem::zeroed();
                    sys::rte_eth_dev_rss_hash_conf_get(id, &mut rc);
                }
                rss_hf = if rc.rss_hf != 0 {
                    rc.rss_hf
                } else {
                    conf.rx_adv_conf.rss_conf.rss_hf
                };
            }
            if rss {
                spread_reta(id, info.reta_size, nb_queues);
            }
            let reta_size = if rss && reta_of(id, info.reta_size).is_ok() {
                info.reta_size
            } else {
                0
            };
            let _ = sys::rte_eth_promiscuous_enable(id);
            let mut mac: sys::rte_ether_addr = std::mem::zeroed();
            sys::rte_eth_macaddr_get(id, &mut mac);
            let mut mtu = 1500u16;
            sys::rte_eth_dev_get_mtu(id, &mut mtu);
            let mut ptypes = [0u32; MAX_PTYPES];
            let n = sys::rte_eth_dev_get_supported_ptypes(
                id,
                sys::RTE_PTYPE_ALL_MASK,
                ptypes.as_mut_ptr(),
                MAX_PTYPES as i32,
            );
            let ptypes: Vec<u32> = ptypes[..(n.max(0) as usize).min(MAX_PTYPES)]
                .iter()
                .copied()
                .filter(|&t| t != sys::RTE_PTYPE_UNKNOWN)
                .collect();
            Ok(NicPort {
                id,
                name: cstr_field(name.as_ptr()),
                driver: cstr_field(info.driver_name),
                nb_queues,
                nb_rxd,
                rx_held,
                socket,
                mac: mac.addr_bytes,
                mtu,
                max_rx_pktlen: frame_for(mtu).min(info.max_rx_pktlen.max(1518)),
                rss,
                scatter: conf.rxmode.offloads & sys::RTE_ETH_RX_OFFLOAD_SCATTER as u64 != 0
                    || CHAINS_ALWAYS.contains(&cstr_field(info.driver_name).as_str()),
                rss_hf,
                rss_key,
                runtime_rx_setup: info.dev_capa
                    & sys::RTE_ETH_DEV_CAPA_RUNTIME_RX_QUEUE_SETUP as u64
                    != 0,
                rx_offloads: conf.rxmode.offloads,
                ptypes,
                tx_offloads: conf.txmode.offloads & shm_abi::desc::TX_OFFLOADS_PASSED,
                reta_size,
                idle_pool,
                idle_room,
                idle_count,
                queue_stats: (0..nb_queues)
                    .map(|_| Arc::new(SocketStats::default()))
                    .collect(),
            })
        }
    }

    /// Sets the NIC's MTU (no guest may be attached: control checks), with
    /// an idle pool whose buffers hold a frame of it.
    ///
    /// # Safety
    /// The datapath is paused.
    pub unsafe fn set_mtu(&mut self, mtu: u16) -> Result<(), ProxyError> {
        let id = self.id;
        // SAFETY: control-thread ethdev calls with the datapath paused and
        // no guest pool behind any queue; the old idle pool is freed only
        // after the port was set up again without it.
        unsafe {
            let mut info: sys::rte_eth_dev_info = std::mem::zeroed();
            check("dev_info", sys::rte_eth_dev_info_get(id, &mut info))?;
            set_mtu_checked(id, mtu, &info)?;
            let room = room_for(mtu);
            if room > self.idle_room {
                let pool = idle_pool(id, self.idle_count, room, self.socket)?;
                check("port stop", sys::rte_eth_dev_stop(id))?;
                let mut r = 0;
                for q in 0..self.nb_queues {
                    let e = sys::rte_eth_rx_queue_setup(
                        id,
                        q,
                        self.nb_rxd,
                        self.socket as u32,
                        std::ptr::null(),
                        pool,
                    );
                    r = if r == 0 { e } else { r };
                }
                let started = sys::rte_eth_dev_start(id);
                check("rx queue setup", r)?;
                check("port start", started)?;
                sys::rte_mempool_free(self.idle_pool);
                self.idle_pool = pool;
                self.idle_room = room;
            }
            let mut cur = mtu;
            sys::rte_eth_dev_get_mtu(id, &mut cur);
            self.mtu = cur;
            self.max_rx_pktlen = frame_for(cur).min(info.max_rx_pktlen.max(1518));
            Ok(())
        }
    }

    /// Puts the idle pool back behind rx queues `qs` with one stop and
    /// start of the port: the NIC hands back every buffer those queues
    /// held (of a guest's pools) before it starts again.
    ///
    /// # Safety
    /// The datapath is paused.
    pub unsafe fn set_idle(&self, qs: &[u16]) -> Result<(), ProxyError> {
        let id = self.id;
        // SAFETY: control-thread ethdev calls with the datapath paused; the
        // idle pool lives as long as the port.
        unsafe {
            check("port stop", sys::rte_eth_dev_stop(id))?;
            let mut r = 0;
            for &q in qs {
                let e = sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    self.nb_rxd,
                    self.socket as u32,
                    std::ptr::null(),
                    self.idle_pool,
                );
                if r == 0 {
                    r = e;
                }
            }
            let started = sys::rte_eth_dev_start(id);
            check("rx queue setup", r)?;
            check("port start", started)
        }
    }

    /// Puts `mp` behind rx queue `q`: with runtime queue setup if the PMD has
    /// it, else by a short stop/start of the port (other queues keep their
    /// pools and resume at once).
    ///
    /// # Safety
    /// The datapath is paused; `mp` is a live mbuf pool that stays alive
    /// while the queue uses it (until [`NicPort::set_idle`] of `q`).
    pub unsafe fn set_rx_pool(&self, q: u16, mp: *mut sys::rte_mempool) -> Result<(), ProxyError> {
        let id = self.id;
        // SAFETY: control-thread ethdev calls with the datapath paused, so
        // nothing polls the port meanwhile; mp per the contract.
        unsafe {
            if self.runtime_rx_setup {
                check("rx queue stop", sys::rte_eth_dev_rx_queue_stop(id, q))?;
                check(
                    "rx queue setup",
                    sys::rte_eth_rx_queue_setup(
                        id,
                        q,
                        self.nb_rxd,
                        self.socket as u32,
                        std::ptr::null(),
                        mp,
                    ),
                )?;
                return check("rx queue start", sys::rte_eth_dev_rx_queue_start(id, q));
            }
            check("port stop", sys::rte_eth_dev_stop(id))?;
            let r = sys::rte_eth_rx_queue_setup(
                id,
                q,
                self.nb_rxd,
                self.socket as u32,
                std::ptr::null(),
                mp,
            );
            let started = sys::rte_eth_dev_start(id);
            check("rx queue setup", r)?;
            check("port start", started)
        }
    }

    pub fn link(&self) -> (bool, u32) {
        // SAFETY: plain query into a local.
        unsafe {
            let mut l: sys::rte_eth_link = std::mem::zeroed();
            sys::rte_eth_link_get_nowait(self.id, &mut l);
            (
                sys::dpdk_sys_eth_link_up(&l) != 0,
                sys::dpdk_sys_eth_link_speed(&l),
            )
        }
    }

    pub fn set_link(&self, up: bool) -> Result<(), ProxyError> {
        // SAFETY: plain ethdev control call on the control thread.
        let r = unsafe {
            if up {
                sys::rte_eth_dev_set_link_up(self.id)
            } else {
                sys::rte_eth_dev_set_link_down(self.id)
            }
        };
        check(if up { "set link up" } else { "set link down" }, r)
    }

    pub fn stats(&self) -> sys::rte_eth_stats {
        // SAFETY: plain query into a local.
        unsafe {
            let mut s: sys::rte_eth_stats = std::mem::zeroed();
            sys::rte_eth_stats_get(self.id, &mut s);
            s
        }
    }

    pub fn stop(&self) {
        // SAFETY: control thread, datapath stopped.
        unsafe {
            sys::rte_eth_dev_stop(self.id);
        }
    }
}

/// PMDs that receive a frame longer than an mbuf as a chain without the
/// SCATTER offload (which they do not report): net_pcap
/// (`eth_pcap_rx_jumbo`).
const CHAINS_ALWAYS: &[&str] = &["net_pcap"];

/// The largest frame of an MTU: Ethernet header and CRC around it.
/// Spreads the RSS redirection table of port `id` (`size` entries) over
/// its `queues` in turn, as most NIC drivers do at configure (some, such
/// as net_null, leave every entry at queue 0). Best effort: a PMD that
/// cannot update its table keeps its own.
fn spread_reta(id: u16, size: u16, queues: u16) {
    let Some(mut conf) = reta_groups(size) else {
        return;
    };
    for (k, e) in conf.iter_mut().flat_map(|c| c.reta.iter_mut()).enumerate() {
        *e = (k % queues as usize) as u16;
    }
    // SAFETY: a control-thread ethdev call; `conf` has size / 64 groups.
    let r = unsafe { sys::rte_eth_dev_rss_reta_update(id, conf.as_mut_ptr(), size) };
    if r < 0 {
        log::info(&format!(
            "port {id}: RSS redirection table left as the PMD set it ({})",
            ProxyError::dpdk("RETA update", r)
        ));
    }
}

/// The RSS redirection table of port `id`, of `size` entries (as its
/// `dev_info` says): the NIC queue each hash bucket goes to.
pub fn reta_of(id: u16, size: u16) -> Result<Vec<u16>, ProxyError> {
    let mut conf = reta_groups(size).ok_or_else(|| {
        ProxyError::Unsupported(format!(
            "port {id} has no RSS redirection table to show (size {size})"
        ))
    })?;
    // SAFETY: a control-thread ethdev call; `conf` has size / 64 groups.
    check("RETA query", unsafe {
        sys::rte_eth_dev_rss_reta_query(id, conf.as_mut_ptr(), size)
    })?;
    Ok(conf.iter().flat_map(|c| c.reta.iter().copied()).collect())
}

/// The groups of 64 entries ethdev takes a table of `size` entries in,
/// every entry selected; None for a size that is not a whole number of
/// groups (or 0).
fn reta_groups(size: u16) -> Option<Vec<sys::rte_eth_rss_reta_entry64>> {
    let group = sys::RTE_ETH_RETA_GROUP_SIZE as usize;
    if size == 0 || !(size as usize).is_multiple_of(group) {
        return None;
    }
    // SAFETY: plain C structs; zero is a valid value.
    let mut conf =
        vec![unsafe { std::mem::zeroed::<sys::rte_eth_rss_reta_entry64>() }; size as usize / group];
    for c in &mut conf {
        c.mask = u64::MAX;
    }
    Some(conf)
}

fn frame_for(mtu: u16) -> u32 {
    mtu as u32 + sys::RTE_ETHER_HDR_LEN + sys::RTE_ETHER_CRC_LEN
}

/// The data room of an idle-pool buffer that holds a frame of `mtu` (with
/// a VLAN tag) after the headroom: DPDK's default for MTUs up to 1500.
fn room_for(mtu: u16) -> u16 {
    let need = frame_for(mtu) + 4 + sys::RTE_PKTMBUF_HEADROOM;
    need.max(sys::RTE_MBUF_DEFAULT_BUF_SIZE as u32)
        .min(u16::MAX as u32) as u16
}

/// The pool of `port`'s queues without a guest: `count` buffers of `room`.
///
/// # Safety
/// EAL is initialized; control thread.
unsafe fn idle_pool(
    port: u16,
    count: u32,
    room: u16,
    socket: i32,
) -> Result<*mut sys::rte_mempool, ProxyError> {
    let name = std::ffi::CString::new(format!("idle_p{port}_{room}")).unwrap();
    // SAFETY: the caller's contract; name is NUL-terminated.
    unsafe {
        let mut mp = sys::rte_mempool_lookup(name.as_ptr());
        if mp.is_null() {
            mp = sys::rte_pktmbuf_pool_create(name.as_ptr(), count, 64, 0, room, socket);
        }
        if mp.is_null() {
            return Err(ProxyError::dpdk(
                format!("idle pool of {count} buffers of {room} bytes"),
                -1,
            ));
        }
        Ok(mp)
    }
}

/// `rte_eth_dev_set_mtu`, its refusal explained with the device's range.
///
/// # Safety
/// Control thread; `info` is the port's.
unsafe fn set_mtu_checked(
    id: u16,
    mtu: u16,
    info: &sys::rte_eth_dev_info,
) -> Result<(), ProxyError> {
    // SAFETY: the caller's contract.
    let r = unsafe { sys::rte_eth_dev_set_mtu(id, mtu) };
    let mut cur = 0u16;
    // SAFETY: as above; `cur` outlives the call.
    unsafe { sys::rte_eth_dev_get_mtu(id, &mut cur) };
    // A PMD without mtu_set has the MTU it was configured with.
    if r == -libc::ENOTSUP && cur == mtu {
        return Ok(());
    }
    if r < 0 {
        return Err(ProxyError::dpdk(
            format!(
                "port {id}: set MTU {mtu} (the device takes {}..{}, frames up to {} bytes)",
                info.min_mtu, info.max_mtu, info.max_rx_pktlen
            ),
            r,
        ));
    }
    Ok(())
}

/// A MAC address as `02:00:00:00:00:01`.
pub fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
