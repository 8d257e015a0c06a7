//! dpdk-io-proxy: owns the NICs, serves each NIC queue on a unix socket to
//! an unmodified DPDK app that attaches with `-a sock:/path`.
//!
//! Usage: dpdk-io-proxy [EAL options --] [--cmds FILE] [LCORES]

use dpdk_sys as sys;
use io_proxy::command::{execute, id_list, parse, Command, MAX_LCORES, USAGE};
use io_proxy::datapath::Datapath;
use io_proxy::lcores::Lcores;
use io_proxy::proxy::Proxy;
use io_proxy::{log, pool_ops, telemetry};
use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

const DEFAULT_CMDS: &str = "dpdk-io-proxy.cmds";

struct Args {
    eal: Vec<String>,
    /// The datapath lcores; empty: every lcore the EAL options name.
    lcores: Vec<u32>,
    cmds: Option<String>,
}

fn usage() -> String {
    format!(
        "\
usage: dpdk-io-proxy [EAL options --] [--cmds FILE] [LCORES]
       dpdk-io-proxy --help | --version

Owns NICs through DPDK and serves their queues to DPDK apps over unix
sockets, zero-copy (dpdk-io-proxy(8)). Apps attach with -a sock:<socket>.

  EAL options   DPDK's own, before `--`: -a <pci>, --vdev <vdev>, --file-prefix,
                -m, --no-huge, ...; `-l LCORES` is added if they name no cores
  --cmds FILE   startup commands (default: dpdk-io-proxy.cmds in the working
                directory, if there is one)
  LCORES        the datapath lcores, one polling loop on each: 1, 1,2 or 1-3
                (default: every lcore the EAL options name); each NIC queue
                is polled by one of them (add socket ... lcore <n>)
  -h, --help    this text
  --version     versions: the proxy's, its protocol's and DPDK's

With a terminal on stdin it also gives a prompt for the same commands;
otherwise it runs until SIGINT or SIGTERM, then tells its guests (BYE),
removes its sockets and exits 0.

{USAGE}"
    )
}

/// What `--version` prints.
fn version() -> String {
    format!(
        "dpdk-io-proxy {} (protocol v{}..v{}, built for DPDK {})",
        env!("CARGO_PKG_VERSION"),
        shm_abi::msg::VERSION_MIN,
        shm_abi::msg::VERSION_MAX,
        sys::BUILT_FOR
    )
}

fn parse_args() -> Result<Args, String> {
    let all: Vec<String> = std::env::args().collect();
    let prog = all
        .first()
        .cloned()
        .unwrap_or_else(|| "dpdk-io-proxy".into());
    let (mut eal, app): (Vec<String>, Vec<String>) = match all.iter().position(|a| a == "--") {
        Some(i) => (all[1..i].to_vec(), all[i + 1..].to_vec()),
        None => (Vec::new(), all[1..].to_vec()),
    };
    let mut lcores: Option<Vec<u32>> = None;
    let mut cmds = None;
    let mut it = app.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cmds" => cmds = Some(it.next().ok_or("--cmds needs a file")?),
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            "--version" => {
                println!("{}", version());
                std::process::exit(0);
            }
            x if lcores.is_none() => {
                lcores = Some(
                    id_list("lcore", x, MAX_LCORES)
                        .map_err(|e| format!("bad LCORES '{x}': {e}\n{}", usage()))?,
                )
            }
            x => return Err(format!("unexpected '{x}'\n{}", usage())),
        }
    }
    let has_cores = eal
        .iter()
        .any(|a| a == "-c" || a.starts_with("--lcores") || a.starts_with("-l"));
    let lcores = match lcores {
        Some(l) => l,
        None if has_cores => Vec::new(),
        None => return Err(format!("missing LCORES\n{}", usage())),
    };
    if !has_cores {
        let list: Vec<String> = lcores.iter().map(|l| l.to_string()).collect();
        eal.insert(0, list.join(","));
        eal.insert(0, "-l".into());
    }
    eal.insert(0, prog);
    Ok(Args { eal, lcores, cmds })
}

static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_sig: libc::c_int) {
    let fd = SIGNAL_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; one byte from a static.
        unsafe {
            libc::write(fd, b"x".as_ptr() as *const libc::c_void, 1);
        }
    }
}

