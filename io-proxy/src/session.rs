//! One guest connection: handshake, its memfd region, and the proxy's side
//! of each queue pair in it.

use crate::access::SocketAccess;
use crate::dma::DmaArea;
use crate::error::ProxyError;
use crate::guest_region::{GuestCell, GuestRegion, BURST};
use crate::log;
use crate::nic::NicPort;
use crate::pool_ops;
use crate::stats::SocketStats;
use shm_abi::layout::{Layout, ValidLayout};
use shm_abi::msg::{self, HelloAck, Msg, Status};
use shm_abi::region::{Region, RingWatch};
use shm_abi::socket;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Weak};

/// Sizes of a guest's region, set per socket.
#[derive(Clone, Copy, Debug)]
pub struct RegionConfig {
    pub heap_mb: u64,
    /// The buffer area at attach, and the most it may grow to (v6 GROW).
    pub buffers_mb: u64,
    pub max_buffers_mb: u64,
    pub ring_entries: u32,
}

impl Default for RegionConfig {
    fn default() -> Self {
        // testpmd's default pool is ~163k mbufs of 2368 bytes (387 MiB);
        // its own allocations (ports, pool headers, rings) fit in 64 MiB
        // (l3fwd's LPM tables need 195: it runs with EAL's -m 256). A 256 MiB
        // default measured 10-15 % slower at 64 B (docs/performance.md).
        RegionConfig {
            heap_mb: 64,
            buffers_mb: 512,
            // Grown on demand, as an app's pools need: OVS's first pool
            // (262144 mbufs, 753 MiB) and testpmd's for 9216-byte mbufs
            // (1.4 GiB) fit.
            max_buffers_mb: 2048,
            // Apps commonly ask for 2048 rx descriptors (OVS, testpmd
            // --rxd=2048); a guest posts up to ring_entries - 256.
            ring_entries: 4096,
        }
    }
}

/// A guest process's buffer area: in the region of its first socket, and
/// shared by its other sockets (HELLO's SHARE_BUFFERS), so that a packet
/// received on one port is sent on another without a copy. Every session
/// of the process holds it; the proxy's list of them holds a `Weak`.
pub struct GuestBuffers {
    /// The region that holds the area (the first socket's).
    pub region: Region,
    /// Its layout; the buffer area is `buf_off..buf_off + buf_len`.
    pub layout: ValidLayout,
    /// The process it was made for: only it may name it on another socket.
    pub pid: i32,
    pub uid: u32,
    /// The memfd's identity (st_dev, st_ino), as a named region is found.
    pub inode: (u64, u64),
    /// Parts the area grew by (GROW, v6), in order after `layout`'s
    /// buffers: region offset, length and page size of each.
    pub grown: std::sync::Mutex<Vec<GrownPart>>,
}

/// A part the buffer area grew by: its own memfd, mapped at `off`.
#[derive(Clone, Copy, Debug)]
pub struct GrownPart {
    pub off: u64,
    pub len: u64,
    pub page_size: u64,
}

impl GuestBuffers {
    /// Region offset where the buffer area ends now (it grows there).
    pub fn end(&self) -> u64 {
        self.region.len() as u64
    }
    /// Where it may grow to.
    pub fn limit(&self) -> u64 {
        self.layout.buf_off + self.layout.buf_max
    }
    /// Whether `len` more bytes at the end stay within the limit.
    pub fn has_room_for(&self, len: u64) -> bool {
        self.end()
            .checked_add(len)
            .is_some_and(|e| e <= self.limit())
    }
}

/// The identity of the memfd behind `fd`.
fn inode_of(fd: BorrowedFd<'_>) -> Result<(u64, u64), ProxyError> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| ProxyError::io("fstat", e))?;
    Ok((st.st_dev, st.st_ino))
}

/// The buffers a guest named in a SHARE_BUFFERS HELLO (`fd`): one the
/// proxy made, still in use, for this same process (pid and uid).
fn find_shared(
    known: &[Weak<GuestBuffers>],
    fd: Option<OwnedFd>,
    pid: i32,
    uid: u32,
) -> Result<Arc<GuestBuffers>, ProxyError> {
    let fd = fd.ok_or_else(|| {
        ProxyError::Invalid("hello asks to share buffers but carries no region".into())
    })?;
    let inode = inode_of(fd.as_fd())?;
    let b = known
        .iter()
        .filter_map(Weak::upgrade)
        .find(|b| b.inode == inode)
        .ok_or_else(|| {
            ProxyError::NotFound("the region to share is not one this proxy serves".into())
        })?;
    if (b.pid, b.uid) != (pid, uid) {
        return Err(ProxyError::Denied(format!(
            "the region to share belongs to pid {} (uid {}), not to pid {pid} (uid {uid})",
            b.pid, b.uid
        )));
    }
    Ok(b)
}

