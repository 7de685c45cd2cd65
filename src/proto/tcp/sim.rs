//! Deterministic simulation: two endpoints joined by a lossy, reordering, duplicating
//! link, driven by a virtual clock. Every segment is serialized with `TcpRepr::emit` and
//! parsed back, so the wire layer is exercised too.

use super::*;
use crate::wire::tcp::TcpRepr;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub loss: f64,
    pub dup: f64,
    /// Probability that a segment gets an extra random delay (reordering).
    pub reorder: f64,
    pub delay: Duration,
    pub jitter: Duration,
}

impl Faults {
    pub const NONE: Faults =
        Faults { loss: 0.0, dup: 0.0, reorder: 0.0, delay: Duration::from_millis(5), jitter: Duration::ZERO };
}

struct InFlight {
    at: Instant,
    seq: u64,
    to: usize,
    src: IpAddr,
    dst: IpAddr,
    bytes: Vec<u8>,
}

/// One application stream: what it writes and what it has read.
#[derive(Default)]
struct App {
    conn: Option<ConnId>,
    to_send: Vec<u8>,
    written: usize,
    credit: usize,
    shut: bool,
    received: Sha256Wrapper,
    received_len: usize,
    eof: bool,
    closed_sent: bool,
    closed: bool,
    errors: Vec<std::io::ErrorKind>,
    connected: bool,
    /// Slow reader: consumed bytes are credited back only after this delay.
    read_delay: Option<Duration>,
    pending_credit: std::collections::VecDeque<(Instant, usize)>,
}

#[derive(Default)]
struct Sha256Wrapper(Option<Sha256>);
impl Sha256Wrapper {
    fn update(&mut self, d: &[u8]) {
        self.0.get_or_insert_with(Sha256::new).update(d);
    }
    fn finish(&mut self) -> Vec<u8> {
        self.0.take().unwrap_or_default().finalize().to_vec()
    }
}

struct Node {
    ep: Endpoint,
    ip: IpAddr,
    timers: HashMap<ConnId, Instant>,
    app: App,
}

pub struct Sim {
    now: Instant,
    start: Instant,
    nodes: [Node; 2],
    link: Vec<InFlight>,
    rng: StdRng,
    faults: Faults,
    counter: u64,
    pub segments: u64,
    trace: bool,
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..len).map(|_| r.gen()).collect()
}

fn hash(d: &[u8]) -> Vec<u8> {
    Sha256::digest(d).to_vec()
}

impl Sim {
    pub fn new(cfg_a: TcpConfig, cfg_b: TcpConfig, faults: Faults, seed: u64) -> Sim {
        let now = Instant::now();
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let mk = |cfg: TcpConfig, ip: IpAddr, k: u8| Node {
            ep: Endpoint::new(cfg, [k; 16], now),
            ip,
            timers: HashMap::new(),
            app: App::default(),
        };
        Sim {
            now,
            start: now,
            nodes: [mk(cfg_a, a, 1), mk(cfg_b, b, 2)],
            link: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            faults,
            counter: 0,
            segments: 0,
            trace: std::env::var("SIM_TRACE").is_ok(),
        }
    }

