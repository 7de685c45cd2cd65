//! Loss recovery against a scripted peer: limited transmit, SACK recovery with PRR, RACK,
//! tail-loss probes, undo of spurious retransmissions, D-SACK both ways, and the review's
//! recovery defects (each test named `review_N_…` failed before its fix).

use super::*;

#[test]
fn review_6_limited_transmit_rfc3042() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 20_000]));
    assert_eq!(h.out().len(), 10, "IW");
    let una = h.pack;
    // Each of the first two duplicate ACKs lets one new segment out (RFC 3042 §2).
    h.send("A", &[]);
    assert_eq!(seqs(&h.out()), vec![una.wrapping_add(10_000)]);
    h.send("A", &[]);
    assert_eq!(seqs(&h.out()), vec![una.wrapping_add(11_000)]);
    // The third starts fast retransmit.
    h.send("A", &[]);
    let o = seqs(&h.out());
    assert_eq!(o[0], una, "{o:?}");
    assert_eq!(h.ep.stats().fast_retransmits, 1);
}

#[test]
fn review_6_sack_recovery_resends_each_hole_once_with_prr() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 40_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    let mut sent = Vec::new();
    // Segment 0 lost; 1..=9 arrive, each ACK carrying one more SACKed segment.
    for k in 2..=10 {
        h.popts.sack_blocks = [Some((s(1), s(k))), None, None, None];
        h.send("A", &[]);
        sent.extend(seqs(&h.out()));
    }
    let resends = sent.iter().filter(|&&x| x == s(0)).count();
    assert_eq!(resends, 1, "the hole is retransmitted once: {sent:?}");
    // PRR (RFC 6937): while pipe > ssthresh, about half of what was delivered goes out,
    // not two segments per ACK.
    assert!(sent.len() <= 6, "9 segments delivered, {} sent: {sent:?}", sent.len());
    assert!(sent.len() >= 4, "PRR keeps the ACK clock going: {sent:?}");
    // The full ACK ends recovery with cwnd = ssthresh = FlightSize / 2.
    h.popts.sack_blocks = [None; 4];
    h.pack = sent.iter().copied().fold(s(10), |m, x| seq::max(m, x.wrapping_add(1000)));
    h.send("A", &[]);
    assert_eq!(h.out().len(), 5, "cwnd = ssthresh after recovery");
}

#[test]
fn review_8_data_in_zero_window_is_not_a_duplicate_ack() {
    let cfg = TcpConfig { recv_buf: crate::proto::tcp::MIN_RECV_BUF, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 3000]));
    assert_eq!(h.out().len(), 3);
    // Fill our receive window (the app does not read).
    h.send("A", &[2; 1000]);
    h.send("A", &[2; 1000]);
    h.send("A", &[2; crate::proto::tcp::MIN_RECV_BUF - 2000]);
    assert_eq!(h.out().last().unwrap().0.window, 0, "the window is full");
    h.out();
    // The peer keeps sending data at RCV.NXT with an unchanged ACK: not duplicate ACKs.
    for _ in 0..5 {
        let r = h.seg("A");
        h.raw(r, &[3; 500]);
    }
    let o = h.out();
    assert_eq!(h.ep.stats().fast_retransmits, 0, "{o:?}");
}

#[test]
fn review_10_window_update_needs_snd_una_le_seg_ack() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 3000]));
    assert_eq!(h.out().len(), 3);
    let una = h.pack;
    h.pack = una.wrapping_add(2000);
    h.send("A", &[9; 10]);
    // An old ACK (below SND.UNA, inside MAX.SND.WND) on a newer segment closing the window.
    h.pack = una;
    h.pwnd = 0;
    h.send("A", &[9; 10]);
    h.out();
    // The window stays open: new data is sent at once.
    h.pack = una.wrapping_add(3000);
    h.pwnd = 65535;
    h.app(AppCommand::Write(vec![1; 1000]));
    let o = seqs(&h.out());
    assert_eq!(o, vec![una.wrapping_add(3000)], "an old ACK must not update SND.WND");
}

