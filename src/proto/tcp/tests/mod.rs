//! Endpoint-level unit tests: one endpoint driven by hand-written peer segments on a
//! virtual clock. One test (or a few) per rule of ARCHITECTURE.md §11.

use super::*;
use crate::wire::tcp::{TcpFlags, TcpOptions, TcpRepr};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const US: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const PEER_PORT: u16 = 5000;
const LPORT: u16 = 80;
const PISS: u32 = 0xffff_fff0; // peer ISS near the wrap

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Minimal config: no options so segment arithmetic stays simple.
fn plain() -> TcpConfig {
    TcpConfig { timestamps: false, sack: false, window_scale: false, ..TcpConfig::default() }
}

fn flags(s: &str) -> TcpFlags {
    TcpFlags {
        syn: s.contains('S'),
        ack: s.contains('A'),
        fin: s.contains('F'),
        rst: s.contains('R'),
        psh: s.contains('P'),
        ..Default::default()
    }
}

struct H {
    ep: Endpoint,
    now: Instant,
    timers: HashMap<ConnId, Instant>,
    /// Our port of the connection under test.
    port: u16,
    /// Peer's next sequence number and what it acknowledges.
    pseq: u32,
    pack: u32,
    pwnd: u16,
    popts: TcpOptions,
    conn: ConnId,
}

impl H {
    fn new(cfg: TcpConfig) -> H {
        let now = Instant::now();
        H {
            ep: Endpoint::new(cfg, [7; 16], now),
            now,
            timers: HashMap::new(),
            port: LPORT,
            pseq: PISS,
            pack: 0,
            pwnd: 65535,
            popts: TcpOptions::default(),
            conn: 0,
        }
    }

    fn out(&mut self) -> Vec<(TcpRepr, Vec<u8>)> {
        let mut v = Vec::new();
        self.ep.poll_transmit(self.now, &mut |s, d, r: &TcpRepr, p: &[u8]| {
            let mut buf = vec![0u8; r.header_len() + p.len()];
            r.emit(&mut buf, p, s, d);
            let (r2, off) = TcpRepr::parse(&buf, s, d).expect("we emit valid segments");
            assert_eq!(&r2, r);
            v.push((r2, buf[off..].to_vec()));
        });
        self.sync_timers();
        v
    }

    fn sync_timers(&mut self) {
        while let Some((c, d)) = self.ep.poll_timer_update() {
            match d {
                Some(t) => self.timers.insert(c, t),
                None => self.timers.remove(&c),
            };
        }
    }

    fn evs(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }

