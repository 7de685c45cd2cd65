//! The simulated path between the two endpoints and its faults.
//!
//! Invariants:
//! * every random draw comes from the link's own `StdRng`, in an order fixed by the order
//!   of packets, so a seed (and a hook) fully determines every packet's fate;
//! * a packet's fate is decided once, when it is sent: dropped (with a reason counted in
//!   [`LinkCounters`]), answered by an ICMP Packet Too Big, or delivered as one or more
//!   copies, each with its own delay and possibly one flipped bit;
//! * the bandwidth limit serializes packets per direction (`busy_until`), and its
//!   drop-tail queue never holds more than `queue_bytes` bytes.

use crate::wire::tcp::TcpRepr;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// The faults of one simulated path. All probabilities are per packet, per direction.
#[derive(Clone, Debug)]
pub struct Faults {
    pub loss: f64,
    pub dup: f64,
    /// Probability that a packet is held back an extra `U(0, reorder_by)` (reordering).
    pub reorder: f64,
    pub reorder_by: Duration,
    /// Propagation delay of every packet, plus `U(0, jitter)`.
    pub delay: Duration,
    pub jitter: Duration,
    /// Probability that one random bit of a delivered copy is flipped.
    pub corrupt: f64,
    /// Bottleneck rate in bytes per second (None: infinitely fast).
    pub bandwidth: Option<u64>,
    /// Drop-tail bound of the bottleneck queue, in bytes (with `bandwidth`).
    pub queue_bytes: usize,
    /// Periods `(start, length)` after the start of the run in which the link is down:
    /// everything sent or arriving then is lost.
    pub blackouts: Vec<(Duration, Duration)>,
    /// `(node, bytes)`: `node` vanishes (stops sending, receiving and running timers)
    /// right after its endpoint has been handed `bytes` bytes of TCP payload
    /// (retransmissions and duplicates included), before it can answer.
    pub silent: Option<(usize, usize)>,
    /// `(at, mtu)`: from `at` after the start, packets longer than `mtu` (IP header
    /// included) are dropped and answered by an ICMP Packet Too Big to their sender.
    pub mtu_drop: Option<(Duration, u16)>,
}

impl Faults {
    pub const NONE: Faults = Faults {
        loss: 0.0,
        dup: 0.0,
        reorder: 0.0,
        reorder_by: Duration::ZERO,
        delay: Duration::from_millis(5),
        jitter: Duration::ZERO,
        corrupt: 0.0,
        bandwidth: None,
        queue_bytes: 0,
        blackouts: Vec::new(),
        silent: None,
        mtu_drop: None,
    };
}

/// What happened on the link, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub hook_dropped: u64,
    pub queue_dropped: u64,
    pub blackout_dropped: u64,
    pub mtu_dropped: u64,
    pub ptb_delivered: u64,
    /// Copies delivered with a flipped bit, and how many of them the receiver rejected
    /// (parse/checksum failure). The two must be equal.
    pub corrupted: u64,
    pub rejected: u64,
    /// Packets that arrived at a vanished node.
    pub to_vanished: u64,
}

/// One packet as a scripted hook sees it.
pub struct PacketInfo<'a> {
    /// Sending node (0 or 1).
    pub from: usize,
    /// Index of this packet among those sent by `from`, from 0.
    pub index: u64,
    pub repr: &'a TcpRepr,
    pub payload_len: usize,
    /// Virtual time since the start of the run.
    pub elapsed: Duration,
}

/// A hook's decision about one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let the random faults decide.
    Pass,
    Drop,
    /// Deliver two copies (no random loss).
    Duplicate,
    /// Deliver after this much extra delay (no random loss).
    Delay(Duration),
}

/// A scripted scenario: decides per packet, before the random faults.
pub type Hook = Box<dyn FnMut(&PacketInfo) -> Verdict>;