/// A peer's retransmission (SEG.SEQ below SND.WL1) that advances SND.UNA carries the window
/// of the moment it was sent. Keeping the older window (the RFC 9293 §3.10.7.4 test taken
/// alone) moved our idea of the peer's right edge right by the bytes acknowledged: we sent
/// past its window, and its pure ACKs, sent at its SND.NXT beyond that edge, were then
/// unacceptable to it (a writer stalled for a minute in `tcp_tx_recycle`).
#[test]
fn an_ack_that_advances_snd_una_updates_the_window_from_an_older_segment() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 3000]));
    assert_eq!(h.out().len(), 3);
    let una = h.pack;
    let p = h.pseq;
    // The peer's second segment arrives first (out of order): SND.WL1 = p + 1000, a wide window.
    h.pseq = p.wrapping_add(1000);
    h.send("A", &[7; 1000]);
    h.out();
    // Its first segment, retransmitted later, acknowledges everything and offers 3000 bytes:
    // the peer's right edge is una + 6000.
    h.pseq = p;
    h.pack = una.wrapping_add(3000);
    h.pwnd = 3000;
    h.send("A", &[7; 1000]);
    h.app(AppCommand::Write(vec![1; 20_000]));
    let o = h.out();
    let edge = una.wrapping_add(6000);
    for (r, data) in &o {
        let end = r.seq.wrapping_add(data.len() as u32);
        assert!(seq::le(end, edge), "sent [{}, {}) past the peer's right edge {edge}", r.seq, end);
    }
    assert_eq!(o.iter().map(|(_, d)| d.len()).sum::<usize>(), 3000, "the offered window is used");
}

#[test]
fn review_11_app_limited_sender_does_not_grow_cwnd_rfc7661() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1000), ..Default::default() });
    // A trickle: one small write per round trip, 200 rounds.
    for _ in 0..200 {
        h.app(AppCommand::Write(vec![1; 100]));
        assert_eq!(h.out().len(), 1);
        h.pack = h.pack.wrapping_add(100);
        h.send("A", &[]);
    }
    h.app(AppCommand::Write(vec![1; 60_000]));
    assert_eq!(h.out().len(), 10, "cwnd is still the initial window");
}

#[test]
fn tail_loss_probe_repairs_a_lost_tail_without_rto() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 10_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    // Segments 8 and 9 lost: the peer acknowledges 0..8 at once.
    h.pack = s(8);
    h.send("A", &[]);
    assert!(h.out().is_empty());
    // The PTO (2·SRTT, at least 10 ms) fires well before the 200 ms RTO: the last
    // segment is probed (RFC 8985 §7.3).
    let w = h.run_timer(Duration::from_secs(1));
    assert!(w < ms(200), "PTO {w:?}");
    assert_eq!(seqs(&h.out()), vec![s(9)]);
    assert_eq!(h.ep.stats().tlp_probes, 1);
    // The probe arrives and is SACKed: RACK finds segment 8 lost; it is resent at once.
    h.popts.sack_blocks = [Some((s(9), s(10))), None, None, None];
    h.send("A", &[]);
    assert_eq!(seqs(&h.out()), vec![s(8)]);
    h.popts.sack_blocks = [None; 4];
    h.pack = s(10);
    h.send("A", &[]);
    assert_eq!(h.ep.stats().timeouts, 0, "repaired without a timeout");
    assert_eq!(h.ep.stats().fast_retransmits, 1, "the probe's SACK started a recovery");
}

