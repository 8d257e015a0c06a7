//! The `shm_proxy` mempools that carry a guest's buffers through the NIC:
//! their ops (DPDK calls them) and their creation.
//!
//! Each guest has two header pools:
//! - the **rx pool**, behind the NIC rx queue. A header that is free in this
//!   pool (in its backend or in an lcore's mempool cache) stays attached to
//!   a fill buffer: the NIC's next receive buffer. Fill buffers come from the
//!   guest's fill ring, or are tx buffers the guest flagged for recycling:
//!   those get an rx-pool header in `take_tx`, so when the NIC frees them
//!   after sending they go into the lcore cache and are the next buffers the
//!   NIC receives into, without a call into this module in between.
//! - the **tx pool** (no cache), for the other tx buffers: freeing one
//!   returns its buffer to the guest on txdone.
//!
//! The pools' `pool_data` is the guest's [`GuestRegion`] pointer. The ops
//! run inside our own calls into DPDK (tx burst, mbuf free, queue setup),
//! whose callers hold no reference to the region (guest_region.rs); each op
//! makes its own `&mut` for its body, which calls no DPDK function.

use crate::error::ProxyError;
use crate::guest_region::{GuestPtr, GuestSlot, HDR_PRIV_SIZE};
use dpdk_sys as sys;
use std::ffi::{c_int, c_uint, c_void, CStr};

pub const OPS_NAME: &CStr = c"shm_proxy";

/// Lcore cache of the rx pool: a few bursts of fill buffers.
pub const RX_POOL_CACHE: u32 = 128;

/// The guest region behind a `shm_proxy` pool.
///
/// # Safety
/// `mp` is a `shm_proxy` pool whose GuestRegion is alive.
unsafe fn guest(mp: *const sys::rte_mempool) -> GuestPtr {
    // SAFETY: mp is a pool (contract); ops_alloc set pool_data.
    unsafe { (*mp).__bindgen_anon_1.pool_data as GuestPtr }
}

unsafe extern "C" fn ops_alloc(mp: *mut sys::rte_mempool) -> c_int {
    sys::ffi_guard("shm_proxy ops_alloc", -libc::EIO, || {
        // SAFETY: DPDK passes a pool being populated; its creator
        // (create_pool) passed the GuestRegion as pool_config and holds no
        // reference to it during this call.
        unsafe {
            if (*mp).pool_config.is_null() {
                return -libc::EINVAL;
            }
            (*mp).__bindgen_anon_1.pool_data = (*mp).pool_config;
            let mut g = GuestSlot::enter(guest(mp));
            let n = (*mp).size as usize;
            // Full capacity now: the datapath never allocates.
            if mp == g.mp {
                g.free_hdrs = Vec::with_capacity(n);
                g.ready = Vec::with_capacity(n);
            } else {
                g.free_tx_hdrs = Vec::with_capacity(n);
            }
        }
        0
    })
}

unsafe extern "C" fn ops_free(_mp: *mut sys::rte_mempool) {}

/// A NIC (or the datapath) gives headers back. Rx-pool headers of fill
/// buffers stay attached (the next receive buffers); tx buffers go back to
/// the guest on txdone, or become fill buffers when flagged for recycling.
unsafe extern "C" fn ops_enqueue(
    mp: *mut sys::rte_mempool,
    objs: *const *mut c_void,
    n: c_uint,
) -> c_int {
    sys::ffi_guard("shm_proxy ops_enqueue", -libc::EIO, || {
        // SAFETY: a shm_proxy pool of a live guest; whoever called into
        // DPDK holds no reference to the region, and headers_back calls no
        // DPDK function. DPDK passes n headers of this pool, given back.
        unsafe {
            let mut g = GuestSlot::enter(guest(mp));
            let rx_pool = mp == g.mp;
            let hdrs = std::slice::from_raw_parts(objs as *const *mut sys::rte_mbuf, n as usize);
            g.headers_back(rx_pool, hdrs);
        }
        0
    })
}

