//! Cache hints for the datapath: they change no value any thread can see,
//! never fault whatever the address, and cost one instruction. The same
//! instructions as DPDK's `rte_prefetch0`, `rte_prefetch0_write` and
//! `rte_cldemote`, without DPDK.

/// Starts loading the cache line at `p` for reading (`rte_prefetch0`).
/// A hint only: it never faults, whatever the address.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch does not access memory architecturally and cannot
    // fault; SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above, PRFM is a hint.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

/// Moves the cache line at `p` out of this core's private caches towards
/// the shared last-level cache (`rte_cldemote`), so that another core that
/// reads it next is served from there instead of by a snoop into this
/// core. A hint only: it never faults and does not change the line's value;
/// CPUs without CLDEMOTE execute it as a no-op (it is in the hint-NOP space).
#[inline(always)]
pub fn cldemote(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: CLDEMOTE is a hint, cannot fault and has no architectural
    // effect; older CPUs decode it as a NOP.
    unsafe {
        std::arch::asm!("cldemote [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Starts loading the cache line at `p` with intent to write
/// (`rte_prefetch0_write`): the line's other copies are invalidated now,
/// not when the store reaches it. A hint only, it never faults.
#[inline(always)]
pub fn prefetch_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHW is a hint and cannot fault; CPUs without it
    // execute it as a no-op.
    unsafe {
        std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above, PRFM is a hint.
    unsafe {
        std::arch::asm!("prfm pstl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}
