//! The proxy's state: NIC ports, the sockets that serve their queues, and
//! each socket's guest session; guests connect, start, stop and go.

use crate::access::SocketAccess;
use crate::dma;
use crate::error::ProxyError;
use crate::flow::{Flows, Match, Target};
use crate::guest_region::{self, GuestPtr, GuestSlot};
use crate::lcores::Lcores;
use crate::log;
use crate::nic::{self, mac_str, NicPort};
use crate::pool_ops;
use crate::session::{self, GrownPart, GuestBuffers, RegionConfig, Session, GROW_STEP};
use crate::stats::SocketStats;
use crate::wakeup::TxKick;
use shm_abi::msg::{self, GrowAck, Msg, Reta, Start, Status};
use shm_abi::socket::{self as wire, RecvError};
use shm_abi::wake;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

pub struct SocketEntry {
    pub path: String,
    pub port: u16,
    /// The NIC queues served, in the guest's queue order: guest queue k is
    /// NIC queue `queues[k]`.
    pub queues: Vec<u16>,
    pub cfg: RegionConfig,
    /// Who may attach (the socket file's owner and mode, peer ids).
    pub access: SocketAccess,
    pub listener: OwnedFd,
    pub session: Option<Session>,
    /// The datapath lcore polling each NIC queue in `queues`.
    pub lcores: Vec<u32>,
    /// The counters of each NIC queue in `queues`.
    pub stats: Vec<Arc<SocketStats>>,
    pub pools_made: u32,
}

impl SocketEntry {
    /// The served queues as `add socket` takes them: `2`, `0-3`, `0,2`.
    pub fn queue_list(&self) -> String {
        queue_list(&self.queues)
    }
}

