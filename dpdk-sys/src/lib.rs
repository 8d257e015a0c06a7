//! Raw bindings to the DPDK they are built against (22.11, 24.11, 25.11):
//! the public API, with the `driver-sdk` feature the driver SDK
//! (`bus_driver.h`, `dev_driver.h`, `ethdev_driver.h`), and a C shim that
//! exports DPDK's `static inline` fast path (`dpdk_sys_*`). `rte_mbuf` is
//! declared by hand (mbuf.rs) and checked against C (`tests/layout.rs`).
//!
//! Everything here is `unsafe` FFI; the driver crates wrap it.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(clippy::all)]
#![allow(rustdoc::all)]

mod bindings {
    #![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
    #![allow(dead_code, deref_nullptr, improper_ctypes, unnecessary_transmutes)]
    // Generated code: bindgen writes its own unsafe helpers.
    #![allow(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
    // Not generated: see mbuf.rs.
    use super::mbuf::rte_mbuf;
}
pub use bindings::*;
mod mbuf;
pub use mbuf::{rte_mbuf, rte_mbuf_hash};

/// The layout comparison between the C compiler and these bindings.
pub mod layout {
    include!(concat!(env!("OUT_DIR"), "/layout_rust.rs"));

    /// C's view of the structs in `csrc/layout.list`.
    pub fn c_layout() -> Vec<(String, usize)> {
        let mut count = 0usize;
        // SAFETY: returns a pointer to a static table of `count` entries whose
        // names are static NUL-terminated strings.
        unsafe {
            let table = crate::dpdk_sys_layout_table(&mut count);
            std::slice::from_raw_parts(table, count)
                .iter()
                .map(|e| {
                    let name = std::ffi::CStr::from_ptr(e.name)
                        .to_string_lossy()
                        .into_owned();
                    (name, e.value)
                })
                .collect()
        }
    }
}

/// DPDK 22.11 constants that bindgen cannot see (macros with casts or
/// expressions).
pub const RTE_MBUF_DEFAULT_BUF_SIZE: u16 =
    (RTE_MBUF_DEFAULT_DATAROOM + RTE_PKTMBUF_HEADROOM) as u16;
pub const RTE_ETH_RSS_IP: u64 = RTE_ETH_RSS_IPV4 as u64
    | RTE_ETH_RSS_FRAG_IPV4 as u64
    | RTE_ETH_RSS_NONFRAG_IPV4_OTHER as u64
    | RTE_ETH_RSS_IPV6 as u64
    | RTE_ETH_RSS_FRAG_IPV6 as u64
    | RTE_ETH_RSS_NONFRAG_IPV6_OTHER as u64
    | RTE_ETH_RSS_IPV6_EX as u64;
pub const RTE_ETH_RSS_UDP: u64 = RTE_ETH_RSS_NONFRAG_IPV4_UDP as u64
    | RTE_ETH_RSS_NONFRAG_IPV6_UDP as u64
    | RTE_ETH_RSS_IPV6_UDP_EX as u64;
pub const RTE_ETH_RSS_TCP: u64 = RTE_ETH_RSS_NONFRAG_IPV4_TCP as u64
    | RTE_ETH_RSS_NONFRAG_IPV6_TCP as u64
    | RTE_ETH_RSS_IPV6_TCP_EX as u64;

/// One spelling for what DPDK's releases spell differently (cfg
/// `dpdk_since`, set by build.rs from the version it builds against).
pub mod compat {
    use core::ffi::{c_char, c_int};

    /// Adds an unsigned value to a telemetry dict: `_u64` until 23.03
    /// added `_uint` (25.11 removed `_u64`).
    ///
    /// # Safety
    /// `d` is telemetry data being filled, `name` a NUL-terminated string.
    pub unsafe fn tel_data_add_dict_u64(
        d: *mut crate::rte_tel_data,
        name: *const c_char,
        v: u64,
    ) -> c_int {
        // SAFETY: the caller upholds this function's `# Safety` contract.
        #[cfg(dpdk_since = "23.03")]
        unsafe {
            crate::rte_tel_data_add_dict_uint(d, name, v)
        }
        // SAFETY: as above.
        #[cfg(not(dpdk_since = "23.03"))]
        unsafe {
            crate::rte_tel_data_add_dict_u64(d, name, v)
        }
    }
}