/// The fate of one sent packet.
pub(super) enum Fate {
    Drop(&'static str),
    /// Too long for the path MTU: dropped, a Packet Too Big with this MTU goes back.
    TooBig(u16),
    /// Copies to deliver: `(delay from now, bit to flip)`.
    Deliver(Vec<(Duration, Option<usize>)>),
}

pub(super) struct Link {
    pub faults: Faults,
    rng: StdRng,
    start: Instant,
    busy_until: [Instant; 2],
    index: [u64; 2],
    pub counters: LinkCounters,
}

impl Link {
    pub fn new(faults: Faults, seed: u64, start: Instant) -> Link {
        Link {
            faults,
            rng: StdRng::seed_from_u64(seed),
            start,
            busy_until: [start; 2],
            index: [0; 2],
            counters: LinkCounters::default(),
        }
    }

    /// Index for the next packet from `from`.
    pub fn next_index(&mut self, from: usize) -> u64 {
        let i = self.index[from];
        self.index[from] += 1;
        i
    }

    /// The link is in a blackout at `now`.
    pub fn down(&self, now: Instant) -> bool {
        let t = now - self.start;
        self.faults.blackouts.iter().any(|&(s, l)| t >= s && t < s + l)
    }

    /// The path MTU at `now`, if limited.
    pub fn pmtu(&self, now: Instant) -> Option<u16> {
        self.faults.mtu_drop.filter(|&(at, _)| now - self.start >= at).map(|(_, m)| m)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen_bool(p.min(1.0))
    }

    fn upto(&mut self, d: Duration) -> Duration {
        if d.is_zero() {
            Duration::ZERO
        } else {
            d.mul_f64(self.rng.gen::<f64>())
        }
    }

    /// Decide the fate of a packet of `ip_len` bytes (IP header included, `tcp_len` of
    /// them TCP) sent by `from` at `now`, after the hook said `verdict`.
    pub fn decide(&mut self, now: Instant, from: usize, ip_len: usize, tcp_len: usize, verdict: Verdict) -> Fate {
        self.counters.sent += 1;
        if verdict == Verdict::Drop {
            self.counters.hook_dropped += 1;
            return Fate::Drop("HOOK-DROP");
        }
        if self.down(now) {
            self.counters.blackout_dropped += 1;
            return Fate::Drop("BLACKOUT");
        }
        if let Some(mtu) = self.pmtu(now).filter(|&m| ip_len > m as usize) {
            self.counters.mtu_dropped += 1;
            return Fate::TooBig(mtu);
        }
        let scripted = verdict != Verdict::Pass;
        if !scripted && self.chance(self.faults.loss) {
            self.counters.lost += 1;
            return Fate::Drop("LOST");
        }
        // The bottleneck: serialization at `bandwidth`, drop-tail beyond `queue_bytes`.
        let mut depart = Duration::ZERO;
        if let Some(rate) = self.faults.bandwidth {
            let busy = self.busy_until[from].max(now);
            let backlog = ((busy - now).as_secs_f64() * rate as f64) as usize;
            if backlog + ip_len > self.faults.queue_bytes {
                self.counters.queue_dropped += 1;
                return Fate::Drop("QUEUE-FULL");
            }
            self.busy_until[from] = busy + Duration::from_secs_f64(ip_len as f64 / rate as f64);
            depart = self.busy_until[from] - now;
        }
        let copies = match verdict {
            Verdict::Duplicate => 2,
            _ if self.chance(self.faults.dup) => 2,
            _ => 1,
        };
        if copies == 2 {
            self.counters.duplicated += 1;
        }
        let mut out = Vec::with_capacity(copies);
        for _ in 0..copies {
            let mut d = depart + self.faults.delay + self.upto(self.faults.jitter);
            if let Verdict::Delay(x) = verdict {
                d += x;
            }
            if self.chance(self.faults.reorder) {
                self.counters.reordered += 1;
                d += self.upto(self.faults.reorder_by);
            }
            let flip = self.chance(self.faults.corrupt).then(|| self.rng.gen_range(0..tcp_len * 8));
            out.push((d, flip));
        }
        Fate::Deliver(out)
    }
}
