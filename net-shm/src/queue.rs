//! Guest rx/tx queues and their burst functions.
//!
//! The guest behaves towards the proxy like a NIC driver towards its NIC:
//! it posts empty buffers (fill ring) and gets packets back (rx ring); it
//! posts packets (tx ring) and gets the buffers back once sent (txdone ring).
//! Each buffer crossing carries an id into a private table of mbuf pointers,
//! so no pointer is ever read back from shared memory.

use bus_shm::ring::{Consumer, Desc, Producer, DESC_F_EMPTY, DESC_F_NOT_SENT, DESC_F_REJECTED};
use dpdk_sys as sys;
use std::sync::atomic::{AtomicU64, Ordering};

/// Refill the fill ring when at least this many entries are free.
const REFILL_MIN: u32 = 32;
const REFILL_MAX: u32 = 64;

/// mbuf pointers indexed by the ids that cross the boundary.
pub struct IdTable {
    slots: Box<[*mut sys::rte_mbuf]>,
    free: Vec<u32>,
}

impl IdTable {
    pub fn new(cap: u32) -> IdTable {
        IdTable {
            slots: vec![std::ptr::null_mut(); cap as usize].into_boxed_slice(),
            free: (0..cap).rev().collect(),
        }
    }
    pub fn available(&self) -> u32 {
        self.free.len() as u32
    }
    /// Stores `m`; the caller checked `available() > 0`.
    #[inline]
    pub fn put(&mut self, m: *mut sys::rte_mbuf) -> u32 {
        let id = self.free.pop().expect("id table full");
        self.slots[id as usize] = m;
        id
    }
    /// Takes back the mbuf of `id`, if `id` is one we handed out.
    #[inline]
    pub fn take(&mut self, id: u32) -> Option<*mut sys::rte_mbuf> {
        let slot = self.slots.get_mut(id as usize)?;
        let m = std::mem::replace(slot, std::ptr::null_mut());
        if m.is_null() {
            return None;
        }
        self.free.push(id);
        Some(m)
    }
    /// Everything still out (for stop): mbufs we must free ourselves.
    pub fn drain(&mut self) -> Vec<*mut sys::rte_mbuf> {
        let mut out = Vec::new();
        for (id, slot) in self.slots.iter_mut().enumerate() {
            if !slot.is_null() {
                out.push(std::mem::replace(slot, std::ptr::null_mut()));
                self.free.push(id as u32);
            }
        }
        out
    }
}