/// The version of the DPDK these bindings were generated for ("22.11.11").
pub const BUILT_FOR: &str = env!("DPDK_SYS_BUILT_FOR");

/// Whether `dpdk_sys_heap_grow` is available (built with the EAL private
/// headers of the matching DPDK source).
pub const HAVE_HEAP_GROW: bool = cfg!(dpdk_eal_private);

/// Runs the body of an `extern "C"` callback: a panic inside is logged and
/// becomes `on_panic`, so nothing unwinds into C and the app keeps running.
/// Costs nothing unless a panic happens.
#[inline]
pub fn ffi_guard<R>(what: &str, on_panic: R, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            log(
                RTE_LOG_ERR,
                RTE_LOGTYPE_EAL,
                &format!("internal error (panic) in {what}"),
            );
            on_panic
        }
    }
}

/// Registers mempool ops called `name`, with the callbacks `set` fills in.
/// EAL copies the struct; returns the ops index or a negative errno.
pub fn register_mempool_ops(name: &std::ffi::CStr, set: impl FnOnce(&mut rte_mempool_ops)) -> i32 {
    let mut ops = rte_mempool_ops::default();
    let room = ops.name.len() - 1;
    for (dst, &b) in ops.name.iter_mut().zip(name.to_bytes().iter().take(room)) {
        *dst = b as libc::c_char;
    }
    set(&mut ops);
    // SAFETY: a fully initialised ops struct that EAL copies into its table.
    unsafe { rte_mempool_register_ops(&ops) }
}

/// `rte_errno` of the calling thread.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int.
    unsafe { dpdk_sys_rte_errno() }
}

/// `rte_strerror(errno)` as an owned string.
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string.
    unsafe {
        let p = rte_strerror(errno);
        if p.is_null() {
            format!("errno {errno}")
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Writes `msg` through `rte_log` at `level` on `logtype`.
pub fn log(level: u32, logtype: u32, msg: &str) {
    let mut buf = Vec::with_capacity(msg.len() + 2);
    buf.extend(msg.bytes().filter(|&b| b != 0));
    buf.push(b'\n');
    buf.push(0);
    // SAFETY: both strings are NUL-terminated and outlive the call; "%s"
    // consumes exactly one char* argument.
    unsafe {
        rte_log(
            level,
            logtype,
            c"%s".as_ptr(),
            buf.as_ptr() as *const libc::c_char,
        );
    }
}

/// Runs `rte_eal_init` with `args` (args[0] is the program name). Returns the
/// number of arguments EAL consumed.
pub fn eal_init(args: &[String]) -> Result<i32, String> {
    let c_args: Vec<std::ffi::CString> = args
        .iter()
        .map(|a| {
            std::ffi::CString::new(a.as_str()).map_err(|_| format!("NUL in EAL argument {a:?}"))
        })
        .collect::<Result<_, _>>()?;
    // EAL may permute argv, so it gets its own array; the strings live in c_args.
    let mut argv: Vec<*mut libc::c_char> = c_args.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    // SAFETY: argv holds argc valid NUL-terminated strings plus a NULL; EAL
    // keeps pointers to some of them, so c_args is leaked below.
    let ret = unsafe { rte_eal_init(args.len() as i32, argv.as_mut_ptr()) };
    std::mem::forget(c_args);
    std::mem::forget(argv);
    if ret < 0 {
        let e = rte_errno();
        if e == 0 {
            Err("rte_eal_init failed (see the EAL messages above)".into())
        } else {
            Err(format!("rte_eal_init failed: {}", strerror(e)))
        }
    } else {
        Ok(ret)
    }
}
