//! Descriptors as read from a guest's tx and fill rings: whatever the
//! bits, a descriptor that passes its check describes bytes inside the
//! buffer area, and one that fails goes back with the right status.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shm_abi::desc::{BufferRules, Desc, Rejected, LEN_EMPTY, LEN_REJECTED, TX_RECYCLE};

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
    };
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
                if v.recycle() {
                    assert!(v.offset() + rules.rx_room as u64 <= rules.buf_end);
                    assert!(v.end() <= rules.rx_room);
                }
            }
            Err(Rejected::ToRx(r)) => {
                assert!(d.data_off & TX_RECYCLE != 0 && r.data_len == LEN_EMPTY)
            }
            Err(Rejected::ToTxDone(r)) => {
                assert!(d.data_off & TX_RECYCLE == 0 && r.data_len == LEN_REJECTED)
            }
        }
        if let Ok(f) = rules.check_fill(d) {
            assert!(f.offset() >= rules.buf_start);
            assert!(f.offset() + rules.rx_room as u64 <= rules.buf_end);
        }
    }
});
