//! Review 14: BBR's pacing (`pacing`), the send-buffer and out-of-order floors, attacked
//! through scripted peers on the virtual clock.

use super::*;
use crate::proto::tcp::IcmpErrorKind;
use std::collections::VecDeque;

fn bbr() -> TcpConfig {
    TcpConfig { congestion: CongestionAlgorithm::Bbr, ..sack_cfg() }
}

/// Active open whose SYN-ACK arrives `rtt` after the SYN (the handshake gives an RTT).
fn active_rtt(cfg: TcpConfig, opts: TcpOptions, rtt: Duration) -> H {
    let mut h = H::new(cfg);
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    complete_active_after(&mut h, opts, rtt);
    h
}

/// Passive open on US:LPORT: the peer's SYN carries `syn_opts`; `between` runs once the
/// SYN-ACK is out (advance the clock, repeat the SYN, …) and gives the handshake ACK's
/// options. Returns the harness holding the accepted connection.
fn passive_with(cfg: TcpConfig, syn_opts: TcpOptions, between: impl FnOnce(&mut H, &TcpRepr) -> TcpOptions) -> H {
    let mut h = H::new(cfg);
    h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 8).unwrap();
    h.popts = syn_opts;
    h.send("S", &[]);
    let synack = h.out()[0].0;
    assert!(synack.flags.syn && synack.flags.ack);
    h.popts = between(&mut h, &synack);
    h.pack = synack.seq.wrapping_add(1);
    h.send("A", &[]);
    let ev = h.evs();
    let Event::Accepted { conn, .. } = &ev[0] else { panic!("{ev:?}") };
    h.conn = *conn;
    h
}

/// The application writes 10,000 bytes (ten segments at MSS 1000, the initial window);
/// how many data segments leave at once.
fn first_burst(h: &mut H) -> usize {
    h.app(AppCommand::Write(vec![7; 10_000]));
    seqs(&h.out()).len()
}

/// What a scripted transfer saw.
#[derive(Debug, Default)]
struct Run {
    /// Bytes (and the FIN) the peer acknowledged.
    acked: usize,
    fin_acked: bool,
    /// Virtual time until everything was acknowledged (or the limit).
    took: Duration,
    /// The most data segments one `out()` emitted after the first round trip.
    max_burst: usize,
}

/// A lossless path of `rtt`: each data segment reaches the peer after rtt/2; its
/// cumulative ACK (echoing `tsecr(now, their tsval)` when timestamps are on) is back rtt/2
/// later. The clock moves 1 ms at a time, firing our timers; `at` is called every step.
fn drive(
    h: &mut H,
    rtt: Duration,
    total: usize,
    limit: Duration,
    tsecr: &dyn Fn(u32) -> u32,
    at: &mut dyn FnMut(&mut H),
) -> Run {
    let start = h.now;
    let base = h.pack;
    let mut acks: VecDeque<(Instant, u32, Option<u32>)> = VecDeque::new();
    let mut r = Run::default();
    let mut fin_end = None;
    while h.now < start + limit {
        at(h);
        let o = h.out();
        let data = o.iter().filter(|s| !s.1.is_empty() || s.0.flags.fin).count();
        if h.now >= start + rtt {
            r.max_burst = r.max_burst.max(data);
        }
        for (s, p) in &o {
            let end = s.seq.wrapping_add(s.segment_len(p.len()));
            if s.flags.fin {
                fin_end = Some(end);
            }
            let ts = s.options.timestamps.map(|t| t.0);
            acks.push_back((h.now + rtt, end, ts));
        }
        while acks.front().is_some_and(|a| a.0 <= h.now) {
            let (_, end, ts) = acks.pop_front().unwrap();
            if seq::gt(end, h.pack) {
                h.pack = end;
            }
            if let (Some(ts), Some(_)) = (ts, h.popts.timestamps) {
                h.popts.timestamps = Some((1, tsecr(ts)));
            }
            h.send("A", &[]);
        }
        r.acked = seq::dist(base, h.pack);
        r.fin_acked = fin_end.is_some_and(|f| seq::ge(h.pack, f));
        if r.acked >= total && acks.is_empty() {
            break;
        }
        h.advance(ms(1));
    }
    r.took = h.now.saturating_duration_since(start);
    r
}

fn no_echo_change(ts: u32) -> u32 {
    ts
}

/// `total` bytes and the FIN over a path of `rtt`, sent by `cfg` with pacing and without:
/// both finish, the paced sender's largest burst is smaller, and it takes at most `slack`
/// longer.
fn paced_against_unpaced(cfg: TcpConfig, opts: TcpOptions, rtt: Duration, total: usize, slack: Duration) {
    let run = |pacing: bool| {
        let mut h = active_rtt(TcpConfig { pacing, ..cfg.clone() }, opts, rtt);
        h.app(AppCommand::Write(vec![7; total]));
        h.app(AppCommand::ShutdownWrite);
        drive(&mut h, rtt, total + 1, Duration::from_secs(60), &no_echo_change, &mut |_| {})
    };
    let (p, u) = (run(true), run(false));
    eprintln!("paced {p:?}\nunpaced {u:?}");
    assert!(p.fin_acked && u.fin_acked, "paced {p:?}, unpaced {u:?}");
    assert!(p.max_burst < u.max_burst, "paced {p:?}, unpaced {u:?}");
    assert!(p.took <= u.took + slack, "paced {p:?}, unpaced {u:?}");
}

