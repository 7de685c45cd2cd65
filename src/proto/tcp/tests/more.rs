//! Endpoint-level tests, continued: retransmission, congestion control, flow control,
//! keep-alive, ICMP, and a property test feeding arbitrary input.

use super::*;

// ----------------------------------------------------------------------------------------
// Retransmission, congestion control
// ----------------------------------------------------------------------------------------

#[test]
fn rto_backoff_and_timed_out() {
    let cfg = TcpConfig { max_retries: 3, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 500]));
    let first = h.out();
    assert_eq!(first.len(), 1);
    // No RTT sample from the handshake? There was one (tiny): RTO = max(200ms, ...).
    let mut waits = vec![];
    for _ in 0..3 {
        waits.push(h.run_timer(Duration::from_secs(100)));
        let o = h.out();
        assert_eq!(o[0].0.seq, first[0].0.seq, "retransmits SND.UNA");
    }
    assert_eq!(waits, vec![ms(200), ms(400), ms(800)], "floor 200 ms, doubling (RFC 6298 §5.5)");
    h.run_timer(Duration::from_secs(100));
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::TimedOut), SocketEvent::Closed]);
}

#[test]
fn rtt_sample_sets_rto() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 500]));
    h.out();
    h.advance(ms(300));
    h.pack = h.pack.wrapping_add(500);
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![1; 500]));
    h.out();
    // SRTT=~0 from the SYN, then 300 ms: RTO = SRTT + 4*RTTVAR > 300 ms.
    let w = h.run_timer(Duration::from_secs(100));
    assert!(w > ms(300) && w < ms(1000), "{w:?}");
}

#[test]
fn timeout_collapses_cwnd_and_go_back_n() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 20_000]));
    let o = h.out();
    assert_eq!(o.len(), 10, "IW = 10 segments (RFC 6928)");
    h.run_timer(Duration::from_secs(10));
    let o = h.out();
    assert_eq!(o.len(), 1, "cwnd = 1 SMSS after RTO");
    h.pack = h.pack.wrapping_add(1000);
    h.send("A", &[]);
    let o = h.out();
    assert_eq!(o.len(), 2, "slow start from 1");
    assert_eq!(h.ep.stats().timeouts, 1);
}

#[test]
fn fast_retransmit_and_newreno_recovery() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 10_000]));
    let o = h.out();
    assert_eq!(o.len(), 10);
    let una = h.pack;
    // Segment 1 lost; segments 2..10 produce duplicate ACKs.
    h.send("A", &[]);
    h.send("A", &[]);
    assert!(h.out().is_empty());
    h.send("A", &[]);
    let o = h.out();
    assert_eq!(o.len(), 1, "fast retransmit on the 3rd dup ACK");
    assert_eq!(o[0].0.seq, una);
    assert_eq!(h.ep.stats().fast_retransmits, 1);
    // Partial ACK (segment 4 also lost): retransmit it at once.
    h.pack = una.wrapping_add(3000);
    h.send("A", &[]);
    let o = h.out();
    assert_eq!(o[0].0.seq, una.wrapping_add(3000));
    // Full ACK: leave recovery; window = ssthresh-ish (5000).
    h.pack = una.wrapping_add(10_000);
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![1; 20_000]));
    let o = h.out();
    assert!(o.len() <= 5 && o.len() >= 2, "cwnd deflated to about ssthresh: {}", o.len());
}

