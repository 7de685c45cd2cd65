//! Hostile review of issue 7 (SYN cookies, receive-memory charging, orphans): each test
//! is an attack a hostile peer can mount, with what the stack must do about it.

use super::*;
use crate::proto::tcp::rcvqueue::DATA_OVERHEAD;

const LADDR: SocketAddr = SocketAddr::new(US, LPORT);

fn accepted(evs: &[Event]) -> Option<ConnId> {
    evs.iter().find_map(|e| match e {
        Event::Accepted { conn, .. } => Some(*conn),
        _ => None,
    })
}

/// A listener whose half-open queue is full (max_half_open 1): the next SYN gets a cookie.
fn cookie_listener(cfg: TcpConfig) -> H {
    let mut h = H::new(TcpConfig { max_half_open: 1, ..cfg });
    h.ep.listen(ListenAddr::Addr(LADDR), 8).unwrap();
    h.raw(TcpRepr { src_port: 6000, ..h.seg("S") }, &[]);
    assert_eq!(h.out().len(), 1);
    h
}

/// The peer's SYN with `opts` from PEER_PORT; returns the cookie SYN-ACK.
fn cookie_synack(h: &mut H, opts: TcpOptions) -> TcpRepr {
    h.pseq = PISS;
    h.popts = opts;
    h.send("S", &[]);
    let o = h.out();
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!(h.ep.stats().syncookies_sent, 1);
    h.popts = TcpOptions::default();
    h.pack = o[0].0.seq.wrapping_add(1);
    o[0].0
}

/// A cookie ACK that also carries a FIN: the connection is built, established, and the
/// FIN is taken (CLOSE-WAIT, EOF after the data), not dropped with the SYN-RECEIVED TCB.
#[test]
fn cookie_ack_carrying_data_and_fin_is_one_whole_connection() {
    let mut h = cookie_listener(plain());
    cookie_synack(&mut h, TcpOptions { mss: Some(1460), ..Default::default() });
    h.send("AF", b"bye");
    let evs = h.evs();
    h.conn = accepted(&evs).expect("Accepted");
    let mine: Vec<SocketEvent> = evs
        .into_iter()
        .filter_map(|e| match e {
            Event::Conn(c, s) if c == h.conn => Some(s),
            _ => None,
        })
        .collect();
    assert!(mine.contains(&SocketEvent::Data(b"bye".to_vec())), "{mine:?}");
    let data_at = mine.iter().position(|e| matches!(e, SocketEvent::Data(_))).unwrap();
    let eof_at = mine.iter().position(|e| *e == SocketEvent::Eof).expect("EOF");
    assert!(data_at < eof_at, "data before EOF: {mine:?}");
    assert_eq!(h.state(), Some(State::CloseWait));
    let o = h.out();
    assert!(o.iter().any(|s| s.0.ack == h.pseq && !s.0.flags.rst), "the FIN is acknowledged: {o:?}");
}

/// A cookie ACK after its listener was closed gets a RST and builds nothing, even though
/// the cookie itself is still valid; so does one after a new listener took the address.
#[test]
fn cookie_ack_after_the_listener_closed_is_refused() {
    let mut h = cookie_listener(plain());
    let sa = cookie_synack(&mut h, TcpOptions::default());
    h.ep.close_listener(h.now, 1);
    h.out();
    let conns = h.ep.conn_count();
    h.send("A", &[]);
    let o = h.out();
    assert!(o.len() == 1 && o[0].0.flags.rst && o[0].0.seq == sa.seq.wrapping_add(1), "{o:?}");
    assert_eq!(h.ep.conn_count(), conns);
    // A new listener on the same address has sent no cookie: the old one is not checked.
    h.ep.listen(ListenAddr::Addr(LADDR), 8).unwrap();
    h.raw(TcpRepr { seq: PISS.wrapping_add(1), ..h.seg("A") }, &[]);
    assert!(h.out()[0].0.flags.rst);
    assert!(accepted(&h.evs()).is_none());
    assert_eq!(h.ep.stats().syncookies_recv_ok, 0);
}

/// A flood of forged cookie ACKs: each gets at most one RST (no amplification), none
/// builds state, the control queue stays bounded, and a real client's cookie ACK in the
/// middle of it still completes.
#[test]
fn forged_cookie_ack_flood_builds_nothing_and_does_not_amplify() {
    let mut h = cookie_listener(plain());
    let sa = cookie_synack(&mut h, TcpOptions::default());
    let base = h.ep.stats();
    let n = 20_000u32;
    let mut rsts = 0;
    for i in 0..n {
        let r = TcpRepr {
            src_port: 10_000 + (i % 50_000) as u16,
            seq: i.wrapping_mul(2_654_435_761),
            ack: i.wrapping_mul(40_503).wrapping_add(7),
            ..h.seg("A")
        };
        h.raw(r, &[]);
        if i == n / 2 {
            // The real client's ACK arrives mid-flood.
            h.raw(TcpRepr { seq: PISS.wrapping_add(1), ack: sa.seq.wrapping_add(1), ..h.seg("A") }, &[]);
        }
        if i % 1000 == 999 {
            rsts += h.out().iter().filter(|s| s.0.flags.rst).count();
        }
    }
    rsts += h.out().iter().filter(|s| s.0.flags.rst).count();
    let st = h.ep.stats();
    assert!(rsts <= n as usize, "{rsts} RSTs for {n} ACKs");
    assert_eq!(st.syncookies_recv_ok - base.syncookies_recv_ok, 1, "only the real one");
    assert!(st.syncookies_failed - base.syncookies_failed >= u64::from(n) - 1);
    assert!(accepted(&h.evs()).is_some());
    assert_eq!(h.ep.conn_count(), 2, "the half-open filler and the real client");
}