/// `[0, 1, 2, 3]` as `0-3`, `[0, 2]` as `0,2`.
pub fn queue_list(qs: &[u16]) -> String {
    let contiguous = qs.windows(2).all(|w| w[1] == w[0] + 1);
    match qs {
        [] => String::new(),
        [q] => q.to_string(),
        [first, .., last] if contiguous => format!("{first}-{last}"),
        _ => qs
            .iter()
            .map(|q| q.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Each queue's lcore, `1,1,2` as `1,1,2`; all on one as `1`.
pub fn lcore_list(l: &[u32]) -> String {
    match l {
        [first, rest @ ..] if rest.iter().all(|x| x == first) => first.to_string(),
        _ => l
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

pub struct Proxy {
    /// Link (up, speed) last told to the guests, per port.
    links: BTreeMap<u16, (bool, u32)>,
    pub ports: BTreeMap<u16, NicPort>,
    pub sockets: Vec<SocketEntry>,
    /// The datapath lcores and the queues each polls.
    pub lcores: Lcores,
    /// The buffer areas of connected guests, which their other sockets may
    /// share (held by the sessions; gone with the last of them).
    buffers: Vec<Weak<GuestBuffers>>,
    /// rte_flow rules steering traffic to queues (`add flow`).
    pub flows: Flows,
}

impl Proxy {
    pub fn new(lcores: Lcores) -> Proxy {
        Proxy {
            links: BTreeMap::new(),
            ports: BTreeMap::new(),
            sockets: Vec::new(),
            lcores,
            buffers: Vec::new(),
            flows: Flows::default(),
        }
    }

    /// `add flow`: what `m` matches on `port` goes to its NIC queue
    /// `queue` (so to the socket serving it). Returns the rule's id.
    pub fn add_flow(&mut self, port: u16, m: Match, target: Target) -> Result<u32, String> {
        let p = self
            .ports
            .get(&port)
            .ok_or_else(|| format!("port {port} not added"))?;
        if let Some(q) = target.queues().iter().find(|&&q| q >= p.nb_queues) {
            return Err(format!(
                "port {port} has {} queues: no queue {q}",
                p.nb_queues
            ));
        }
        let text = format!("{m} -> {target}");
        let id = self
            .flows
            .add(port, m, target, p.rss_hf)
            .map_err(|e| e.to_string())?;
        log::info(&format!("flow {id}: port {port} {text}"));
        Ok(id)
    }

    pub fn add_port(
        &mut self,
        id: u16,
        queues: u16,
        rxd: u16,
        mtu: u16,
        intr: bool,
    ) -> Result<(), String> {
        if self.ports.contains_key(&id) {
            return Err(format!("port {id} already added"));
        }
        let p = NicPort::add(id, queues, rxd, mtu, intr).map_err(|e| format!("port {id}: {e}"))?;
        log::info(&format!(
            "port {id} ({}, {}): {queues} queues of {} rx descriptors holding {} buffers each, MTU {}, {}{}, MAC {}",
            p.name,
            p.driver,
            p.nb_rxd,
            p.rx_held,
            p.mtu,
            if p.rss {
                "RSS"
            } else {
                "device's own spreading"
            },
            if intr { ", rx interrupts" } else { "" },
            mac_str(&p.mac)
        ));
        for q in 0..queues {
            self.lcores
                .add_queue(id, q, p.queue_stats[q as usize].clone(), intr);
        }
        self.ports.insert(id, p);
        Ok(())
    }

    /// `set mtu`: the NIC's MTU, for guests that connect from now on. A
    /// connected guest learned the MTU at connect and sized its buffers
    /// for it, so the port must have none.
    pub fn set_mtu(&mut self, id: u16, mtu: u16) -> Result<(), String> {
        if let Some(s) = self
            .sockets
            .iter()
            .find(|s| s.port == id && s.session.is_some())
        {
            return Err(format!(
                "port {id}: a guest is connected on {} (guests learn the MTU when they connect: stop them first)",
                s.path
            ));
        }
        let p = self
            .ports
            .get_mut(&id)
            .ok_or_else(|| format!("port {id} not added"))?;
        let _paused = self.lcores.pause_port(id);
        // SAFETY: paused; no guest pool is behind any queue of the port.
        unsafe { p.set_mtu(mtu) }.map_err(|e| e.to_string())?;
        log::info(&format!(
            "port {id}: MTU {}, frames up to {} bytes",
            p.mtu, p.max_rx_pktlen
        ));
        Ok(())
    }

    pub fn add_socket(
        &mut self,
        path: String,
        port: u16,
        queues: Vec<u16>,
        cfg: RegionConfig,
        access: SocketAccess,
        lcores: Vec<u32>,
    ) -> Result<(), String> {
        use nix::sys::socket::{
            bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
        };
        let p = self
            .ports
            .get(&port)
            .ok_or_else(|| format!("port {port} not added (add port {port} first)"))?;
        if let Some(q) = queues.iter().find(|&&q| q >= p.nb_queues) {
            return Err(format!(
                "port {port} has {} queues, no queue {q}",
                p.nb_queues
            ));
        }
        if let Some(s) = self.sockets.iter().find(|s| s.path == path) {
            return Err(format!(
                "{} already serves port {} queue {}",
                s.path,
                s.port,
                s.queue_list()
            ));
        }
        for s in self.sockets.iter().filter(|s| s.port == port) {
            if let Some(q) = queues.iter().find(|q| s.queues.contains(q)) {
                return Err(format!(
                    "port {port} queue {q} is already served at {}",
                    s.path
                ));
            }
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
        // Owner and mode before listen: no peer connects under others.
        if let Err(e) = access.apply(&path) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let on = listen(&fd, Backlog::new(4).unwrap())
            .map_err(|e| format!("listen: {e}"))
            .and_then(|()| self.lcores.serve(port, &queues, &lcores));
        let on = match on {
            Ok(on) => on,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        log::info(&format!(
            "serving port {port} queue{} {} on {path} ({}), datapath lcore{} {}",
            if queues.len() > 1 { "s" } else { "" },
            queue_list(&queues),
            access.describe(),
            if on.len() > 1 { "s" } else { "" },
            lcore_list(&on)
        ));
        self.sockets.push(SocketEntry {
            path,
            port,
            stats: queues
                .iter()
                .map(|&q| p.queue_stats[q as usize].clone())
                .collect(),
            queues,
            cfg,
            access,
            listener: fd,
            session: None,
            lcores: on,
            pools_made: 0,
        });
        Ok(())
    }

    pub fn remove_socket(&mut self, path: &str) -> Result<(), String> {
        let i = self
            .sockets
            .iter()
            .position(|s| s.path == path)
            .ok_or_else(|| format!("no socket {path}"))?;
        self.disconnect(i, "socket removed");
        let s = self.sockets.remove(i);
        self.lcores.unserve(s.port, &s.queues);
        let _ = std::fs::remove_file(&s.path);
        log::info(&format!("stopped serving {}", s.path));
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
            let e = ProxyError::Busy(format!("{} already has a guest", s.path));
            session::send_error(&fd, msg::VERSION_MAX, &e);
            log::err(&format!("{}: refused a second guest", s.path));
            return;
        }
        let port = &self.ports[&s.port];
        match session::handshake(
            fd,
            &s.cfg,
            port,
            &s.queues,
            &s.stats,
            &mut self.buffers,
            &s.access,
        ) {
            Ok(sess) => {
                log::info(&(format!(
                    "{}: guest {} (pid {}, uid {}) connected, protocol v{}, {} queue pair{}, {} KiB region on {}",
                    s.path,
                    sess.name,
                    sess.pid,
                    sess.uid,
                    sess.version,
                    sess.guest.len(),
                    if sess.guest.len() > 1 { "s" } else { "" },
                    sess.layout.region_size >> 10,
                    if sess.hugepages {
                        "2 MiB hugepages"
                    } else {
                        "4 KiB pages"
                    },
                ) + &if sess.shares_buffers {
                    format!(
                        ", buffers shared with the guest's other sockets ({} MiB)",
                        sess.buffers.layout.buf_len >> 20
                    )
                } else {
                    String::new()
                }));
                self.sockets[i].session = Some(sess);
            }
            Err(e) => log::err(&format!("{}: {e}", s.path)),
        }
    }

    /// Handles what guest `i` sent. A descriptor it attached is closed on
    /// receipt unless the message carries one (RESUME_PART).
    pub fn guest_readable(&mut self, i: usize) {
        let Some(sess) = &self.sockets[i].session else {
            return;
        };
        let (m, passed) = match wire::recv(sess.fd.as_raw_fd(), true) {
            Ok(Some(r)) => (r.msg, r.fd),
            Ok(None) => return self.disconnect(i, "guest closed the connection"),
            Err(e) if e.would_block() => return,
            Err(RecvError::Io(e)) => return self.disconnect(i, &format!("socket error: {e}")),
            Err(e) => return self.disconnect(i, &e.to_string()),
        };
        let version = sess.version;
        let (reply, fd) = match m {
            Msg::Grow(g) => match self.grow_buffers(i, g.bytes) {
                Ok((ack, fd)) => (Msg::GrowAck(ack), Some(fd)),
                Err(e) => (Msg::Error(self.refusal(i, &e)), None),
            },
            Msg::ResumePart(p) => match self.resume_part(i, p, passed) {
                Ok(ack) => (Msg::GrowAck(ack), None),
                Err(e) => (Msg::Error(self.refusal(i, &e)), None),
            },
            Msg::RetaQuery(q) => match self.reta_chunk(i, q.first) {
                Ok(r) => (Msg::Reta(r), None),
                Err(e) => (Msg::Error(self.refusal(i, &e)), None),
            },
            Msg::Start(s) => match self.start_guest(i, s, passed) {
                Ok(kick) => (Msg::StartAck(Status::ok()), kick),
                Err(e) => (Msg::StartAck(self.refusal(i, &e)), None),
            },
            Msg::Stop => {
                let r = self.stop_guest(i, true);
                (Msg::StopAck(self.status(i, r)), None)
            }
            // The guest cannot go on with what we offered (a resume whose
            // NIC changed under it): its reason, in our log too.
            Msg::Error(s) => return self.disconnect(i, &format!("guest refused: {}", s.text)),
            other => {
                return self
                    .disconnect(i, &format!("unexpected message type {}", other.type_code()))
            }
        };
        if let Some(sess) = &self.sockets[i].session {
            let fd = fd.as_ref().map(|f| f.as_raw_fd());
            if wire::send(sess.fd.as_raw_fd(), &reply, version, fd).is_err() {
                self.disconnect(i, "cannot reply");
            }
        }
    }

    /// The status a request of guest `i` gets: ok, or the error, logged.
    fn status(&self, i: usize, r: Result<(), ProxyError>) -> Status {
        match r {
            Ok(()) => Status::ok(),
            Err(e) => self.refusal(i, &e),
        }
    }

    /// A refusal of guest `i`'s request: logged, and its errno and text
    /// for the guest.
    fn refusal(&self, i: usize, e: &ProxyError) -> Status {
        log::err(&format!("{}: {e}", self.sockets[i].path));
        Status::error(e.errno(), e.to_string())
    }

    /// RETA_QUERY (v7): entries of the NIC's RSS redirection table from
    /// `first` on, as guest `i`'s queue indexes. Refused if the table sends
    /// some hashes to NIC queues this socket does not serve: the guest
    /// could only be shown a table that is not the NIC's.
    fn reta_chunk(&self, i: usize, first: u16) -> Result<Reta, ProxyError> {
        let s = &self.sockets[i];
        let offered = s.session.as_ref().map_or(0, |sess| sess.guest.len());
        let served = &s.queues[..offered.min(s.queues.len())];
        let port = self
            .ports
            .get(&s.port)
            .ok_or_else(|| ProxyError::NotFound(format!("no port {}", s.port)))?;
        let table = nic::reta_of(s.port, port.reta_size)?;
        let mut entries = Vec::with_capacity(table.len());
        for (k, &q) in table.iter().enumerate() {
            match served.iter().position(|&sq| sq == q) {
                Some(g) => entries.push(g as u16),
                None => {
                    return Err(ProxyError::Unsupported(format!(
                        "port {}'s RSS redirection table sends entry {k} to queue {q}, which this socket (queues {}) does not serve",
                        s.port,
                        s.queue_list()
                    )))
                }
            }
        }
        let from = (first as usize).min(entries.len());
        let to = (from + shm_abi::msg::MAX_RETA_CHUNK).min(entries.len());
        Ok(Reta {
            size: entries.len() as u16,
            first: from as u16,
            entries: entries[from..to].to_vec(),
        })
    }

    /// GROW (v6): the buffer area of guest `i` grows by at least `bytes`
    /// (in [`GROW_STEP`]s), up to its socket's `max_buffers`. The new part
    /// is a memfd of its own, mapped right after the area in the proxy
    /// and, with the reply, in the guest.
    fn grow_buffers(&mut self, i: usize, bytes: u64) -> Result<(GrowAck, OwnedFd), ProxyError> {
        let sess = self.sockets[i].session.as_ref().expect("a guest sent it");
        let b = &sess.buffers;
        let end = b.end();
        let len = bytes
            .max(1)
            .checked_next_multiple_of(GROW_STEP)
            .unwrap_or(u64::MAX);
        if sess.version < 6 || !b.has_room_for(len) {
            return Err(ProxyError::NoMemory(format!(
                "guest {} asked for {} MiB more buffers: {} MiB in use of the socket's limit of {} MiB \
                 (add socket ... max_buffers <MiB>)",
                sess.pid,
                len.div_ceil(1 << 20),
                (end - b.layout.buf_off) >> 20,
                b.layout.buf_max >> 20
            )));
        }
        // Hugepages where the region has them and the part can be aligned.
        let huge = b.layout.page_size == crate::session::HUGE_2M && end.is_multiple_of(GROW_STEP);
        let name = format!("io-proxy-grow-{}", sess.pid);
        let (fd, huge) = crate::session::sealed_memfd(&name, len, huge)?;
        let off = self.add_part(i, fd.as_fd(), len, huge, "grew by")?;
        Ok((GrowAck { offset: off, len }, fd))
    }

    /// RESUME_PART (v9): a resumed guest `i` brings back a part its buffer
    /// area grew by before the restart, before it starts a queue. Checked
    /// as the region itself was ([`session::check_part`]): the area's
    /// next part, inside the limit, a memfd of that size sealed against
    /// shrinking and growing.
    fn resume_part(
        &mut self,
        i: usize,
        part: GrowAck,
        fd: Option<OwnedFd>,
    ) -> Result<GrowAck, ProxyError> {
        let sess = self.sockets[i].session.as_ref().expect("a guest sent it");
        if !sess.resumed || sess.shares_buffers || sess.started.iter().any(|&s| s) {
            return Err(ProxyError::Invalid(
                "a grown part resumes only with its own area's resume, before START".into(),
            ));
        }
        let fd = fd.ok_or_else(|| ProxyError::Invalid("RESUME_PART without its memfd".into()))?;
        let huge = session::check_part(&sess.buffers, part.offset, part.len, fd.as_fd())?;
        let off = self.add_part(i, fd.as_fd(), part.len, huge, "grew back by")?;
        Ok(GrowAck {
            offset: off,
            len: part.len,
        })
    }

    /// Maps memfd `fd` of `len` bytes at the end of guest `i`'s buffer
    /// area (GROW or RESUME_PART) and returns its region offset. Every
    /// session on these buffers may then point descriptors into it; a
    /// started one maps the part for its NIC first.
    fn add_part(
        &mut self,
        i: usize,
        fd: BorrowedFd<'_>,
        len: u64,
        huge: bool,
        what: &str,
    ) -> Result<u64, ProxyError> {
        let sess = self.sockets[i].session.as_ref().expect("a guest sent it");
        let b = sess.buffers.clone();
        let off = b
            .region
            .grow(fd, len as usize)
            .map_err(|e| ProxyError::io("map the grown buffers", e))?;
        let part = GrownPart {
            off,
            len,
            page_size: if huge { crate::session::HUGE_2M } else { 4096 },
        };
        b.grown.lock().unwrap().push(part);
        // Only the lcores polling a started queue on these buffers.
        let on_buffers: Vec<(u16, u16)> = self
            .sockets
            .iter()
            .filter_map(|s| Some((s, s.session.as_ref()?)))
            .filter(|(_, sess)| Arc::ptr_eq(&sess.buffers, &b))
            .flat_map(|(s, sess)| {
                (0..sess.guest.len())
                    .filter(|&q| sess.started[q])
                    .map(|q| (s.port, s.queues[q]))
            })
            .collect();
        let paused = self.lcores.pause_queues(&on_buffers);
        let mut failed = None;
        for (j, sj) in self.sockets.iter_mut().enumerate() {
            let port = sj.port;
            let Some(sess) = sj.session.as_mut() else {
                continue;
            };
            if !Arc::ptr_eq(&sess.buffers, &b) {
                continue;
            }
            if sess.dma.is_some() && sess.dma_grown.len() < b.grown.lock().unwrap().len() {
                let va = b.region.base().wrapping_add(off as usize);
                match dma::DmaArea::map(port, va, len as usize, part.page_size as usize) {
                    Ok(a) => sess.dma_grown.push(a),
                    Err(e) => {
                        failed = Some((j, e));
                        continue;
                    }
                }
            }
            for cell in &sess.guest {
                // SAFETY: the datapath is paused: nothing else is in
                // the slot, and the scope calls no DPDK function.
                unsafe { GuestSlot::enter(cell.get()).rules.buf_end = off + len };
            }
        }
        drop(paused);
        if let Some((j, e)) = failed {
            log::err(&format!(
                "{}: grown buffers not usable on this socket: {e}",
                self.sockets[j].path
            ));
        }
        log::info(&format!(
            "{}: guest {} buffers {what} {} MiB to {} MiB ({})",
            self.sockets[i].path,
            b.pid,
            len >> 20,
            (off + len - b.layout.buf_off) >> 20,
            if huge {
                "2 MiB hugepages"
            } else {
                "4 KiB pages"
            }
        ));
        Ok(off)
    }

    /// START: attaches guest `i`'s queue pair to its NIC queue. Returns
    /// the guest's end of the queue's tx kick socket, for START_ACK (v10).
    fn start_guest(
        &mut self,
        i: usize,
        start: Start,
        wake_fd: Option<OwnedFd>,
    ) -> Result<Option<OwnedFd>, ProxyError> {
        let s = &mut self.sockets[i];
        let sess = s
            .session
            .as_mut()
            .ok_or_else(|| ProxyError::NotFound("no session".into()))?;
        let q = start.queue as usize;
        if q >= sess.guest.len() {
            return Err(ProxyError::Invalid(format!(
                "no queue {q}: the socket serves {} queue pair{} to this guest",
                sess.guest.len(),
                if sess.guest.len() > 1 { "s" } else { "" }
            )));
        }
        if sess.started[q] {
            return Ok(None);
        }
        // Rx interrupts (v10): the queue's wake socket, which must reach
        // the guest and no one else. A descriptor without the flag is
        // closed here.
        let rx_wake = match (start.rx_intr, wake_fd) {
            (false, _) => None,
            (true, None) => {
                return Err(ProxyError::Invalid(
                    "START asks for rx interrupts but carries no wake socket".into(),
                ))
            }
            (true, Some(fd)) => match wake::check_wake_fd(fd.as_fd(), sess.pid, sess.uid) {
                Ok(()) => Some(fd),
                Err(e @ wake::WakeFdError::ForeignPeer { .. }) => {
                    return Err(ProxyError::Denied(e.to_string()))
                }
                Err(e) => return Err(ProxyError::Invalid(e.to_string())),
            },
        };
        // The tx kick socket (v10): the guest's end goes with START_ACK.
        let (tx_kick, kick_end) = if sess.version >= 10 {
            let (k, theirs) = TxKick::new().map_err(|e| ProxyError::io("tx kick socket", e))?;
            (Some(k), Some(theirs))
        } else {
            (None, None)
        };
        let nic_queue = s.queues[q];
        let port = &self.ports[&s.port];
        let room = start.rx_buf_len as u32;
        let head = start.rx_headroom as u32;
        // Frames longer than a buffer arrive as chains only if the NIC
        // scatters and the app takes them.
        let chains = port.scatter && start.scatter && sess.version >= 5;
        let need = if chains { 64 } else { port.max_rx_pktlen };
        if head >= room || room - head < need {
            return Err(ProxyError::Invalid(format!(
                "rx buffers of {room} bytes with {head} headroom cannot hold the NIC's {}-byte frames{}",
                port.max_rx_pktlen,
                if port.scatter {
                    " (enable rx scatter in the app to take them in several buffers)"
                } else {
                    " (the NIC does not scatter: use larger mbufs)"
                }
            )));
        }
        let g = sess.guest[q].get();
        let buf_off = sess.buffers.layout.buf_off;
        // The NIC may reach the guest's buffers only while a queue is
        // attached.
        if sess.dma.is_none() {
            let b = &sess.buffers;
            sess.dma = Some(dma::DmaArea::map(
                port.id,
                b.region.base().wrapping_add(b.layout.buf_off as usize),
                b.layout.buf_len as usize,
                b.layout.page_size as usize,
            )?);
        }
        // And every part the area grew by (GROW), each on its own.
        let grown: Vec<GrownPart> = sess.buffers.grown.lock().unwrap().clone();
        for part in &grown[sess.dma_grown.len()..] {
            let va = sess.buffers.region.base().wrapping_add(part.off as usize);
            sess.dma_grown.push(dma::DmaArea::map(
                port.id,
                va,
                part.len as usize,
                part.page_size as usize,
            )?);
        }
        // Every part is mapped for the NIC now: descriptors may reach the
        // area's end.
        let buf_end = sess.buffers.end();
        let area = sess.dma.as_ref().expect("mapped above");
        // SAFETY: not attached (above): control is the only party, and the
        // scope calls no DPDK function.
        unsafe {
            let mut g = GuestSlot::enter(g);
            g.rules.rx_room = start.rx_buf_len;
            g.rules.rx_headroom = start.rx_headroom;
            g.rules.buf_end = buf_end;
            g.rx_chains = chains;
            g.rx_wake = rx_wake;
            g.tx_kick = tx_kick;
        }
        let intr = if start.rx_intr { ", rx interrupts" } else { "" };
        s.pools_made += 1;
        let name = format!("shm_p{}q{}_{}", s.port, nic_queue, s.pools_made % 10000);
        let n = 4 * s.cfg.ring_entries - 1;
        // SAFETY: g is live, unattached, and outlives its pools (freed in
        // stop_guest before the session drops it).
        unsafe { pool_ops::create_pools(&name, n, g, port.socket)? };
        // Headers get buffers (and their IOVAs) from the queue setup below
        // on; creating the pools attaches none.
        // SAFETY: a short write, no other party.
        let mp = unsafe {
            let mut g = GuestSlot::enter(g);
            g.iova_base = match area.iova() {
                dma::BAD_IOVA => dma::BAD_IOVA,
                iova => iova.wrapping_sub(buf_off),
            };
            g.mp
        };
        // A port stop and start pauses every lcore polling the port; a
        // queue restart only the queue's.
        let mut st = if port.runtime_rx_setup {
            self.lcores.pause_queues(&[(s.port, nic_queue)])
        } else {
            self.lcores.pause_port(s.port)
        };
        // The queue setup fills the NIC ring from the pool (ops_dequeue uses
        // g): no reference to g is alive here.
        // SAFETY: paused (st); mp lives until stop_guest puts the idle
        // pool back before freeing it.
        if let Err(e) = unsafe { port.set_rx_pool(nic_queue, mp) } {
            drop(st);
            // SAFETY: the pools were never attached to the NIC.
            unsafe {
                pool_ops::free_pools(g);
                GuestSlot::enter(g).iova_base = dma::BAD_IOVA;
            }
            if !sess.started.iter().any(|&x| x) {
                // No IOVA may outlive the mapping.
                sess.dma = None;
                sess.dma_grown.clear();
            }
            return Err(e.context("attach queue"));
        }
        if let Some(dq) = st.queue(s.port, nic_queue) {
            dq.guest = Some(g);
        }
        drop(st);
        sess.started[q] = true;
        log::info(&format!(
            "{}: guest started queue {q}: port {} queue {nic_queue} attached{intr}; buffers DMA: {}",
            s.path, s.port, area.state
        ));
        Ok(kick_end)
    }

    /// Detaches the guest of socket `i` from its NIC queues. With
    /// `give_back`, every buffer of the guest goes back to it first.
    fn stop_guest(&mut self, i: usize, give_back: bool) -> Result<(), ProxyError> {
        let s = &mut self.sockets[i];
        let Some(sess) = s.session.as_mut() else {
            return Ok(());
        };
        // (guest queue, NIC queue, region) of every attached queue pair.
        let attached: Vec<(usize, u16, GuestPtr)> = (0..sess.guest.len())
            .filter(|&q| sess.started[q])
            .map(|q| (q, s.queues[q], sess.guest[q].get()))
            .collect();
        if attached.is_empty() {
            return Ok(());
        }
        let port = &self.ports[&s.port];
        // set_idle stops the port: every lcore polling it pauses.
        let mut st = self.lcores.pause_port(s.port);
        for &(q, nic_queue, g) in &attached {
            if let Some(dq) = st.queue(s.port, nic_queue) {
                dq.guest = None;
            }
            if give_back {
                // SAFETY: the datapath is paused.
                unsafe { crate::datapath::flush_tx(s.port, nic_queue, g, &s.stats[q]) };
            }
        }
        // Always a full stop/start here: it makes the NIC hand back every
        // header of this guest, rx and tx, before the pools go away.
        let nic_queues: Vec<u16> = attached.iter().map(|a| a.1).collect();
        // SAFETY: paused (st).
        let r = unsafe { port.set_idle(&nic_queues) };
        drop(st);
        for &(q, _, g) in &attached {
            // SAFETY: detached above: control is the only party left, and
            // the NIC holds no header of these pools any more (the port was
            // stopped with another pool behind the queue), nor does the
            // datapath.
            unsafe {
                if give_back {
                    guest_region::return_all(g);
                }
                pool_ops::free_pools(g);
                // Nor can a header of the NIC still point into the area.
                GuestSlot::enter(g).iova_base = dma::BAD_IOVA;
            }
            sess.started[q] = false;
        }
        sess.dma = None;
        sess.dma_grown.clear();
        r.map_err(|e| e.context("detach queue"))
    }

    pub fn disconnect(&mut self, i: usize, why: &str) {
        if self.sockets[i].session.is_none() {
            return;
        }
        if let Err(e) = self.stop_guest(i, false) {
            log::err(&format!("{}: {e}", self.sockets[i].path));
        }
        let s = &mut self.sockets[i];
        if let Some(sess) = s.session.take() {
            log::info(&format!("{}: guest pid {} gone ({why})", s.path, sess.pid));
        }
        for st in &s.stats {
            st.guest_broken.store(false, Ordering::Relaxed);
        }
    }

    /// Tells the guests of a port when its link changed.
    pub fn watch_links(&mut self) {
        for (id, p) in &self.ports {
            let now = p.link();
            let before = self.links.insert(*id, now);
            if before.is_none() || before == Some(now) {
                continue;
            }
            log::info(&format!(
                "port {id}: link {}",
                if now.0 { "up" } else { "down" }
            ));
            for s in self.sockets.iter().filter(|s| s.port == *id) {
                if let Some(sess) = &s.session {
                    let m = Msg::Link(msg::Link {
                        up: now.0,
                        speed: now.1,
                    });
                    let _ = wire::send(sess.fd.as_raw_fd(), &m, sess.version, None);
                }
            }
        }
    }

    /// Periodic housekeeping: drop guests that broke the protocol, tell
    /// guests about link changes.
    pub fn tick(&mut self) {
        self.watch_links();
        for i in 0..self.sockets.len() {
            if self.sockets[i]
                .stats
                .iter()
                .any(|st| st.guest_broken.load(Ordering::Relaxed))
            {
                self.disconnect(i, "guest corrupted its rings");
            }
        }
    }

    pub fn shutdown(&mut self) {
        // A planned stop: guests that understand it wait for us to come
        // back rather than take the close as a crash.
        for s in &self.sockets {
            if let Some(sess) = s.session.as_ref().filter(|x| x.version >= 8) {
                let bye = Msg::Bye("dpdk-io-proxy is stopping; it may be started again".into());
                let _ = wire::send(sess.fd.as_raw_fd(), &bye, sess.version, None);
            }
        }
        let paths: Vec<String> = self.sockets.iter().map(|s| s.path.clone()).collect();
        for p in paths {
            let _ = self.remove_socket(&p);
        }
        let mut st = self.lcores.pause_all();
        for s in st.states() {
            s.queues.clear();
        }
        drop(st);
        for (&id, p) in &self.ports {
            self.flows.flush(id);
            p.stop();
        }
    }
}
