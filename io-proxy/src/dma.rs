//! Makes a guest's buffer area reachable by the NIC's DMA, as DPDK's
//! external-memory API expects: register the area with EAL
//! (`rte_extmem_register`), map it for the port's device
//! (`rte_dev_dma_map`: the IOMMU mapping under VFIO), and give every buffer
//! the IOVA the NIC must use (`buf_iova` in the proxy's mbuf headers).
//!
//! Only the buffer area is mapped: the rings and the guest's heap stay out of
//! the device's reach.
//!
//! IOVA-as-VA (VFIO with an IOMMU, or `--no-huge`) is the mode this works
//! in: the area's IOVAs are its addresses in the proxy. Under IOVA-as-PA the
//! guest's buffers have no single IOVA range (the memfd's pages are not
//! physically contiguous, and a buffer may straddle two of them), so the
//! proxy serves only software ports (vdevs, which never DMA) there, and
//! refuses a guest on a hardware port with a reason.

use crate::error::ProxyError;
use crate::nic::cstr_field;
use dpdk_sys as sys;
use std::ffi::c_void;

/// What the mbuf headers carry when the buffers have no IOVA.
pub const BAD_IOVA: u64 = u64::MAX;

/// Areas registered with EAL, and how many [`DmaArea`]s use each: a guest
/// whose sockets share one buffer area maps it once per port, and EAL
/// takes a range once.
static REGISTERED: std::sync::Mutex<Vec<(usize, usize, u32)>> = std::sync::Mutex::new(Vec::new());

/// Registers `[va, va + len)` with EAL, or counts one more user of it.
///
/// # Safety
/// As `rte_extmem_register`: the area is mapped and page-aligned, and
/// `iovas` has one IOVA per `page_size` page.
unsafe fn register(va: usize, len: usize, iovas: &mut [u64], page_size: usize) -> bool {
    let mut reg = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = reg.iter_mut().find(|e| (e.0, e.1) == (va, len)) {
        e.2 += 1;
        return true;
    }
    // SAFETY: the caller's contract; EAL copies the table.
    let r = unsafe {
        sys::rte_extmem_register(
            va as *mut c_void,
            len,
            iovas.as_mut_ptr(),
            iovas.len() as u32,
            page_size,
        )
    };
    if r == 0 {
        reg.push((va, len, 1));
    }
    r == 0
}

/// Undoes one [`register`]; the last user unregisters the area.
fn unregister(va: *mut u8, len: usize) {
    let mut reg = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    let Some(i) = reg.iter().position(|e| (e.0, e.1) == (va as usize, len)) else {
        return;
    };
    reg[i].2 -= 1;
    if reg[i].2 > 0 {
        return;
    }
    reg.remove(i);
    // SAFETY: undoes the registration made in `register`; no user is left.
    let r = unsafe { sys::rte_extmem_unregister(va as *mut c_void, len) };
    if r != 0 {
        crate::log::warn(&format!(
            "unregister guest buffers from EAL: {}",
            sys::strerror(sys::rte_errno())
        ));
    }
}

/// The buffer area of one guest, registered and mapped for one device;
/// undone on drop. The NIC must hold no buffer of the area by then.
pub struct DmaArea {
    va: *mut u8,
    len: usize,
    /// IOVA of the area's first byte, or [`BAD_IOVA`].
    iova: u64,
    registered: bool,
    /// The device it is mapped for, when mapped.
    mapped_dev: *mut sys::rte_device,
    /// One line for logs and telemetry.
    pub state: String,
}

// SAFETY: the device pointer and the area are used by the control thread
// only (map and unmap); the datapath reads `iova` through GuestRegion.
unsafe impl Send for DmaArea {}

/// The EAL's IOVA mode, as a word for logs and telemetry.
pub fn iova_mode_name() -> &'static str {
    // SAFETY: a plain query, valid after EAL init.
    match unsafe { sys::rte_eal_iova_mode() } {
        sys::RTE_IOVA_VA => "va",
        sys::RTE_IOVA_PA => "pa",
        _ => "dc",
    }
}

/// Device and bus name of `port`'s device.
fn port_device(port: u16) -> Result<(*mut sys::rte_device, String, String), ProxyError> {
    // SAFETY: ethdev/EAL queries on the control thread into a local; the
    // names are NUL-terminated strings owned by EAL.
    unsafe {
        let mut info: sys::rte_eth_dev_info = std::mem::zeroed();
        let r = sys::rte_eth_dev_info_get(port, &mut info);
        if r < 0 || info.device.is_null() {
            return Err(ProxyError::dpdk(
                format!("port {port}: no device"),
                r.min(-libc::ENODEV),
            ));
        }
        let dev = info.device;
        let bus = sys::rte_dev_bus(dev);
        let bus_name = if bus.is_null() {
            String::new()
        } else {
            cstr_field(sys::rte_bus_name(bus))
        };
        Ok((dev, cstr_field(sys::rte_dev_name(dev)), bus_name))
    }
}

