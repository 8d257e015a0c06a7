//! dpdk-io-proxy as a library: the binary (`main.rs`) is its command
//! line, signals and threads; the fuzz targets drive `guest_region`.
//!
//! Modules, leaves first: `log`, `stats`, `error`; `access` (who may
//! attach to a socket); `nic`, `dma`, `flow` (rte_flow steering);
//! `wakeup` (a guest queue's tx kick socket); `guest_region` (a guest's
//! rings and buffers), `pool_ops` (the `shm_proxy` mempools), `datapath`
//! (the polling loop of one lcore), `lcores` (which lcore polls which
//! queue); `session` (handshake); `proxy` (sockets, sessions, guests),
//! `show` (text tables), `telemetry`; `command` (the command language).
pub mod access;
pub mod command;
pub mod datapath;
pub mod dma;
pub mod error;
pub mod flow;
pub mod guest_region;
pub mod lcores;
pub mod log;
pub mod nic;
pub mod pool_ops;
pub mod proxy;
pub mod session;
pub mod show;
pub mod stats;
pub mod telemetry;
pub mod wakeup;
