//! The control protocol between a guest (`sock` bus) and `dpdk-io-proxy`,
//! over a `SOCK_SEQPACKET` unix socket. One message per packet, fields in
//! little endian at fixed offsets; see docs/protocol.md.

use crate::ring::ring_bytes;

pub const MAGIC: u32 = 0x5348_4d50; // "SHMP"
/// Protocol versions this build speaks.
/// v2: 8-byte descriptors without ids (v1: 16 bytes with ids).
pub const VERSION_MIN: u16 = 3;
pub const VERSION_MAX: u16 = 4;
/// Largest message on the wire.
pub const MAX_MSG: usize = 512;

pub const MSG_HELLO: u16 = 1;
pub const MSG_HELLO_ACK: u16 = 2;
pub const MSG_START: u16 = 3;
pub const MSG_START_ACK: u16 = 4;
pub const MSG_STOP: u16 = 5;
pub const MSG_STOP_ACK: u16 = 6;
pub const MSG_LINK: u16 = 7;
pub const MSG_ERROR: u16 = 8;

/// Little-endian writer for one message.
pub struct Writer {
    buf: Vec<u8>,
}
impl Writer {
    pub fn new(msg_type: u16, version: u16) -> Writer {
        let mut w = Writer {
            buf: Vec::with_capacity(MAX_MSG),
        };
        w.u32(MAGIC).u16(version).u16(msg_type);
        w
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A fixed-size, NUL-padded string field.
    pub fn str<const N: usize>(&mut self, s: &str) -> &mut Self {
        let mut field = [0u8; N];
        let b = s.as_bytes();
        let n = b.len().min(N - 1);
        field[..n].copy_from_slice(&b[..n]);
        self.buf.extend_from_slice(&field);
        self
    }
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Bounds-checked little-endian reader over a received message.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}
#[derive(Debug, PartialEq, Eq)]
pub enum ProtoError {
    Short,
    BadMagic,
    Unexpected(u16),
    Invalid(&'static str),
}
impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::Short => write!(f, "message too short"),
            ProtoError::BadMagic => write!(f, "bad magic"),
            ProtoError::Unexpected(t) => write!(f, "unexpected message type {t}"),
            ProtoError::Invalid(why) => write!(f, "invalid message: {why}"),
        }
    }
}

impl<'a> Reader<'a> {
    /// Checks the header; returns (reader positioned at the payload, type, version).
    pub fn new(buf: &'a [u8]) -> Result<(Reader<'a>, u16, u16), ProtoError> {
        let mut r = Reader { buf, pos: 0 };
        if r.u32()? != MAGIC {
            return Err(ProtoError::BadMagic);
        }
        let version = r.u16()?;
        let t = r.u16()?;
        Ok((r, t, version))
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let end = self.pos.checked_add(N).ok_or(ProtoError::Short)?;
        let s = self.buf.get(self.pos..end).ok_or(ProtoError::Short)?;
        self.pos = end;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, ProtoError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    pub fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    pub fn i32(&mut self) -> Result<i32, ProtoError> {
        Ok(i32::from_le_bytes(self.take()?))
    }
    pub fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    pub fn str<const N: usize>(&mut self) -> Result<String, ProtoError> {
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
}
impl Hello {
    pub fn encode(&self) -> Writer {
        let mut w = Writer::new(MSG_HELLO, VERSION_MAX);
        w.u16(self.version_min)
            .u16(self.version_max)
            .u32(self.pid)
            .str::<32>(&self.name);
        w
    }
    pub fn decode(r: &mut Reader) -> Result<Hello, ProtoError> {
        Ok(Hello {
            version_min: r.u16()?,
            version_max: r.u16()?,
            pid: r.u32()?,
            name: r.str::<32>()?,
        })
    }
}

/// Where things are in the shared region. Offsets in bytes from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    pub region_size: u64,
    /// Page size backing the memfd (4 KiB, or 2 MiB for hugetlb).
    pub page_size: u64,
    pub ring_entries: u32,
    pub fill_off: u64,
    pub rx_off: u64,
    pub tx_off: u64,
    pub txdone_off: u64,
    /// The guest's own malloc heap.
    pub heap_off: u64,
    pub heap_len: u64,
    /// Packet buffers: the guest's mbuf pools. The only part the proxy lets
    /// a NIC read or write.
    pub buf_off: u64,
    pub buf_len: u64,
}

/// Largest region: buffer offsets travel as u32.
pub const REGION_MAX: u64 = 1 << 32;

impl Layout {
    /// Lays out a region: index page, four rings, heap, buffers, each part
    /// aligned to the page size.
    pub fn compute(page_size: u64, ring_entries: u32, heap_len: u64, buf_len: u64) -> Layout {
        let align = |x: u64| x.div_ceil(page_size) * page_size;
        let ring = ring_bytes(ring_entries) as u64;
        let fill_off = 4096;
        let rx_off = fill_off + ring;
        let tx_off = rx_off + ring;
        let txdone_off = tx_off + ring;
        let heap_off = align(txdone_off + ring);
        let heap_len = align(heap_len);
        let buf_off = heap_off + heap_len;
        let buf_len = align(buf_len);
        Layout {
            region_size: buf_off + buf_len,
            page_size,
            ring_entries,
            fill_off,
            rx_off,
            tx_off,
            txdone_off,
            heap_off,
            heap_len,
            buf_off,
            buf_len,
        }
    }