/// RFC 9293 §3.8.6.2.2: the receiver should not shrink the window. With window scaling,
/// a reader that falls behind while tiny segments arrive must never see the right edge
/// (SEG.ACK + SEG.WND << shift) move left, even by the rounding of the shift.
#[test]
fn scaled_window_right_edge_never_moves_left_under_tiny_segments() {
    let cfg = TcpConfig { recv_buf: 300_000, timestamps: false, sack: false, ..TcpConfig::default() };
    let (mut h, syn) = active(cfg, TcpOptions { mss: Some(1460), window_scale: Some(0), ..Default::default() });
    let shift = u32::from(syn.options.window_scale.expect("we offer a shift"));
    assert!(shift > 0);
    let mut edge: Option<u32> = None;
    let mut check = |o: &[(TcpRepr, Vec<u8>)]| {
        for (r, _) in o {
            let e = r.ack.wrapping_add(u32::from(r.window) << shift);
            if let Some(prev) = edge {
                assert!(seq::ge(e, prev), "right edge moved left: {prev} -> {e} ({r:?})");
            }
            edge = Some(e);
        }
    };
    // The reader takes the first chunk and never reads again; odd-sized segments.
    for i in 0..3000usize {
        let len = 1 + (i * 7919) % 97;
        h.send("A", &vec![i as u8; len]);
        let o = h.out();
        check(&o);
        if i % 10 == 0 {
            h.advance(ms(50));
            let o = h.out();
            check(&o);
        }
    }
}

/// Window accounting must not drift: after any mix of tiny in-order, out-of-order and
/// overlapping segments, once the reader has read everything the window offered is the
/// whole buffer again (nothing charged is leaked), and every byte arrived exactly once.
#[test]
fn charge_returns_to_zero_after_tiny_ooo_and_overlapping_segments() {
    let buf = 16_384usize;
    let cfg = TcpConfig { recv_buf: buf, max_ooo_bytes: 4096, ..sack_cfg() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), sack_permitted: true, ..Default::default() });
    let start = h.pseq;
    let total = 12_000u32;
    let stream: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let mut got = Vec::new();
    let mut x = 99u32;
    let mut rcv_nxt = start;
    for round in 0..4000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        // Somewhere from a bit below what was acknowledged to a bit above.
        let off = (rcv_nxt.wrapping_sub(start) as i64 - 50 + i64::from(x % 700)).clamp(0, i64::from(total) - 1) as u32;
        let len = (1 + (x >> 16) % 40).min(total - off);
        h.pseq = start.wrapping_add(off);
        h.send("A", &stream[off as usize..(off + len) as usize]);
        for (r, _) in h.out() {
            rcv_nxt = r.ack;
        }
        for e in h.conn_evs() {
            if let SocketEvent::Data(d) = e {
                got.extend_from_slice(&d);
                // Read every other round's data at once, else later.
                if round % 2 == 0 {
                    h.app(AppCommand::ReadCredit(d.len()));
                } else {
                    h.app(AppCommand::ReadCredit(0));
                    h.app(AppCommand::ReadCredit(d.len()));
                }
            }
        }
        if rcv_nxt == start.wrapping_add(total) {
            break;
        }
    }
    // Whatever was handed out last has been read: nothing may stay charged.
    for e in h.conn_evs() {
        if let SocketEvent::Data(d) = e {
            got.extend_from_slice(&d);
            h.app(AppCommand::ReadCredit(d.len()));
        }
    }
    assert_eq!(got, stream, "exactly once, in order");
    assert_eq!(h.ep.rx_memory(h.conn), Some((0, 0)), "charge leaked");
}

/// Issue 7: "a socket that never reads makes the stack hold at most about twice its
/// receive buffer, whatever the peer's segment sizes". With a small buffer the chunk being
/// filled must not be a 64 KiB allocation charged only for what it holds.
#[test]
fn small_receive_buffer_holds_at_most_twice_its_size() {
    for buf in [crate::proto::tcp::MIN_RECV_BUF, 4096, 16_384] {
        let cfg = TcpConfig { recv_buf: buf, ..plain() };
        let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), ..Default::default() });
        // The reader takes one chunk and then stops reading; one-byte segments follow.
        h.send("A", b"x");
        h.out();
        h.evs();
        let mut max_held = 0;
        for i in 0..buf {
            h.send("A", &[i as u8]);
            h.out();
            h.evs();
            let (charged, held) = h.ep.rx_memory(h.conn).unwrap();
            assert!(charged <= buf + 2 * DATA_OVERHEAD, "{charged}");
            max_held = max_held.max(held);
        }
        assert!(max_held <= 2 * buf, "buffer {buf}: {max_held} bytes held");
    }
}