    fn conn_evs(&mut self) -> Vec<SocketEvent> {
        self.evs()
            .into_iter()
            .filter_map(|e| match e {
                Event::Conn(_, s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn raw(&mut self, r: TcpRepr, payload: &[u8]) {
        self.ep.handle_segment(self.now, PEER, US, &r, payload);
        self.sync_timers();
    }

    /// A segment from the peer with its current seq/ack.
    fn seg(&self, f: &str) -> TcpRepr {
        TcpRepr {
            src_port: PEER_PORT,
            dst_port: self.port,
            seq: self.pseq,
            ack: if f.contains('A') { self.pack } else { 0 },
            flags: flags(f),
            window: self.pwnd,
            urgent: 0,
            options: self.popts,
        }
    }

    /// Peer sends `payload` with flags; advances the peer's seq.
    fn send(&mut self, f: &str, payload: &[u8]) {
        let r = self.seg(f);
        self.pseq = self.pseq.wrapping_add(r.segment_len(payload.len()));
        self.raw(r, payload);
    }

    fn app(&mut self, cmd: AppCommand) {
        self.ep.handle_app(self.now, self.conn, cmd);
        self.sync_timers();
    }

    /// Advance the virtual clock, firing timers in order.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = self.timers.iter().filter(|(_, &t)| t <= end).min_by_key(|(_, &t)| t).map(|(&c, &t)| (c, t));
            let Some((c, t)) = next else { break };
            self.now = self.now.max(t);
            self.timers.remove(&c);
            self.ep.handle_timeout(self.now, c);
            self.sync_timers();
        }
        self.now = end;
    }

    /// Advance until the next timer fires (at most `limit`); returns the time advanced.
    fn run_timer(&mut self, limit: Duration) -> Duration {
        let start = self.now;
        let Some(&t) = self.timers.values().min() else { return Duration::ZERO };
        if t > start + limit {
            return Duration::ZERO;
        }
        self.advance(t.saturating_duration_since(start));
        t.saturating_duration_since(start)
    }

    fn state(&self) -> Option<State> {
        self.ep.state(self.conn)
    }
}

/// Active open to PEER:5000 completed with a SYN-ACK carrying `opts`.
fn active(cfg: TcpConfig, opts: TcpOptions) -> (H, TcpRepr) {
    let mut h = H::new(cfg);
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    let syn = complete_active(&mut h, opts);
    (h, syn)
}

/// The peer answers the SYN that `h` just queued with a SYN-ACK carrying `opts`; checks the
/// handshake completed. Returns our SYN.
fn complete_active(h: &mut H, opts: TcpOptions) -> TcpRepr {
    complete_active_after(h, opts, Duration::ZERO)
}

/// [`complete_active`] with the SYN-ACK arriving `rtt` after the SYN (the handshake's RTT
/// sample).
fn complete_active_after(h: &mut H, opts: TcpOptions, rtt: Duration) -> TcpRepr {
    let o = h.out();
    assert_eq!(o.len(), 1);
    let syn = o[0].0;
    assert!(syn.flags.syn && !syn.flags.ack);
    h.advance(rtt);
    h.port = syn.src_port;
    h.pack = syn.seq.wrapping_add(1);
    h.popts = opts;
    h.send("SA", &[]);
    h.popts.mss = None;
    h.popts.window_scale = None;
    h.popts.sack_permitted = false;
    let o = h.out();
    assert_eq!(o.len(), 1, "{o:?}");
    assert!(o[0].0.flags.ack && !o[0].0.flags.syn);
    assert_eq!(o[0].0.ack, h.pseq);
    let ev = h.conn_evs();
    assert!(matches!(ev[0], SocketEvent::Connected { .. }), "{ev:?}");
    assert!(matches!(ev[1], SocketEvent::SendCredit(n) if n == h.ep.config().send_buf));
    assert_eq!(h.state(), Some(State::Established));
    syn
}

/// SACK on, no timestamps or window scale: segment arithmetic stays simple.
fn sack_cfg() -> TcpConfig {
    TcpConfig { timestamps: false, window_scale: false, ..TcpConfig::default() }
}

/// The peer's SYN-ACK options for [`sack_cfg`] connections: MSS 1000, SACK permitted.
fn sack_opts() -> TcpOptions {
    TcpOptions { mss: Some(1000), sack_permitted: true, ..Default::default() }
}

/// Sequence numbers of the segments in `o` that carry data or a FIN.
fn seqs(o: &[(TcpRepr, Vec<u8>)]) -> Vec<u32> {
    o.iter().filter(|s| !s.1.is_empty() || s.0.flags.fin).map(|s| s.0.seq).collect()
}

fn active_plain() -> H {
    active(plain(), TcpOptions { mss: Some(1460), ..Default::default() }).0
}

/// Passive open on US:80 completed.
fn passive(cfg: TcpConfig, opts: TcpOptions) -> (H, TcpRepr) {
    let mut h = H::new(cfg);
    let lid = h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 8).unwrap();
    h.popts = opts;
    h.send("S", &[]);
    let o = h.out();
    assert_eq!(o.len(), 1);
    let synack = o[0].0;
    assert!(synack.flags.syn && synack.flags.ack);
    assert_eq!(synack.ack, h.pseq);
    h.pack = synack.seq.wrapping_add(1);
    h.popts = TcpOptions { timestamps: opts.timestamps, ..Default::default() };
    assert!(h.evs().is_empty(), "no event before the handshake completes");
    h.send("A", &[]);
    let ev = h.evs();
    match &ev[0] {
        Event::Accepted { listener, conn, local, remote } => {
            assert_eq!(*listener, lid);
            assert_eq!(*local, SocketAddr::new(US, LPORT));
            assert_eq!(*remote, SocketAddr::new(PEER, PEER_PORT));
            h.conn = *conn;
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(ev[1], Event::Conn(_, SocketEvent::SendCredit(_))));
    assert_eq!(h.state(), Some(State::Established));
    assert!(h.out().is_empty());
    (h, synack)
}

// ----------------------------------------------------------------------------------------
// Handshake and options
// ----------------------------------------------------------------------------------------

#[test]
fn active_open_syn_options() {
    let (h, syn) = active(TcpConfig::default(), TcpOptions { mss: Some(1460), ..Default::default() });
    // MSS = 1500 - 40 (M-67); window scale offered for the 4 MiB auto-tuning ceiling;
    // SACK-perm; TS.
    assert_eq!(syn.options.mss, Some(1460));
    assert_eq!(syn.options.window_scale, Some(7));
    assert!(syn.options.sack_permitted);
    assert!(syn.options.timestamps.is_some_and(|(_, ecr)| ecr == 0));
    assert_eq!(syn.window, 65535, "SYN window is never scaled");
    assert!(syn.src_port >= 49152);
    // Peer sent no WS/TS/SACK: none used afterwards (RFC 7323 §1.3, RFC 2018).
    assert_eq!(h.ep.stats().segments_out, 2);
}

#[test]
fn passive_open_mirrors_options() {
    let (_, synack) = passive(TcpConfig::default(), TcpOptions::default());
    assert_eq!(synack.options.mss, Some(1460));
    assert_eq!(synack.options.window_scale, None, "WS only if the peer sent it");
    assert!(!synack.options.sack_permitted);
    assert_eq!(synack.options.timestamps, None);
    let opts = TcpOptions {
        mss: Some(1000),
        window_scale: Some(20),
        sack_permitted: true,
        timestamps: Some((5, 0)),
        ..Default::default()
    };
    let (mut h, synack) = passive(TcpConfig::default(), opts);
    assert_eq!(synack.options.window_scale, Some(7));
    assert!(synack.options.sack_permitted);
    assert_eq!(synack.options.timestamps.map(|t| t.1), Some(5));
    // Peer shift 20 is treated as 14 (RFC 7323 §2.3): window 1 => 16 KiB usable.
    h.pwnd = 1;
    h.popts.timestamps = Some((6, 0));
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![0; 40_000]));
    let o = h.out();
    let sent: usize = o.iter().map(|s| s.1.len()).sum();
    assert_eq!(sent, 9880, "cwnd-bound (IW 10 x 988); unscaled the window would be 1 byte");
    // Effective MSS: 1000 - 12 bytes of timestamps (M-16).
    assert!(o.iter().all(|s| s.1.len() <= 988));
    assert!(o.iter().all(|s| s.0.options.timestamps.is_some()), "TS in every segment");
}

#[test]
fn mss_defaults_and_clamp() {
    // No MSS option: 536 (M-15).
    let (mut h, _) = active(plain(), TcpOptions::default());
    h.app(AppCommand::Write(vec![1; 2000]));
    let o = h.out();
    assert_eq!(o[0].1.len(), 536);
    // A tiny peer MSS is clamped to 48.
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 200]));
    let o = h.out();
    assert_eq!(o[0].1.len(), 48);
    // With timestamps 536 carries 524 (M-16).
    let (mut h, _) = active(
        TcpConfig { sack: false, ..TcpConfig::default() },
        TcpOptions { timestamps: Some((1, 1)), ..Default::default() },
    );
    h.app(AppCommand::Write(vec![1; 2000]));
    let o = h.out();
    assert_eq!(o[0].1.len(), 524);
}

#[test]
fn ipv6_mss_and_default() {
    let now = Instant::now();
    let mut ep = Endpoint::new(TcpConfig::default(), [1; 16], now);
    let a: IpAddr = "fd00::1".parse().unwrap();
    let c = ep.connect(now, a, "[fd00::2]:80".parse().unwrap()).unwrap();
    let mut syn = None;
    ep.poll_transmit(now, &mut |_, _, r, _| syn = Some(*r));
    assert_eq!(syn.unwrap().options.mss, Some(1440));
    assert!(ep.state(c).is_some());
    // No active open to multicast/broadcast (M-46).
    assert!(ep.connect(now, US, "224.0.0.1:80".parse().unwrap()).is_err());
    assert!(ep.connect(now, US, "255.255.255.255:80".parse().unwrap()).is_err());
}