#[test]
fn a_pure_duplicate_ack_ends_a_tail_loss_probe_episode_with_nothing_in_flight() {
    // The probe and the original both arrived (RFC 8985 §7.4.2; Linux
    // `tcp_process_tlp_ack`'s pure dupack): no loss. That duplicate ACK finds nothing in
    // flight, yet it must still end the episode; otherwise the next ACK of new data would
    // be taken as proof that the probe repaired a loss and reduce cwnd.
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 10_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    h.pack = s(9);
    h.send("A", &[]);
    h.run_timer(Duration::from_secs(1));
    assert_eq!(seqs(&h.out()), vec![s(9)], "the tail is probed");
    h.pack = s(10);
    h.send("A", &[]); // the original (or the probe) acknowledged
    h.send("A", &[]); // the other copy: a pure duplicate ACK, no D-SACK
    h.app(AppCommand::Write(vec![2; 1000]));
    assert_eq!(seqs(&h.out()), vec![s(10)]);
    h.pack = s(11);
    h.send("A", &[]);
    assert_eq!(h.ep.stats().tlp_recoveries, 0, "no loss was inferred");
}

#[test]
fn rack_waits_a_reordering_window_before_declaring_loss() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    // Give the connection an RTT of 40 ms (SRTT ~29 ms after ten samples: PTO > 40 ms).
    for _ in 0..10 {
        h.app(AppCommand::Write(vec![1; 1000]));
        h.out();
        h.advance(ms(40));
        h.pack = h.pack.wrapping_add(1000);
        h.send("A", &[]);
    }
    h.app(AppCommand::Write(vec![1; 10_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    // Reordering seen once: segment 0 arrives after 1 was SACKed, never retransmitted.
    h.advance(ms(40));
    h.popts.sack_blocks = [Some((s(1), s(2))), None, None, None];
    h.send("A", &[]);
    assert!(seqs(&h.out()).is_empty(), "one SACKed segment: wait (reordering window)");
    h.pack = s(2);
    h.popts.sack_blocks = [None; 4];
    h.send("A", &[]);
    assert_eq!(h.ep.stats().reordering_seen, 1);
    assert_eq!(h.ep.stats().fast_retransmits, 0);
    assert_eq!(h.ep.stats().retransmits, 0);
    // Now segment 2 is missing while 3 is SACKed: RACK waits min_rtt/4 = 10 ms, then
    // declares it lost (the reordering timer, RFC 8985 §6.3).
    h.popts.sack_blocks = [Some((s(3), s(4))), None, None, None];
    h.send("A", &[]);
    assert!(seqs(&h.out()).is_empty());
    let w = h.run_timer(ms(100));
    assert!(w > Duration::ZERO && w <= ms(10), "reordering window {w:?}");
    assert_eq!(seqs(&h.out())[0], s(2));
}

#[test]
fn spurious_rto_undone_with_timestamps_eifel() {
    let cfg = TcpConfig { sack: false, window_scale: false, ..TcpConfig::default() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), timestamps: Some((1, 1)), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 10_000]));
    let o = h.out();
    assert_eq!(o.len(), 10);
    let sent: usize = o.iter().map(|s| s.1.len()).sum();
    let first_ts = o[0].0.options.timestamps.unwrap().0;
    // The ACKs are late, not lost: the RTO fires and resends segment 0 with a newer TSval.
    h.run_timer(Duration::from_secs(10));
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert!(seq::gt(o[0].0.options.timestamps.unwrap().0, first_ts));
    // The delayed ACK of the original arrives, echoing the original TSval (RFC 3522).
    h.pack = h.pack.wrapping_add(sent as u32);
    h.popts.timestamps = Some((2, first_ts));
    h.send("A", &[]);
    assert_eq!(h.ep.stats().spurious_undone, 1);
    // cwnd is back (not 1 segment of slow start).
    h.app(AppCommand::Write(vec![1; 20_000]));
    assert!(h.out().len() >= 10, "window restored");
}

#[test]
fn spurious_fast_retransmit_undone_by_dsack() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 10_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    for k in 2..=5 {
        h.popts.sack_blocks = [Some((s(1), s(k))), None, None, None];
        h.send("A", &[]);
    }
    assert!(seqs(&h.out()).contains(&s(0)), "fast retransmit");
    // Segment 0 was only delayed: everything is acknowledged, then the retransmission
    // comes back as a duplicate (D-SACK below the cumulative ACK, RFC 2883 §4.1).
    h.pack = s(10);
    h.popts.sack_blocks = [None; 4];
    h.send("A", &[]);
    h.popts.sack_blocks = [Some((s(0), s(1))), None, None, None];
    h.send("A", &[]);
    assert_eq!(h.ep.stats().dsacks_received, 1);
    assert_eq!(h.ep.stats().spurious_undone, 1);
}

