//! Link settings of the loadable plugin `librte_sock_shm.so`.
fn main() {
    // A stable soname, and never unloaded: EAL keeps pointers into the
    // plugin (bus, mempool ops, PMD callbacks) for the life of the process.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librte_sock_shm.so");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
}