/// Counters written by the polling thread, read by stats_get().
#[derive(Default)]
pub struct Counter(AtomicU64);
impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a plain read-modify-write without a locked op.
        self.0
            .store(self.0.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Where the region and its buffer area are in this process.
#[derive(Clone, Copy)]
pub struct Area {
    pub base: *mut u8,
    pub buf_start: u64,
    pub buf_end: u64,
}
impl Area {
    /// Offset of a buffer of `len` bytes at `p`, if it lies in the buffer area.
    #[inline]
    pub fn buf_offset(&self, p: *const u8, len: u64) -> Option<u32> {
        let off = (p as u64).checked_sub(self.base as u64)?;
        (off >= self.buf_start && off + len <= self.buf_end).then_some(off as u32)
    }
}

#[repr(C, align(64))]
pub struct RxQueue {
    pub fill: Producer,
    pub rx: Consumer,
    pub ids: IdTable,
    pub mp: *mut sys::rte_mempool,
    pub area: Area,
    pub port_id: u16,
    pub broken: bool,
    pub packets: Counter,
    pub bytes: Counter,
    pub nombuf: Counter,
    pub empty_returns: Counter,
    pub bad_desc: Counter,
}

#[repr(C, align(64))]
pub struct TxQueue {
    pub tx: Producer,
    pub done: Consumer,
    pub ids: IdTable,
    pub copy_pool: *mut sys::rte_mempool,
    pub area: Area,
    pub broken: bool,
    pub packets: Counter,
    pub bytes: Counter,
    pub copies: Counter,
    pub not_sent: Counter,
    pub rejected: Counter,
}

impl RxQueue {
    /// Posts fresh buffers while there is room in the ring and the id table.
    pub fn refill(&mut self, min: u32) {
        loop {
            let Ok(room) = self.fill.free(REFILL_MAX) else {
                self.broken = true;
                return;
            };
            let want = room.min(self.ids.available()).min(REFILL_MAX);
            if want < min || want == 0 {
                return;
            }
            let mut mbufs = [std::ptr::null_mut::<sys::rte_mbuf>(); REFILL_MAX as usize];
            // SAFETY: mp is the queue's pool; mbufs has room for `want`.
            if unsafe { sys::dpdk_sys_pktmbuf_alloc_bulk(self.mp, mbufs.as_mut_ptr(), want) } != 0 {
                self.nombuf.add(want as u64);
                return;
            }
            let mut posted = 0;
            for &m in &mbufs[..want as usize] {
                // SAFETY: m is a fresh mbuf from our pool.
                let (buf, buf_len, data_off) =
                    unsafe { ((*m).buf_addr as *const u8, (*m).buf_len, (*m).data_off) };
                let Some(buf_off) = self.area.buf_offset(buf, buf_len as u64) else {
                    // Checked at queue setup; a pool outside the area is a bug.
                    // SAFETY: our mbuf, not shared with anyone.
                    unsafe { sys::dpdk_sys_pktmbuf_free(m) };
                    continue;
                };
                let id = self.ids.put(m);
                self.fill.write(
                    posted,
                    Desc {
                        buf_off,
                        id,
                        data_len: 0,
                        data_off,
                        buf_len,
                        flags: 0,
                    },
                );
                posted += 1;
            }
            self.fill.publish(posted);
            if posted < want {
                return;
            }
        }
    }

    /// Frees everything this queue has out (port stopped, proxy done with it).
    pub fn drain(&mut self) {
        if let Ok(n) = self.rx.available(u32::MAX) {
            for i in 0..n {
                let d = self.rx.read(i);
                if let Some(m) = self.ids.take(d.id) {
                    // SAFETY: our mbuf, returned by the proxy.
                    unsafe { sys::dpdk_sys_pktmbuf_free(m) };
                }
            }
            self.rx.release(n);
        }
        for m in self.ids.drain() {
            // SAFETY: ours; the proxy is stopped or gone and no longer uses it.
            unsafe { sys::dpdk_sys_pktmbuf_free(m) };
        }
    }
}

impl TxQueue {
    fn reclaim(&mut self) {
        let Ok(n) = self.done.available(64) else {
            self.broken = true;
            return;
        };
        let n = n.min(64);
        let mut done = [std::ptr::null_mut::<sys::rte_mbuf>(); 64];
        let mut k = 0;
        for i in 0..n {
            let d = self.done.read(i);
            let Some(m) = self.ids.take(d.id) else {
                continue;
            };
            if d.flags & DESC_F_REJECTED != 0 {
                self.rejected.add(1);
            } else if d.flags & DESC_F_NOT_SENT != 0 {
                self.not_sent.add(1);
            }
            done[k] = m;
            k += 1;
        }
        self.done.release(n);
        if k > 0 {
            // SAFETY: the proxy is done with these buffers; one reference
            // each is ours (tx_burst took it).
            unsafe { sys::rte_pktmbuf_free_bulk(done.as_mut_ptr(), k as u32) };
        }
    }

    pub fn drain(&mut self) {
        self.reclaim();
        for m in self.ids.drain() {
            // SAFETY: as in reclaim(); the proxy is stopped or gone.
            unsafe { sys::dpdk_sys_pktmbuf_free_seg(m) };
        }
    }

    /// A copy of `m` in a buffer of the shared area (for chains, indirect or
    /// external mbufs, and mbufs from pools outside the area).
    ///
    /// # Safety
    /// `m` must be a valid packet mbuf.
    unsafe fn copy_into_area(&mut self, m: *mut sys::rte_mbuf) -> Option<*mut sys::rte_mbuf> {
        if self.copy_pool.is_null() {
            return None;
        }
        let c = sys::dpdk_sys_pktmbuf_alloc(self.copy_pool);
        if c.is_null() {
            return None;
        }
        let len = (*m).pkt_len;
        let room = (*c).buf_len as u32 - (*c).data_off as u32;
        if len > room {
            sys::dpdk_sys_pktmbuf_free(c);
            return None;
        }
        let dst = ((*c).buf_addr as *mut u8).add((*c).data_off as usize);
        let mut seg = m;
        let mut done = 0usize;
        while !seg.is_null() && done < len as usize {
            let n = ((*seg).data_len as usize).min(len as usize - done);
            let src = ((*seg).buf_addr as *const u8).add((*seg).data_off as usize);
            std::ptr::copy_nonoverlapping(src, dst.add(done), n);
            done += n;
            seg = (*seg).next;
        }
        (*c).data_len = done as u16;
        (*c).pkt_len = done as u32;
        self.copies.add(1);
        Some(c)
    }
}

/// `eth_rx_burst_t` of net_shm.
///
/// # Safety
/// Called by ethdev with the queue pointer set at setup and room for `n` mbufs.
pub unsafe extern "C" fn rx_burst(
    q: *mut std::ffi::c_void,
    pkts: *mut *mut sys::rte_mbuf,
    n: u16,
) -> u16 {
    let q = &mut *(q as *mut RxQueue);
    if q.broken {
        return 0;
    }
    let avail = match q.rx.available(n as u32) {
        Ok(a) => a.min(n as u32),
        Err(_) => {
            q.broken = true;
            return 0;
        }
    };
    let mut got = 0usize;
    let mut bytes = 0u64;
    for i in 0..avail {
        let d = q.rx.read(i);
        let Some(m) = q.ids.take(d.id) else {
            q.bad_desc.add(1);
            continue;
        };
        if d.flags & DESC_F_EMPTY != 0 {
            q.empty_returns.add(1);
            sys::dpdk_sys_pktmbuf_free(m);
            continue;
        }
        if d.data_off as u32 + d.data_len as u32 > (*m).buf_len as u32 || d.data_len == 0 {
            q.bad_desc.add(1);
            sys::dpdk_sys_pktmbuf_free(m);
            continue;
        }
        (*m).data_off = d.data_off;
        (*m).data_len = d.data_len;
        (*m).pkt_len = d.data_len as u32;
        (*m).port = q.port_id;
        bytes += d.data_len as u64;
        *pkts.add(got) = m;
        got += 1;
    }
    if avail > 0 {
        q.rx.release(avail);
    }
    q.refill(REFILL_MIN);
    q.packets.add(got as u64);
    q.bytes.add(bytes);
    got as u16
}

const NOT_ZERO_COPY: u64 = sys::RTE_MBUF_F_INDIRECT | sys::RTE_MBUF_F_EXTERNAL;

/// `eth_tx_burst_t` of net_shm.
///
/// # Safety
/// Called by ethdev with the queue pointer set at setup and `n` valid mbufs.
pub unsafe extern "C" fn tx_burst(
    q: *mut std::ffi::c_void,
    pkts: *mut *mut sys::rte_mbuf,
    n: u16,
) -> u16 {
    let q = &mut *(q as *mut TxQueue);
    if q.broken {
        return 0;
    }
    q.reclaim();
    let room = match q.tx.free(n as u32) {
        Ok(r) => r.min(q.ids.available()).min(n as u32),
        Err(_) => {
            q.broken = true;
            return 0;
        }
    };
    let mut sent = 0u32;
    let mut bytes = 0u64;
    while sent < room {
        let orig = *pkts.add(sent as usize);
        let mut m = orig;
        let mut buf_off = None;
        if (*m).nb_segs == 1 && (*m).ol_flags & NOT_ZERO_COPY == 0 {
            buf_off = q
                .area
                .buf_offset((*m).buf_addr as *const u8, (*m).buf_len as u64);
        }
        if buf_off.is_none() {
            let Some(c) = q.copy_into_area(m) else { break };
            sys::dpdk_sys_pktmbuf_free(orig);
            m = c;
            buf_off = q
                .area
                .buf_offset((*m).buf_addr as *const u8, (*m).buf_len as u64);
        }
        let Some(buf_off) = buf_off else { break };
        bytes += (*m).data_len as u64;
        let id = q.ids.put(m);
        q.tx.write(
            sent,
            Desc {
                buf_off,
                id,
                data_len: (*m).data_len,
                data_off: (*m).data_off,
                buf_len: (*m).buf_len,
                flags: 0,
            },
        );
        sent += 1;
    }
    if sent > 0 {
        q.tx.publish(sent);
    }
    q.packets.add(sent as u64);
    q.bytes.add(bytes);
    sent as u16
}