#[test]
fn receiver_reports_duplicate_data_with_dsack() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    let start = h.pseq;
    h.send("A", &[5; 100]);
    h.out();
    // The same segment again: the ACK's first SACK block names it (RFC 2883 §4).
    h.pseq = start;
    h.send("A", &[5; 100]);
    let o = h.out();
    assert_eq!(o[0].0.options.sack_blocks[0], Some((start, start.wrapping_add(100))));
    // A segment overlapping the left edge: the duplicate part is reported.
    h.pseq = start.wrapping_add(50);
    h.send("A", &[5; 100]);
    let o = h.out();
    assert_eq!(o[0].0.options.sack_blocks[0], Some((start.wrapping_add(50), start.wrapping_add(100))));
    assert_eq!(o[0].0.ack, start.wrapping_add(150));
}

/// Moves `total` bytes through the connection with 64 KiB segments, ACKing each one
/// (and, with `ack_at`, first exactly at that sequence number when a segment spans it).
/// Every payload is checked against the repeating pattern `offset & 0xff`.
fn pump(h: &mut H, total: u64, check_from: Option<u32>, ack_at: Option<u32>, mut credit: usize) {
    let pattern: Vec<u8> = (0..1usize << 20).map(|i| i as u8).collect();
    let mut segments = 0u64;
    let mut written = 0u64;
    let mut acked = 0u64;
    for e in h.conn_evs() {
        if let SocketEvent::SendCredit(n) = e {
            credit += n;
        }
    }
    while acked < total {
        if credit > 0 {
            let off = (written % (1 << 20)) as usize;
            let n = credit.min((1 << 20) - off);
            h.app(AppCommand::Write(pattern[off..off + n].to_vec()));
            written += n as u64;
            credit -= n;
        }
        let mut ends = Vec::new();
        let mut bad = None;
        h.ep.poll_transmit(h.now, &mut |_, _, r: &TcpRepr, p: &[u8]| {
            let Some(first_data) = check_from else { return ends.push(r.seq.wrapping_add(p.len() as u32)) };
            let off = r.seq.wrapping_sub(first_data) as u8;
            if p.iter().enumerate().any(|(i, &b)| b != off.wrapping_add(i as u8)) {
                bad = Some(r.seq);
            }
            ends.push(r.seq.wrapping_add(p.len() as u32));
        });
        h.sync_timers();
        assert_eq!(bad, None, "payload shifted at seq {bad:?} after {acked} bytes");
        segments += ends.len() as u64;
        for end in ends {
            if let Some(x) = ack_at.filter(|&x| seq::lt(h.pack, x) && seq::lt(x, end)) {
                h.pack = x;
                h.send("A", &[]);
            }
            acked += end.wrapping_sub(h.pack) as u64;
            h.pack = end;
            h.send("A", &[]);
        }
        for e in h.conn_evs() {
            if let SocketEvent::SendCredit(n) = e {
                credit += n;
            }
        }
    }
    eprintln!("pump: {acked} bytes in {segments} segments, {written} written");
}

fn jumbo() -> (H, u32) {
    let cfg = TcpConfig { mtu: 65535, send_buf: 4 << 20, ..plain() };
    let (h, syn) = active(cfg, TcpOptions { mss: Some(65495), ..Default::default() });
    (h, syn.seq.wrapping_add(1))
}

#[test]
fn review_3_ack_landing_on_iss_after_4gib_wrap_keeps_data_aligned() {
    let (mut h, first) = jumbo();
    let iss = first.wrapping_sub(1);
    // 4 GiB + a little: an ACK lands exactly on ISS after the wrap.
    pump(&mut h, (1u64 << 32) + (1 << 20), Some(first), Some(iss), 4 << 20);
    assert_eq!(h.state(), Some(State::Established));
}

