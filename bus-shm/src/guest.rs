//! The `sock` bus, guest side: `-a sock:/path/to/socket` connects to
//! `dpdk-io-proxy`, maps the shared region it sends, backs the process's
//! malloc heap with the region's heap area, makes `shared_mem` the platform
//! mbuf pool ops and hands the device to the registered driver (net_shm).

use dpdk_sys as sys;
use shm_abi::layout::{Layout, ValidLayout};
use shm_abi::msg::{self, Hello, HelloAck, Msg};
use shm_abi::region::Region;
use shm_abi::socket::{self, Received};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

pub const BUS_NAME: &CStr = c"sock";
/// How long a guest waits for the proxy to answer a request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

static LOGTYPE: AtomicU32 = AtomicU32::new(sys::RTE_LOGTYPE_EAL);

pub(crate) fn log(level: u32, msg: &str) {
    sys::log(
        level,
        LOGTYPE.load(Ordering::Relaxed),
        &format!("SOCK_BUS: {msg}"),
    );
}
macro_rules! bus_err { ($($a:tt)*) => { $crate::guest::log(dpdk_sys::RTE_LOG_ERR, &format!($($a)*)) } }
macro_rules! bus_info { ($($a:tt)*) => { $crate::guest::log(dpdk_sys::RTE_LOG_INFO, &format!($($a)*)) } }
macro_rules! bus_debug { ($($a:tt)*) => { $crate::guest::log(dpdk_sys::RTE_LOG_DEBUG, &format!($($a)*)) } }

/// What a driver on this bus implements.
#[derive(Clone, Copy)]
pub struct SockDriver {
    pub name: &'static CStr,
    pub probe: fn(&'static SockDevice) -> Result<(), String>,
    pub remove: fn(&'static SockDevice),
}

/// Link state callback: called from the interrupt thread with `arg`.
pub type LinkNotify = fn(&'static SockDevice, *mut c_void);

/// Replies and peer state, guarded together.
struct ConnState {
    reply: Option<Msg>,
    /// The memfd that came with a GROW_ACK reply.
    reply_fd: Option<OwnedFd>,
    gone: bool,
}

/// A connection to the proxy and the region it shared.
pub struct Conn {
    /// The socket; closed (None) once the device is detached. Reached only
    /// by control calls and by the interrupt callback, which detach
    /// unregisters first.
    fd: Mutex<Option<OwnedFd>>,
    pub version: u16,
    pub info: HelloAck,
    /// `info.layout`, checked against the region.
    pub layout: ValidLayout,
    /// The region the proxy made for this connection (its rings; for the
    /// first device also the heap and the pools). A device detached
    /// releases it unless the process's pools are in it.
    region: Mutex<Option<Region>>,
    /// The region whose buffer area this connection's descriptors point
    /// into, and its layout: `region` itself, or (protocol v5) that of the
    /// process's first `sock` device, which every device shares.
    pub buffers: Region,
    pub buf_layout: ValidLayout,
    state: Mutex<ConnState>,
    cond: Condvar,
    link_up: AtomicBool,
    link_speed: AtomicU32,
    /// The NIC as the proxy last described it: `info`'s at attach, a
    /// resuming proxy's after (its MAC, MTU and largest frame).
    nic: Mutex<NicNow>,
}

/// What a port takes from its NIC when a proxy resumes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicNow {
    pub mac: [u8; 6],
    pub mtu: u16,
    pub max_rx_pktlen: u32,
}

/// One `sock:` device. Lives for the rest of the process once scanned;
/// hotplug connects it again (plug) or closes its connection (unplug).
pub struct SockDevice {
    /// EAL's view of the device: EAL links and writes it (driver, list
    /// entry), so it is only reached through a raw pointer.
    dev: std::cell::UnsafeCell<sys::rte_device>,
    /// The device's name as EAL reads it (the path), owned here: the
    /// devargs that named it go away at unplug.
    name: std::ffi::CString,
    pub path: String,
    /// The device EAL knows the port by when another bus made it (a
    /// `net_shm` vdev); null for a `sock:` device (then `dev`).
    foreign: std::sync::atomic::AtomicPtr<sys::rte_device>,
    conn: Mutex<Option<&'static Conn>>,
    notify: Mutex<Option<(LinkNotify, usize)>>,
    intr: Mutex<usize>,
    pub driver_data: Mutex<usize>,
}
// SAFETY: rte_device is only touched by EAL and this bus during scan,
// probe and hotplug, which EAL runs on one thread at a time (its hotplug
// lock); the rest is behind mutexes or atomics.
unsafe impl Send for SockDevice {}
// SAFETY: as for Send.
unsafe impl Sync for SockDevice {}

static DEVICES: Mutex<Vec<&'static SockDevice>> = Mutex::new(Vec::new());
/// The connection whose buffer area holds this process's pools (the
/// first one made); later devices ask the proxy to share it.
static POOL_CONN: Mutex<Option<(&'static Conn, &'static str)>> = Mutex::new(None);
static DRIVER: Mutex<Option<SockDriver>> = Mutex::new(None);
/// A C struct that EAL links into its lists (it writes the struct's list
/// entry): a static, but not a Rust-immutable one.
struct EalCell<T>(std::cell::UnsafeCell<T>);
// SAFETY: EAL writes these structs only while registering them (the
// plugin's constructor, or probe on the init thread) and reads them after;
// Rust code touches them only then too.
unsafe impl<T> Sync for EalCell<T> {}
impl<T> EalCell<T> {
    fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// The `sock` bus: its callbacks, built at compile time.
static BUS: EalCell<sys::rte_bus> = EalCell(std::cell::UnsafeCell::new(sys::rte_bus {
    name: BUS_NAME.as_ptr(),
    scan: Some(bus_scan),
    probe: Some(bus_probe),
    find_device: Some(bus_find_device),
    plug: Some(bus_plug),
    unplug: Some(bus_unplug),
    parse: Some(bus_parse),
    cleanup: Some(bus_cleanup),
    get_iommu_class: Some(bus_iommu_class),
    // SAFETY: every other member is a list entry (null pointers), a
    // callback we do not have (None) or a number: all-zero is valid.
    ..unsafe { std::mem::zeroed() }
}));
/// The driver devices are bound to; its name is the registered driver's.
static DRIVER_C: EalCell<sys::rte_driver> =
    // SAFETY: all-zero is a valid rte_driver (null name and alias, empty list entry).
    EalCell(std::cell::UnsafeCell::new(unsafe { std::mem::zeroed() }));

/// Registers the `sock` bus with EAL (once, from the plugin constructor),
/// unless a `sock` bus is there already: then
/// another copy of the plugin was loaded first (installed in DPDK's plugin
/// directory and given with `-d` too), which serves; this one stays idle
/// and says so. Returns whether it registered.
pub fn register_bus() -> bool {
    // SAFETY: called once from an ELF constructor before EAL looks at the
    // bus list; BUS is a static that outlives EAL's pointer to it. The
    // lookup only reads the list (constructors run one at a time).
    unsafe {
        if !sys::rte_bus_find_by_name(c"sock".as_ptr()).is_null() {
            sys::log(
                sys::RTE_LOG_WARNING,
                sys::RTE_LOGTYPE_EAL,
                "sock bus: another copy of this plugin is loaded already (installed and given with -d?); this one stays idle",
            );
            return false;
        }
        sys::rte_bus_register(BUS.get());
        let lt =
            sys::rte_log_register_type_and_pick_level(c"bus.sock".as_ptr(), sys::RTE_LOG_NOTICE);
        if lt >= 0 {
            LOGTYPE.store(lt as u32, Ordering::Relaxed);
        }
    }
    true
}

/// Registers the driver that takes `sock:` devices (one per process).
pub fn register_driver(drv: SockDriver) {
    // SAFETY: single-threaded constructor time; DRIVER_C is static.
    unsafe {
        (*DRIVER_C.get()).name = drv.name.as_ptr();
    }
    *DRIVER.lock().unwrap() = Some(drv);
}

impl SockDevice {
    /// A device for `path`, for the rest of the process.
    fn leak(name: std::ffi::CString, path: String) -> &'static SockDevice {
        // SAFETY: a zeroed rte_device is its documented initial state.
        let mut dev: sys::rte_device = unsafe { std::mem::zeroed() };
        dev.numa_node = sys::SOCKET_ID_ANY;
        let d: &'static SockDevice = Box::leak(Box::new(SockDevice {
            dev: std::cell::UnsafeCell::new(dev),
            name,
            path,
            foreign: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            conn: Mutex::new(None),
            notify: Mutex::new(None),
            intr: Mutex::new(0),
            driver_data: Mutex::new(0),
        }));
        // SAFETY: the name lives as long as the (leaked) device; nothing
        // else sees the device yet.
        unsafe { (*d.dev.get()).name = d.name.as_ptr() };
        d
    }

    /// The device EAL knows the port by: ours, or the vdev that made it.
    pub fn rte_device(&'static self) -> *mut sys::rte_device {
        let f = self.foreign.load(Ordering::Acquire);
        if f.is_null() {
            self.dev.get()
        } else {
            f
        }
    }
    /// Whether another bus made the device (a `net_shm` vdev).
    pub fn is_foreign(&self) -> bool {
        !self.foreign.load(Ordering::Acquire).is_null()
    }
    /// The port's name: the socket path, or the vdev's name (`net_shm0`).
    pub fn name(&'static self) -> &'static CStr {
        let f = self.foreign.load(Ordering::Acquire);
        if f.is_null() {
            &self.name
        } else {
            // SAFETY: the vdev bus keeps its device and name for as long as
            // the device is attached, which is as long as the port exists.
            unsafe { CStr::from_ptr((*f).name) }
        }
    }
    pub fn conn(&self) -> Option<&'static Conn> {
        *self.conn.lock().unwrap()
    }
    /// Devargs string after the path (`key=value,...`), if any.
    pub fn devargs(&'static self) -> Option<&'static CStr> {
        // SAFETY: a plain read of the pointer; EAL writes it only on this
        // device's scan and unplug, on the thread that calls us.
        let da = unsafe { (*self.rte_device()).devargs };
        // SAFETY: devargs set by scan from EAL's list, which lives as long as
        // the device; args is NULL or NUL-terminated.
        unsafe {
            if da.is_null() || (*da).__bindgen_anon_1.args.is_null() {
                None
            } else {
                Some(CStr::from_ptr((*da).__bindgen_anon_1.args))
            }
        }
    }
    /// Sets the callback for link changes and proxy loss.
    pub fn set_link_notify(&self, f: LinkNotify, arg: *mut c_void) {
        *self.notify.lock().unwrap() = Some((f, arg as usize));
    }
}