#[test]
fn sack_retransmits_only_holes() {
    let cfg = TcpConfig { timestamps: false, window_scale: false, ..TcpConfig::default() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), sack_permitted: true, ..Default::default() });
    h.app(AppCommand::Write(vec![1; 10_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    // Segments 0 and 2 lost; peer SACKs 1 and 3..10.
    h.popts.sack_blocks = [Some((s(1), s(2))), None, None, None];
    h.send("A", &[]);
    h.popts.sack_blocks = [Some((s(3), s(5))), Some((s(1), s(2))), None, None];
    h.send("A", &[]);
    h.popts.sack_blocks = [Some((s(3), s(10))), Some((s(1), s(2))), None, None];
    h.send("A", &[]);
    let o = h.out();
    let seqs: Vec<u32> = o.iter().map(|x| x.0.seq).collect();
    assert!(seqs.contains(&s(0)) && seqs.contains(&s(2)), "{seqs:?} vs {:?}", (s(0), s(2)));
    assert!(!seqs.contains(&s(1)) && !seqs.contains(&s(3)), "no SACKed data resent");
    // Blocks outside [SND.UNA, SND.NXT] are ignored without harm.
    h.popts.sack_blocks = [Some((s(20), s(30))), None, None, None];
    h.send("A", &[]);
    h.out();
    assert_eq!(h.state(), Some(State::Established));
}

// ----------------------------------------------------------------------------------------
// Flow control: zero window probing
// ----------------------------------------------------------------------------------------

#[test]
fn zero_window_probe_keeps_connection_and_reopens() {
    let cfg = TcpConfig { max_retries: 3, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), ..Default::default() });
    h.pwnd = 0;
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![7; 3000]));
    assert!(h.out().is_empty(), "zero window: nothing sent");
    // Probes with backoff; each answered with window 0 (M-36, M-37): the connection
    // stays even past max_retries.
    let mut waits = vec![];
    for _ in 0..6 {
        waits.push(h.run_timer(Duration::from_secs(1000)));
        let o = h.out();
        assert_eq!(o.len(), 1, "{o:?}");
        assert_eq!(o[0].1.len(), 1, "one-byte probe");
        assert_eq!(o[0].0.seq, h.pack);
        h.send("A", &[]);
    }
    assert!(waits.windows(2).all(|w| w[1] >= w[0]), "backoff {waits:?}");
    assert_eq!(h.state(), Some(State::Established));
    // Window opens (and the probe byte accepted): the data flows.
    h.pwnd = 10_000;
    h.pack = h.pack.wrapping_add(1);
    h.send("A", &[]);
    let o = h.out();
    let n: usize = o.iter().map(|s| s.1.len()).sum();
    assert_eq!(n, 2000, "two full segments; Nagle holds the 999-byte tail");
}

#[test]
fn shrinking_peer_window_tolerated() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 5000]));
    assert_eq!(h.out().len(), 5);
    // M-34: the peer shrinks its window below what is in flight.
    h.pwnd = 1000;
    h.pack = h.pack.wrapping_add(1000);
    h.send("A", &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.state(), Some(State::Established));
    h.pack = h.pack.wrapping_add(4000);
    h.pwnd = 5000;
    h.send("A", &[]);
    assert_eq!(h.state(), Some(State::Established));
}

// ----------------------------------------------------------------------------------------
// Keep-alive, ICMP
// ----------------------------------------------------------------------------------------

#[test]
fn keepalive_probes_then_timeout() {
    let cfg = TcpConfig { keepalive: Some(Duration::from_secs(60)), ..plain() };
    let (mut h, _) = active(cfg, TcpOptions::default());
    assert_eq!(h.run_timer(Duration::from_secs(1000)), Duration::from_secs(60));
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0.seq, h.pack.wrapping_sub(1), "probe <SEQ=SND.NXT-1>");
    assert!(o[0].1.is_empty());
    // Answered: the connection lives and the idle timer restarts (M-29).
    h.send("A", &[]);
    assert_eq!(h.run_timer(Duration::from_secs(1000)), Duration::from_secs(60));
    h.out();
    for _ in 0..9 {
        h.run_timer(Duration::from_secs(1000));
        h.out();
    }
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::TimedOut), SocketEvent::Closed]);
}

#[test]
fn keepalive_off_by_default() {
    let mut h = active_plain();
    assert_eq!(h.run_timer(Duration::from_secs(100_000)), Duration::ZERO);
}

#[test]
fn icmp_soft_errors_never_abort_port_unreach_in_syn_sent() {
    let mut h = active_plain();
    let local = SocketAddr::new(US, h.port);
    let remote = SocketAddr::new(PEER, PEER_PORT);
    h.ep.handle_icmp_error(h.now, local, remote, h.pack, IcmpErrorKind::Soft(ErrorKind::HostUnreachable));
    h.ep.handle_icmp_error(h.now, local, remote, h.pack, IcmpErrorKind::PortUnreachable);
    assert_eq!(h.state(), Some(State::Established));
    assert!(h.conn_evs().is_empty());
    assert_eq!(h.ep.take_soft_error(h.conn), Some(IcmpErrorKind::PortUnreachable));

    let mut h2 = H::new(plain());
    h2.conn = h2.ep.connect(h2.now, US, remote).unwrap();
    let syn = h2.out()[0].0;
    let local = SocketAddr::new(US, syn.src_port);
    // Quoted sequence number outside [SND.UNA, SND.NXT]: ignored (RFC 5927).
    h2.ep.handle_icmp_error(h2.now, local, remote, syn.seq.wrapping_add(1000), IcmpErrorKind::PortUnreachable);
    assert!(h2.ep.state(h2.conn).is_some());
    h2.ep.handle_icmp_error(h2.now, local, remote, syn.seq, IcmpErrorKind::PortUnreachable);
    assert_eq!(h2.conn_evs(), vec![SocketEvent::Error(ErrorKind::ConnectionRefused), SocketEvent::Closed]);
}

