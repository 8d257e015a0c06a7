//! Steering by rte_flow: rules that send a port's ingress traffic matching
//! a pattern (destination MAC, VLAN id, IPv4/IPv6 destination, UDP/TCP
//! destination port) to one of its rx queues, hence to the guest that
//! socket serves, or spread by RSS over a set of them (a guest's several
//! queues). The PMD validates each rule first, so a rule it cannot do is
//! refused with its own message and nothing is left half-applied.
//! Counted where the PMD has counters (a COUNT action, tried first); the
//! counts are read at most once a second.

use crate::error::ProxyError;
use dpdk_sys as sys;
use std::cell::Cell;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Where a rule sends what it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One rx queue.
    Queue(u16),
    /// RSS over these rx queues (the port's hash functions).
    Rss(Vec<u16>),
}

impl Target {
    pub fn queues(&self) -> &[u16] {
        match self {
            Target::Queue(q) => std::slice::from_ref(q),
            Target::Rss(qs) => qs,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Queue(q) => write!(f, "queue {q}"),
            Target::Rss(qs) => write!(f, "rss {}", crate::proxy::queue_list(qs)),
        }
    }
}

/// How old a rule's hit count may be when shown.
const HITS_MAX_AGE: Duration = Duration::from_secs(1);

/// What a rule matches: each field, if given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    pub eth_dst: Option<[u8; 6]>,
    pub vlan: Option<u16>,
    pub ip: Option<IpMatch>,
    pub l4: Option<(L4, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMatch {
    /// Any IPv4 packet, or one to this address.
    V4(Option<Ipv4Addr>),
    V6(Option<Ipv6Addr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Udp,
    Tcp,
}

fn mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut m = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("bad MAC '{s}'"));
    }
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC '{s}'"))?;
    }
    Ok(m)
}

impl Match {
    /// Parses a pattern: `eth dst <mac>`, `vlan <id>`, `ipv4 [dst <addr>]`,
    /// `ipv6 [dst <addr>]`, `udp dst <port>`, `tcp dst <port>`, in that
    /// order, each at most once. A UDP/TCP port without an IP layer means
    /// IPv4.
    pub fn parse(words: &[&str]) -> Result<Match, String> {
        let mut m = Match::default();
        let mut it = words.iter().copied().peekable();
        let dst = |it: &mut std::iter::Peekable<std::iter::Copied<std::slice::Iter<&str>>>,
                   what: &str|
         -> Result<String, String> {
            match (it.next(), it.next()) {
                (Some("dst"), Some(v)) => Ok(v.to_string()),
                _ => Err(format!("{what}: expected 'dst <value>'")),
            }
        };
        let mut stage = 0;
        while let Some(w) = it.next() {
            let order = match w {
                "eth" => 1,
                "vlan" => 2,
                "ipv4" | "ipv6" => 3,
                "udp" | "tcp" => 4,
                x => return Err(format!("unknown pattern item '{x}'")),
            };
            if order <= stage {
                return Err(format!(
                    "'{w}' out of order or twice (eth, vlan, ipv4|ipv6, udp|tcp)"
                ));
            }
            stage = order;
            match w {
                "eth" => m.eth_dst = Some(mac(&dst(&mut it, "eth")?)?),
                "vlan" => {
                    let id: u16 = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&v| v < 4096)
                        .ok_or("vlan: expected an id 0..4095")?;
                    m.vlan = Some(id);
                }
                "ipv4" | "ipv6" => {
                    let addr = if it.peek() == Some(&"dst") {
                        Some(dst(&mut it, w)?)
                    } else {
                        None
                    };
                    let bad = |a: &str| format!("{w}: bad address '{a}'");
                    m.ip = Some(match (w, addr) {
                        ("ipv4", a) => {
                            IpMatch::V4(a.map(|a| a.parse().map_err(|_| bad(&a))).transpose()?)
                        }
                        (_, a) => {
                            IpMatch::V6(a.map(|a| a.parse().map_err(|_| bad(&a))).transpose()?)
                        }
                    });
                }
                _ => {
                    let p = dst(&mut it, w)?;
                    let port: u16 = p.parse().map_err(|_| format!("{w}: bad port '{p}'"))?;
                    m.l4 = Some((if w == "udp" { L4::Udp } else { L4::Tcp }, port));
                }
            }
        }
        if m == Match::default() {
            return Err(
                "empty pattern: name at least one of eth, vlan, ipv4, ipv6, udp, tcp".into(),
            );
        }
        Ok(m)
    }

    fn raw(&self) -> sys::dpdk_sys_flow_match {
        let mut r = sys::dpdk_sys_flow_match::default();
        if let Some(m) = self.eth_dst {
            r.fields |= sys::DPDK_SYS_FLOW_ETH_DST;
            r.eth_dst = m;
        }
        if let Some(v) = self.vlan {
            r.fields |= sys::DPDK_SYS_FLOW_VLAN;
            r.vlan_id = v;
        }
        match self.ip {
            Some(IpMatch::V6(a)) => {
                r.fields |= sys::DPDK_SYS_FLOW_IPV6;
                if let Some(a) = a {
                    r.fields |= sys::DPDK_SYS_FLOW_IP_DST;
                    r.ipv6_dst = a.octets();
                }
            }
            Some(IpMatch::V4(a)) => {
                r.fields |= sys::DPDK_SYS_FLOW_IPV4;
                if let Some(a) = a {
                    r.fields |= sys::DPDK_SYS_FLOW_IP_DST;
                    r.ipv4_dst = u32::from_ne_bytes(a.octets());
                }
            }
            None if self.l4.is_some() => r.fields |= sys::DPDK_SYS_FLOW_IPV4,
            None => {}
        }
        if let Some((l4, port)) = self.l4 {
            r.fields |= match l4 {
                L4::Udp => sys::DPDK_SYS_FLOW_UDP_DST,
                L4::Tcp => sys::DPDK_SYS_FLOW_TCP_DST,
            };
            r.l4_dst = port;
        }
        r
    }
}

