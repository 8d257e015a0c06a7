//! Where things are in a guest's shared region. The proxy computes a
//! [`Layout`]; the guest receives one in HELLO_ACK and may use it only as a
//! [`ValidLayout`], which [`Layout::validate`] alone makes.

use crate::msg::ProtoError;
use crate::ring::ring_bytes;
use crate::wake::QUEUE_CTL_SIZE;

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
    /// v5: queue pairs in the region (1 before v5). Queue k's four rings
    /// are queue 0's (the offsets above) moved by `k * queue_stride`.
    pub queue_count: u16,
    pub queue_stride: u64,
    /// The guest's own malloc heap.
    pub heap_off: u64,
    pub heap_len: u64,
    /// Packet buffers: the guest's mbuf pools. The only part the proxy lets
    /// a NIC read or write.
    pub buf_off: u64,
    pub buf_len: u64,
    /// v6: the most the buffer area may grow to (GROW appends to it, at the
    /// region's end); `buf_len` before v6.
    pub buf_max: u64,
}

/// Largest region: buffer offsets travel as u32 multiples of 8, and the
/// guest's pools index it with 32-bit offsets.
pub const REGION_MAX: u64 = 1 << 32;
/// Ring sizes a layout may have.
pub const RING_ENTRIES_MIN: u32 = 64;
pub const RING_ENTRIES_MAX: u32 = 65536;
/// Most queue pairs one region (one socket) may have.
pub const QUEUES_MAX: u16 = 64;

/// Where one queue pair's four rings are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRings {
    pub fill: u64,
    pub rx: u64,
    pub tx: u64,
    pub txdone: u64,
}

impl QueueRings {
    pub fn offsets(&self) -> [u64; 4] {
        [self.fill, self.rx, self.tx, self.txdone]
    }
}

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
    /// Offsets of queue 0's four rings: fill, rx, tx, txdone.
    pub fn ring_offsets(&self) -> [u64; 4] {
        [self.fill_off, self.rx_off, self.tx_off, self.txdone_off]
    }
    /// The rings of queue pair `q`, if the region has it.
    pub fn queue(&self, q: u16) -> Option<QueueRings> {
        (q < self.queue_count).then(|| {
            let d = q as u64 * self.queue_stride;
            QueueRings {
                fill: self.fill_off + d,
                rx: self.rx_off + d,
                tx: self.tx_off + d,
                txdone: self.txdone_off + d,
            }
        })
    }
    /// End of the ring part (the last queue's last ring included).
    pub fn rings_end(&self) -> u64 {
        let last = self
            .queue(self.queue_count - 1)
            .expect("at least one queue");
        last.offsets().into_iter().max().unwrap_or(0) + ring_bytes(self.ring_entries) as u64
    }
}

impl Layout {
    /// Lays out a region of one queue pair: control page (the queues'
    /// control lines, [`crate::wake`]), four rings, heap,
    /// buffers, each part aligned to the page size.
    pub fn compute(page_size: u64, ring_entries: u32, heap_len: u64, buf_len: u64) -> Layout {
        Layout::compute_queues(page_size, ring_entries, 1, heap_len, buf_len)
    }