#[test]
fn packet_too_big_shrinks_mss_and_resends() {
    let mut h = active_plain();
    let local = SocketAddr::new(US, h.port);
    let remote = SocketAddr::new(PEER, PEER_PORT);
    h.app(AppCommand::Write(vec![1; 2920]));
    let o = h.out();
    assert_eq!(o[0].1.len(), 1460);
    // Larger than now: never grows (below 576: see review_11_frag_needed_below_576_clamps).
    h.ep.handle_icmp_error(h.now, local, remote, h.pack, IcmpErrorKind::PacketTooBig(9000));
    assert!(h.out().is_empty());
    h.ep.handle_icmp_error(h.now, local, remote, h.pack, IcmpErrorKind::PacketTooBig(1000));
    let o = h.out();
    assert!(!o.is_empty());
    assert_eq!(o[0].0.seq, h.pack, "resent from SND.UNA");
    assert!(o.iter().all(|s| s.1.len() <= 960));
}

// ----------------------------------------------------------------------------------------
// More rules
// ----------------------------------------------------------------------------------------

#[test]
fn window_scale_only_if_both_sent_it() {
    // Peer sent WS: our windows are scaled by our offered shift (7 for the 4 MiB ceiling).
    let (mut h, syn) = active(
        TcpConfig { timestamps: false, sack: false, ..TcpConfig::default() },
        TcpOptions { mss: Some(1460), window_scale: Some(2), ..Default::default() },
    );
    assert_eq!(syn.options.window_scale, Some(7));
    h.send("A", &[1; 100]);
    h.advance(ms(50));
    let o = h.out();
    // The right edge stays where the handshake put it (RCV.NXT + 2^20 before the data):
    // the scaled field is rounded up, never down into a shrink (RFC 9293 §3.8.6.2.2).
    assert_eq!(o[0].0.window as usize, ((1usize << 20) - 100).div_ceil(128));
    // Peer window scaled by its shift 2.
    h.pwnd = 1095; // 4380 bytes = 3 segments
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![0; 10_000]));
    let sent: usize = h.out().iter().map(|s| s.1.len()).sum();
    assert_eq!(sent, 4380);
    // Peer without WS: no scaling either way, window capped at 65535.
    let (mut h, _) = active(
        TcpConfig { timestamps: false, sack: false, ..TcpConfig::default() },
        TcpOptions { mss: Some(1460), ..Default::default() },
    );
    h.send("A", &[1; 100]);
    h.advance(ms(50));
    // Unscaled: the right edge advertised in the SYN (65535) has not moved (SWS).
    assert_eq!(h.out()[0].0.window, 65535 - 100);
}

#[test]
fn timestamps_give_rtt_samples_despite_retransmission() {
    // RFC 7323 §4: with timestamps a retransmitted segment still yields a sample (no Karn).
    let cfg = TcpConfig { sack: false, window_scale: false, ..TcpConfig::default() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), timestamps: Some((1, 1)), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 100]));
    h.out();
    // First RTO: 1 s (only a handshake sample of ~0 => 200 ms floor... either way it fires).
    h.run_timer(Duration::from_secs(10));
    let o = h.out();
    let (tsval, _) = o[0].0.options.timestamps.unwrap();
    h.advance(ms(30));
    h.pack = h.pack.wrapping_add(100);
    h.popts.timestamps = Some((2, tsval));
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![1; 100]));
    h.out();
    // Sample of 30 ms after the backoff: RTO back near the 200 ms floor, not doubled.
    assert!(h.run_timer(Duration::from_secs(10)) <= ms(300));
}

