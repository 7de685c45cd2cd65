//! Deterministic simulation: two endpoints joined by a faulty link ([`link`]), driven by a
//! virtual clock on one thread. Every segment is serialized with `TcpRepr::emit` and
//! parsed back (checksum included), so the wire layer is exercised too.
//!
//! Determinism: the endpoints' ISN keys and epoch, the link's random draws and the
//! application model all follow from the seed and the virtual clock; timers fire in
//! `ConnId` order and packets due together are delivered in send order. The same seed
//! therefore produces the same packets at the same virtual times — [`Report::packet_hash`]
//! (SHA-256 over every packet sent and delivered, with its time) proves it.
//!
//! Invariants checked by [`Sim::run`] (a violation is an `Err` naming the seed):
//! * received bytes are always a prefix of the peer's data (checked on every `Data`
//!   event: each byte delivered once, in order); without a silent peer both streams end
//!   complete (length and SHA-256) with no error, with a silent peer the survivor's app
//!   gets an error;
//! * no node sends data past the right edge of the window its peer advertised (the largest
//!   `SEG.ACK + SEG.WND` the peer ever sent, its window scale applied), except the one byte
//!   of a zero-window probe at that edge (RFC 9293 §3.8.6.1);
//! * every corrupted packet is rejected by the receiver's parse (a counted drop) and no
//!   intact packet is;
//! * the run ends with each live end closed or in TIME-WAIT (or, when the handshake never
//!   completed at the listener, the connecting app with `TimedOut` because no SYN-ACK
//!   reached it, or `ConnectionReset` because none of its ACKs reached the half-open entry
//!   before it expired, and nothing delivered: `Sim::handshake_failed`); after TIME-WAIT
//!   no TCB, timer, event, pending segment or in-flight packet is left;
//! * no livelock: the virtual clock keeps moving, and nothing hangs past the time limit.

mod link;
mod seeds;
mod tests;

pub use link::{Faults, Hook, LinkCounters, PacketInfo, Verdict};

use super::*;
use crate::wire::tcp::TcpRepr;
use link::{Fate, Link};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Steps at one virtual instant before the run is declared livelocked.
const MAX_STEPS_PER_INSTANT: u32 = 10_000;
/// transmit/app rounds in one settle before it is declared livelocked.
const MAX_SETTLE_ROUNDS: u32 = 10_000;

/// Something on the wire towards node `to`.
enum Wire {
    Tcp {
        src: IpAddr,
        dst: IpAddr,
        bytes: Vec<u8>,
        corrupted: bool,
    },
    /// ICMP Packet Too Big quoting a segment `local -> remote` with sequence number `seq`.
    TooBig {
        local: SocketAddr,
        remote: SocketAddr,
        seq: u32,
        mtu: u16,
    },
}

struct InFlight {
    at: Instant,
    order: u64,
    to: usize,
    what: Wire,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    /// Reversed: `BinaryHeap` pops the earliest `(at, order)` first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.order).cmp(&(self.at, self.order))
    }
}

/// One application stream: what it has written and read.
#[derive(Default)]
struct App {
    conn: Option<ConnId>,
    written: usize,
    credit: usize,
    shut: bool,
    received: Option<Sha256>,
    received_len: usize,
    eof: bool,
    closed_sent: bool,
    closed: bool,
    errors: Vec<ErrorKind>,
    connected: bool,
    /// Slow reader: consumed bytes are credited back only after this delay.
    read_delay: Option<Duration>,
    pending_credit: VecDeque<(Instant, usize)>,
}

struct Node {
    ep: Endpoint,
    ip: IpAddr,
    timers: BTreeMap<ConnId, Instant>,
    app: App,
    /// Silent peer: this node stopped (no input, output or timers).
    vanished: bool,
}

