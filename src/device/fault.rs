//! Seeded link faults: the schedule and delay line shared by [`super::pair`], and
//! [`FaultDevice`], a wrapper that puts them on any [`Device`] (the bins' `--drop --dup
//! --reorder --corrupt --delay-ms --jitter-ms --seed`).
//!
//! A direction of a faulty link is a `Line`: batches arrive on a bounded channel, each
//! packet gets a [`Verdict`] from the seeded [`Schedule`], survivors wait in a timed queue
//! and come out when due. [`FaultDevice`] runs one line per faulty direction: towards the
//! stack a pump thread feeds the line from the real device and dev-rx reads the line; from
//! the stack dev-tx feeds the line and a `fault-tx` thread writes what comes out. The line
//! waits on its queue's next deadline, so a delayed packet is delivered on time even when
//! nothing follows it.
//!
//! Invariants:
//! * The schedule draws the same number of random values for every packet, so which packets
//!   are hit depends only on the seed and the packet's position in its direction.
//! * Memory is bounded: a line's inbox holds at most `LINE_DEPTH` (or `PUMP_DEPTH`) batches
//!   and its queue at most [`FaultSpec::max_packets`] packets and [`FaultSpec::max_bytes`] bytes; beyond that
//!   a packet is dropped and counted (`queue_full`), as a full router queue would.
//! * Corruption flips exactly one bit, inside bytes an Internet checksum covers (the IPv4
//!   header; a TCP, UDP or ICMP message). A single-bit error always changes a ones'-
//!   complement sum (RFC 1071 §2(B)), so the receiver drops every corrupted packet. A packet
//!   with no such bytes is passed untouched and counted (`corrupt_skipped`).
//! * Packets are moved, copied or dropped whole, so a device's trailers survive. Corruption
//!   is refused on a device with trailers (offload): the kernel completes partial checksums
//!   of super-segments after we touch them, so a flipped bit there would not be caught.
//! * No faults, no wrapper: callers insert a line only when [`FaultSpec::is_clean`] is false.

use super::{DevRx, DevTx, Device, StopHandle};
use crate::buf::{Batch, Pool};
use crossbeam_channel::{bounded, never, select, Receiver, Sender, TrySendError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use slog::{error, info, Logger};
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How much longer than its neighbours a reordered packet is held: packets sent within this
/// time after it overtake it.
pub const REORDER_HOLD: Duration = Duration::from_millis(1);
/// Default bound of a line's delay queue, in packets.
pub const DEFAULT_MAX_PACKETS: usize = 16_384;
/// Default bound of a line's delay queue, in bytes.
pub const DEFAULT_MAX_BYTES: usize = 32 << 20;
/// Batches that may wait in a line's inbox from dev-tx (a full inbox drops the batch).
const LINE_DEPTH: usize = 64;
/// Batches the receive pump may read ahead of the line (it then blocks, as dev-rx does):
/// with offload a batch can hold 64 super-segments of 64 KiB, so keep this small.
const PUMP_DEPTH: usize = 8;
/// Most packets the `fault-tx` thread writes per device call.
const TX_BATCH: usize = 64;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

/// Faults applied to one direction of a link. Probabilities are in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultSpec {
    pub seed: u64,
    /// A packet is lost.
    pub drop: f64,
    /// A packet is delivered twice.
    pub dup: f64,
    /// A packet is held back [`REORDER_HOLD`] so later ones overtake it.
    pub reorder: f64,
    /// One bit of a packet is flipped where a checksum covers it.
    pub corrupt: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra uniform random delay in `[0, jitter)`; packets may overtake each other.
    pub jitter: Duration,
    /// Bound of the delay queue in packets; a packet beyond it is dropped (`queue_full`).
    pub max_packets: usize,
    /// Bound of the delay queue in bytes.
    pub max_bytes: usize,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            seed: 0,
            drop: 0.0,
            dup: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            max_packets: DEFAULT_MAX_PACKETS,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl FaultSpec {
    /// True when the spec changes nothing: no line is needed.
    pub fn is_clean(&self) -> bool {
        self.drop == 0.0
            && self.dup == 0.0
            && self.reorder == 0.0
            && self.corrupt == 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
    }

    /// Every probability in `0..=1`, and room for at least one packet in the queue.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [("drop", self.drop), ("dup", self.dup), ("reorder", self.reorder), ("corrupt", self.corrupt)]
        {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} probability must be between 0 and 1, got {p}"));
            }
        }
        if self.max_packets == 0 || self.max_bytes == 0 {
            return Err("the fault delay queue needs room for at least one packet".into());
        }
        Ok(())
    }
}