    /// Checks a layout received from the peer against the mapped size.
    pub fn validate(&self, mapped: u64) -> Result<(), ProtoError> {
        let bad = |why| Err(ProtoError::Invalid(why));
        if self.region_size != mapped || self.region_size > REGION_MAX {
            return bad("region size");
        }
        if !self.page_size.is_power_of_two() || self.page_size < 4096 {
            return bad("page size");
        }
        if !self.ring_entries.is_power_of_two() || !(64..=65536).contains(&self.ring_entries) {
            return bad("ring entries");
        }
        let ring = ring_bytes(self.ring_entries) as u64;
        let within = |off: u64, len: u64| {
            off.is_multiple_of(64) && off.checked_add(len).is_some_and(|e| e <= mapped)
        };
        for off in [self.fill_off, self.rx_off, self.tx_off, self.txdone_off] {
            if !within(off, ring) {
                return bad("ring offset");
            }
        }
        if !within(self.heap_off, self.heap_len) || !self.heap_off.is_multiple_of(self.page_size) {
            return bad("heap area");
        }
        if !within(self.buf_off, self.buf_len) || self.buf_off < self.heap_off + self.heap_len {
            return bad("buffer area");
        }
        Ok(())
    }

    fn encode(&self, w: &mut Writer) {
        w.u64(self.region_size)
            .u64(self.page_size)
            .u32(self.ring_entries)
            .u64(self.fill_off)
            .u64(self.rx_off)
            .u64(self.tx_off)
            .u64(self.txdone_off)
            .u64(self.heap_off)
            .u64(self.heap_len)
            .u64(self.buf_off)
            .u64(self.buf_len);
    }
    fn decode(r: &mut Reader) -> Result<Layout, ProtoError> {
        Ok(Layout {
            region_size: r.u64()?,
            page_size: r.u64()?,
            ring_entries: r.u32()?,
            fill_off: r.u64()?,
            rx_off: r.u64()?,
            tx_off: r.u64()?,
            txdone_off: r.u64()?,
            heap_off: r.u64()?,
            heap_len: r.u64()?,
            buf_off: r.u64()?,
            buf_len: r.u64()?,
        })
    }
}

/// HELLO_ACK: proxy -> guest, carries the memfd (SCM_RIGHTS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloAck {
    pub version: u16,
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
    /// as rx metadata (`ring::RxMeta`); 0 before v4.
    pub rx_offloads: u64,
    /// v4: the packet types the NIC recognizes (at most [`MAX_PTYPES`]);
    /// empty before v4.
    pub ptypes: Vec<u32>,
}

/// Most packet types a HELLO_ACK carries.
pub const MAX_PTYPES: usize = 32;
impl HelloAck {
    pub fn encode(&self) -> Writer {
        let mut w = Writer::new(MSG_HELLO_ACK, self.version);
        w.u16(self.version);
        self.layout.encode(&mut w);
        for b in self.mac {
            w.u8(b);
        }
        w.u16(self.mtu)
            .u32(self.max_rx_pktlen)
            .u32(self.link_speed)
            .u8(self.link_up as u8)
            .u16(self.nic_port)
            .u16(self.nic_queue)
            .str::<64>(&self.nic_name)
            .u32(self.rx_fill_min);
        if self.version >= 4 {
            let n = self.ptypes.len().min(MAX_PTYPES);
            w.u64(self.rx_offloads).u8(n as u8);
            for &t in &self.ptypes[..n] {
                w.u32(t);
            }
        }
        w
    }
    pub fn decode(r: &mut Reader) -> Result<HelloAck, ProtoError> {
        let version = r.u16()?;
        let layout = Layout::decode(r)?;
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
        Ok(a)
    }
}

