//! The proxy's own code over a guest's region, as the datapath and the
//! pool ops run it (`io_proxy::guest_region`), with a hostile guest: the
//! fuzzer writes the guest's tx and fill rings (any descriptors) and
//! rewrites ring bytes between steps; the proxy takes tx descriptors
//! (`take_tx`), stages fills (`stage_fills`), hands the NIC receive buffers
//! (`headers_out`), takes headers back (`headers_back`) and gives every
//! buffer back (`return_all`). Mbuf headers are plain memory here: none of
//! these calls DPDK. What must hold: every header the NIC would get points
//! inside the buffer area with its data within it, no header is lost or
//! duplicated, nothing panics.
#![no_main]
use dpdk_sys::rte_mbuf;
use io_proxy::guest_region::{self, GuestCell, GuestRegion, GuestSlot, HDR_PRIV_SIZE};
use io_proxy::stats::SocketStats;
use libfuzzer_sys::fuzz_target;
use shm_abi::desc::Desc;
use shm_abi::layout::{Layout, ValidLayout};
use shm_abi::region::Region;
use shm_abi::ring::{Consumer, Producer};
use std::alloc::{alloc_zeroed, Layout as AllocLayout};
use std::cell::RefCell;
use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::sync::Arc;

const HEADERS: usize = 64;
const RX_ROOM: u16 = 2048;
const HEADROOM: u16 = 128;

struct State {
    cell: GuestCell,
    region: Region,
    layout: ValidLayout,
    guest_tx: Producer,
    guest_fill: Producer,
    guest_rx: Consumer,
    guest_txdone: Consumer,
    rx_hdrs: HashSet<usize>,
    all: HashSet<usize>,
}

/// Every header the harness made, for the rest of the process (its
/// pools): kept here so that the leak checker sees them referenced.
static KEPT: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

fn headers(n: usize) -> Vec<*mut rte_mbuf> {
    let size = std::mem::size_of::<rte_mbuf>() + HDR_PRIV_SIZE as usize;
    let l = AllocLayout::from_size_align(size, 64).unwrap();
    // SAFETY: non-zero size; kept for the process (KEPT).
    let v: Vec<*mut rte_mbuf> = (0..n).map(|_| unsafe { alloc_zeroed(l) } as *mut rte_mbuf).collect();
    KEPT.lock().unwrap().extend(v.iter().map(|&m| m as usize));
    v
}

