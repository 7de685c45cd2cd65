//! Regression tests for the defects found by the RFC review (issue 6, part 2). Each test is
//! named `review_N_…` after the item of the review list it covers and failed before its fix.

use super::*;

/// The endpoint's current deadline for `h.conn`, as a lazy wheel would learn it: firing the
/// connection's timer early only re-reports the deadline. `None` if the TCB did real work
/// instead (its deadline was already due).
fn reported_deadline(h: &mut H) -> Option<Instant> {
    h.sync_timers();
    h.ep.handle_timeout(h.now, h.conn);
    let mut d = None;
    while let Some((c, t)) = h.ep.poll_timer_update() {
        if c == h.conn {
            d = t;
        }
    }
    d
}

// ----------------------------------------------------------------------------------------
// 1. Keep-alive timer on a busy connection
// ----------------------------------------------------------------------------------------

#[test]
fn review_1_keepalive_rearms_in_the_future_when_busy() {
    let cfg = TcpConfig { keepalive: Some(Duration::from_secs(10)), max_retries: 30, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 100]));
    h.out();
    // Nothing is ever acknowledged: retransmissions at 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 25.4,
    // 51.0 s. The keep-alive timer fires at 10 s on a connection that is not idle.
    let mut rexmits = 0;
    let start = h.now;
    while h.now - start < Duration::from_secs(60) {
        let waited = h.run_timer(Duration::from_secs(60));
        if waited.is_zero() {
            break;
        }
        rexmits += h.out().iter().filter(|s| s.1.len() == 100).count();
        // Whatever fired, the connection's next deadline lies in the future (Linux re-arms
        // the keep-alive timer at now + idle): a due deadline would make the timer and
        // tcp threads ping-pong.
        let d = reported_deadline(&mut h);
        assert!(d.is_some_and(|d| d > h.now), "deadline {d:?} not after now at {:?}", h.now - start);
    }
    assert_eq!(rexmits, 8, "the retransmission timer keeps running");
}

// ----------------------------------------------------------------------------------------
// 4. TS.Recent only from segments that pass the ACK checks
// ----------------------------------------------------------------------------------------

#[test]
fn review_4_bogus_ack_does_not_advance_ts_recent() {
    let cfg = TcpConfig { sack: false, window_scale: false, ..TcpConfig::default() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), timestamps: Some((1000, 1)), ..Default::default() });
    // A blind attacker guesses an in-window sequence number but not the ACK: it
    // acknowledges data we never sent, with a TSval far ahead (RFC 5961 §5.2 drops it).
    let mut forged = h.seg("A");
    forged.ack = h.pack.wrapping_add(100_000);
    forged.options.timestamps = Some((1000 + (1 << 30), 1));
    h.raw(forged, &[]);
    h.out();
    assert_eq!(h.ep.stats().challenge_acks, 1, "the forged ACK is challenged");
    // The real peer's next segment carries its real clock: it must not fail PAWS.
    h.popts.timestamps = Some((1010, 1));
    h.send("A", b"real data");
    assert_eq!(h.ep.stats().paws_rejected, 0, "TS.Recent was not taken from the forged segment");
    assert_eq!(h.conn_evs(), vec![SocketEvent::Data(b"real data".to_vec())]);
    h.advance(ms(50));
    let o = h.out();
    assert_eq!(o[0].0.options.timestamps.map(|t| t.1), Some(1010), "TS.Recent echoed");
}

// ----------------------------------------------------------------------------------------
// 7. Acceptability at the right window edge and of a bare FIN with a zero window
// ----------------------------------------------------------------------------------------

#[test]
fn review_7_pure_ack_at_right_window_edge_accepted() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 100]));
    h.out();
    h.conn_evs();
    // The peer filled our window (65535 bytes, all still in flight towards us) and then
    // acknowledges our data with a pure ACK: its sequence number is RCV.NXT + RCV.WND.
    let mut r = h.seg("A");
    r.seq = h.pseq.wrapping_add(65535);
    r.ack = h.pack.wrapping_add(100);
    h.raw(r, &[]);
    assert_eq!(h.conn_evs(), vec![SocketEvent::SendCredit(100)], "the ACK is processed");
    assert_eq!(h.ep.stats().challenge_acks, 0, "not answered as unacceptable");
    // One past the edge is still unacceptable.
    r.seq = h.pseq.wrapping_add(65536);
    h.raw(r, &[]);
    assert_eq!(h.ep.stats().challenge_acks, 1);
}

