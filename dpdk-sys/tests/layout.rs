//! C compiler vs. Rust bindings: sizes, alignments and field offsets of the
//! structs the drivers share with DPDK (list in `csrc/layout.list`).
use std::collections::BTreeMap;

#[test]
fn c_and_rust_agree_on_struct_layout() {
    let c: BTreeMap<String, usize> = dpdk_sys::layout::c_layout().into_iter().collect();
    let rust = dpdk_sys::layout::rust_layout();
    assert!(
        rust.len() > 60,
        "layout list unexpectedly short: {}",
        rust.len()
    );
    assert_eq!(c.len(), rust.len(), "C and Rust probe different entries");
    let mismatches: Vec<String> = rust
        .iter()
        .filter_map(|(name, r)| match c.get(*name) {
            Some(cv) if cv == r => None,
            Some(cv) => Some(format!("{name}: C {cv} != Rust {r}")),
            None => Some(format!("{name}: missing on the C side")),
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "layout mismatches:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn key_sizes_are_fixed_by_the_abi() {
    // The same in DPDK 22.11, 24.11 and 25.11 on x86_64 (this test runs
    // against each: scripts/test.sh): a change here means another DPDK
    // build configuration (IOVA not in the mbuf, say), which src/mbuf.rs
    // does not describe.
    let c: BTreeMap<String, usize> = dpdk_sys::layout::c_layout().into_iter().collect();
    assert_eq!(c["rte_mbuf.sizeof"], 128);
    assert_eq!(c["rte_mbuf.pool"], 56);
    assert_eq!(std::mem::size_of::<dpdk_sys::rte_mbuf>(), 128);
    assert_eq!(std::mem::align_of::<dpdk_sys::rte_mbuf>(), 64);
}
