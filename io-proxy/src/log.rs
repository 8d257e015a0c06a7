//! The `io_proxy` log type and the proxy's log lines through `rte_log`.

use dpdk_sys as sys;
use std::sync::atomic::{AtomicU32, Ordering};

static LOGTYPE: AtomicU32 = AtomicU32::new(sys::RTE_LOGTYPE_USER1);

/// Registers the `io_proxy` log type (after EAL init).
pub fn register() {
    // SAFETY: a static NUL-terminated name; EAL copies it.
    let lt = unsafe {
        sys::rte_log_register_type_and_pick_level(c"io_proxy".as_ptr(), sys::RTE_LOG_INFO)
    };
    if lt >= 0 {
        LOGTYPE.store(lt as u32, Ordering::Relaxed);
    }
}

fn at(level: u32, msg: &str) {
    sys::log(
        level,
        LOGTYPE.load(Ordering::Relaxed),
        &format!("IO_PROXY: {msg}"),
    );
}

pub fn info(msg: &str) {
    at(sys::RTE_LOG_INFO, msg);
}
pub fn warn(msg: &str) {
    at(sys::RTE_LOG_WARNING, msg);
}
pub fn err(msg: &str) {
    at(sys::RTE_LOG_ERR, msg);
}