impl Conn {
    /// The connection's region, until the device is detached.
    pub fn region(&self) -> Option<Region> {
        self.region.lock().unwrap().clone()
    }

    /// The socket's descriptor, while it is open.
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.fd.lock().unwrap().as_ref().map(|f| f.as_raw_fd())
    }

    /// The buffer area descriptors of this connection point into.
    pub fn buffer_area(&self) -> Option<shm_abi::region::AreaView<'_>> {
        self.buffers.buffers(&self.buf_layout)
    }

    pub fn link_up(&self) -> bool {
        self.link_up.load(Ordering::Acquire)
    }
    pub fn link_speed(&self) -> u32 {
        self.link_speed.load(Ordering::Relaxed)
    }
    /// The NIC as the proxy last described it (see [`NicNow`]).
    pub fn nic(&self) -> NicNow {
        *self.nic.lock().unwrap()
    }

    pub fn proxy_gone(&self) -> bool {
        self.state.lock().unwrap().gone
    }

    /// Sends a request and waits for its reply (read by the interrupt
    /// thread): the reply of type `expected`, and the descriptor it
    /// carried, or why there is none (a refusal's errno and text).
    fn exchange(&self, msg: &Msg, expected: u16) -> Result<(Msg, Option<OwnedFd>), RequestError> {
        self.exchange_passing(msg, expected, None)
    }

    /// As [`exchange`](Self::exchange), with descriptor `pass` attached.
    fn exchange_passing(
        &self,
        msg: &Msg,
        expected: u16,
        pass: Option<BorrowedFd<'_>>,
    ) -> Result<(Msg, Option<OwnedFd>), RequestError> {
        let lost = || RequestError::other("proxy connection lost");
        let mut st = self.state.lock().unwrap();
        if st.gone {
            return Err(lost());
        }
        st.reply = None;
        st.reply_fd = None;
        let fd = self
            .raw_fd()
            .ok_or_else(|| RequestError::other("proxy connection closed"))?;
        socket::send(fd, msg, self.version, pass.map(|p| p.as_raw_fd()))
            .map_err(|e| RequestError::other(format!("send to proxy: {e}")))?;
        let (mut st, timeout) = self
            .cond
            .wait_timeout_while(st, REPLY_TIMEOUT, |s| s.reply.is_none() && !s.gone)
            .unwrap();
        if timeout.timed_out() {
            return Err(RequestError::other("proxy did not answer in time"));
        }
        let fd = st.reply_fd.take();
        match st.reply.take() {
            Some(Msg::StartAck(s) | Msg::StopAck(s) | Msg::Error(s)) if s.code != 0 => {
                Err(RequestError {
                    errno: s.code.abs(),
                    text: format!("proxy refused: {} ({})", s.text, sys::strerror(-s.code)),
                })
            }
            Some(r) if r.type_code() == expected => Ok((r, fd)),
            Some(r) => Err(RequestError::other(format!(
                "unexpected reply type {}",
                r.type_code()
            ))),
            None => Err(lost()),
        }
    }

    /// Sends START or STOP and waits for its acknowledgement.
    pub fn request(&self, msg: &Msg) -> Result<(), String> {
        let expected = match msg {
            Msg::Start(_) => msg::MSG_START_ACK,
            _ => msg::MSG_STOP_ACK,
        };
        self.exchange(msg, expected).map(|_| ()).map_err(|e| e.text)
    }

    /// The NIC's RSS redirection table as this socket's queue indexes
    /// (RETA_QUERY, v7): all `size` entries, fetched in chunks. Each
    /// answer is checked: the size as HELLO_ACK said, the chunk where
    /// asked, every entry one of the socket's queues.
    pub fn reta(&self) -> Result<Vec<u16>, RequestError> {
        let size = self.info.reta_size as usize;
        if self.version < 7 || size == 0 {
            return Err(RequestError {
                errno: libc::ENOTSUP,
                text: "the proxy's NIC has no RSS redirection table to show".into(),
            });
        }
        let mut table = Vec::with_capacity(size);
        while table.len() < size {
            let first = table.len() as u16;
            let (reply, _) =
                self.exchange(&Msg::RetaQuery(msg::RetaQuery { first }), msg::MSG_RETA)?;
            let Msg::Reta(r) = reply else {
                return Err(RequestError::other("RETA reply of another type"));
            };
            let queues = self.layout.queue_count;
            if r.size as usize != size
                || r.first != first
                || r.entries.is_empty()
                || table.len() + r.entries.len() > size
                || r.entries.iter().any(|&q| q >= queues)
            {
                return Err(RequestError::other(format!(
                    "invalid RETA reply (size {}, first {}, {} entries) for a table of {size} over {queues} queues",
                    r.size,
                    r.first,
                    r.entries.len()
                )));
            }
            table.extend_from_slice(&r.entries);
        }
        Ok(table)
    }

    /// Sends START and waits for its acknowledgement; with rx interrupts
    /// (v10, `s.rx_intr`), `wake` is the queue's wake socket for the proxy.
    /// Returns the queue's tx kick socket, if the proxy sent one (v10).
    pub fn start(
        &self,
        s: msg::Start,
        wake: Option<BorrowedFd<'_>>,
    ) -> Result<Option<OwnedFd>, String> {
        let wake = if s.rx_intr { wake } else { None };
        self.exchange_passing(&Msg::Start(s), msg::MSG_START_ACK, wake)
            .map(|(_, kick)| kick)
            .map_err(|e| e.text)
    }
    pub fn stop(&self) -> Result<(), String> {
        self.request(&Msg::Stop)
    }
}

