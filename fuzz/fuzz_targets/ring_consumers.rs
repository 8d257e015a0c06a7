//! The proxy's side of a guest's rings, over a real memfd region that the
//! fuzzer fills and rewrites between steps as a hostile guest would: the
//! consumers (tx, fill) read, check and release; the producers (rx,
//! txdone) give buffers back. No step may panic, loop, or form a pointer
//! outside the buffer area; a corrupt index is reported, not trusted.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shm_abi::desc::{BufferRules, Desc, Rejected};
use shm_abi::layout::{Layout, ValidLayout};
use shm_abi::region::Region;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

struct Shared {
    region: Region,
    layout: ValidLayout,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let l = Layout::compute(4096, 64, 64 << 10, 256 << 10);
        let m = memfd::MemfdOptions::default().create("fuzz-region").unwrap();
        m.as_file().set_len(l.region_size).unwrap();
        let region = Region::map(OwnedFd::from(m.into_file()), l.region_size as usize).unwrap();
        let layout = l.validate(region.len() as u64).unwrap();
        Shared { region, layout }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = shared();
    let l = s.layout;
    let n = l.ring_entries;
    let (Ok(mut tx), Ok(mut fill), Ok(mut rx), Ok(mut txdone)) = (
        s.region.consumer(l.tx_off, n),
        s.region.consumer(l.fill_off, n),
        s.region.producer(l.rx_off, n),
        s.region.producer(l.txdone_off, n),
    ) else {
        panic!("rings of a valid layout")
    };
    let area = s.region.buffers(&l).unwrap();
    let rules = BufferRules {
        buf_start: l.buf_off,
        buf_end: l.buf_off + l.buf_len,
        rx_room: 2048,
        rx_headroom: 128,
        max_frame: 1518,
        chains: true,
        tx_meta: true,
    };
    let mut i = 0;
    while i + 2 <= data.len() {
        let (op, arg) = (data[i], data[i + 1]);
        i += 2;
        match op % 4 {
            // The guest rewrites bytes of the ring part (indexes and
            // descriptors): 8 bytes at a place chosen by the input.
            0 => {
                let Some(chunk) = data.get(i..i + 8) else { break };
                i += 8;
                let at = l.fill_off + (arg as u64 * 64 + chunk[0] as u64) % (l.rings_end() - l.fill_off - 8);
                let p = s.region.ptr(at, 8).unwrap();
                // SAFETY: 8 bytes inside the mapped ring part; a hostile
                // guest writes there at any time, so the proxy's side must
                // cope with it (atomics there make it a race, not UB).
                unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), p, 8) };
            }
            // take_tx: copy out, check, give back what fails.
            1 | 2 => {
                let ring = if op % 4 == 1 { &mut tx } else { &mut fill };
                let Ok(avail) = ring.available(arg as u32) else { continue };
                assert!(avail <= n, "more available than the ring holds");
                let k = avail.min(arg as u32);
                for j in 0..k {
                    let d = ring.read(j);
                    let r = if op % 4 == 1 {
                        rules
                            .check_tx(d)
                            .map(|v| (v.offset(), v.end() as u64))
                            .ok_or(BufferRules::reject_tx(d))
                    } else {
                        rules.check_fill(d).map(|f| (f.offset(), rules.rx_room as u64))
                    };
                    match r {
                        Ok((off, len)) => {
                            assert!(area.contains(off, len));
                            let p = area.at_checked(off);
                            // SAFETY: inside the buffer area (asserted).
                            let _ = unsafe { std::ptr::read_volatile(p) };
                        }
                        Err(Rejected::ToRx(d)) => {
                            let _ = rx.push(d);
                        }
                        Err(Rejected::ToTxDone(d)) => {
                            let _ = txdone.push(d);
                        }
                    }
                }
                ring.release(k);
            }
            // The proxy returns buffers in a batch.
            _ => {
                if let Ok(free) = txdone.free(arg as u32) {
                    assert!(free <= n);
                    for j in 0..free.min(arg as u32) {
                        txdone.write(j, Desc::new(l.buf_off, 0, 0));
                    }
                    txdone.publish(free.min(arg as u32));
                }
            }
        }
    }
});
