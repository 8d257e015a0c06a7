//! The `sock` bus and everything both sides of the socket share.
//!
//! - [`proto`]: control messages and the region layout
//! - [`ring`]: hostile-safe SPSC descriptor rings in shared memory
//! - [`region`]: the memfd mapping and fd passing
//! - [`guest`]: the bus driver that DPDK apps load (`-a sock:/path`)
pub mod proto;
pub mod region;
pub mod ring;
#[macro_use]
pub mod guest;