/// Why a request to the proxy failed: the errno it gave (EIO when the
/// failure was the connection's), and the whole story.
#[derive(Debug)]
pub struct RequestError {
    pub errno: i32,
    pub text: String,
}

impl RequestError {
    fn other(text: impl Into<String>) -> RequestError {
        RequestError {
            errno: libc::EIO,
            text: text.into(),
        }
    }
}

// --- buffer arena: where shared_mem pools put their objects -----------------

struct Arena {
    base: usize,
    /// Free extents (offset, len) inside the buffer area, sorted by offset.
    free: Vec<(usize, usize)>,
    start: usize,
    end: usize,
    /// Where `end` may grow to (GROW, protocol v6): `end` before v6.
    limit: usize,
    /// The parts it grew by, in order: region offset, length and memfd,
    /// kept to bring them back to a restarted proxy (RESUME_PART, v9).
    parts: Vec<(u64, u64, OwnedFd)>,
}

/// Asks the proxy for at least `len` more bytes of buffer area for
/// [`buffer_alloc`] of `len` bytes (what is free at the area's end counts),
/// maps what it sends after the area, and makes it free. Fails with the
/// proxy's reason (ENOMEM past the socket's limit) or this process's.
pub fn buffer_grow(len: usize) -> Result<(), RequestError> {
    let mut g = ARENA.lock().unwrap();
    let Some(a) = g.as_mut() else {
        return Err(RequestError::other("no sock device connected"));
    };
    let tail = a
        .free
        .last()
        .filter(|&&(off, flen)| off + flen == a.end)
        .map_or(0, |f| f.1);
    let need = len.saturating_sub(tail);
    if a.end.saturating_add(need) > a.limit {
        return Err(RequestError {
            errno: libc::ENOMEM,
            text: format!(
                "{} MiB more would pass the socket's limit of {} MiB (max_buffers at add socket)",
                need.div_ceil(1 << 20),
                (a.limit - a.start) >> 20
            ),
        });
    }
    let Some((conn, _)) = *POOL_CONN.lock().unwrap() else {
        return Err(RequestError::other("no sock device connected"));
    };
    let (reply, fd) = conn.exchange(
        &Msg::Grow(msg::Grow { bytes: need as u64 }),
        msg::MSG_GROW_ACK,
    )?;
    let (Msg::GrowAck(ack), Some(fd)) = (reply, fd) else {
        return Err(RequestError::other("GROW_ACK without memory"));
    };
    // The proxy's answer is checked like any: it must be the area's end
    // and inside the limit (grow() checks the reservation and the memfd).
    if ack.offset != a.end as u64 || ack.len < need as u64 {
        return Err(RequestError::other(format!(
            "proxy grew the area at {} by {}, expected at {} by {need}",
            ack.offset, ack.len, a.end
        )));
    }
    let off = conn
        .buffers
        .grow(std::os::fd::AsFd::as_fd(&fd), ack.len as usize)
        .map_err(|e| RequestError::other(format!("map grown buffers: {e}")))?;
    if off != ack.offset {
        return Err(RequestError::other("grown buffers mapped out of place"));
    }
    a.parts.push((ack.offset, ack.len, fd));
    match a.free.last_mut() {
        Some(last) if last.0 + last.1 == a.end => last.1 += ack.len as usize,
        _ => a.free.push((a.end, ack.len as usize)),
    }
    a.end += ack.len as usize;
    bus_info!(
        "buffer area grew by {} MiB to {} MiB",
        ack.len >> 20,
        (a.end - a.start) >> 20
    );
    Ok(())
}
static ARENA: Mutex<Option<Arena>> = Mutex::new(None);

/// Takes `len` bytes aligned to `align` from the region's buffer area.
pub fn buffer_alloc(len: usize, align: usize) -> Option<*mut u8> {
    let mut g = ARENA.lock().unwrap();
    let a = g.as_mut()?;
    for i in 0..a.free.len() {
        let (off, flen) = a.free[i];
        let addr = (a.base + off).next_multiple_of(align);
        let pad = addr - (a.base + off);
        if flen >= pad + len {
            let rest = flen - pad - len;
            a.free.remove(i);
            if rest > 0 {
                a.free.insert(i, (off + pad + len, rest));
            }
            if pad > 0 {
                a.free.insert(i, (off, pad));
            }
            return Some(addr as *mut u8);
        }
    }
    None
}

/// Whether [`buffer_alloc`] of `len` bytes aligned to `align` would
/// succeed now (one free extent holds it).
pub fn buffer_fits(len: usize, align: usize) -> bool {
    let g = ARENA.lock().unwrap();
    let Some(a) = g.as_ref() else { return false };
    a.free.iter().any(|&(off, flen)| {
        let pad = (a.base + off).next_multiple_of(align) - (a.base + off);
        flen >= pad + len
    })
}