#[test]
fn simultaneous_open() {
    let mut h = H::new(plain());
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    let syn = h.out()[0].0;
    h.port = syn.src_port;
    // Peer's SYN crosses ours (M-10).
    h.send("S", &[]);
    assert_eq!(h.state(), Some(State::SynReceived));
    let o = h.out();
    assert!(o[0].0.flags.syn && o[0].0.flags.ack);
    assert_eq!(o[0].0.seq, syn.seq);
    // Its SYN-ACK (repeating its SYN, SEQ = IRS) acknowledges ours: ESTABLISHED, and a
    // plain ACK goes back (not another SYN-ACK, or two such stacks would ping-pong).
    h.pseq = PISS;
    h.pack = syn.seq.wrapping_add(1);
    h.send("SA", &[]);
    assert_eq!(h.state(), Some(State::Established));
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert!(o[0].0.flags.ack && !o[0].0.flags.syn);
    assert_eq!(o[0].0.ack, PISS.wrapping_add(1));
    assert!(h.conn_evs().iter().any(|e| matches!(e, SocketEvent::Connected { .. })));
}

#[test]
fn syn_sent_rst_rules() {
    let mut h = H::new(plain());
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    let syn = h.out()[0].0;
    h.port = syn.src_port;
    // RST without ACK: ignored.
    h.send("R", &[]);
    assert_eq!(h.state(), Some(State::SynSent));
    // ACK not acknowledging our SYN: RST <SEQ=SEG.ACK>, stay.
    h.pack = syn.seq.wrapping_add(5);
    h.send("A", &[]);
    let o = h.out();
    assert!(o[0].0.flags.rst && o[0].0.seq == syn.seq.wrapping_add(5));
    assert_eq!(h.state(), Some(State::SynSent));
    // RST with a bad ACK: dropped (never RST a RST).
    h.send("RA", &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.state(), Some(State::SynSent));
    // RST acking our SYN: ConnectionRefused.
    h.pack = syn.seq.wrapping_add(1);
    h.send("RA", &[]);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::ConnectionRefused), SocketEvent::Closed]);
    assert_eq!(h.ep.conn_count(), 0);
}

#[test]
fn syn_retries_then_timed_out() {
    let cfg = TcpConfig { syn_retries: 3, ..plain() };
    let mut h = H::new(cfg);
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    assert_eq!(h.out().len(), 1);
    // Retransmissions after 1, 2, 4 s (RFC 6298 §2.1, §5.5).
    for expect in [1000, 2000, 4000] {
        assert_eq!(h.run_timer(Duration::from_secs(100)), ms(expect));
        let o = h.out();
        assert!(o[0].0.flags.syn);
    }
    assert_eq!(h.run_timer(Duration::from_secs(100)), ms(8000));
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::TimedOut), SocketEvent::Closed]);
    assert_eq!(h.ep.conn_count(), 0);
}

#[test]
fn syn_received_rst_returns_to_listen() {
    let mut h = H::new(plain());
    h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 8).unwrap();
    h.send("S", &[]);
    let synack = h.out()[0].0;
    assert_eq!(h.ep.conn_count(), 1);
    // M-11: RST in SYN-RECEIVED from a passive open -> back to LISTEN, no event.
    h.pack = synack.seq.wrapping_add(1);
    h.send("R", &[]);
    assert_eq!(h.ep.conn_count(), 0);
    assert!(h.evs().is_empty());
    // The listener still works.
    h.pseq = 5;
    h.send("S", &[]);
    assert!(h.out()[0].0.flags.syn);
}

#[test]
fn syn_received_retransmits_and_bad_ack_gets_rst() {
    let mut h = H::new(plain());
    h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 8).unwrap();
    h.send("S", &[]);
    let synack = h.out()[0].0;
    // A retransmitted SYN gets the SYN-ACK again.
    h.pseq = PISS;
    h.send("S", &[]);
    let o = h.out();
    assert!(o[0].0.flags.syn && o[0].0.flags.ack && o[0].0.seq == synack.seq);
    // An ACK for something else: RST <SEQ=SEG.ACK>.
    h.pack = synack.seq.wrapping_add(100);
    h.send("A", &[]);
    let o = h.out();
    assert!(o[0].0.flags.rst && o[0].0.seq == synack.seq.wrapping_add(100));
    // The SYN-ACK is retransmitted on the timer.
    assert_eq!(h.run_timer(Duration::from_secs(10)), ms(1000));
    assert!(h.out()[0].0.flags.syn);
}

#[test]
fn closed_port_rst_fields() {
    let mut h = H::new(plain());
    // No ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; SYN and FIN count.
    h.pseq = 100;
    h.send("S", &[]);
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert!(o[0].0.flags.rst && o[0].0.flags.ack);
    assert_eq!((o[0].0.seq, o[0].0.ack), (0, 101));
    assert_eq!((o[0].0.src_port, o[0].0.dst_port), (LPORT, PEER_PORT));
    h.pseq = 200;
    h.send("F", b"abc");
    assert_eq!(h.out()[0].0.ack, 204);
    // With ACK: <SEQ=SEG.ACK><CTL=RST>.
    h.pack = 777;
    h.send("A", b"xy");
    let o = h.out();
    assert!(o[0].0.flags.rst && !o[0].0.flags.ack);
    assert_eq!(o[0].0.seq, 777);
    // Never RST a RST.
    h.send("RA", &[]);
    assert!(h.out().is_empty());
    // A SYN-ACK arriving at a listener gets a RST.
    h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 1).unwrap();
    h.send("SA", &[]);
    assert!(h.out()[0].0.flags.rst);
    // SYNs from broadcast/multicast sources are ignored (M-57/M-63).
    let r = h.seg("S");
    h.ep.handle_segment(h.now, "255.255.255.255".parse().unwrap(), US, &r, &[]);
    h.ep.handle_segment(h.now, "224.1.1.1".parse().unwrap(), US, &r, &[]);
    assert!(h.out().is_empty());
    assert!(h.ep.stats().rst_out >= 4);
}

