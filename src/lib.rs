//! The loadable DPDK plugin (`librte_sock_shm.so`): links the `sock` bus,
//! the `shared_mem` mempool and the `net_shm` PMD into one object that EAL
//! loads with `-d`. Each crate registers itself from an ELF constructor.
pub use dpdk_sys;