    fn transmit(&mut self) -> bool {
        let mut any = false;
        for i in 0..2 {
            let mut out: Vec<(IpAddr, IpAddr, Vec<u8>)> = Vec::new();
            self.nodes[i].ep.poll_transmit(self.now, &mut |s, d, r: &TcpRepr, p: &[u8]| {
                let mut buf = vec![0u8; r.header_len() + p.len()];
                r.emit(&mut buf, p, s, d);
                out.push((s, d, buf));
            });
            for (s, d, bytes) in out {
                any = true;
                self.segments += 1;
                let f = self.faults;
                let lost = self.rng.gen_bool(f.loss);
                if self.trace {
                    let (r, off) = TcpRepr::parse(&bytes, s, d).unwrap();
                    eprintln!(
                        "{:>8.3} {}->{} {:?} seq {} ack {} len {} win {} sack {:?}{}",
                        (self.now - self.start).as_secs_f64(),
                        i,
                        1 - i,
                        (r.flags.syn, r.flags.fin, r.flags.rst),
                        r.seq,
                        r.ack,
                        bytes.len() - off,
                        r.window,
                        r.options.sack_blocks[0],
                        if lost { " LOST" } else { "" }
                    );
                }
                if lost {
                    continue;
                }
                let copies = if self.rng.gen_bool(f.dup) { 2 } else { 1 };
                for _ in 0..copies {
                    let mut at = self.now + f.delay;
                    if self.rng.gen_bool(f.reorder) && !f.jitter.is_zero() {
                        at += f.jitter.mul_f64(self.rng.gen::<f64>());
                    }
                    self.counter += 1;
                    self.link.push(InFlight { at, seq: self.counter, to: 1 - i, src: s, dst: d, bytes: bytes.clone() });
                }
            }
            while let Some((c, d)) = self.nodes[i].ep.poll_timer_update() {
                match d {
                    Some(t) => {
                        self.nodes[i].timers.insert(c, t);
                    }
                    None => {
                        self.nodes[i].timers.remove(&c);
                    }
                }
            }
        }
        any
    }

    /// Feed events to the application model; returns true if it did anything.
    fn apps(&mut self) -> bool {
        let mut any = false;
        for i in 0..2 {
            let now = self.now;
            let node = &mut self.nodes[i];
            while let Some(ev) = node.ep.poll_event() {
                any = true;
                match ev {
                    Event::Accepted { conn, listener, .. } => {
                        node.app.conn = Some(conn);
                        node.app.connected = true;
                        node.ep.listener_accepted(listener);
                    }
                    Event::Conn(c, e) => {
                        assert_eq!(Some(c), node.app.conn, "event for unknown conn");
                        match e {
                            SocketEvent::Connected { .. } => node.app.connected = true,
                            SocketEvent::SendCredit(n) => node.app.credit += n,
                            SocketEvent::Data(d) => {
                                assert!(!node.app.eof, "data after eof");
                                node.app.received.update(&d);
                                node.app.received_len += d.len();
                                match node.app.read_delay {
                                    Some(delay) => node.app.pending_credit.push_back((now + delay, d.len())),
                                    None => node.ep.handle_app(now, c, AppCommand::ReadCredit(d.len())),
                                }
                            }
                            SocketEvent::Eof => node.app.eof = true,
                            SocketEvent::Error(k) => node.app.errors.push(k),
                            SocketEvent::Closed => {
                                assert!(!node.app.closed, "Closed twice");
                                node.app.closed = true;
                            }
                        }
                    }
                }
            }
            let app = &mut node.app;
            if app.closed {
                app.pending_credit.clear();
            }
            if let (Some(c), true) = (app.conn, app.connected) {
                if app.closed {
                    continue;
                }
                while app.pending_credit.front().is_some_and(|p| p.0 <= now) {
                    if let Some((_, n)) = app.pending_credit.pop_front() {
                        node.ep.handle_app(now, c, AppCommand::ReadCredit(n));
                        any = true;
                    }
                }
                while app.written < app.to_send.len() && app.credit > 0 {
                    let n = app.credit.min(app.to_send.len() - app.written).min(100_000);
                    let chunk = app.to_send[app.written..app.written + n].to_vec();
                    app.written += n;
                    app.credit -= n;
                    node.ep.handle_app(now, c, AppCommand::Write(chunk));
                    any = true;
                }
                if app.written == app.to_send.len() && !app.shut {
                    app.shut = true;
                    node.ep.handle_app(now, c, AppCommand::ShutdownWrite);
                    any = true;
                }
                if app.shut && app.eof && !app.closed_sent && app.pending_credit.is_empty() {
                    app.closed_sent = true;
                    node.ep.handle_app(now, c, AppCommand::Close);
                    any = true;
                }
            }
        }
        any
    }

