//! Issue 7 item 3: a bound on orphaned connections (Linux `tcp_max_orphans`).

use super::*;

/// Opens one more connection to the peer (a new ephemeral port) that the peer holds at a
/// zero window, queues 3000 bytes on it and closes it: an orphan that cannot finish.
fn zero_window_orphan(h: &mut H) -> (ConnId, u16) {
    h.evs();
    h.pseq = PISS;
    h.pwnd = 65535;
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    complete_active(h, TcpOptions { mss: Some(1000), ..Default::default() });
    h.pwnd = 0;
    h.send("A", &[]);
    h.app(AppCommand::Write(vec![7; 3000]));
    h.app(AppCommand::Close);
    (h.conn, h.port)
}

#[test]
fn orphans_beyond_the_bound_are_reset() {
    let mut h = H::new(TcpConfig { max_orphans: 2, ..plain() });
    let (a, a_port) = zero_window_orphan(&mut h);
    let (b, _) = zero_window_orphan(&mut h);
    assert!(h.out().is_empty(), "zero window: nothing sent");
    assert_eq!(h.ep.state(a), Some(State::FinWait1));
    assert_eq!(h.ep.state(b), Some(State::FinWait1));
    assert_eq!(h.ep.orphan_count(), 2);
    assert_eq!(h.ep.stats().orphans_reset, 0);
    h.evs();

    // The third close would make three orphans: that connection is reset instead.
    let (c, c_port) = zero_window_orphan(&mut h);
    let o = h.out();
    assert_eq!(o.len(), 1, "{o:?}");
    assert!(o[0].0.flags.rst, "the peer is told: {o:?}");
    assert_eq!(o[0].0.src_port, c_port);
    assert_eq!(h.ep.state(c), None, "the third orphan is gone");
    assert_eq!(h.ep.stats().orphans_reset, 1);
    assert_eq!(h.ep.orphan_count(), 2);
    assert_eq!(h.ep.state(a), Some(State::FinWait1), "older orphans keep running");
    assert_eq!(h.ep.state(b), Some(State::FinWait1));

    // When one orphan ends (the peer resets it), a new close fits under the bound again.
    h.conn = a;
    h.port = a_port;
    h.pseq = PISS.wrapping_add(1);
    h.send("R", &[]);
    assert_eq!(h.ep.state(a), None);
    assert_eq!(h.ep.orphan_count(), 1);
    let (d, _) = zero_window_orphan(&mut h);
    assert!(h.out().iter().all(|s| !s.0.flags.rst));
    assert_eq!(h.ep.state(d), Some(State::FinWait1));
    assert_eq!(h.ep.orphan_count(), 2);
    assert_eq!(h.ep.stats().orphans_reset, 1);
}

#[test]
fn time_wait_and_open_connections_are_not_orphans() {
    let mut h = H::new(TcpConfig { max_orphans: 1, ..plain() });
    // An open connection is not an orphan.
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    complete_active(&mut h, TcpOptions::default());
    assert_eq!(h.ep.orphan_count(), 0);
    // Close it: an orphan in FIN-WAIT-1, then TIME-WAIT, which no longer counts.
    h.app(AppCommand::Close);
    assert_eq!(h.ep.orphan_count(), 1);
    h.out();
    h.pack = h.pack.wrapping_add(1);
    h.send("FA", &[]);
    h.out();
    assert_eq!(h.state(), Some(State::TimeWait));
    assert_eq!(h.ep.orphan_count(), 0);
    // So the next close is not reset.
    h.out();
    let (e, _) = zero_window_orphan(&mut h);
    assert_eq!(h.ep.state(e), Some(State::FinWait1));
    assert_eq!(h.ep.stats().orphans_reset, 0);
    assert_eq!(TcpConfig::default().max_orphans, 4096);
}
