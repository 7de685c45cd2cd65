//! Review 11: receive-buffer auto-tuning (`rcvbuf`) and the larger window scale it
//! brings, attacked from the peer's side.

use super::*;
use crate::proto::tcp::rcvqueue::DATA_OVERHEAD;

/// The right edge the peer learns from our segments: SEG.ACK + SEG.WND << shift.
fn edge_of(o: &[(TcpRepr, Vec<u8>)], shift: u8, edge: &mut u32) {
    for (r, _) in o {
        *edge = seq::max(*edge, r.ack.wrapping_add(u32::from(r.window) << shift));
    }
}

/// An application that never reads keeps the initial buffer's bound (`rcvbuf` invariant),
/// even against a peer that sends small segments, each ACKed on its own, and that stays
/// inside every window we offer. The auto-tuning ceiling's shift (7) rounds the scaled
/// window up by up to 127 bytes on every ACK that does not open it ("never shrink"); the
/// right edge must not creep along with RCV.NXT past the buffer and its slack (an eighth,
/// `tcb` invariants).
#[test]
fn small_acked_segments_do_not_creep_past_a_non_readers_buffer() {
    let buf = 32 * 1024;
    let cfg = TcpConfig { recv_buf: buf, timestamps: false, sack: false, ..TcpConfig::default() };
    let shift = crate::proto::tcp::tcb::rcv_wscale_for(&cfg);
    assert_eq!(shift, 7, "offered for the 4 MiB ceiling");
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), window_scale: Some(0), ..Default::default() });
    let start = h.pseq;
    let mut edge = start.wrapping_add(65535.min(buf as u32));
    for _ in 0..5000 {
        let room = seq::dist(h.pseq, edge).min(100);
        if room == 0 {
            break;
        }
        h.send("A", &vec![3; room]);
        h.advance(ms(40)); // the delayed ACK
        let o = h.out();
        edge_of(&o, shift, &mut edge);
        h.conn_evs(); // the application never reads (no ReadCredit)
    }
    let accepted = seq::dist(start, h.pseq);
    let (charged, _) = h.ep.rx_memory(h.conn).expect("open");
    let bound = buf + buf / 8 + (1 << shift);
    assert!(accepted < bound, "a non-reader accepted {accepted} bytes (buffer {buf})");
    assert!(charged < bound + 2 * DATA_OVERHEAD, "charged {charged} (buffer {buf})");
}

/// A SYN-cookie connection scales its windows by the shift its stateless SYN-ACK offered
/// (the auto-tuning ceiling's, 7), not by one for the initial buffer: the first ACK's
/// window is the 1 MiB buffer at 2^7, not four times it.
#[test]
fn a_cookie_connection_scales_by_the_shift_its_syn_ack_offered() {
    let cfg = TcpConfig { max_half_open: 1, ..TcpConfig::default() };
    let mut h = H::new(cfg.clone());
    h.ep.listen(ListenAddr::Addr(SocketAddr::new(US, LPORT)), 8).unwrap();
    h.raw(TcpRepr { src_port: 6000, ..h.seg("S") }, &[]);
    assert_eq!(h.out().len(), 1, "the ordinary SYN-ACK fills the half-open queue");
    h.popts = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((1000, 0)),
        ..TcpOptions::default()
    };
    h.send("S", &[]);
    let sa = h.out()[0].0;
    assert_eq!(h.ep.stats().syncookies_sent, 1);
    let shift = sa.options.window_scale.expect("offered");
    assert_eq!(shift, crate::proto::tcp::tcb::rcv_wscale_for(&cfg));
    h.pack = sa.seq.wrapping_add(1);
    h.popts = TcpOptions { timestamps: sa.options.timestamps.map(|(v, _)| (1001, v)), ..TcpOptions::default() };
    h.send("A", b"hello");
    assert_eq!(h.ep.stats().syncookies_recv_ok, 1);
    h.advance(ms(50));
    let o = h.out();
    let wnd = (o.last().expect("the ACK").0.window as usize) << shift;
    assert!(wnd <= cfg.recv_buf && wnd + 4096 > cfg.recv_buf, "window {wnd} at shift {shift}");
}
