//! The control thread: commands, unix sockets, guest sessions.

use crate::datapath::{Datapath, DpQueue};
use crate::dma;
use crate::nic::NicPort;
use crate::session::{self, RegionConfig, Session};
use crate::shm_pool::{self, SocketStats};
use crate::telemetry;
use bus_shm::proto::{self, Reader, Start, Status};
use bus_shm::region::{recv_msg, send_msg};
use dpdk_sys as sys;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const USAGE: &str = "\
commands:
  add port <port_id> [queues <n>] [rxd <n>]           configure n rx/tx queue pairs (default 2), RSS over them, start;
                                                      rxd: NIC rx descriptors per queue (default: the PMD's)
  add socket <path> <port_id> <queue> [heap <MiB>] [buffers <MiB>]
                                                      serve that queue on a unix socket at <path>
  remove socket <path>
  set link <port_id> up|down                          bring the NIC's link up or down (guests get LSC)
  set timing on|off                                   count the datapath's TSC cycles per stage (costs a little)
  show ports | show sockets | show stats | show datapath
  help | quit";

#[derive(Debug, PartialEq)]
pub enum Command {
    AddPort {
        port: u16,
        queues: u16,
        /// NIC rx descriptors per queue; 0: the PMD's default.
        rxd: u16,
    },
    AddSocket {
        path: String,
        port: u16,
        queue: u16,
        cfg: RegionConfig,
    },
    RemoveSocket {
        path: String,
    },
    Show(String),
    SetLink {
        port: u16,
        up: bool,
    },
    SetTiming(bool),
    Help,
    Quit,
    Nothing,
}

impl PartialEq for RegionConfig {
    fn eq(&self, o: &Self) -> bool {
        (self.heap_mb, self.buffers_mb, self.ring_entries)
            == (o.heap_mb, o.buffers_mb, o.ring_entries)
    }
}

fn num<T: std::str::FromStr>(what: &str, s: Option<&str>) -> Result<T, String> {
    let s = s.ok_or_else(|| format!("missing {what}"))?;
    s.parse().map_err(|_| format!("bad {what} '{s}'"))
}

/// Parses one command line.
pub fn parse(line: &str) -> Result<Command, String> {
    let line = line.split('#').next().unwrap_or("");
    let w: Vec<&str> = line.split_whitespace().collect();
    let mut it = w.iter().copied();
    let cmd = match (it.next(), it.next()) {
        (None, _) => Command::Nothing,
        (Some("add"), Some("port")) => {
            let port = num("port_id", it.next())?;
            let (mut queues, mut rxd) = (2, 0);
            while let Some(k) = it.next() {
                match k {
                    "queues" => queues = num("queue count", it.next())?,
                    "rxd" => {
                        rxd = num("rx descriptor count", it.next())?;
                        if rxd == 0 {
                            return Err("rxd must be at least 1".into());
                        }
                    }
                    x => return Err(format!("unexpected '{x}'")),
                }
            }
            if queues == 0 {
                return Err("queues must be at least 1".into());
            }
            Command::AddPort { port, queues, rxd }
        }
        (Some("add"), Some("socket")) => {
            let path: String = it.next().ok_or("missing path")?.to_string();
            if !path.starts_with('/') {
                return Err(format!("socket path must be absolute: '{path}'"));
            }
            if path.len() >= 64 {
                return Err(
                    "socket path must be shorter than 64 bytes (EAL device name limit)".into(),
                );
            }
            let port = num("port_id", it.next())?;
            let queue = num("queue", it.next())?;
            let mut cfg = RegionConfig::default();
            while let Some(k) = it.next() {
                match k {
                    "heap" => cfg.heap_mb = num("heap MiB", it.next())?,
                    "buffers" => cfg.buffers_mb = num("buffers MiB", it.next())?,
                    x => return Err(format!("unexpected '{x}'")),
                }
            }
            if cfg.heap_mb < 8 || cfg.heap_mb + cfg.buffers_mb >= 4000 || cfg.buffers_mb < 4 {
                return Err("heap must be >= 8 MiB, buffers >= 4 MiB, together < 4000 MiB".into());
            }
            Command::AddSocket {
                path,
                port,
                queue,
                cfg,
            }
        }
        (Some("remove"), Some("socket")) => Command::RemoveSocket {
            path: it.next().ok_or("missing path")?.to_string(),
        },
        (Some("show"), Some(what @ ("ports" | "sockets" | "stats" | "datapath"))) => {
            Command::Show(what.to_string())
        }
        (Some("set"), Some("link")) => {
            let port = num("port_id", it.next())?;
            let up = match it.next() {
                Some("up") => true,
                Some("down") => false,
                other => {
                    return Err(format!(
                        "set link {port}: expected up or down, got {other:?}"
                    ))
                }
            };
            Command::SetLink { port, up }
        }
        (Some("set"), Some("timing")) => match it.next() {
            Some("on") => Command::SetTiming(true),
            Some("off") => Command::SetTiming(false),
            other => return Err(format!("set timing: expected on or off, got {other:?}")),
        },
        (Some("help"), None) => Command::Help,
        (Some("quit" | "exit"), None) => Command::Quit,
        _ => return Err(format!("unknown command '{}'", w.join(" "))),
    };
    if let Some(x) = it.next() {
        return Err(format!("unexpected '{x}'"));
    }
    Ok(cmd)
}

pub struct SocketEntry {
    pub path: String,
    pub port: u16,
    pub queue: u16,
    pub cfg: RegionConfig,
    pub listener: OwnedFd,
    pub session: Option<Session>,
    pub stats: Arc<SocketStats>,
    pub pools_made: u32,
}

pub struct Proxy {
    /// Link (up, speed) last told to the guests, per port.
    links: BTreeMap<u16, (bool, u32)>,
    pub ports: BTreeMap<u16, NicPort>,
    pub sockets: Vec<SocketEntry>,
    pub dp: Arc<Datapath>,
}

fn log(msg: &str) {
    sys::log(
        sys::RTE_LOG_INFO,
        telemetry::logtype(),
        &format!("IO_PROXY: {msg}"),
    );
}
fn log_err(msg: &str) {
    sys::log(
        sys::RTE_LOG_ERR,
        telemetry::logtype(),
        &format!("IO_PROXY: {msg}"),
    );
}
pub(crate) fn log_warn(msg: &str) {
    sys::log(
        sys::RTE_LOG_WARNING,
        telemetry::logtype(),
        &format!("IO_PROXY: {msg}"),
    );
}

impl Proxy {
    pub fn new(dp: Arc<Datapath>) -> Proxy {
        Proxy {
            links: BTreeMap::new(),
            ports: BTreeMap::new(),
            sockets: Vec::new(),
            dp,
        }
    }

    /// Executes a command; Ok(false) means quit.
    pub fn execute(&mut self, cmd: Command, out: &mut dyn std::io::Write) -> Result<bool, String> {
        match cmd {
            Command::Nothing => {}
            Command::Help => {
                let _ = writeln!(out, "{USAGE}");
            }
            Command::Quit => return Ok(false),
            Command::AddPort { port, queues, rxd } => self.add_port(port, queues, rxd)?,
            Command::AddSocket {
                path,
                port,
                queue,
                cfg,
            } => self.add_socket(path, port, queue, cfg)?,
            Command::RemoveSocket { path } => self.remove_socket(&path)?,
            Command::SetTiming(on) => {
                // Paused, so that no round adds to a counter being zeroed.
                let _paused = self.dp.pause();
                self.dp.timing.set(on);
                log(&format!(
                    "datapath timing {}",
                    if on { "on" } else { "off" }
                ));
            }
            Command::SetLink { port, up } => {
                let p = self
                    .ports
                    .get(&port)
                    .ok_or_else(|| format!("port {port} not added"))?;
                p.set_link(up).map_err(|e| format!("port {port}: {e}"))?;
                self.watch_links();
            }
            Command::Show(what) => {
                let text = match what.as_str() {
                    "ports" => self.show_ports(),
                    "sockets" => self.show_sockets(),
                    "datapath" => self.dp.timing.show(),
                    _ => self.show_stats(),
                };
                let _ = write!(out, "{text}");
            }
        }
        telemetry::publish(self);
        Ok(true)
    }

    fn add_port(&mut self, id: u16, queues: u16, rxd: u16) -> Result<(), String> {
        if self.ports.contains_key(&id) {
            return Err(format!("port {id} already added"));
        }
        let p = NicPort::add(id, queues, rxd).map_err(|e| format!("port {id}: {e}"))?;
        log(&format!(
            "port {id} ({}, {}): {queues} queues of {} rx descriptors holding {} buffers each, {}, MAC {}",
            p.name,
            p.driver,
            p.nb_rxd,
            p.rx_held,
            if p.rss {
                "RSS"
            } else {
                "device's own spreading"
            },
            mac_str(&p.mac)
        ));
        let mut st = self.dp.pause();
        for q in 0..queues {
            st.queues.push(DpQueue {
                port: id,
                queue: q,
                guest: None,
                stats: p.queue_stats[q as usize].clone(),
            });
        }
        drop(st);
        self.ports.insert(id, p);
        Ok(())
    }

    fn add_socket(
        &mut self,
        path: String,
        port: u16,
        queue: u16,
        cfg: RegionConfig,
    ) -> Result<(), String> {
        use nix::sys::socket::{
            bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
        };
        let p = self
            .ports
            .get(&port)
            .ok_or_else(|| format!("port {port} not added (add port {port} first)"))?;
        if queue >= p.nb_queues {
            return Err(format!(
                "port {port} has {} queues, no queue {queue}",
                p.nb_queues
            ));
        }
        if let Some(s) = self
            .sockets
            .iter()
            .find(|s| s.path == path || (s.port, s.queue) == (port, queue))
        {
            return Err(format!(
                "port {} queue {} is already served at {}",
                s.port, s.queue, s.path
            ));
        }
        let dir = std::path::Path::new(&path).parent().ok_or("bad path")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        if std::fs::symlink_metadata(&path).is_ok() {
            // A stale socket from an earlier run; refuse anything else.
            use std::os::unix::fs::FileTypeExt;
            let ft = std::fs::symlink_metadata(&path)
                .map_err(|e| e.to_string())?
                .file_type();
            if !ft.is_socket() {
                return Err(format!("{path} exists and is not a socket"));
            }
            std::fs::remove_file(&path).map_err(|e| format!("remove stale {path}: {e}"))?;
        }
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| format!("socket: {e}"))?;
        let addr = UnixAddr::new(path.as_str()).map_err(|e| format!("{path}: {e}"))?;
        bind(fd.as_raw_fd(), &addr).map_err(|e| format!("bind {path}: {e}"))?;
        // Guests may run as other users (containers): the directory is the
        // access control, the socket itself is open to whoever can reach it.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
        listen(&fd, Backlog::new(4).unwrap()).map_err(|e| format!("listen: {e}"))?;
        log(&format!("serving port {port} queue {queue} on {path}"));
        self.sockets.push(SocketEntry {
            path,
            port,
            queue,
            cfg,
            listener: fd,
            session: None,
            stats: p.queue_stats[queue as usize].clone(),
            pools_made: 0,
        });
        Ok(())
    }

    fn remove_socket(&mut self, path: &str) -> Result<(), String> {
        let i = self
            .sockets
            .iter()
            .position(|s| s.path == path)
            .ok_or_else(|| format!("no socket {path}"))?;
        self.disconnect(i, "socket removed");
        let s = self.sockets.remove(i);
        let _ = std::fs::remove_file(&s.path);
        log(&format!("stopped serving {}", s.path));
        Ok(())
    }

    /// Accepts a guest on socket `i`.
    pub fn accept(&mut self, i: usize) {
        use nix::sys::socket::{accept4, SockFlag};
        let s = &self.sockets[i];
        let fd = match accept4(s.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            // SAFETY: accept4 returned a new descriptor that we now own.
            Ok(fd) => unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) },
            Err(_) => return,
        };
        if s.session.is_some() {
            session::send_error(
                &fd,
                proto::VERSION_MAX,
                &format!("{} already has a guest", s.path),
            );
            log_err(&format!("{}: refused a second guest", s.path));
            return;
        }
        let port = &self.ports[&s.port];
        match session::handshake(fd, &s.cfg, port, s.queue, s.stats.clone()) {
            Ok(sess) => {
                log(&format!(
                    "{}: guest {} (pid {}, uid {}) connected, protocol v{}, {} MiB region on {}",
                    s.path,
                    sess.name,
                    sess.pid,
                    sess.uid,
                    sess.version,
                    sess.guest.layout.region_size >> 20,
                    if sess.hugepages {
                        "2 MiB hugepages"
                    } else {
                        "4 KiB pages"
                    }
                ));
                self.sockets[i].session = Some(sess);
            }
            Err(e) => log_err(&format!("{}: {e}", s.path)),
        }
        telemetry::publish(self);
    }

    /// Handles what guest `i` sent.
    pub fn guest_readable(&mut self, i: usize) {
        let Some(sess) = &self.sockets[i].session else {
            return;
        };
        let msg = match recv_msg(sess.fd.as_raw_fd(), true) {
            Ok(Some((m, _))) => m,
            Ok(None) => return self.disconnect(i, "guest closed the connection"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => return self.disconnect(i, &format!("socket error: {e}")),
        };
        let Ok((mut r, t, _)) = Reader::new(&msg) else {
            return self.disconnect(i, "malformed message");
        };
        let version = sess.version;
        let (reply_type, result) = match t {
            proto::MSG_START => match Start::decode(&mut r) {
                Ok(s) => (proto::MSG_START_ACK, self.start_guest(i, s)),
                Err(e) => (proto::MSG_START_ACK, Err(e.to_string())),
            },
            proto::MSG_STOP => (proto::MSG_STOP_ACK, self.stop_guest(i, true)),
            other => return self.disconnect(i, &format!("unexpected message type {other}")),
        };
        let status = match &result {
            Ok(()) => Status {
                code: 0,
                text: "ok".into(),
            },
            Err(e) => {
                log_err(&format!("{}: {e}", self.sockets[i].path));
                Status {
                    code: -libc::EINVAL,
                    text: e.clone(),
                }
            }
        };
        if let Some(sess) = &self.sockets[i].session {
            if send_msg(
                sess.fd.as_raw_fd(),
                status.encode(reply_type, version).bytes(),
                None,
            )
            .is_err()
            {
                self.disconnect(i, "cannot reply");
            }
        }
        telemetry::publish(self);
    }

    fn start_guest(&mut self, i: usize, start: Start) -> Result<(), String> {
        let s = &mut self.sockets[i];
        let sess = s.session.as_mut().ok_or("no session")?;
        if sess.started {
            return Ok(());
        }
        let port = &self.ports[&s.port];
        let room = start.rx_buf_len as u32;
        let head = start.rx_headroom as u32;
        if head >= room || room - head < port.max_rx_pktlen {
            return Err(format!(
                "rx buffers of {room} bytes with {head} headroom cannot hold the NIC's {}-byte frames",
                port.max_rx_pktlen
            ));
        }
        let g = &mut *sess.guest;
        // The NIC may reach the guest's buffers only while it is attached.
        let (buf_off, buf_len) = (g.layout.buf_off, g.layout.buf_len);
        let area = dma::DmaArea::map(
            port.id,
            g.region.base().wrapping_add(buf_off as usize),
            buf_len as usize,
            g.layout.page_size as usize,
        )?;
        g.rx_room = start.rx_buf_len;
        g.rx_headroom = start.rx_headroom;
        // Only if the NIC can tell anything: net_null, say, recognizes no
        // packet type and has no rx offload, and then the datapath does
        // not look.
        g.rx_meta = sess.version >= 4 && (port.rx_offloads != 0 || !port.ptypes.is_empty());
        s.pools_made += 1;
        let name = format!("shm_p{}q{}_{}", s.port, s.queue, s.pools_made % 10000);
        let n = 4 * s.cfg.ring_entries - 1;
        shm_pool::create_pools(&name, n, g, port.socket)?;
        // Headers get buffers (and their IOVAs) from the queue setup below
        // on; creating the pools attaches none.
        g.iova_base = match area.iova() {
            dma::BAD_IOVA => dma::BAD_IOVA,
            iova => iova.wrapping_sub(buf_off),
        };
        let g_ptr: *mut shm_pool::GuestRegion = g;
        let mut st = self.dp.pause();
        if let Err(e) = port.set_rx_pool(s.queue, g.mp, true) {
            drop(st);
            // The pools were never attached to the NIC.
            shm_pool::free_pools(g);
            // `area` goes away on return: no IOVA may outlive it.
            g.iova_base = dma::BAD_IOVA;
            return Err(format!("attach queue: {e}"));
        }
        if let Some(q) = st
            .queues
            .iter_mut()
            .find(|q| (q.port, q.queue) == (s.port, s.queue))
        {
            q.guest = Some(g_ptr);
        }
        drop(st);
        sess.started = true;
        log(&format!(
            "{}: guest started, port {} queue {} attached; buffers DMA: {}",
            s.path, s.port, s.queue, area.state
        ));
        sess.dma = Some(area);
        Ok(())
    }

    /// Detaches the guest of socket `i` from its NIC queue. With
    /// `give_back`, every buffer of the guest goes back to it first.
    fn stop_guest(&mut self, i: usize, give_back: bool) -> Result<(), String> {
        let s = &mut self.sockets[i];
        let Some(sess) = s.session.as_mut() else {
            return Ok(());
        };
        if !sess.started {
            return Ok(());
        }
        let port = &self.ports[&s.port];
        let mut st = self.dp.pause();
        if let Some(q) = st
            .queues
            .iter_mut()
            .find(|q| (q.port, q.queue) == (s.port, s.queue))
        {
            q.guest = None;
        }
        if give_back {
            // SAFETY: the datapath is paused.
            unsafe { crate::datapath::flush_tx(s.port, s.queue, &mut sess.guest) };
        }
        // Always a full stop/start here: it makes the NIC hand back every
        // header of this guest, rx and tx, before the pool goes away.
        let r = port.set_rx_pool(s.queue, port.idle_pool, false);
        drop(st);
        let g = &mut *sess.guest;
        if give_back {
            g.return_all();
        }
        // The NIC holds no header of these pools any more (the port was
        // stopped with another pool behind the queue), nor does the datapath.
        shm_pool::free_pools(g);
        // Nor can a header of the NIC still point into the area.
        sess.dma = None;
        g.iova_base = dma::BAD_IOVA;
        sess.started = false;
        r.map_err(|e| format!("detach queue: {e}"))
    }

    pub fn disconnect(&mut self, i: usize, why: &str) {
        if self.sockets[i].session.is_none() {
            return;
        }
        if let Err(e) = self.stop_guest(i, false) {
            log_err(&format!("{}: {e}", self.sockets[i].path));
        }
        let s = &mut self.sockets[i];
        if let Some(sess) = s.session.take() {
            log(&format!("{}: guest pid {} gone ({why})", s.path, sess.pid));
        }
        s.stats.guest_broken.store(false, Ordering::Relaxed);
        telemetry::publish(self);
    }

    /// Tells the guests of a port when its link changed.
    pub fn watch_links(&mut self) {
        for (id, p) in &self.ports {
            let now = p.link();
            let before = self.links.insert(*id, now);
            if before.is_none() || before == Some(now) {
                continue;
            }
            log(&format!(
                "port {id}: link {}",
                if now.0 { "up" } else { "down" }
            ));
            for s in self.sockets.iter().filter(|s| s.port == *id) {
                if let Some(sess) = &s.session {
                    let msg = proto::Link {
                        up: now.0,
                        speed: now.1,
                    }
                    .encode(sess.version);
                    let _ = send_msg(sess.fd.as_raw_fd(), msg.bytes(), None);
                }
            }
        }
    }

    /// Periodic housekeeping: drop guests that broke the protocol, tell
    /// guests about link changes.
    pub fn tick(&mut self) {
        self.watch_links();
        for i in 0..self.sockets.len() {
            if self.sockets[i].stats.guest_broken.load(Ordering::Relaxed) {
                self.disconnect(i, "guest corrupted its rings");
            }
        }
    }

    pub fn shutdown(&mut self) {
        let paths: Vec<String> = self.sockets.iter().map(|s| s.path.clone()).collect();
        for p in paths {
            let _ = self.remove_socket(&p);
        }
        let mut st = self.dp.pause();
        st.queues.clear();
        drop(st);
        for p in self.ports.values() {
            p.stop();
        }
    }

    pub fn show_ports(&self) -> String {
        let mut s = format!(
            "{:>4} {:<20} {:<16} {:>6} {:<5} {:<17} {:>5} {:<4}\n",
            "port", "name", "driver", "queues", "rss", "mac", "mtu", "link"
        );
        for p in self.ports.values() {
            let (up, speed) = p.link();
            s += &format!(
                "{:>4} {:<20} {:<16} {:>6} {:<5} {:<17} {:>5} {}\n",
                p.id,
                p.name,
                p.driver,
                p.nb_queues,
                if p.rss { "yes" } else { "no" },
                mac_str(&p.mac),
                p.mtu,
                if up {
                    format!("up {speed} Mbps")
                } else {
                    "down".into()
                }
            );
        }
        s
    }

    pub fn show_sockets(&self) -> String {
        let mut s = format!(
            "{:<32} {:>4} {:>5} {:<10} {:>7} {:<12}\n",
            "socket", "port", "queue", "guest", "pid", "state"
        );
        for e in &self.sockets {
            let (guest, pid, state, dma) = match &e.session {
                Some(ss) => (
                    ss.name.clone(),
                    ss.pid.to_string(),
                    if ss.started { "started" } else { "connected" },
                    ss.dma
                        .as_ref()
                        .map_or(String::new(), |a| format!(" (buffers DMA: {})", a.state)),
                ),
                None => ("-".into(), "-".into(), "listening", String::new()),
            };
            s += &format!(
                "{:<32} {:>4} {:>5} {:<10} {:>7} {:<12}{dma}\n",
                e.path, e.port, e.queue, guest, pid, state
            );
        }
        s
    }

    pub fn show_stats(&self) -> String {
        let mut s = String::new();
        for p in self.ports.values() {
            let st = p.stats();
            s += &format!(
                "port {}: rx {} pkts {} bytes, missed {}, tx {} pkts {} bytes, errors rx {} tx {}\n",
                p.id, st.ipackets, st.ibytes, st.imissed, st.opackets, st.obytes, st.ierrors, st.oerrors
            );
            for (q, qs) in p.queue_stats.iter().enumerate() {
                let served = self
                    .sockets
                    .iter()
                    .find(|e| (e.port, e.queue) == (p.id, q as u16));
                s += &format!(
                    "  queue {q} {}: to guest {} pkts {} bytes, from guest {} pkts {} bytes, drops rx {} tx {}, no buffer {}, bad descriptors {}, payload copies {}\n",
                    served.map_or("(no socket)".to_string(), |e| e.path.clone()),
                    get(&qs.rx_packets),
                    get(&qs.rx_bytes),
                    get(&qs.tx_packets),
                    get(&qs.tx_bytes),
                    get(&qs.rx_drops),
                    get(&qs.tx_drops),
                    get(&qs.rx_no_buffer),
                    get(&qs.bad_descriptors),
                    get(&qs.payload_copies),
                );
                if let Some(r) = served.and_then(|e| e.session.as_ref()?.rings.as_ref()) {
                    let used: Vec<String> = session::RING_NAMES
                        .iter()
                        .zip(r.read())
                        .map(|(name, n)| match n {
                            Some(n) => format!("{name} {n}"),
                            None => format!("{name} corrupt"),
                        })
                        .collect();
                    s += &format!(
                        "    rings in use (of {}): {}\n",
                        r.ring_entries(),
                        used.join(", ")
                    );
                }
            }
        }
        s
    }
}

