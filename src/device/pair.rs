//! Two devices wired back to back in memory, for running two stacks without root.
//!
//! Each direction is a bounded channel of batches. A full channel drops the batch and counts
//! it (a link never blocks its sender: blocking here could close a cycle between two stacks'
//! actors). Each direction may carry a seeded [`FaultConfig`]: loss, duplication, delay with
//! jitter (which reorders), applied on the receiving side by a [`super::fault`] line, so the
//! schedule depends only on the seed and the order packets were sent.
//!
//! A [`SeverHandle`] makes a device's receive half fail with an error, as a real device's
//! read fails when it is removed (tests of a dead device).

use super::fault::{FaultSpec, FaultStats, Line};
use super::{DevRx, DevTx, Device, StopHandle};
use crate::buf::{Batch, Pool};
use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Makes the receive half of one [`PairDevice`] fail (`BrokenPipe`, "pair link severed")
/// at its next wake-up, which this handle also triggers.
#[derive(Clone)]
pub struct SeverHandle {
    severed: Arc<AtomicBool>,
    stop_tx: Sender<()>,
}

impl SeverHandle {
    pub fn sever(&self) {
        self.severed.store(true, Ordering::Release);
        let _ = self.stop_tx.try_send(());
    }
}

pub struct PairDevice {
    tx: Sender<Batch>,
    stop_tx: Sender<()>,
    stop_rx: Receiver<()>,
    severed: Arc<AtomicBool>,
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
    let dev = |tx, rx, fault, rx_stats, tx_stats| {
        let (stop_tx, stop_rx) = bounded(1);
        PairDevice { tx, stop_tx, stop_rx, severed: Default::default(), rx, mtu, fault, rx_stats, tx_stats }
    };
    let a = dev(tx_ab, rx_ba, b_to_a, st_ba.clone(), st_ab.clone());
    let b = dev(tx_ba, rx_ab, a_to_b, st_ab, st_ba);
    (a, b)
}

impl PairDevice {
    /// A handle that makes this device's receive half fail.
    pub fn sever_handle(&self) -> SeverHandle {
        SeverHandle { severed: self.severed.clone(), stop_tx: self.stop_tx.clone() }
    }
}

impl Device for PairDevice {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn split(self: Box<Self>) -> io::Result<(Box<dyn DevRx>, Box<dyn DevTx>)> {
        let (stop_tx, stop_rx) = (self.stop_tx, self.stop_rx);
        let (spec, stats) = (self.fault.spec(), self.rx_stats.faults.clone());
        let rx = PairRx {
            fault: (!spec.is_clean()).then(|| Line::new(spec, self.rx.clone(), stop_rx.clone(), stats)),
            rx: self.rx,
            stop_tx,
            stop_rx,
            severed: self.severed,
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
    severed: Arc<AtomicBool>,
}

impl PairRx {
    fn check_severed(&self) -> io::Result<()> {
        if self.severed.load(Ordering::Acquire) {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "pair link severed"));
        }
        Ok(())
    }
}

impl DevRx for PairRx {
    fn recv_batch(&mut self, pool: &Pool, out: &mut Batch, max: usize) -> io::Result<bool> {
        self.check_severed()?;
        let Some(f) = self.fault.as_mut() else {
            // Clean link: hand batches through as they are.
            let r = select! {
                recv(self.rx) -> b => match b {
                    Ok(b) => { out.extend(b); Ok(true) }
                    Err(_) => Ok(false),
                },
                recv(self.stop_rx) -> _ => Ok(false),
            };
            self.check_severed()?;
            return r;
        };
        let r = f.recv(pool, out, max);
        self.check_severed()?;
        Ok(r)
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