macro_rules! fault_stats {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Counters of one faulty direction (relaxed atomics: one writer, any reader).
        #[derive(Debug, Default)]
        pub struct FaultStats { $($(#[$doc])* pub $name: AtomicU64,)* }
        impl FaultStats {
            /// Name/value pairs, for printing.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Relaxed)),)*]
            }
        }
    };
}

fault_stats!(
    /// Packets that entered the line.
    packets,
    /// Lost on purpose.
    dropped,
    /// Delivered twice.
    duplicated,
    /// Held back so that later packets overtook them.
    reordered,
    /// One bit flipped.
    corrupted,
    /// Chosen for corruption but with no checksum-covered byte: passed untouched.
    corrupt_skipped,
    /// Waited a nonzero delay (plus jitter).
    delayed,
    /// Dropped because the delay queue or the line's inbox was full.
    queue_full,
    /// Dropped by the real device when the line handed them on.
    device_dropped,
);

/// What happens to one packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub drop: bool,
    pub dup: bool,
    pub reorder: bool,
    /// Flip one bit; the value picks which (see [`corrupt_one_bit`]).
    pub corrupt: Option<u64>,
    /// Delay of the packet (delay plus its jitter).
    pub delay: Duration,
    /// Delay of the duplicate, if any (its own jitter).
    pub dup_delay: Duration,
}

/// The seeded source of verdicts: pure, no clock.
pub struct Schedule {
    spec: FaultSpec,
    rng: StdRng,
}

impl Schedule {
    pub fn new(spec: FaultSpec) -> Schedule {
        Schedule { spec, rng: StdRng::seed_from_u64(spec.seed) }
    }

    /// The verdict for the next packet. Always draws seven values, whatever it decides.
    pub fn next_verdict(&mut self) -> Verdict {
        let s = &self.spec;
        let r = &mut self.rng;
        let drop = r.gen::<f64>() < s.drop;
        let dup = r.gen::<f64>() < s.dup;
        let reorder = r.gen::<f64>() < s.reorder;
        let corrupt = r.gen::<f64>() < s.corrupt;
        let bit: u64 = r.gen();
        let j1: f64 = r.gen();
        let j2: f64 = r.gen();
        Verdict {
            drop,
            dup,
            reorder,
            corrupt: corrupt.then_some(bit),
            delay: s.delay + s.jitter.mul_f64(j1),
            dup_delay: s.delay + s.jitter.mul_f64(j2),
        }
    }
}

/// Byte ranges of `pkt` that an Internet checksum covers and whose single-bit flip cannot turn
/// the packet into one with "no checksum": the IPv4 header (header checksum); the whole
/// message of an unfragmented TCP, ICMP or ICMPv6 packet, or UDP with a checksum (minus
/// IPv4 UDP's checksum field, which a flip could turn into 0, "none", RFC 768). IPv6 with
/// extension headers is left alone: its header has no checksum.
fn covered_ranges(pkt: &[u8]) -> [std::ops::Range<usize>; 3] {
    let none = [0..0, 0..0, 0..0];
    match pkt.first().map(|b| b >> 4) {
        Some(4) if pkt.len() >= 20 => {
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]])).min(pkt.len());
            if ihl < 20 || ihl > total {
                return none;
            }
            // RFC 791 §3.1: MF flag or a nonzero fragment offset.
            let fragment = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0;
            let (proto, body) = (pkt[9], ihl..total);
            match proto {
                _ if fragment => [0..ihl, 0..0, 0..0],
                PROTO_TCP | PROTO_ICMP => [0..ihl, body, 0..0],
                PROTO_UDP if body.len() >= 8 && pkt[ihl + 6..ihl + 8] != [0, 0] => {
                    [0..ihl, ihl..ihl + 6, ihl + 8..total]
                }
                _ => [0..ihl, 0..0, 0..0],
            }
        }
        Some(6) if pkt.len() >= 40 => {
            let total = (40 + usize::from(u16::from_be_bytes([pkt[4], pkt[5]]))).min(pkt.len());
            match pkt[6] {
                // RFC 8200 §8.1: the upper-layer checksum is mandatory, covering the message.
                PROTO_TCP | PROTO_UDP | PROTO_ICMPV6 => [40..total, 0..0, 0..0],
                _ => none,
            }
        }
        _ => none,
    }
}

