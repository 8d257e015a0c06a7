//! Wake-ups of a port (protocol v10, `shm_abi::wake`): rx interrupts, on
//! which an app such as `l3fwd-power` sleeps in `rte_epoll_wait` until the
//! proxy publishes rx on a queue; and tx kicks, which a queue sends the
//! proxy when it publishes tx while the proxy's lcore waits.
//!
//! Each rx queue set up with `intr_conf.rxq` gets a wake socket pair
//! (`shm_abi::wake`): the port's interrupt handle lists the `wait` ends
//! (one vector per rx queue, as ethdev's `rte_eth_dev_rx_intr_ctl_q`
//! expects), and START hands a copy of the `kick` end to the proxy. The
//! pair lives as long as the queue, so the app's epoll registration
//! outlives a proxy restart: the resumed proxy gets the same socket.

use crate::queue::{Counter, RxQueue};
use crate::{log, port};
use dpdk_sys as sys;
use shm_abi::wake::{self, QueueCtl};
use std::ffi::c_int;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// One rx queue's side of rx interrupts.
pub struct RxIntr {
    /// The queue's control line in the region (its `rx_armed`).
    pub ctl: QueueCtl,
    /// The end the app's epoll waits on (in the port's interrupt handle).
    pub wait: OwnedFd,
    /// The end START passes to the proxy; the queue wakes itself with it
    /// when rx is already waiting as it arms.
    pub kick: OwnedFd,
    /// Wake-ups read (xstat `rx_intr_wakeups`).
    pub wakeups: Counter,
}

impl RxIntr {
    pub fn new(ctl: QueueCtl) -> std::io::Result<RxIntr> {
        let (wait, kick) = wake::pair()?;
        Ok(RxIntr {
            ctl,
            wait,
            kick,
            wakeups: Counter::default(),
        })
    }
}

/// A tx queue's kick socket and control line.
pub struct TxKick {
    pub fd: OwnedFd,
    pub ctl: QueueCtl,
}

impl TxKick {
    /// After a tx publish: one kick if the proxy's lcore waits.
    #[inline]
    pub fn kick_if_waiting(&self) {
        if self.ctl.proxy_waiting() {
            wake::wake(self.fd.as_fd());
        }
    }
}

/// Points the port's interrupt handle at its rx queues' wake sockets,
/// making the handle on first use. Every rx queue must have one.
///
/// # Safety
/// `dev` is a net_shm port, stopped, its rx queues set up.
pub(crate) unsafe fn install(dev: *mut sys::rte_eth_dev) -> Result<(), c_int> {
    // SAFETY: the caller's contract; ethdev's queue array of our port.
    unsafe {
        let data = (*dev).data;
        let n = (*data).nb_rx_queues;
        let mut fds = Vec::with_capacity(n as usize);
        for k in 0..n as usize {
            let rxq = *(*data).rx_queues.add(k) as *const RxQueue;
            match rxq.as_ref().and_then(|q| q.intr.as_ref()) {
                Some(i) => fds.push(i.wait.as_raw_fd()),
                None => {
                    err!(
                        "port {}: rx queue {k} has no rx interrupt (set up before intr_conf.rxq?)",
                        (*data).port_id
                    );
                    return Err(-libc::EINVAL);
                }
            }
        }
        if (*dev).intr_handle.is_null() {
            let h = sys::rte_intr_instance_alloc(sys::RTE_INTR_INSTANCE_F_PRIVATE);
            if h.is_null() {
                return Err(-libc::ENOMEM);
            }
            (*dev).intr_handle = h;
        }
        let h = (*dev).intr_handle;
        sys::rte_intr_vec_list_free(h);
        // VDEV with no counter to read: EAL leaves the socket alone and
        // rx_intr_enable drains it.
        let failed = sys::rte_intr_type_set(h, sys::RTE_INTR_HANDLE_VDEV) != 0
            || sys::rte_intr_efd_counter_size_set(h, 0) != 0
            || sys::rte_intr_vec_list_alloc(h, std::ptr::null(), n as c_int) != 0
            || fds.iter().enumerate().any(|(k, &fd)| {
                sys::rte_intr_vec_list_index_set(
                    h,
                    k as c_int,
                    sys::RTE_INTR_VEC_RXTX_OFFSET as c_int + k as c_int,
                ) != 0
                    || sys::rte_intr_efds_index_set(h, k as c_int, fd) != 0
            })
            || sys::rte_intr_nb_efd_set(h, n as c_int) != 0
            || sys::rte_intr_max_intr_set(h, n as c_int + 1) != 0;
        if failed {
            err!(
                "port {}: cannot set up the rx interrupt handle",
                (*data).port_id
            );
            return Err(-libc::ENOMEM);
        }
        Ok(())
    }
}

