//! The control messages between a guest (`sock` bus) and `dpdk-io-proxy`,
//! over a `SOCK_SEQPACKET` unix socket. One message per packet: an 8-byte
//! header (magic, version, type), then the type's fields in little endian
//! at fixed offsets; see docs/protocol.md.
//!
//! [`Msg::decode`] is the only way in from the wire: any bytes give a
//! [`Msg`] or a [`ProtoError`], never a panic. [`Msg::encode`] is the only
//! way out.

use crate::layout::Layout;

pub const MAGIC: u32 = 0x5348_4d50; // "SHMP"
/// Protocol versions this build speaks.
/// v2: 8-byte descriptors without ids (v1: 16 bytes with ids);
/// v3: rx fill minimum in HELLO_ACK; v4: rx metadata; v5: several queue
/// pairs per socket (layout and RSS in HELLO_ACK, the queue in START), and
/// one buffer area for all of a guest's sockets (HELLO's SHARE_BUFFERS);
/// v6: the buffer area grows on request (its limit in HELLO_ACK, GROW);
/// v7: tx offloads carried with the packet (HELLO_ACK's `tx_offloads`,
/// [`crate::desc::TX_META`]), the NIC's RSS redirection table (RETA_QUERY);
/// v8: a guest resumes its region with a restarted proxy (HELLO's
/// [`HELLO_RESUME`]); v9: a resumed buffer area brings back the parts it
/// grew by (RESUME_PART); v10: wake-ups (START's [`START_RX_INTR`] and
/// its rx wake socket, START_ACK's tx kick socket, the queue control lines
/// of [`crate::wake`]).
pub const VERSION_MIN: u16 = 3;
pub const VERSION_MAX: u16 = 10;
/// Largest message on the wire.
pub const MAX_MSG: usize = 512;
/// Bytes of the header every message starts with.
pub const HEADER_LEN: usize = 8;

pub const MSG_HELLO: u16 = 1;
pub const MSG_HELLO_ACK: u16 = 2;
pub const MSG_START: u16 = 3;
pub const MSG_START_ACK: u16 = 4;
pub const MSG_STOP: u16 = 5;
pub const MSG_STOP_ACK: u16 = 6;
pub const MSG_LINK: u16 = 7;
pub const MSG_ERROR: u16 = 8;
/// v6: the guest asks for more buffer area; GROW_ACK brings it (a memfd
/// to map at the region's end), ERROR (ENOMEM) refuses.
pub const MSG_GROW: u16 = 9;
pub const MSG_GROW_ACK: u16 = 10;
/// v7: the guest asks for entries of the RSS redirection table from
/// `first` on; RETA brings up to [`MAX_RETA_CHUNK`] of them, ERROR refuses.
pub const MSG_RETA_QUERY: u16 = 11;
pub const MSG_RETA: u16 = 12;
/// v8: proxy -> guest, the proxy is stopping on purpose (SIGTERM,
/// SIGINT, `quit`) and may be started again: the guest waits for the
/// socket instead of taking the close as a crash.
pub const MSG_BYE: u16 = 13;
/// v9: guest -> proxy, right after the HELLO_ACK of a resume: one part
/// its buffer area grew by (GROW) before the restart, with that part's
/// memfd; the proxy maps it at the area's end and answers GROW_ACK with
/// the same offset and length and no descriptor, or ERROR.
pub const MSG_RESUME_PART: u16 = 14;
/// Most RETA entries one RETA message carries.
pub const MAX_RETA_CHUNK: usize = 128;

/// Why received bytes are not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    Short,
    BadMagic,
    /// A type this build does not know.
    UnknownType(u16),
    /// A known type that was not expected here.
    Unexpected(u16),
    Invalid(&'static str),
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::Short => write!(f, "message too short"),
            ProtoError::BadMagic => write!(f, "bad magic"),
            ProtoError::UnknownType(t) => write!(f, "unknown message type {t}"),
            ProtoError::Unexpected(t) => write!(f, "unexpected message type {t}"),
            ProtoError::Invalid(why) => write!(f, "invalid message: {why}"),
        }
    }
}

impl std::error::Error for ProtoError {}