#[test]
fn listen_addr_in_use_and_wildcards() {
    let mut ep = Endpoint::new(plain(), [0; 16], Instant::now());
    let a = SocketAddr::new(US, 80);
    ep.listen(ListenAddr::Addr(a), 4).unwrap();
    assert_eq!(ep.listen(ListenAddr::Addr(a), 4).unwrap_err().kind(), ErrorKind::AddrInUse);
    ep.listen(ListenAddr::Addr("0.0.0.0:81".parse().unwrap()), 4).unwrap();
    ep.listen(ListenAddr::Any, 4).unwrap();
    assert_eq!(ep.listen(ListenAddr::Any, 4).unwrap_err().kind(), ErrorKind::AddrInUse);
    let now = Instant::now();
    // A SYN to any address/port is accepted by Any; local is what the client dialled.
    let dialled: IpAddr = "192.0.2.9".parse().unwrap();
    let syn = TcpRepr {
        src_port: 999,
        dst_port: 4444,
        seq: 1,
        ack: 0,
        flags: flags("S"),
        window: 1000,
        urgent: 0,
        options: TcpOptions::default(),
    };
    ep.handle_segment(now, PEER, dialled, &syn, &[]);
    let mut got = None;
    ep.poll_transmit(now, &mut |s, _, r, _| got = Some((s, *r)));
    let (s, r) = got.unwrap();
    assert_eq!(s, dialled);
    assert!(r.flags.syn && r.flags.ack && r.src_port == 4444);
    // The unspecified-address listener on 81 takes SYNs for any local ip.
    let syn81 = TcpRepr { dst_port: 81, ..syn };
    ep.handle_segment(now, PEER, US, &syn81, &[]);
    assert_eq!(ep.conn_count(), 2);
}

#[test]
fn listener_bounds_half_open_and_backlog() {
    let cfg = TcpConfig { max_half_open: 3, syncookies: false, ..plain() };
    let mut h = H::new(cfg);
    let lid = h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 2).unwrap();
    for p in 0..5u16 {
        let r = TcpRepr { src_port: 6000 + p, ..h.seg("S") };
        h.raw(r, &[]);
    }
    assert_eq!(h.ep.conn_count(), 3, "max_half_open = 3");
    assert_eq!(h.ep.stats().syn_dropped, 2);
    let synacks = h.out();
    assert_eq!(synacks.len(), 3);
    // Complete the three handshakes: the accept queue (backlog 2) takes two; the third
    // final ACK is dropped and the connection stays half-open.
    for (sa, _) in &synacks {
        let r = TcpRepr {
            src_port: sa.dst_port,
            seq: PISS.wrapping_add(1),
            ack: sa.seq.wrapping_add(1),
            flags: flags("A"),
            ..h.seg("A")
        };
        h.raw(r, &[]);
    }
    let acc = h.evs().iter().filter(|e| matches!(e, Event::Accepted { .. })).count();
    assert_eq!(acc, 2);
    h.send("S", &[]);
    assert_eq!(h.ep.conn_count(), 3, "accept queue full: SYN dropped");
    h.ep.listener_accepted(lid);
    h.pseq = 77;
    h.send("S", &[]);
    assert_eq!(h.ep.conn_count(), 4);
    // Closing the listener resets the queued (1) and half-open (2) connections.
    h.out();
    h.ep.close_listener(h.now, lid);
    let o = h.out();
    assert_eq!(o.iter().filter(|s| s.0.flags.rst).count(), 3);
    assert_eq!(h.ep.conn_count(), 1, "the accepted connection is untouched");
}

#[test]
fn listen_coexists_with_connections() {
    // M-42: a listener and a connection from the same local port.
    let (mut h, _) = passive(plain(), TcpOptions::default());
    let c1 = h.conn;
    let r = TcpRepr { src_port: 7001, seq: 50, ..h.seg("S") };
    h.raw(r, &[]);
    assert_eq!(h.ep.conn_count(), 2);
    assert_eq!(h.ep.state(c1), Some(State::Established), "M-41: not disturbed");
}

// ----------------------------------------------------------------------------------------
// Data transfer, acceptability, ACK generation
// ----------------------------------------------------------------------------------------

#[test]
fn delayed_ack_and_every_second_segment() {
    let mut h = active_plain();
    h.send("PA", &[1; 1000]);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Data(vec![1; 1000])]);
    assert!(h.out().is_empty(), "first segment: ACK delayed");
    assert_eq!(h.run_timer(Duration::from_secs(1)), ms(40), "delayed ACK < 500 ms (M-40)");
    let o = h.out();
    assert_eq!(o[0].0.ack, h.pseq);
    // Two full-sized segments: immediate ACK (RFC 5681 §4.2).
    h.send("A", &[2; 1000]);
    assert!(h.out().is_empty());
    h.send("A", &[3; 1000]);
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0.ack, h.pseq);
}

#[test]
fn acks_coalesced_across_segments() {
    // M-58/M-59: several segments processed before one ACK is sent.
    let mut h = active_plain();
    for _ in 0..6 {
        h.send("A", &[9; 1000]);
    }
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0.ack, h.pseq);
}

#[test]
fn out_of_order_acked_at_once_and_reassembled() {
    let (mut h, _) = active(
        TcpConfig { timestamps: false, ..TcpConfig::default() },
        TcpOptions { mss: Some(1460), sack_permitted: true, ..Default::default() },
    );
    let base = h.pseq;
    h.pseq = base.wrapping_add(100);
    h.send("A", &[b'b'; 100]);
    let o = h.out();
    assert_eq!(o.len(), 1, "out-of-order: immediate duplicate ACK");
    assert_eq!(o[0].0.ack, base);
    assert_eq!(o[0].0.options.sack_blocks[0], Some((base.wrapping_add(100), base.wrapping_add(200))));
    h.pseq = base.wrapping_add(300);
    h.send("A", &[b'd'; 100]);
    let o = h.out();
    // Most recent block first (RFC 2018 §4).
    assert_eq!(o[0].0.options.sack_blocks[0], Some((base.wrapping_add(300), base.wrapping_add(400))));
    assert_eq!(o[0].0.options.sack_blocks[1], Some((base.wrapping_add(100), base.wrapping_add(200))));
    assert!(h.conn_evs().is_empty());
    // Overlap: first data wins.
    h.pseq = base.wrapping_add(150);
    h.send("A", &[b'X'; 150]);
    h.out();
    // Hole filler: immediate ACK, everything delivered in order.
    h.pseq = base;
    h.send("A", &[b'a'; 100]);
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0.ack, base.wrapping_add(400));
    assert_eq!(o[0].0.options.sack_blocks[0], None);
    let got: Vec<u8> = h
        .conn_evs()
        .into_iter()
        .flat_map(|e| match e {
            SocketEvent::Data(d) => d,
            _ => vec![],
        })
        .collect();
    let mut expect = vec![b'a'; 100];
    expect.extend([b'b'; 100]);
    expect.extend([b'X'; 100]);
    expect.extend([b'd'; 100]);
    assert_eq!(got, expect);
}