fn install_signals() -> Result<OwnedFd, String> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    SIGNAL_FD.store(w.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(w);
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only calls write(2).
    unsafe {
        for s in [Signal::SIGINT, Signal::SIGTERM] {
            sigaction(s, &act).map_err(|e| format!("sigaction: {e}"))?;
        }
        sigaction(
            Signal::SIGPIPE,
            &SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty()),
        )
        .map_err(|e| format!("sigaction: {e}"))?;
    }
    Ok(r)
}

/// Runs a command file; stops at the first bad line with FILE:LINE: reason.
fn run_cmds_file(proxy: &mut Proxy, path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    for (n, line) in text.lines().enumerate() {
        let r = parse(line).and_then(|c| {
            if c == Command::Quit {
                return Err("quit is not allowed in a startup file".into());
            }
            execute(proxy, c, &mut std::io::stdout())
        });
        if let Err(e) = r {
            return Err(format!("{path}:{}: {e}", n + 1));
        }
    }
    Ok(())
}

fn control_loop(proxy: &mut Proxy, sig: OwnedFd, interactive: bool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let prompt = || {
        print!("io-proxy> ");
        let _ = std::io::stdout().flush();
    };
    if interactive {
        prompt();
    }
    loop {
        let mut fds: Vec<PollFd> = vec![PollFd::new(sig.as_fd(), PollFlags::POLLIN)];
        let stdin_fd = std::io::stdin();
        if interactive {
            fds.push(PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN));
        }
        let base = fds.len();
        for s in &proxy.sockets {
            fds.push(PollFd::new(s.listener.as_fd(), PollFlags::POLLIN));
        }
        for s in &proxy.sockets {
            if let Some(sess) = &s.session {
                fds.push(PollFd::new(sess.fd.as_fd(), PollFlags::POLLIN));
            }
        }
        let _ = poll(&mut fds, PollTimeout::from(200u16));
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let events: Vec<bool> = fds.iter().map(ready).collect();
        drop(fds);
        if events[0] {
            println!();
            break;
        }
        if interactive && events[1] {
            match lines.next() {
                Some(Ok(line)) => {
                    match parse(&line).and_then(|c| execute(proxy, c, &mut std::io::stdout())) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => println!("error: {e}\n{USAGE}"),
                    }
                }
                _ => break,
            }
            prompt();
        }
        let listeners: Vec<usize> = (0..proxy.sockets.len()).collect();
        let sessions: Vec<usize> = (0..proxy.sockets.len())
            .filter(|&i| proxy.sockets[i].session.is_some())
            .collect();
        // Guests first (indexes are stable within this round).
        for (k, &i) in sessions.iter().enumerate() {
            if events[base + listeners.len() + k] {
                proxy.guest_readable(i);
            }
        }
        for &i in &listeners {
            if events[base + i] {
                proxy.accept(i);
            }
        }
        proxy.tick();
        telemetry::publish(proxy);
    }
}

