//! SYN cookies at the endpoint (RFC 4987 §3.6): SYNs beyond the half-open bounds get a
//! cookie and leave no state; the ACK that returns a valid cookie builds the connection
//! with the options the cookie carried; a bad one gets a RST and is counted.

use super::*;

const LADDR: SocketAddr = SocketAddr::new(US, LPORT);

/// Options a Linux client puts on its SYN.
fn linux_syn_opts(tsval: u32) -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((tsval, 0)),
        ..TcpOptions::default()
    }
}

/// A listener on LADDR whose half-open queue (`max_half_open`) is already full of SYNs
/// from ports 6000.. that never complete.
fn full_listener(cfg: TcpConfig, backlog: usize) -> H {
    let n = cfg.max_half_open;
    let mut h = H::new(cfg);
    h.ep.listen(ListenAddr::Addr(LADDR), backlog).unwrap();
    for p in 0..n as u16 {
        h.raw(TcpRepr { src_port: 6000 + p, ..h.seg("S") }, &[]);
    }
    assert_eq!(h.out().len(), n, "one ordinary SYN-ACK each");
    assert_eq!(h.ep.half_open_count(), n);
    h
}

/// The peer (PEER_PORT) sends a SYN with `opts`; returns our SYN-ACK.
fn syn_for_cookie(h: &mut H, opts: TcpOptions) -> TcpRepr {
    h.popts = opts;
    h.pseq = PISS;
    h.send("S", &[]);
    let o = h.out();
    assert_eq!(o.len(), 1, "{o:?}");
    let sa = o[0].0;
    assert!(sa.flags.syn && sa.flags.ack && sa.ack == PISS.wrapping_add(1), "{sa:?}");
    sa
}

/// The peer's ACK of `sa` with `payload`, echoing its TSval when it has one.
fn ack_cookie(h: &mut H, sa: &TcpRepr, tsval: u32, payload: &[u8]) {
    h.pack = sa.seq.wrapping_add(1);
    h.popts = TcpOptions { timestamps: sa.options.timestamps.map(|(v, _)| (tsval, v)), ..TcpOptions::default() };
    h.send("A", payload);
}

fn accepted(evs: &[Event]) -> Option<ConnId> {
    evs.iter().find_map(|e| match e {
        Event::Accepted { conn, .. } => Some(*conn),
        _ => None,
    })
}

#[test]
fn full_half_open_queue_answers_with_a_cookie_and_keeps_no_state() {
    let mut h = full_listener(TcpConfig { max_half_open: 4, ..TcpConfig::default() }, 8);
    let conns = h.ep.conn_count();
    let sa = syn_for_cookie(&mut h, linux_syn_opts(1000));
    assert_eq!(h.ep.conn_count(), conns, "a cookie keeps no TCB");
    assert_eq!(h.ep.half_open_count(), 4);
    let st = h.ep.stats();
    assert_eq!((st.syncookies_sent, st.syn_dropped, st.rst_out, st.half_open), (1, 0, 0, 4));
    // The SYN-ACK offers what a normal one does; the TSval's low 6 bits carry the peer's
    // shift (7) and SACK-permitted (bit 4), the TSecr echoes the peer's TSval.
    let o = sa.options;
    assert_eq!(o.mss, Some(1460));
    assert_eq!(o.window_scale, Some(7), "our shift for the 4 MiB auto-tuning ceiling");
    assert!(o.sack_permitted);
    let (tsval, tsecr) = o.timestamps.unwrap();
    assert_eq!((tsval & 0x3f, tsecr), (7 | 16, 1000));
    // Stateless: a second identical SYN gets the same cookie.
    let sa2 = syn_for_cookie(&mut h, linux_syn_opts(1000));
    assert_eq!(sa2.seq, sa.seq);
}