#[test]
fn ooo_queue_bounded_in_bytes() {
    let cfg = TcpConfig { max_ooo_bytes: 4000, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), ..Default::default() });
    let base = h.pseq;
    h.pseq = base.wrapping_add(10);
    h.send("A", &[1; 5000]);
    h.out();
    h.pseq = base;
    h.send("A", &[0; 10]);
    // The queue is charged its allocations plus a per-entry overhead (as Linux's truesize).
    let kept = 4000 - super::reassembly::ENTRY_OVERHEAD;
    assert_eq!(delivered(&mut h), 10 + kept, "only {kept} out-of-order bytes were kept");
    assert_eq!(h.ep.stats().ooo_dropped, 1, "the rest was a counted drop");
}

fn delivered(h: &mut H) -> usize {
    h.conn_evs()
        .iter()
        .map(|e| match e {
            SocketEvent::Data(d) => d.len(),
            _ => 0,
        })
        .sum()
}

/// A bound below one segment's charge held only a sub-segment piece, whose SACK block no
/// sender acts on: under reordering every overtaking segment cost a timeout (simulation
/// seeds 96025, 161869, …). The queue has room for two full segments whatever the bound.
#[test]
fn an_ooo_bound_below_one_segment_still_holds_two() {
    let cfg = TcpConfig { max_ooo_bytes: 100, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), ..Default::default() });
    let base = h.pseq;
    h.pseq = base.wrapping_add(10);
    h.send("A", &[1; 1460]);
    h.send("A", &[2; 1460]);
    h.out();
    h.pseq = base;
    h.send("A", &[0; 10]);
    assert_eq!(delivered(&mut h), 10 + 2 * 1460);
    assert_eq!(h.ep.stats().ooo_dropped, 0);
}

#[test]
fn unacceptable_segments_get_ack_and_left_edge_trim() {
    let mut h = active_plain();
    h.send("A", &[1; 100]);
    h.out();
    h.advance(ms(100));
    h.out();
    h.conn_evs();
    // The application reads them (later data is held back for coalescing until it does).
    h.app(AppCommand::ReadCredit(100));
    let nxt = h.pseq;
    // Entirely old: ACK <SEQ=SND.NXT><ACK=RCV.NXT>, dropped.
    h.pseq = nxt.wrapping_sub(100);
    h.send("A", &[1; 100]);
    let o = h.out();
    assert_eq!(o[0].0.ack, nxt);
    assert!(h.conn_evs().is_empty());
    // Beyond the window: ACK and drop.
    h.pseq = nxt.wrapping_add(2_000_000);
    h.send("A", &[1; 10]);
    assert_eq!(h.out()[0].0.ack, nxt);
    // Straddling the left edge: only the new bytes are used.
    h.pseq = nxt.wrapping_sub(50);
    let mut p = vec![1u8; 50];
    p.extend([2u8; 50]);
    h.send("A", &p);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Data(vec![2; 50])]);
}

#[test]
fn zero_receive_window_accepts_only_acks() {
    let cfg = TcpConfig { recv_buf: super::MIN_RECV_BUF, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), ..Default::default() });
    h.send("A", &[1; 1000]);
    h.send("A", &[1; 1000]);
    h.send("A", &[1; super::MIN_RECV_BUF - 2000]);
    let o = h.out();
    assert_eq!(o.last().unwrap().0.window, 0, "buffer full: window 0");
    // All segments delivered (coalesced into as few Data events as fit a chunk).
    let delivered: usize = h.conn_evs().iter().map(|e| if let SocketEvent::Data(d) = e { d.len() } else { 0 }).sum();
    assert_eq!(delivered, super::MIN_RECV_BUF);
    // Data at RCV.NXT with a zero window is not acceptable, but its ACK is processed (M-66).
    h.app(AppCommand::Write(vec![5; 100]));
    let o = h.out();
    assert_eq!(o[0].1.len(), 100);
    h.pack = h.pack.wrapping_add(100);
    h.send("A", &[7; 10]);
    h.pseq = h.pseq.wrapping_sub(10);
    let evs = h.conn_evs();
    assert_eq!(evs, vec![SocketEvent::SendCredit(100)], "ack processed, data dropped");
    let o = h.out();
    assert_eq!(o[0].0.window, 0);
    // The app reads: a window update is sent at once (window had closed).
    h.app(AppCommand::ReadCredit(super::MIN_RECV_BUF));
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert_eq!(usize::from(o[0].0.window), super::MIN_RECV_BUF);
}

#[test]
fn receiver_sws_avoidance() {
    // The buffer is charged the data plus one event's overhead per chunk (`rcvqueue`), so
    // 9,900 bytes take more than the 10,000 - 100 left: the window cannot shrink, though.
    let cfg = TcpConfig { recv_buf: 10_000, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), ..Default::default() });
    h.send("A", &[1; 5000]);
    h.send("A", &[1; 4900]);
    let o = h.out();
    assert_eq!(o.last().unwrap().0.window, 100);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Data(vec![1; 9900])], "one chunk for the batch");
    // Reading 500 bytes must not move the right edge (< min(buf/2, MSS) = 1460, M-39).
    h.app(AppCommand::ReadCredit(500));
    assert!(h.out().is_empty(), "no window update for a tiny opening");
    h.send("A", &[1; 50]);
    h.advance(ms(50));
    let o = h.out();
    assert_eq!(o.last().unwrap().0.window, 50, "right edge unchanged");
    assert!(h.conn_evs().is_empty(), "held back while the first chunk is unread");
    h.app(AppCommand::ReadCredit(9400));
    assert_eq!(h.conn_evs(), vec![SocketEvent::Data(vec![1; 50])]);
    h.app(AppCommand::ReadCredit(50));
    let o = h.out();
    assert_eq!(o[0].0.window, 10_000);
}

