//! Descriptors as they cross the boundary, their flags, rx metadata, and
//! the checks that turn a descriptor read from a ring into a value that
//! may be used: [`ValidTx`], [`ValidFill`]. Nothing else makes those.

/// One buffer descriptor as it crosses the boundary: a single u64,
/// `buf_off / 8 (u32) | data_len (u16) | data_off (u16)`.
///
/// - `buf_off`: offset of the buffer (the mbuf's `buf_addr`) in the region,
///   a multiple of 8
/// - `data_off`, `data_len`: as in `rte_mbuf`
///
/// No pointer and no id crosses: the guest maps `buf_off` back to its mbuf
/// through the geometry of its own pools. Status travels in `data_len` on
/// the rings that return buffers (see `LEN_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub buf_off: u32,
    pub data_len: u16,
    pub data_off: u16,
}

/// Size of one descriptor on a ring: 8 per cache line.
pub const DESC_SIZE: usize = 8;

/// rx ring: a fill buffer handed back without a packet.
pub const LEN_EMPTY: u16 = 0;
/// txdone ring: sent.
pub const LEN_SENT: u16 = 0;
/// txdone ring: the proxy rejected the descriptor (bad offset or length).
pub const LEN_REJECTED: u16 = 0xffff;
/// txdone ring: not sent (NIC queue full, or the port stopped).
pub const LEN_NOT_SENT: u16 = 0xfffe;

/// tx ring, in `data_off`: the buffer is from the pool of the port's rx
/// queue; once sent (or not), the proxy keeps it as a fill buffer instead of
/// returning it on txdone. It comes back on the rx ring.
pub const TX_RECYCLE: u16 = 0x8000;

/// rx ring, in `data_off` (protocol v4): the [`RX_META_LEN`] bytes right
/// before the packet, in the buffer's headroom, hold its rx metadata
/// ([`RxMeta`]).
pub const RX_META: u16 = 0x8000;
pub const RX_META_LEN: u16 = 16;

/// rx and tx rings, in `data_off` (protocol v5): another buffer of the same
/// packet follows this one on the ring; a packet's last buffer has it
/// clear. Only the first buffer of a packet may carry [`RX_META`].
pub const SEG_MORE: u16 = 0x4000;
/// Most buffers one packet may have on a ring.
pub const MAX_SEGS: usize = 16;
/// What is left of `data_off` under the flags: the offset itself.
pub const DATA_OFF_MASK: u16 = 0x3fff;

/// tx ring, in `data_off` (protocol v7): the [`TX_META_LEN`] bytes right
/// before the packet, in the buffer's headroom, hold the offloads the NIC
/// is to apply ([`TxMeta`]). On a packet's first buffer only. From v7 on
/// `data_off` itself stays below this bit.
pub const TX_META: u16 = 0x2000;
pub const TX_META_LEN: u16 = 16;

/// DPDK's tx offload flags of `rte_mbuf.ol_flags` that tx metadata may
/// carry: IPv4 header checksum, TCP or UDP checksum, VLAN insertion, and
/// the IPv4/IPv6 flags they need. The same bits in every DPDK release since
/// 21.11; the drivers check them against their headers at compile time.
pub const TX_IP_CKSUM: u64 = 1 << 54;
pub const TX_IPV4: u64 = 1 << 55;
pub const TX_IPV6: u64 = 1 << 56;
pub const TX_VLAN: u64 = 1 << 57;
pub const TX_L4_MASK: u64 = 3 << 52;
pub const TX_TCP_CKSUM: u64 = 1 << 52;
pub const TX_UDP_CKSUM: u64 = 3 << 52;
pub const TX_META_OL_FLAGS: u64 = TX_IP_CKSUM | TX_IPV4 | TX_IPV6 | TX_VLAN | TX_L4_MASK;
/// The flags that ask the NIC to do something: a packet with none of them
/// needs no tx metadata.
pub const TX_ACTION_FLAGS: u64 = TX_IP_CKSUM | TX_VLAN | TX_L4_MASK;