/// The outcome of a successful run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Virtual time until both ends were closed or in TIME-WAIT.
    pub elapsed: Duration,
    /// SHA-256 over every packet sent and delivered with its virtual time.
    pub packet_hash: [u8; 32],
    pub link: LinkCounters,
    pub stats: [TcpStats; 2],
    /// Errors reported to each app.
    pub errors: [Vec<ErrorKind>; 2],
}

pub struct Sim {
    now: Instant,
    start: Instant,
    seed: u64,
    keys: [[u8; 16]; 2],
    nodes: [Node; 2],
    data: [Vec<u8>; 2],
    wire: BinaryHeap<InFlight>,
    next_order: u64,
    /// TCP payload bytes handed to each endpoint (retransmissions and copies included).
    rx_payload: [usize; 2],
    /// Per node: the window scale its SYN offered, and the largest right edge it advertised.
    ws_offer: [Option<u8>; 2],
    right_edge: [Option<u32>; 2],
    /// A SYN-ACK reached node 0 (the connecting side): its connect can no longer time out
    /// without a defect (`Sim::handshake_failed`).
    synack_delivered: bool,
    /// A segment with ACK (no SYN, no RST) reached node 1 while it held a TCB for the
    /// connection (half-open or later): the listener can no longer let the handshake
    /// expire without a defect (`Sim::handshake_failed`).
    ack_reached_listener: bool,
    link: Link,
    hook: Option<Hook>,
    trace: bool,
    hasher: Sha256,
    fail: Option<String>,
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut r = StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    r.fill(&mut v[..]);
    v
}

/// The ephemeral port an endpoint with `key` uses for its first connect from `local` to
/// `remote` (as `Endpoint::new` keys its `PortPicker`): needed to aim a simultaneous open.
fn first_port(key: [u8; 16], local: IpAddr, remote: IpAddr) -> u16 {
    crate::proto::ports::PortPicker::first_for_connect(u128::from_be_bytes(key), local, remote)
}

impl Sim {
    /// Two IPv4 endpoints (10.0.0.1, 10.0.0.2) with ISN keys `[1; 16]` and `[2; 16]`.
    pub fn new(cfg_a: TcpConfig, cfg_b: TcpConfig, faults: Faults, seed: u64) -> Sim {
        Sim::with(cfg_a, cfg_b, faults, seed, [[1; 16], [2; 16]], false)
    }

    /// Full control: ISN keys and the address family.
    pub fn with(cfg_a: TcpConfig, cfg_b: TcpConfig, faults: Faults, seed: u64, keys: [[u8; 16]; 2], v6: bool) -> Sim {
        let now = Instant::now();
        let ips: [IpAddr; 2] = if v6 {
            ["fd00::1".parse().unwrap(), "fd00::2".parse().unwrap()]
        } else {
            [Ipv4Addr::new(10, 0, 0, 1).into(), Ipv4Addr::new(10, 0, 0, 2).into()]
        };
        let mk = |cfg: TcpConfig, i: usize| Node {
            ep: Endpoint::new(cfg, keys[i], now),
            ip: ips[i],
            timers: BTreeMap::new(),
            app: App::default(),
            vanished: false,
        };
        Sim {
            now,
            start: now,
            seed,
            keys,
            nodes: [mk(cfg_a, 0), mk(cfg_b, 1)],
            data: [Vec::new(), Vec::new()],
            wire: BinaryHeap::new(),
            next_order: 0,
            rx_payload: [0; 2],
            ws_offer: [None; 2],
            right_edge: [None; 2],
            synack_delivered: false,
            ack_reached_listener: false,
            link: Link::new(faults, seed, now),
            hook: None,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            hasher: Sha256::new(),
            fail: None,
        }
    }

    /// Script the link: `hook` sees every packet before the random faults.
    pub fn set_hook(&mut self, hook: Hook) {
        self.hook = Some(hook);
    }

    /// Node `i` reads slowly: delivered bytes are credited back after `d`.
    pub fn slow_reader(&mut self, i: usize, d: Duration) {
        self.nodes[i].app.read_delay = Some(d);
    }