/// The buffer area of process `pid` (uid `uid`), for a socket of it that
/// resumes sharing it (RESUME with SHARE_BUFFERS, v8): its first socket
/// resumed it already, or this one waits (the guest retries).
fn find_owned(
    known: &[Weak<GuestBuffers>],
    pid: i32,
    uid: u32,
) -> Result<Arc<GuestBuffers>, ProxyError> {
    known
        .iter()
        .rev()
        .filter_map(Weak::upgrade)
        .find(|b| (b.pid, b.uid) == (pid, uid))
        .ok_or_else(|| {
            ProxyError::NotFound(format!(
                "no buffer area of pid {pid} to share yet (its first port resumes it)"
            ))
        })
}

pub struct Session {
    pub fd: OwnedFd,
    pub pid: i32,
    pub uid: u32,
    pub name: String,
    pub version: u16,
    pub hugepages: bool,
    /// The buffer area the guest's descriptors point into: this
    /// connection's region, or one it shares with the guest's other
    /// sockets.
    pub buffers: Arc<GuestBuffers>,
    /// `buffers` are another socket's (SHARE_BUFFERS).
    pub shares_buffers: bool,
    /// The region was a guest's own, brought back (RESUME, v8).
    pub resumed: bool,
    /// The buffer area registered and mapped for the NIC, while started:
    /// as it was at attach, and each part it grew by.
    pub dma: Option<DmaArea>,
    pub dma_grown: Vec<DmaArea>,
    /// The region's layout (also in the GuestRegions, which the datapath
    /// may be using: control reads this copy).
    pub layout: ValidLayout,
    /// Queue pair k of the region, served by the socket's k-th NIC queue.
    pub guest: Vec<GuestCell>,
    /// Which queue pairs are attached to their NIC queue.
    pub started: Vec<bool>,
    /// Ring depths for telemetry; None if the extra mapping failed.
    pub rings: Option<Arc<RingDepths>>,
}

/// How full a guest's rings are, read through a read-only mapping of
/// their indexes: where buffers wait tells which side is behind.
pub struct RingDepths {
    watch: RingWatch,
    layout: ValidLayout,
}

/// Ring names, in the order of [`RingDepths::read`].
pub const RING_NAMES: [&str; 4] = ["fill", "rx", "tx", "txdone"];

impl RingDepths {
    fn new(region: &Region, layout: &ValidLayout) -> std::io::Result<RingDepths> {
        let end = layout.rings_end();
        let len = end.div_ceil(layout.page_size) * layout.page_size;
        Ok(RingDepths {
            watch: RingWatch::map(region.fd(), len as usize)?,
            layout: *layout,
        })
    }

    /// Descriptors published and not yet consumed in queue pair `q`'s
    /// fill, rx, tx and txdone rings (None for a ring whose indexes are
    /// impossible).
    pub fn read(&self, q: u16) -> [Option<u32>; 4] {
        let l = &self.layout;
        let Some(rings) = l.queue(q) else {
            return [None; 4];
        };
        rings
            .offsets()
            .map(|off| self.watch.in_flight(off, l.ring_entries))
    }

    pub fn ring_entries(&self) -> u32 {
        self.layout.ring_entries
    }
}

pub(crate) const HUGE_2M: u64 = 2 << 20;
/// A buffer area grows (GROW) by multiples of this.
pub const GROW_STEP: u64 = 2 << 20;

