//! The proxy's command language (startup file and prompt): its grammar
//! and what each command does.

use crate::access::SocketAccess;
use crate::proxy::Proxy;
use crate::session::RegionConfig;

pub const USAGE: &str = "\
commands:
  add port <port_id> [queues <n>] [rxd <n>] [mtu <n>] [intr]
                                                      configure n rx/tx queue pairs (default 2), RSS over them, start;
                                                      rxd: NIC rx descriptors per queue (default: the PMD's); mtu: the NIC's MTU;
                                                      intr: with its rx interrupts, which idle datapath lcores wait for
  add socket <path> <port_id> <queues> [heap <MiB>] [buffers <MiB>] [max_buffers <MiB>] [ring <n>]
             [owner <user>[:<group>]] [mode <octal>] [allow_uid <list>] [allow_gid <list>] [lcore <list>]
                                                      serve those queues (2, 0-3, 0,2) on a unix socket at <path>:
                                                      the guest port gets one rx/tx queue pair per NIC queue;
                                                      lcore: the datapath lcore(s) polling them, one per queue in
                                                      turn (default: for each, an lcore serving the fewest);
                                                      owner/mode: the socket file's (default: the proxy's user, 0660);
                                                      allow_uid/allow_gid: only these peers (SO_PEERCRED) are served;
                                                      buffers: the guest's pool area at attach (default 512), which
                                                      grows on the guest's request up to max_buffers (default 2048);
                                                      ring: descriptors per ring (default 4096: guests post up to 3840 rx buffers)
  remove socket <path>
  add flow <port_id> <pattern> queue <q> | rss <queues>
                                                      steer what the pattern matches to NIC queue q (its socket's guest), or
                                                      spread it by RSS over those queues (2-3, 0,2), by rte_flow; pattern:
                                                      [eth dst <mac>] [vlan <id>] [ipv4|ipv6 [dst <addr>]] [udp|tcp dst <port>],
                                                      in that order; the NIC's own error if it cannot
  remove flow <port_id> <id>
  set link <port_id> up|down                          bring the NIC's link up or down (guests get LSC)
  set mtu <port_id> <n>                               the NIC's MTU, for guests that connect after (none may be connected)
  set timing on|off                                   count the datapath's TSC cycles per stage (costs a little)
  set idle poll | set idle sleep <max_us> [after <us>] [wait <ms>]
                                                      idle datapath lcores: busy poll, or (default: sleep 100 after 1000 wait 1)
                                                      once nothing moved for <us>: wait up to <ms> for an rx interrupt if every
                                                      queue of the lcore has one (ports added with intr; wait 0: never), else
                                                      sleep between rounds, 10 us at first, doubling up to <max_us>
  show ports | show sockets | show stats | show datapath | show flows
  help | quit";

#[derive(Debug, PartialEq)]
pub enum Command {
    AddPort {
        port: u16,
        queues: u16,
        /// NIC rx descriptors per queue; 0: the PMD's default.
        rxd: u16,
        /// The NIC's MTU; 0: the PMD's.
        mtu: u16,
        /// Configure the NIC's rx interrupts, for idle lcores to wait on.
        intr: bool,
    },
    AddSocket {
        path: String,
        port: u16,
        /// NIC queues, in the guest's queue order.
        queues: Vec<u16>,
        cfg: RegionConfig,
        access: SocketAccess,
        /// Datapath lcores for the queues, in turn; empty: least loaded.
        lcores: Vec<u32>,
    },
    RemoveSocket {
        path: String,
    },
    AddFlow {
        port: u16,
        pattern: crate::flow::Match,
        target: crate::flow::Target,
    },
    RemoveFlow {
        port: u16,
        id: u32,
    },
    Show(String),
    SetLink {
        port: u16,
        up: bool,
    },
    SetMtu {
        port: u16,
        mtu: u16,
    },
    SetTiming(bool),
    SetIdle(crate::datapath::IdleMode),
    Help,
    Quit,
    Nothing,
}

impl PartialEq for RegionConfig {
    fn eq(&self, o: &Self) -> bool {
        (
            self.heap_mb,
            self.buffers_mb,
            self.max_buffers_mb,
            self.ring_entries,
        ) == (o.heap_mb, o.buffers_mb, o.max_buffers_mb, o.ring_entries)
    }
}

/// Ring sizes `add socket ... ring <n>` takes. A guest posts at most
/// 256 fewer rx buffers than this (its rx queue's `nb_rx_desc` limit).
const RING_MIN: u32 = 512;
const RING_MAX: u32 = 16384;

/// Longest lcore list (EAL's RTE_MAX_LCORE in Debian's build).
pub const MAX_LCORES: usize = 128;

fn word<'a>(what: &str, s: Option<&'a str>) -> Result<&'a str, String> {
    s.ok_or_else(|| format!("missing {what}"))
}