/// Gives back what buffer_alloc returned.
pub fn buffer_free(p: *mut u8, len: usize) {
    let mut g = ARENA.lock().unwrap();
    let Some(a) = g.as_mut() else { return };
    let off = (p as usize).wrapping_sub(a.base);
    if off < a.start || off + len > a.end {
        return;
    }
    let i = a.free.partition_point(|&(o, _)| o < off);
    a.free.insert(i, (off, len));
    // merge neighbours
    let mut j = 0;
    while j + 1 < a.free.len() {
        if a.free[j].0 + a.free[j].1 == a.free[j + 1].0 {
            a.free[j].1 += a.free[j + 1].1;
            a.free.remove(j + 1);
        } else {
            j += 1;
        }
    }
}

/// Bytes still free in the buffer area, and its size.
pub fn buffer_space() -> Option<(usize, usize)> {
    let g = ARENA.lock().unwrap();
    g.as_ref()
        .map(|a| (a.free.iter().map(|f| f.1).sum(), a.end - a.start))
}

// --- EAL callbacks ------------------------------------------------------------

unsafe extern "C" fn bus_scan() -> c_int {
    sys::ffi_guard("sock bus bus_scan", -libc::EIO, || {
        let mut devs = DEVICES.lock().unwrap();
        // SAFETY: EAL's devargs list is stable during scan (init thread).
        let mut da = unsafe { sys::rte_devargs_next(BUS_NAME.as_ptr(), std::ptr::null()) };
        while !da.is_null() {
            // SAFETY: da is a valid element of the list; name is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*da).name.as_ptr()) };
            let path = name.to_string_lossy().into_owned();
            if let Some(d) = devs.iter().find(|d| d.path == path) {
                // Attached again after an unplug: the new devargs.
                if d.conn().is_none() {
                    // SAFETY: EAL's scan, the only writer at this time.
                    unsafe { (*d.dev.get()).devargs = da };
                }
            } else {
                let d = SockDevice::leak(name.to_owned(), path.clone());
                // SAFETY: the device is new: nothing else reads it yet.
                unsafe {
                    (*d.dev.get()).devargs = da;
                    (*d.dev.get()).bus = BUS.get();
                }
                bus_debug!("scanned {path}");
                devs.push(d);
            }
            // SAFETY: as above.
            da = unsafe { sys::rte_devargs_next(BUS_NAME.as_ptr(), da) };
        }
        0
    })
}

unsafe extern "C" fn bus_parse(name: *const c_char, _addr: *mut c_void) -> c_int {
    sys::ffi_guard("sock bus bus_parse", -libc::EIO, || {
        // SAFETY: EAL passes a NUL-terminated name.
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        // A unix socket path: absolute or relative, fits sockaddr_un.
        let ok =
            !name.is_empty() && (name[0] == b'/' || name.starts_with(b"./")) && name.len() < 108;
        if ok {
            0
        } else {
            1
        }
    })
}

unsafe extern "C" fn bus_find_device(
    start: *const sys::rte_device,
    cmp: sys::rte_dev_cmp_t,
    data: *const c_void,
) -> *mut sys::rte_device {
    sys::ffi_guard("sock bus bus_find_device", std::ptr::null_mut(), || {
        let Some(cmp) = cmp else {
            return std::ptr::null_mut();
        };
        let devs = match DEVICES.lock() {
            Ok(d) => d.clone(),
            Err(_) => return std::ptr::null_mut(),
        };
        let mut past_start = start.is_null();
        for d in devs {
            let p = d.rte_device();
            if !past_start {
                past_start = std::ptr::eq(p, start);
                continue;
            }
            // SAFETY: EAL's comparison callback on a valid device.
            if unsafe { cmp(p, data) } == 0 {
                return p;
            }
        }
        std::ptr::null_mut()
    })
}

unsafe extern "C" fn bus_iommu_class() -> sys::rte_iova_mode {
    sys::RTE_IOVA_DC
}

unsafe extern "C" fn bus_probe() -> c_int {
    sys::ffi_guard("sock bus bus_probe", -libc::EIO, || {
        let devs = DEVICES.lock().unwrap().clone();
        let mut failed = 0;
        for d in devs {
            if d.conn().is_some() {
                continue;
            }
            if let Err(e) = probe_one(d) {
                bus_err!("{}: {e}", d.path);
                failed += 1;
            }
        }
        if failed > 0 {
            -1
        } else {
            0
        }
    })
}

/// The device of ours at `dev`, if it is one.
fn device_at(dev: *mut sys::rte_device) -> Option<&'static SockDevice> {
    let devs = DEVICES.lock().ok()?;
    devs.iter()
        .copied()
        .find(|d| std::ptr::eq(d.rte_device(), dev))
}

/// Hotplug (`rte_dev_probe("sock:/path")`, testpmd's `port attach`):
/// connects the device scanned for it and hands it to the driver.
unsafe extern "C" fn bus_plug(dev: *mut sys::rte_device) -> c_int {
    sys::ffi_guard("sock bus bus_plug", -libc::EIO, || {
        let Some(d) = device_at(dev) else {
            return -libc::ENODEV;
        };
        if d.conn().is_some() {
            return 0;
        }
        match probe_one(d) {
            Ok(()) => 0,
            Err(e) => {
                bus_err!("{}: {e}", d.path);
                close_conn(d);
                -libc::EIO
            }
        }
    })
}

/// Hot unplug (`rte_dev_remove`, testpmd's `port detach`): the driver lets
/// the device go, the connection closes (the proxy frees its side), and
/// the devargs EAL gave at plug are released. The region is unmapped
/// unless the process's heap and pools live in it (the first device's).
unsafe extern "C" fn bus_unplug(dev: *mut sys::rte_device) -> c_int {
    sys::ffi_guard("sock bus bus_unplug", -libc::EIO, || {
        let Some(d) = device_at(dev) else {
            return -libc::ENODEV;
        };
        if let Some(drv) = *DRIVER.lock().unwrap() {
            if d.conn().is_some() {
                (drv.remove)(d);
            }
        }
        close_conn(d);
        // SAFETY: EAL's hotplug thread, the only user of the device now;
        // the devargs are ours to release (EAL leaves it to the bus).
        unsafe {
            let raw = d.dev.get();
            (*raw).driver = std::ptr::null();
            if !(*raw).devargs.is_null() {
                sys::rte_devargs_remove((*raw).devargs);
                (*raw).devargs = std::ptr::null_mut();
            }
        }
        bus_info!("{}: detached", d.path);
        0
    })
}

