//! Second adversarial review: BBR/rate sampling, per-segment receiver ACK snapshots,
//! RACK's transmission-order rule, and D-SACK undo. "WAS (before its fix):" tests
//! demonstrated a defect on the code they were written against (the doc comment describes
//! that code); they are now the regression tests of the fixes. "HOLDS:" tests are
//! evidence that a bound or rule held.

use super::super::bbr::Bbr;
use super::super::rack::Rack;
use super::super::rate::RateSample;
use super::*;

/// Pacing off: these tests script the window's arithmetic at fixed instants.
fn bbr_cfg() -> TcpConfig {
    TcpConfig { congestion: CongestionAlgorithm::Bbr, pacing: false, ..sack_cfg() }
}

fn data_segs(o: &[(TcpRepr, Vec<u8>)]) -> usize {
    o.iter().filter(|s| !s.1.is_empty()).count()
}

/// HOLDS (checked): BBR's packet conservation on entering recovery passes
/// `snd_max - snd_una` (SACKed bytes included) to `on_enter_recovery` where Linux uses
/// pipe + acked; but SACKs already freed that room in Open (the sender refilled it before
/// the RACK timer's verdict), so at recovery entry only the retransmission goes out.
#[test]
fn attack2_bbr_recovery_entry_conserves_packets() {
    let (mut h, _) = active(bbr_cfg(), sack_opts());
    h.pwnd = 65535;
    h.app(AppCommand::Write(vec![1; 400_000]));
    let mut una = h.pack;
    // Two clean rounds: BBR grows to ~30-40 segments.
    for _ in 0..2 {
        let o = h.out();
        let n = data_segs(&o);
        h.advance(ms(10));
        una = una.wrapping_add(n as u32 * 1000);
        h.pack = una;
        h.send("A", &[]);
    }
    let o = h.out();
    let n = data_segs(&o) as u32;
    assert!(n >= 20, "window grew: {n}");
    let s = |k: u32| una.wrapping_add(k * 1000);
    h.advance(ms(10));
    // Reordering first (RFC 8985 §6.2 step 3): segment 2 SACKed, then 0..2 acked.
    h.popts.sack_blocks = [Some((s(2), s(3))), None, None, None];
    h.send("A", &[]);
    h.pack = s(3);
    h.popts.sack_blocks = [None; 4];
    h.send("A", &[]);
    h.out();
    // Segment 3 missing; all the rest SACKed at once. The reordering window delays the
    // verdict; then the RACK timer marks segment 3 lost and enters recovery.
    h.popts.sack_blocks = [Some((s(4), s(n))), None, None, None];
    h.send("A", &[]);
    let before = data_segs(&h.out());
    h.advance(ms(20));
    let burst = data_segs(&h.out());
    eprintln!("flight {n} segs, SACKed {}, sent before verdict {before}, burst at recovery entry {burst}", n - 4);
    assert_eq!(h.ep.stats().fast_retransmits, 1, "recovery entered by the RACK timer");
    // Linux: cwnd = pipe (0) + acked (0), floored at 4 segments: the retransmission and
    // at most ~4 segments.
    assert!(burst <= 5, "packet conservation allowed a burst of {burst} segments");
}

/// WAS (before its fix): two duplicate segments (entirely below RCV.NXT) processed in one batch: the
/// second overwrites `dsack_out` (tcb/input.rs, the `!acceptable` path sets it without
/// `snapshot_pending_ack`, which only snapshots out-of-order ACKs), so one ACK leaves
/// carrying one D-SACK block; the first duplicate is never reported (RFC 2883 §4: each
/// duplicate is reported; Linux sends a dupack per duplicate at once). A sender whose
/// two retransmissions were both spurious then cannot undo (recovery.rs `undo_on_dsack`
/// needs every remembered retransmission D-SACKed).
#[test]
fn attack2_receiver_reports_every_duplicate_in_a_batch() {
    let (mut h, _) = passive(sack_cfg(), sack_opts());
    let p0 = h.pseq;
    h.send("A", &[1; 1000]);
    h.send("A", &[2; 1000]);
    h.advance(ms(300));
    h.out();
    // Both segments are retransmitted by the peer (spuriously) and arrive in one batch.
    h.pseq = p0;
    h.send("A", &[1; 1000]);
    h.send("A", &[2; 1000]);
    let o = h.out();
    let dsacks: Vec<_> = o.iter().filter_map(|s| s.0.options.sack_blocks[0]).collect();
    eprintln!("{} ACKs, D-SACK blocks {dsacks:?}", o.len());
    let covered: u32 = dsacks.iter().map(|&(l, r)| r.wrapping_sub(l)).sum();
    assert!(covered >= 2000, "both duplicates reported: {dsacks:?} (p0 {p0})");
}