fn num<T: std::str::FromStr>(what: &str, s: Option<&str>) -> Result<T, String> {
    let s = s.ok_or_else(|| format!("missing {what}"))?;
    s.parse().map_err(|_| format!("bad {what} '{s}'"))
}

/// A list of ids (queues, lcores): `2`, `0-3`, `0,2,5` or a mix
/// (`0-1,4`); none twice, at most `max` of them.
pub fn id_list<T>(what: &str, s: &str, max: usize) -> Result<Vec<T>, String>
where
    T: std::str::FromStr + Copy + PartialEq + PartialOrd + std::fmt::Display + TryFrom<u64>,
    u64: From<T>,
{
    let mut out: Vec<T> = Vec::new();
    for part in s.split(',') {
        let (a, b): (T, T) = match part.split_once('-') {
            Some((a, b)) => (num(what, Some(a))?, num(what, Some(b))?),
            None => {
                let x = num(what, Some(part))?;
                (x, x)
            }
        };
        if a > b {
            return Err(format!("bad {what} range '{part}'"));
        }
        for x in u64::from(a)..=u64::from(b) {
            let x = T::try_from(x).map_err(|_| format!("bad {what} '{x}'"))?;
            if out.contains(&x) {
                return Err(format!("{what} {x} listed twice"));
            }
            out.push(x);
            if out.len() > max {
                return Err(format!("at most {max} {what}s"));
            }
        }
    }
    Ok(out)
}

/// A socket's queue list ([`id_list`]), at most
/// [`QUEUES_MAX`](shm_abi::layout::QUEUES_MAX) queues.
fn queue_list(s: Option<&str>) -> Result<Vec<u16>, String> {
    id_list(
        "queue",
        s.ok_or("missing queue")?,
        shm_abi::layout::QUEUES_MAX as usize,
    )
}