/// Stops watching and shuts the connection of `d` (the proxy sees EOF and
/// releases the guest's side); the device can be plugged again.
fn close_conn(d: &'static SockDevice) {
    let h = std::mem::replace(&mut *d.intr.lock().unwrap(), 0) as *mut sys::rte_intr_handle;
    if !h.is_null() {
        // SAFETY: our handle, not inside its callback (this is the hotplug
        // thread): unregister, retrying while a callback runs, then free.
        unsafe {
            while sys::rte_intr_callback_unregister(
                h,
                Some(on_event),
                d as *const SockDevice as *mut c_void,
            ) == -libc::EAGAIN
            {
                std::thread::yield_now();
            }
            sys::rte_intr_instance_free(h);
        }
    }
    if let Some(conn) = d.conn.lock().unwrap().take() {
        let mut st = conn.state.lock().unwrap();
        st.gone = true;
        conn.cond.notify_all();
        drop(st);
        conn.link_up.store(false, Ordering::Release);
        // The Conn stays allocated (its region may hold the heap and the
        // pools); its socket closes, which the proxy sees as EOF. Nothing
        // reads it any more: the interrupt callback is unregistered above.
        drop(conn.fd.lock().unwrap().take());
        // The driver let its queues go: a region that holds no pool (rings
        // only) is unmapped and its memfd closed.
        let owns_pools = POOL_CONN
            .lock()
            .unwrap()
            .is_some_and(|(c, _)| std::ptr::eq(c, conn));
        if !owns_pools {
            drop(conn.region.lock().unwrap().take());
        }
    }
}

unsafe extern "C" fn bus_cleanup() -> c_int {
    sys::ffi_guard("sock bus bus_cleanup", -libc::EIO, || {
        let drv = *DRIVER.lock().unwrap();
        for d in DEVICES.lock().unwrap().clone() {
            if d.conn().is_some() {
                if let Some(drv) = drv {
                    (drv.remove)(d);
                }
            }
        }
        0
    })
}

fn connect(path: &str) -> Result<OwnedFd, String> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    let addr = UnixAddr::new(path).map_err(|e| format!("bad socket path: {e}"))?;
    connect(fd.as_raw_fd(), &addr).map_err(|e| {
        format!("cannot connect: {e} (is dpdk-io-proxy running and serving this path?)")
    })?;
    Ok(fd)
}

fn recv_blocking(fd: &OwnedFd) -> Result<Received, String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfd = [PollFd::new(
        // SAFETY: fd outlives the poll call.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) },
        PollFlags::POLLIN,
    )];
    let ms = REPLY_TIMEOUT.as_millis() as u16;
    match poll(&mut pfd, PollTimeout::from(ms)) {
        Ok(0) => return Err("proxy did not answer in time".into()),
        Err(e) => return Err(format!("poll: {e}")),
        Ok(_) => {}
    }
    socket::recv(fd.as_raw_fd(), false)
        .map_err(|e| format!("receive: {e}"))?
        .ok_or_else(|| "proxy closed the connection".to_string())
}

/// The proxy's answer to HELLO: a HELLO_ACK of a version this build
/// speaks, with the region's memfd.
fn accept_hello_ack(reply: Received) -> Result<(HelloAck, OwnedFd), String> {
    let ack = match reply.msg {
        Msg::HelloAck(a) => a,
        Msg::Error(s) => return Err(format!("proxy refused: {}", s.text)),
        other => return Err(format!("unexpected reply type {}", other.type_code())),
    };
    if msg::negotiate(ack.version, ack.version) != Some(ack.version) {
        return Err(format!("proxy chose unsupported version {}", ack.version));
    }
    let memfd = reply.fd.ok_or("proxy sent no memory")?;
    Ok((ack, memfd))
}

/// Why a port could not resume with the proxy at its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeError {
    /// Not now: no proxy at the socket yet, or it refused for now. Worth
    /// trying again.
    Retry(String),
    /// Never with this proxy and NIC (a smaller MTU, lost offloads, a
    /// region it cannot take): the port stays down.
    Refused(String),
}