#[test]
fn cookie_ack_builds_the_connection_with_the_encoded_mss_window_scale_and_sack() {
    let mut h = full_listener(TcpConfig { max_half_open: 2, ..TcpConfig::default() }, 8);
    let sa = syn_for_cookie(&mut h, linux_syn_opts(1000));
    h.pwnd = 200; // scaled by 2^7: 25,600 bytes
    ack_cookie(&mut h, &sa, 1001, b"hello");
    let evs = h.evs();
    h.conn = accepted(&evs).expect("Accepted");
    assert!(evs.contains(&Event::Conn(h.conn, SocketEvent::Data(b"hello".to_vec()))), "{evs:?}");
    assert_eq!(h.state(), Some(State::Established));
    let st = h.ep.stats();
    assert_eq!((st.syncookies_recv_ok, st.syncookies_failed, st.conns_accepted), (1, 0, 1));
    assert_eq!(h.ep.half_open_count(), 2, "a cookie connection was never half-open");
    // The (delayed) ACK of "hello" carries timestamps.
    h.advance(Duration::from_millis(50));
    let o = h.out();
    assert_eq!(o.len(), 1, "{o:?}");
    assert!(!o[0].0.flags.syn && o[0].0.ack == h.pseq);
    assert_eq!(o[0].0.options.timestamps.map(|t| t.1), Some(1001));
    // Sending: MSS 1460 (table entry 3) minus 12 bytes of timestamps per segment, within
    // the scaled window 200 << 7.
    h.app(AppCommand::Write(vec![7; 40_000]));
    let sent: Vec<usize> = h.out().iter().map(|s| s.1.len()).collect();
    assert!(sent.iter().all(|&n| n <= 1448) && sent[0] == 1448, "{sent:?}");
    assert_eq!(sent.iter().sum::<usize>(), 10 * 1448, "initial window 10 segments, below 25,600");
    // SACK was negotiated: out-of-order data from the peer is reported in a SACK block.
    let hole = h.pseq;
    h.pseq = hole.wrapping_add(100);
    h.popts = TcpOptions { timestamps: Some((1002, 0)), ..TcpOptions::default() };
    h.send("A", &[1; 50]);
    let o = h.out();
    let ack = o.iter().map(|s| s.0).find(|r| r.ack == hole).expect("duplicate ACK");
    assert_eq!(ack.options.sack_blocks[0], Some((hole.wrapping_add(100), hole.wrapping_add(150))));
    // Nothing was ever retransmitted as a SYN-ACK.
    h.advance(Duration::from_secs(70));
    assert!(h.out().iter().all(|s| !s.0.flags.syn));
}

#[test]
fn without_timestamps_a_cookie_connection_has_no_window_scale_or_sack() {
    let mut h = full_listener(TcpConfig { max_half_open: 1, ..TcpConfig::default() }, 8);
    let opts = TcpOptions { timestamps: None, mss: Some(1400), ..linux_syn_opts(0) };
    let sa = syn_for_cookie(&mut h, opts);
    assert_eq!(sa.options.mss, Some(1460));
    assert_eq!((sa.options.window_scale, sa.options.sack_permitted, sa.options.timestamps), (None, false, None));
    h.pwnd = 3000;
    ack_cookie(&mut h, &sa, 0, &[]);
    h.conn = accepted(&h.evs()).expect("Accepted");
    // MSS 1300 (the largest table entry not above 1400), the window unscaled (3000).
    h.app(AppCommand::SetNodelay(true));
    h.app(AppCommand::Write(vec![7; 40_000]));
    let sent: Vec<usize> = h.out().iter().map(|s| s.1.len()).collect();
    // Two full segments; the 400 bytes left of the window wait (sender SWS avoidance,
    // RFC 9293 §3.8.6.2.1). A scaled window would have let far more out.
    assert_eq!(sent, vec![1300, 1300], "MSS 1300, 3000-byte window");
}