pub fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

pub fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_commands() {
        assert_eq!(
            parse("add port 0").unwrap(),
            Command::AddPort {
                port: 0,
                queues: 2,
                rxd: 0
            }
        );
        assert_eq!(
            parse("add port 1 queues 4").unwrap(),
            Command::AddPort {
                port: 1,
                queues: 4,
                rxd: 0
            }
        );
        assert_eq!(
            parse("add port 1 rxd 256 queues 1").unwrap(),
            Command::AddPort {
                port: 1,
                queues: 1,
                rxd: 256
            }
        );
        match parse("add socket /tmp/s_0_0/sock 0 1 heap 32 buffers 256").unwrap() {
            Command::AddSocket {
                path,
                port,
                queue,
                cfg,
            } => {
                assert_eq!(
                    (path.as_str(), port, queue, cfg.heap_mb, cfg.buffers_mb),
                    ("/tmp/s_0_0/sock", 0, 1, 32, 256)
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse("show stats").unwrap(), Command::Show("stats".into()));
        assert_eq!(parse("  # comment").unwrap(), Command::Nothing);
        assert_eq!(parse("quit").unwrap(), Command::Quit);
        assert_eq!(
            parse("set link 0 down").unwrap(),
            Command::SetLink { port: 0, up: false }
        );
        assert_eq!(parse("set timing on").unwrap(), Command::SetTiming(true));
        assert_eq!(
            parse("show datapath").unwrap(),
            Command::Show("datapath".into())
        );
        assert!(parse("set timing maybe").unwrap_err().contains("on or off"));
    }

    #[test]
    fn rejects_bad_commands_with_a_reason() {
        assert!(parse("add port x").unwrap_err().contains("bad port_id"));
        assert!(parse("add socket rel/path 0 0")
            .unwrap_err()
            .contains("absolute"));
        assert!(parse("add port 0 queues 0").is_err());
        assert!(parse("add port 0 rxd 0").is_err());
        assert!(parse("show everything")
            .unwrap_err()
            .contains("unknown command"));
        assert!(parse("add port 0 extra")
            .unwrap_err()
            .contains("unexpected"));
    }
}