#[test]
fn send_credit_and_write_beyond_credit() {
    let cfg = TcpConfig { send_buf: 6000, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 6500]));
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::WouldBlock)]);
    let o = h.out();
    let sent: usize = o.iter().map(|s| s.1.len()).sum();
    assert_eq!(sent, 6000);
    assert!(o.last().unwrap().0.flags.psh, "PSH on the last buffered segment (M-60)");
    assert!(!o[0].0.flags.psh);
    h.pack = h.pack.wrapping_add(2000);
    h.send("A", &[]);
    assert_eq!(h.conn_evs(), vec![SocketEvent::SendCredit(2000)]);
}

/// A send buffer of a few bytes sent one tiny segment per round trip (simulation seeds
/// 126678, 132517, …: 300 kB not delivered in two hours of simulated time under loss); a
/// connection gets `MIN_SEND_BUF` at least, as Linux's `SOCK_MIN_SNDBUF`.
#[test]
fn a_tiny_send_buffer_is_raised_to_the_minimum() {
    let cfg = TcpConfig { send_buf: 1, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; super::MIN_SEND_BUF]));
    assert_eq!(h.conn_evs(), vec![], "the whole minimum fits");
    h.app(AppCommand::Write(vec![1]));
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::WouldBlock)], "one byte more does not");
}

/// A receive buffer of one byte advertised a one-byte window that auto-tuning never grew,
/// so a peer sent one byte per round trip (simulation seed 1,334,867: 300 kB not delivered
/// in two hours); a connection gets `MIN_RECV_BUF` at least, as Linux's `SOCK_MIN_RCVBUF`.
#[test]
fn a_tiny_receive_buffer_is_raised_to_the_minimum() {
    let cfg = TcpConfig { recv_buf: 1, ..plain() };
    let mut h = H::new(cfg);
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    let syn = h.out()[0].0;
    assert_eq!(usize::from(syn.window), super::MIN_RECV_BUF, "the SYN offers the minimum");
}

#[test]
fn nagle_and_nodelay() {
    let mut h = active_plain();
    h.app(AppCommand::Write(vec![1; 10]));
    assert_eq!(h.out().len(), 1, "nothing in flight: small segment goes");
    h.app(AppCommand::Write(vec![2; 10]));
    assert!(h.out().is_empty(), "Nagle holds a small segment while one is unacked");
    h.pack = h.pack.wrapping_add(10);
    h.send("A", &[]);
    let o = h.out();
    assert_eq!(o[0].1, vec![2; 10], "released by the ACK");
    h.app(AppCommand::SetNodelay(true));
    h.app(AppCommand::Write(vec![3; 10]));
    assert_eq!(h.out().len(), 1, "TCP_NODELAY (M-17)");
}

#[test]
fn sender_sws_override_timer() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.pwnd = 3000;
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![1; 3000]));
    assert_eq!(h.out().len(), 3);
    // Peer acks all but opens only 300 bytes (< MSS and < max window/2): wait.
    h.pack = h.pack.wrapping_add(3000);
    h.pwnd = 300;
    h.app(AppCommand::Write(vec![1; 2000]));
    h.send("A", &[]);
    assert!(h.out().is_empty(), "sender SWS (M-38)");
    // The override timer forces it out.
    h.run_timer(Duration::from_secs(5));
    let o = h.out();
    assert_eq!(o[0].1.len(), 300);
}

// ----------------------------------------------------------------------------------------
// RST, SYN, challenge ACKs, PAWS
// ----------------------------------------------------------------------------------------

#[test]
fn rst_in_window_rules() {
    let mut h = active_plain();
    // In window but not exact: challenge ACK (RFC 5961 §3.2).
    let exact = h.pseq;
    h.pseq = exact.wrapping_add(10);
    h.send("R", &[]);
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert!(o[0].0.flags.ack && !o[0].0.flags.rst);
    assert_eq!(o[0].0.ack, exact);
    assert_eq!(h.state(), Some(State::Established));
    // Rate limited per connection.
    h.pseq = exact.wrapping_add(20);
    h.send("R", &[]);
    assert!(h.out().is_empty());
    // Out of window: dropped silently.
    h.advance(ms(600));
    h.pseq = exact.wrapping_add(5_000_000);
    h.send("R", &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.state(), Some(State::Established));
    // Exact: reset; distinguishable from close (M-12).
    h.pseq = exact;
    h.send("R", &[]);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::ConnectionReset), SocketEvent::Closed]);
    assert_eq!(h.ep.conn_count(), 0);
    assert!(h.out().is_empty(), "no RST for a RST");
}

#[test]
fn syn_in_synchronized_state_gets_challenge_ack() {
    let mut h = active_plain();
    let nxt = h.pseq;
    h.pseq = nxt.wrapping_add(1000);
    h.send("S", &[]);
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert!(o[0].0.flags.ack && !o[0].0.flags.rst && !o[0].0.flags.syn);
    assert_eq!(o[0].0.ack, nxt);
    assert_eq!(h.state(), Some(State::Established));
    assert_eq!(h.ep.stats().challenge_acks, 1);
}

#[test]
fn ack_acceptability_rfc5961() {
    let mut h = active_plain();
    h.app(AppCommand::Write(vec![1; 100]));
    h.out();
    // ACK of data never sent: ACK and drop (also the data).
    h.pack = h.pack.wrapping_add(500);
    h.send("A", &[9; 10]);
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert!(h.conn_evs().is_empty());
    // Ancient ACK (below SND.UNA - MAX.SND.WND): dropped with a (rate-limited) ACK.
    h.advance(ms(600));
    h.pack = h.pack.wrapping_sub(500 + 1_000_000);
    h.pseq = h.pseq.wrapping_sub(10);
    h.send("A", &[9; 10]);
    assert_eq!(h.out().len(), 1);
    assert!(h.conn_evs().is_empty());
}

