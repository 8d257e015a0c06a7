//! The `net_shm` vdev: the same port as a `sock:` device, for apps that
//! find their ports by vdev devargs (`--vdev net_shm0,path=/run/x.sock`,
//! or `rte_dev_probe("net_shm0,path=...")`). DPDK's `rte_eth_iterator`
//! matches devargs only on the vdev and PCI buses, so an app that looks a
//! port up that way (Open vSwitch's `options:dpdk-devargs`) cannot name a
//! `sock:` device; the vdev connects the socket through the sock bus's
//! code and is otherwise the same port.

use crate::{log, parse_devargs};
use dpdk_sys as sys;
use std::ffi::{c_int, CStr};

/// The vdev driver EAL links into its list (it writes the list entry).
struct VdevDriver(std::cell::UnsafeCell<sys::rte_vdev_driver>);
// SAFETY: EAL writes the struct only while registering it (the plugin's
// constructor) and reads it after; Rust code touches it only then too.
unsafe impl Sync for VdevDriver {}

static VDEV: VdevDriver = VdevDriver(std::cell::UnsafeCell::new(sys::rte_vdev_driver {
    driver: sys::rte_driver {
        name: crate::DRIVER_NAME.as_ptr(),
        // SAFETY: the rest (list entry, alias) is null: valid.
        ..unsafe { std::mem::zeroed() }
    },
    probe: Some(vdev_probe),
    remove: Some(vdev_remove),
    // SAFETY: list entry, optional callbacks and flags: all-zero is valid.
    ..unsafe { std::mem::zeroed() }
}));

/// Registers the vdev driver. Call once, from the constructor.
pub fn register() {
    // SAFETY: constructor time, before EAL scans; VDEV is static.
    unsafe { sys::rte_vdev_register(VDEV.0.get()) };
}

/// The devargs of a vdev (`path=...,recycle=...`), empty if none.
///
/// # Safety
/// `dev` is a live vdev device.
unsafe fn vdev_args(dev: *mut sys::rte_vdev_device) -> String {
    // SAFETY: per the contract; devargs and its args are NULL or valid.
    unsafe {
        let da = (*dev).device.devargs;
        if da.is_null() || (*da).__bindgen_anon_1.args.is_null() {
            String::new()
        } else {
            CStr::from_ptr((*da).__bindgen_anon_1.args)
                .to_string_lossy()
                .into_owned()
        }
    }
}

unsafe extern "C" fn vdev_probe(dev: *mut sys::rte_vdev_device) -> c_int {
    sys::ffi_guard("net_shm vdev_probe", -libc::EIO, || {
        // SAFETY: the vdev bus passes a live device; its name is NUL-terminated.
        let (name, args) = unsafe {
            (
                CStr::from_ptr((*dev).device.name)
                    .to_string_lossy()
                    .into_owned(),
                vdev_args(dev),
            )
        };
        let path = match parse_devargs(&args) {
            Ok(a) => a.path,
            Err(e) => {
                err!("{name}: {e}");
                return -libc::EINVAL;
            }
        };
        let Some(path) = path else {
            err!("{name}: no socket: give path=<the proxy's socket>");
            return -libc::EINVAL;
        };
        // SAFETY: `device` is the vdev's embedded rte_device, which lives
        // until vdev_remove.
        let eal_dev = unsafe { &raw mut (*dev).device };
        match bus_shm::guest::attach_foreign(eal_dev, &path) {
            Ok(()) => 0,
            Err(e) => {
                err!("{name} ({path}): {e}");
                -libc::EIO
            }
        }
    })
}

unsafe extern "C" fn vdev_remove(dev: *mut sys::rte_vdev_device) -> c_int {
    sys::ffi_guard("net_shm vdev_remove", -libc::EIO, || {
        // SAFETY: as in vdev_probe.
        let eal_dev = unsafe { &raw mut (*dev).device };
        bus_shm::guest::detach_foreign(eal_dev);
        0
    })
}