fn free_hugepages_2m() -> u64 {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A sealed memfd of `len` bytes: of 2 MiB hugepages if `huge` and there
/// are that many free, else of plain pages. Says which it is.
pub(crate) fn sealed_memfd(
    name: &str,
    len: u64,
    huge: bool,
) -> Result<(OwnedFd, bool), ProxyError> {
    use memfd::{FileSeal, HugetlbSize, MemfdOptions};
    let seals = [FileSeal::SealShrink, FileSeal::SealGrow, FileSeal::SealSeal];
    if huge && free_hugepages_2m() * HUGE_2M >= len {
        let made = MemfdOptions::default()
            .allow_sealing(true)
            .close_on_exec(true)
            .hugetlb(Some(HugetlbSize::Huge2MB))
            .create(name)
            .ok()
            .and_then(|m| m.as_file().set_len(len).ok().map(|_| m));
        if let Some(m) = made {
            let _ = m.add_seals(&seals);
            return Ok((OwnedFd::from(m.into_file()), true));
        }
    }
    let m = MemfdOptions::default()
        .allow_sealing(true)
        .close_on_exec(true)
        .create(name)
        .map_err(|e| ProxyError::io("memfd_create", std::io::Error::other(e)))?;
    m.as_file()
        .set_len(len)
        .map_err(|e| ProxyError::io("memfd size", e))?;
    m.add_seals(&seals)
        .map_err(|e| ProxyError::io("memfd seals", std::io::Error::other(e)))?;
    Ok((OwnedFd::from(m.into_file()), false))
}

/// A sealed memfd of `layout.region_size`, mapped. Hugetlb when there are
/// enough free 2 MiB pages, else plain pages. With `grows` (protocol v6)
/// the buffer area may grow to `max_buffers_mb`, address space for which
/// is reserved after it.
fn create_region(
    cfg: &RegionConfig,
    queues: u16,
    name: &str,
    grows: bool,
) -> Result<(Region, Layout, bool), ProxyError> {
    let layout_for = |page: u64| {
        let mut l = Layout::compute_queues(
            page,
            cfg.ring_entries,
            queues,
            cfg.heap_mb << 20,
            cfg.buffers_mb << 20,
        );
        if grows {
            l.buf_max = ((cfg.max_buffers_mb << 20).next_multiple_of(page)).max(l.buf_len);
        }
        l
    };
    let map = |fd: OwnedFd, l: &Layout| {
        Region::map_growable(
            fd,
            l.region_size as usize,
            (l.buf_off + l.buf_max) as usize,
            l.page_size as usize,
        )
        .map_err(|e| ProxyError::io("mmap", e))
    };
    let huge_layout = layout_for(HUGE_2M);
    if let Ok((fd, true)) = sealed_memfd(name, huge_layout.region_size, true) {
        if let Ok(r) = map(fd, &huge_layout) {
            return Ok((r, huge_layout, true));
        }
    }
    let layout = layout_for(4096);
    let (fd, _) = sealed_memfd(name, layout.region_size, false)?;
    Ok((map(fd, &layout)?, layout, false))
}

/// The region a guest brings back (RESUME, v8): its memfd, as an earlier
/// proxy made it, and the layout that proxy gave. Nothing in it is taken
/// on trust: it must be a memfd sealed against shrinking and growing (so
/// that the guest cannot make our mapping fault), exactly the layout's
/// size, with a layout that validates and the socket's queue count. Its
/// rings continue from where their indexes stand; the guest emptied them.
fn adopt_region(
    fd: Option<OwnedFd>,
    layout: Option<Layout>,
    queues: u16,
) -> Result<(Region, Layout, bool), ProxyError> {
    let (Some(fd), Some(l)) = (fd, layout) else {
        return Err(ProxyError::Invalid(
            "RESUME without the region's memfd and layout".into(),
        ));
    };
    let size = sealed_stat(fd.as_fd(), "the region")?.st_size as u64;
    if size != l.region_size {
        return Err(ProxyError::Invalid(format!(
            "the region has {size} bytes, its layout says {}",
            l.region_size
        )));
    }
    if l.queue_count != queues {
        return Err(ProxyError::Invalid(format!(
            "the region has {} queue pairs, this socket serves {queues}",
            l.queue_count
        )));
    }
    l.validate(size)?;
    // Room behind it to grow into (GROW), as for a new region; the parts
    // it grew by before come next (RESUME_PART).
    let page = (l.page_size as usize).max(4096);
    let reserve = ((l.buf_off + l.buf_max) as usize).max(size as usize);
    let region = Region::map_growable(fd, size as usize, reserve, page)
        .map_err(|e| ProxyError::io("map the resumed region", e))?;
    Ok((region, l, l.page_size == HUGE_2M))
}

/// What fstat says of memfd `fd` that a guest passed (`what`), which must
/// be sealed against shrinking and growing: else the guest could make our
/// mapping of it fault.
fn sealed_stat(fd: BorrowedFd<'_>, what: &str) -> Result<nix::sys::stat::FileStat, ProxyError> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    let seals = fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS)
        .map_err(|e| ProxyError::Denied(format!("{what} is not a memfd (F_GET_SEALS: {e})")))?;
    let seals = SealFlag::from_bits_truncate(seals);
    if !seals.contains(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW) {
        return Err(ProxyError::Denied(format!(
            "{what} is not sealed against shrinking and growing"
        )));
    }
    nix::sys::stat::fstat(fd.as_raw_fd())
        .map_err(|e| ProxyError::io("fstat", std::io::Error::from_raw_os_error(e as i32)))
}

/// A part of `len` bytes at region offset `off` that a resumed guest
/// brings back (RESUME_PART, v9) for `buffers`: it must come next (at the
/// area's end), be whole steps of growth inside the socket's limit, and
/// be a sealed memfd of exactly `len` bytes. Says whether it is of 2 MiB
/// hugepages (as hugetlbfs reports its block size).
pub fn check_part(
    buffers: &GuestBuffers,
    off: u64,
    len: u64,
    fd: BorrowedFd<'_>,
) -> Result<bool, ProxyError> {
    let end = buffers.end();
    if off != end || len == 0 || !len.is_multiple_of(GROW_STEP) || !buffers.has_room_for(len) {
        return Err(ProxyError::Invalid(format!(
            "a part of {len} bytes at {off} does not follow the area (end {end}, limit {})",
            buffers.limit()
        )));
    }
    let st = sealed_stat(fd, "the part")?;
    let size = st.st_size as u64;
    if size != len {
        return Err(ProxyError::Invalid(format!(
            "the part has {size} bytes, {len} were announced"
        )));
    }
    Ok(st.st_blksize as u64 == HUGE_2M)
}

fn wait_readable(fd: &OwnedFd, ms: u16) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut p, PollTimeout::from(ms)), Ok(n) if n > 0)
}