/// DPDK's `RTE_ETH_TX_OFFLOAD_*` bits a guest port may be offered (HELLO_ACK
/// v7 `tx_offloads`): those the proxy's NIC has, applied there.
pub const TX_OFFLOAD_VLAN_INSERT: u64 = 1 << 0;
pub const TX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;
pub const TX_OFFLOAD_UDP_CKSUM: u64 = 1 << 2;
pub const TX_OFFLOAD_TCP_CKSUM: u64 = 1 << 3;
pub const TX_OFFLOADS_PASSED: u64 =
    TX_OFFLOAD_VLAN_INSERT | TX_OFFLOAD_IPV4_CKSUM | TX_OFFLOAD_UDP_CKSUM | TX_OFFLOAD_TCP_CKSUM;

/// The mbuf flags a guest may set in tx metadata, given the port's
/// `tx_offloads` from HELLO_ACK.
pub fn tx_meta_flags(tx_offloads: u64) -> u64 {
    let mut f = 0;
    if tx_offloads & TX_OFFLOAD_VLAN_INSERT != 0 {
        f |= TX_VLAN;
    }
    if tx_offloads & TX_OFFLOAD_IPV4_CKSUM != 0 {
        f |= TX_IP_CKSUM;
    }
    if tx_offloads & TX_OFFLOAD_UDP_CKSUM != 0 {
        f |= TX_UDP_CKSUM;
    }
    if tx_offloads & TX_OFFLOAD_TCP_CKSUM != 0 {
        f |= TX_TCP_CKSUM;
    }
    if f & (TX_IP_CKSUM | TX_L4_MASK) != 0 {
        f |= TX_IPV4 | TX_IPV6;
    }
    f
}

/// What the guest asks the NIC to do to one packet on tx, as it writes it:
/// the mbuf's offload flags and the header lengths and VLAN tag they need.
/// In the buffer as two little-endian u64: `ol_flags`, then
/// `l2_len | l3_len << 16 | l4_len << 32 | vlan_tci << 48`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxMeta {
    pub ol_flags: u64,
    pub l2_len: u16,
    pub l3_len: u16,
    pub l4_len: u16,
    pub vlan_tci: u16,
}

/// Tx metadata that passed [`TxMeta::check`]: flags the port allows, and
/// header lengths that lie within the packet's first buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidTxMeta(TxMeta);

impl ValidTxMeta {
    #[inline]
    pub fn get(&self) -> &TxMeta {
        &self.0
    }
}

impl TxMeta {
    pub fn to_words(self) -> [u64; 2] {
        [
            self.ol_flags,
            self.l2_len as u64
                | (self.l3_len as u64) << 16
                | (self.l4_len as u64) << 32
                | (self.vlan_tci as u64) << 48,
        ]
    }
    pub fn from_words(w: [u64; 2]) -> TxMeta {
        TxMeta {
            ol_flags: w[0],
            l2_len: w[1] as u16,
            l3_len: (w[1] >> 16) as u16,
            l4_len: (w[1] >> 32) as u16,
            vlan_tci: (w[1] >> 48) as u16,
        }
    }

    /// Checks metadata read from a guest's buffer: only flags of
    /// `allowed` (see [`tx_meta_flags`]); a checksum names its IP version
    /// (IPv4 for the header checksum), and the headers it covers (Ethernet,
    /// IP, and the TCP or UDP header) lie within the `head_len` bytes of
    /// the packet's first buffer and fit DPDK's fields (`l2_len` 7 bits,
    /// `l3_len` 9, `l4_len` 8). A NIC that checksums in software reads
    /// exactly there.
    pub fn check(self, allowed: u64, head_len: u16) -> Option<ValidTxMeta> {
        let f = self.ol_flags;
        if f & !allowed != 0 || f & !TX_META_OL_FLAGS != 0 {
            return None;
        }
        let l4 = f & TX_L4_MASK;
        if f & (TX_IP_CKSUM | TX_L4_MASK) != 0 {
            let v4 = f & TX_IPV4 != 0;
            let v6 = f & TX_IPV6 != 0;
            let l4_min = match l4 {
                0 => 0,
                TX_TCP_CKSUM => 20,
                TX_UDP_CKSUM => 8,
                _ => return None,
            };
            let ok = v4 != v6
                && (f & TX_IP_CKSUM == 0 || v4)
                && (14..128).contains(&self.l2_len)
                && (20..512).contains(&self.l3_len)
                && self.l4_len < 256
                && (self.l2_len + self.l3_len) as u32 + l4_min.max(self.l4_len as u32)
                    <= head_len as u32;
            if !ok {
                return None;
            }
        }
        Some(ValidTxMeta(self))
    }
}