impl DmaArea {
    /// Registers and maps `[va, va + len)` (page-aligned, `page_size`
    /// pages, all of it mapped in this process) for `port`'s device.
    pub fn map(
        port: u16,
        va: *mut u8,
        len: usize,
        page_size: usize,
    ) -> Result<DmaArea, ProxyError> {
        let (dev, dev_name, bus) = port_device(port)?;
        let software = bus == "vdev";
        let mut area = DmaArea {
            va,
            len,
            iova: BAD_IOVA,
            registered: false,
            mapped_dev: std::ptr::null_mut(),
            state: String::new(),
        };
        // SAFETY: a plain query, valid after EAL init.
        if unsafe { sys::rte_eal_iova_mode() } != sys::RTE_IOVA_VA {
            if !software {
                return Err(ProxyError::Unsupported(format!(
                    "port {port} ({dev_name}, bus {bus}) would DMA into guest buffers, which needs \
                     IOVA-as-VA: bind the NIC to vfio-pci with an IOMMU, or start the proxy \
                     with --iova-mode=va"
                )));
            }
            area.state = format!(
                "none (IOVA-as-{}; {dev_name} does no DMA)",
                iova_mode_name().to_uppercase()
            );
            return Ok(area);
        }
        // Under IOVA-as-VA the area is IOVA-contiguous, so EAL's pages need
        // not be the MMU's: the coarsest power of two that the address and
        // length allow (up to 1 GiB) keeps EAL's per-page table small (one
        // 48-byte entry per page: 6 MiB for 512 MiB of 4 KiB pages).
        let align = (va as usize | len).trailing_zeros().min(30);
        let page_size = page_size.max(1 << align);
        let pages = len / page_size;
        // Each page's IOVA is its address.
        let mut iovas: Vec<u64> = (0..pages)
            .map(|i| va as u64 + (i * page_size) as u64)
            .collect();
        // SAFETY: the area is mapped and page-aligned (caller), the table
        // has one IOVA per page.
        if !unsafe { register(va as usize, len, &mut iovas, page_size) } {
            return Err(ProxyError::dpdk(
                format!("register {len} bytes of guest buffers with EAL"),
                -1,
            ));
        }
        area.registered = true;
        area.iova = va as u64;
        // SAFETY: `dev` is the port's live device; the area is registered.
        let r = unsafe { sys::rte_dev_dma_map(dev, va as *mut c_void, area.iova, len) };
        if r == 0 {
            area.mapped_dev = dev;
        } else if !software {
            // Drop unregisters.
            return Err(ProxyError::dpdk(
                format!("DMA-map guest buffers for port {port} ({dev_name})"),
                -1,
            ));
        }
        // The vdev bus accepts (or refuses) the mapping for a driver that
        // has no use for it: say so rather than claim an IOMMU mapping.
        area.state = if software {
            format!("registered, {dev_name} does no DMA")
        } else {
            format!("mapped for {dev_name}")
        };
        Ok(area)
    }

    /// The IOVA of the area's first byte, or [`BAD_IOVA`].
    pub fn iova(&self) -> u64 {
        self.iova
    }
}

impl Drop for DmaArea {
    fn drop(&mut self) {
        if !self.mapped_dev.is_null() {
            // SAFETY: undoes the mapping made in `map` for the same device
            // and range; the NIC holds none of these buffers (type doc).
            let r = unsafe {
                sys::rte_dev_dma_unmap(self.mapped_dev, self.va as *mut c_void, self.iova, self.len)
            };
            if r != 0 {
                crate::log::warn(&format!(
                    "DMA-unmap guest buffers: {}",
                    sys::strerror(sys::rte_errno())
                ));
            }
        }
        if self.registered {
            unregister(self.va, self.len);
        }
    }
}

/// How many external memory areas EAL holds (telemetry: none may outlive
/// the guest that had it).
pub fn external_areas() -> u32 {
    unsafe extern "C" fn count(msl: *const sys::rte_memseg_list, arg: *mut c_void) -> i32 {
        // SAFETY: EAL passes a live list; `arg` is the counter below.
        unsafe {
            if (*msl).external != 0 {
                // Wrapping: nothing here may panic across this C callback.
                *(arg as *mut u32) = (*(arg as *mut u32)).wrapping_add(1);
            }
            0
        }
    }
    let mut n = 0u32;
    // SAFETY: the callback only reads the list and bumps the local counter.
    unsafe {
        sys::rte_memseg_list_walk(Some(count), &mut n as *mut u32 as *mut c_void);
    }
    n
}