#[test]
fn keepalive_only_when_idle() {
    let cfg = TcpConfig { keepalive: Some(Duration::from_secs(10)), max_retries: 20, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 100]));
    h.out();
    // Unacked data: the timers that fire are retransmissions, never keep-alive probes.
    for _ in 0..5 {
        h.run_timer(Duration::from_secs(100));
        for (r, p) in h.out() {
            assert_eq!(p.len(), 100, "retransmission, not a probe: {r:?}");
        }
    }
    // SetKeepalive(None) turns it off (M-24: per connection).
    h.pack = h.pack.wrapping_add(100);
    h.send("A", &[]);
    h.app(AppCommand::SetKeepalive(None));
    assert_eq!(h.run_timer(Duration::from_secs(100_000)), Duration::ZERO);
}

#[test]
fn orphaned_fin_wait_2_times_out() {
    let cfg = TcpConfig { msl: Duration::from_secs(5), ..plain() };
    let (mut h, _) = active(cfg, TcpOptions::default());
    h.app(AppCommand::Close);
    h.out();
    h.pack = h.pack.wrapping_add(1);
    h.send("A", &[]);
    assert_eq!(h.state(), Some(State::FinWait2));
    assert_eq!(h.run_timer(Duration::from_secs(100)), Duration::from_secs(10));
    assert_eq!(h.state(), None);
}

#[test]
fn data_after_close_gets_rst() {
    let mut h = active_plain();
    h.app(AppCommand::Close);
    h.out();
    h.send("A", b"late data");
    let o = h.out();
    assert!(o.iter().any(|s| s.0.flags.rst), "RFC 2525 §2.17 / Linux");
    assert_eq!(h.ep.conn_count(), 0);
}

#[test]
fn default_syn_r2_is_at_least_three_minutes() {
    // M-23: with the default configuration a SYN is retried for >= 3 minutes.
    let mut h = H::new(TcpConfig::default());
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    let start = h.now;
    let mut syns = 0;
    while h.state().is_some() {
        syns += h.out().iter().filter(|s| s.0.flags.syn).count();
        if h.run_timer(Duration::from_secs(1000)).is_zero() {
            break;
        }
    }
    assert!(h.now - start >= Duration::from_secs(180), "{:?}", h.now - start);
    assert_eq!(syns, 8);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::TimedOut), SocketEvent::Closed]);
}

#[test]
fn persist_probes_unanswered_time_out() {
    let cfg = TcpConfig { max_retries: 2, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), ..Default::default() });
    h.pwnd = 0;
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![7; 10]));
    for _ in 0..2 {
        let w = h.run_timer(Duration::from_secs(1000));
        let o = h.out();
        assert_eq!(o.len(), 1, "{w:?} {:?}", h.timers);
    }
    h.run_timer(Duration::from_secs(1000));
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::TimedOut), SocketEvent::Closed]);
}

#[test]
fn zero_window_probe_accepted_by_peer() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.pwnd = 0;
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![7; 10]));
    h.run_timer(Duration::from_secs(1000));
    let o = h.out();
    assert_eq!(o[0].1.len(), 1);
    // The peer took the probe byte but the window stays closed.
    h.pack = h.pack.wrapping_add(1);
    h.send("A", &[]);
    assert_eq!(h.conn_evs(), vec![SocketEvent::SendCredit(1)]);
    // Pure ACKs never carry a sequence number beyond what the peer accepted.
    h.send("A", &[1; 10]);
    h.advance(ms(100));
    let o = h.out();
    assert_eq!(o.last().unwrap().0.seq, h.pack);
}

#[test]
fn write_before_established_is_sent_after_handshake() {
    let mut h = H::new(plain());
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    h.app(AppCommand::Write(b"early".to_vec()));
    h.app(AppCommand::ShutdownWrite);
    let syn = h.out();
    assert_eq!(syn.len(), 1, "only the SYN before the handshake");
    h.port = syn[0].0.src_port;
    h.pack = syn[0].0.seq.wrapping_add(1);
    h.send("SA", &[]);
    let o = h.out();
    assert_eq!(o[0].1, b"early");
    assert!(o[0].0.flags.fin, "FIN queued before establishment follows the data");
    assert_eq!(h.state(), Some(State::FinWait1));
}

#[test]
fn passive_data_with_handshake_ack_follows_accepted() {
    let mut h = H::new(plain());
    h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 8).unwrap();
    h.send("S", &[]);
    let synack = h.out()[0].0;
    h.pack = synack.seq.wrapping_add(1);
    h.send("PA", b"hello");
    let ev = h.evs();
    assert!(matches!(ev[0], Event::Accepted { .. }));
    assert!(matches!(ev[1], Event::Conn(_, SocketEvent::SendCredit(_))));
    assert!(matches!(&ev[2], Event::Conn(_, SocketEvent::Data(d)) if d == b"hello"));
}

