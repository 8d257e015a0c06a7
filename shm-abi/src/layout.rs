//! Where things are in a guest's shared region. The proxy computes a
//! [`Layout`]; the guest receives one in HELLO_ACK and may use it only as a
//! [`ValidLayout`], which [`Layout::validate`] alone makes.

use crate::msg::ProtoError;
use crate::ring::ring_bytes;

/// Offsets in bytes from the region's start, as they cross the socket.
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

/// Largest region: buffer offsets travel as u32 multiples of 8, and the
/// guest's pools index it with 32-bit offsets.
pub const REGION_MAX: u64 = 1 << 32;
/// Ring sizes a layout may have.
pub const RING_ENTRIES_MIN: u32 = 64;
pub const RING_ENTRIES_MAX: u32 = 65536;

/// A layout checked against the size of the memory it describes: every
/// part lies inside it, aligned, and the parts do not overlap. Only
/// [`Layout::validate`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidLayout(Layout);

impl std::ops::Deref for ValidLayout {
    type Target = Layout;
    fn deref(&self) -> &Layout {
        &self.0
    }
}

impl ValidLayout {
    pub fn get(&self) -> Layout {
        self.0
    }
    /// Offsets of the four rings: fill, rx, tx, txdone.
    pub fn ring_offsets(&self) -> [u64; 4] {
        [self.fill_off, self.rx_off, self.tx_off, self.txdone_off]
    }
    /// End of the ring part (the last ring's index block included).
    pub fn rings_end(&self) -> u64 {
        self.txdone_off + ring_bytes(self.ring_entries) as u64
    }
}

impl Layout {
    /// Lays out a region: index page, four rings, heap, buffers, each part
    /// aligned to the page size. Always valid for its own `region_size`.
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

    /// Checks a layout received from the peer against the size of the
    /// memory mapped for it.
    pub fn validate(&self, mapped: u64) -> Result<ValidLayout, ProtoError> {
        let bad = |why| Err(ProtoError::Invalid(why));
        if self.region_size != mapped || self.region_size > REGION_MAX {
            return bad("region size");
        }
        if !self.page_size.is_power_of_two() || self.page_size < 4096 {
            return bad("page size");
        }
        if !self.ring_entries.is_power_of_two()
            || !(RING_ENTRIES_MIN..=RING_ENTRIES_MAX).contains(&self.ring_entries)
        {
            return bad("ring entries");
        }
        let ring = ring_bytes(self.ring_entries) as u64;
        let within = |off: u64, len: u64| {
            off.is_multiple_of(64) && off.checked_add(len).is_some_and(|e| e <= mapped)
        };
        let mut rings = [self.fill_off, self.rx_off, self.tx_off, self.txdone_off];
        for off in rings {
            if !within(off, ring) {
                return bad("ring offset");
            }
        }
        // No two rings share a byte: each has one producer and one consumer.
        rings.sort_unstable();
        if rings.windows(2).any(|w| w[1] - w[0] < ring) {
            return bad("rings overlap");
        }
        if !within(self.heap_off, self.heap_len) || !self.heap_off.is_multiple_of(self.page_size) {
            return bad("heap area");
        }
        if rings[3] + ring > self.heap_off {
            return bad("rings overlap the heap");
        }
        // heap_off + heap_len cannot overflow: within() checked it.
        if !within(self.buf_off, self.buf_len) || self.buf_off < self.heap_off + self.heap_len {
            return bad("buffer area");
        }
        Ok(ValidLayout(*self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_layouts_are_valid() {
        for (page, entries) in [(4096, 64), (4096, 2048), (2 << 20, 65536)] {
            let l = Layout::compute(page, entries, 8 << 20, 64 << 20);
            let v = l.validate(l.region_size).unwrap();
            assert!(v.rings_end() <= v.heap_off);
        }
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
        let mut bad = l;
        bad.tx_off = bad.rx_off + 64;
        assert_eq!(
            bad.validate(l.region_size),
            Err(ProtoError::Invalid("rings overlap"))
        );
        let mut bad = l;
        bad.heap_off = 0;
        assert!(bad.validate(l.region_size).is_err());
        let mut bad = l;
        bad.heap_len = u64::MAX - bad.heap_off + 1;
        assert!(bad.validate(l.region_size).is_err());
    }
}