impl ProtoError {
    /// The errno a peer is told, or a C caller returns.
    pub fn errno(&self) -> i32 {
        libc::EPROTO
    }
}

/// Little-endian writer for one message.
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn new(msg_type: u16, version: u16) -> Writer {
        let mut w = Writer {
            buf: Vec::with_capacity(MAX_MSG),
        };
        w.u32(MAGIC).u16(version).u16(msg_type);
        w
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A fixed-size, NUL-padded string field (cut at N - 1 bytes).
    fn str<const N: usize>(&mut self, s: &str) -> &mut Self {
        let mut field = [0u8; N];
        let b = s.as_bytes();
        let n = b.len().min(N - 1);
        field[..n].copy_from_slice(&b[..n]);
        self.buf.extend_from_slice(&field);
        self
    }
}

/// Bounds-checked little-endian reader over a received message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let end = self.pos.checked_add(N).ok_or(ProtoError::Short)?;
        let s = self.buf.get(self.pos..end).ok_or(ProtoError::Short)?;
        self.pos = end;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtoError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, ProtoError> {
        Ok(i32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn str<const N: usize>(&mut self) -> Result<String, ProtoError> {
        let a = self.take::<N>()?;
        let end = a.iter().position(|&b| b == 0).unwrap_or(N);
        Ok(String::from_utf8_lossy(&a[..end]).into_owned())
    }
}

/// HELLO: guest -> proxy, first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version_min: u16,
    pub version_max: u16,
    pub pid: u32,
    pub name: String,
    /// v5: [`HELLO_SHARE_BUFFERS`] or 0; v8: or [`HELLO_RESUME`].
    pub flags: u32,
    /// v8, with [`HELLO_RESUME`]: the layout of the region the guest
    /// brings back (its memfd comes with the message), as the proxy that
    /// made it said. Checked against the memfd before anything is used.
    pub resume: Option<Layout>,
}

/// HELLO flag: the message carries the memfd of a region this proxy gave
/// the same guest process on another socket; this connection's buffers
/// are that region's buffer area (its pools serve every port).
pub const HELLO_SHARE_BUFFERS: u32 = 1;

/// HELLO flag (v8): the message carries the memfd of the region an earlier
/// proxy made for this guest, and its layout: the guest's pools live in
/// it, so the new proxy serves the guest in it instead of a new one. The
/// guest has emptied its rings (see docs/protocol.md, "Resume").
pub const HELLO_RESUME: u32 = 2;

/// HELLO_ACK: proxy -> guest, carries the region's memfd (SCM_RIGHTS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloAck {
    pub version: u16,
    /// As sent: the guest checks it against the memfd
    /// ([`Layout::validate`]) before it uses any part of it.
    pub layout: Layout,
    pub mac: [u8; 6],
    pub mtu: u16,
    pub max_rx_pktlen: u32,
    pub link_speed: u32,
    pub link_up: bool,
    pub nic_port: u16,
    pub nic_queue: u16,
    pub nic_name: String,
    /// Fill buffers the NIC queue needs posted to receive at full rate
    /// (its rx descriptors, plus what the proxy keeps ready): the least
    /// the guest keeps posted.
    pub rx_fill_min: u32,
    /// v4: the rx offloads whose results the NIC queue delivers
    /// (`RTE_ETH_RX_OFFLOAD_CHECKSUM`, `_RSS_HASH`), passed on to the guest
    /// as rx metadata ([`crate::desc::RxMeta`]); 0 before v4.
    pub rx_offloads: u64,
    /// v4: the packet types the NIC recognizes (at most [`MAX_PTYPES`]);
    /// empty before v4.
    pub ptypes: Vec<u32>,
    /// v5: the hash functions of the NIC's RSS over the queues (0: the
    /// NIC spreads packets its own way, or serves one queue), and its key
    /// (at most [`MAX_RSS_KEY`] bytes; empty if unknown). The layout's
    /// `queue_count` says how many queue pairs the socket serves.
    pub rss_hf: u64,
    pub rss_key: Vec<u8>,
    /// v5: the answer to [`HELLO_SHARE_BUFFERS`]: this connection's memfd
    /// holds its rings only (no heap, no buffer area); descriptors name
    /// buffers in the region the guest sent, by offsets in that region.
    pub shared_buffers: bool,
    /// v7: the `RTE_ETH_TX_OFFLOAD_*` of [`crate::desc::TX_OFFLOADS_PASSED`]
    /// the NIC applies to the guest's packets, asked for with tx metadata.
    pub tx_offloads: u64,
    /// v7: entries of the NIC's RSS redirection table, as RETA_QUERY
    /// answers (0: it has none to show).
    pub reta_size: u16,
}

