//! The `sock` bus, guest side: the bus driver that DPDK apps load
//! (`-a sock:/path`). The protocol it speaks is `shm-abi`'s.
#[macro_use]
pub mod guest;
