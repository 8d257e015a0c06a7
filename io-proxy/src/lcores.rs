//! The datapath lcores: which one polls which NIC queue, where a socket's
//! queues go (`add socket ... lcore`, or the least loaded), and pausing
//! only the lcores an operation touches.

use crate::datapath::{Datapath, DpQueue, DpState, IdleMode};
use crate::stats::SocketStats;
use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard};

/// (port, queue)s as `0/0 0/1 1/0`.
pub fn port_queue_list(pqs: &[(u16, u16)]) -> String {
    let v: Vec<String> = pqs.iter().map(|(p, q)| format!("{p}/{q}")).collect();
    v.join(" ")
}

pub struct Lcores {
    dps: Vec<Arc<Datapath>>,
    /// (port, NIC queue) -> index in `dps` of the lcore polling it.
    placed: BTreeMap<(u16, u16), usize>,
    /// Per lcore: how many of its queues a socket serves (its load).
    served: Vec<u32>,
    /// The back-off every lcore uses (`set idle`).
    idle: IdleMode,
}

impl Lcores {
    /// One datapath per lcore, in this order.
    pub fn new(lcores: &[u32]) -> std::io::Result<Lcores> {
        Ok(Lcores {
            dps: lcores
                .iter()
                .map(|&l| Datapath::new(l).map(Arc::new))
                .collect::<Result<_, _>>()?,
            placed: BTreeMap::new(),
            served: vec![0; lcores.len()],
            idle: IdleMode::default(),
        })
    }

    pub fn datapaths(&self) -> &[Arc<Datapath>] {
        &self.dps
    }

    /// The lcore polling NIC queue `queue` of `port`.
    pub fn lcore_of(&self, port: u16, queue: u16) -> Option<u32> {
        self.placed.get(&(port, queue)).map(|&i| self.dps[i].lcore)
    }

    /// The (port, queue)s lcore `lcore` polls.
    pub fn polled_by(&self, lcore: u32) -> Vec<(u16, u16)> {
        self.placed
            .iter()
            .filter(|(_, &i)| self.dps[i].lcore == lcore)
            .map(|(&pq, _)| pq)
            .collect()
    }

    /// Queues served by a socket, per lcore, in the order of
    /// [`Lcores::datapaths`].
    pub fn served(&self) -> &[u32] {
        &self.served
    }

    /// Where a socket's queue polled by lcore `now` goes: an lcore serving
    /// the fewest socket queues, `now` itself if it is one of them (no
    /// move), else the one polling fewest queues.
    fn least_loaded_for(&self, now: usize) -> usize {
        let fewest = self.served.iter().copied().min().unwrap_or(0);
        if self.served[now] == fewest {
            now
        } else {
            self.least_loaded()
        }
    }

    /// The least loaded lcore: fewest served queues, then fewest queues.
    fn least_loaded(&self) -> usize {
        let mut polled = vec![0u32; self.dps.len()];
        for &i in self.placed.values() {
            polled[i] += 1;
        }
        (0..self.dps.len())
            .min_by_key(|&i| (self.served[i], polled[i], i))
            .unwrap_or(0)
    }

    /// A new NIC queue, polled (its packets dropped) until a guest starts
    /// on it; only its lcore pauses.
    pub fn add_queue(&mut self, port: u16, queue: u16, stats: Arc<SocketStats>, intr: bool) {
        let i = self.least_loaded();
        let mut p = self.pause_indexes(&[i]);
        p.state_of(i)
            .queues
            .push(DpQueue::new(port, queue, stats, intr));
        drop(p);
        self.placed.insert((port, queue), i);
    }

    /// Moves the NIC queues a new socket serves to their lcores: guest
    /// queue k to `want[k % want.len()]`, or each to the least loaded
    /// lcore. No guest is on them yet. Returns the lcore of each queue.
    pub fn serve(&mut self, port: u16, queues: &[u16], want: &[u32]) -> Result<Vec<u32>, String> {
        let mut to = Vec::with_capacity(queues.len());
        for &l in want {
            if !self.dps.iter().any(|d| d.lcore == l) {
                return Err(format!(
                    "lcore {l} is not a datapath lcore (they are {})",
                    self.list()
                ));
            }
        }
        for (k, &q) in queues.iter().enumerate() {
            if !self.placed.contains_key(&(port, q)) {
                return Err(format!("port {port} has no queue {q}"));
            }
            let i = match want {
                [] => self.least_loaded_for(self.placed[&(port, q)]),
                w => {
                    let l = w[k % w.len()];
                    self.dps.iter().position(|d| d.lcore == l).expect("checked")
                }
            };
            self.served[i] += 1;
            self.move_queue(port, q, i);
            to.push(self.dps[i].lcore);
        }
        Ok(to)
    }