/// START: guest -> proxy. The guest has posted fill buffers of at least
/// `rx_buf_len` bytes of data room; the proxy attaches the NIC queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub rx_buf_len: u16,
    pub rx_headroom: u16,
}
impl Start {
    pub fn encode(&self, version: u16) -> Writer {
        let mut w = Writer::new(MSG_START, version);
        w.u16(self.rx_buf_len).u16(self.rx_headroom);
        w
    }
    pub fn decode(r: &mut Reader) -> Result<Start, ProtoError> {
        Ok(Start {
            rx_buf_len: r.u16()?,
            rx_headroom: r.u16()?,
        })
    }
}

/// A status reply (START_ACK, STOP_ACK) or an ERROR: errno-style code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: i32,
    pub text: String,
}
impl Status {
    pub fn encode(&self, msg_type: u16, version: u16) -> Writer {
        let mut w = Writer::new(msg_type, version);
        w.i32(self.code).str::<128>(&self.text);
        w
    }
    pub fn decode(r: &mut Reader) -> Result<Status, ProtoError> {
        Ok(Status {
            code: r.i32()?,
            text: r.str::<128>()?,
        })
    }
}

/// LINK: proxy -> guest, the NIC's link changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    pub speed: u32,
}
impl Link {
    pub fn encode(&self, version: u16) -> Writer {
        let mut w = Writer::new(MSG_LINK, version);
        w.u8(self.up as u8).u32(self.speed);
        w
    }
    pub fn decode(r: &mut Reader) -> Result<Link, ProtoError> {
        Ok(Link {
            up: r.u8()? != 0,
            speed: r.u32()?,
        })
    }
}

/// Picks the version both sides speak, if any.
pub fn negotiate(peer_min: u16, peer_max: u16) -> Option<u16> {
    let v = peer_max.min(VERSION_MAX);
    (v >= peer_min.max(VERSION_MIN)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_ack_round_trip() {
        let a = HelloAck {
            version: VERSION_MAX,
            layout: Layout::compute(4096, 1024, 32 << 20, 512 << 20),
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
        };
        let w = a.encode();
        assert!(w.bytes().len() <= MAX_MSG);
        let (mut r, t, _) = Reader::new(w.bytes()).unwrap();
        assert_eq!(t, MSG_HELLO_ACK);
        assert_eq!(HelloAck::decode(&mut r).unwrap(), a);
        a.layout.validate(a.layout.region_size).unwrap();
        // A v3 peer gets (and sends) no rx metadata fields.
        let v3 = HelloAck {
            version: 3,
            rx_offloads: 0,
            ptypes: Vec::new(),
            ..a
        };
        let w = v3.encode();
        assert!(w.bytes().len() <= 256, "a v3 guest reads 256 bytes at most");
        let (mut r, _, _) = Reader::new(w.bytes()).unwrap();
        assert_eq!(HelloAck::decode(&mut r).unwrap(), v3);
    }

    #[test]
    fn truncated_and_foreign_messages_are_errors() {
        let h = Hello {
            version_min: 1,
            version_max: 1,
            pid: 42,
            name: "x".into(),
        };
        let w = h.encode();
        let (mut r, _, _) = Reader::new(&w.bytes()[..20]).unwrap();
        assert_eq!(Hello::decode(&mut r), Err(ProtoError::Short));
        assert!(matches!(
            Reader::new(b"GET / HTTP/1.1"),
            Err(ProtoError::BadMagic)
        ));
    }

    #[test]
    fn layout_validation_rejects_out_of_region_parts() {
        let l = Layout::compute(4096, 1024, 1 << 20, 1 << 20);
        let mut bad = l;
        bad.buf_len += 4096;
        assert!(bad.validate(l.region_size).is_err());
        let mut bad = l;
        bad.rx_off = l.region_size - 64;
        assert!(bad.validate(l.region_size).is_err());
        assert!(l.validate(l.region_size + 1).is_err());
    }

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate(1, 5), Some(VERSION_MAX));
        assert_eq!(negotiate(1, VERSION_MIN - 1), None);
        assert_eq!(negotiate(VERSION_MAX + 1, VERSION_MAX + 3), None);
    }
}