/// Most packet types a HELLO_ACK carries.
pub const MAX_PTYPES: usize = 32;
/// Longest RSS key a HELLO_ACK carries.
pub const MAX_RSS_KEY: usize = 64;

impl HelloAck {
    /// Whether rx descriptors of this connection may carry rx metadata
    /// (see [`crate::desc::rx_meta_enabled`]).
    pub fn rx_meta(&self) -> bool {
        crate::desc::rx_meta_enabled(self.version, self.rx_offloads, &self.ptypes)
    }
}

/// START: guest -> proxy. The guest has posted fill buffers of at least
/// `rx_buf_len` bytes of data room; the proxy attaches the NIC queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub rx_buf_len: u16,
    pub rx_headroom: u16,
    /// v5: the queue pair to attach (always 0 before v5).
    pub queue: u16,
    /// v5: the app takes packets of several buffers on this queue (it
    /// enabled `RTE_ETH_RX_OFFLOAD_SCATTER`): a NIC that scatters may
    /// deliver frames longer than one buffer as chains ([`crate::desc::SEG_MORE`]).
    pub scatter: bool,
    /// v10: the app sleeps on this queue's rx interrupt: the message
    /// carries the queue's wake socket ([`crate::wake`]), which the proxy
    /// signals after it publishes rx while the guest is armed.
    pub rx_intr: bool,
}

/// START flags (v5: `scatter`; v10: `rx_intr`, with a descriptor).
pub const START_SCATTER: u16 = 1;
pub const START_RX_INTR: u16 = 2;

/// A status reply (START_ACK, STOP_ACK) or an ERROR: a negative errno (0
/// for success) and a text for the peer's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: i32,
    pub text: String,
}

impl Status {
    pub fn ok() -> Status {
        Status {
            code: 0,
            text: "ok".into(),
        }
    }
    /// A failure: `errno` positive, as in `libc::EINVAL`.
    pub fn error(errno: i32, text: impl Into<String>) -> Status {
        Status {
            code: -errno.abs(),
            text: text.into(),
        }
    }
}

/// LINK: proxy -> guest, the NIC's link changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    pub speed: u32,
}

/// One control message, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Hello(Hello),
    HelloAck(HelloAck),
    Start(Start),
    StartAck(Status),
    Stop,
    StopAck(Status),
    Link(Link),
    Error(Status),
    Grow(Grow),
    GrowAck(GrowAck),
    RetaQuery(RetaQuery),
    Reta(Reta),
    /// v8: why the proxy is going away.
    Bye(String),
    /// v9: a grown part of a resumed buffer area.
    ResumePart(GrowAck),
}

/// v7: the redirection table's entries from `first` on, please.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetaQuery {
    pub first: u16,
}

/// v7: entries `first..first + entries.len()` of the RSS redirection table
/// of `size` entries, each the index of one of this socket's queue pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reta {
    pub size: u16,
    pub first: u16,
    pub entries: Vec<u16>,
}

/// v6: at least `bytes` more buffer area, please.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grow {
    pub bytes: u64,
}

/// v6: the buffer area grew by `len` bytes at region offset `offset` (the
/// region's end before), backed by the memfd that comes with it, mapped
/// from its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowAck {
    pub offset: u64,
    pub len: u64,
}

impl Msg {
    /// The wire type code.
    pub fn type_code(&self) -> u16 {
        match self {
            Msg::Hello(_) => MSG_HELLO,
            Msg::HelloAck(_) => MSG_HELLO_ACK,
            Msg::Start(_) => MSG_START,
            Msg::StartAck(_) => MSG_START_ACK,
            Msg::Stop => MSG_STOP,
            Msg::StopAck(_) => MSG_STOP_ACK,
            Msg::Link(_) => MSG_LINK,
            Msg::Error(_) => MSG_ERROR,
            Msg::Grow(_) => MSG_GROW,
            Msg::GrowAck(_) => MSG_GROW_ACK,
            Msg::RetaQuery(_) => MSG_RETA_QUERY,
            Msg::Reta(_) => MSG_RETA,
            Msg::Bye(_) => MSG_BYE,
            Msg::ResumePart(_) => MSG_RESUME_PART,
        }
    }