/// Frees the port's interrupt handle (port close).
///
/// # Safety
/// `dev` is a net_shm port being closed.
pub(crate) unsafe fn uninstall(dev: *mut sys::rte_eth_dev) {
    // SAFETY: the caller's contract; the handle is ours (install).
    unsafe {
        let h = (*dev).intr_handle;
        if !h.is_null() {
            sys::rte_intr_vec_list_free(h);
            sys::rte_intr_instance_free(h);
            (*dev).intr_handle = std::ptr::null_mut();
        }
    }
}

/// The rx interrupt state of queue `qid` of `dev`, if it has one.
///
/// # Safety
/// `dev` is a net_shm port; the queue is not being released.
unsafe fn rx_intr<'a>(dev: *mut sys::rte_eth_dev, qid: u16) -> Option<(&'a RxQueue, &'a RxIntr)> {
    // SAFETY: the caller's contract; ethdev checked qid against the queues.
    unsafe {
        let data = (*dev).data;
        if qid >= (*data).nb_rx_queues {
            return None;
        }
        let q = (*(*data).rx_queues.add(qid as usize) as *const RxQueue).as_ref()?;
        Some((q, q.intr.as_ref()?))
    }
}

/// `rte_eth_dev_rx_intr_enable`: the app is about to sleep on queue
/// `qid`. Reads the wake-ups that came meanwhile, arms, then looks at the
/// ring: if rx already waits there, wakes itself, so the app's epoll
/// returns at once instead of sleeping on a ring that has packets.
pub(crate) unsafe extern "C" fn rx_queue_intr_enable(
    dev: *mut sys::rte_eth_dev,
    qid: u16,
) -> c_int {
    sys::ffi_guard("net_shm rx_queue_intr_enable", -libc::EIO, || {
        // SAFETY: ethdev calls us with our port, from the queue's polling
        // thread (not inside its rx_burst); only `&` of the queue is taken.
        unsafe {
            let Some((q, i)) = rx_intr(dev, qid) else {
                return -libc::ENOTSUP;
            };
            i.wakeups.add(wake::drain(i.wait.as_fd()));
            i.ctl.arm_rx();
            if q.rx.pending() {
                i.ctl.disarm_rx();
                wake::wake(i.kick.as_fd());
            }
            0
        }
    })
}

/// `rte_eth_dev_rx_intr_disable`: polling again.
pub(crate) unsafe extern "C" fn rx_queue_intr_disable(
    dev: *mut sys::rte_eth_dev,
    qid: u16,
) -> c_int {
    sys::ffi_guard("net_shm rx_queue_intr_disable", -libc::EIO, || {
        // SAFETY: as for rx_queue_intr_enable.
        unsafe {
            let Some((_, i)) = rx_intr(dev, qid) else {
                return -libc::ENOTSUP;
            };
            i.ctl.disarm_rx();
            0
        }
    })
}

/// Whether the port's app asked for rx interrupts.
///
/// # Safety
/// `dev` is a net_shm port.
pub(crate) unsafe fn wanted(dev: *mut sys::rte_eth_dev) -> bool {
    // SAFETY: the caller's contract.
    unsafe { (*(*dev).data).dev_conf.intr_conf.rxq() != 0 }
}

/// Checks that the proxy can do rx interrupts before the app relies on
/// them (dev_configure).
///
/// # Safety
/// `dev` is a net_shm port.
pub(crate) unsafe fn check_configure(
    dev: *mut sys::rte_eth_dev,
    version: u16,
) -> Result<(), c_int> {
    // SAFETY: the caller's contract.
    unsafe {
        if wanted(dev) && version < 10 {
            err!(
                "port {}: rx interrupts need protocol v10; the proxy speaks v{version}",
                port(dev).port_id
            );
            return Err(-libc::ENOTSUP);
        }
    }
    Ok(())
}