/// WAS (before its fix): `undo_on_dsack` (tcb/recovery.rs) matches a D-SACK block only if it lies inside
/// ONE remembered retransmission. A receiver may report contiguous duplicates in one
/// block (Linux `tcp_dsack_extend` extends the pending D-SACK when several duplicates are
/// processed before its ACK goes out, e.g. under GRO). Two adjacent spurious
/// retransmissions D-SACKed as one block match neither: no undo, the window stays cut.
#[test]
fn attack2_one_dsack_block_for_two_spurious_retransmissions_undoes() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 40_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    h.advance(ms(10));
    // Segments 0 and 1 missing, 2..9 SACKed: both resent.
    h.popts.sack_blocks = [Some((s(2), s(10))), None, None, None];
    h.send("A", &[]);
    let o = seqs(&h.out());
    assert!(o.contains(&s(0)) && o.contains(&s(1)), "{o:?}");
    // The originals were only delayed; both retransmissions arrive as duplicates and are
    // reported in one D-SACK block below the cumulative ACK (RFC 2883 §4).
    h.advance(ms(10));
    h.pack = s(10);
    h.popts.sack_blocks = [Some((s(0), s(2))), None, None, None];
    h.send("A", &[]);
    h.out();
    assert_eq!(h.ep.stats().dsacks_received, 1);
    assert_eq!(h.ep.stats().spurious_undone, 1, "the D-SACK covers every retransmission of the episode");
}

/// WAS (before its fix): `Rack::update` (rack.rs) accepts a retransmitted segment's sample when no
/// min_rtt exists yet, and lets it set min_rtt. Linux's `tcp_rack_advance` compares with
/// `tcp_min_rtt`, which starts at ~0U, so such a sample is rejected. If the ACK was for
/// the delayed original and arrives just after the retransmission, min_rtt becomes tiny
/// for the life of the connection (it never expires here): reo_wnd = min_rtt/4 ≈ 0, and
/// rate.rs's ACK-compression filter (interval < min_rtt) is disabled.
#[test]
fn attack2_rack_first_sample_from_retransmission_is_ignored() {
    let t0 = Instant::now();
    let mut r = Rack::default();
    // Original sent at 0, RTO resend at 1 s, ACK (for the original) at 1 s + 10 µs.
    r.update(t0 + Duration::from_micros(1_000_010), t0 + ms(1000), 2, 100, true);
    assert_eq!(r.min_rtt, None, "ambiguous sample must not seed min_rtt: {:?}", r.min_rtt);
}

/// HOLDS: hostile rate samples (zero/1 ns intervals, huge deliveries, RTT 0 or minutes,
/// app-limited flips, SACK-only deliveries (acked 0 delivered >0), timeouts and
/// recoveries interleaved) never panic in debug builds and never push BBR's cwnd below
/// one segment; and BBR leaves PROBE_RTT once inflight is low for 200 ms and a round.
#[test]
fn attack2_bbr_survives_hostile_samples() {
    struct R(u64);
    impl R {
        fn n(&mut self, m: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % m.max(1)
        }
    }
    let mut rng = R(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200 {
        let mut b = Bbr::new(1000);
        let mut t = Instant::now();
        let mut d = 0u64;
        for _ in 0..500 {
            t += Duration::from_nanos(rng.n(50_000_000));
            let acked = [0, 1, 1000, 64_000, 10_000_000][rng.n(5) as usize];
            d += acked;
            let rs = RateSample {
                delivered: [0, 1, 1000, 1 << 30, d][rng.n(5) as usize],
                interval: Duration::from_nanos([0, 1, 1000, 10_000_000, 60_000_000_000][rng.n(5) as usize]),
                prior_delivered: d.saturating_sub(rng.n(1 << 20)),
                app_limited: rng.n(4) == 0,
                rtt: [None, Some(Duration::ZERO), Some(Duration::from_micros(50)), Some(ms(100))][rng.n(4) as usize],
                acked,
            };
            let inflight = rng.n(1 << 22) as usize;
            match rng.n(40) {
                0 => b.on_rto(t, inflight, rng.n(2) == 0),
                1 => b.on_enter_recovery(t, inflight),
                2 => b.on_exit_recovery(),
                3 => b.undo(rng.n(1 << 22) as usize, 0),
                _ => b.on_rate_sample(t, &rs, d, inflight),
            }
            assert!(b.cwnd() >= 1000);
        }
    }
}

/// HOLDS: a flood of 1-byte out-of-order segments in one batch is answered by at most
/// MAX_QUEUED_ACKS (16) + 1 ACKs, each with ACK = RCV.NXT and SACK blocks inside what
/// was received.
#[test]
fn attack2_ooo_flood_in_one_batch_is_bounded() {
    let (mut h, _) = passive(sack_cfg(), sack_opts());
    let p0 = h.pseq;
    for k in 0..1000u32 {
        h.pseq = p0.wrapping_add(2 + 2 * k);
        h.send("A", &[9]);
    }
    let o = h.out();
    assert!(o.len() <= 17, "{} ACKs for one batch", o.len());
    // Every ACK's SACK blocks lie above RCV.NXT and within what was received.
    for s in &o {
        assert_eq!(s.0.ack, p0);
        for &(l, r) in s.0.options.sack_blocks.iter().flatten() {
            assert!(seq::lt(p0, l) && seq::lt(l, r) && seq::le(r, p0.wrapping_add(2002)), "{l} {r}");
        }
    }
}