#[test]
fn review_7_bare_fin_with_zero_window_accepted() {
    let cfg = TcpConfig { recv_buf: crate::proto::tcp::MIN_RECV_BUF, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), ..Default::default() });
    h.send("A", &[1; 1000]);
    h.send("A", &[1; crate::proto::tcp::MIN_RECV_BUF - 1000]);
    h.advance(ms(50));
    let o = h.out();
    assert_eq!(o.last().unwrap().0.window, 0, "buffer full: window 0");
    h.conn_evs();
    // The application does not read; the peer closes.
    h.send("FA", &[]);
    assert_eq!(h.state(), Some(State::CloseWait), "the FIN is accepted at RCV.NXT");
    assert_eq!(h.conn_evs(), vec![SocketEvent::Eof]);
    let o = h.out();
    assert_eq!(o[0].0.ack, h.pseq, "FIN acknowledged");
    // A FIN carrying data is still refused with a zero window.
    let cfg = TcpConfig { recv_buf: crate::proto::tcp::MIN_RECV_BUF, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), ..Default::default() });
    h.send("A", &[1; 1000]);
    h.send("A", &[1; crate::proto::tcp::MIN_RECV_BUF - 1000]);
    h.out();
    h.send("FA", b"x");
    assert_eq!(h.state(), Some(State::Established));
}

// ----------------------------------------------------------------------------------------
// 9. SYN-ACK retries; orphaned connections facing a zero window
// ----------------------------------------------------------------------------------------

#[test]
fn review_9_synack_retries_default_five() {
    // A passive open whose handshake never completes gives up after 5 SYN-ACK
    // retransmissions, about 63 s (Linux tcp_synack_retries), not after syn_retries (7).
    let mut h = H::new(TcpConfig::default());
    h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 8).unwrap();
    h.send("S", &[]);
    let start = h.now;
    let mut synacks = 0;
    while h.ep.conn_count() > 0 {
        synacks += h.out().iter().filter(|s| s.0.flags.syn && s.0.flags.ack).count();
        if h.run_timer(Duration::from_secs(1000)).is_zero() {
            break;
        }
    }
    assert_eq!(h.ep.conn_count(), 0);
    assert_eq!(synacks, 6, "one SYN-ACK and 5 retransmissions");
    assert_eq!(h.now - start, Duration::from_secs(63));
    assert_eq!(TcpConfig::default().synack_retries, 5);
    assert_eq!(TcpConfig::default().syn_retries, 7, "active opens keep their own count");
}

#[test]
fn review_9_orphan_zero_window_probes_bounded() {
    let (mut h, _) = active(
        TcpConfig { msl: Duration::from_secs(5), ..plain() },
        TcpOptions { mss: Some(1000), ..Default::default() },
    );
    h.pwnd = 0;
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![7; 3000]));
    h.app(AppCommand::Close);
    assert!(h.out().is_empty(), "zero window: nothing sent");
    assert_eq!(h.state(), Some(State::FinWait1));
    // Every probe is answered with a zero window: an application that still holds the
    // socket would wait forever (M-37), but nobody will ever read this connection's errors.
    let start = h.now;
    let mut probes = 0;
    while h.state().is_some() && probes < 40 {
        if h.run_timer(Duration::from_secs(1000)).is_zero() {
            break;
        }
        probes += h.out().iter().filter(|s| s.1.len() == 1).count();
        h.send("A", &[]);
    }
    assert_eq!(h.state(), None, "gave up after {probes} answered probes");
    assert!(probes <= 9, "{probes} probes");
    assert!(h.now - start < Duration::from_secs(10 * 60), "{:?}", h.now - start);
}

// ----------------------------------------------------------------------------------------
// 10. TIME-WAIT: overflow still acknowledges the FIN; Close keeps 2*MSL
// ----------------------------------------------------------------------------------------

#[test]
fn review_10_time_wait_overflow_acks_fin_first() {
    let cfg = TcpConfig { max_time_wait: 0, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions::default());
    h.app(AppCommand::ShutdownWrite);
    h.out();
    h.pack = h.pack.wrapping_add(1);
    h.send("FA", &[]);
    let o = h.out();
    assert_eq!(o.len(), 1, "the peer's FIN is acknowledged: {o:?}");
    assert!(o[0].0.flags.ack && !o[0].0.flags.rst && !o[0].0.flags.fin);
    assert_eq!(o[0].0.ack, h.pseq);
    assert_eq!(h.ep.conn_count(), 0, "no TIME-WAIT slot: dropped once the ACK is out");
    assert_eq!(h.ep.stats().time_wait_overflow, 1);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Eof, SocketEvent::Closed]);
    assert!(h.timers.is_empty(), "no timer left: {:?}", h.timers);
}

#[test]
fn review_10_close_with_unread_data_keeps_time_wait() {
    let cfg = TcpConfig { msl: Duration::from_secs(10), ..plain() };
    let (mut h, _) = active(cfg, TcpOptions::default());
    h.app(AppCommand::ShutdownWrite);
    h.out();
    h.pack = h.pack.wrapping_add(1);
    h.send("FA", b"unread");
    assert_eq!(h.state(), Some(State::TimeWait));
    h.out();
    // The application drops the socket without reading: the connection is already closed
    // both ways, so there is nothing to reset, and TIME-WAIT keeps its 2*MSL.
    h.app(AppCommand::Close);
    assert_eq!(h.state(), Some(State::TimeWait));
    assert!(h.out().is_empty(), "no RST from TIME-WAIT");
    // A retransmitted FIN is still acknowledged.
    h.advance(Duration::from_secs(5));
    h.pseq = h.pseq.wrapping_sub(1);
    h.send("FA", &[]);
    assert_eq!(h.out()[0].0.ack, h.pseq);
    h.advance(Duration::from_secs(19));
    assert_eq!(h.state(), Some(State::TimeWait));
    h.advance(Duration::from_secs(2));
    assert_eq!(h.state(), None, "gone after 2*MSL");
}