impl std::fmt::Display for ResumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeError::Retry(s) | ResumeError::Refused(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ResumeError {}

/// Serves device `d` again after its proxy went away, in the same region:
/// connects to the socket (a restarted proxy), presents the region's memfd
/// and layout (HELLO with RESUME, v8) and checks that the proxy serves it
/// as it was: same protocol version, same layout, frames no shorter. The
/// caller stopped the port, so its rings are empty and every buffer the
/// old proxy held is back in its pool. On success the link state is the
/// new proxy's and the port can start.
pub fn resume(d: &'static SockDevice) -> Result<(), ResumeError> {
    use ResumeError::{Refused, Retry};
    let conn = d.conn().ok_or(Refused("not connected".into()))?;
    if !conn.proxy_gone() {
        return Ok(());
    }
    let region = conn
        .region()
        .ok_or(Refused("the region was released".into()))?;
    if conn.version < 8 {
        return Err(Refused(format!(
            "attached with protocol v{}, which cannot resume",
            conn.version
        )));
    }
    let grew = region.len() as u64 != conn.layout.region_size;
    if grew && conn.version < 9 {
        return Err(Refused(format!(
            "its buffer area grew (GROW), and protocol v{} cannot bring the grown parts back",
            conn.version
        )));
    }
    let fd = connect(&d.path).map_err(Retry)?;
    let hello = Msg::Hello(Hello {
        version_min: conn.version,
        version_max: conn.version,
        pid: std::process::id(),
        name: program_name(),
        // A socket whose buffers are the first socket's asks to share
        // them again: its memfd here is its rings.
        flags: msg::HELLO_RESUME
            | if conn.info.shared_buffers {
                msg::HELLO_SHARE_BUFFERS
            } else {
                0
            },
        resume: Some(conn.layout.get()),
    });
    socket::send(
        fd.as_raw_fd(),
        &hello,
        msg::VERSION_MAX,
        Some(region.fd().as_raw_fd()),
    )
    .map_err(|e| Retry(format!("send hello: {e}")))?;
    // A proxy that refuses may change its mind (a first socket not
    // resumed yet, a proxy still starting): retried.
    let (ack, memfd) = recv_blocking(&fd)
        .and_then(accept_hello_ack)
        .map_err(Retry)?;
    // The same memory comes back: ours is mapped already.
    drop(memfd);
    if ack.version != conn.version
        || ack.layout != conn.layout.get()
        || ack.shared_buffers != conn.info.shared_buffers
    {
        return Err(Refused(format!(
            "the proxy did not resume the region (protocol v{}, {} layout)",
            ack.version,
            if ack.layout == conn.layout.get() {
                "same"
            } else {
                "another"
            }
        )));
    }
    // What the port cannot absorb: the proxy is told why, and logs it.
    let refuse = |errno: i32, why: String| {
        let _ = socket::send(
            fd.as_raw_fd(),
            &Msg::Error(msg::Status::error(errno, why.clone())),
            ack.version,
            None,
        );
        Err(Refused(why))
    };
    if ack.max_rx_pktlen < conn.info.max_rx_pktlen || ack.mtu < conn.info.mtu {
        return refuse(
            libc::EMSGSIZE,
            format!(
                "the NIC's MTU shrank from {} to {} (frames up to {} bytes, were {}): the port's buffers and MTU were set for the old one",
                conn.info.mtu, ack.mtu, ack.max_rx_pktlen, conn.info.max_rx_pktlen
            ),
        );
    }
    let lost_tx = conn.info.tx_offloads & !ack.tx_offloads;
    let lost_rx = conn.info.rx_offloads & !ack.rx_offloads;
    if lost_tx != 0 || lost_rx != 0 {
        return refuse(
            libc::ENOTSUP,
            format!(
                "the NIC no longer has offloads the port offered (tx 0x{lost_tx:x}, rx 0x{lost_rx:x})"
            ),
        );
    }
    if grew {
        resume_parts(&fd, ack.version)?;
    }
    *conn.nic.lock().unwrap() = NicNow {
        mac: ack.mac,
        mtu: ack.mtu,
        max_rx_pktlen: ack.max_rx_pktlen,
    };
    *conn.fd.lock().unwrap() = Some(fd);
    {
        let mut st = conn.state.lock().unwrap();
        st.gone = false;
        st.reply = None;
        st.reply_fd = None;
    }
    conn.link_speed.store(ack.link_speed, Ordering::Relaxed);
    conn.link_up.store(ack.link_up, Ordering::Release);
    register_events(d, conn).map_err(Refused)?;
    bus_info!(
        "{}: resumed with the proxy on NIC {} port {} (protocol v{})",
        d.path,
        ack.nic_name,
        ack.nic_port,
        ack.version
    );
    Ok(())
}

/// Brings the parts the buffer area grew by back to the resumed proxy
/// (RESUME_PART, v9), in order, each with its memfd; the proxy must map
/// each where it was. A proxy that cannot is final; a lost connection
/// is worth another try.
fn resume_parts(fd: &OwnedFd, version: u16) -> Result<(), ResumeError> {
    use ResumeError::{Refused, Retry};
    let g = ARENA.lock().unwrap();
    let a = g.as_ref().ok_or(Refused("no buffer area".into()))?;
    for (off, len, part) in &a.parts {
        let p = msg::GrowAck {
            offset: *off,
            len: *len,
        };
        socket::send(
            fd.as_raw_fd(),
            &Msg::ResumePart(p.clone()),
            version,
            Some(part.as_raw_fd()),
        )
        .map_err(|e| Retry(format!("send a grown part: {e}")))?;
        match recv_blocking(fd).map_err(Retry)?.msg {
            Msg::GrowAck(back) if back == p => {}
            Msg::Error(s) => {
                return Err(Refused(format!(
                    "the proxy refused a grown part: {}",
                    s.text
                )))
            }
            other => {
                return Err(Refused(format!(
                    "unexpected reply type {} to a grown part",
                    other.type_code()
                )))
            }
        }
    }
    bus_info!(
        "buffer area resumed with its {} grown part{} ({} MiB)",
        a.parts.len(),
        if a.parts.len() == 1 { "" } else { "s" },
        a.parts.iter().map(|p| p.1).sum::<u64>() >> 20
    );
    Ok(())
}

fn probe_one(d: &'static SockDevice) -> Result<(), String> {
    let fd = connect(&d.path)?;
    // The pools live in the first device's buffer area: a later device
    // names that region, so that its packets need no copy between ports.
    let pool_conn = *POOL_CONN.lock().unwrap();
    let hello = Msg::Hello(Hello {
        version_min: msg::VERSION_MIN,
        version_max: msg::VERSION_MAX,
        pid: std::process::id(),
        name: program_name(),
        flags: if pool_conn.is_some() {
            msg::HELLO_SHARE_BUFFERS
        } else {
            0
        },
        resume: None,
    });
    socket::send(
        fd.as_raw_fd(),
        &hello,
        msg::VERSION_MAX,
        pool_conn
            .and_then(|(c, _)| c.region())
            .map(|r| r.fd().as_raw_fd()),
    )
    .map_err(|e| format!("send hello: {e}"))?;
    let reply = recv_blocking(&fd)?;
    let (ack, memfd) = accept_hello_ack(reply)?;
    // The first device's buffer area may grow (v6): address space for
    // that is reserved behind it. Checked against the layout below.
    let reserve = if pool_conn.is_none() {
        ack.layout
            .buf_off
            .checked_add(ack.layout.buf_max)
            .filter(|&r| r >= ack.layout.region_size && r <= shm_abi::layout::REGION_MAX)
            .ok_or("bad buffer area limit")?
    } else {
        ack.layout.region_size
    };
    let align = ack.layout.page_size;
    if !align.is_power_of_two() || !reserve.is_multiple_of(align.max(4096)) {
        return Err("bad page size or buffer area limit".into());
    }
    let region = Region::map_growable(
        memfd,
        ack.layout.region_size as usize,
        reserve as usize,
        align.max(4096) as usize,
    )
    .map_err(|e| format!("map region: {e}"))?;
    let l = ack
        .layout
        .validate(region.len() as u64)
        .map_err(|e| format!("region layout: {e}"))?;
    bus_info!(
        "{}: connected to {} port {} queue {}{}; region {} KiB ({} KiB pages), heap {} MiB, buffers {} MiB",
        d.path,
        ack.nic_name,
        ack.nic_port,
        ack.nic_queue,
        if l.queue_count > 1 {
            format!(" (+{} more)", l.queue_count - 1)
        } else {
            String::new()
        },
        l.region_size >> 10,
        l.page_size >> 10,
        l.heap_len >> 20,
        l.buf_len >> 20
    );

    let (buffers, buf_layout, owns_pools) = match pool_conn {
        Some((first, first_path)) if ack.shared_buffers => {
            bus_info!(
                "{}: shares the buffers of {} ({} MiB): one pool serves both ports",
                d.path,
                first_path,
                first.buf_layout.buf_len >> 20
            );
            (first.buffers.clone(), first.buf_layout, false)
        }
        Some(_) => {
            bus_info!(
                "{}: the proxy does not share buffers between sockets (protocol v{}):                  this port takes only mbufs of its own area, which no pool uses",
                d.path,
                ack.version
            );
            (region.clone(), l, false)
        }
        None => (region.clone(), l, true),
    };
    if ack.shared_buffers && pool_conn.is_none() {
        return Err("proxy shares buffers that were not asked for".into());
    }
    if !ack.shared_buffers {
        grow_heap(&region, &l)?;
    }
    if owns_pools {
        let mut arena = ARENA.lock().unwrap();
        *arena = Some(Arena {
            base: region.base() as usize,
            free: vec![(l.buf_off as usize, l.buf_len as usize)],
            start: l.buf_off as usize,
            end: (l.buf_off + l.buf_len) as usize,
            limit: region.reserved(),
            parts: Vec::new(),
        });
    }
    // SAFETY: NUL-terminated name; EAL keeps it in a memzone.
    let r = unsafe { sys::rte_mbuf_set_platform_mempool_ops(c"shared_mem".as_ptr()) };
    if r != 0 && r != -(libc::EEXIST) {
        bus_err!(
            "cannot make shared_mem the platform mempool ops: {}",
            sys::strerror(-r)
        );
    }

    let conn: &'static Conn = Box::leak(Box::new(Conn {
        fd: Mutex::new(Some(fd)),
        version: ack.version,
        layout: l,
        link_up: AtomicBool::new(ack.link_up),
        link_speed: AtomicU32::new(ack.link_speed),
        nic: Mutex::new(NicNow {
            mac: ack.mac,
            mtu: ack.mtu,
            max_rx_pktlen: ack.max_rx_pktlen,
        }),
        info: ack,
        region: Mutex::new(Some(region)),
        buffers,
        buf_layout,
        state: Mutex::new(ConnState {
            reply: None,
            reply_fd: None,
            gone: false,
        }),
        cond: Condvar::new(),
    }));
    *d.conn.lock().unwrap() = Some(conn);
    if owns_pools {
        *POOL_CONN.lock().unwrap() = Some((conn, d.path.as_str()));
    }
    register_events(d, conn)?;

    let drv = DRIVER
        .lock()
        .unwrap()
        .ok_or("no driver registered on the sock bus")?;
    // The vdev bus binds its own devices once probe returns.
    if d.foreign.load(Ordering::Acquire).is_null() {
        // SAFETY: probe time, single-threaded; DRIVER_C is static.
        unsafe {
            (*(d.rte_device())).driver = DRIVER_C.get();
        }
    }
    (drv.probe)(d)
}