/// Flip bit number `r mod n` of the `n` checksum-covered bits of `pkt`. Returns false (and
/// leaves `pkt` untouched) when no bit is covered.
pub fn corrupt_one_bit(pkt: &mut [u8], r: u64) -> bool {
    let ranges = covered_ranges(pkt);
    let bits: u64 = ranges.iter().map(|x| x.len() as u64 * 8).sum();
    if bits == 0 {
        return false;
    }
    let mut k = r % bits;
    for x in ranges {
        let n = x.len() as u64 * 8;
        if k < n {
            pkt[x.start + (k / 8) as usize] ^= 1 << (k % 8);
            return true;
        }
        k -= n;
    }
    false
}

/// A packet waiting in the delay queue, ordered by (due, arrival).
struct Held {
    due: Instant,
    order: u64,
    pkt: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.order) == (o.due, o.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (self.due, self.order).cmp(&(o.due, o.order))
    }
}

/// One faulty direction: inbox, schedule, bounded delay queue.
pub(crate) struct Line {
    inbox: Receiver<Batch>,
    stop: Receiver<()>,
    sched: Schedule,
    spec: FaultSpec,
    queue: BinaryHeap<Reverse<Held>>,
    queued_bytes: usize,
    order: u64,
    stats: Arc<FaultStats>,
}

impl Line {
    pub(crate) fn new(spec: FaultSpec, inbox: Receiver<Batch>, stop: Receiver<()>, stats: Arc<FaultStats>) -> Line {
        Line {
            inbox,
            stop,
            sched: Schedule::new(spec),
            spec,
            queue: BinaryHeap::with_capacity(spec.max_packets.min(1024)),
            queued_bytes: 0,
            order: 0,
            stats,
        }
    }

    /// Apply a verdict to each packet of `batch` and queue the survivors.
    fn admit(&mut self, now: Instant, batch: Batch, pool: &Pool) {
        let st = self.stats.clone();
        for mut p in batch {
            st.packets.fetch_add(1, Relaxed);
            let v = self.sched.next_verdict();
            if v.drop {
                st.dropped.fetch_add(1, Relaxed);
                pool.put(p);
                continue;
            }
            if let Some(r) = v.corrupt {
                let c = if corrupt_one_bit(&mut p, r) { &st.corrupted } else { &st.corrupt_skipped };
                c.fetch_add(1, Relaxed);
            }
            let hold = if v.reorder {
                st.reordered.fetch_add(1, Relaxed);
                REORDER_HOLD
            } else {
                Duration::ZERO
            };
            if !v.delay.is_zero() {
                st.delayed.fetch_add(1, Relaxed);
            }
            if v.dup {
                st.duplicated.fetch_add(1, Relaxed);
                let mut copy = if p.len() > pool.buf_size() { pool.get_large() } else { pool.get() };
                copy.extend_from_slice(&p);
                self.hold(now + v.delay + hold, p, pool);
                self.hold(now + v.dup_delay + hold, copy, pool);
            } else {
                self.hold(now + v.delay + hold, p, pool);
            }
        }
    }

    /// Queue `pkt` until `due`, or drop and count it when the queue is full.
    fn hold(&mut self, due: Instant, pkt: Vec<u8>, pool: &Pool) {
        if self.queue.len() >= self.spec.max_packets || self.queued_bytes + pkt.len() > self.spec.max_bytes {
            self.stats.queue_full.fetch_add(1, Relaxed);
            pool.put(pkt);
            return;
        }
        self.order += 1;
        self.queued_bytes += pkt.len();
        self.queue.push(Reverse(Held { due, order: self.order, pkt }));
    }

    /// Append packets due by `now` to `out`, at most `max`; returns how many.
    fn release(&mut self, now: Instant, out: &mut Batch, max: usize) -> usize {
        let start = out.len();
        while out.len() - start < max && self.queue.peek().is_some_and(|h| h.0.due <= now) {
            if let Some(Reverse(h)) = self.queue.pop() {
                self.queued_bytes -= h.pkt.len();
                out.push(h.pkt);
            }
        }
        out.len() - start
    }

    /// Block until packets are due, then append up to `max` of them to `out`. Returns false
    /// when stopped or when the inbox's senders are gone (packets still queued are freed).
    pub(crate) fn recv(&mut self, pool: &Pool, out: &mut Batch, max: usize) -> bool {
        loop {
            let now = Instant::now();
            if self.release(now, out, max) > 0 {
                return true;
            }
            let wait = self.queue.peek().map(|h| h.0.due.saturating_duration_since(now));
            let got = match wait {
                Some(d) => select! {
                    recv(self.inbox) -> b => Some(b),
                    recv(self.stop) -> _ => return false,
                    default(d) => None,
                },
                None => select! {
                    recv(self.inbox) -> b => Some(b),
                    recv(self.stop) -> _ => return false,
                },
            };
            match got {
                Some(Ok(b)) => self.admit(Instant::now(), b, pool),
                Some(Err(_)) => {
                    self.close(pool);
                    return false;
                }
                None => {}
            }
        }
    }