unsafe extern "C" fn ops_dequeue(
    mp: *mut sys::rte_mempool,
    objs: *mut *mut c_void,
    n: c_uint,
) -> c_int {
    sys::ffi_guard("shm_proxy ops_dequeue", -libc::EIO, || {
        // SAFETY: as in ops_enqueue; DPDK's array has room for n objects.
        unsafe {
            let mut g = GuestSlot::enter(guest(mp));
            if mp != g.mp {
                // Nothing allocates from the tx pool (take_tx uses its free
                // list).
                return -libc::ENOBUFS;
            }
            // The mempool library first asks for a burst plus a cache
            // refill and then, if that fails, for the burst alone: count
            // the latter as a miss.
            let cache = (*mp).cache_size;
            let count_miss = n <= cache || cache == 0;
            let out = std::slice::from_raw_parts_mut(objs as *mut *mut sys::rte_mbuf, n as usize);
            if g.headers_out(out, count_miss) {
                0
            } else {
                -libc::ENOBUFS
            }
        }
    })
}

unsafe extern "C" fn ops_get_count(mp: *const sys::rte_mempool) -> c_uint {
    sys::ffi_guard("shm_proxy ops_get_count", 0, || {
        // SAFETY: as in ops_enqueue; only read.
        let g = unsafe { GuestSlot::enter(guest(mp)) };
        if mp == g.mp {
            (g.ready.len() + g.free_hdrs.len().min(g.staged.len())) as c_uint
        } else {
            g.free_tx_hdrs.len() as c_uint
        }
    })
}

/// Clears each object before the library enqueues it, so that every
/// header starts with origin NONE.
unsafe extern "C" fn ops_populate(
    mp: *mut sys::rte_mempool,
    max_objs: c_uint,
    vaddr: *mut c_void,
    iova: sys::rte_iova_t,
    len: usize,
    obj_cb: sys::rte_mempool_populate_obj_cb_t,
    obj_cb_arg: *mut c_void,
) -> c_int {
    sys::ffi_guard("shm_proxy ops_populate", -libc::EIO, || {
        // SAFETY: DPDK hands us `len` bytes at vaddr for this pool's
        // objects, then the default populate lays them out.
        unsafe {
            std::ptr::write_bytes(vaddr as *mut u8, 0, len);
            sys::rte_mempool_op_populate_default(mp, max_objs, vaddr, iova, len, obj_cb, obj_cb_arg)
        }
    })
}

/// The ops table, filled in by [`register_ops`].
fn ops(o: &mut sys::rte_mempool_ops) {
    o.alloc = Some(ops_alloc);
    o.free = Some(ops_free);
    o.enqueue = Some(ops_enqueue);
    o.dequeue = Some(ops_dequeue);
    o.get_count = Some(ops_get_count);
    o.populate = Some(ops_populate);
}

/// Registers the `shm_proxy` ops (once, before the first guest).
pub fn register_ops() -> Result<(), ProxyError> {
    let r = sys::register_mempool_ops(OPS_NAME, ops);
    if r < 0 {
        return Err(ProxyError::dpdk("register shm_proxy mempool ops", r));
    }
    Ok(())
}

unsafe extern "C" fn init_hdr(
    mp: *mut sys::rte_mempool,
    _arg: *mut c_void,
    obj: *mut c_void,
    _idx: c_uint,
) {
    sys::ffi_guard("shm_proxy init_hdr", (), || {
        let m = obj as *mut sys::rte_mbuf;
        // SAFETY: DPDK passes each object of the pool, of the element size
        // create_pool gave (header plus private area).
        unsafe {
            std::ptr::write_bytes(
                m as *mut u8,
                0,
                std::mem::size_of::<sys::rte_mbuf>() + HDR_PRIV_SIZE as usize,
            );
            (*m).pool = mp;
            (*m).priv_size = HDR_PRIV_SIZE;
            (*m).refcnt = 1;
            (*m).nb_segs = 1;
            (*m).port = u16::MAX;
        }
    })
}