    /// File descriptors this message type may carry: the region's memfd
    /// with HELLO_ACK, the region to share with HELLO (v5,
    /// [`HELLO_SHARE_BUFFERS`]), the new buffers with GROW_ACK (v6), a
    /// grown part with RESUME_PART (v9), the queue's rx wake socket with
    /// START (v10, [`START_RX_INTR`]) and its tx kick socket with a
    /// successful START_ACK (v10), none with anything else. Whatever else
    /// arrives is closed ([`crate::socket::recv`]).
    pub fn fds_expected(type_code: u16) -> usize {
        usize::from(matches!(
            type_code,
            MSG_HELLO_ACK | MSG_HELLO | MSG_GROW_ACK | MSG_RESUME_PART | MSG_START | MSG_START_ACK
        ))
    }

    /// The message in `version`'s format (HELLO is always sent as
    /// [`VERSION_MAX`]: it offers a range; HELLO_ACK in its own version).
    pub fn encode(&self, version: u16) -> Vec<u8> {
        let version = match self {
            Msg::Hello(_) => VERSION_MAX,
            Msg::HelloAck(a) => a.version,
            _ => version,
        };
        let mut w = Writer::new(self.type_code(), version);
        match self {
            Msg::Hello(h) => {
                // RESUME says a layout follows: set exactly when one does.
                let flags = match h.resume {
                    Some(_) => h.flags | HELLO_RESUME,
                    None => h.flags & !HELLO_RESUME,
                };
                w.u16(h.version_min)
                    .u16(h.version_max)
                    .u32(h.pid)
                    .str::<32>(&h.name)
                    .u32(flags);
                if let Some(l) = &h.resume {
                    encode_layout(l, &mut w);
                    w.u16(l.queue_count).u64(l.queue_stride).u64(l.buf_max);
                }
            }
            Msg::HelloAck(a) => {
                w.u16(a.version);
                encode_layout(&a.layout, &mut w);
                for b in a.mac {
                    w.u8(b);
                }
                w.u16(a.mtu)
                    .u32(a.max_rx_pktlen)
                    .u32(a.link_speed)
                    .u8(a.link_up as u8)
                    .u16(a.nic_port)
                    .u16(a.nic_queue)
                    .str::<64>(&a.nic_name)
                    .u32(a.rx_fill_min);
                if a.version >= 4 {
                    let n = a.ptypes.len().min(MAX_PTYPES);
                    w.u64(a.rx_offloads).u8(n as u8);
                    for &t in &a.ptypes[..n] {
                        w.u32(t);
                    }
                }
                if a.version >= 5 {
                    let n = a.rss_key.len().min(MAX_RSS_KEY);
                    w.u16(a.layout.queue_count)
                        .u64(a.layout.queue_stride)
                        .u64(a.rss_hf)
                        .u8(n as u8);
                    for &b in &a.rss_key[..n] {
                        w.u8(b);
                    }
                    w.u8(a.shared_buffers as u8);
                }
                if a.version >= 6 {
                    w.u64(a.layout.buf_max);
                }
                if a.version >= 7 {
                    w.u64(a.tx_offloads).u16(a.reta_size);
                }
            }
            Msg::Start(s) => {
                w.u16(s.rx_buf_len).u16(s.rx_headroom);
                if version >= 5 {
                    let mut flags = 0;
                    if s.scatter {
                        flags |= START_SCATTER;
                    }
                    if s.rx_intr && version >= 10 {
                        flags |= START_RX_INTR;
                    }
                    w.u16(s.queue).u16(flags);
                }
            }
            Msg::StartAck(s) | Msg::StopAck(s) | Msg::Error(s) => {
                w.i32(s.code).str::<128>(&s.text);
            }
            Msg::Stop => {}
            Msg::Link(l) => {
                w.u8(l.up as u8).u32(l.speed);
            }
            Msg::Grow(g) => {
                w.u64(g.bytes);
            }
            Msg::GrowAck(g) | Msg::ResumePart(g) => {
                w.u64(g.offset).u64(g.len);
            }
            Msg::RetaQuery(q) => {
                w.u16(q.first);
            }
            Msg::Bye(text) => {
                w.str::<128>(text);
            }
            Msg::Reta(t) => {
                let n = t.entries.len().min(MAX_RETA_CHUNK);
                w.u16(t.size).u16(t.first).u16(n as u16);
                for &e in &t.entries[..n] {
                    w.u16(e);
                }
            }
        }
        w.buf
    }