/// Devices that another bus made: `net_shm` vdevs, by socket path.
static FOREIGN: Mutex<Vec<&'static SockDevice>> = Mutex::new(Vec::new());

/// Connects the socket at `path` for `dev`, a device of another bus (the
/// `net_shm` vdev: `--vdev net_shm0,path=/run/x.sock`, which apps that
/// find ports by `rte_eth_iterator` devargs, such as OVS, need), and has
/// the driver make its port, as a `sock:` device would.
pub fn attach_foreign(dev: *mut sys::rte_device, path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() >= 108 {
        return Err(format!("bad socket path '{path}'"));
    }
    let d = {
        let mut list = FOREIGN.lock().unwrap();
        if let Some(d) = list.iter().copied().find(|d| d.path == path) {
            if d.conn().is_some() {
                return Err(format!("{path} is already attached"));
            }
            d
        } else {
            let name = std::ffi::CString::new(path).map_err(|_| "bad socket path")?;
            let d = SockDevice::leak(name, path.to_string());
            list.push(d);
            d
        }
    };
    if DEVICES
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.path == path && s.conn().is_some())
    {
        return Err(format!("{path} is already attached as sock:{path}"));
    }
    d.foreign.store(dev, Ordering::Release);
    probe_one(d).inspect_err(|_| {
        close_conn(d);
        d.foreign.store(std::ptr::null_mut(), Ordering::Release);
    })
}

/// Undoes [`attach_foreign`] for `dev`: the driver lets the port go, the
/// connection closes.
pub fn detach_foreign(dev: *mut sys::rte_device) {
    let d = FOREIGN
        .lock()
        .unwrap()
        .iter()
        .copied()
        .find(|d| std::ptr::eq(d.foreign.load(Ordering::Acquire), dev));
    let Some(d) = d else { return };
    if let Some(drv) = *DRIVER.lock().unwrap() {
        if d.conn().is_some() {
            (drv.remove)(d);
        }
    }
    close_conn(d);
    d.foreign.store(std::ptr::null_mut(), Ordering::Release);
    bus_info!("{}: detached", d.path);
}

/// Backs this process's malloc heap with the region's heap area, so that a
/// guest started with `--no-huge -m1` can allocate.
fn grow_heap(region: &Region, l: &Layout) -> Result<(), String> {
    if l.heap_len == 0 {
        return Ok(());
    }
    if !sys::HAVE_HEAP_GROW {
        bus_info!("built without EAL private headers: heap not extended, the app needs its own memory (-m)");
        return Ok(());
    }
    let va = region
        .ptr(l.heap_off, l.heap_len)
        .ok_or("heap area outside region")?;
    // SAFETY: plain query of the calling lcore's socket.
    let socket = unsafe { sys::rte_socket_id() } as i32;
    let socket = if (0..sys::RTE_MAX_NUMA_NODES as i32).contains(&socket) {
        socket
    } else {
        0
    };
    // SAFETY: va..va+heap_len is mapped for the life of the process (the
    // connection is leaked); probe runs on the init thread, nothing else
    // allocates concurrently.
    let r = unsafe {
        sys::dpdk_sys_heap_grow(
            socket,
            va as *mut c_void,
            l.heap_len as usize,
            l.page_size as usize,
        )
    };
    if r != 0 {
        return Err(format!(
            "cannot add shared heap to socket {socket}: {}",
            sys::strerror(-r)
        ));
    }
    bus_info!(
        "malloc heap of socket {socket} grown by {} MiB of shared memory",
        l.heap_len >> 20
    );
    Ok(())
}

fn program_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(String::from))
        .unwrap_or_default()
}

// --- asynchronous messages from the proxy (EAL interrupt thread) ------------

fn register_events(d: &'static SockDevice, conn: &'static Conn) -> Result<(), String> {
    // SAFETY: plain EAL calls; the handle lives for the rest of the process.
    unsafe {
        let h = sys::rte_intr_instance_alloc(sys::RTE_INTR_INSTANCE_F_PRIVATE);
        if h.is_null() {
            return Err("cannot allocate interrupt handle".into());
        }
        sys::rte_intr_fd_set(h, conn.raw_fd().ok_or("connection closed")?);
        sys::rte_intr_type_set(h, sys::RTE_INTR_HANDLE_EXT);
        let r = sys::rte_intr_callback_register(
            h,
            Some(on_event),
            d as *const SockDevice as *mut c_void,
        );
        if r != 0 {
            return Err(format!("cannot watch proxy socket: {}", sys::strerror(-r)));
        }
        *d.intr.lock().unwrap() = h as usize;
    }
    Ok(())
}

unsafe extern "C" fn on_event(arg: *mut c_void) {
    sys::ffi_guard("sock bus on_event", (), || {
        // SAFETY: arg is the &'static SockDevice registered above.
        let d: &'static SockDevice = unsafe { &*(arg as *const SockDevice) };
        handle_events(d);
    })
}

fn handle_events(d: &'static SockDevice) {
    let Some(conn) = d.conn() else { return };
    loop {
        let Some(fd) = conn.raw_fd() else { return };
        match socket::recv(fd, true) {
            Ok(Some(r)) => handle_message(d, conn, r.msg, r.fd),
            Ok(None) => return proxy_lost(d, conn, "proxy closed the connection"),
            Err(e) if e.would_block() => return,
            Err(socket::RecvError::Io(e)) => {
                return proxy_lost(d, conn, &format!("proxy socket error: {e}"))
            }
            Err(e) => bus_err!("{}: from proxy: {e}", d.path),
        }
    }
}

fn handle_message(d: &'static SockDevice, conn: &Conn, m: Msg, fd: Option<OwnedFd>) {
    match m {
        Msg::StartAck(_) | Msg::StopAck(_) | Msg::Error(_) | Msg::GrowAck(_) | Msg::Reta(_) => {
            let mut st = conn.state.lock().unwrap();
            st.reply = Some(m);
            st.reply_fd = fd;
            conn.cond.notify_all();
        }
        Msg::Link(l) => {
            conn.link_speed.store(l.speed, Ordering::Relaxed);
            conn.link_up.store(l.up, Ordering::Release);
            notify(d);
        }
        Msg::Bye(why) => proxy_lost(d, conn, &format!("proxy going away on purpose ({why})")),
        other => bus_debug!("{}: ignoring message type {}", d.path, other.type_code()),
    }
}