#[test]
fn half_open_synack_retries_exhaust_silently() {
    let cfg = TcpConfig { synack_retries: 2, ..plain() };
    let mut h = H::new(cfg);
    h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 8).unwrap();
    h.send("S", &[]);
    h.out();
    for _ in 0..3 {
        h.run_timer(Duration::from_secs(100));
        h.out();
    }
    assert_eq!(h.ep.conn_count(), 0);
    assert!(h.evs().is_empty(), "the application never knew this connection");
}

#[test]
fn rst_in_time_wait_closes() {
    let mut h = active_plain();
    h.app(AppCommand::ShutdownWrite);
    h.out();
    h.pack = h.pack.wrapping_add(1);
    h.send("FA", &[]);
    assert_eq!(h.state(), Some(State::TimeWait));
    h.send("R", &[]);
    assert_eq!(h.state(), None);
}

#[test]
fn new_syn_ends_time_wait_rfc6191() {
    // Passive side in TIME-WAIT (it closed first), then the client reconnects from the
    // same port with a higher sequence number.
    let (mut h, _) = passive(plain(), TcpOptions::default());
    h.app(AppCommand::ShutdownWrite);
    h.out();
    h.pack = h.pack.wrapping_add(1);
    h.send("FA", &[]);
    assert_eq!(h.state(), Some(State::TimeWait));
    let old = h.conn;
    h.pseq = h.pseq.wrapping_add(100_000);
    h.send("S", &[]);
    let o = h.out();
    assert!(o[0].0.flags.syn && o[0].0.flags.ack, "{o:?}");
    assert_eq!(h.ep.state(old), None);
    assert!(h.conn_evs().contains(&SocketEvent::Closed));
    // An old SYN (below RCV.NXT) does not.
    let (mut h, _) = passive(plain(), TcpOptions::default());
    h.app(AppCommand::ShutdownWrite);
    h.out();
    h.pack = h.pack.wrapping_add(1);
    h.send("FA", &[]);
    h.pseq = h.pseq.wrapping_sub(10);
    h.send("S", &[]);
    assert_eq!(h.state(), Some(State::TimeWait));
}

#[test]
fn ptb_ignored_below_ipv6_minimum() {
    let now = Instant::now();
    let mut ep = Endpoint::new(plain(), [3; 16], now);
    let l: IpAddr = "fd00::1".parse().unwrap();
    let remote: SocketAddr = "[fd00::2]:80".parse().unwrap();
    let c = ep.connect(now, l, remote).unwrap();
    let mut syn = None;
    ep.poll_transmit(now, &mut |_, _, r, _| syn = Some(*r));
    let syn = syn.unwrap();
    let local = SocketAddr::new(l, syn.src_port);
    ep.handle_icmp_error(now, local, remote, syn.seq, IcmpErrorKind::PacketTooBig(1000));
    ep.handle_icmp_error(now, local, remote, syn.seq, IcmpErrorKind::Soft(ErrorKind::HostUnreachable));
    assert_eq!(ep.state(c), Some(State::SynSent), "soft errors never abort (M-56)");
}

#[test]
fn idle_restart_window() {
    // RFC 5681 §4.1: after idling longer than the RTO, at most IW is sent at once.
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    // Grow cwnd: 10 segments acked one by one in slow start -> 20.
    h.app(AppCommand::Write(vec![1; 10_000]));
    assert_eq!(h.out().len(), 10);
    for _ in 0..10 {
        h.pack = h.pack.wrapping_add(1000);
        h.send("A", &[]);
    }
    h.app(AppCommand::Write(vec![1; 30_000]));
    assert_eq!(h.out().len(), 20);
    h.pack = h.pack.wrapping_add(20_000);
    h.send("A", &[]);
    assert_eq!(h.out().len(), 10);
    h.pack = h.pack.wrapping_add(10_000);
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![1; 21_000]));
    assert_eq!(h.out().len(), 21, "no restart without idleness");
    h.pack = h.pack.wrapping_add(21_000);
    h.send("A", &[]);
    h.advance(Duration::from_secs(5));
    h.app(AppCommand::Write(vec![1; 30_000]));
    assert_eq!(h.out().len(), 10);
}