/// The mbuf `ol_flags` rx metadata may carry: the RSS hash's presence and
/// the checksum verdicts. Both sides mask with it.
///
/// The bits are DPDK's `RTE_MBUF_F_RX_RSS_HASH` (bit 1),
/// `RTE_MBUF_F_RX_IP_CKSUM_MASK` (bits 4 and 7) and
/// `RTE_MBUF_F_RX_L4_CKSUM_MASK` (bits 3 and 8), the same in every DPDK
/// release since 21.11; the drivers check them against the headers they are
/// built with at compile time.
pub const RX_META_OL_FLAGS: u64 = RX_RSS_HASH | RX_IP_CKSUM_MASK | RX_L4_CKSUM_MASK;
pub const RX_RSS_HASH: u64 = 1 << 1;
pub const RX_IP_CKSUM_MASK: u64 = (1 << 4) | (1 << 7);
pub const RX_L4_CKSUM_MASK: u64 = (1 << 3) | (1 << 8);

/// What the NIC told about a received packet, as the proxy passes it on:
/// the RSS hash, the packet type and the checksum flags. In the buffer as
/// two little-endian u64: `hash | packet_type << 32`, then `ol_flags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    pub rss: u32,
    pub packet_type: u32,
    pub ol_flags: u64,
}

impl RxMeta {
    pub fn to_words(self) -> [u64; 2] {
        [
            self.rss as u64 | (self.packet_type as u64) << 32,
            self.ol_flags,
        ]
    }
    pub fn from_words(w: [u64; 2]) -> RxMeta {
        RxMeta {
            rss: w[0] as u32,
            packet_type: (w[0] >> 32) as u32,
            ol_flags: w[1],
        }
    }
}

impl Desc {
    /// A descriptor for the buffer at byte offset `off` (a multiple of 8;
    /// offsets up to 32 GiB).
    pub fn new(off: u64, data_off: u16, data_len: u16) -> Desc {
        debug_assert!(off.is_multiple_of(8));
        Desc {
            buf_off: (off / 8) as u32,
            data_len,
            data_off,
        }
    }
    /// Byte offset of the buffer in the region.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.buf_off as u64 * 8
    }
    #[inline]
    pub(crate) fn to_word(self) -> u64 {
        self.buf_off as u64 | (self.data_len as u64) << 32 | (self.data_off as u64) << 48
    }
    #[inline]
    pub(crate) fn from_word(w: u64) -> Desc {
        Desc {
            buf_off: w as u32,
            data_len: (w >> 32) as u16,
            data_off: (w >> 48) as u16,
        }
    }
}

/// Whether rx descriptors carry rx metadata on a connection: protocol v4,
/// and a NIC that can tell anything (an rx offload, or a packet type other
/// than `RTE_PTYPE_UNKNOWN`, 0) as HELLO_ACK says. Both sides decide with
/// this, from the same HELLO_ACK fields.
pub fn rx_meta_enabled(version: u16, rx_offloads: u64, ptypes: &[u32]) -> bool {
    version >= 4 && (rx_offloads & !RX_OFFLOAD_SCATTER != 0 || ptypes.iter().any(|&t| t != 0))
}

/// DPDK's `RTE_ETH_RX_OFFLOAD_SCATTER`, in HELLO_ACK's `rx_offloads` (v5):
/// the NIC scatters frames over several buffers. Checked against DPDK's at
/// compile time by the drivers.
pub const RX_OFFLOAD_SCATTER: u64 = 1 << 13;