impl std::fmt::Display for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(m) = self.eth_dst {
            parts.push(format!("eth dst {}", crate::nic::mac_str(&m)));
        }
        if let Some(v) = self.vlan {
            parts.push(format!("vlan {v}"));
        }
        match self.ip {
            Some(IpMatch::V4(a)) => {
                parts.push(a.map_or("ipv4".into(), |a| format!("ipv4 dst {a}")))
            }
            Some(IpMatch::V6(a)) => {
                parts.push(a.map_or("ipv6".into(), |a| format!("ipv6 dst {a}")))
            }
            None => {}
        }
        if let Some((l4, p)) = self.l4 {
            parts.push(format!(
                "{} dst {p}",
                if l4 == L4::Udp { "udp" } else { "tcp" }
            ));
        }
        f.write_str(&parts.join(" "))
    }
}

/// A rule's handle in the PMD.
struct Handle(*mut sys::rte_flow);

// SAFETY: only the thread that owns the Proxy (its control thread) uses
// the handle; moving it there with the Proxy at startup is its only
// crossing. ethdev serializes flow calls for PMDs that need it.
unsafe impl Send for Handle {}

/// A rule in the NIC.
pub struct Flow {
    pub id: u32,
    pub port: u16,
    pub target: Target,
    pub pattern: Match,
    handle: Handle,
    /// Made with a COUNT action (the PMD has counters).
    pub counted: bool,
    /// The last hit count read, and when (control publishes telemetry
    /// every round; the NIC is asked at most once a second).
    hits: Cell<Option<(Instant, u64)>>,
}

/// The rules of every port, by id.
#[derive(Default)]
pub struct Flows {
    next_id: u32,
    pub list: Vec<Flow>,
}

fn flow_error(what: &str, r: i32, e: &sys::rte_flow_error) -> ProxyError {
    let msg = if e.message.is_null() {
        sys::strerror(-r.abs())
    } else {
        // SAFETY: the PMD's message is a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(e.message) }
            .to_string_lossy()
            .into_owned()
    };
    ProxyError::Unsupported(format!("{what}: {msg}"))
}

impl Flows {
    /// Puts a rule into port `port`'s NIC: what `m` matches goes to
    /// `target` (RSS with hash functions `rss_hf`). Refused with the PMD's
    /// reason, nothing applied.
    pub fn add(
        &mut self,
        port: u16,
        m: Match,
        target: Target,
        rss_hf: u64,
    ) -> Result<u32, ProxyError> {
        let raw = m.raw();
        let (queue, rss): (u16, &[u16]) = match &target {
            Target::Queue(q) => (*q, &[]),
            Target::Rss(qs) => (0, qs),
        };
        let create = |count: i32, err: &mut sys::rte_flow_error| {
            // SAFETY: raw, rss and err live across the call; the port is
            // started.
            unsafe {
                sys::dpdk_sys_flow_create(
                    port,
                    &raw,
                    queue,
                    rss.as_ptr(),
                    rss.len() as u16,
                    rss_hf,
                    count,
                    0,
                    err,
                )
            }
        };
        // SAFETY: zeroed rte_flow_error is its documented initial state.
        let mut err: sys::rte_flow_error = unsafe { std::mem::zeroed() };
        let mut counted = true;
        let mut h = create(1, &mut err);
        if h.is_null() {
            // Again without counting: many PMDs (net_tap) have no counters.
            counted = false;
            // SAFETY: zeroed rte_flow_error is its documented initial state.
            err = unsafe { std::mem::zeroed() };
            h = create(0, &mut err);
        }
        if h.is_null() {
            let r = sys::rte_errno();
            return Err(flow_error(
                &format!("port {port}: flow {m} -> {target}"),
                r,
                &err,
            ));
        }
        self.next_id += 1;
        let id = self.next_id;
        self.list.push(Flow {
            id,
            port,
            target,
            pattern: m,
            handle: Handle(h),
            counted,
            hits: Cell::new(None),
        });
        Ok(id)
    }

