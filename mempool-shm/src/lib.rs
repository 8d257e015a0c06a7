//! The `shared_mem` mempool driver (guest side).
//!
//! The `sock` bus makes it the platform mbuf pool ops, so a stock app's
//! `rte_pktmbuf_pool_create()` lands here. The pool's objects are placed in
//! the buffer area of the region shared with the proxy (that is what makes
//! rx and tx zero-copy); its free list is an ordinary `rte_ring` in the
//! process's own heap, so nothing the proxy writes can corrupt it. Works for
//! any object type, not only mbufs.

use dpdk_sys as sys;
use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU32, Ordering};

pub const OPS_NAME: &std::ffi::CStr = c"shared_mem";

static LOGTYPE: AtomicU32 = AtomicU32::new(sys::RTE_LOGTYPE_MEMPOOL);
fn log(level: u32, msg: &str) {
    sys::log(
        level,
        LOGTYPE.load(Ordering::Relaxed),
        &format!("SHARED_MEM: {msg}"),
    );
}

/// Registers the `shared_mem` ops. Call once, from the plugin constructor.
pub fn register() {
    let r = sys::register_mempool_ops(OPS_NAME, |o| {
        o.alloc = Some(ops_alloc);
        o.free = Some(ops_free);
        o.enqueue = Some(ops_enqueue);
        o.dequeue = Some(ops_dequeue);
        o.get_count = Some(ops_get_count);
        o.calc_mem_size = Some(ops_calc_mem_size);
        o.populate = Some(ops_populate);
    });
    if r < 0 {
        log(
            sys::RTE_LOG_ERR,
            "cannot register mempool ops (table full?)",
        );
    }
    // SAFETY: constructor time; the name is static.
    let lt = unsafe {
        sys::rte_log_register_type_and_pick_level(
            c"mempool.shared_mem".as_ptr(),
            sys::RTE_LOG_NOTICE,
        )
    };
    if lt >= 0 {
        LOGTYPE.store(lt as u32, Ordering::Relaxed);
    }
}

/// The free-list ring of a pool.
///
/// # Safety
/// `mp` must be a pool of these ops, after alloc.
unsafe fn ring(mp: *const sys::rte_mempool) -> *mut sys::rte_ring {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { (*mp).__bindgen_anon_1.pool_data as *mut sys::rte_ring }
}

/// Bytes the objects of `mp` take in the buffer area (populate() lays
/// them out back to back), and the pool's name.
///
/// # Safety
/// `mp` is a pool being created (its sizes are set).
unsafe fn pool_bytes(mp: *const sys::rte_mempool) -> (usize, String) {
    // SAFETY: per the contract.
    unsafe {
        let total = ((*mp).header_size + (*mp).elt_size + (*mp).trailer_size) as usize;
        let name = std::ffi::CStr::from_ptr((*mp).name.as_ptr())
            .to_string_lossy()
            .into_owned();
        (total * (*mp).size as usize + 64, name)
    }
}

/// Says why a pool of `bytes` does not fit the buffer area (`why`: the
/// proxy's or the arena's reason it could not grow), naming the limit the
/// operator sets.
fn log_no_room(name: &str, objs: u32, bytes: usize, why: &str) {
    let (free, size) = bus_shm::guest::buffer_space().unwrap_or((0, 0));
    log(
        sys::RTE_LOG_ERR,
        &format!(
            "pool {name}: {objs} objects need {} MiB of shared buffers, {} of {} MiB free, \
             and the area cannot grow: {why}; give the socket more on the proxy \
             (add socket ... max_buffers <MiB>) or create a smaller pool{}",
            bytes.div_ceil(1 << 20),
            free >> 20,
            size >> 20,
            if size == 0 {
                " (no sock device connected)"
            } else {
                ""
            }
        ),
    );
}

/// Room for `bytes` in the buffer area: there already, or asked of the
/// proxy (the area grows, protocol v6). Logs why not.
fn make_room(name: &str, objs: u32, bytes: usize) -> bool {
    if bus_shm::guest::buffer_fits(bytes, 64) {
        return true;
    }
    match bus_shm::guest::buffer_grow(bytes + 64) {
        Ok(()) if bus_shm::guest::buffer_fits(bytes, 64) => true,
        Ok(()) => {
            log_no_room(name, objs, bytes, "it grew, yet not enough");
            false
        }
        Err(e) => {
            log_no_room(name, objs, bytes, &e.text);
            false
        }
    }
}

unsafe extern "C" fn ops_alloc(mp: *mut sys::rte_mempool) -> c_int {
    sys::ffi_guard("shared_mem ops_alloc", -libc::EIO, || {
        // SAFETY: EAL passes a valid pool being created.
        unsafe {
            // A pool that cannot fit fails here, with ENOMEM: what DPDK apps
            // (OVS among them) take as "retry with fewer mbufs". (A failure
            // in populate() would reach the app as ENOBUFS.)
            let (bytes, pool_name) = pool_bytes(mp);
            if !make_room(&pool_name, (*mp).size, bytes) {
                return -libc::ENOMEM;
            }
            let mut name = [0u8; sys::RTE_RING_NAMESIZE as usize];
            let pool = std::ffi::CStr::from_ptr((*mp).name.as_ptr()).to_string_lossy();
            let s = format!("SHM_{pool}");
            let n = s.len().min(name.len() - 1);
            name[..n].copy_from_slice(&s.as_bytes()[..n]);
            let count = ((*mp).size + 1).next_power_of_two();
            let r = sys::rte_ring_create(name.as_ptr() as *const _, count, (*mp).socket_id, 0);
            if r.is_null() {
                return -sys::rte_errno();
            }
            (*mp).__bindgen_anon_1.pool_data = r as *mut c_void;
            // Nothing in the guest DMAs: objects may straddle pages, which
            // packs them densely instead of one per 4 KiB page.
            (*mp).flags |= sys::RTE_MEMPOOL_F_NO_IOVA_CONTIG;
        }
        0
    })
}