    /// The queues of a socket that goes: no longer a load.
    pub fn unserve(&mut self, port: u16, queues: &[u16]) {
        for q in queues {
            if let Some(&i) = self.placed.get(&(port, *q)) {
                self.served[i] = self.served[i].saturating_sub(1);
            }
        }
    }

    /// Moves an unattached NIC queue to lcore `to`, pausing the two.
    fn move_queue(&mut self, port: u16, queue: u16, to: usize) {
        let from = self.placed[&(port, queue)];
        if from == to {
            return;
        }
        let mut p = self.pause_indexes(&[from, to]);
        let dq = {
            let src = p.state_of(from);
            let k = src
                .queues
                .iter()
                .position(|d| (d.port, d.queue) == (port, queue))
                .expect("placed");
            src.queues.remove(k)
        };
        debug_assert!(dq.guest.is_none());
        p.state_of(to).queues.push(dq);
        drop(p);
        self.placed.insert((port, queue), to);
    }

    /// `1,2` or `1`: the datapath lcores.
    pub fn list(&self) -> String {
        let v: Vec<String> = self.dps.iter().map(|d| d.lcore.to_string()).collect();
        v.join(",")
    }

    /// Pauses the lcores polling any queue of `port` (what a port stop
    /// and start needs).
    pub fn pause_port(&self, port: u16) -> Paused<'_> {
        let idx: Vec<usize> = self
            .placed
            .iter()
            .filter(|((p, _), _)| *p == port)
            .map(|(_, &i)| i)
            .collect();
        self.pause_indexes(&idx)
    }

    /// Pauses the lcores polling these (port, queue)s.
    pub fn pause_queues(&self, queues: &[(u16, u16)]) -> Paused<'_> {
        let idx: Vec<usize> = queues
            .iter()
            .filter_map(|pq| self.placed.get(pq).copied())
            .collect();
        self.pause_indexes(&idx)
    }

    pub fn pause_all(&self) -> Paused<'_> {
        let idx: Vec<usize> = (0..self.dps.len()).collect();
        self.pause_indexes(&idx)
    }

    /// Asks every lcore first, so that they stop together, then waits for
    /// each. Control is the only thread that pauses: no lock order issue.
    fn pause_indexes(&self, idx: &[usize]) -> Paused<'_> {
        let mut idx = idx.to_vec();
        idx.sort_unstable();
        idx.dedup();
        for &i in &idx {
            self.dps[i].request_pause();
        }
        Paused {
            held: idx
                .into_iter()
                .map(|i| (i, &*self.dps[i], self.dps[i].held()))
                .collect(),
        }
    }

    /// `set idle`: every lcore's back-off.
    pub fn set_idle(&mut self, mode: IdleMode) {
        let mut p = self.pause_all();
        for st in p.states() {
            st.idle = mode;
        }
        drop(p);
        self.idle = mode;
    }

    /// The back-off in use (the same on every lcore).
    pub fn idle(&self) -> IdleMode {
        self.idle
    }

    /// Stops every loop (at shutdown, after their queues are gone).
    pub fn stop(&self) {
        for d in &self.dps {
            d.stop();
        }
    }
}

/// Some lcores' states while they are paused; they resume when it drops.
pub struct Paused<'a> {
    held: Vec<(usize, &'a Datapath, MutexGuard<'a, DpState>)>,
}

impl<'a> Paused<'a> {
    /// The polled queue (port, queue), if a paused lcore has it.
    pub fn queue(&mut self, port: u16, queue: u16) -> Option<&mut DpQueue> {
        self.held.iter_mut().find_map(|(_, _, st)| {
            st.queues
                .iter_mut()
                .find(|d| (d.port, d.queue) == (port, queue))
        })
    }

    pub fn states(&mut self) -> impl Iterator<Item = &mut DpState> + use<'_, 'a> {
        self.held.iter_mut().map(|(_, _, st)| &mut **st)
    }

    fn state_of(&mut self, i: usize) -> &mut DpState {
        let (_, _, st) = self
            .held
            .iter_mut()
            .find(|(j, _, _)| *j == i)
            .expect("paused");
        st
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        for (_, dp, st) in self.held.drain(..) {
            drop(st);
            dp.resume();
        }
    }
}