    /// Takes rule `id` of port `port` out of the NIC.
    pub fn remove(&mut self, port: u16, id: u32) -> Result<(), ProxyError> {
        let i = self
            .list
            .iter()
            .position(|f| f.id == id && f.port == port)
            .ok_or_else(|| ProxyError::NotFound(format!("port {port} has no flow {id}")))?;
        let f = &self.list[i];
        // SAFETY: zeroed rte_flow_error is its documented initial state.
        let mut err: sys::rte_flow_error = unsafe { std::mem::zeroed() };
        // SAFETY: the handle came from rte_flow_create on this port and
        // was not destroyed (it leaves the list here).
        let r = unsafe { sys::rte_flow_destroy(port, f.handle.0, &mut err) };
        if r != 0 {
            return Err(flow_error(
                &format!("port {port}: remove flow {id}"),
                r,
                &err,
            ));
        }
        self.list.remove(i);
        Ok(())
    }

    /// Drops every rule of port `port` (before it stops).
    pub fn flush(&mut self, port: u16) {
        let ids: Vec<u32> = self
            .list
            .iter()
            .filter(|f| f.port == port)
            .map(|f| f.id)
            .collect();
        for id in ids {
            let _ = self.remove(port, id);
        }
    }

    /// Packets rule `f` matched, if the NIC counts them: read from the
    /// NIC if the last reading is older than a second.
    pub fn hits(f: &Flow) -> Option<u64> {
        if !f.counted {
            return None;
        }
        if let Some((at, h)) = f.hits.get() {
            if at.elapsed() < HITS_MAX_AGE {
                return Some(h);
            }
        }
        let mut hits = 0u64;
        // SAFETY: zeroed rte_flow_error is its documented initial state.
        let mut err: sys::rte_flow_error = unsafe { std::mem::zeroed() };
        // SAFETY: a live rule of this port; hits and err are ours.
        let r = unsafe { sys::dpdk_sys_flow_hits(f.port, f.handle.0, &mut hits, &mut err) };
        if r != 0 {
            return None;
        }
        f.hits.set(Some((Instant::now(), hits)));
        Some(hits)
    }

    /// One line per rule: `flow <id>: port <p> <pattern> -> <target>, <hits>`.
    pub fn show(&self) -> String {
        let mut s = String::new();
        for f in &self.list {
            s += &format!(
                "flow {}: port {} {} -> {}, {}\n",
                f.id,
                f.port,
                f.pattern,
                f.target,
                Flows::hits(f).map_or("not counted".into(), |h| format!("{h} hits"))
            );
        }
        if s.is_empty() {
            s = "no flows\n".into();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_in_order_and_print_back() {
        let m = Match::parse(&[
            "eth",
            "dst",
            "02:00:00:00:00:0a",
            "vlan",
            "100",
            "ipv4",
            "dst",
            "10.0.0.1",
            "udp",
            "dst",
            "4789",
        ])
        .unwrap();
        assert_eq!(
            m.to_string(),
            "eth dst 02:00:00:00:00:0A vlan 100 ipv4 dst 10.0.0.1 udp dst 4789"
        );
        let m = Match::parse(&["ipv6", "dst", "fd00::1", "tcp", "dst", "80"]).unwrap();
        assert_eq!(m.to_string(), "ipv6 dst fd00::1 tcp dst 80");
        assert_eq!(
            Match::parse(&["udp", "dst", "53"]).unwrap().raw().fields & sys::DPDK_SYS_FLOW_IPV4,
            sys::DPDK_SYS_FLOW_IPV4
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        for (words, why) in [
            (&["udp", "dst", "1", "ipv4"][..], "out of order"),
            (&["vlan", "5000"][..], "0..4095"),
            (&["eth", "dst", "02:00"][..], "bad MAC"),
            (&["ipv4", "dst", "1.2.3"][..], "bad address"),
            (&["sctp"][..], "unknown pattern item"),
            (&[][..], "empty pattern"),
        ] {
            let e = Match::parse(words).unwrap_err();
            assert!(e.contains(why), "{words:?}: {e}");
        }
    }
}