/// BBR paced over a 50 ms path: 1 MB and the FIN are delivered, in bursts of a quantum
/// (not a window) once the first RTT is known, and no slower than the unpaced sender by
/// more than a few round trips.
#[test]
fn a_paced_transfer_completes_with_its_fin_in_quanta() {
    // 1 MiB: the default send buffer.
    paced_against_unpaced(bbr(), sack_opts(), ms(50), 1 << 20, ms(200));
}

/// The smallest MSS (a peer's MSS 1 is raised to 48): quanta of two 48-byte segments,
/// and the transfer still ends, at most a few round trips later than unpaced.
#[test]
fn a_paced_transfer_at_the_minimum_mss_completes() {
    let opts = TcpOptions { mss: Some(1), sack_permitted: true, ..Default::default() };
    paced_against_unpaced(TcpConfig { nagle: false, ..bbr() }, opts, ms(20), 60_000, ms(100));
}

/// The path MTU drops mid-transfer (smss shrinks with the credit partly spent): the
/// transfer and its FIN still end, within a few seconds.
#[test]
fn a_paced_transfer_survives_an_mtu_drop() {
    let total = 400_000;
    let mut h = active_rtt(bbr(), TcpOptions { mss: Some(1460), sack_permitted: true, ..Default::default() }, ms(20));
    h.app(AppCommand::Write(vec![7; total]));
    h.app(AppCommand::ShutdownWrite);
    let t0 = h.now;
    let mut dropped = false;
    let r = drive(&mut h, ms(20), total + 1, Duration::from_secs(60), &no_echo_change, &mut |h| {
        if !dropped && h.now >= t0 + ms(45) {
            dropped = true;
            let (l, r) = (SocketAddr::new(US, h.port), SocketAddr::new(PEER, PEER_PORT));
            h.ep.handle_icmp_error(h.now, l, r, h.pack, IcmpErrorKind::PacketTooBig(700));
        }
    });
    eprintln!("{r:?}");
    assert!(dropped && r.fin_acked, "{r:?}");
    assert!(r.took < Duration::from_secs(5), "{r:?}");
}

/// A zero window with data queued and the credit spent: the persist probe is not paced
/// (RFC 9293 §3.8.6.1) and, once the window reopens, the paced data flows again.
#[test]
fn zero_window_probes_and_reopening_under_pacing() {
    let mut h = active_rtt(bbr(), sack_opts(), ms(20));
    h.app(AppCommand::Write(vec![7; 1_000_000]));
    let base = h.pack;
    // The first flight (its credit spent), acknowledged with a zero window.
    let o = h.out();
    assert!(!o.is_empty());
    h.advance(ms(20));
    h.pack = o.iter().map(|(s, p)| s.seq.wrapping_add(s.segment_len(p.len()))).fold(h.pack, seq::max);
    h.pwnd = 0;
    h.send("A", &[]);
    h.out();
    assert!(seq::dist(base, h.pack) < 150_000, "data is left to probe with: {}", seq::dist(base, h.pack));
    let mut probes = 0;
    for _ in 0..3000 {
        h.advance(ms(10));
        let o = h.out();
        probes += o.iter().filter(|s| s.1.len() == 1).count();
    }
    assert!(probes >= 2, "{probes} probes in 30 s of zero window");
    h.pwnd = 65535;
    h.send("A", &[]);
    let acked_before = seq::dist(base, h.pack);
    let r = drive(&mut h, ms(20), 1_000_000 - acked_before, Duration::from_secs(10), &no_echo_change, &mut |_| {});
    assert!(seq::dist(base, h.pack) >= 1_000_000, "{r:?}");
}

/// Linux `bbr_init_pacing_rate_from_rtt`: the first window is paced at the handshake's
/// RTT. Over a 100 ms path, 10 segments at 2.89 × cwnd per 100 ms leave a quantum (two
/// segments) at a time, not all at once as a nominal 1 ms RTT would send them.
#[test]
fn the_first_window_is_paced_at_the_handshake_rtt() {
    let mut h = active_rtt(bbr(), sack_opts(), ms(100));
    let first = first_burst(&mut h);
    assert!((1..=2).contains(&first), "first burst {first} segments");
    // The rest follow within about a round trip's share of the rate, not a round trip.
    let mut sent = first;
    for _ in 0..60 {
        h.advance(ms(1));
        sent += seqs(&h.out()).len();
    }
    assert_eq!(sent, 10, "the initial window left within 60 ms");
}