/// What the proxy accepts from one guest's rings: the buffer area, the
/// data room the guest promised for fill buffers, the largest frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferRules {
    /// Region offsets of the buffer area, `[buf_start, buf_end)`.
    pub buf_start: u64,
    pub buf_end: u64,
    /// Data room of every fill buffer, and the headroom the NIC leaves.
    pub rx_room: u16,
    pub rx_headroom: u16,
    /// Largest frame the NIC sends.
    pub max_frame: u32,
    /// Protocol v5: [`SEG_MORE`] links buffers into packets (before v5 the
    /// bit is part of `data_off`).
    pub chains: bool,
    /// Protocol v7: [`TX_META`] says tx metadata precedes the packet
    /// (before v7 the bit is part of `data_off`).
    pub tx_meta: bool,
}

/// Shortest frame the proxy sends: an Ethernet header.
pub const MIN_FRAME: u16 = 14;

/// A guest tx descriptor that passed [`BufferRules::check_tx`]: its bytes
/// `[offset + data_off, + data_len)` lie in the buffer area and its length
/// is a frame's; if [`recycle`](Self::recycle), the buffer is also a whole
/// fill buffer (`rx_room` bytes in the area) holding the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidTx {
    desc: Desc,
    recycle: bool,
    more: bool,
    meta: bool,
}

impl ValidTx {
    #[inline]
    pub fn offset(&self) -> u64 {
        self.desc.offset()
    }
    #[inline]
    pub fn data_off(&self) -> u16 {
        self.desc.data_off
    }
    #[inline]
    pub fn data_len(&self) -> u16 {
        self.desc.data_len
    }
    /// End of the packet from the buffer's start (fits in u16: checked).
    #[inline]
    pub fn end(&self) -> u16 {
        self.desc.data_off + self.desc.data_len
    }
    #[inline]
    pub fn recycle(&self) -> bool {
        self.recycle
    }
    /// Another buffer of the same packet follows ([`SEG_MORE`]).
    #[inline]
    pub fn more(&self) -> bool {
        self.more
    }
    /// Tx metadata precedes the packet ([`TX_META`], v7): at
    /// [`meta_offset`](Self::meta_offset), in the checked buffer.
    #[inline]
    pub fn meta(&self) -> bool {
        self.meta
    }
    /// Region offset of the tx metadata (meaningful if [`meta`](Self::meta)).
    #[inline]
    pub fn meta_offset(&self) -> u64 {
        self.desc.offset() + self.desc.data_off.saturating_sub(TX_META_LEN) as u64
    }
}

/// A fill buffer that passed [`BufferRules::check_fill`]: `rx_room` bytes
/// in the buffer area, the packet to start at the agreed headroom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidFill {
    off: u64,
}

impl ValidFill {
    #[inline]
    pub fn offset(&self) -> u64 {
        self.off
    }
    /// A fill buffer at `off`, which the caller checked before and kept in
    /// memory the guest cannot write (a buffer a [`ValidTx`] with
    /// [`recycle`](ValidTx::recycle) named, once the NIC is done with it).
    #[inline]
    pub fn from_checked(tx_recycled_off: u64) -> ValidFill {
        ValidFill {
            off: tx_recycled_off,
        }
    }
}

/// A descriptor that failed its check, and where its buffer goes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Back on txdone, [`LEN_REJECTED`].
    ToTxDone(Desc),
    /// Back on the rx ring, empty (a fill buffer, or one handed over for
    /// recycling).
    ToRx(Desc),
}

impl BufferRules {
    /// Is `[off, off + len)` wholly inside the buffer area?
    #[inline]
    pub fn in_buffers(&self, off: u64, len: u64) -> bool {
        off >= self.buf_start && off + len <= self.buf_end
    }

    /// Checks a tx descriptor as read from the guest's tx ring: the
    /// [`ValidTx`] it describes, or None ([`reject_tx`](Self::reject_tx)
    /// says where its buffer goes back).
    #[inline(always)]
    pub fn check_tx(&self, raw: Desc) -> Option<ValidTx> {
        // A packet in one buffer: `data_off` has no SEG_MORE (before v5 the
        // bit is part of it; from v5 on the caller sends descriptors with
        // SEG_MORE to check_tx_seg).
        let recycle = raw.data_off & TX_RECYCLE != 0;
        let meta_bit = self.meta_bit();
        let meta = raw.data_off & meta_bit != 0;
        let d = Desc {
            data_off: raw.data_off & !(TX_RECYCLE | meta_bit),
            ..raw
        };
        let len_ok = d.data_len >= MIN_FRAME
            && d.data_len as u32 <= self.max_frame
            && (!meta || d.data_off >= TX_META_LEN);
        self.in_place(d, recycle, false, meta, len_ok)
    }