/// Parses one command line.
pub fn parse(line: &str) -> Result<Command, String> {
    let line = line.split('#').next().unwrap_or("");
    let w: Vec<&str> = line.split_whitespace().collect();
    let mut it = w.iter().copied();
    let cmd = match (it.next(), it.next()) {
        (None, _) => Command::Nothing,
        (Some("add"), Some("port")) => {
            let port = num("port_id", it.next())?;
            let (mut queues, mut rxd, mut mtu, mut intr) = (2, 0, 0, false);
            while let Some(k) = it.next() {
                match k {
                    "queues" => queues = num("queue count", it.next())?,
                    "intr" => intr = true,
                    "mtu" => {
                        mtu = num("MTU", it.next())?;
                        if mtu < 68 {
                            return Err("mtu must be at least 68".into());
                        }
                    }
                    "rxd" => {
                        rxd = num("rx descriptor count", it.next())?;
                        if rxd == 0 {
                            return Err("rxd must be at least 1".into());
                        }
                    }
                    x => return Err(format!("unexpected '{x}'")),
                }
            }
            if queues == 0 {
                return Err("queues must be at least 1".into());
            }
            Command::AddPort {
                port,
                queues,
                rxd,
                mtu,
                intr,
            }
        }
        (Some("add"), Some("socket")) => {
            let path: String = it.next().ok_or("missing path")?.to_string();
            if !path.starts_with('/') {
                return Err(format!("socket path must be absolute: '{path}'"));
            }
            if path.len() >= 64 {
                return Err(
                    "socket path must be shorter than 64 bytes (EAL device name limit)".into(),
                );
            }
            let port = num("port_id", it.next())?;
            let queues = queue_list(it.next())?;
            let mut cfg = RegionConfig::default();
            let mut access = SocketAccess::default();
            let mut max_buffers = None;
            let mut lcores = Vec::new();
            while let Some(k) = it.next() {
                match k {
                    "lcore" => {
                        lcores = id_list("lcore", word("lcore list", it.next())?, MAX_LCORES)?
                    }
                    "owner" => {
                        access.owner = Some(SocketAccess::parse_owner(word("owner", it.next())?)?)
                    }
                    "mode" => access.mode = SocketAccess::parse_mode(word("mode", it.next())?)?,
                    "allow_uid" => {
                        access.allow_uids =
                            SocketAccess::parse_ids(word("uid list", it.next())?, true)?
                    }
                    "allow_gid" => {
                        access.allow_gids =
                            SocketAccess::parse_ids(word("gid list", it.next())?, false)?
                    }
                    "heap" => cfg.heap_mb = num("heap MiB", it.next())?,
                    "buffers" => cfg.buffers_mb = num("buffers MiB", it.next())?,
                    "max_buffers" => max_buffers = Some(num("max_buffers MiB", it.next())?),
                    "ring" => {
                        cfg.ring_entries = num("ring entries", it.next())?;
                        if !cfg.ring_entries.is_power_of_two()
                            || !(RING_MIN..=RING_MAX).contains(&cfg.ring_entries)
                        {
                            return Err(format!(
                                "ring entries must be a power of two from {RING_MIN} to {RING_MAX}"
                            ));
                        }
                    }
                    x => return Err(format!("unexpected '{x}'")),
                }
            }
            cfg.max_buffers_mb = max_buffers.unwrap_or(cfg.max_buffers_mb.max(cfg.buffers_mb));
            if cfg.heap_mb < 8 || cfg.heap_mb + cfg.max_buffers_mb >= 4000 || cfg.buffers_mb < 4 {
                return Err(
                    "heap must be >= 8 MiB, buffers >= 4 MiB, heap and max_buffers together < 4000 MiB"
                        .into(),
                );
            }
            if cfg.max_buffers_mb < cfg.buffers_mb {
                return Err(format!(
                    "max_buffers ({}) is less than buffers ({})",
                    cfg.max_buffers_mb, cfg.buffers_mb
                ));
            }
            Command::AddSocket {
                path,
                port,
                queues,
                cfg,
                access,
                lcores,
            }
        }
        (Some("remove"), Some("socket")) => Command::RemoveSocket {
            path: it.next().ok_or("missing path")?.to_string(),
        },
        (Some("add"), Some("flow")) => {
            let port = num("port_id", it.next())?;
            let rest: Vec<&str> = it.by_ref().collect();
            use crate::flow::Target;
            let (pattern, target) = match rest.iter().position(|&w| w == "queue" || w == "rss") {
                Some(i) => {
                    let target = match (rest[i], &rest[i + 1..]) {
                        ("queue", [q]) => Target::Queue(num("queue", Some(q))?),
                        ("rss", [qs]) => Target::Rss(id_list("queue", qs, u16::MAX as usize)?),
                        _ => {
                            return Err(
                                "add flow: expected 'queue <q>' or 'rss <queues>' last".into()
                            )
                        }
                    };
                    (&rest[..i], target)
                }
                None => return Err("add flow: missing 'queue <q>' or 'rss <queues>'".into()),
            };
            Command::AddFlow {
                port,
                pattern: crate::flow::Match::parse(pattern)?,
                target,
            }
        }
        (Some("remove"), Some("flow")) => Command::RemoveFlow {
            port: num("port_id", it.next())?,
            id: num("flow id", it.next())?,
        },
        (Some("show"), Some(what @ ("ports" | "sockets" | "stats" | "datapath" | "flows"))) => {
            Command::Show(what.to_string())
        }
        (Some("set"), Some("link")) => {
            let port = num("port_id", it.next())?;
            let up = match it.next() {
                Some("up") => true,
                Some("down") => false,
                other => {
                    return Err(format!(
                        "set link {port}: expected up or down, got {other:?}"
                    ))
                }
            };
            Command::SetLink { port, up }
        }
        (Some("set"), Some("mtu")) => {
            let port = num("port_id", it.next())?;
            let mtu = num("MTU", it.next())?;
            if mtu < 68 {
                return Err("mtu must be at least 68".into());
            }
            Command::SetMtu { port, mtu }
        }
        (Some("set"), Some("timing")) => match it.next() {
            Some("on") => Command::SetTiming(true),
            Some("off") => Command::SetTiming(false),
            other => return Err(format!("set timing: expected on or off, got {other:?}")),
        },
        (Some("set"), Some("idle")) => {
            use crate::datapath::IdleMode;
            match it.next() {
                Some("poll") => Command::SetIdle(IdleMode::Poll),
                Some("sleep") => {
                    let max_us: u32 = num("max_us", it.next())?;
                    let (mut after_us, mut wait_ms) = (1000, 1);
                    while let Some(k) = it.next() {
                        match k {
                            "after" => after_us = num("after us", it.next())?,
                            "wait" => wait_ms = num("wait ms", it.next())?,
                            x => return Err(format!("unexpected '{x}'")),
                        }
                    }
                    if !(1..=100_000).contains(&max_us) {
                        return Err("set idle sleep: max_us from 1 to 100000".into());
                    }
                    // Control's pauses wait for a waiting lcore: bounded.
                    if wait_ms > 100 {
                        return Err("set idle sleep: wait from 0 to 100 ms".into());
                    }
                    Command::SetIdle(IdleMode::Sleep {
                        after_us,
                        max_us,
                        wait_ms,
                    })
                }
                other => {
                    return Err(format!(
                        "set idle: expected poll or sleep <max_us> [after <us>] [wait <ms>], got {other:?}"
                    ))
                }
            }
        }
        (Some("help"), None) => Command::Help,
        (Some("quit" | "exit"), None) => Command::Quit,
        _ => return Err(format!("unknown command '{}'", w.join(" "))),
    };
    if let Some(x) = it.next() {
        return Err(format!("unexpected '{x}'"));
    }
    Ok(cmd)
}