#[test]
fn review_2_fast_retransmit_still_works_2gib_after_a_recovery() {
    let (mut h, _) = jumbo();
    // A recovery early on sets `recover`.
    h.app(AppCommand::Write(vec![0; 1 << 20]));
    let mut high = h.pack;
    for s in seqs(&h.out()) {
        high = seq::max(high, s.wrapping_add(65495));
    }
    for _ in 0..3 {
        h.send("A", &[]);
        for s in seqs(&h.out()) {
            high = seq::max(high, s.wrapping_add(65495));
        }
    }
    assert_eq!(h.ep.stats().fast_retransmits, 1);
    h.pack = high;
    h.send("A", &[]);
    // More than 2^31 bytes later, three duplicate ACKs must start fast retransmit again.
    pump(&mut h, (1u64 << 31) + (64 << 20), None, None, 3 << 20);
    h.app(AppCommand::Write(vec![0; 1 << 20]));
    assert!(!h.out().is_empty());
    for _ in 0..3 {
        h.send("A", &[]);
        h.out();
    }
    assert_eq!(h.ep.stats().fast_retransmits, 2);
}

#[test]
fn corrupted_segment_is_a_counted_drop() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    let r = h.seg("A");
    let mut buf = vec![0u8; r.header_len() + 10];
    r.emit(&mut buf, &[7; 10], PEER, US);
    let last = buf.len() - 1;
    buf[last] ^= 0x10;
    h.ep.handle_packet(h.now, PEER, US, &buf, false);
    assert_eq!(h.ep.stats().malformed, 1);
    assert!(h.out().is_empty(), "dropped silently (M-3)");
    buf[last] ^= 0x10;
    h.ep.handle_packet(h.now, PEER, US, &buf, false);
    assert_eq!(h.ep.stats().malformed, 1);
    assert_eq!(h.conn_evs(), vec![SocketEvent::Data(vec![7; 10])]);
}

#[test]
fn each_out_of_order_segment_gets_its_own_ack_within_a_batch() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    let start = h.pseq;
    // Three segments arrive in one batch: a hole at `start`, then two out of order.
    h.pseq = start.wrapping_add(1000);
    h.send("A", &[1; 1000]);
    h.send("A", &[1; 1000]);
    let o = h.out();
    let blocks: Vec<_> = o.iter().map(|s| s.0.options.sack_blocks[0]).collect();
    let b = |l: u32, r: u32| Some((start.wrapping_add(l), start.wrapping_add(r)));
    assert_eq!(blocks, vec![b(1000, 2000), b(1000, 3000)], "one duplicate ACK per segment (RFC 5681 §4.2)");
    // In-order data in a batch still gets one ACK (M-58).
    h.pseq = start;
    h.send("A", &[1; 1000]);
    let o = h.out();
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0.ack, start.wrapping_add(3000));
}

#[test]
fn closing_count_tracks_unacknowledged_fins() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    assert_eq!(h.ep.closing_count(), 0);
    h.app(AppCommand::Close);
    let o = h.out();
    assert!(o[0].0.flags.fin);
    assert_eq!(h.ep.closing_count(), 1, "FIN-WAIT-1: the stack's shutdown lingers for it");
    h.pack = h.pack.wrapping_add(1);
    h.send("A", &[]);
    assert_eq!(h.state(), Some(State::FinWait2));
    assert_eq!(h.ep.closing_count(), 0);
}

/// Issue 7 (memory): one-byte segments arriving one per batch, into a socket that does not
/// read, must not each pin a 64 KiB chunk.
#[test]
fn tiny_segments_do_not_pin_whole_chunks() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    let mut held = 0;
    for _ in 0..100 {
        h.send("A", &[7]);
        h.out();
        for e in h.conn_evs() {
            if let SocketEvent::Data(d) = e {
                assert_eq!(d.len(), 1);
                held += d.capacity();
            }
        }
    }
    assert!(held <= 100 * 8, "{held} bytes of chunk capacity for 100 bytes of payload");
}