#[test]
fn paws_and_ts_recent() {
    let cfg = TcpConfig { sack: false, window_scale: false, ..TcpConfig::default() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), timestamps: Some((1000, 1)), ..Default::default() });
    h.popts.timestamps = Some((1010, 1));
    h.send("A", &[1; 10]);
    h.advance(ms(50));
    let o = h.out();
    h.conn_evs();
    assert_eq!(o[0].0.options.timestamps.map(|t| t.1), Some(1010), "TS.Recent echoed");
    // Old TSval: PAWS rejects (RFC 7323 §5.3), ACKed and dropped.
    h.popts.timestamps = Some((1005, 1));
    h.send("A", &[2; 10]);
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert!(h.conn_evs().iter().all(|e| !matches!(e, SocketEvent::Data(_))));
    assert_eq!(h.ep.stats().paws_rejected, 1);
    // A segment beyond Last.ACK.sent does not update TS.Recent (RFC 7323 §4.3).
    h.pseq = h.pseq.wrapping_sub(10);
    let nxt = h.pseq;
    h.pseq = nxt.wrapping_add(100);
    h.popts.timestamps = Some((5000, 1));
    h.send("A", &[3; 10]);
    let o = h.out();
    assert_eq!(o[0].0.options.timestamps.map(|t| t.1), Some(1010));
    // RSTs are exempt from PAWS.
    h.pseq = nxt;
    h.popts.timestamps = Some((1, 1));
    h.send("R", &[]);
    assert_eq!(h.ep.conn_count(), 0);
}

// ----------------------------------------------------------------------------------------
// Close
// ----------------------------------------------------------------------------------------

/// TIME-WAIT keeps the TCB for 2*MSL but nothing of the send side: a server that closes
/// first holds one per recent connection (20,000 after an `ab` run against the host).
#[test]
fn time_wait_gives_back_the_send_side() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![7; 20_000]));
    let sent: usize = h.out().iter().map(|(_, p)| p.len()).sum();
    assert!(sent > 0);
    h.pack = h.pack.wrapping_add(sent as u32);
    h.send("A", &[]);
    h.app(AppCommand::Close);
    let mut acked = sent;
    while acked < 20_000 {
        let n: usize = h.out().iter().map(|(_, p)| p.len()).sum();
        assert!(n > 0, "the rest goes out");
        acked += n;
        h.pack = h.pack.wrapping_add(n as u32);
        h.send("A", &[]);
    }
    assert!(h.ep.tx_memory(h.conn).unwrap() > 0, "a send buffer was in use");
    h.pack = h.pack.wrapping_add(1); // our FIN
    h.send("FA", &[]);
    assert_eq!(h.state(), Some(State::TimeWait));
    assert_eq!(h.ep.tx_memory(h.conn), Some(0), "TIME-WAIT holds no send-side memory");
}

#[test]
fn active_close_time_wait_and_fin_reack() {
    let cfg = TcpConfig { msl: Duration::from_secs(10), ..plain() };
    let (mut h, _) = active(cfg, TcpOptions::default());
    h.app(AppCommand::Close);
    assert_eq!(h.state(), Some(State::FinWait1));
    let o = h.out();
    assert!(o[0].0.flags.fin);
    h.pack = h.pack.wrapping_add(1);
    h.send("A", &[]);
    assert_eq!(h.state(), Some(State::FinWait2));
    h.send("FA", &[]);
    assert_eq!(h.state(), Some(State::TimeWait));
    assert_eq!(h.out()[0].0.ack, h.pseq);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Eof]);
    // Retransmitted FIN: re-ACKed, 2*MSL restarts (M-13).
    h.advance(Duration::from_secs(15));
    h.pseq = h.pseq.wrapping_sub(1);
    h.send("FA", &[]);
    assert_eq!(h.out()[0].0.ack, h.pseq);
    h.advance(Duration::from_secs(19));
    assert_eq!(h.state(), Some(State::TimeWait));
    h.advance(Duration::from_secs(2));
    assert_eq!(h.state(), None);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Closed]);
}

#[test]
fn passive_close_last_ack() {
    let mut h = active_plain();
    h.send("FA", &[]);
    assert_eq!(h.state(), Some(State::CloseWait));
    assert_eq!(h.conn_evs(), vec![SocketEvent::Eof]);
    h.out();
    // Half-close: we can still send (CLOSE-WAIT).
    h.app(AppCommand::Write(vec![1; 10]));
    assert_eq!(h.out()[0].1.len(), 10);
    h.app(AppCommand::ShutdownWrite);
    assert_eq!(h.state(), Some(State::LastAck));
    let o = h.out();
    assert!(o[0].0.flags.fin);
    h.pack = h.pack.wrapping_add(11);
    h.send("A", &[]);
    assert_eq!(h.state(), None);
    assert_eq!(h.conn_evs(), vec![SocketEvent::SendCredit(10), SocketEvent::Closed]);
}

#[test]
fn simultaneous_close_via_closing() {
    let mut h = active_plain();
    h.app(AppCommand::ShutdownWrite);
    h.out();
    h.send("FA", &[]); // their FIN does not ack ours
    assert_eq!(h.state(), Some(State::Closing));
    h.out();
    h.pack = h.pack.wrapping_add(1);
    h.send("A", &[]);
    assert_eq!(h.state(), Some(State::TimeWait));
}

#[test]
fn half_close_keeps_reading() {
    let mut h = active_plain();
    h.app(AppCommand::ShutdownWrite);
    h.out();
    h.pack = h.pack.wrapping_add(1);
    h.send("A", &[]);
    assert_eq!(h.state(), Some(State::FinWait2));
    h.send("A", b"still reading");
    assert_eq!(h.conn_evs(), vec![SocketEvent::Data(b"still reading".to_vec())]);
    h.app(AppCommand::Write(vec![1]));
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::BrokenPipe)]);
}

#[test]
fn close_with_unread_data_sends_rst() {
    let mut h = active_plain();
    h.send("A", b"unread");
    h.conn_evs();
    h.app(AppCommand::Close);
    let o = h.out();
    assert!(o.iter().any(|s| s.0.flags.rst));
    assert_eq!(h.ep.conn_count(), 0);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Closed]);
}

#[test]
fn abort_sends_rst() {
    let mut h = active_plain();
    h.app(AppCommand::Abort);
    let o = h.out();
    assert!(o[0].0.flags.rst);
    assert_eq!(o[0].0.seq, h.pack);
    assert_eq!(h.ep.conn_count(), 0);
    // Unknown conn: ignored.
    h.app(AppCommand::Write(vec![1]));
    assert!(h.out().is_empty());
}