    /// Parses one received message: its header's version and the message.
    /// Trailing bytes are allowed (a newer minor revision may append).
    pub fn decode(buf: &[u8]) -> Result<(u16, Msg), ProtoError> {
        let mut r = Reader { buf, pos: 0 };
        if r.u32()? != MAGIC {
            return Err(ProtoError::BadMagic);
        }
        let version = r.u16()?;
        let msg = match r.u16()? {
            MSG_HELLO => {
                let mut h = Hello {
                    version_min: r.u16()?,
                    version_max: r.u16()?,
                    pid: r.u32()?,
                    name: r.str::<32>()?,
                    flags: if version >= 5 { r.u32()? } else { 0 },
                    resume: None,
                };
                if version >= 8 && h.flags & HELLO_RESUME != 0 {
                    let mut l = decode_layout(&mut r)?;
                    l.queue_count = r.u16()?;
                    l.queue_stride = r.u64()?;
                    l.buf_max = r.u64()?;
                    h.resume = Some(l);
                }
                Msg::Hello(h)
            }
            MSG_HELLO_ACK => Msg::HelloAck(decode_hello_ack(&mut r)?),
            MSG_START => {
                let (rx_buf_len, rx_headroom) = (r.u16()?, r.u16()?);
                let (queue, flags) = if version >= 5 {
                    (r.u16()?, r.u16()?)
                } else {
                    (0, 0)
                };
                Msg::Start(Start {
                    rx_buf_len,
                    rx_headroom,
                    queue,
                    scatter: flags & START_SCATTER != 0,
                    rx_intr: version >= 10 && flags & START_RX_INTR != 0,
                })
            }
            MSG_START_ACK => Msg::StartAck(decode_status(&mut r)?),
            MSG_STOP => Msg::Stop,
            MSG_STOP_ACK => Msg::StopAck(decode_status(&mut r)?),
            MSG_LINK => Msg::Link(Link {
                up: r.u8()? != 0,
                speed: r.u32()?,
            }),
            MSG_ERROR => Msg::Error(decode_status(&mut r)?),
            MSG_GROW if version >= 6 => Msg::Grow(Grow { bytes: r.u64()? }),
            MSG_GROW_ACK if version >= 6 => Msg::GrowAck(GrowAck {
                offset: r.u64()?,
                len: r.u64()?,
            }),
            MSG_BYE if version >= 8 => Msg::Bye(r.str::<128>()?),
            MSG_RESUME_PART if version >= 9 => Msg::ResumePart(GrowAck {
                offset: r.u64()?,
                len: r.u64()?,
            }),
            MSG_RETA_QUERY if version >= 7 => Msg::RetaQuery(RetaQuery { first: r.u16()? }),
            MSG_RETA if version >= 7 => {
                let (size, first, n) = (r.u16()?, r.u16()?, r.u16()? as usize);
                if n > MAX_RETA_CHUNK {
                    return Err(ProtoError::Invalid("too many RETA entries"));
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(r.u16()?);
                }
                Msg::Reta(Reta {
                    size,
                    first,
                    entries,
                })
            }
            t => return Err(ProtoError::UnknownType(t)),
        };
        Ok((version, msg))
    }
}

fn decode_status(r: &mut Reader) -> Result<Status, ProtoError> {
    Ok(Status {
        code: r.i32()?,
        text: r.str::<128>()?,
    })
}