    /// [`TX_META`] if this connection's descriptors may carry it, else 0.
    #[inline(always)]
    fn meta_bit(&self) -> u16 {
        if self.tx_meta {
            TX_META
        } else {
            0
        }
    }

    /// Checks one buffer of a packet of several (v5, [`SEG_MORE`] on this
    /// descriptor or the one before): as [`check_tx`](Self::check_tx), but
    /// a buffer may hold a single byte (the packet's length is
    /// [`check_packet`](Self::check_packet)'s), and it says whether another
    /// buffer follows.
    pub fn check_tx_seg(&self, raw: Desc) -> Option<ValidTx> {
        let recycle = raw.data_off & TX_RECYCLE != 0;
        let more = self.chains && raw.data_off & SEG_MORE != 0;
        let meta_bit = self.meta_bit();
        let meta = raw.data_off & meta_bit != 0;
        let d = Desc {
            data_off: raw.data_off & !(TX_RECYCLE | SEG_MORE | meta_bit),
            ..raw
        };
        let len_ok = self.chains
            && d.data_len >= 1
            && d.data_len as u32 <= self.max_frame
            && (!meta || d.data_off >= TX_META_LEN);
        self.in_place(d, recycle, more, meta, len_ok)
    }

    /// The rest of a tx check: where the bytes are.
    #[inline(always)]
    fn in_place(
        &self,
        d: Desc,
        recycle: bool,
        more: bool,
        meta: bool,
        len_ok: bool,
    ) -> Option<ValidTx> {
        let end = d.data_off as u64 + d.data_len as u64;
        // A recycled buffer will be a fill buffer next: it must be one,
        // rx_room bytes in the buffer area, with the packet within them.
        // Any other: the packet in the area, its end (a header's buf_len)
        // within a u16. One range check either way.
        let (span, end_max) = if recycle {
            (self.rx_room as u64, self.rx_room as u64)
        } else {
            (end, u16::MAX as u64)
        };
        let ok = len_ok && end <= end_max && self.in_buffers(d.offset(), span);
        ok.then_some(ValidTx {
            desc: d,
            recycle,
            more,
            meta,
        })
    }

    /// Whether a packet of `segs` checked buffers holding `len` bytes in
    /// all may be sent: a frame's length, at most [`MAX_SEGS`] buffers.
    #[inline]
    pub fn check_packet(&self, segs: usize, len: u32) -> bool {
        (1..=MAX_SEGS).contains(&segs) && len >= MIN_FRAME as u32 && len <= self.max_frame
    }

    /// Where the buffer of a tx descriptor that failed
    /// [`check_tx`](Self::check_tx) goes back: on the rx ring, empty, if it
    /// was handed over for recycling, else on txdone as rejected.
    #[inline]
    pub fn reject_tx(raw: Desc) -> Rejected {
        // No flag goes back: an rx descriptor must not say SEG_MORE (nor
        // TX_META, which is RX_META's neighbour; before v7 the guest keeps
        // data_off below it for buffers it may recycle).
        let d = Desc {
            data_off: raw.data_off & !(TX_RECYCLE | SEG_MORE | TX_META),
            ..raw
        };
        if raw.data_off & TX_RECYCLE != 0 {
            Rejected::ToRx(Desc {
                data_len: LEN_EMPTY,
                ..d
            })
        } else {
            Rejected::ToTxDone(Desc {
                data_len: LEN_REJECTED,
                ..d
            })
        }
    }