    /// Stop listening (senders blocked on the inbox get an error) and free queued packets.
    fn close(&mut self, pool: &Pool) {
        self.inbox = never();
        while let Some(Reverse(h)) = self.queue.pop() {
            pool.put(h.pkt);
        }
        self.queued_bytes = 0;
    }
}

/// Counters of both directions of a [`FaultDevice`].
#[derive(Clone, Default)]
pub struct FaultCounters {
    /// Towards the stack (what the device receives).
    pub rx: Arc<FaultStats>,
    /// From the stack (what the device transmits).
    pub tx: Arc<FaultStats>,
}

/// Logs both directions' totals when the last half of a [`FaultDevice`] is gone.
struct Report {
    counters: FaultCounters,
    log: Logger,
}

impl Drop for Report {
    fn drop(&mut self) {
        let (rx, tx) = (self.counters.rx.snapshot(), self.counters.tx.snapshot());
        let fmt = |s: Vec<(&str, u64)>| s.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        info!(self.log, "fault injection totals"; "rx" => fmt(rx), "tx" => fmt(tx));
    }
}

/// A [`Device`] whose packets pass through seeded faults on the way in (`rx`), out (`tx`),
/// or both. A direction given `None` (or a clean spec) is not touched at all.
pub struct FaultDevice {
    inner: Box<dyn Device>,
    rx: Option<FaultSpec>,
    tx: Option<FaultSpec>,
    counters: FaultCounters,
    log: Logger,
}

impl FaultDevice {
    /// Wrap `inner`. Fails with `InvalidInput` on a bad spec, or on corruption of a device
    /// with trailers (offload), where it could not be caught.
    pub fn new(
        inner: Box<dyn Device>,
        rx: Option<FaultSpec>,
        tx: Option<FaultSpec>,
        log: Logger,
    ) -> io::Result<FaultDevice> {
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        for s in rx.iter().chain(tx.iter()) {
            s.validate().map_err(bad)?;
            if s.corrupt > 0.0 && (inner.rx_trailer() || inner.tx_trailer()) {
                return Err(bad("--corrupt cannot be used with --offload: the kernel completes the \
                                checksums of offloaded super-segments after the flip, so it would \
                                go undetected"
                    .into()));
            }
        }
        let keep = |s: Option<FaultSpec>| s.filter(|s| !s.is_clean());
        Ok(FaultDevice { inner, rx: keep(rx), tx: keep(tx), counters: FaultCounters::default(), log })
    }

    pub fn counters(&self) -> FaultCounters {
        self.counters.clone()
    }
}

impl Device for FaultDevice {
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn rx_trailer(&self) -> bool {
        self.inner.rx_trailer()
    }

    fn tx_trailer(&self) -> bool {
        self.inner.tx_trailer()
    }

    fn medium(&self) -> super::Medium {
        self.inner.medium()
    }

    fn split(self: Box<Self>) -> io::Result<(Box<dyn DevRx>, Box<dyn DevTx>)> {
        let report = Arc::new(Report { counters: self.counters.clone(), log: self.log.clone() });
        let (rx, tx) = self.inner.split()?;
        let rx: Box<dyn DevRx> = match self.rx {
            Some(spec) => Box::new(FaultRx::new(rx, spec, self.counters.rx.clone(), report.clone(), self.log.clone())),
            None => rx,
        };
        let tx: Box<dyn DevTx> = match self.tx {
            Some(spec) => Box::new(FaultTx {
                inner: Some(tx),
                spec,
                stats: self.counters.tx,
                outbox: None,
                worker: None,
                _report: report,
                log: self.log,
            }),
            None => tx,
        };
        Ok((rx, tx))
    }
}

/// Receive half: a pump thread reads the real device into the line; dev-rx reads the line.
struct FaultRx {
    /// The real receive half, until the pump takes it on the first call.
    inner: Option<Box<dyn DevRx>>,
    inner_stop: StopHandle,
    pump_tx: Option<Sender<Batch>>,
    pump: Option<JoinHandle<()>>,
    line: Line,
    stop_tx: Sender<()>,
    _report: Arc<Report>,
    log: Logger,
}