fn decode_hello_ack(r: &mut Reader) -> Result<HelloAck, ProtoError> {
    let version = r.u16()?;
    let layout = decode_layout(r)?;
    let mut mac = [0u8; 6];
    for b in &mut mac {
        *b = r.u8()?;
    }
    let mut a = HelloAck {
        version,
        layout,
        mac,
        mtu: r.u16()?,
        max_rx_pktlen: r.u32()?,
        link_speed: r.u32()?,
        link_up: r.u8()? != 0,
        nic_port: r.u16()?,
        nic_queue: r.u16()?,
        nic_name: r.str::<64>()?,
        rx_fill_min: r.u32()?,
        rx_offloads: 0,
        ptypes: Vec::new(),
        rss_hf: 0,
        rss_key: Vec::new(),
        shared_buffers: false,
        tx_offloads: 0,
        reta_size: 0,
    };
    if version >= 4 {
        a.rx_offloads = r.u64()?;
        let n = r.u8()? as usize;
        if n > MAX_PTYPES {
            return Err(ProtoError::Invalid("too many packet types"));
        }
        for _ in 0..n {
            a.ptypes.push(r.u32()?);
        }
    }
    if version >= 5 {
        a.layout.queue_count = r.u16()?;
        a.layout.queue_stride = r.u64()?;
        a.rss_hf = r.u64()?;
        let n = r.u8()? as usize;
        if n > MAX_RSS_KEY {
            return Err(ProtoError::Invalid("RSS key too long"));
        }
        for _ in 0..n {
            a.rss_key.push(r.u8()?);
        }
        a.shared_buffers = r.u8()? != 0;
    }
    if version >= 6 {
        a.layout.buf_max = r.u64()?;
    }
    if version >= 7 {
        a.tx_offloads = r.u64()?;
        a.reta_size = r.u16()?;
    }
    Ok(a)
}

fn encode_layout(l: &Layout, w: &mut Writer) {
    w.u64(l.region_size)
        .u64(l.page_size)
        .u32(l.ring_entries)
        .u64(l.fill_off)
        .u64(l.rx_off)
        .u64(l.tx_off)
        .u64(l.txdone_off)
        .u64(l.heap_off)
        .u64(l.heap_len)
        .u64(l.buf_off)
        .u64(l.buf_len);
}

fn decode_layout(r: &mut Reader) -> Result<Layout, ProtoError> {
    Ok(Layout {
        region_size: r.u64()?,
        page_size: r.u64()?,
        ring_entries: r.u32()?,
        fill_off: r.u64()?,
        rx_off: r.u64()?,
        tx_off: r.u64()?,
        txdone_off: r.u64()?,
        // One queue pair unless a v5 HELLO_ACK says more.
        queue_count: 1,
        queue_stride: 0,
        heap_off: r.u64()?,
        heap_len: r.u64()?,
        buf_off: r.u64()?,
        buf_len: r.u64()?,
        buf_max: 0,
    })
    .map(|mut l| {
        // No growth unless a v6 HELLO_ACK gives a limit.
        l.buf_max = l.buf_len;
        l
    })
}