/// Creates the two header pools of a guest (see the module doc), `n`
/// headers each, and sets its `mp` and `tx_mp`. The rx pool's data room is
/// the guest's rx buffer size.
///
/// # Safety
/// `g` is live, no other party uses it during the call, and it outlives
/// the pools ([`free_pools`]).
pub unsafe fn create_pools(name: &str, n: u32, g: GuestPtr, socket: i32) -> Result<(), ProxyError> {
    // SAFETY: per this function's contract.
    unsafe {
        // The rx pool sets g.mp itself (ops_alloc needs it).
        create_pool(name, n, RX_POOL_CACHE, g, socket, true)?;
        match create_pool(&format!("{name}t"), n, 0, g, socket, false) {
            Ok(tx_mp) => {
                GuestSlot::enter(g).tx_mp = tx_mp;
                Ok(())
            }
            Err(e) => {
                free_pools(g);
                Err(e)
            }
        }
    }
}

/// Frees the pools of `g`.
///
/// # Safety
/// `g` is live and no other party uses it; neither the NIC nor the
/// datapath holds one of the pools' headers.
pub unsafe fn free_pools(g: GuestPtr) {
    // SAFETY: short scopes of g (contract); none is alive across
    // rte_mempool_free.
    unsafe {
        let pools = {
            let mut g = GuestSlot::enter(g);
            let pools = [g.mp, g.tx_mp];
            g.mp = std::ptr::null_mut();
            g.tx_mp = std::ptr::null_mut();
            pools
        };
        for mp in pools {
            if !mp.is_null() {
                sys::rte_mempool_free(mp);
            }
        }
    }
}

/// # Safety
/// As [`create_pools`].
unsafe fn create_pool(
    name: &str,
    n: u32,
    cache: u32,
    g: GuestPtr,
    socket: i32,
    rx_pool: bool,
) -> Result<*mut sys::rte_mempool, ProxyError> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| ProxyError::Invalid(format!("pool name {name:?}")))?;
    // SAFETY: the standard mempool creation sequence. g is reached by
    // short reads and writes, never by a reference held across a DPDK
    // call: populate calls ops_alloc, which uses g.
    unsafe {
        let elt = std::mem::size_of::<sys::rte_mbuf>() as u32 + HDR_PRIV_SIZE as u32;
        let mp = sys::rte_mempool_create_empty(
            cname.as_ptr(),
            n,
            elt,
            cache,
            std::mem::size_of::<sys::rte_pktmbuf_pool_private>() as u32,
            socket,
            0,
        );
        if mp.is_null() {
            return Err(ProxyError::dpdk(format!("create pool {name}"), -1));
        }
        let mut priv_: sys::rte_pktmbuf_pool_private = std::mem::zeroed();
        priv_.mbuf_data_room_size = GuestSlot::enter(g).rules.rx_room;
        priv_.mbuf_priv_size = HDR_PRIV_SIZE;
        sys::rte_pktmbuf_pool_init(mp, &mut priv_ as *mut _ as *mut c_void);
        let r = sys::rte_mempool_set_ops_byname(mp, OPS_NAME.as_ptr(), g as *mut c_void);
        if r != 0 {
            sys::rte_mempool_free(mp);
            return Err(ProxyError::dpdk(format!("pool {name}: set ops"), r));
        }
        // ops_alloc (called by populate) tells the pools apart by g.mp.
        if rx_pool {
            GuestSlot::enter(g).mp = mp;
        }
        if sys::rte_mempool_populate_default(mp) < 0 {
            let e = ProxyError::dpdk(format!("populate pool {name}"), -1);
            sys::rte_mempool_free(mp);
            if rx_pool {
                GuestSlot::enter(g).mp = std::ptr::null_mut();
            }
            return Err(e);
        }
        sys::rte_mempool_obj_iter(mp, Some(init_hdr), std::ptr::null_mut());
        Ok(mp)
    }
}
