//! Descriptors as read from a guest's tx and fill rings: whatever the
//! bits, a descriptor that passes its check describes bytes inside the
//! buffer area (its tx metadata too), and one that fails goes back with the
//! right status. Tx metadata that passes its check asks only for what is
//! allowed, about headers inside the packet's first buffer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shm_abi::desc::{
    tx_meta_flags, BufferRules, Desc, Rejected, TxMeta, LEN_EMPTY, LEN_REJECTED, MAX_SEGS,
    SEG_MORE, TX_META, TX_META_LEN, TX_META_OL_FLAGS, TX_RECYCLE,
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
        // Protocol v5 (chains), v7 (tx metadata) or older, as the input says.
        chains: data[16] & 1 != 0,
        tx_meta: data[16] & 3 == 3,
    };
    let allowed = tx_meta_flags(data[17] as u64 & 0xf);
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
                if v.meta() {
                    assert!(rules.tx_meta && v.data_off() & TX_META == 0);
                    let m = v.meta_offset();
                    assert!(m >= v.offset() && m + TX_META_LEN as u64 <= v.offset() + v.end() as u64);
                }
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
        // The same eight bytes, twice, as tx metadata.
        let meta = TxMeta::from_words([w, w.rotate_left(29)]);
        if let Some(ok) = meta.check(allowed, d.data_len) {
            let t = ok.get();
            assert!(t.ol_flags & !allowed == 0 && t.ol_flags & !TX_META_OL_FLAGS == 0);
            if t.ol_flags & (1 << 54 | 3 << 52) != 0 {
                assert!(t.l2_len < 128 && t.l3_len < 512 && t.l4_len < 256);
                assert!((t.l2_len + t.l3_len) as u32 + t.l4_len as u32 <= d.data_len as u32);
            }
        }
        if let Ok(f) = rules.check_fill(d) {
            assert!(f.offset() >= rules.buf_start);
            assert!(f.offset() + rules.rx_room as u64 <= rules.buf_end);
        }
    }
});