/// Linux's SHUT_RD changes nothing in TCP: data that arrives after it is still
/// delivered to the socket (which reads it, then end of file) and acknowledged as before.
#[test]
fn shutdown_read_still_delivers_as_linux() {
    let mut h = active_plain();
    h.app(AppCommand::ShutdownRead);
    h.send("A", &[1; 1000]);
    h.send("A", &[1; 1000]);
    let o = h.out();
    assert_eq!(o[0].0.ack, h.pseq);
    let data: usize = h.conn_evs().iter().map(|e| if let SocketEvent::Data(d) = e { d.len() } else { 0 }).sum();
    assert_eq!(data, 2000, "both segments reach the socket");
}

#[test]
fn time_wait_bounded() {
    let cfg = TcpConfig { max_time_wait: 0, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions::default());
    h.app(AppCommand::ShutdownWrite);
    h.out();
    h.pack = h.pack.wrapping_add(1);
    h.send("FA", &[]);
    assert_eq!(h.out().len(), 1, "the FIN's ACK goes out first");
    assert_eq!(h.ep.conn_count(), 0, "no TIME-WAIT slot: closed at once");
    assert_eq!(h.ep.stats().time_wait_overflow, 1);
}

mod attack;
mod attack2;
mod cookies;
mod more;
mod orphans;
mod recovery;
mod review;
mod review11;
mod review13;
mod review14;
mod review22;
mod review7;
mod rxmem;

/// The core builds the IP packets (the actor only moves them): each connection's TTL is in
/// its packets' headers, a listener's TTL reaches its SYN-ACK, and the source of an active
/// open follows the destination's scope.
#[test]
fn packets_carry_ttls_and_sources_follow_scope() {
    use crate::buf::Pool;
    let now = Instant::now();
    let mut ep = Endpoint::new(TcpConfig::default(), [3; 16], now);
    ep.set_local_addrs(vec![Ipv4Addr::new(10, 0, 0, 1)], vec!["fe80::2".parse().unwrap(), "fd00::2".parse().unwrap()]);
    assert_eq!(ep.source_for(PEER), Some(US));
    assert_eq!(ep.source_for("fe80::1".parse().unwrap()), Some("fe80::2".parse().unwrap()));
    assert_eq!(ep.source_for("fd09::1".parse().unwrap()), Some("fd00::2".parse().unwrap()));
    let pool = Pool::default();
    let ttl_of = |p: &[u8]| p[8]; // IPv4 header byte 8 (RFC 791 §3.1)
    let lid = ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 8).unwrap();
    ep.set_listener_ttl(lid, 9);
    let syn = TcpRepr {
        src_port: PEER_PORT,
        dst_port: LPORT,
        seq: 1000,
        ack: 0,
        flags: flags("S"),
        window: 65535,
        urgent: 0,
        options: TcpOptions::default(),
    };
    ep.handle_segment(now, PEER, US, &syn, &[]);
    let mut out = Vec::new();
    ep.poll_packets(now, &pool, &mut out);
    assert_eq!(out.len(), 1, "the SYN-ACK");
    assert_eq!(ttl_of(&out[0]), 9, "the listener's TTL from the SYN-ACK on");
    let c = ep.connect(now, ep.source_for(PEER).unwrap(), SocketAddr::new(PEER, 81)).unwrap();
    ep.set_conn_ttl(c, 200);
    out.clear();
    ep.poll_packets(now, &pool, &mut out);
    assert_eq!(out.len(), 1, "the SYN");
    assert_eq!(ttl_of(&out[0]), 200);
    assert_eq!((&out[0][12..16], &out[0][16..20]), (&[10, 0, 0, 1][..], &[10, 0, 0, 2][..]), "addresses");
}

/// IPv4 identification (RFC 6864 §4.1: any value for an atomic datagram): each connection
/// counts on its own, and a segment without a connection (a RST for a closed port) carries
/// 0, as Linux does. With one counter shared by every packet, a prober reading the
/// identification of two RSTs learned how many packets the stack had sent to others in
/// between (the idle scan, `nmap -sI`).
#[test]
fn ipv4_identification_tells_a_prober_nothing() {
    use crate::buf::Pool;
    let now = Instant::now();
    let mut ep = Endpoint::new(TcpConfig::default(), [3; 16], now);
    ep.set_local_addrs(vec![Ipv4Addr::new(10, 0, 0, 1)], vec![]);
    let pool = Pool::default();
    let ident_of = |p: &[u8]| u16::from_be_bytes([p[4], p[5]]); // RFC 791 §3.1
    let packets = |ep: &mut Endpoint, now: Instant| {
        let mut out = Vec::new();
        ep.poll_packets(now, &pool, &mut out);
        out
    };
    let probe = |ep: &mut Endpoint, port: u16| {
        let mut synack = TcpRepr {
            src_port: 9999,
            dst_port: port,
            seq: 5,
            ack: 77,
            flags: flags("SA"),
            window: 65535,
            urgent: 0,
            options: TcpOptions::default(),
        };
        synack.flags.syn = true;
        ep.handle_segment(now, Ipv4Addr::new(10, 0, 0, 9).into(), US, &synack, &[]);
    };
    probe(&mut ep, 1);
    let before = packets(&mut ep, now);
    // Two connections send their SYNs and resend them in between.
    let a = ep.connect(now, US, SocketAddr::new(PEER, 81)).unwrap();
    let b = ep.connect(now, US, SocketAddr::new(PEER, 82)).unwrap();
    let syns = packets(&mut ep, now);
    let later = now + Duration::from_secs(2);
    ep.handle_timeout(later, a);
    ep.handle_timeout(later, b);
    let resent = packets(&mut ep, later);
    probe(&mut ep, 2);
    let after = packets(&mut ep, later);
    assert_eq!((before.len(), syns.len(), after.len()), (1, 2, 1), "RST, two SYNs, RST");
    assert_eq!((ident_of(&before[0]), ident_of(&after[0])), (0, 0), "a RST without a connection");
    assert_eq!(resent.len(), 2, "both SYNs resent");
    for (syn, again) in syns.iter().zip(&resent) {
        assert_eq!(ident_of(again), ident_of(syn).wrapping_add(1), "each connection counts alone");
    }
    assert_ne!(ident_of(&syns[0]).wrapping_add(1), ident_of(&syns[1]), "not one shared counter");
}