#[test]
fn bad_cookie_ack_gets_a_rst_and_is_counted() {
    let mut h = full_listener(TcpConfig { max_half_open: 1, ..plain() }, 8);
    // Before any cookie was sent, a stray ACK is not checked: a RST, nothing counted.
    h.pack = 12345;
    h.send("A", &[]);
    assert!(h.out()[0].0.flags.rst);
    assert_eq!(h.ep.stats().syncookies_failed, 0);
    let sa = syn_for_cookie(&mut h, TcpOptions::default());
    // Wrong cookie (off by one, or a flipped MAC bit), wrong peer sequence number, wrong port.
    let cases = [(1u32, 0u32, PEER_PORT), (1 << 10, 0, PEER_PORT), (0, 1, PEER_PORT), (0, 0, PEER_PORT + 1)];
    for (dack, dseq, port) in cases {
        let r = TcpRepr {
            src_port: port,
            seq: PISS.wrapping_add(1).wrapping_add(dseq),
            ack: sa.seq.wrapping_add(1).wrapping_add(dack),
            ..h.seg("A")
        };
        h.raw(r, &[]);
        let o = h.out();
        assert!(o.len() == 1 && o[0].0.flags.rst && o[0].0.seq == r.ack, "{o:?}");
    }
    let st = h.ep.stats();
    assert_eq!((st.syncookies_failed, st.syncookies_recv_ok), (4, 0));
    assert!(accepted(&h.evs()).is_none());
    assert_eq!(h.ep.conn_count(), 1);
}

#[test]
fn cookie_expires_after_two_periods() {
    let mut h = full_listener(TcpConfig { max_half_open: 1, ..plain() }, 8);
    let sa = syn_for_cookie(&mut h, TcpOptions::default());
    // Another cookie 100 s later keeps the listener checking cookies; the first one,
    // made in period 0, is refused in period 2.
    h.now += Duration::from_secs(100);
    h.raw(TcpRepr { src_port: 7777, seq: 5, ..h.seg("S") }, &[]);
    h.out();
    h.now += Duration::from_secs(25);
    ack_cookie(&mut h, &sa, 0, &[]);
    assert!(h.out()[0].0.flags.rst);
    assert_eq!(h.ep.stats().syncookies_failed, 1);
    // The same handshake within the validity window completes.
    let mut h = full_listener(TcpConfig { max_half_open: 1, ..plain() }, 8);
    let sa = syn_for_cookie(&mut h, TcpOptions::default());
    h.now += Duration::from_secs(119);
    ack_cookie(&mut h, &sa, 0, &[]);
    assert!(accepted(&h.evs()).is_some());
    assert_eq!(h.ep.stats().syncookies_recv_ok, 1);
}

#[test]
fn half_open_entries_are_bounded_in_total_over_listeners() {
    let cfg = TcpConfig { max_half_open: 10, max_half_open_total: 3, ..plain() };
    let mut h = H::new(cfg);
    h.ep.listen(ListenAddr::Addr(LADDR), 8).unwrap();
    h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, 81)), 8).unwrap();
    for p in 0..6u16 {
        let dst_port = if p % 2 == 0 { LPORT } else { 81 };
        h.raw(TcpRepr { src_port: 6000 + p, dst_port, ..h.seg("S") }, &[]);
    }
    assert_eq!(h.ep.half_open_count(), 3);
    assert_eq!(h.ep.conn_count(), 3);
    assert_eq!(h.ep.stats().syncookies_sent, 3);
    assert_eq!(h.out().len(), 6, "three SYN-ACKs and three cookies");
    // When the half-open entries give up (5 SYN-ACK retries, about 63 s), the count
    // returns to zero.
    h.advance(Duration::from_secs(70));
    assert_eq!((h.ep.half_open_count(), h.ep.conn_count()), (0, 0));
}

