//! `struct rte_mbuf`, declared here rather than generated.
//!
//! Its binary layout is the same in DPDK 22.11, 24.11 and 25.11 (x86_64,
//! IOVA in the mbuf, as every distribution builds it), but its C spelling
//! is not: 24.07 turned the zero-length markers (`rearm_data`,
//! `rx_descriptor_fields1`) into unions around the fields they mark, so
//! bindgen hides `data_off`, `pkt_len` and the others behind a different
//! nesting of anonymous unions in each release. Declared once with the C
//! names, the drivers read `m.data_off` whatever DPDK they are built
//! against, and `tests/layout.rs` compares every field's offset with the C
//! compiler's `offsetof` for the DPDK at hand (`csrc/layout.list`).

use crate::{rte_mbuf_ext_shared_info, rte_mempool};
use core::ffi::c_void;

/// The mbuf header: two cache lines.
#[repr(C, align(64))]
#[derive(Debug, Copy, Clone)]
pub struct rte_mbuf {
    pub buf_addr: *mut c_void,
    pub buf_iova: u64,
    // rearm_data: the 8 bytes a driver writes at once on rx.
    pub data_off: u16,
    pub refcnt: u16,
    pub nb_segs: u16,
    pub port: u16,
    pub ol_flags: u64,
    // rx_descriptor_fields1. `packet_type` shares its 4 bytes with the
    // l2..inner_l4 type bitfields.
    pub packet_type: u32,
    pub pkt_len: u32,
    pub data_len: u16,
    pub vlan_tci: u16,
    pub hash: rte_mbuf_hash,
    pub vlan_tci_outer: u16,
    pub buf_len: u16,
    pub pool: *mut rte_mempool,
    // Second cache line.
    pub next: *mut rte_mbuf,
    /// Shares its 8 bytes with the l2_len..outer_l2_len bitfields.
    pub tx_offload: u64,
    pub shinfo: *mut rte_mbuf_ext_shared_info,
    pub priv_size: u16,
    pub timesync: u16,
    pub dynfield1: [u32; 9],
}

/// The 8 bytes of `hash`: the RSS hash, or what the flow director,
/// scheduler or an app put there.
#[repr(C)]
#[derive(Copy, Clone)]
pub union rte_mbuf_hash {
    pub rss: u32,
    pub raw: [u32; 2],
}

impl core::fmt::Debug for rte_mbuf_hash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // SAFETY: every bit pattern is a valid [u32; 2].
        write!(f, "rte_mbuf_hash({:?})", unsafe { self.raw })
    }
}

impl Default for rte_mbuf {
    fn default() -> Self {
        // SAFETY: all-zero is a valid rte_mbuf: null pointers and zeroes.
        unsafe { core::mem::zeroed() }
    }
}

const _: () = assert!(core::mem::size_of::<rte_mbuf>() == 128);
const _: () = assert!(core::mem::size_of::<rte_mbuf_hash>() == 8);