fn notify(d: &'static SockDevice) {
    let n = *d.notify.lock().unwrap();
    if let Some((f, arg)) = n {
        f(d, arg as *mut c_void);
    }
}

unsafe extern "C" fn unregistered(_h: *mut sys::rte_intr_handle, _arg: *mut c_void) {}

fn proxy_lost(d: &'static SockDevice, conn: &Conn, why: &str) {
    {
        let mut st = conn.state.lock().unwrap();
        // A BYE, then the close: once.
        if st.gone {
            return;
        }
        st.gone = true;
        conn.cond.notify_all();
    }
    bus_err!("{}: {why}; link down", d.path);
    conn.link_up.store(false, Ordering::Release);
    notify(d);
    let mut intr = d.intr.lock().unwrap();
    let h = *intr as *mut sys::rte_intr_handle;
    if !h.is_null() {
        // Stop watching the dead socket (we are inside its callback).
        // SAFETY: h is our handle; the pending variant is made for this
        // case. EAL's source keeps its own copy of the handle (made at
        // register), so once the callback is marked ours is unused: freed
        // here, else every reconnect would leak one.
        unsafe {
            let marked = sys::rte_intr_callback_unregister_pending(
                h,
                Some(on_event),
                d as *const SockDevice as *mut c_void,
                Some(unregistered),
            );
            if marked > 0 {
                *intr = 0;
                sys::rte_intr_instance_free(h);
            }
        }
    }
}

// --- where pool objects are: buffer offset -> mbuf ------------------------------

/// A run of `count` objects, `stride` bytes apart, the first at `start`
/// (the object address, i.e. the mbuf, after the mempool header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub start: usize,
    pub stride: usize,
    pub count: usize,
    /// For mbuf pools: where an object's data buffer starts, relative to
    /// the object (`sizeof(rte_mbuf) + priv_size`); 0 for other pools.
    pub buf_delta: usize,
}

impl Extent {
    /// Does `addr` lie in this run of objects?
    #[inline]
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.start && addr - self.start < self.count * self.stride
    }

    /// The object whose data buffer would start at `buf` (no division: the
    /// buffer is at a fixed distance from its mbuf). The caller confirms
    /// with the object's own `buf_addr`.
    #[inline]
    pub fn object_of(&self, buf: usize) -> Option<usize> {
        if self.buf_delta == 0 {
            return None;
        }
        let obj = buf.checked_sub(self.buf_delta)?;
        self.contains(obj).then_some(obj)
    }
}

const MAX_EXTENTS: usize = 64;
struct ExtentSlot {
    start: AtomicUsize,
    stride: AtomicUsize,
    count: AtomicUsize,
    buf_delta: AtomicUsize,
    /// The pool and the buffer-area allocation the objects live in (read
    /// and written only under EXTENTS_WRITE).
    pool: AtomicUsize,
    alloc: AtomicUsize,
    alloc_len: AtomicUsize,
}
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: ExtentSlot = ExtentSlot {
    start: AtomicUsize::new(0),
    stride: AtomicUsize::new(0),
    count: AtomicUsize::new(0),
    buf_delta: AtomicUsize::new(0),
    pool: AtomicUsize::new(0),
    alloc: AtomicUsize::new(0),
    alloc_len: AtomicUsize::new(0),
};
/// Append-only (pools are created rarely); readers never lock.
static EXTENTS: [ExtentSlot; MAX_EXTENTS] = [EMPTY_SLOT; MAX_EXTENTS];
static EXTENTS_LEN: AtomicUsize = AtomicUsize::new(0);
static EXTENTS_WRITE: Mutex<()> = Mutex::new(());

/// Records where `pool` put its objects, inside the buffer-area allocation
/// `alloc..alloc + alloc_len`. False when the registry is full.
pub fn register_extent(e: Extent, pool: usize, alloc: usize, alloc_len: usize) -> bool {
    let _g = EXTENTS_WRITE.lock().unwrap_or_else(|p| p.into_inner());
    let n = EXTENTS_LEN.load(Ordering::Relaxed);
    let slot = (0..n)
        .find(|&i| EXTENTS[i].count.load(Ordering::Relaxed) == 0)
        .unwrap_or(n);
    if slot >= MAX_EXTENTS {
        bus_err!("too many shared pools ({MAX_EXTENTS})");
        return false;
    }
    EXTENTS[slot].pool.store(pool, Ordering::Relaxed);
    EXTENTS[slot].alloc.store(alloc, Ordering::Relaxed);
    EXTENTS[slot].alloc_len.store(alloc_len, Ordering::Relaxed);
    EXTENTS[slot].start.store(e.start, Ordering::Relaxed);
    EXTENTS[slot].stride.store(e.stride, Ordering::Relaxed);
    EXTENTS[slot]
        .buf_delta
        .store(e.buf_delta, Ordering::Relaxed);
    EXTENTS[slot].count.store(e.count, Ordering::Release);
    if slot == n {
        EXTENTS_LEN.store(n + 1, Ordering::Release);
    }
    true
}

/// Forgets the extents of a freed pool and gives their memory back to the
/// buffer area.
pub fn release_pool(pool: usize) {
    let _g = EXTENTS_WRITE.lock().unwrap_or_else(|p| p.into_inner());
    for s in EXTENTS.iter().take(EXTENTS_LEN.load(Ordering::Relaxed)) {
        if s.count.load(Ordering::Relaxed) != 0 && s.pool.load(Ordering::Relaxed) == pool {
            s.count.store(0, Ordering::Release);
            buffer_free(
                s.alloc.load(Ordering::Relaxed) as *mut u8,
                s.alloc_len.load(Ordering::Relaxed),
            );
        }
    }
}

/// The extents of every mbuf pool in the buffer area, now.
pub fn mbuf_extents() -> Vec<Extent> {
    EXTENTS
        .iter()
        .take(EXTENTS_LEN.load(Ordering::Acquire))
        .filter_map(|s| {
            let count = s.count.load(Ordering::Acquire);
            let buf_delta = s.buf_delta.load(Ordering::Relaxed);
            (count != 0 && buf_delta != 0).then(|| Extent {
                start: s.start.load(Ordering::Relaxed),
                stride: s.stride.load(Ordering::Relaxed),
                count,
                buf_delta,
            })
        })
        .collect()
}

/// The extent holding the buffer at address `buf`.
#[inline]
pub fn find_extent(buf: usize) -> Option<Extent> {
    for s in EXTENTS.iter().take(EXTENTS_LEN.load(Ordering::Acquire)) {
        let count = s.count.load(Ordering::Acquire);
        if count == 0 {
            continue;
        }
        let e = Extent {
            start: s.start.load(Ordering::Relaxed),
            stride: s.stride.load(Ordering::Relaxed),
            count,
            buf_delta: s.buf_delta.load(Ordering::Relaxed),
        };
        if e.object_of(buf).is_some() {
            return Some(e);
        }
    }
    None
}