#[test]
fn full_accept_queue_drops_syns_and_cookie_acks() {
    let mut h = full_listener(TcpConfig { max_half_open: 1, ..plain() }, 1);
    let sa = syn_for_cookie(&mut h, TcpOptions::default());
    h.raw(TcpRepr { src_port: 7000, seq: 100, ..h.seg("S") }, &[]);
    let sa7000 = h.out()[0].0;
    assert_eq!(h.ep.stats().syncookies_sent, 2);
    // The cookie of PEER_PORT completes and fills the backlog of 1.
    ack_cookie(&mut h, &sa, 0, &[]);
    assert!(accepted(&h.evs()).is_some());
    h.out();
    // Now a SYN is dropped, not answered with a cookie (as Linux), and a valid cookie
    // ACK is dropped without a RST (the peer retransmits; the cookie is checked again).
    h.raw(TcpRepr { src_port: 7001, seq: 200, ..h.seg("S") }, &[]);
    assert!(h.out().is_empty());
    let st = h.ep.stats();
    assert_eq!((st.syn_dropped, st.syncookies_sent), (1, 2));
    let conns = h.ep.conn_count();
    h.raw(TcpRepr { src_port: 7000, seq: 101, ack: sa7000.seq.wrapping_add(1), ..h.seg("A") }, &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.ep.conn_count(), conns);
    assert_eq!((h.ep.stats().syncookies_recv_ok, h.ep.stats().syncookies_failed), (1, 0));
    // Once the application accepts, the retransmitted ACK completes the handshake.
    h.ep.listener_accepted(1);
    h.raw(TcpRepr { src_port: 7000, seq: 101, ack: sa7000.seq.wrapping_add(1), ..h.seg("A") }, &[]);
    assert!(accepted(&h.evs()).is_some());
    assert_eq!(h.ep.stats().syncookies_recv_ok, 2);
}

#[test]
fn syncookies_off_drops_syns_beyond_the_half_open_bound() {
    let mut h = full_listener(TcpConfig { max_half_open: 1, syncookies: false, ..plain() }, 8);
    h.pseq = PISS;
    h.send("S", &[]);
    assert!(h.out().is_empty());
    let st = h.ep.stats();
    assert_eq!((st.syn_dropped, st.syncookies_sent), (1, 0));
}

#[test]
fn ipv6_cookie_carries_the_v6_mss_table() {
    // max_half_open 0: every SYN gets a cookie (Linux's tcp_syncookies = 2).
    let mut h = H::new(TcpConfig { max_half_open: 0, ..TcpConfig::default() });
    let (us, peer): (IpAddr, IpAddr) = ("fd00::2".parse().unwrap(), "fd00::1".parse().unwrap());
    h.ep.listen(ListenAddr::Addr(SocketAddr::new(us, LPORT)), 8).unwrap();
    let syn = TcpRepr { options: TcpOptions { mss: Some(1440), ..linux_syn_opts(50) }, ..h.seg("S") };
    h.ep.handle_segment(h.now, peer, us, &syn, &[]);
    let mut out = Vec::new();
    h.ep.poll_transmit(h.now, &mut |_, _, r, _| out.push(*r));
    assert_eq!(out.len(), 1);
    let sa = out[0];
    assert_eq!((sa.options.mss, h.ep.conn_count(), h.ep.stats().syncookies_sent), (Some(1440), 0, 1));
    let ack = TcpRepr {
        seq: PISS.wrapping_add(1),
        ack: sa.seq.wrapping_add(1),
        options: TcpOptions { timestamps: Some((51, sa.options.timestamps.unwrap().0)), ..TcpOptions::default() },
        ..h.seg("A")
    };
    h.ep.handle_segment(h.now, peer, us, &ack, &[]);
    h.conn = accepted(&h.evs()).expect("Accepted");
    h.ep.handle_app(h.now, h.conn, AppCommand::Write(vec![1; 10_000]));
    let mut sizes = Vec::new();
    h.ep.poll_transmit(h.now, &mut |_, _, _, p| sizes.push(p.len()));
    // Table entry 1440 minus 12 bytes of timestamps.
    assert_eq!(sizes[0], 1428, "{sizes:?}");
}
