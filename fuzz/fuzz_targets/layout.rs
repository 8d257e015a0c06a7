//! A HELLO_ACK from a hostile or buggy proxy: whatever its layout says,
//! a layout that validates against the memfd's size puts every part the
//! guest maps or indexes inside it, aligned, and apart.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shm_abi::layout::Layout;
use shm_abi::msg::Msg;
use shm_abi::ring::ring_bytes;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let mapped = u64::from_le_bytes(data[..8].try_into().unwrap());
    let l = match Msg::decode(&data[8..]) {
        Ok((_, Msg::HelloAck(a))) => a.layout,
        // Also the raw struct, field by field, without the message around it.
        _ => {
            let w = |i: usize| {
                data.get(8 + 8 * i..16 + 8 * i)
                    .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
            };
            Layout {
                region_size: w(0),
                page_size: w(1),
                ring_entries: w(2) as u32,
                fill_off: w(3),
                rx_off: w(4),
                tx_off: w(5),
                txdone_off: w(6),
                heap_off: w(7),
                heap_len: w(8),
                buf_off: w(9),
                buf_len: w(10),
                queue_count: w(11) as u16,
                queue_stride: w(12),
                buf_max: w(13),
            }
        }
    };
    let Ok(v) = l.validate(mapped) else { return };
    let ring = ring_bytes(v.ring_entries) as u64;
    let inside = |off: u64, len: u64| off.checked_add(len).is_some_and(|e| e <= mapped);
    let mut rings: Vec<u64> = (0..v.queue_count)
        .flat_map(|q| v.queue(q).unwrap().offsets())
        .collect();
    assert!(v.queue(v.queue_count).is_none());
    for &off in &rings {
        assert!(inside(off, ring) && off % 64 == 0);
    }
    rings.sort_unstable();
    for w in rings.windows(2) {
        assert!(w[0] + ring <= w[1], "rings overlap");
    }
    assert!(inside(v.heap_off, v.heap_len) && inside(v.buf_off, v.buf_len));
    assert!(v.rings_end() <= v.heap_off && v.heap_off + v.heap_len <= v.buf_off);
    assert_eq!(v.region_size, mapped);
    // The buffers end the region and may grow only within 4 GiB.
    assert_eq!(v.buf_off + v.buf_len, mapped);
    assert!(v.buf_max >= v.buf_len && v.buf_off + v.buf_max <= shm_abi::layout::REGION_MAX);
});
