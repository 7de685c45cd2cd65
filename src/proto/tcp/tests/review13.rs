//! Review 13: the send-window update rule (an ACK that advances SND.UNA carries the window
//! whatever its SEG.SEQ) attacked from the peer's side, and what the extended simulation
//! seeds found around zero windows.

use super::*;

/// The right edge the peer learns from our segments: SEG.ACK + SEG.WND << shift.
fn edge_of(o: &[(TcpRepr, Vec<u8>)], shift: u8, edge: &mut u32) {
    for (r, _) in o {
        *edge = seq::max(*edge, r.ack.wrapping_add(u32::from(r.window) << shift));
    }
}

/// An active open whose receive buffer is `cfg.recv_buf` even below `MIN_RECV_BUF`: the
/// states these seeds reached (before the floor) are still guarded against.
fn active_below_floor(cfg: TcpConfig, opts: TcpOptions) -> (H, TcpRepr) {
    let recv_buf = cfg.recv_buf;
    let mut h = H::new(cfg);
    h.ep.set_recv_buf_below_the_floor(recv_buf);
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    let syn = complete_active(&mut h, opts);
    (h, syn)
}

/// The application reads everything handed to it; returns the bytes read.
fn read_all(h: &mut H) -> usize {
    let mut n = 0;
    for e in h.conn_evs() {
        if let SocketEvent::Data(d) = e {
            n += d.len();
            h.app(AppCommand::ReadCredit(d.len()));
        }
    }
    n
}

/// A receive buffer smaller than 2^shift (here 39 bytes under the auto-tuning ceiling's
/// shift 7, as simulation seed 12325 draws) must still reopen once the application has read
/// everything. The free space (39 bytes) scales to a field of 0; rounding it down announced a
/// zero window forever, the peer's probes got zero-window answers and its sender timed out
/// (seeds 11850, 12325, 26341, 26897, 27405 of `seeds_many` hung). Linux's
/// `__tcp_select_window` rounds the free space up to 2^shift for exactly this case
/// ("prevent zero window announcement if 1<<rcv_wscale > mss").
#[test]
fn a_buffer_smaller_than_the_scale_unit_reopens_after_the_read() {
    let cfg = TcpConfig { recv_buf: 39, timestamps: false, sack: false, ..TcpConfig::default() };
    let shift = crate::proto::tcp::tcb::rcv_wscale_for(&cfg);
    assert_eq!(shift, 7);
    let (mut h, _) =
        active_below_floor(cfg, TcpOptions { mss: Some(1000), window_scale: Some(0), ..Default::default() });
    let mut edge = h.pseq.wrapping_add(39); // the SYN-ACK's window (never scaled)
    let mut read = 0;
    for _ in 0..200 {
        // The peer fills every window it is offered; its ACK goes out before the read.
        let room = seq::dist(h.pseq, edge);
        if room > 0 {
            h.send("A", &vec![3; room]);
        } else {
            // A zero-window probe (RFC 9293 §3.8.6.1): one byte at the edge.
            let r = h.seg("A");
            h.raw(r, &[3]);
        }
        h.advance(ms(200));
        let mut o = h.out();
        read += read_all(&mut h);
        o.extend(h.out());
        if o.iter().any(|(r, _)| seq::gt(r.ack, h.pseq)) {
            h.pseq = h.pseq.wrapping_add(1); // the probe byte was taken
        }
        edge_of(&o, shift, &mut edge);
    }
    assert!(read >= 1000, "only {read} bytes got through a 39-byte buffer that the application drains");
}

/// After a window retracted on the wire (RFC 7323 §2.4: the field rounded down while
/// RCV.ADV stays), the read that frees the buffer must announce the window again. Seed
/// 27405: the window update after a read was lost; the peer's 1-byte probe, taken inside
/// RCV.ADV, was answered with a field of 0 (the byte's charge fills a 48-byte buffer);
/// once it was read no update went out, since RCV.ADV still looked open, so the peer
/// got one byte per persist interval until its sender timed out.
#[test]
fn a_read_after_a_retracted_window_announces_it_again() {
    let cfg = TcpConfig { recv_buf: 48, timestamps: false, sack: false, ..TcpConfig::default() };
    let shift = crate::proto::tcp::tcb::rcv_wscale_for(&cfg);
    let (mut h, _) =
        active_below_floor(cfg, TcpOptions { mss: Some(1000), window_scale: Some(0), ..Default::default() });
    let mut edge = h.pseq;
    h.send("A", &[3; 48]); // fills the SYN-ACK's window
    h.advance(ms(200));
    let o = h.out();
    edge_of(&o, shift, &mut edge);
    assert_eq!(edge, h.pseq, "a full buffer: zero window");
    assert_eq!(read_all(&mut h), 48);
    let lost = h.out();
    assert!(lost.iter().any(|(r, _)| r.window > 0), "the window update after the read: {lost:?}");
    // That update is lost. The peer probes with one byte at the edge it knows.
    let r = h.seg("A");
    h.raw(r, &[4]);
    h.advance(ms(200)); // the delayed ACK
    let o = h.out();
    assert!(o.iter().any(|(r, _)| r.ack == h.pseq.wrapping_add(1)), "the probe byte is inside RCV.ADV: {o:?}");
    h.pseq = h.pseq.wrapping_add(1);
    assert!(o.iter().all(|(r, _)| r.window == 0), "its charge fills the buffer: {o:?}");
    assert_eq!(read_all(&mut h), 1);
    h.advance(ms(200));
    let o = h.out();
    assert!(o.iter().any(|(r, _)| r.window > 0), "the read must reopen the retracted window: {o:?}");
}