    pub fn stats(&self, i: usize) -> TcpStats {
        self.nodes[i].ep.stats()
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn fail(&mut self, msg: String) {
        if self.fail.is_none() {
            self.fail = Some(msg);
        }
    }

    fn hash_packet(&mut self, tag: u8, node: usize, bytes: &[u8]) {
        let t = self.elapsed().as_nanos() as u64;
        self.hasher.update([tag, node as u8]);
        self.hasher.update(t.to_be_bytes());
        self.hasher.update((bytes.len() as u32).to_be_bytes());
        self.hasher.update(bytes);
    }

    fn push(&mut self, after: Duration, to: usize, what: Wire) {
        self.next_order += 1;
        self.wire.push(InFlight { at: self.now + after, order: self.next_order, to, what });
    }

    /// Drain every node's segments onto the link; true if any was sent.
    fn transmit(&mut self) -> bool {
        let mut any = false;
        for i in 0..2 {
            if self.nodes[i].vanished {
                continue;
            }
            let mut out: Vec<(IpAddr, IpAddr, Vec<u8>)> = Vec::new();
            self.nodes[i].ep.poll_transmit(self.now, &mut |s, d, r: &TcpRepr, p: &[u8]| {
                let mut buf = vec![0u8; r.header_len() + p.len()];
                r.emit(&mut buf, p, s, d);
                out.push((s, d, buf));
            });
            for (s, d, bytes) in out {
                any = true;
                self.send(i, s, d, bytes);
            }
            let node = &mut self.nodes[i];
            while let Some((c, d)) = node.ep.poll_timer_update() {
                match d {
                    Some(t) => node.timers.insert(c, t),
                    None => node.timers.remove(&c),
                };
            }
        }
        any
    }

    /// One segment from node `from` enters the link.
    fn send(&mut self, from: usize, src: IpAddr, dst: IpAddr, bytes: Vec<u8>) {
        let (r, off) = match TcpRepr::parse(&bytes, src, dst) {
            Ok(x) => x,
            Err(e) => return self.fail(format!("node {from} emitted an unparsable segment: {e:?}")),
        };
        self.hash_packet(b'S', from, &bytes);
        let index = self.link.next_index(from);
        let payload_len = bytes.len() - off;
        self.check_window(from, &r, payload_len);
        let elapsed = self.elapsed();
        let verdict = match self.hook.as_mut() {
            Some(h) => h(&PacketInfo { from, index, repr: &r, payload_len, elapsed }),
            None => Verdict::Pass,
        };
        let ip_len = bytes.len() + if src.is_ipv4() { 20 } else { 40 };
        let fate = self.link.decide(self.now, from, ip_len, bytes.len(), verdict);
        if self.trace {
            let what = match &fate {
                Fate::Drop(why) => why.to_string(),
                Fate::TooBig(m) => format!("TOO-BIG (pmtu {m})"),
                Fate::Deliver(c) => {
                    let c: Vec<String> = c
                        .iter()
                        .map(|(d, f)| {
                            format!("+{:.1}ms{}", d.as_secs_f64() * 1e3, if f.is_some() { " CORRUPT" } else { "" })
                        })
                        .collect();
                    c.join(" ")
                }
            };
            eprintln!(
                "{:>10.4} {}->{} {} len {} {}",
                elapsed.as_secs_f64(),
                from,
                1 - from,
                show(&r),
                payload_len,
                what
            );
        }
        match fate {
            Fate::Drop(_) => {}
            Fate::TooBig(mtu) => {
                // RFC 4443 §3.2 / RFC 1191: the router answers the sender with the next-hop MTU.
                let (local, remote) = (SocketAddr::new(src, r.src_port), SocketAddr::new(dst, r.dst_port));
                let delay = self.link.faults.delay;
                self.push(delay, from, Wire::TooBig { local, remote, seq: r.seq, mtu });
            }
            Fate::Deliver(copies) => {
                for (delay, flip) in copies {
                    let mut b = bytes.clone();
                    if let Some(bit) = flip {
                        b[bit / 8] ^= 1 << (bit % 8);
                    }
                    self.push(delay, 1 - from, Wire::Tcp { src, dst, bytes: b, corrupted: flip.is_some() });
                }
            }
        }
    }

    /// The window invariant (module doc) for a segment node `from` sends.
    fn check_window(&mut self, from: usize, r: &TcpRepr, payload_len: usize) {
        if r.flags.syn {
            self.ws_offer[from] = r.options.window_scale;
        }
        if r.flags.ack && !r.flags.rst {
            // RFC 7323 §2.2: the window of a SYN is never scaled; others only if both offered.
            let shift = match self.ws_offer {
                [Some(a), Some(b)] if !r.flags.syn => [a, b][from].min(14),
                _ => 0,
            };
            let edge = r.ack.wrapping_add((r.window as u32) << shift);
            self.right_edge[from] = Some(self.right_edge[from].map_or(edge, |e| seq::max(e, edge)));
        }
        if payload_len == 0 {
            return;
        }
        let end = r.seq.wrapping_add(payload_len as u32);
        match self.right_edge[1 - from] {
            Some(edge) if seq::gt(end, edge) && !(payload_len == 1 && r.seq == edge) => {
                self.fail(format!("node {from} sent [{}, {end}) past the right edge {edge} its peer advertised", r.seq))
            }
            _ => {}
        }
    }

    /// One packet arrives at its node.
    fn deliver(&mut self, p: InFlight) {
        if self.nodes[p.to].vanished {
            self.link.counters.to_vanished += 1;
            return;
        }
        if self.link.down(self.now) {
            self.link.counters.blackout_dropped += 1;
            return;
        }
        match p.what {
            Wire::Tcp { src, dst, bytes, corrupted } => {
                self.hash_packet(b'R', p.to, &bytes);
                self.link.counters.delivered += 1;
                self.link.counters.corrupted += corrupted as u64;
                match TcpRepr::parse(&bytes, src, dst) {
                    Ok(_) if corrupted => self.fail(format!("a corrupted packet to node {} passed the checksum", p.to)),
                    Ok((r, off)) => {
                        self.synack_delivered |= p.to == 0 && r.flags.syn && r.flags.ack;
                        self.ack_reached_listener |= p.to == 1
                            && r.flags.ack
                            && !r.flags.syn
                            && !r.flags.rst
                            && self.nodes[1].ep.conn_count() > 0;
                        self.nodes[p.to].ep.handle_segment(self.now, src, dst, &r, &bytes[off..]);
                        self.rx_payload[p.to] += bytes.len() - off;
                        self.maybe_vanish(p.to);
                    }
                    Err(_) if corrupted => self.link.counters.rejected += 1,
                    Err(e) => self.fail(format!("an intact packet to node {} failed to parse: {e:?}", p.to)),
                }
            }
            Wire::TooBig { local, remote, seq, mtu } => {
                self.hash_packet(b'I', p.to, &mtu.to_be_bytes());
                self.link.counters.ptb_delivered += 1;
                if self.trace {
                    eprintln!("{:>10.4} ICMP PTB mtu {mtu} -> node {} (seq {seq})", self.elapsed().as_secs_f64(), p.to);
                }
                let kind = IcmpErrorKind::PacketTooBig(mtu);
                self.nodes[p.to].ep.handle_icmp_error(self.now, local, remote, seq, kind);
            }
        }
    }

    /// Silent peer: node `i` vanishes as soon as its endpoint has been handed the
    /// configured number of payload bytes, before it can answer them.
    fn maybe_vanish(&mut self, i: usize) {
        if self.link.faults.silent.is_some_and(|(v, after)| v == i && self.rx_payload[i] >= after) {
            if self.trace {
                eprintln!("{:>10.4} node {i} VANISHES", self.elapsed().as_secs_f64());
            }
            self.nodes[i].vanished = true;
            self.nodes[i].timers.clear();
        }
    }

    /// Feed events to the application models; true if anything happened.
    fn apps(&mut self) -> bool {
        let mut any = false;
        for i in 0..2 {
            if !self.nodes[i].vanished {
                any |= self.app_events(i);
                any |= self.app_actions(i);
            }
        }
        any
    }

    fn app_events(&mut self, i: usize) -> bool {
        let (mut any, mut failure) = (false, None);
        let (now, t, trace) = (self.now, self.elapsed().as_secs_f64(), self.trace);
        while let Some(ev) = self.nodes[i].ep.poll_event() {
            any = true;
            let node = &mut self.nodes[i];
            let (c, e) = match ev {
                Event::Accepted { conn, listener, .. } => {
                    if node.app.conn.is_some() {
                        failure = Some(format!("node {i}: a second connection was accepted"));
                    }
                    node.app.conn = Some(conn);
                    node.app.connected = true;
                    node.ep.listener_accepted(listener);
                    continue;
                }
                Event::Conn(c, e) => (c, e),
            };
            if Some(c) != node.app.conn {
                failure = Some(format!("node {i}: event {e:?} for unknown conn {c}"));
                continue;
            }
            if node.app.closed {
                failure = Some(format!("node {i}: event {e:?} after Closed"));
                continue;
            }
            match e {
                SocketEvent::Connected { .. } => node.app.connected = true,
                SocketEvent::SendCredit(n) => node.app.credit += n,
                SocketEvent::Data(d) => {
                    let (at, peer) = (node.app.received_len, &self.data[1 - i]);
                    if node.app.eof || at + d.len() > peer.len() || peer[at..at + d.len()] != d[..] {
                        failure =
                            Some(format!("node {i}: {} bytes at offset {at} are not the peer's next bytes", d.len()));
                        continue;
                    }
                    node.app.received.get_or_insert_with(Sha256::new).update(&d);
                    node.app.received_len += d.len();
                    match node.app.read_delay {
                        Some(delay) => node.app.pending_credit.push_back((now + delay, d.len())),
                        None => node.ep.handle_app(now, c, AppCommand::ReadCredit(d.len())),
                    }
                }
                SocketEvent::Eof => node.app.eof = true,
                SocketEvent::Error(k) => {
                    if trace {
                        eprintln!("{t:>10.4} node {i} app ERROR {k:?}");
                    }
                    node.app.errors.push(k);
                }
                SocketEvent::Closed => {
                    node.app.closed = true;
                    node.app.pending_credit.clear();
                }
            }
        }
        if let Some(f) = failure {
            self.fail(f);
        }
        any
    }

    /// The application writes what it has credit for, reads (possibly slowly), shuts down
    /// writing when done and closes after EOF.
    fn app_actions(&mut self, i: usize) -> bool {
        let mut any = false;
        let now = self.now;
        let len = self.data[i].len();
        let node = &mut self.nodes[i];
        let app = &mut node.app;
        let Some(c) = app.conn.filter(|_| app.connected && !app.closed) else { return false };
        while app.pending_credit.front().is_some_and(|p| p.0 <= now) {
            if let Some((_, n)) = app.pending_credit.pop_front() {
                node.ep.handle_app(now, c, AppCommand::ReadCredit(n));
                any = true;
            }
        }
        while app.written < len && app.credit > 0 {
            let n = app.credit.min(len - app.written).min(100_000);
            let chunk = self.data[i][app.written..app.written + n].to_vec();
            app.written += n;
            app.credit -= n;
            node.ep.handle_app(now, c, AppCommand::Write(chunk));
            any = true;
        }
        if app.written == len && !app.shut {
            app.shut = true;
            node.ep.handle_app(now, c, AppCommand::ShutdownWrite);
            any = true;
        }
        if app.shut && app.eof && !app.closed_sent && app.pending_credit.is_empty() {
            app.closed_sent = true;
            node.ep.handle_app(now, c, AppCommand::Close);
            any = true;
        }
        any
    }

    fn next_time(&self) -> Option<Instant> {
        let l = self.wire.peek().map(|p| p.at);
        let t = self
            .nodes
            .iter()
            .filter(|n| !n.vanished)
            .flat_map(|n| n.timers.values().copied().chain(n.app.pending_credit.front().map(|p| p.0)))
            .min();
        l.into_iter().chain(t).min()
    }

    /// Advance to the next scheduled instant and deliver / fire what is due there.
    fn step_time(&mut self) -> bool {
        let Some(next) = self.next_time() else { return false };
        self.now = self.now.max(next);
        while self.wire.peek().is_some_and(|p| p.at <= self.now) {
            if let Some(p) = self.wire.pop() {
                self.deliver(p);
            }
        }
        // `timers` holds each connection's last reported deadline (as the tcp actor's
        // `wanted`): firing does not consume it, only a timer update changes it, so a
        // deadline left in the past fires again (and shows up as a livelock).
        for node in self.nodes.iter_mut().filter(|n| !n.vanished) {
            let fire: Vec<ConnId> = node.timers.iter().filter(|(_, &t)| t <= self.now).map(|(&c, _)| c).collect();
            for c in fire {
                node.ep.handle_timeout(self.now, c);
            }
        }
        true
    }

    fn settle(&mut self) {
        for _ in 0..MAX_SETTLE_ROUNDS {
            let a = self.transmit();
            let b = self.apps();
            if !(a || b) || self.fail.is_some() {
                return;
            }
        }
        self.fail(format!("livelock: {MAX_SETTLE_ROUNDS} transmit/app rounds at one instant"));
    }

    /// Each live end is closed or in TIME-WAIT.
    fn done(&self) -> bool {
        self.handshake_failed()
            || self.nodes.iter().all(|n| {
                n.vanished || n.app.closed || n.app.conn.is_some_and(|c| n.ep.state(c) == Some(State::TimeWait))
            })
    }

    /// The handshake never completed at the listener, which never accepted: a proper end
    /// of a run through enough loss, as long as nothing was delivered (`check_streams`).
    /// Either no SYN-ACK ever reached the connecting side (every SYN or SYN-ACK lost, e.g.
    /// in a blackout), whose app got `TimedOut`; or the connecting side established but
    /// none of its ACKs reached the listener before the half-open entry expired
    /// (`synack_retries` timeouts, 63 s by default, as Linux's), which then reset the next
    /// segment: its app got `ConnectionReset`. A `TimedOut` after a SYN-ACK arrived, or a
    /// reset after an ACK reached the half-open entry or before it expired, is a failure.
    fn handshake_failed(&self) -> bool {
        let (c, l) = (&self.nodes[0].app, &self.nodes[1].app);
        if !c.closed || l.conn.is_some() {
            return false;
        }
        match c.errors[..] {
            [ErrorKind::TimedOut] => !self.synack_delivered && !c.connected,
            [ErrorKind::ConnectionReset] => {
                let synack_retries = u64::from(self.nodes[1].ep.config().synack_retries);
                !self.ack_reached_listener && self.stats(1).timeouts > synack_retries
            }
            _ => false,
        }
    }

    /// Step until `until` holds, nothing is scheduled, or a failure; Err on failure or
    /// if the time limit passes first.
    fn drive(&mut self, limit: Duration, until: impl Fn(&Sim) -> bool) -> Result<(), String> {
        let (mut last, mut same) = (self.now, 0u32);
        loop {
            self.settle();
            if let Some(f) = self.fail.take() {
                return Err(f);
            }
            if until(self) {
                return Ok(());
            }
            if self.elapsed() > limit {
                return Err(format!("hang: not done after {limit:?}"));
            }
            if !self.step_time() {
                return if until(self) { Ok(()) } else { Err("hang: nothing scheduled".into()) };
            }
            same = if self.now == last { same + 1 } else { 0 };
            last = self.now;
            if same > MAX_STEPS_PER_INSTANT {
                return Err(format!("livelock: {same} steps at t={:?} (timers {:?})", self.elapsed(), self.timers()));
            }
        }
    }

    fn timers(&self) -> [Vec<(ConnId, Duration)>; 2] {
        let f = |n: &Node| n.timers.iter().map(|(&c, &t)| (c, t.saturating_duration_since(self.start))).collect();
        [f(&self.nodes[0]), f(&self.nodes[1])]
    }

    /// Open the connection(s): client/listener, or both connect (RFC 9293 §3.5
    /// simultaneous open).
    fn open(&mut self, simultaneous: bool) -> Result<(), String> {
        let (a_ip, b_ip) = (self.nodes[0].ip, self.nodes[1].ip);
        let now = self.now;
        let err = |e: std::io::Error| format!("setup: {e}");
        if simultaneous {
            let pa = first_port(self.keys[0], a_ip, b_ip);
            let pb = first_port(self.keys[1], b_ip, a_ip);
            let c = self.nodes[0].ep.connect(now, a_ip, SocketAddr::new(b_ip, pb)).map_err(err)?;
            self.nodes[0].app.conn = Some(c);
            let c = self.nodes[1].ep.connect(now, b_ip, SocketAddr::new(a_ip, pa)).map_err(err)?;
            self.nodes[1].app.conn = Some(c);
        } else {
            let b_addr = SocketAddr::new(b_ip, 7777);
            self.nodes[1].ep.listen(ListenAddr::Addr(b_addr), 16).map_err(err)?;
            let c = self.nodes[0].ep.connect(now, a_ip, b_addr).map_err(err)?;
            self.nodes[0].app.conn = Some(c);
        }
        Ok(())
    }

    /// Move `len[0]` bytes A->B and `len[1]` bytes B->A, close both ends and check every
    /// invariant of the module doc. `limit` bounds the virtual time.
    pub fn run(&mut self, len: [usize; 2], simultaneous: bool, limit: Duration) -> Result<Report, String> {
        self.data = [data(len[0], self.seed ^ 0xa), data(len[1], self.seed ^ 0xb)];
        self.open(simultaneous)?;
        self.drive(limit, Sim::done).map_err(|e| self.describe(&e))?;
        let elapsed = self.elapsed();
        self.check_streams().map_err(|e| self.describe(&e))?;
        // Wait out TIME-WAIT (and anything else scheduled).
        self.drive(limit + Duration::from_secs(3600), |s| s.next_time().is_none()).map_err(|e| self.describe(&e))?;
        self.check_quiet().map_err(|e| self.describe(&e))?;
        Ok(Report {
            elapsed,
            packet_hash: self.hasher.clone().finalize().into(),
            link: self.link.counters,
            stats: [self.stats(0), self.stats(1)],
            errors: [self.nodes[0].app.errors.clone(), self.nodes[1].app.errors.clone()],
        })
    }

    /// Like [`Sim::run`] for client/listener; panics with the failure.
    pub fn transfer(&mut self, len_a: usize, len_b: usize, limit: Duration) -> Duration {
        self.run([len_a, len_b], false, limit).unwrap_or_else(|e| panic!("{e}")).elapsed
    }

    /// Delivery: complete and exact without a silent peer; with one, the survivor's app
    /// got an error (its data could not all be acknowledged).
    fn check_streams(&mut self) -> Result<(), String> {
        if self.handshake_failed() {
            let got = [self.nodes[0].app.received_len, self.nodes[1].app.received_len];
            return if got == [0, 0] { Ok(()) } else { Err(format!("connect failed yet {got:?} bytes arrived")) };
        }
        let vanished: Vec<usize> = (0..2).filter(|&i| self.nodes[i].vanished).collect();
        if let [v] = vanished[..] {
            let s = &self.nodes[1 - v].app;
            if s.errors.is_empty() || !s.closed {
                return Err(format!("silent peer: survivor {} closed {} with errors {:?}", 1 - v, s.closed, s.errors));
            }
            return Ok(());
        }
        for i in 0..2 {
            let (rx, sent) = (&mut self.nodes[1 - i].app, &self.data[i]);
            if rx.received_len != sent.len() || !rx.eof {
                return Err(format!(
                    "{}->{}: received {} of {} bytes, eof {}",
                    i,
                    1 - i,
                    rx.received_len,
                    sent.len(),
                    rx.eof
                ));
            }
            let got: [u8; 32] = rx.received.take().unwrap_or_default().finalize().into();
            let want: [u8; 32] = Sha256::digest(sent).into();
            if got != want {
                return Err(format!("{}->{}: SHA-256 differs", i, 1 - i));
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.app.errors.is_empty() {
                return Err(format!("node {i}: errors {:?} on a run without a silent peer", n.app.errors));
            }
        }
        Ok(())
    }

    /// After TIME-WAIT: nothing left anywhere on a live node, and the link is empty.
    fn check_quiet(&mut self) -> Result<(), String> {
        let c = self.link.counters;
        if c.corrupted != c.rejected {
            return Err(format!("{} corrupted packets delivered, {} rejected", c.corrupted, c.rejected));
        }
        if !self.wire.is_empty() {
            return Err(format!("{} packets still in flight", self.wire.len()));
        }
        let now = self.now;
        let never_accepted = self.handshake_failed();
        for (i, n) in self.nodes.iter_mut().enumerate().filter(|(_, n)| !n.vanished) {
            // The listener of a handshake that never completed has no stream to close.
            let listener_only = never_accepted && i == 1;
            if !(n.app.closed || listener_only) {
                return Err(format!("node {i}: the app never got Closed"));
            }
            if n.ep.conn_count() != 0 || !n.timers.is_empty() {
                return Err(format!("node {i}: {} TCBs, timers {:?} left", n.ep.conn_count(), n.timers));
            }
            if let Some(e) = n.ep.poll_event() {
                return Err(format!("node {i}: event {e:?} left"));
            }
            let mut left = 0;
            n.ep.poll_transmit(now, &mut |_, _, _, _| left += 1);
            if left > 0 || n.ep.poll_timer_update().is_some() {
                return Err(format!("node {i}: {left} segments or a timer update left"));
            }
        }
        Ok(())
    }

    /// A failure message with the state of both ends.
    fn describe(&self, what: &str) -> String {
        let mut s = format!("seed {}: {what} at t={:?}\n", self.seed, self.elapsed());
        for (i, n) in self.nodes.iter().enumerate() {
            let a = &n.app;
            s += &format!(
                "  node {i}: state {:?} written {}/{} received {}/{} eof {} closed {} errors {:?} vanished {}\n    {:?}\n",
                a.conn.and_then(|c| n.ep.state(c)),
                a.written,
                self.data[i].len(),
                a.received_len,
                self.data[1 - i].len(),
                a.eof,
                a.closed,
                a.errors,
                n.vanished,
                n.ep.stats()
            );
        }
        s + &format!("  link {:?}", self.link.counters)
    }
}

/// A segment for the trace: flags, numbers, window, first SACK block.
fn show(r: &TcpRepr) -> String {
    let f = r.flags;
    let flags: String =
        [(f.syn, 'S'), (f.fin, 'F'), (f.rst, 'R'), (f.ack, '.')].iter().filter(|x| x.0).map(|x| x.1).collect();
    let sack = r.options.sack_blocks[0].map(|(l, r)| format!(" sack {l}-{r}")).unwrap_or_default();
    format!("{flags:<3} seq {} ack {} win {}{sack}", r.seq, r.ack, r.window)
}