unsafe extern "C" fn ops_free(mp: *mut sys::rte_mempool) {
    sys::ffi_guard("shared_mem ops_free", (), || {
        // SAFETY: a pool of ours being freed: its ring and its objects' memory go.
        unsafe {
            sys::rte_ring_free(ring(mp));
        }
        bus_shm::guest::release_pool(mp as usize);
    })
}

unsafe extern "C" fn ops_enqueue(
    mp: *mut sys::rte_mempool,
    objs: *const *mut c_void,
    n: c_uint,
) -> c_int {
    sys::ffi_guard("shared_mem ops_enqueue", -libc::EIO, || {
        // SAFETY: objs holds n object pointers (mempool API contract).
        let done =
            unsafe { sys::dpdk_sys_ring_enqueue_bulk(ring(mp), objs, n, std::ptr::null_mut()) };
        if done == n {
            0
        } else {
            -libc::ENOBUFS
        }
    })
}

unsafe extern "C" fn ops_dequeue(
    mp: *mut sys::rte_mempool,
    objs: *mut *mut c_void,
    n: c_uint,
) -> c_int {
    sys::ffi_guard("shared_mem ops_dequeue", -libc::EIO, || {
        // SAFETY: objs has room for n pointers (mempool API contract).
        let done =
            unsafe { sys::dpdk_sys_ring_dequeue_bulk(ring(mp), objs, n, std::ptr::null_mut()) };
        if done == n {
            0
        } else {
            -libc::ENOENT
        }
    })
}

unsafe extern "C" fn ops_get_count(mp: *const sys::rte_mempool) -> c_uint {
    sys::ffi_guard("shared_mem ops_get_count", 0, || {
        // SAFETY: a pool of ours.
        unsafe { sys::dpdk_sys_ring_count(ring(mp)) }
    })
}

/// Asks DPDK for one page only: the objects go to the shared buffer area
/// in populate(), not into the memzone DPDK reserves.
unsafe extern "C" fn ops_calc_mem_size(
    _mp: *const sys::rte_mempool,
    _obj_num: u32,
    pg_shift: u32,
    min_chunk_size: *mut usize,
    align: *mut usize,
) -> isize {
    sys::ffi_guard(
        "shared_mem ops_calc_mem_size",
        -(libc::ENOMEM as isize),
        || {
            let size = if pg_shift == 0 {
                4096
            } else {
                1usize << pg_shift.min(30)
            };
            // SAFETY: out-pointers provided by the mempool library.
            unsafe {
                *min_chunk_size = size;
                *align = size;
            }
            size as isize
        },
    )
}

unsafe extern "C" fn ops_populate(
    mp: *mut sys::rte_mempool,
    max_objs: c_uint,
    _vaddr: *mut c_void,
    _iova: sys::rte_iova_t,
    _len: usize,
    obj_cb: sys::rte_mempool_populate_obj_cb_t,
    obj_cb_arg: *mut c_void,
) -> c_int {
    sys::ffi_guard("shared_mem ops_populate", -libc::EIO, || {
        // SAFETY: mp is the pool being populated.
        let (total, name) = unsafe {
            (
                ((*mp).header_size + (*mp).elt_size + (*mp).trailer_size) as usize,
                pool_bytes(mp).1,
            )
        };
        let bytes = total * max_objs as usize + 64;
        let Some(p) = bus_shm::guest::buffer_alloc(bytes, 64) else {
            log_no_room(&name, max_objs, bytes, "taken since the pool was created");
            return 0;
        };
        // SAFETY: plain query.
        let iova = if unsafe { sys::rte_eal_iova_mode() } == sys::RTE_IOVA_VA {
            p as u64
        } else {
            u64::MAX // RTE_BAD_IOVA
        };
        log(
            sys::RTE_LOG_INFO,
            &format!(
                "pool {name}: {max_objs} objects ({} MiB) in shared memory",
                bytes >> 20
            ),
        );
        // Objects are laid out back to back from p (no page rule: the pool has
        // RTE_MEMPOOL_F_NO_IOVA_CONTIG), so the guest's PMD can map a buffer
        // offset back to its mbuf.
        // SAFETY: mp is valid during populate.
        let (header, stride) = unsafe { ((*mp).header_size as usize, total) };
        // For mbuf pools (rte_pktmbuf_pool_init ran before populate), a
        // buffer sits sizeof(rte_mbuf) + priv_size after its mbuf.
        // SAFETY: mp is valid; the private area is read only if large enough.
        let buf_delta = unsafe {
            if (*mp).private_data_size as usize
                >= std::mem::size_of::<sys::rte_pktmbuf_pool_private>()
            {
                std::mem::size_of::<sys::rte_mbuf>() + sys::dpdk_sys_pktmbuf_priv_size(mp) as usize
            } else {
                0
            }
        };
        let extent = bus_shm::guest::Extent {
            start: p as usize + header,
            stride,
            count: max_objs as usize,
            buf_delta,
        };
        if !bus_shm::guest::register_extent(extent, mp as usize, p as usize, bytes) {
            // Unregistered buffers could not be mapped back on rx or tx.
            bus_shm::guest::buffer_free(p, bytes);
            return 0;
        }
        // SAFETY: p..p+bytes is ours and mapped for the life of the process.
        unsafe {
            sys::rte_mempool_op_populate_helper(
                mp,
                0,
                max_objs,
                p as *mut c_void,
                iova,
                bytes,
                obj_cb,
                obj_cb_arg,
            )
        }
    })
}