/// Picks the version both sides speak, if any.
pub fn negotiate(peer_min: u16, peer_max: u16) -> Option<u16> {
    let v = peer_max.min(VERSION_MAX);
    (v >= peer_min.max(VERSION_MIN)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack() -> HelloAck {
        HelloAck {
            version: VERSION_MAX,
            layout: Layout {
                buf_max: 2 << 30,
                ..Layout::compute_queues(4096, 1024, 4, 32 << 20, 512 << 20)
            },
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            max_rx_pktlen: 1518,
            link_speed: 10000,
            link_up: true,
            nic_port: 0,
            nic_queue: 1,
            nic_name: "net_null0".into(),
            rx_fill_min: 704,
            rx_offloads: 0x2,
            ptypes: (0..MAX_PTYPES as u32).collect(),
            rss_hf: 0x38d34,
            rss_key: (0..40).collect(),
            shared_buffers: true,
            tx_offloads: crate::desc::TX_OFFLOADS_PASSED,
            reta_size: 512,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let msgs = [
            Msg::Hello(Hello {
                version_min: 3,
                version_max: 4,
                pid: 42,
                name: "testpmd".into(),
                flags: HELLO_SHARE_BUFFERS,
                resume: None,
            }),
            Msg::Hello(Hello {
                version_min: 8,
                version_max: 8,
                pid: 7,
                name: "resumer".into(),
                flags: HELLO_RESUME,
                resume: Some(ack().layout),
            }),
            Msg::HelloAck(ack()),
            Msg::Start(Start {
                rx_buf_len: 2176,
                rx_headroom: 128,
                queue: 3,
                scatter: true,
                rx_intr: true,
            }),
            Msg::StartAck(Status::ok()),
            Msg::Stop,
            Msg::StopAck(Status::error(libc::EBUSY, "busy")),
            Msg::Link(Link {
                up: true,
                speed: 25000,
            }),
            Msg::Error(Status::error(libc::EACCES, "no")),
            Msg::Grow(Grow { bytes: 3 << 30 }),
            Msg::GrowAck(GrowAck {
                offset: 600 << 20,
                len: 256 << 20,
            }),
            Msg::RetaQuery(RetaQuery { first: 384 }),
            Msg::Bye("stopping".into()),
            Msg::ResumePart(GrowAck {
                offset: 64 << 20,
                len: 2 << 20,
            }),
            Msg::Reta(Reta {
                size: 512,
                first: 384,
                entries: (0..MAX_RETA_CHUNK as u16).map(|i| i % 4).collect(),
            }),
        ];
        for m in msgs {
            let bytes = m.encode(VERSION_MAX);
            assert!(bytes.len() <= MAX_MSG);
            assert_eq!(Msg::decode(&bytes), Ok((VERSION_MAX, m)));
        }
    }

    #[test]
    fn v3_hello_ack_has_no_rx_metadata_fields() {
        let a = ack();
        a.layout.validate(a.layout.region_size).unwrap();
        let v3 = HelloAck {
            version: 3,
            rx_offloads: 0,
            ptypes: Vec::new(),
            rss_hf: 0,
            rss_key: Vec::new(),
            shared_buffers: false,
            tx_offloads: 0,
            reta_size: 0,
            layout: Layout::compute(4096, 1024, 32 << 20, 512 << 20),
            ..a
        };
        let bytes = Msg::HelloAck(v3.clone()).encode(VERSION_MAX);
        assert!(bytes.len() <= 256, "a v3 guest reads 256 bytes at most");
        assert_eq!(Msg::decode(&bytes), Ok((3, Msg::HelloAck(v3))));
    }

    #[test]
    fn before_v6_the_buffer_area_does_not_grow() {
        let a = HelloAck {
            version: 5,
            ..ack()
        };
        let Ok((5, Msg::HelloAck(got))) = Msg::decode(&Msg::HelloAck(a.clone()).encode(5)) else {
            panic!("v5 hello ack does not decode");
        };
        assert_eq!(got.layout.buf_max, a.layout.buf_len);
        let grow = Msg::Grow(Grow { bytes: 1 << 20 }).encode(5);
        assert_eq!(Msg::decode(&grow), Err(ProtoError::UnknownType(MSG_GROW)));
    }

    #[test]
    fn before_v9_no_grown_part_resumes() {
        let part = Msg::ResumePart(GrowAck {
            offset: 1 << 20,
            len: 2 << 20,
        });
        assert_eq!(
            Msg::decode(&part.encode(8)),
            Err(ProtoError::UnknownType(MSG_RESUME_PART))
        );
        assert!(Msg::decode(&part.encode(9)).is_ok());
    }

    #[test]
    fn a_v7_hello_with_the_resume_bit_encodes_to_what_decodes() {
        // Found by fuzz/msg_decode: a v7 HELLO whose flags have bit 1 set
        // (RESUME means nothing before v8) encoded as v8 without a layout.
        let h = Msg::Hello(Hello {
            version_min: 1,
            version_max: 7,
            pid: 1,
            name: "x".into(),
            flags: HELLO_RESUME,
            resume: None,
        });
        let (_, back) = Msg::decode(&h.encode(VERSION_MAX)).expect("decodes");
        let Msg::Hello(b) = back else { panic!() };
        assert_eq!((b.flags & HELLO_RESUME, b.resume), (0, None));
    }

    #[test]
    fn before_v7_no_tx_offloads_and_no_reta() {
        let a = HelloAck {
            version: 6,
            ..ack()
        };
        let Ok((6, Msg::HelloAck(got))) = Msg::decode(&Msg::HelloAck(a).encode(6)) else {
            panic!("v6 hello ack does not decode");
        };
        assert_eq!((got.tx_offloads, got.reta_size), (0, 0));
        let q = Msg::RetaQuery(RetaQuery { first: 0 }).encode(6);
        assert_eq!(
            Msg::decode(&q),
            Err(ProtoError::UnknownType(MSG_RETA_QUERY))
        );
        let mut long = Msg::Reta(Reta {
            size: 512,
            first: 0,
            entries: vec![0; 4],
        })
        .encode(7);
        long[12] = MAX_RETA_CHUNK as u8 + 1;
        assert_eq!(
            Msg::decode(&long),
            Err(ProtoError::Invalid("too many RETA entries"))
        );
    }

    #[test]
    fn v4_peers_see_one_queue_and_start_queue_0() {
        // The v5 layout's queue 0 is where a v4 guest looks for its rings.
        let a = HelloAck {
            version: 4,
            rss_hf: 0,
            rss_key: Vec::new(),
            shared_buffers: false,
            ..ack()
        };
        let Ok((4, Msg::HelloAck(got))) = Msg::decode(&Msg::HelloAck(a.clone()).encode(4)) else {
            panic!("v4 hello ack does not decode");
        };
        assert_eq!(got.layout.queue_count, 1);
        assert_eq!(got.layout.fill_off, a.layout.fill_off);
        let s = Msg::Start(Start {
            rx_buf_len: 2176,
            rx_headroom: 128,
            queue: 2,
            scatter: true,
            rx_intr: true,
        });
        let bytes = s.encode(4);
        assert_eq!(bytes.len(), HEADER_LEN + 4);
        let Ok((4, Msg::Start(got))) = Msg::decode(&bytes) else {
            panic!("v4 start does not decode");
        };
        assert_eq!((got.queue, got.scatter, got.rx_intr), (0, false, false));
        // A v9 peer has no rx interrupts: the flag does not cross.
        let Ok((9, Msg::Start(got))) = Msg::decode(&s.encode(9)) else {
            panic!("v9 start does not decode");
        };
        assert_eq!((got.queue, got.scatter, got.rx_intr), (2, true, false));
    }

    #[test]
    fn truncated_and_foreign_messages_are_errors() {
        let h = Msg::Hello(Hello {
            version_min: 1,
            version_max: 1,
            pid: 42,
            name: "x".into(),
            flags: 0,
            resume: None,
        });
        let bytes = h.encode(VERSION_MAX);
        for n in 0..bytes.len() {
            assert!(Msg::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        assert_eq!(Msg::decode(b"GET / HTTP/1.1"), Err(ProtoError::BadMagic));
        let mut unknown = bytes.clone();
        unknown[6] = 99;
        assert_eq!(Msg::decode(&unknown), Err(ProtoError::UnknownType(99)));
        let mut many = Msg::HelloAck(HelloAck {
            version: 4,
            ..ack()
        })
        .encode(VERSION_MAX);
        let n_at = many.len() - 4 * MAX_PTYPES - 1;
        many[n_at] = MAX_PTYPES as u8 + 1;
        assert_eq!(
            Msg::decode(&many),
            Err(ProtoError::Invalid("too many packet types"))
        );
    }

    #[test]
    fn only_hello_hello_ack_grow_ack_resume_part_start_and_start_ack_carry_a_descriptor() {
        for t in 0..20u16 {
            let want = usize::from(matches!(
                t,
                MSG_HELLO_ACK
                    | MSG_HELLO
                    | MSG_GROW_ACK
                    | MSG_RESUME_PART
                    | MSG_START
                    | MSG_START_ACK
            ));
            assert_eq!(Msg::fds_expected(t), want, "type {t}");
        }
    }

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate(1, VERSION_MAX + 1), Some(VERSION_MAX));
        assert_eq!(negotiate(1, 5), Some(5));
        assert_eq!(negotiate(1, VERSION_MIN - 1), None);
        assert_eq!(negotiate(VERSION_MAX + 1, VERSION_MAX + 3), None);
    }
}