#[test]
fn cubic_connection_works() {
    let cfg = TcpConfig { congestion: CongestionAlgorithm::Cubic, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 10_000]));
    assert_eq!(h.out().len(), 10);
}

#[test]
fn timer_updates_reported() {
    let mut h = active_plain();
    h.app(AppCommand::Write(vec![1; 10]));
    h.out();
    assert!(h.timers.contains_key(&h.conn), "RTO armed and reported");
    h.pack = h.pack.wrapping_add(10);
    h.send("A", &[]);
    assert!(!h.timers.contains_key(&h.conn), "disarmed when everything is acked");
    // A lazy wheel firing early does nothing but re-reports the deadline.
    h.app(AppCommand::Write(vec![1; 10]));
    h.out();
    let d = h.timers[&h.conn];
    h.ep.handle_timeout(h.now, h.conn);
    assert_eq!(h.ep.poll_timer_update(), Some((h.conn, Some(d))));
    assert!(h.out().is_empty());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Seg { f: u8, dseq: i32, dack: i32, win: u16, len: usize, ts: Option<(u32, u32)>, sack: Option<(i32, i32)> },
        App(u8, usize),
        Wait(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (any::<u8>(), prop_oneof![-3000i32..3000, -70_000i32..70_000], prop_oneof![-3000i32..3000, -70_000i32..70_000],
                  prop_oneof![any::<u16>(), 0u16..4], 0usize..3000,
                  proptest::option::of((any::<u32>(), any::<u32>())), proptest::option::of((-5000i32..5000, -5000i32..5000)))
                .prop_map(|(f, dseq, dack, win, len, ts, sack)| Step::Seg { f, dseq, dack, win, len, ts, sack }),
            2 => (0u8..8, 0usize..5000).prop_map(|(c, n)| Step::App(c, n)),
            1 => any::<u16>().prop_map(Step::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Arbitrary segments, commands and time steps: never panics, bounds hold.
        #[test]
        fn endpoint_never_panics(steps in proptest::collection::vec(step(), 1..60), passive_open in any::<bool>()) {
            let cfg = TcpConfig { recv_buf: 10_000, send_buf: 10_000, max_ooo_bytes: 5000, ..TcpConfig::default() };
            let opts = TcpOptions { mss: Some(536), window_scale: Some(3), sack_permitted: true, timestamps: Some((1, 0)), ..Default::default() };
            let (mut h, _) = if passive_open { passive(cfg, opts) } else { active(cfg, opts) };
            for s in steps {
                match s {
                    Step::Seg { f, dseq, dack, win, len, ts, sack } => {
                        let mut r = h.seg("A");
                        r.flags = TcpFlags { fin: f & 1 != 0, syn: f & 2 != 0, rst: f & 4 != 0, psh: f & 8 != 0, ack: f & 16 != 0, ..Default::default() };
                        r.seq = h.pseq.wrapping_add(dseq as u32);
                        r.ack = h.pack.wrapping_add(dack as u32);
                        r.window = win;
                        r.options.timestamps = ts;
                        if let Some((a, b)) = sack {
                            r.options.sack_blocks[0] = Some((h.pack.wrapping_add(a as u32), h.pack.wrapping_add(b as u32)));
                        }
                        let payload = vec![0xab; len];
                        h.raw(r, &payload);
                    }
                    Step::App(c, n) => {
                        let cmd = match c {
                            0 => AppCommand::Write(vec![1; n]),
                            1 => AppCommand::ReadCredit(n),
                            2 => AppCommand::ShutdownWrite,
                            3 => AppCommand::ShutdownRead,
                            4 => AppCommand::SetNodelay(n % 2 == 0),
                            5 => AppCommand::SetKeepalive(Some(Duration::from_millis(n as u64))),
                            6 => AppCommand::Write(vec![2; n * 3]),
                            _ => AppCommand::Close,
                        };
                        h.app(cmd);
                    }
                    Step::Wait(ms_) => h.advance(Duration::from_millis(ms_ as u64)),
                }
                let mut undelivered = 0usize;
                for e in h.evs() {
                    if let Event::Conn(_, SocketEvent::Data(d)) = e {
                        undelivered += d.len();
                    }
                }
                prop_assert!(undelivered <= 10_000);
                for (r, p) in h.out() {
                    prop_assert!(p.len() <= 536);
                    prop_assert!(r.header_len() <= 60);
                }
            }
        }
    }
}