    fn next_time(&self) -> Option<Instant> {
        let l = self.link.iter().map(|p| p.at).min();
        let t = self
            .nodes
            .iter()
            .flat_map(|n| n.timers.values().copied().chain(n.app.pending_credit.front().map(|p| p.0)))
            .min();
        match (l, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn step_time(&mut self) -> bool {
        let Some(next) = self.next_time() else { return false };
        if next > self.now {
            self.now = next;
        }
        // Deliver due packets in (time, send order).
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.link.len() {
            if self.link[i].at <= self.now {
                due.push(self.link.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|p| (p.at, p.seq));
        for p in due {
            let node = &mut self.nodes[p.to];
            let (r, off) = TcpRepr::parse(&p.bytes, p.src, p.dst).expect("checksum/parse");
            node.ep.handle_segment(self.now, p.src, p.dst, &r, &p.bytes[off..]);
        }
        for node in self.nodes.iter_mut() {
            let fire: Vec<ConnId> = node.timers.iter().filter(|(_, &t)| t <= self.now).map(|(&c, _)| c).collect();
            for c in fire {
                node.timers.remove(&c);
                node.ep.handle_timeout(self.now, c);
            }
        }
        true
    }

    fn settle(&mut self) {
        for _ in 0..1000 {
            let a = self.transmit();
            let b = self.apps();
            if !a && !b {
                break;
            }
        }
    }

    /// Run an A->B and B->A transfer of `len_a`/`len_b` bytes to completion (both sides
    /// Closed). Panics with the seed on failure.
    pub fn transfer(&mut self, len_a: usize, len_b: usize, seed: u64, limit: Duration) -> Duration {
        self.transfer_opts(len_a, len_b, seed, limit, false)
    }

    /// Like [`Sim::transfer`]; with `simultaneous` both sides connect to each other at the
    /// same time (RFC 9293 simultaneous open) instead of client/listener.
    pub fn transfer_opts(
        &mut self,
        len_a: usize,
        len_b: usize,
        seed: u64,
        limit: Duration,
        simultaneous: bool,
    ) -> Duration {
        self.nodes[0].app.to_send = data(len_a, seed ^ 0xa);
        self.nodes[1].app.to_send = data(len_b, seed ^ 0xb);
        let (a_ip, b_ip) = (self.nodes[0].ip, self.nodes[1].ip);
        if simultaneous {
            // Endpoint ports start at a key-derived offset: keys [1; 16] / [2; 16] give
            // 49152 + 0x01010101 % 16384 and 49152 + 0x02020202 % 16384.
            let pa = 49152 + (0x0101_0101u32 % 16384) as u16;
            let pb = 49152 + (0x0202_0202u32 % 16384) as u16;
            let c = self.nodes[0].ep.connect(self.now, a_ip, SocketAddr::new(b_ip, pb)).unwrap();
            self.nodes[0].app.conn = Some(c);
            let c = self.nodes[1].ep.connect(self.now, b_ip, SocketAddr::new(a_ip, pa)).unwrap();
            self.nodes[1].app.conn = Some(c);
        } else {
            let b_addr = SocketAddr::new(b_ip, 7777);
            self.nodes[1].ep.listen(ListenAddr::Addr(b_addr), 16).unwrap();
            let c = self.nodes[0].ep.connect(self.now, a_ip, b_addr).unwrap();
            self.nodes[0].app.conn = Some(c);
        }
        loop {
            self.settle();
            if self.nodes.iter().all(|n| n.app.closed) {
                break;
            }
            assert!(
                self.now - self.start < limit,
                "seed {seed}: not done after {:?}; a: written {} recv {} eof {} closed {} errs {:?}; b: written {} recv {} eof {} closed {} errs {:?}; stats a {:?} b {:?}",
                limit,
                self.nodes[0].app.written,
                self.nodes[0].app.received_len,
                self.nodes[0].app.eof,
                self.nodes[0].app.closed,
                self.nodes[0].app.errors,
                self.nodes[1].app.written,
                self.nodes[1].app.received_len,
                self.nodes[1].app.eof,
                self.nodes[1].app.closed,
                self.nodes[1].app.errors,
                self.nodes[0].ep.stats(),
                self.nodes[1].ep.stats(),
            );
            if !self.step_time() {
                panic!("seed {seed}: deadlock, nothing scheduled");
            }
        }
        for (i, n) in self.nodes.iter_mut().enumerate() {
            assert!(n.app.errors.is_empty(), "seed {seed}: node {i} errors {:?}", n.app.errors);
        }
        let (ha, hb) = (hash(&self.nodes[0].app.to_send), hash(&self.nodes[1].app.to_send));
        assert_eq!(self.nodes[1].app.received_len, len_a, "seed {seed}: B received length");
        assert_eq!(self.nodes[0].app.received_len, len_b, "seed {seed}: A received length");
        assert_eq!(self.nodes[1].app.received.finish(), ha, "seed {seed}: A->B bytes differ");
        assert_eq!(self.nodes[0].app.received.finish(), hb, "seed {seed}: B->A bytes differ");
        // After TIME-WAIT everything is gone.
        while self.step_time() {
            self.settle();
        }
        assert_eq!(self.nodes[0].ep.conn_count(), 0, "seed {seed}");
        assert_eq!(self.nodes[1].ep.conn_count(), 0, "seed {seed}");
        self.now - self.start
    }

    pub fn stats(&self, i: usize) -> TcpStats {
        self.nodes[i].ep.stats()
    }
}

fn sim_cfg() -> TcpConfig {
    TcpConfig { msl: Duration::from_secs(1), ..TcpConfig::default() }
}

#[test]
fn clean_transfer_4mib_both_ways() {
    let mut s = Sim::new(sim_cfg(), sim_cfg(), Faults::NONE, 1);
    let t = s.transfer(4 << 20, 4 << 20, 1, Duration::from_secs(60));
    assert_eq!(s.stats(0).retransmits, 0);
    assert_eq!(s.stats(1).retransmits, 0);
    assert!(t < Duration::from_secs(10), "took {t:?}");
}

#[test]
fn clean_transfer_small_buffers_no_options() {
    let cfg = TcpConfig {
        recv_buf: 20_000,
        send_buf: 30_000,
        max_ooo_bytes: 20_000,
        timestamps: false,
        sack: false,
        window_scale: false,
        ..sim_cfg()
    };
    let mut s = Sim::new(cfg.clone(), cfg, Faults::NONE, 2);
    s.transfer(300_000, 100_000, 2, Duration::from_secs(60));
}

#[test]
fn lossy_transfers_many_seeds() {
    for seed in 0..12u64 {
        let faults = Faults {
            loss: 0.02 + (seed % 3) as f64 * 0.02,
            dup: 0.01,
            reorder: 0.05,
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(15),
        };
        let mut cfg = sim_cfg();
        if seed % 4 == 1 {
            cfg.sack = false;
        }
        if seed % 4 == 2 {
            cfg.timestamps = false;
        }
        if seed % 4 == 3 {
            cfg.congestion = CongestionAlgorithm::Cubic;
            cfg.recv_buf = 64 * 1024;
        }
        let mut s = Sim::new(cfg.clone(), cfg, faults, seed);
        let t = s.transfer(256 * 1024, 128 * 1024, seed, Duration::from_secs(600));
        eprintln!("seed {seed}: {t:?} segs {} a {:?} b {:?}", s.segments, s.stats(0), s.stats(1));
    }
}

#[test]
fn lossy_transfer_1mib() {
    let faults = Faults {
        loss: 0.03,
        dup: 0.02,
        reorder: 0.1,
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(30),
    };
    let mut s = Sim::new(sim_cfg(), sim_cfg(), faults, 99);
    let t = s.transfer(1 << 20, 1 << 20, 99, Duration::from_secs(600));
    eprintln!("1mib: {t:?} a {:?} b {:?}", s.stats(0), s.stats(1));
    assert!(s.stats(0).retransmits > 0);
}

/// Many seeds with heavy faults: `STRESS_SEEDS=500 cargo test --release --lib stress -- --ignored`.
#[test]
#[ignore]
fn stress_many_seeds() {
    let n: u64 = std::env::var("STRESS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let first: u64 = std::env::var("STRESS_FIRST").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let max_loss = if std::env::var("STRESS_TINY").is_ok() { 0.03 } else { 0.10 };
    for seed in first..first + n {
        let mut r = StdRng::seed_from_u64(seed);
        let faults = Faults {
            loss: r.gen_range(0.0..max_loss),
            dup: r.gen_range(0.0..0.05),
            reorder: r.gen_range(0.0..0.3),
            delay: Duration::from_millis(r.gen_range(1..50)),
            jitter: Duration::from_millis(r.gen_range(1..100)),
        };
        let mut cfg = sim_cfg();
        cfg.sack = r.gen_bool(0.7);
        cfg.timestamps = r.gen_bool(0.7);
        cfg.window_scale = r.gen_bool(0.8);
        cfg.nagle = r.gen_bool(0.5);
        if r.gen_bool(0.3) {
            cfg.congestion = CongestionAlgorithm::Cubic;
        }
        if r.gen_bool(0.3) {
            cfg.recv_buf = r.gen_range(2000..100_000);
            cfg.send_buf = r.gen_range(2000..100_000);
            cfg.max_ooo_bytes = r.gen_range(0..cfg.recv_buf);
        }
        if r.gen_bool(0.2) {
            cfg.mtu = r.gen_range(576..1500);
        }
        if std::env::var("STRESS_TINY").is_ok() {
            cfg.mtu = r.gen_range(60..576);
        }
        let mut cfg_b = cfg.clone();
        if r.gen_bool(0.3) {
            cfg_b.sack = !cfg.sack;
            cfg_b.timestamps = !cfg.timestamps;
        }
        let la = r.gen_range(0..300_000);
        let lb = r.gen_range(0..300_000);
        eprintln!("seed {seed}: {faults:?} la {la} lb {lb}");
        let mut s = Sim::new(cfg, cfg_b, faults, seed);
        if r.gen_bool(0.3) {
            s.nodes[1].app.read_delay = Some(Duration::from_millis(r.gen_range(1..2000)));
        }
        let simultaneous = r.gen_bool(0.1);
        s.transfer_opts(la, lb, seed, Duration::from_secs(3600), simultaneous);
    }
}

#[test]
fn slow_reader_zero_window_transfer() {
    // A reader slower than the link closes the window repeatedly: zero-window probing,
    // window updates and receiver SWS in a full transfer.
    let cfg = TcpConfig { recv_buf: 8192, send_buf: 16384, ..sim_cfg() };
    let faults = Faults { loss: 0.02, ..Faults::NONE };
    let mut s = Sim::new(cfg.clone(), cfg, faults, 5);
    s.nodes[1].app.read_delay = Some(Duration::from_millis(300));
    s.transfer(200_000, 10_000, 5, Duration::from_secs(600));
}

#[test]
fn ipv6_small_mtu_transfer() {
    let cfg = TcpConfig { mtu: 1280, ..sim_cfg() };
    let mut s = Sim::new(cfg.clone(), cfg, Faults { loss: 0.01, ..Faults::NONE }, 6);
    s.nodes[0].ip = "fd00::1".parse().unwrap();
    s.nodes[1].ip = "fd00::2".parse().unwrap();
    s.transfer(300_000, 300_000, 6, Duration::from_secs(600));
}

/// Rough speed check of the core (release): `cargo test --release --lib bench_core -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_core_transfer() {
    let mut s = Sim::new(sim_cfg(), sim_cfg(), Faults::NONE, 7);
    let t0 = std::time::Instant::now();
    s.transfer(64 << 20, 0, 7, Duration::from_secs(600));
    let el = t0.elapsed();
    eprintln!(
        "64 MiB through two endpoints (emit+parse+checksum both ways) in {el:?}: {:.1} Gbit/s, {} segments",
        (64u64 << 23) as f64 / el.as_secs_f64() / 1e9,
        s.segments
    );
}

#[test]
fn simultaneous_open_and_close_transfer() {
    for seed in 0..4u64 {
        let faults = if seed == 0 { Faults::NONE } else { Faults { loss: 0.05, ..Faults::NONE } };
        let mut s = Sim::new(sim_cfg(), sim_cfg(), faults, seed);
        s.transfer_opts(50_000, 50_000, seed, Duration::from_secs(600), true);
    }
}