    /// Checks a descriptor as read from the guest's fill ring.
    #[inline]
    pub fn check_fill(&self, raw: Desc) -> Result<ValidFill, Rejected> {
        let fits = raw.data_off == self.rx_headroom && raw.data_len == 0;
        if fits && self.in_buffers(raw.offset(), self.rx_room as u64) {
            Ok(ValidFill { off: raw.offset() })
        } else {
            Err(Rejected::ToRx(Desc {
                data_len: LEN_EMPTY,
                ..raw
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: BufferRules = BufferRules {
        buf_start: 1 << 20,
        buf_end: 2 << 20,
        rx_room: 2176,
        rx_headroom: 128,
        max_frame: 1518,
        chains: false,
        tx_meta: false,
    };

    #[test]
    fn chained_tx_buffers() {
        let v5 = BufferRules {
            chains: true,
            ..RULES
        };
        // A 64-byte buffer flagged MORE, then its 10-byte tail.
        let head = v5
            .check_tx_seg(Desc::new(1 << 20, 128 | SEG_MORE, 64))
            .unwrap();
        assert!(head.more() && !head.recycle());
        assert_eq!(head.data_off(), 128);
        let tail = v5.check_tx_seg(Desc::new(1 << 20, 0, 10)).unwrap();
        assert!(!tail.more());
        // Alone, 10 bytes are no frame.
        assert!(v5.check_tx(Desc::new(1 << 20, 0, 10)).is_none());
        assert!(v5.check_packet(2, 74));
        assert!(!v5.check_packet(2, 10), "shorter than a frame");
        assert!(!v5.check_packet(MAX_SEGS + 1, 1000), "too many buffers");
        assert!(!v5.check_packet(2, 1519), "longer than the NIC sends");
        // Before v5 the bit is part of data_off, a buffer is a frame, and
        // there are no chains.
        assert!(RULES.check_tx_seg(Desc::new(1 << 20, 0, 60)).is_none());
        let old = RULES
            .check_tx(Desc::new(1 << 20, 128 | SEG_MORE, 64))
            .unwrap();
        assert!(!old.more());
        assert_eq!(old.data_off(), 128 | SEG_MORE);
        assert!(RULES.check_tx(Desc::new(1 << 20, 0, 10)).is_none());
        // A rejected recycled buffer goes back on rx without the flag.
        let r = BufferRules::reject_tx(Desc::new(1 << 20, 128 | SEG_MORE | TX_RECYCLE, 64));
        assert_eq!(r, Rejected::ToRx(Desc::new(1 << 20, 128, LEN_EMPTY)));
    }

    #[test]
    fn desc_round_trips_through_a_word() {
        let d = Desc::new(0x7_dead_bee8, 128, 1514);
        assert_eq!(Desc::from_word(d.to_word()), d);
        assert_eq!(d.offset(), 0x7_dead_bee8);
    }

    #[test]
    fn tx_checks() {
        let ok = RULES.check_tx(Desc::new(1 << 20, 128, 60)).unwrap();
        assert_eq!(
            RULES
                .check_tx(Desc::new(1 << 20, 128, 60))
                .map(|v| v.data_len()),
            Some(60)
        );
        assert_eq!((ok.offset(), ok.end(), ok.recycle()), (1 << 20, 188, false));
        let r = RULES
            .check_tx(Desc::new(1 << 20, 128 | TX_RECYCLE, 60))
            .unwrap();
        assert!(r.recycle());
        assert_eq!(r.data_off(), 128);
        for bad in [
            Desc::new(0, 0, 60),              // before the area
            Desc::new((2 << 20) - 32, 0, 60), // runs past it
            Desc::new(1 << 20, 0, 13),        // shorter than a header
            Desc::new(1 << 20, 0, 1519),      // longer than a frame
        ] {
            assert_eq!(RULES.check_tx(bad), None);
            assert_eq!(
                BufferRules::reject_tx(bad),
                Rejected::ToTxDone(Desc {
                    data_len: LEN_REJECTED,
                    ..bad
                })
            );
        }
        // Recycled: the packet must lie within a fill buffer's room, which
        // must lie in the area.
        for bad in [
            Desc::new(1 << 20, 2100 | TX_RECYCLE, 200),
            Desc::new((2 << 20) - 1000, 128 | TX_RECYCLE, 64),
        ] {
            assert_eq!(RULES.check_tx(bad), None);
            assert!(
                matches!(BufferRules::reject_tx(bad), Rejected::ToRx(d) if d.data_len == LEN_EMPTY && d.data_off & TX_RECYCLE == 0)
            );
        }
    }

    #[test]
    fn fill_checks() {
        assert_eq!(
            RULES
                .check_fill(Desc::new(1 << 20, 128, 0))
                .map(|f| f.offset()),
            Ok(1 << 20)
        );
        for bad in [
            Desc::new(1 << 20, 64, 0),
            Desc::new(1 << 20, 128, 1),
            Desc::new((2 << 20) - 2048, 128, 0),
            Desc::new(0, 128, 0),
        ] {
            assert!(RULES.check_fill(bad).is_err());
        }
    }

    #[test]
    fn tx_meta_bit_is_v7s() {
        let v7 = BufferRules {
            chains: true,
            tx_meta: true,
            ..RULES
        };
        let v = v7.check_tx(Desc::new(1 << 20, 128 | TX_META, 60)).unwrap();
        assert!(v.meta());
        assert_eq!(v.data_off(), 128);
        assert_eq!(v.meta_offset(), (1 << 20) + 112);
        // The metadata must lie in the buffer, before the packet.
        assert!(v7.check_tx(Desc::new(1 << 20, 8 | TX_META, 60)).is_none());
        let s = v7
            .check_tx_seg(Desc::new(1 << 20, 16 | TX_META | SEG_MORE, 60))
            .unwrap();
        assert!(s.meta() && s.more());
        // Before v7 the bit is part of data_off.
        let old = RULES
            .check_tx(Desc::new(1 << 20, 128 | TX_META, 60))
            .unwrap();
        assert!(!old.meta());
        assert_eq!(old.data_off(), 128 | TX_META);
    }

    #[test]
    fn tx_meta_checks() {
        let all = tx_meta_flags(TX_OFFLOADS_PASSED);
        let udp4 = TxMeta {
            ol_flags: TX_IPV4 | TX_IP_CKSUM | TX_UDP_CKSUM,
            l2_len: 14,
            l3_len: 20,
            l4_len: 0,
            vlan_tci: 0,
        };
        assert_eq!(TxMeta::from_words(udp4.to_words()), udp4);
        assert!(udp4.check(all, 42).is_some());
        assert!(udp4.check(all, 41).is_none(), "UDP header past the buffer");
        assert!(
            udp4.check(tx_meta_flags(TX_OFFLOAD_UDP_CKSUM), 42)
                .is_none(),
            "IPv4 checksum not offered"
        );
        let vlan = TxMeta {
            ol_flags: TX_VLAN,
            vlan_tci: 100,
            ..TxMeta::default()
        };
        assert!(vlan
            .check(tx_meta_flags(TX_OFFLOAD_VLAN_INSERT), 14)
            .is_some());
        assert!(vlan
            .check(tx_meta_flags(TX_OFFLOAD_TCP_CKSUM), 14)
            .is_none());
        for bad in [
            TxMeta {
                ol_flags: TX_IPV6 | TX_IP_CKSUM,
                ..udp4
            },
            TxMeta {
                ol_flags: TX_IPV4 | TX_IPV6 | TX_UDP_CKSUM,
                ..udp4
            },
            TxMeta {
                ol_flags: TX_UDP_CKSUM,
                ..udp4
            },
            TxMeta {
                ol_flags: TX_IPV4 | (2 << 52),
                ..udp4
            },
            TxMeta {
                l2_len: 128,
                ..udp4
            },
            TxMeta { l3_len: 19, ..udp4 },
            TxMeta {
                ol_flags: udp4.ol_flags | 1 << 50,
                ..udp4
            },
        ] {
            assert!(bad.check(all, 1500).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn rx_meta_rule() {
        assert!(!rx_meta_enabled(3, 0xff, &[0x11]));
        assert!(!rx_meta_enabled(4, 0, &[]));
        assert!(!rx_meta_enabled(4, 0, &[0]), "only RTE_PTYPE_UNKNOWN");
        assert!(rx_meta_enabled(4, 0, &[0x11, 0]));
        assert!(rx_meta_enabled(4, 0x2, &[]));
    }

    #[test]
    fn rx_meta_round_trips() {
        let m = RxMeta {
            rss: 0xdead_beef,
            packet_type: 0x291,
            ol_flags: RX_META_OL_FLAGS,
        };
        assert_eq!(RxMeta::from_words(m.to_words()), m);
    }
}
