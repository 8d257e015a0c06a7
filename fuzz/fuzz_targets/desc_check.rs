//! Descriptors as read from a guest's tx and fill rings: whatever the
//! bits, a descriptor that passes its check describes bytes inside the
//! buffer area, and one that fails goes back with the right status.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shm_abi::desc::{
    BufferRules, Desc, Rejected, LEN_EMPTY, LEN_REJECTED, MAX_SEGS, SEG_MORE, TX_RECYCLE,
};

fuzz_target!(|data: &[u8]| {
    if data.len() < 24 {
        return;
    }
    let u64_at = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap());
    let start = u64_at(0) % (1 << 35);
    let rules = BufferRules {
        buf_start: start,
        buf_end: start + u64_at(8) % (1 << 33),
        rx_room: u16::from_le_bytes([data[16], data[17]]),
        rx_headroom: u16::from_le_bytes([data[18], data[19]]),
        max_frame: u32::from_le_bytes(data[20..24].try_into().unwrap()) % 70_000,
        // Protocol v5 (chains) or older, as the input says.
        chains: data[16] & 1 != 0,
    };
    let mut segs = 0usize;
    let mut len = 0u32;
    for c in data[24..].chunks_exact(8) {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        let d = Desc {
            buf_off: w as u32,
            data_len: (w >> 32) as u16,
            data_off: (w >> 48) as u16,
        };
        match rules.check_tx(d).ok_or(BufferRules::reject_tx(d)) {
            Ok(v) => {
                let end = v.offset() + v.end() as u64;
                assert!(v.offset() >= rules.buf_start && end <= rules.buf_end);
                assert!(v.data_len() >= 14 && v.data_len() as u32 <= rules.max_frame);
                assert!(!v.more() && v.data_off() & TX_RECYCLE == 0);
                if v.recycle() {
                    assert!(v.offset() + rules.rx_room as u64 <= rules.buf_end);
                    assert!(v.end() <= rules.rx_room);
                }
            }
            Err(Rejected::ToRx(r)) => {
                assert!(d.data_off & TX_RECYCLE != 0 && r.data_len == LEN_EMPTY);
                // Never a flag on the rx ring.
                assert!(r.data_off & (SEG_MORE | TX_RECYCLE) == 0)
            }
            Err(Rejected::ToTxDone(r)) => {
                assert!(d.data_off & TX_RECYCLE == 0 && r.data_len == LEN_REJECTED)
            }
        }
        // The same descriptor as a buffer of a chain (v5).
        if let Some(v) = rules.check_tx_seg(d) {
            assert!(rules.chains);
            let end = v.offset() + v.end() as u64;
            assert!(v.offset() >= rules.buf_start && end <= rules.buf_end);
            assert!(v.data_len() >= 1 && v.data_len() as u32 <= rules.max_frame);
            assert!(v.data_off() & (SEG_MORE | TX_RECYCLE) == 0);
            assert_eq!(v.more(), d.data_off & SEG_MORE != 0);
            if v.recycle() {
                assert!(v.offset() + rules.rx_room as u64 <= rules.buf_end);
                assert!(v.end() <= rules.rx_room);
            }
            // A packet of buffers, as the proxy's take_tx adds them up.
            segs += 1;
            len += v.data_len() as u32;
            if !v.more() {
                if rules.check_packet(segs, len) {
                    assert!(segs <= MAX_SEGS && len >= 14 && len <= rules.max_frame);
                }
                segs = 0;
                len = 0;
            }
        }
        if let Ok(f) = rules.check_fill(d) {
            assert!(f.offset() >= rules.buf_start);
            assert!(f.offset() + rules.rx_room as u64 <= rules.buf_end);
        }
    }
});