/// Executes a command; Ok(false) means quit.
pub fn execute(p: &mut Proxy, cmd: Command, out: &mut dyn std::io::Write) -> Result<bool, String> {
    match cmd {
        Command::Nothing => {}
        Command::Help => {
            let _ = writeln!(out, "{USAGE}");
        }
        Command::Quit => return Ok(false),
        Command::AddPort {
            port,
            queues,
            rxd,
            mtu,
            intr,
        } => p.add_port(port, queues, rxd, mtu, intr)?,
        Command::SetMtu { port, mtu } => p.set_mtu(port, mtu)?,
        Command::AddSocket {
            path,
            port,
            queues,
            cfg,
            access,
            lcores,
        } => p.add_socket(path, port, queues, cfg, access, lcores)?,
        Command::RemoveSocket { path } => p.remove_socket(&path)?,
        Command::AddFlow {
            port,
            pattern,
            target,
        } => {
            let id = p.add_flow(port, pattern, target)?;
            let _ = writeln!(out, "flow {id}");
        }
        Command::RemoveFlow { port, id } => {
            p.flows.remove(port, id).map_err(|e| e.to_string())?;
            crate::log::info(&format!("flow {id} of port {port} removed"));
        }
        Command::SetTiming(on) => {
            // Paused, so that no round adds to a counter being zeroed.
            let _paused = p.lcores.pause_all();
            for dp in p.lcores.datapaths() {
                dp.timing.set(on);
            }
            crate::log::info(&format!(
                "datapath timing {}",
                if on { "on" } else { "off" }
            ));
        }
        Command::SetIdle(mode) => {
            p.lcores.set_idle(mode);
            crate::log::info(&format!("idle datapath lcores: {mode}"));
        }
        Command::SetLink { port, up } => {
            let port_ref = p
                .ports
                .get(&port)
                .ok_or_else(|| format!("port {port} not added"))?;
            port_ref
                .set_link(up)
                .map_err(|e| format!("port {port}: {e}"))?;
            p.watch_links();
        }
        Command::Show(what) => {
            let text = match what.as_str() {
                "ports" => p.show_ports(),
                "sockets" => p.show_sockets(),
                "datapath" => p.show_datapath(),
                "flows" => p.flows.show(),
                _ => p.show_stats(),
            };
            let _ = write!(out, "{text}");
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_commands() {
        assert_eq!(
            parse("add flow 0 vlan 7 udp dst 4789 queue 1").unwrap(),
            Command::AddFlow {
                port: 0,
                pattern: crate::flow::Match {
                    vlan: Some(7),
                    l4: Some((crate::flow::L4::Udp, 4789)),
                    ..Default::default()
                },
                target: crate::flow::Target::Queue(1)
            }
        );
        assert_eq!(
            parse("add flow 1 ipv4 rss 0-2,5").unwrap(),
            Command::AddFlow {
                port: 1,
                pattern: crate::flow::Match {
                    ip: Some(crate::flow::IpMatch::V4(None)),
                    ..Default::default()
                },
                target: crate::flow::Target::Rss(vec![0, 1, 2, 5])
            }
        );
        assert!(parse("add flow 1 ipv4 rss 0,0").is_err());
        assert!(parse("add flow 1 ipv4 rss").is_err());
        assert_eq!(
            parse("remove flow 0 3").unwrap(),
            Command::RemoveFlow { port: 0, id: 3 }
        );
        assert_eq!(parse("show flows").unwrap(), Command::Show("flows".into()));
        assert_eq!(
            parse("add port 0").unwrap(),
            Command::AddPort {
                port: 0,
                queues: 2,
                rxd: 0,
                mtu: 0,
                intr: false
            }
        );
        assert_eq!(
            parse("add port 1 queues 4").unwrap(),
            Command::AddPort {
                port: 1,
                queues: 4,
                rxd: 0,
                mtu: 0,
                intr: false
            }
        );
        assert_eq!(
            parse("add port 1 rxd 256 queues 1").unwrap(),
            Command::AddPort {
                port: 1,
                queues: 1,
                rxd: 256,
                mtu: 0,
                intr: false
            }
        );
        assert_eq!(
            parse("add port 0 mtu 9000").unwrap(),
            Command::AddPort {
                port: 0,
                queues: 2,
                rxd: 0,
                mtu: 9000,
                intr: false
            }
        );
        assert_eq!(
            parse("set mtu 1 1400").unwrap(),
            Command::SetMtu { port: 1, mtu: 1400 }
        );
        assert!(parse("set mtu 1 20").is_err());
        match parse("add socket /tmp/s 0 0 ring 8192").unwrap() {
            Command::AddSocket { cfg, .. } => assert_eq!(cfg.ring_entries, 8192),
            other => panic!("{other:?}"),
        }
        assert!(parse("add socket /tmp/s 0 0 ring 3000")
            .unwrap_err()
            .contains("power of two"));
        assert!(parse("add socket /tmp/s 0 0 ring 65536").is_err());
        match parse("add socket /tmp/s_0_0/sock 0 1 heap 32 buffers 256").unwrap() {
            Command::AddSocket {
                path,
                port,
                queues,
                cfg,
                access,
                lcores,
            } => {
                assert_eq!(
                    (path.as_str(), port, queues, cfg.heap_mb, cfg.buffers_mb),
                    ("/tmp/s_0_0/sock", 0, vec![1], 32, 256)
                );
                assert_eq!(access, SocketAccess::default());
                assert!(lcores.is_empty());
            }
            other => panic!("{other:?}"),
        }
        match parse(
            "add socket /tmp/s 0 0 owner 1000:100 mode 0600 allow_uid 1000,1001 allow_gid 100",
        )
        .unwrap()
        {
            Command::AddSocket { access, .. } => assert_eq!(
                access,
                SocketAccess {
                    owner: Some((1000, Some(100))),
                    mode: 0o600,
                    allow_uids: vec![1000, 1001],
                    allow_gids: vec![100],
                }
            ),
            other => panic!("{other:?}"),
        }
        assert!(parse("add socket /tmp/s 0 0 mode 999").is_err());
        assert!(parse("add socket /tmp/s 0 0 owner").is_err());
        for (list, want) in [
            ("0-3", vec![0, 1, 2, 3]),
            ("0,2", vec![0, 2]),
            ("0-1,4", vec![0, 1, 4]),
        ] {
            match parse(&format!("add socket /tmp/s 0 {list}")).unwrap() {
                Command::AddSocket { queues, .. } => assert_eq!(queues, want),
                other => panic!("{other:?}"),
            }
        }
        for bad in ["3-1", "0,0", "0-64", "a-b", ""] {
            assert!(
                parse(&format!("add socket /tmp/s 0 {bad} heap 8")).is_err(),
                "{bad}"
            );
        }
        assert_eq!(parse("show stats").unwrap(), Command::Show("stats".into()));
        assert_eq!(parse("  # comment").unwrap(), Command::Nothing);
        assert_eq!(parse("quit").unwrap(), Command::Quit);
        assert_eq!(
            parse("set link 0 down").unwrap(),
            Command::SetLink { port: 0, up: false }
        );
        assert_eq!(parse("set timing on").unwrap(), Command::SetTiming(true));
        assert_eq!(
            parse("show datapath").unwrap(),
            Command::Show("datapath".into())
        );
        assert!(parse("set timing maybe").unwrap_err().contains("on or off"));
        match parse("add socket /tmp/s 0 0-3 lcore 1,2").unwrap() {
            Command::AddSocket { lcores, .. } => assert_eq!(lcores, vec![1, 2]),
            other => panic!("{other:?}"),
        }
        match parse("add socket /tmp/s 0 0-3 lcore 0-1,3").unwrap() {
            Command::AddSocket { lcores, .. } => assert_eq!(lcores, vec![0, 1, 3]),
            other => panic!("{other:?}"),
        }
        assert!(parse("add socket /tmp/s 0 0 lcore x").is_err());
        assert!(parse("add socket /tmp/s 0 0 lcore 1,1")
            .unwrap_err()
            .contains("lcore 1 listed twice"));
        use crate::datapath::IdleMode;
        assert_eq!(
            parse("set idle poll").unwrap(),
            Command::SetIdle(IdleMode::Poll)
        );
        for (line, after_us, max_us, wait_ms) in [
            ("set idle sleep 200", 1000, 200, 1),
            ("set idle sleep 50 after 10", 10, 50, 1),
            ("set idle sleep 50 wait 0 after 10", 10, 50, 0),
        ] {
            assert_eq!(
                parse(line).unwrap(),
                Command::SetIdle(IdleMode::Sleep {
                    after_us,
                    max_us,
                    wait_ms
                }),
                "{line}"
            );
        }
        assert!(parse("set idle sleep 50 wait 101").is_err());
        assert!(parse("set idle sleep 0").is_err());
        assert!(parse("set idle nap").unwrap_err().contains("poll or sleep"));
    }

    #[test]
    fn rejects_bad_commands_with_a_reason() {
        assert!(parse("add port x").unwrap_err().contains("bad port_id"));
        assert!(parse("add socket rel/path 0 0")
            .unwrap_err()
            .contains("absolute"));
        assert!(parse("add port 0 queues 0").is_err());
        assert!(parse("add port 0 rxd 0").is_err());
        assert!(parse("show everything")
            .unwrap_err()
            .contains("unknown command"));
        assert!(parse("add port 0 extra")
            .unwrap_err()
            .contains("unexpected"));
    }
}
