//! Two devices wired back to back in memory, for running two stacks without root.
//!
//! Each direction is a bounded channel of batches. A full channel drops the batch and counts
//! it (a link never blocks its sender: blocking here could close a cycle between two stacks'
//! actors). Each direction may carry a seeded [`FaultConfig`]: loss, duplication, delay with
//! jitter (which reorders), applied on the receiving side so the schedule depends only on
//! the seed and the order packets were sent.

use super::{DevRx, DevTx, Device, StopHandle};
use crate::buf::{Batch, Pool};
use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Batches that may wait in one direction of the link before it drops.
const LINK_QUEUE_BATCHES: usize = 1024;

/// Faults applied to packets travelling in one direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultConfig {
    pub seed: u64,
    /// Probability a packet is lost.
    pub loss: f64,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra uniform random delay in `[0, jitter)`; packets overtake each other.
    pub jitter: Duration,
}

impl FaultConfig {
    fn is_clean(&self) -> bool {
        self.loss == 0.0 && self.duplicate == 0.0 && self.delay.is_zero() && self.jitter.is_zero()
    }
}

/// Counters of one direction of a pair.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub packets: AtomicU64,
    pub dropped_full: AtomicU64,
    pub lost: AtomicU64,
    pub duplicated: AtomicU64,
}

pub struct PairDevice {
    tx: Sender<Batch>,
    rx: Receiver<Batch>,
    mtu: usize,
    fault: FaultConfig,
    /// Stats of the direction this device receives on.
    pub rx_stats: Arc<LinkStats>,
    tx_stats: Arc<LinkStats>,
}

/// Two connected devices. `a_to_b` faults apply to packets A sends, `b_to_a` to B's.
pub fn pair(mtu: usize, a_to_b: FaultConfig, b_to_a: FaultConfig) -> (PairDevice, PairDevice) {
    let (tx_ab, rx_ab) = bounded(LINK_QUEUE_BATCHES);
    let (tx_ba, rx_ba) = bounded(LINK_QUEUE_BATCHES);
    let st_ab = Arc::new(LinkStats::default());
    let st_ba = Arc::new(LinkStats::default());
    let a = PairDevice { tx: tx_ab, rx: rx_ba, mtu, fault: b_to_a, rx_stats: st_ba.clone(), tx_stats: st_ab.clone() };
    let b = PairDevice { tx: tx_ba, rx: rx_ab, mtu, fault: a_to_b, rx_stats: st_ab, tx_stats: st_ba };
    (a, b)
}

impl Device for PairDevice {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn split(self: Box<Self>) -> (Box<dyn DevRx>, Box<dyn DevTx>) {
        let (stop_tx, stop_rx) = bounded(1);
        let rx = PairRx {
            rx: self.rx,
            stop_tx,
            stop_rx,
            fault: if self.fault.is_clean() { None } else { Some(Faults::new(self.fault)) },
            stats: self.rx_stats,
        };
        let tx = PairTx { tx: self.tx, stats: self.tx_stats };
        (Box::new(rx), Box::new(tx))
    }
}

struct Faults {
    cfg: FaultConfig,
    rng: StdRng,
    /// Packets in flight, by (delivery time, arrival order).
    heap: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    order: u64,
}

impl Faults {
    fn new(cfg: FaultConfig) -> Faults {
        Faults { cfg, rng: StdRng::seed_from_u64(cfg.seed), heap: BinaryHeap::new(), order: 0 }
    }

    fn admit(&mut self, now: Instant, batch: Batch, pool: &Pool, stats: &LinkStats) {
        for p in batch {
            if self.rng.gen::<f64>() < self.cfg.loss {
                stats.lost.fetch_add(1, Ordering::Relaxed);
                pool.put(p);
                continue;
            }
            if self.rng.gen::<f64>() < self.cfg.duplicate {
                stats.duplicated.fetch_add(1, Ordering::Relaxed);
                let mut copy = pool.get();
                copy.extend_from_slice(&p);
                self.schedule(now, copy);
            }
            self.schedule(now, p);
        }
    }

    fn schedule(&mut self, now: Instant, p: Vec<u8>) {
        let jitter =
            if self.cfg.jitter.is_zero() { Duration::ZERO } else { self.cfg.jitter.mul_f64(self.rng.gen::<f64>()) };
        self.order += 1;
        self.heap.push(Reverse((now + self.cfg.delay + jitter, self.order, p)));
    }

    fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    fn release(&mut self, now: Instant, out: &mut Batch, max: usize) {
        while out.len() < max {
            match self.heap.peek() {
                Some(Reverse((t, _, _))) if *t <= now => {
                    if let Some(Reverse((_, _, p))) = self.heap.pop() {
                        out.push(p);
                    }
                }
                _ => break,
            }
        }
    }
}

struct PairRx {
    rx: Receiver<Batch>,
    stop_tx: Sender<()>,
    stop_rx: Receiver<()>,
    fault: Option<Faults>,
    stats: Arc<LinkStats>,
}

impl DevRx for PairRx {
    fn recv_batch(&mut self, pool: &Pool, out: &mut Batch, max: usize) -> io::Result<bool> {
        let Some(f) = self.fault.as_mut() else {
            // Clean link: hand batches through as they are.
            return select! {
                recv(self.rx) -> b => match b {
                    Ok(b) => { out.extend(b); Ok(true) }
                    Err(_) => Ok(false),
                },
                recv(self.stop_rx) -> _ => Ok(false),
            };
        };
        loop {
            let now = Instant::now();
            f.release(now, out, max);
            if !out.is_empty() {
                return Ok(true);
            }
            let timeout = f.next_due().map(|t| t.saturating_duration_since(now));
            let timer = match timeout {
                Some(d) => crossbeam_channel::after(d),
                None => crossbeam_channel::never(),
            };
            select! {
                recv(self.rx) -> b => match b {
                    Ok(b) => f.admit(Instant::now(), b, pool, &self.stats),
                    Err(_) => return Ok(false),
                },
                recv(self.stop_rx) -> _ => return Ok(false),
                recv(timer) -> _ => {}
            }
        }
    }

    fn stop_handle(&self) -> StopHandle {
        let tx = self.stop_tx.clone();
        Arc::new(move || {
            let _ = tx.try_send(());
        })
    }
}

struct PairTx {
    tx: Sender<Batch>,
    stats: Arc<LinkStats>,
}

impl DevTx for PairTx {
    fn send_batch(&mut self, batch: &mut Batch, pool: &Pool) -> usize {
        let n = batch.len();
        self.stats.packets.fetch_add(n as u64, Ordering::Relaxed);
        match self.tx.try_send(std::mem::take(batch)) {
            Ok(()) => 0,
            Err(TrySendError::Full(mut b)) | Err(TrySendError::Disconnected(mut b)) => {
                self.stats.dropped_full.fetch_add(n as u64, Ordering::Relaxed);
                pool.put_batch(&mut b);
                n
            }
        }
    }
}