/// Keeps the control thread off the datapath lcores' CPUs, if any are left.
fn set_control_affinity(dp_cpus: &[u32]) {
    // SAFETY: plain libc cpu-set manipulation on a local.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let n = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize;
        let mut any = false;
        for c in 0..n {
            if !dp_cpus.contains(&(c as u32)) {
                libc::CPU_SET(c, &mut set);
                any = true;
            }
        }
        if any {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// Every lcore the EAL runs, the main one included.
fn eal_lcores() -> Vec<u32> {
    let mut out = Vec::new();
    // SAFETY: plain EAL queries after init.
    unsafe {
        let mut l = sys::rte_get_next_lcore(u32::MAX, 0, 0);
        while l < sys::RTE_MAX_LCORE {
            out.push(l);
            l = sys::rte_get_next_lcore(l, 0, 0);
        }
    }
    out
}

unsafe extern "C" fn dp_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the Datapath that main() launched this lcore with;
    // main keeps it alive until rte_eal_wait_lcore returns.
    unsafe {
        sys::ffi_guard("io_proxy dp_entry", -libc::EIO, || {
            let dp = &*(arg as *const Datapath);
            dp.run();
            0
        })
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = sys::eal_init(&args.eal) {
        eprintln!("dpdk-io-proxy: {e}");
        std::process::exit(1);
    }
    log::register();
    telemetry::register();
    if let Err(e) = pool_ops::register_ops() {
        eprintln!("dpdk-io-proxy: {e}");
        std::process::exit(1);
    }
    let lcores = if args.lcores.is_empty() {
        eal_lcores()
    } else {
        args.lcores.clone()
    };
    // SAFETY: plain EAL queries after init.
    let main_lcore = unsafe { sys::rte_get_main_lcore() };
    let mut dp_cpus = Vec::new();
    for &l in &lcores {
        // SAFETY: as above.
        if l >= sys::RTE_MAX_LCORE || unsafe { sys::rte_lcore_is_enabled(l) } == 0 {
            eprintln!("dpdk-io-proxy: lcore {l} is not among the EAL's lcores");
            std::process::exit(2);
        }
        // SAFETY: as above, for an enabled lcore.
        dp_cpus.push(unsafe { sys::rte_lcore_to_cpu_id(l as i32) } as u32);
    }
    let sig = match install_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dpdk-io-proxy: {e}");
            std::process::exit(1);
        }
    };
    let mut proxy = match Lcores::new(&lcores) {
        Ok(l) => Proxy::new(l),
        Err(e) => {
            eprintln!("dpdk-io-proxy: datapath lcores: {e}");
            std::process::exit(1);
        }
    };
    let dps: Vec<Arc<Datapath>> = proxy.lcores.datapaths().to_vec();
    let cmds = args.cmds.clone().or_else(|| {
        std::path::Path::new(DEFAULT_CMDS)
            .exists()
            .then(|| DEFAULT_CMDS.to_string())
    });

    let interactive = std::io::stdin().is_terminal();
    let control = std::thread::Builder::new()
        .name("io-proxy-ctl".into())
        .spawn(move || {
            set_control_affinity(&dp_cpus);
            let mut code = 0;
            let ok = match &cmds {
                Some(f) => match run_cmds_file(&mut proxy, f) {
                    Ok(()) => true,
                    Err(e) => {
                        eprintln!("{e}");
                        code = 1;
                        false
                    }
                },
                None => true,
            };
            if ok {
                telemetry::publish(&proxy);
                println!(
                    "dpdk-io-proxy ready: {} port(s), {} socket(s) ({}, protocol v{}..v{})",
                    proxy.ports.len(),
                    proxy.sockets.len(),
                    dpdk_version(),
                    shm_abi::msg::VERSION_MIN,
                    shm_abi::msg::VERSION_MAX
                );
                control_loop(&mut proxy, sig, interactive);
                print!("final stats:\n{}", proxy.show_stats());
            }
            proxy.shutdown();
            let _ = std::io::stdout().flush();
            proxy.lcores.stop();
            code
        })
        .expect("spawn control thread");

    // Each datapath on its lcore; the main lcore's (if it is one) here.
    let mut launched = Vec::new();
    let mut failed = false;
    for dp in dps.iter().filter(|dp| dp.lcore != main_lcore) {
        // SAFETY: dp outlives the lcore: `dps` holds it until we waited
        // for the lcore below.
        let r = unsafe {
            sys::rte_eal_remote_launch(
                Some(dp_entry),
                Arc::as_ptr(dp) as *mut libc::c_void,
                dp.lcore,
            )
        };
        if r == 0 {
            launched.push(dp.lcore);
        } else {
            eprintln!(
                "dpdk-io-proxy: cannot launch the datapath on lcore {}",
                dp.lcore
            );
            failed = true;
        }
    }
    if failed {
        // As a SIGTERM: the control thread stops the others and cleans up.
        on_signal(libc::SIGTERM);
    }
    if let Some(dp) = dps.iter().find(|dp| dp.lcore == main_lcore) {
        dp.run();
    }
    for l in launched {
        // SAFETY: waits for the launched function to return.
        unsafe { sys::rte_eal_wait_lcore(l) };
    }
    let code = control
        .join()
        .map_or(1, |c| if failed { c.max(1) } else { c });
    // SAFETY: every DPDK user is done.
    unsafe { sys::rte_eal_cleanup() };
    std::process::exit(code);
}

/// The DPDK this binary runs on ("DPDK 22.11.11"), as its EAL says.
fn dpdk_version() -> String {
    // SAFETY: rte_version returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(sys::rte_version()) }
        .to_string_lossy()
        .into_owned()
}