/// Tells a guest why it is refused (ERROR), best effort.
pub fn send_error(fd: &OwnedFd, version: u16, e: &ProxyError) {
    let m = Msg::Error(Status::error(e.errno(), e.to_string()));
    let _ = socket::send(fd.as_raw_fd(), &m, version, None);
}

/// Runs the handshake on a freshly accepted connection for a socket that
/// serves NIC queues `queues` of `port` (their counters in `stats`). A
/// guest older than v5 gets the first queue only. `known` lists the
/// buffer areas of connected guests: a guest may name its own to share
/// it, and a new one joins the list.
pub fn handshake(
    fd: OwnedFd,
    cfg: &RegionConfig,
    port: &NicPort,
    queues: &[u16],
    stats: &[Arc<SocketStats>],
    known: &mut Vec<Weak<GuestBuffers>>,
    access: &SocketAccess,
) -> Result<Session, ProxyError> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let cred =
        getsockopt(&fd, PeerCredentials).map_err(|e| ProxyError::io("peer credentials", e))?;
    if !wait_readable(&fd, 2000) {
        return Err(ProxyError::Invalid(format!(
            "pid {}: no hello within 2 s",
            cred.pid()
        )));
    }
    // Any descriptor the guest attached is closed by recv.
    let received = socket::recv(fd.as_raw_fd(), true)
        .map_err(|e| match e {
            socket::RecvError::Malformed(p) => ProxyError::Protocol(p),
            socket::RecvError::Io(e) => ProxyError::io("receive hello", e),
            socket::RecvError::TooLong => {
                ProxyError::Protocol(msg::ProtoError::Invalid("hello too long"))
            }
        })?
        .ok_or_else(|| ProxyError::Invalid("guest closed before hello".into()))?;
    let hello = match received.msg {
        Msg::Hello(h) => h,
        other => {
            let e = ProxyError::Protocol(msg::ProtoError::Unexpected(other.type_code()));
            send_error(&fd, msg::VERSION_MAX, &e);
            return Err(e);
        }
    };
    let Some(version) = msg::negotiate(hello.version_min, hello.version_max) else {
        let e = ProxyError::Unsupported(format!(
            "no common protocol version (guest {}..{}, proxy {}..{})",
            hello.version_min,
            hello.version_max,
            msg::VERSION_MIN,
            msg::VERSION_MAX
        ));
        send_error(&fd, msg::VERSION_MAX, &e);
        return Err(e);
    };
    if let Err(e) = access.admit(cred.uid(), cred.gid()) {
        let e = e.context(&format!("pid {} ({})", cred.pid(), hello.name));
        send_error(&fd, version, &e);
        return Err(e);
    }
    let offered = if version >= 5 { queues.len() } else { 1 };
    let share = version >= 5 && hello.flags & msg::HELLO_SHARE_BUFFERS != 0;
    let resume = version >= 8 && hello.flags & msg::HELLO_RESUME != 0;
    let mut passed = received.fd;
    let shared = if share {
        // Resuming, the memfd is this socket's rings: the buffers are those
        // the process's first socket resumed.
        let found = if resume {
            find_owned(known, cred.pid(), cred.uid())
        } else {
            find_shared(known, passed.take(), cred.pid(), cred.uid())
        };
        match found {
            Ok(b) => Some(b),
            Err(e) => {
                send_error(&fd, version, &e);
                return Err(e);
            }
        }
    } else {
        None
    };
    let resumed = if resume {
        match adopt_region(passed.take(), hello.resume, offered as u16) {
            Ok(r) => Some(r),
            Err(e) => {
                let e = e.context(&format!("pid {}: resume", cred.pid()));
                send_error(&fd, version, &e);
                return Err(e);
            }
        }
    } else {
        None
    };
    // Any other descriptor the HELLO carried closes here.
    drop(passed);
    // A connection that shares buffers gets a region of rings only.
    let cfg = match shared {
        Some(_) => RegionConfig {
            heap_mb: 0,
            buffers_mb: 0,
            max_buffers_mb: 0,
            ..*cfg
        },
        None => *cfg,
    };
    let (region, layout, hugepages) = match resumed {
        Some(r) => r,
        None => create_region(
            &cfg,
            offered as u16,
            &format!("io-proxy-p{}q{}", port.id, queues[0]),
            version >= 6,
        )?,
    };
    let layout = layout.validate(region.len() as u64)?;
    let buffers = match shared {
        Some(b) => b,
        None => {
            let b = Arc::new(GuestBuffers {
                region: region.clone(),
                layout,
                pid: cred.pid(),
                uid: cred.uid(),
                inode: inode_of(region.fd())?,
                grown: std::sync::Mutex::new(Vec::new()),
            });
            known.retain(|w| w.strong_count() > 0);
            known.push(Arc::downgrade(&b));
            b
        }
    };
    let (link_up, link_speed) = port.link();
    let ack = HelloAck {
        version,
        layout: layout.get(),
        mac: port.mac,
        mtu: port.mtu,
        max_rx_pktlen: port.max_rx_pktlen,
        link_speed,
        link_up,
        nic_port: port.id,
        nic_queue: queues[0],
        nic_name: port.name.clone(),
        rx_fill_min: port.rx_held + pool_ops::RX_POOL_CACHE + 2 * BURST as u32,
        // Scatter means chains, which only v5 has; a NIC that chains
        // without the offload (net_pcap) scatters too.
        rx_offloads: if version >= 5 {
            port.rx_offloads
                | if port.scatter {
                    shm_abi::desc::RX_OFFLOAD_SCATTER
                } else {
                    0
                }
        } else {
            port.rx_offloads & !shm_abi::desc::RX_OFFLOAD_SCATTER
        },
        ptypes: port.ptypes.clone(),
        rss_hf: port.rss_hf,
        rss_key: port.rss_key.clone(),
        shared_buffers: share,
        tx_offloads: if version >= 7 { port.tx_offloads } else { 0 },
        reta_size: if version >= 7 { port.reta_size } else { 0 },
    };
    let rx_meta = ack.rx_meta();
    let tx_meta_flags = shm_abi::desc::tx_meta_flags(ack.tx_offloads);
    socket::send(
        fd.as_raw_fd(),
        &Msg::HelloAck(ack),
        version,
        Some(region.fd().as_raw_fd()),
    )
    .map_err(|e| ProxyError::io("send hello ack", e))?;
    let rings = match RingDepths::new(&region, &layout) {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            log::warn(&format!(
                "pid {}: no ring depths in telemetry: {e}",
                cred.pid()
            ));
            None
        }
    };
    let mut guest = Vec::with_capacity(offered);
    for (q, stats) in stats.iter().take(offered).enumerate() {
        let mut g = GuestRegion::with_buffers(
            &region,
            layout,
            q as u16,
            buffers.region.clone(),
            &buffers.layout,
            stats.clone(),
            port.id,
        )?;
        g.rules.max_frame = port.max_rx_pktlen.max(64);
        g.rules.chains = version >= 5;
        g.rules.tx_meta = version >= 7;
        g.tx_meta_flags = tx_meta_flags;
        g.rx_meta = rx_meta;
        guest.push(GuestCell::new(g));
    }
    Ok(Session {
        fd,
        pid: cred.pid(),
        uid: cred.uid(),
        name: hello.name,
        version,
        hugepages,
        buffers,
        shares_buffers: share,
        resumed: resume,
        dma: None,
        dma_grown: Vec::new(),
        layout,
        guest,
        started: vec![false; offered],
        rings,
    })
}