// ----------------------------------------------------------------------------------------
// 11. ICMP: Frag Needed below 576 clamps; soft errors reach the application
// ----------------------------------------------------------------------------------------

#[test]
fn review_11_frag_needed_below_576_clamps() {
    let mut h = active_plain();
    let local = SocketAddr::new(US, h.port);
    let remote = SocketAddr::new(PEER, PEER_PORT);
    h.app(AppCommand::Write(vec![1; 2920]));
    assert_eq!(h.out()[0].1.len(), 1460);
    // A (possibly forged) next-hop MTU of 300 is raised to 576: segments of 536 bytes.
    h.ep.handle_icmp_error(h.now, local, remote, h.pack, IcmpErrorKind::PacketTooBig(300));
    let o = h.out();
    assert!(!o.is_empty(), "resent in smaller segments");
    assert_eq!(o[0].0.seq, h.pack, "from SND.UNA");
    assert!(o.iter().all(|s| s.1.len() <= 536), "{:?}", o.iter().map(|s| s.1.len()).collect::<Vec<_>>());
    assert_eq!(o[0].1.len(), 536);
    // An MTU of 0 (RFC 1191 §5: an old router that does not fill the field) as well.
    let mut h = active_plain();
    let local = SocketAddr::new(US, h.port);
    h.app(AppCommand::Write(vec![1; 1000]));
    h.out();
    h.ep.handle_icmp_error(h.now, local, remote, h.pack, IcmpErrorKind::PacketTooBig(0));
    assert_eq!(h.out()[0].1.len(), 536);
}

#[test]
fn review_11_connect_timeout_reports_soft_error() {
    let cfg = TcpConfig { syn_retries: 2, ..plain() };
    let mut h = H::new(cfg);
    let remote = SocketAddr::new(PEER, PEER_PORT);
    h.conn = h.ep.connect(h.now, US, remote).unwrap();
    let syn = h.out()[0].0;
    let local = SocketAddr::new(US, syn.src_port);
    // A router answers the SYN with Host Unreachable: soft, the SYN is retried (M-56) ...
    let host_unreach = crate::proto::ip::soft_error_kind(false, 3, 1);
    assert_eq!(host_unreach, ErrorKind::HostUnreachable);
    h.ep.handle_icmp_error(h.now, local, remote, syn.seq, IcmpErrorKind::Soft(host_unreach));
    assert_eq!(h.state(), Some(State::SynSent));
    while h.state().is_some() && !h.run_timer(Duration::from_secs(100)).is_zero() {
        h.out();
    }
    // ... and when the retries run out, connect fails with it, not TimedOut (Linux
    // tcp_write_err: sk_err_soft ?: ETIMEDOUT).
    assert_eq!(h.conn_evs(), vec![SocketEvent::Error(ErrorKind::HostUnreachable), SocketEvent::Closed]);
}

#[test]
fn review_11_established_timeout_reports_soft_error_until_acked() {
    let cfg = TcpConfig { max_retries: 3, ..plain() };
    let run = |ack_after_icmp: bool| {
        let (mut h, _) = active(cfg.clone(), TcpOptions { mss: Some(1000), ..Default::default() });
        let local = SocketAddr::new(US, h.port);
        let remote = SocketAddr::new(PEER, PEER_PORT);
        h.app(AppCommand::Write(vec![1; 100]));
        h.out();
        let net_unreach = crate::proto::ip::soft_error_kind(true, 1, 0);
        assert_eq!(net_unreach, ErrorKind::NetworkUnreachable);
        h.ep.handle_icmp_error(h.now, local, remote, h.pack, IcmpErrorKind::Soft(net_unreach));
        if ack_after_icmp {
            // Something worked after the error: it is forgotten (Linux clears sk_err_soft
            // in tcp_ack).
            h.pack = h.pack.wrapping_add(100);
            h.send("A", &[]);
            h.app(AppCommand::Write(vec![1; 100]));
            h.out();
        }
        h.conn_evs();
        while h.state().is_some() && !h.run_timer(Duration::from_secs(100)).is_zero() {
            h.out();
        }
        h.conn_evs()
    };
    assert_eq!(run(false), vec![SocketEvent::Error(ErrorKind::NetworkUnreachable), SocketEvent::Closed]);
    assert_eq!(run(true), vec![SocketEvent::Error(ErrorKind::TimedOut), SocketEvent::Closed]);
}
