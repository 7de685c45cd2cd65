//! Two devices wired back to back in memory, for running two stacks without root.
//!
//! Each direction is a bounded channel of batches. A full channel drops the batch and counts
//! it (a link never blocks its sender: blocking here could close a cycle between two stacks'
//! actors). Each direction may carry a seeded [`FaultConfig`]: loss, duplication, delay with
//! jitter (which reorders), applied on the receiving side by a [`super::fault`] line, so the
//! schedule depends only on the seed and the order packets were sent.

use super::fault::{FaultSpec, FaultStats, Line};
use super::{DevRx, DevTx, Device, StopHandle};
use crate::buf::{Batch, Pool};
use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    /// The same faults as a [`FaultSpec`] (no reordering or corruption beyond jitter's).
    pub fn spec(&self) -> FaultSpec {
        FaultSpec {
            seed: self.seed,
            drop: self.loss,
            dup: self.duplicate,
            delay: self.delay,
            jitter: self.jitter,
            ..FaultSpec::default()
        }
    }
}

/// Counters of one direction of a pair.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub packets: AtomicU64,
    pub dropped_full: AtomicU64,
    /// What the receiving side's faults did (loss is `faults.dropped`).
    pub faults: Arc<FaultStats>,
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

    fn split(self: Box<Self>) -> io::Result<(Box<dyn DevRx>, Box<dyn DevTx>)> {
        let (stop_tx, stop_rx) = bounded(1);
        let (spec, stats) = (self.fault.spec(), self.rx_stats.faults.clone());
        let rx = PairRx {
            fault: (!spec.is_clean()).then(|| Line::new(spec, self.rx.clone(), stop_rx.clone(), stats)),
            rx: self.rx,
            stop_tx,
            stop_rx,
        };
        let tx = PairTx { tx: self.tx, stats: self.tx_stats };
        Ok((Box::new(rx), Box::new(tx)))
    }
}

struct PairRx {
    rx: Receiver<Batch>,
    stop_tx: Sender<()>,
    stop_rx: Receiver<()>,
    /// The faulty line, reading `rx` and `stop_rx`, when the direction has faults.
    fault: Option<Line>,
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
        Ok(f.recv(pool, out, max))
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
