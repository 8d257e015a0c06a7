//! The protocol between `dpdk-io-proxy` and its guests, defined once and
//! used by the proxy, the guest drivers, the tests and the fuzz targets.
//! Nothing here depends on DPDK: `cargo test -p shm-abi` runs anywhere.
//!
//! - [`msg`]: control messages ([`msg::Msg`]), their encoding and versions
//! - [`layout`]: where the rings, heap and buffers are in a region
//! - [`desc`]: descriptors, their flags, rx metadata, and the checks that
//!   make [`desc::ValidTx`] / [`desc::ValidFill`] out of what a ring holds
//! - [`ring`]: hostile-safe SPSC descriptor rings in shared memory
//! - [`region`]: the memfd mapping and checked views into it
//! - [`socket`]: messages and the descriptors passed with them
//! - [`hint`]: cache hints the datapath uses
//! - [`wake`]: rx interrupts: each queue's control line and wake socket
pub mod desc;
pub mod hint;
pub mod layout;
pub mod msg;
pub mod region;
pub mod ring;
pub mod socket;
pub mod wake;