/// A RST (in order, at RCV.NXT) that arrives while data is held back for a reader that is
/// behind: everything acknowledged reaches the application before the reset is reported.
#[test]
fn rst_while_data_is_held_back_delivers_the_data_first() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1460), ..Default::default() });
    h.send("A", b"one");
    h.out();
    assert_eq!(h.conn_evs(), vec![SocketEvent::Data(b"one".to_vec())]);
    h.send("A", b"two");
    h.send("A", b"three");
    h.send("R", &[]);
    let evs = h.conn_evs();
    assert_eq!(
        evs,
        vec![
            SocketEvent::Data(b"twothree".to_vec()),
            SocketEvent::Error(ErrorKind::ConnectionReset),
            SocketEvent::Closed
        ]
    );
}

/// A peer that ignores a closed window and floods data beyond it: nothing past the right
/// edge is stored or charged, every byte inside it is kept exactly once.
#[test]
fn data_beyond_a_closed_window_is_neither_stored_nor_charged() {
    let buf = 8192;
    let (mut h, _) = active(
        TcpConfig { recv_buf: buf, ..sack_cfg() },
        TcpOptions { mss: Some(1460), sack_permitted: true, ..Default::default() },
    );
    let start = h.pseq;
    // The reader never reads; the peer sends 64 KiB in order, as fast as it likes.
    let mut ack = start;
    for i in 0..64u32 {
        h.pseq = start.wrapping_add(i * 1024);
        h.send("A", &[i as u8; 1024]);
        h.advance(ms(1));
        for (r, _) in h.out() {
            assert!(seq::ge(r.ack, ack));
            ack = r.ack;
        }
    }
    let accepted = ack.wrapping_sub(start) as usize;
    assert!(accepted <= buf, "{accepted} bytes accepted into an {buf}-byte buffer");
    let (charged, held) = h.ep.rx_memory(h.conn).unwrap();
    assert!(charged <= buf + 2 * DATA_OVERHEAD && held <= 2 * buf, "charged {charged}, held {held}");
    assert_eq!(h.ep.stats().ooo_dropped, 0, "beyond the window is not out of order");
    let got: usize = h.conn_evs().iter().map(|e| if let SocketEvent::Data(d) = e { d.len() } else { 0 }).sum();
    assert_eq!(got, accepted);
}

/// The cookie's counter travels modulo 2^8: a cookie made at period `c` must not come back
/// to life at `c + 256` (or any multiple), where its top bits would read as age 0.
#[test]
fn cookie_counter_wrap_does_not_revive_an_old_cookie() {
    use crate::proto::tcp::syncookie::SynCookies;
    let c = SynCookies::new([3; 16]);
    let (l, r) = (LADDR, SocketAddr::new(PEER, PEER_PORT));
    for made in [0u32, 7, 255, 256, u32::MAX - 1] {
        let k = c.make(l, r, PISS, made, 1);
        assert_eq!(c.check(l, r, PISS, made, k), Some(1));
        for later in [256u32, 257, 512, 1 << 24] {
            assert_eq!(c.check(l, r, PISS, made.wrapping_add(later), k), None, "made {made}, +{later}");
        }
    }
}

/// Out-of-order queue full of data far to the right: a segment just past the hole (more
/// useful: it is delivered sooner) should make room by dropping the highest entries (Linux
/// `tcp_prune_ofo_queue`, a receiver may renege on SACKed data, RFC 2018 §8), not be refused.
/// Not done, on purpose: pruning was tried and reverted. Far data is SACKed, and a sender
/// resends reneged data only after a timeout (Linux: once the head of its queue is marked
/// SACKed); at 10 % loss a 32 MiB download from Linux pruned 11 MB and stalled. A full queue
/// refuses instead; the segment at RCV.NXT is in order and always taken.
#[test]
#[ignore = "pruning SACKed data (reneging) costs the sender a timeout; refused on purpose, see the doc comment"]
fn full_ooo_queue_prunes_far_data_for_near_data() {
    let cfg = TcpConfig { recv_buf: 65_536, max_ooo_bytes: 4096, ..sack_cfg() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), sack_permitted: true, ..Default::default() });
    let start = h.pseq;
    for i in 0..8u32 {
        h.pseq = start.wrapping_add(20_000 + i * 2000);
        h.send("A", &[1; 1000]);
        h.out();
    }
    assert!(h.ep.stats().ooo_dropped > 0, "the queue is full");
    h.pseq = start.wrapping_add(1000);
    h.send("A", &[2; 1000]);
    let o = h.out();
    let blocks: Vec<(u32, u32)> = o.iter().flat_map(|s| s.0.options.sack_blocks.into_iter().flatten()).collect();
    assert!(blocks.contains(&(start.wrapping_add(1000), start.wrapping_add(2000))), "near data refused: {blocks:?}");
}