    /// Lays out a region of `queues` queue pairs (1..=[`QUEUES_MAX`]): index
    /// page, each queue's four rings, heap, buffers. Always valid for its
    /// own `region_size`. The first page holds the control lines of up to
    /// [`QUEUES_MAX`] queue pairs.
    pub fn compute_queues(
        page_size: u64,
        ring_entries: u32,
        queues: u16,
        heap_len: u64,
        buf_len: u64,
    ) -> Layout {
        let align = |x: u64| x.div_ceil(page_size) * page_size;
        let ring = ring_bytes(ring_entries) as u64;
        let queues = queues.clamp(1, QUEUES_MAX);
        // The control page: a line per queue pair, for as many as a region has.
        const _: () = assert!(QUEUES_MAX as u64 * QUEUE_CTL_SIZE <= 4096);
        let fill_off = 4096;
        let rx_off = fill_off + ring;
        let tx_off = rx_off + ring;
        let txdone_off = tx_off + ring;
        // One queue: stride 0, as a pre-v5 layout decodes.
        let queue_stride = if queues > 1 { 4 * ring } else { 0 };
        let heap_off = align(fill_off + queues as u64 * 4 * ring);
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
            queue_count: queues,
            queue_stride,
            heap_off,
            heap_len,
            buf_off,
            buf_len,
            buf_max: buf_len,
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
        if !(1..=QUEUES_MAX).contains(&self.queue_count) {
            return bad("queue count");
        }
        let queue0 = [self.fill_off, self.rx_off, self.tx_off, self.txdone_off];
        for off in queue0 {
            if !within(off, ring) {
                return bad("ring offset");
            }
        }
        // Queue 0's rings plus the stride, queue by queue: every offset is
        // in range before it is computed (no overflow), and in the region.
        let mut rings = Vec::with_capacity(4 * self.queue_count as usize);
        for q in 0..self.queue_count as u64 {
            let Some(d) = q.checked_mul(self.queue_stride) else {
                return bad("queue stride");
            };
            for off in queue0 {
                match off.checked_add(d) {
                    Some(o) if within(o, ring) => rings.push(o),
                    _ => return bad("ring offset"),
                }
            }
        }
        // No two rings share a byte: each has one producer and one consumer.
        rings.sort_unstable();
        // The queues' control lines (v10) come first.
        if rings[0] < self.queue_count as u64 * QUEUE_CTL_SIZE {
            return bad("rings overlap the queue control lines");
        }
        if rings.windows(2).any(|w| w[1] - w[0] < ring) {
            return bad("rings overlap");
        }
        if !within(self.heap_off, self.heap_len) || !self.heap_off.is_multiple_of(self.page_size) {
            return bad("heap area");
        }
        if rings[rings.len() - 1] + ring > self.heap_off {
            return bad("rings overlap the heap");
        }
        // heap_off + heap_len cannot overflow: within() checked it.
        if !within(self.buf_off, self.buf_len) || self.buf_off < self.heap_off + self.heap_len {
            return bad("buffer area");
        }
        // The buffers end the region: that is where they grow (v6).
        if self.buf_off + self.buf_len != mapped {
            return bad("buffer area is not the region's end");
        }
        if self.buf_max < self.buf_len
            || self
                .buf_off
                .checked_add(self.buf_max)
                .is_none_or(|e| e > REGION_MAX)
            || !self.buf_max.is_multiple_of(self.page_size)
        {
            return bad("buffer area limit");
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
    fn queues_have_their_own_rings() {
        let l = Layout::compute_queues(4096, 512, 4, 1 << 20, 1 << 20);
        let v = l.validate(l.region_size).unwrap();
        let mut all: Vec<u64> = (0..4).flat_map(|q| v.queue(q).unwrap().offsets()).collect();
        assert_eq!(v.queue(0).unwrap().offsets(), v.ring_offsets());
        assert!(v.queue(4).is_none());
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 16);
        assert!(v.rings_end() <= v.heap_off);
        let mut bad = l;
        bad.queue_stride = 64;
        assert_eq!(
            bad.validate(l.region_size),
            Err(ProtoError::Invalid("rings overlap"))
        );
        let mut bad = l;
        bad.queue_count = 40;
        assert!(bad.validate(l.region_size).is_err());
        let mut bad = l;
        bad.queue_stride = u64::MAX / 2;
        assert!(bad.validate(l.region_size).is_err());
        let mut bad = l;
        bad.queue_count = 0;
        assert!(bad.validate(l.region_size).is_err());
        // Queue 0's rings moved into the control lines of four queues.
        let mut bad = l;
        bad.fill_off = 128;
        assert_eq!(
            bad.validate(l.region_size),
            Err(ProtoError::Invalid("rings overlap the queue control lines"))
        );
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
        let mut bad = l;
        bad.buf_max = l.buf_len - 4096;
        assert!(bad.validate(l.region_size).is_err());
        let mut bad = l;
        bad.buf_max = REGION_MAX;
        assert!(bad.validate(l.region_size).is_err());
        let mut grows = l;
        grows.buf_max = 1 << 30;
        assert!(grows.validate(l.region_size).is_ok());
    }
}
