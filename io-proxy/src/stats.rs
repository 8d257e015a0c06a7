//! Per-socket counters: written by the datapath lcore (and the mempool
//! callbacks it triggers), read by telemetry and `show stats`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// On lines of its own: queues on different datapath lcores share none.
#[derive(Default)]
#[repr(align(64))]
pub struct SocketStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// NIC packets dropped: no guest, guest ring full, or foreign mbufs.
    pub rx_drops: AtomicU64,
    /// NIC queue had no guest buffer to receive into.
    pub rx_no_buffer: AtomicU64,
    /// Guest packets the NIC did not take.
    pub tx_drops: AtomicU64,
    /// Descriptors from the guest that failed validation.
    pub bad_descriptors: AtomicU64,
    /// Guest packets with tx offloads the NIC's tx_prepare refused.
    pub tx_offload_errors: AtomicU64,
    /// Buffers that could not be returned (guest ring full: a broken guest).
    pub lost_returns: AtomicU64,
    /// Packets whose payload the proxy copied. The proxy has no copy path:
    /// this stays 0 by construction, and telemetry shows it.
    pub payload_copies: AtomicU64,
    /// Rx interrupts (v10): wake-ups sent to a guest asleep on its rx.
    pub rx_wakes: AtomicU64,
    /// Kicks from the guest, sent as it published tx while its lcore
    /// waited for interrupts (v10).
    pub tx_kicks: AtomicU64,
    /// The guest broke the ring protocol; the control side disconnects it.
    pub guest_broken: AtomicBool,
}

impl SocketStats {
    /// Adds to a counter with one writer at a time (the datapath, or
    /// control while it is paused): a plain load and store, no locked
    /// instruction.
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// A counter's value, for display.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