fn state() -> State {
    let l = Layout::compute(4096, 64, 64 << 10, 256 << 10);
    let m = memfd::MemfdOptions::default().create("fuzz-proxy").unwrap();
    m.as_file().set_len(l.region_size).unwrap();
    let fd = OwnedFd::from(m.into_file());
    let region = Region::map(fd.try_clone().unwrap(), l.region_size as usize).unwrap();
    let layout = l.validate(region.len() as u64).unwrap();
    let proxy_view = Region::map(fd, l.region_size as usize).unwrap();
    let mut g = GuestRegion::new(proxy_view, layout, 0, Arc::new(SocketStats::default()), 0).unwrap();
    g.rules.rx_room = RX_ROOM;
    g.rules.rx_headroom = HEADROOM;
    g.rules.max_frame = 1518;
    // Protocol v5: buffers chained into packets (SEG_MORE).
    g.rules.chains = true;
    // v7: tx metadata, read from the buffers the input wrote.
    g.rules.tx_meta = true;
    g.tx_meta_flags = shm_abi::desc::tx_meta_flags(shm_abi::desc::TX_OFFLOADS_PASSED);
    let (rx, tx) = (headers(HEADERS), headers(HEADERS));
    g.add_free_headers(&rx, &tx);
    let rx_hdrs: HashSet<usize> = rx.iter().map(|&m| m as usize).collect();
    let all = rx_hdrs.iter().copied().chain(tx.iter().map(|&m| m as usize)).collect();
    State {
        guest_tx: region.producer(l.tx_off, l.ring_entries).unwrap(),
        guest_fill: region.producer(l.fill_off, l.ring_entries).unwrap(),
        guest_rx: region.consumer(l.rx_off, l.ring_entries).unwrap(),
        guest_txdone: region.consumer(l.txdone_off, l.ring_entries).unwrap(),
        cell: GuestCell::new(g),
        region,
        layout,
        rx_hdrs,
        all,
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Checks what a header the NIC would get says, against the guest's
/// mapping of the same memfd (the proxy's is another mapping).
fn check_header(s: &State, proxy_base: usize, m: *mut rte_mbuf) {
    let l = &s.layout;
    // SAFETY: one of the harness's headers, just attached by the proxy.
    let (addr, data_off, data_len, buf_len) =
        unsafe { ((*m).buf_addr as usize, (*m).data_off, (*m).data_len, (*m).buf_len) };
    let off = addr.wrapping_sub(proxy_base) as u64;
    assert!(off >= l.buf_off, "buffer before the area: {off}");
    let end = off + data_off as u64 + data_len as u64;
    assert!(end <= l.buf_off + l.buf_len, "data past the area: {off} + {data_off} + {data_len}");
    assert!(off + buf_len as u64 <= l.buf_off + l.buf_len, "buffer past the area");
}

fuzz_target!(|data: &[u8]| {
    STATE.with(|st| {
        let mut st = st.borrow_mut();
        let s = st.get_or_insert_with(state);
        let g = s.cell.get();
        // SAFETY: the cell lives in the thread-local; this thread is its
        // only user, and each scope below calls no DPDK function.
        let proxy_base = unsafe { GuestSlot::enter(g).buffers().base() } as usize;
        let l = s.layout;
        let mut i = 0;
        while i + 9 <= data.len() {
            let op = data[i];
            let word = u64::from_le_bytes(data[i + 1..i + 9].try_into().unwrap());
            i += 9;
            // Descriptors mostly near the buffer area, so that checks pass
            // often enough to exercise what follows them.
            let near = |w: u64| {
                let off = (l.buf_off + (w & 0x3ffff)) & !7;
                Desc::new(off.min(l.region_size - 8), (w >> 32) as u16, (w >> 48) as u16)
            };
            match op % 8 {
                0 => {
                    // The guest rewrites 8 bytes of the ring part.
                    let at = l.fill_off + (word >> 40) % (l.rings_end() - l.fill_off - 8);
                    let p = s.region.ptr(at, 8).unwrap();
                    // SAFETY: inside the guest's mapping of its ring part.
                    unsafe { (p as *mut u64).write_volatile(word) };
                }
                1 | 2 => {
                    let d = if op % 8 == 1 {
                        near(word)
                    } else {
                        Desc {
                            buf_off: word as u32,
                            data_len: (word >> 32) as u16,
                            data_off: (word >> 48) as u16,
                        }
                    };
                    let _ = s.guest_tx.push(d);
                }
                3 => {
                    let d = Desc::new((near(word).offset()) & !63, HEADROOM, 0);
                    let _ = s.guest_fill.push(if word & 1 == 0 { d } else { near(word) });
                }
                4 => {
                    // The datapath takes a burst; the NIC sends and frees it.
                    let mut out = [std::ptr::null_mut(); 32];
                    let n = (op as usize >> 3) % 33;
                    // SAFETY: see above.
                    let (k, _, _) = unsafe { GuestSlot::enter(g).take_tx(&mut out[..n]) };
                    // Every segment of every packet, unlinked as the NIC's
                    // free would (rte_pktmbuf_prefree_seg).
                    let mut segs = Vec::new();
                    for &m in &out[..k] {
                        let mut seg = m;
                        let mut count = 0;
                        while !seg.is_null() {
                            check_header(s, proxy_base, seg);
                            segs.push(seg);
                            count += 1;
                            // SAFETY: a header of ours in the packet's chain.
                            unsafe {
                                let next = (*seg).next;
                                (*seg).next = std::ptr::null_mut();
                                seg = next;
                            }
                        }
                        // SAFETY: as above.
                        let (nb, pkt_len) = unsafe { ((*m).nb_segs as usize, (*m).pkt_len) };
                        assert_eq!(nb, count, "nb_segs is not the chain's length");
                        assert!(count <= shm_abi::desc::MAX_SEGS);
                        assert!((14..=1518).contains(&pkt_len), "packet of {pkt_len} bytes");
                        // SAFETY: as above.
                        unsafe { (*m).nb_segs = 1 };
                    }
                    let (rx, tx): (Vec<_>, Vec<_>) =
                        segs.iter().partition(|&&m| s.rx_hdrs.contains(&(m as usize)));
                    // SAFETY: headers of the region's pools, given back.
                    unsafe {
                        GuestSlot::enter(g).headers_back(true, &rx);
                        GuestSlot::enter(g).headers_back(false, &tx);
                    }
                }
                5 => {
                    // The NIC asks for receive buffers, then gives them back
                    // unused.
                    let mut out = [std::ptr::null_mut(); 64];
                    let n = 1 + (op as usize >> 3) % 64;
                    // SAFETY: see above.
                    if unsafe { GuestSlot::enter(g).headers_out(&mut out[..n], true) } {
                        for &m in &out[..n] {
                            check_header(s, proxy_base, m);
                            // SAFETY: as above.
                            let room = unsafe { (*m).buf_len };
                            assert_eq!(room, RX_ROOM);
                        }
                        // SAFETY: rx-pool headers, given back.
                        unsafe { GuestSlot::enter(g).headers_back(true, &out[..n]) };
                    }
                }
                6 => {
                    // The guest reads what came back, then the proxy stages
                    // fills.
                    for c in [&mut s.guest_rx, &mut s.guest_txdone] {
                        if let Ok(n) = c.available(u32::MAX) {
                            c.release(n);
                        }
                    }
                    // SAFETY: see above.
                    unsafe { GuestSlot::enter(g).stage_fills() };
                }
                _ => {
                    // STOP: every buffer back to the guest (no pool: mp is
                    // null, so no DPDK call).
                    // SAFETY: see above.
                    unsafe { guest_region::return_all(g) };
                }
            }
            // No header lost or made up.
            // SAFETY: see above.
            let (free_rx, free_tx, ready) = unsafe { GuestSlot::enter(g).header_counts() };
            assert_eq!(free_rx + free_tx + ready, s.all.len(), "headers lost or duplicated");
        }
    });
});