/// The passive side takes the SYN-ACK's round trip the same way.
#[test]
fn a_passive_open_paces_its_first_window_at_the_handshake_rtt() {
    let mut h = passive_with(bbr(), sack_opts(), |h, _| {
        h.advance(ms(100));
        TcpOptions::default()
    });
    let first = first_burst(&mut h);
    assert!((1..=2).contains(&first), "first burst {first} segments");
}

/// Review 16, Karn's rule (RFC 6298 §3) on the passive side: a SYN-ACK resent because the
/// peer repeated its SYN (ours was lost) must not be timed from the first one, as Linux's
/// `tcp_synack_rtt_meas` takes no sample once `req->num_retrans` is set. Otherwise the
/// handshake ACK measures the peer's SYN timeout (here 500 ms on a 10 ms path) and BBR
/// paces its first window at that RTT: a quantum, not the window, leaves at once.
#[test]
fn a_syn_ack_resent_for_a_repeated_syn_is_not_timed() {
    // No timestamps: the SYN-ACK is timed.
    let mut h = passive_with(bbr(), sack_opts(), |h, _| {
        h.advance(ms(500)); // the SYN-ACK was lost; the peer's SYN comes again (before our RTO)
        h.send("S", &[]);
        let again = h.out();
        assert!(again.iter().any(|s| s.0.flags.syn && s.0.flags.ack), "the SYN-ACK is resent: {again:?}");
        h.advance(ms(10));
        TcpOptions::default()
    });
    // No handshake RTT (as Linux): the nominal start sends the initial window at once.
    let first = first_burst(&mut h);
    assert_eq!(first, 10, "first burst {first} segments: the handshake RTT counted the resend");
}

/// Active open with timestamps over a 10 ms path whose SYN-ACK echoes our SYN's
/// timestamp less `forged` ms; returns the harness and that timestamp.
fn active_echoing(forged: u32) -> (H, u32) {
    let mut h = H::new(TcpConfig { timestamps: true, ..bbr() });
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    let syn = h.out()[0].0;
    let tsval = syn.options.timestamps.expect("timestamps offered").0;
    h.advance(ms(10));
    h.port = syn.src_port;
    h.pack = syn.seq.wrapping_add(1);
    h.popts = TcpOptions { timestamps: Some((1, tsval.wrapping_sub(forged))), ..sack_opts() };
    h.send("SA", &[]);
    (h, tsval)
}

/// Review 16: a SYN-ACK whose TSecr is 119 s old (under the 120 s sanity cap) gives a
/// handshake SRTT of 119 s, and BBR paces its first window at it: a quantum leaves, the
/// rest would take seconds. The first honest ACK's delivery rate lifts the rate again
/// (STARTUP only grows it), so 1 MB over a 10 ms path costs about a round trip more, not
/// a crawl.
#[test]
fn a_forged_syn_ack_echo_costs_about_a_round_trip() {
    let run = |forged: u32| {
        let (mut h, _) = active_echoing(forged);
        h.popts.mss = None;
        h.popts.sack_permitted = false;
        h.out();
        h.app(AppCommand::Write(vec![7; 1_000_000]));
        drive(&mut h, ms(10), 1_000_000, Duration::from_secs(30), &no_echo_change, &mut |_| {})
    };
    let (honest, forged) = (run(0), run(119_000));
    assert_eq!((honest.acked, forged.acked), (1_000_000, 1_000_000), "{honest:?} {forged:?}");
    assert!(forged.took <= honest.took + ms(30), "honest {honest:?}, forged {forged:?}");
}

/// The handshake's RTT comes from the timed SYN (or SYN-ACK) when it went once, not from
/// the timestamp echo, as Linux's `tcp_ack_update_rtt` prefers: a SYN-ACK (or handshake
/// ACK) echoing a forged 119 s timestamp no longer sets the first window's pace. Over a
/// 10 ms path, 2.89 × 10 segments per 10 ms lets five 1000-byte segments go per 2 ms
/// quantum; at 119 s it would be the minimum of two.
#[test]
fn the_handshake_rtt_is_timed_not_taken_from_a_forged_echo() {
    // Active open: the SYN-ACK echoes 119 s ago.
    let (mut h, tsval) = active_echoing(119_000);
    h.popts = TcpOptions { timestamps: Some((2, tsval)), ..Default::default() };
    h.out();
    let first = first_burst(&mut h);
    assert!(first >= 4, "active: first burst {first} segments");

    // Passive open: the handshake ACK echoes 119 s before our SYN-ACK's timestamp.
    let syn_opts = TcpOptions { timestamps: Some((1, 0)), ..sack_opts() };
    let mut tsval = 0;
    let mut h = passive_with(TcpConfig { timestamps: true, ..bbr() }, syn_opts, |h, synack| {
        tsval = synack.options.timestamps.expect("timestamps agreed").0;
        h.advance(ms(10));
        TcpOptions { timestamps: Some((2, tsval.wrapping_sub(119_000))), ..Default::default() }
    });
    h.popts = TcpOptions { timestamps: Some((3, tsval)), ..Default::default() };
    let first = first_burst(&mut h);
    assert!(first >= 4, "passive: first burst {first} segments");
}
