//! Link settings of the loadable plugin `librte_sock_shm.so`.
fn main() {
    // A stable soname, and never unloaded: EAL keeps pointers into the
    // plugin (bus, mempool ops, PMD callbacks) for the life of the process.
    // Named by the DPDK ABI it is built for (`librte_sock_shm.so.23.0` for
    // DPDK 22.11): EAL loads from a `-d` directory only `*.so` and
    // `*.so.<its own ABI>`, so plugins for several DPDK releases can sit
    // in one directory and each EAL takes its own.
    let abi = std::env::var("DEP_RTE_EAL_ABI").expect("dpdk-sys tells the DPDK ABI");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librte_sock_shm.so.{abi}");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
}