impl FaultRx {
    fn new(inner: Box<dyn DevRx>, spec: FaultSpec, stats: Arc<FaultStats>, report: Arc<Report>, log: Logger) -> Self {
        let (pump_tx, inbox) = bounded(PUMP_DEPTH);
        let (stop_tx, stop_rx) = bounded(1);
        FaultRx {
            inner_stop: inner.stop_handle(),
            inner: Some(inner),
            pump_tx: Some(pump_tx),
            pump: None,
            line: Line::new(spec, inbox, stop_rx, stats),
            stop_tx,
            _report: report,
            log,
        }
    }

    fn start_pump(&mut self, pool: &Pool, max: usize) -> io::Result<()> {
        let (Some(mut dev), Some(tx)) = (self.inner.take(), self.pump_tx.take()) else {
            return Ok(());
        };
        let (pool, log) = (pool.clone(), self.log.clone());
        let h = std::thread::Builder::new().name("fault-rx".into()).spawn(move || loop {
            let mut b: Batch = Vec::with_capacity(max);
            match dev.recv_batch(&pool, &mut b, max) {
                Ok(true) => {
                    if tx.send(b).is_err() {
                        return;
                    }
                }
                Ok(false) => return,
                Err(e) => {
                    error!(log, "device read failed; fault-rx stops"; "error" => %e);
                    return;
                }
            }
        })?;
        self.pump = Some(h);
        Ok(())
    }
}

impl DevRx for FaultRx {
    fn recv_batch(&mut self, pool: &Pool, out: &mut Batch, max: usize) -> io::Result<bool> {
        self.start_pump(pool, max)?;
        Ok(self.line.recv(pool, out, max))
    }

    fn stop_handle(&self) -> StopHandle {
        let (tx, inner) = (self.stop_tx.clone(), self.inner_stop.clone());
        Arc::new(move || {
            inner();
            let _ = tx.try_send(());
        })
    }
}

impl Drop for FaultRx {
    fn drop(&mut self) {
        (self.inner_stop)();
        // Unblock a pump waiting on a full inbox, then wait for it.
        self.line.inbox = never();
        if let Some(h) = self.pump.take() {
            let _ = h.join();
        }
    }
}

/// Transmit half: dev-tx feeds the line; the `fault-tx` thread writes what comes out.
struct FaultTx {
    /// The real transmit half, until the worker takes it on the first call.
    inner: Option<Box<dyn DevTx>>,
    spec: FaultSpec,
    stats: Arc<FaultStats>,
    outbox: Option<Sender<Batch>>,
    worker: Option<JoinHandle<()>>,
    _report: Arc<Report>,
    log: Logger,
}

impl FaultTx {
    fn start_worker(&mut self, pool: &Pool) {
        let Some(mut dev) = self.inner.take() else { return };
        let (tx, inbox) = bounded(LINE_DEPTH);
        let mut line = Line::new(self.spec, inbox, never(), self.stats.clone());
        let (pool, stats) = (pool.clone(), self.stats.clone());
        let r = std::thread::Builder::new().name("fault-tx".into()).spawn(move || {
            let mut b: Batch = Vec::with_capacity(TX_BATCH);
            while line.recv(&pool, &mut b, TX_BATCH) {
                let d = dev.send_batch(&mut b, &pool);
                stats.device_dropped.fetch_add(d as u64, Relaxed);
            }
        });
        match r {
            Ok(h) => {
                self.worker = Some(h);
                self.outbox = Some(tx);
            }
            // Without its thread the line cannot run: every packet is dropped (and counted).
            Err(e) => error!(self.log, "cannot start the fault-tx thread; transmitting nothing"; "error" => %e),
        }
    }
}

impl DevTx for FaultTx {
    fn send_batch(&mut self, batch: &mut Batch, pool: &Pool) -> usize {
        self.start_worker(pool);
        let n = batch.len();
        let Some(outbox) = &self.outbox else {
            pool.put_batch(batch);
            return n;
        };
        match outbox.try_send(std::mem::take(batch)) {
            Ok(()) => 0,
            Err(TrySendError::Full(mut b)) | Err(TrySendError::Disconnected(mut b)) => {
                self.stats.queue_full.fetch_add(n as u64, Relaxed);
                pool.put_batch(&mut b);
                n
            }
        }
    }
}

impl Drop for FaultTx {
    fn drop(&mut self) {
        // The worker's line sees its inbox disconnect and returns.
        self.outbox = None;
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests;
