//! The text tables of `show ports`, `show sockets` and `show stats`.

use crate::nic::mac_str;
use crate::proxy::Proxy;
use crate::session;
use crate::stats::get;

impl Proxy {
    pub fn show_ports(&self) -> String {
        let mut s = format!(
            "{:>4} {:<20} {:<16} {:>6} {:<5} {:<17} {:>5} {:<4}\n",
            "port", "name", "driver", "queues", "rss", "mac", "mtu", "link"
        );
        for p in self.ports.values() {
            let (up, speed) = p.link();
            s += &format!(
                "{:>4} {:<20} {:<16} {:>6} {:<5} {:<17} {:>5} {}\n",
                p.id,
                p.name,
                p.driver,
                p.nb_queues,
                if p.rss { "yes" } else { "no" },
                mac_str(&p.mac),
                p.mtu,
                if up {
                    format!("up {speed} Mbps")
                } else {
                    "down".into()
                }
            );
        }
        s
    }

    pub fn show_sockets(&self) -> String {
        let mut s = format!(
            "{:<32} {:>4} {:>6} {:>6} {:<10} {:>7} {:<12}\n",
            "socket", "port", "queues", "lcore", "guest", "pid", "state"
        );
        for e in &self.sockets {
            let (guest, pid, state, dma) = match &e.session {
                Some(ss) => (
                    ss.name.clone(),
                    ss.pid.to_string(),
                    match ss.started.iter().filter(|&&x| x).count() {
                        0 => "connected".to_string(),
                        n if ss.started.len() == 1 => {
                            debug_assert_eq!(n, 1);
                            "started".to_string()
                        }
                        n => format!("started {n}/{}", ss.started.len()),
                    },
                    ss.dma
                        .as_ref()
                        .map_or(String::new(), |a| format!(" (buffers DMA: {})", a.state)),
                ),
                None => ("-".into(), "-".into(), "listening".into(), String::new()),
            };
            s += &format!(
                "{:<32} {:>4} {:>6} {:>6} {:<10} {:>7} {:<12}{dma}  {}\n",
                e.path,
                e.port,
                e.queue_list(),
                crate::proxy::lcore_list(&e.lcores),
                guest,
                pid,
                state,
                e.access.describe()
            );
        }
        s
    }

    /// `show stats`: each port's and queue's counters, then each flow
    /// rule's hits.
    pub fn show_stats(&self) -> String {
        let mut s = String::new();
        for p in self.ports.values() {
            let st = p.stats();
            s += &format!(
                "port {}: rx {} pkts {} bytes, missed {}, tx {} pkts {} bytes, errors rx {} tx {}\n",
                p.id, st.ipackets, st.ibytes, st.imissed, st.opackets, st.obytes, st.ierrors, st.oerrors
            );
            for (q, qs) in p.queue_stats.iter().enumerate() {
                // The socket serving this queue, and the guest's queue index.
                let served = self.sockets.iter().find_map(|e| {
                    let k = e.queues.iter().position(|&x| x == q as u16)?;
                    (e.port == p.id).then_some((e, k as u16))
                });
                s += &format!(
                    "  queue {q} (lcore {}) {}: to guest {} pkts {} bytes, from guest {} pkts {} bytes, drops rx {} tx {}, no buffer {}, bad descriptors {}, tx offload errors {}, payload copies {}, rx wakes {}, tx kicks {}\n",
                    self.lcores
                        .lcore_of(p.id, q as u16)
                        .map_or("-".into(), |l| l.to_string()),
                    served.map_or("(no socket)".to_string(), |(e, k)| if e.queues.len() > 1 {
                        format!("{} queue {k}", e.path)
                    } else {
                        e.path.clone()
                    }),
                    get(&qs.rx_packets),
                    get(&qs.rx_bytes),
                    get(&qs.tx_packets),
                    get(&qs.tx_bytes),
                    get(&qs.rx_drops),
                    get(&qs.tx_drops),
                    get(&qs.rx_no_buffer),
                    get(&qs.bad_descriptors),
                    get(&qs.tx_offload_errors),
                    get(&qs.payload_copies),
                    get(&qs.rx_wakes),
                    get(&qs.tx_kicks),
                );
                if let Some((r, k)) =
                    served.and_then(|(e, k)| Some((e.session.as_ref()?.rings.as_ref()?, k)))
                {
                    let used: Vec<String> = session::RING_NAMES
                        .iter()
                        .zip(r.read(k))
                        .map(|(name, n)| match n {
                            Some(n) => format!("{name} {n}"),
                            None => format!("{name} corrupt"),
                        })
                        .collect();
                    s += &format!(
                        "    rings in use (of {}): {}\n",
                        r.ring_entries(),
                        used.join(", ")
                    );
                }
            }
        }
        // What each steering rule matched, where the NIC counts.
        if !self.flows.list.is_empty() {
            s += &self.flows.show();
        }
        s
    }

    /// `show datapath`: each lcore's queues, back-off and timing.
    pub fn show_datapath(&self) -> String {
        let mut s = format!("idle lcores: {}\n", self.lcores.idle());
        for (dp, served) in self.lcores.datapaths().iter().zip(self.lcores.served()) {
            let polled = crate::lcores::port_queue_list(&self.lcores.polled_by(dp.lcore));
            s += &format!(
                "lcore {}: polls port/queue {} ({served} served by sockets); paused {} times; {} idle sleeps ({} ms asked); {} waits for rx interrupts ({} woken)\n",
                dp.lcore,
                if polled.is_empty() { "none" } else { &polled },
                get(&dp.pauses),
                get(&dp.sleeps.count),
                get(&dp.sleeps.asked_us) / 1000,
                get(&dp.sleeps.intr_waits),
                get(&dp.sleeps.intr_wakes),
            );
            for line in dp.timing.show().lines() {
                s += &format!("  {line}\n");
            }
        }
        s
    }
}
