//! Adversarial review of the sender's loss recovery (rtx/rack/prr/rate/bbr, tcb/recovery).
//!
//! Tests whose doc comment starts with "WAS (before its fix):" each demonstrated a defect
//! the review found; the comment describes the code as it was then, and the test is the
//! regression test of the fix.
//! "HOLDS:" tests are evidence that a bound or rule held from the start. Note that `RtxQueue::check` runs after every
//! event in test builds (`update_timers`), so every scripted step also checks the
//! scoreboard's counters and contiguity.

use super::*;

fn data_bytes(o: &[(TcpRepr, Vec<u8>)]) -> usize {
    o.iter().map(|s| s.1.len()).sum()
}

fn addrs(h: &H) -> (SocketAddr, SocketAddr) {
    (SocketAddr::new(US, h.port), SocketAddr::new(PEER, PEER_PORT))
}

/// Tiny deterministic PRNG (xorshift64*), so a failing iteration replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Active open whose ISS is `target` (the ISN clock is 4 µs ticks since the endpoint's
/// epoch: shift the virtual clock before connecting).
fn active_at_iss(cfg: TcpConfig, opts: TcpOptions, target: u32) -> H {
    let mut probe = H::new(cfg.clone());
    let epoch = probe.now;
    probe.conn = probe.ep.connect(probe.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    let iss0 = probe.out()[0].0.seq;
    let ticks = target.wrapping_sub(iss0) as u64;
    let mut h = H::new(cfg);
    // Same key and epoch as `probe`: same port, same hash.
    h.ep = Endpoint::new(h.ep.config().clone(), [7; 16], epoch);
    h.now = epoch + Duration::from_micros(ticks * 4);
    h.conn = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    let syn = complete_active(&mut h, opts);
    assert_eq!(syn.seq, target, "ISS steering");
    h
}

// ----------------------------------------------------------------------------------------
// 1. PMTU shrink is treated as congestion
// ----------------------------------------------------------------------------------------

/// WAS (before its fix): an ICMP Packet Too Big marks the whole flight lost "without a congestion
/// signal" (tcb/mod.rs `icmp`, as Linux's tcp_simple_retransmit), but the CA state stays
/// Open; the next ACK then finds `lost_bytes > 0` in Open and `on_delivery` calls
/// `enter_recovery`: a fast retransmit is counted and cwnd is halved.
#[test]
fn attack_pmtu_shrink_is_not_a_congestion_event() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 100_000]));
    assert_eq!(h.out().len(), 10, "IW");
    let una = h.pack;
    let (l, r) = addrs(&h);
    h.ep.handle_icmp_error(h.now, l, r, una, IcmpErrorKind::PacketTooBig(1000));
    let o = h.out();
    assert!(!o.is_empty() && o.iter().all(|s| s.1.len() <= 960), "resent in smaller segments");
    // The peer acknowledges the first resent segment.
    h.pack = una.wrapping_add(960);
    h.send("A", &[]);
    h.out();
    assert_eq!(h.ep.stats().fast_retransmits, 0, "a PMTU change is not a loss episode");
}

// ----------------------------------------------------------------------------------------
// 2. D-SACK undo is fooled by a duplicated ORIGINAL segment
// ----------------------------------------------------------------------------------------

/// WAS (before its fix): segment 0 is really lost and retransmitted; the network duplicates segment 5
/// (never retransmitted) and the receiver reports the duplicate with a D-SACK inside its
/// SACK block (RFC 2883 §4.2). `undo_on_dsack` (tcb/recovery.rs) decrements the undo
/// counter for ANY D-SACK at or above the undo marker, without checking that it covers a
/// retransmitted record (Linux `tcp_sacktag_one` requires TCPCB_RETRANS), so the real
/// loss is "undone": cwnd goes back to its pre-loss value.
#[test]
fn attack_dsack_of_duplicated_original_does_not_undo_a_real_loss() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 40_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    for k in 2..=5 {
        h.popts.sack_blocks = [Some((s(1), s(k))), None, None, None];
        h.send("A", &[]);
        h.out();
    }
    assert_eq!(h.ep.stats().fast_retransmits, 1);
    assert!(h.ep.stats().retransmits >= 1, "segment 0 resent");
    // A network duplicate of segment 4 (an original) arrives at the receiver: D-SACK.
    h.popts.sack_blocks = [Some((s(4), s(5))), Some((s(1), s(6))), None, None];
    h.send("A", &[]);
    h.out();
    assert_eq!(h.ep.stats().dsacks_received, 1);
    assert_eq!(h.ep.stats().spurious_undone, 0, "a D-SACK for a never-retransmitted segment proves nothing");
}

/// WAS (before its fix): one D-SACK block counted twice. The network duplicates the ACK carrying it (the
/// issue's links duplicate 2 %). With two retransmissions of which only one was spurious,
/// the duplicated ACK brings `undo.retrans` to zero and the real loss is undone. The
/// counter is not tied to WHICH retransmission was D-SACKed.
#[test]
fn attack_duplicated_dsack_ack_does_not_undo_a_real_loss() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 40_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    // Segments 0 and 2 missing; 1 and 3..9 SACKed: both holes resent.
    h.popts.sack_blocks = [Some((s(3), s(10))), Some((s(1), s(2))), None, None];
    h.send("A", &[]);
    let o = seqs(&h.out());
    assert!(o.contains(&s(0)) && o.contains(&s(2)), "{o:?}");
    // Segment 2 was only delayed: the receiver D-SACKs its retransmission (above SND.UNA,
    // inside the SACK block); segment 0 really was lost. The ACK is duplicated.
    for _ in 0..2 {
        h.popts.sack_blocks = [Some((s(2), s(3))), Some((s(1), s(10))), None, None];
        h.send("A", &[]);
        h.out();
    }
    assert_eq!(h.ep.stats().spurious_undone, 0, "segment 0's retransmission was needed");
}

// ----------------------------------------------------------------------------------------
// 3. Hostile SACK blocks: sub-MSS splitting, tiny retransmissions, CPU per ACK
// ----------------------------------------------------------------------------------------

/// Split the flight into 1-byte records: SACK every other byte (4 blocks per ACK).
fn shred(h: &mut H, una: u32, bytes: u32) -> usize {
    let mut acks = 0;
    let mut k = 1;
    while k + 8 <= bytes {
        let b = |j: u32| Some((una.wrapping_add(k + 2 * j), una.wrapping_add(k + 2 * j + 1)));
        // Highest block first (RFC 2018 §4 "most recent"); never nested: not a D-SACK.
        h.popts.sack_blocks = [b(3), b(2), b(1), b(0)];
        h.send("A", &[]);
        acks += 1;
        k += 8;
    }
    acks
}

/// WAS (before its fix): a peer SACKing 1-byte blocks cuts every record at byte granularity
/// (rtx.rs `RtxQueue::sack` splits at any SACK edge while below MAX_RECORDS = 16384).
/// RACK then declares every 1-byte hole lost and `send_retransmissions` sends one segment
/// per record: 10 kB of holes turn into ~5000 one-byte segments (a 40-byte header for each
/// byte of payload). Linux aligns SACK-driven splits to the MSS (`tcp_match_skb_to_sack`),
/// so sub-MSS SACK blocks do not fragment its queue; it would send ~10 full segments.
#[test]
fn attack_sub_mss_sack_blocks_do_not_shred_retransmissions() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 10_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let mut total_segs = 0;
    let mut total_bytes = 0;
    h.popts.sack_blocks = [None; 4];
    let acks = shred(&mut h, una, 10_000);
    let o = h.out();
    total_segs += o.len();
    total_bytes += data_bytes(&o);
    // Let the remaining holes go out over a few round trips of plain duplicate ACKs.
    for _ in 0..50 {
        h.send("A", &[]);
        let o = h.out();
        total_segs += o.len();
        total_bytes += data_bytes(&o);
    }
    eprintln!("{acks} hostile ACKs -> {total_segs} segments carrying {total_bytes} bytes");
    assert!(
        total_segs <= 4 * total_bytes.div_ceil(1000) + 20,
        "{total_segs} segments for {total_bytes} bytes of retransmission"
    );
}

/// HOLDS (bound) but shows the cost: the record count stays <= MAX_RECORDS + a few, yet a
/// peer that already shredded the queue makes each further duplicate ACK walk all records
/// in `detect_losses` (tcb/recovery.rs, O(records) per ACK) and each retransmission scan
/// from the head in `next_lost` (rtx.rs, `position`, O(records) per segment sent).
/// Reported as time per ACK; the assertion is only the memory bound.
#[test]
fn attack_shredded_queue_cost_per_ack_is_linear_in_records() {
    let cfg = TcpConfig { send_buf: 1 << 20, ..sack_cfg() };
    let (mut h, _) = active(cfg, sack_opts());
    // Grow cwnd: ack everything in slow start a few rounds.
    h.app(AppCommand::Write(vec![1; 1 << 20]));
    for _ in 0..4 {
        let o = h.out();
        let end = o.iter().map(|s| s.0.seq.wrapping_add(s.1.len() as u32)).fold(h.pack, seq::max);
        // Ack segment by segment so slow start doubles.
        let mut a = h.pack;
        while seq::lt(a, end) {
            a = seq::min(a.wrapping_add(1000), end);
            h.pack = a;
            h.send("A", &[]);
        }
    }
    let o = h.out();
    let flight = data_bytes(&o);
    eprintln!("flight now {flight} bytes");
    let una = h.pack;
    let t = std::time::Instant::now();
    let acks = shred(&mut h, una, (flight as u32).min(40_000));
    let shred_time = t.elapsed();
    let t = std::time::Instant::now();
    let o = h.out();
    let poll_time = t.elapsed();
    let t = std::time::Instant::now();
    for _ in 0..200 {
        h.send("A", &[]);
        h.out();
    }
    let dup_time = t.elapsed();
    eprintln!(
        "shred: {acks} ACKs in {shred_time:?}; one poll_transmit emitting {} segments: {poll_time:?}; \
         200 dup ACKs: {dup_time:?} ({:?}/ACK)",
        o.len(),
        dup_time / 200
    );
}

/// HOLDS: SACK blocks outside [SND.UNA, SND.MAX], inverted, spanning everything, or far
/// away in sequence space change nothing and never panic (debug build: overflow checked).
#[test]
fn attack_bogus_sack_blocks_are_ignored() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 10_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let max = una.wrapping_add(10_000);
    let bogus = [
        (max, max.wrapping_add(1000)),                      // beyond SND.MAX
        (una.wrapping_add(5000), max.wrapping_add(1)),      // straddles SND.MAX
        (una.wrapping_add(3000), una.wrapping_add(2000)),   // inverted
        (una.wrapping_add(2000), una.wrapping_add(2000)),   // empty
        (una.wrapping_add(1 << 31), una.wrapping_add(100)), // half the space away
        (una.wrapping_sub(1), una.wrapping_add(100)),       // straddles SND.UNA
        (una.wrapping_add(0x8000_0001), una.wrapping_add(0x8000_0010)),
    ];
    for &b in &bogus {
        h.popts.sack_blocks = [Some(b), None, None, None];
        let r = h.seg("A");
        h.raw(r, &[]);
        assert!(h.out().iter().all(|s| s.1.is_empty()), "no retransmission from bogus block {b:?}");
    }
    assert_eq!(h.ep.stats().fast_retransmits, 0);
}

// ----------------------------------------------------------------------------------------
// 4. RTO with the left edge SACKed (RFC 2018 §8 MUST)
// ----------------------------------------------------------------------------------------

/// WAS (before its fix): RFC 2018 §8: "the sender MUST retransmit the segment at the left edge of the
/// window after a retransmit timeout, whether or not the SACK bit is on for that
/// segment." `enter_loss` keeps SACK marks on the first timeout
/// (`mark_all_lost(self.retries > 1)`), so with everything SACKed (a reneging or hostile
/// receiver) the first RTO sends nothing; only the second, backed-off one does.
#[test]
fn attack_first_rto_must_resend_left_edge_even_if_sacked() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 5_000]));
    assert_eq!(h.out().len(), 5);
    let una = h.pack;
    h.popts.sack_blocks = [Some((una, una.wrapping_add(5000))), None, None, None];
    h.send("A", &[]);
    h.out();
    h.popts.sack_blocks = [None; 4];
    // Fire timers until the first RTO.
    let mut o = Vec::new();
    for _ in 0..20 {
        if h.ep.stats().timeouts > 0 {
            break;
        }
        h.run_timer(Duration::from_secs(10));
        o.extend(h.out());
    }
    assert_eq!(h.ep.stats().timeouts, 1);
    assert!(seqs(&o).contains(&una), "the first RTO resends SND.UNA: {o:?}");
}

// ----------------------------------------------------------------------------------------
// 5. Sequence wrap: recovery with SACK blocks spanning 2^32
// ----------------------------------------------------------------------------------------

/// HOLDS: ISS 6000 below 2^32; a flight straddling the wrap, holes on both sides, SACK
/// blocks spanning 0xffffffff -> 0; the scoreboard invariants (checked after every event)
/// and the retransmitted sequence numbers are right.
#[test]
fn attack_recovery_with_sack_blocks_across_the_wrap() {
    let mut h = active_at_iss(sack_cfg(), sack_opts(), 0u32.wrapping_sub(6000));
    h.app(AppCommand::Write(vec![1; 10_000]));
    assert_eq!(h.out().len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    assert!(seq::lt(s(5), 0) && seq::gt(s(6), 0u32.wrapping_sub(1)), "the wrap is inside segment 5");
    // Holes at 0 and 6; segments 1..5 and 7..9 SACKed; block 1 spans the wrap.
    h.popts.sack_blocks = [Some((s(7), s(10))), Some((s(1), s(6))), None, None];
    h.send("A", &[]);
    let o = seqs(&h.out());
    assert_eq!(&o[..2], &[s(0), s(6)], "{o:?}");
    h.popts.sack_blocks = [Some((s(1), s(10))), None, None, None];
    h.pack = s(6);
    h.send("A", &[]);
    h.popts.sack_blocks = [None; 4];
    h.pack = s(10);
    h.send("A", &[]);
    h.out();
    assert_eq!(h.ep.stats().timeouts, 0);
}

// ----------------------------------------------------------------------------------------
// 6. Fuzz: random hostile ACK/SACK/D-SACK, timers, PMTU, zero windows (debug build)
// ----------------------------------------------------------------------------------------

/// HOLDS?: a bounded random walk of hostile input. Checks: no panic (debug arithmetic),
/// scoreboard invariants after every event (RtxQueue::check), no deadline in the past
/// after a timer was handled (livelock), and the record count stays bounded.
#[test]
fn attack_fuzz_hostile_acks_and_sack_blocks() {
    for seed in 1..=24u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let iss = if seed % 2 == 0 { 0u32.wrapping_sub(20_000 + rng.below(20_000) as u32) } else { 77 };
        let ts = seed % 3 == 0;
        let cfg = TcpConfig {
            timestamps: ts,
            window_scale: false,
            congestion: match seed % 3 {
                0 => CongestionAlgorithm::Bbr,
                1 => CongestionAlgorithm::NewReno,
                _ => CongestionAlgorithm::Cubic,
            },
            ..TcpConfig::default()
        };
        let mss = [48u16, 100, 536, 1000, 1460][rng.below(5) as usize];
        let opts =
            TcpOptions { mss: Some(mss), sack_permitted: true, timestamps: ts.then_some((1, 0)), ..Default::default() };
        let mut h = active_at_iss(cfg, opts, iss);
        let (l, r) = addrs(&h);
        let mut written = 0usize;
        let mut tsval = 2u32;
        let mut max_seen = h.pack;
        for step in 0..1500 {
            let una = h.pack;
            // Our SND.MAX as the peer sees it: the highest byte we emitted.
            let o = h.out();
            for (s, p) in &o {
                let end = s.seq.wrapping_add(p.len() as u32).wrapping_add(s.flags.fin as u32);
                if seq::gt(end, max_seen) {
                    max_seen = end;
                }
            }
            let max = if seq::gt(max_seen, una) { max_seen } else { una };
            let flight = max.wrapping_sub(una).max(1);
            let pick = |rng: &mut Rng| una.wrapping_add(rng.below(flight as u64 + 1) as u32);
            match rng.below(12) {
                0 if written < 2_000_000 => {
                    let n = 1 + rng.below(50_000) as usize;
                    h.app(AppCommand::Write(vec![0x5a; n]));
                    written += n;
                }
                1 => {
                    // Cumulative ACK somewhere in flight.
                    h.pack = pick(&mut rng);
                    h.popts.sack_blocks = [None; 4];
                }
                2..=6 => {
                    // Random SACK blocks, some D-SACK shaped, some bogus.
                    let mut b = [None; 4];
                    for slot in b.iter_mut().take(1 + rng.below(4) as usize) {
                        let x = pick(&mut rng);
                        let len = if rng.below(3) == 0 { 1 + rng.below(3) as u32 } else { rng.below(3000) as u32 };
                        *slot = Some(match rng.below(8) {
                            0 => (x.wrapping_sub(len), x),                    // maybe below SND.UNA
                            1 => (x, x.wrapping_add(len).wrapping_add(5000)), // past SND.MAX
                            2 => (x.wrapping_add(len), x),                    // inverted
                            _ => (x, x.wrapping_add(len)),
                        });
                    }
                    if rng.below(4) == 0 {
                        b[0] = Some((una.wrapping_sub(1 + rng.below(4000) as u32), una));
                        // D-SACK
                    }
                    h.popts.sack_blocks = b;
                }
                7 => h.pwnd = [0u16, 1, 100, 65535][rng.below(4) as usize],
                8 => {
                    let d = ms(rng.below(400));
                    h.advance(d);
                }
                9 => {
                    h.run_timer(Duration::from_secs(120));
                }
                10 => {
                    let mtu = [600u16, 900, 1280, 1500][rng.below(4) as usize];
                    h.ep.handle_icmp_error(h.now, l, r, pick(&mut rng), IcmpErrorKind::PacketTooBig(mtu));
                }
                _ => {
                    h.popts.sack_blocks = [None; 4];
                }
            }
            if ts {
                tsval += 1;
                let ecr = o.last().and_then(|s| s.0.options.timestamps).map_or(1, |t| t.0);
                h.popts.timestamps = Some((tsval, if rng.below(5) == 0 { ecr.wrapping_sub(1000) } else { ecr }));
            }
            if rng.below(3) != 0 {
                let r = h.seg("A");
                h.raw(r, &[]);
            }
            if let Some(&t) = h.timers.values().min() {
                assert!(
                    t + ms(1) >= h.now || h.ep.state(h.conn).is_none(),
                    "seed {seed} step {step}: deadline in the past"
                );
            }
            if h.ep.state(h.conn).is_none() {
                break;
            }
        }
        let st = h.ep.stats();
        eprintln!(
            "seed {seed}: mss {mss} retrans {} fast {} rto {} tlp {} dsack {} undo {}",
            st.retransmits, st.fast_retransmits, st.timeouts, st.tlp_probes, st.dsacks_received, st.spurious_undone
        );
    }
}

// ----------------------------------------------------------------------------------------
// 7. Receiver D-SACK (RFC 2883 §4.2): duplicate out-of-order segment
// ----------------------------------------------------------------------------------------

/// WAS (before its fix): RFC 2883 §4.2 ("reporting a duplicate out-of-order segment"): a segment above
/// RCV.NXT received twice must be reported in a D-SACK block first. Only duplicates below
/// RCV.NXT are reported (tcb/input.rs `on_segment`); Linux reports both
/// (`tcp_data_queue_ofo` -> `tcp_dsack_set`). Without it the peer's undo never learns
/// that a retransmission of a SACKed segment was spurious.
#[test]
fn attack_receiver_dsack_for_duplicate_out_of_order_segment() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    let start = h.pseq;
    h.pseq = start.wrapping_add(1000);
    h.send("A", &[1; 500]); // out of order
    let o = h.out();
    assert_eq!(o[0].0.options.sack_blocks[0], Some((start.wrapping_add(1000), start.wrapping_add(1500))));
    h.pseq = start.wrapping_add(1000);
    h.send("A", &[1; 500]); // the same again
    let o = h.out();
    assert_eq!(o.len(), 1);
    let b = o[0].0.options.sack_blocks;
    assert_eq!(b[0], Some((start.wrapping_add(1000), start.wrapping_add(1500))), "first block reports the duplicate");
    assert_eq!(b[1], Some((start.wrapping_add(1000), start.wrapping_add(1500))), "then the SACK block: {b:?}");
}

// ----------------------------------------------------------------------------------------
// 8. TLP: cwnd collapse from the post-ACK flight
// ----------------------------------------------------------------------------------------

/// WAS (before its fix): RFC 8985 §7.4.2: when a retransmitted probe repaired a loss, the sender invokes
/// its congestion response. `tlp_on_ack` (tcb/recovery.rs) computes it from the FlightSize
/// AFTER the ACK that proves it (often ~0: the ACK acknowledged everything), so NewReno's
/// ssthresh and cwnd become 2·SMSS. Linux (`tcp_process_tlp_ack` ->
/// `tcp_init_cwnd_reduction`) halves cwnd (reno: cwnd/2) instead.
#[test]
fn attack_tlp_repaired_loss_halves_cwnd() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    // Grow cwnd past the IW: two rounds of 10 and ~20 segments, all acknowledged.
    h.app(AppCommand::Write(vec![1; 30_000]));
    for _ in 0..3 {
        let o = h.out();
        for (s, p) in &o {
            h.pack = s.seq.wrapping_add(p.len() as u32);
            h.send("A", &[]);
        }
    }
    // A flight of 10 whose last segment is lost; the ACKs of 0..8 are lost too, so the
    // probe timer (armed for 10 segments: 2·SRTT, >= 10 ms) fires first.
    h.app(AppCommand::Write(vec![1; 10_000]));
    let o = h.out();
    assert_eq!(o.len(), 10);
    let una = h.pack;
    let s = |k: u32| una.wrapping_add(k * 1000);
    h.run_timer(Duration::from_secs(1));
    assert_eq!(seqs(&h.out()), vec![s(9)], "the probe resends the tail");
    assert_eq!(h.ep.stats().tlp_probes, 1);
    // The probe repaired it (no D-SACK): ACK of everything.
    h.pack = s(10);
    h.send("A", &[]);
    h.out();
    // The next flight: one segment, acknowledged: SEG.ACK > TLP.end_seq.
    h.app(AppCommand::Write(vec![1; 1000]));
    h.out();
    h.pack = s(11);
    h.send("A", &[]);
    assert_eq!(h.ep.stats().tlp_recoveries, 1);
    // How many segments may go now?
    h.app(AppCommand::Write(vec![1; 60_000]));
    let n = h.out().len();
    assert!(n >= 10, "cwnd after one repaired tail loss: {n} segments (was > 20)");
}

/// WAS (before its fix): RFC 8985 §7.2 ends with "if the time at which an RTO would fire is sooner than
/// the computed time for the PTO, then the sender schedules a TLP to be sent at that RTO
/// time" (Linux `tcp_schedule_loss_probe`: `timeout = min(timeout, rto_delta)`).
/// `arm_pto` (tcb/recovery.rs) instead arms no probe at all when `at >= rto`. With one
/// segment in flight PTO = 2·SRTT + 200 ms while RTO = SRTT + max(200 ms, 4·RTTVAR): on any
/// path with a steady RTT the PTO is always later, so a lost single-segment tail (every
/// request/response exchange) ALWAYS ends in an RTO with cwnd = 1 MSS, never a TLP.
#[test]
fn attack_single_segment_tail_is_probed_not_timed_out() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    // A steady 20 ms path: request/response, one segment each.
    for _ in 0..20 {
        h.app(AppCommand::Write(vec![1; 500]));
        h.out();
        h.advance(ms(20));
        h.pack = h.pack.wrapping_add(500);
        h.send("A", &[]);
    }
    h.app(AppCommand::Write(vec![1; 500]));
    assert_eq!(h.out().len(), 1);
    // It is lost: what fires first?
    h.run_timer(Duration::from_secs(5));
    h.out();
    let st = h.ep.stats();
    assert_eq!((st.tlp_probes, st.timeouts), (1, 0), "a TLP (at the latest at RTO time), not an RTO: {st:?}");
}

/// WAS (before its fix): on a Packet Too Big, `icmp` (tcb/mod.rs) marks EVERY record lost
/// (`mark_all_lost(false)`), including segments that already fit the new MSS. Linux's
/// `tcp_simple_retransmit` marks only segments longer than the new MSS. A flight of small
/// segments is resent in full for nothing (and, with finding 1, cwnd is halved).
#[test]
fn attack_pmtu_shrink_resends_only_segments_too_big() {
    let cfg = TcpConfig { nagle: false, ..sack_cfg() };
    let (mut h, _) = active(cfg, sack_opts());
    for _ in 0..5 {
        h.app(AppCommand::Write(vec![1; 500]));
        assert_eq!(h.out().len(), 1);
    }
    let (l, r) = addrs(&h);
    let una = h.pack;
    h.ep.handle_icmp_error(h.now, l, r, una, IcmpErrorKind::PacketTooBig(1000));
    let o = h.out();
    assert_eq!(data_bytes(&o), 0, "500-byte segments fit a 960-byte MSS: {:?}", seqs(&o));
}

/// FAILS (performance nit): with every outstanding byte SACKed but not acknowledged (a
/// reneging or hostile receiver), the probe timer fires every PTO (>= 10 ms) with nothing
/// to probe: `send_probe` returns false without setting `tlp.end_seq`, so `arm_pto`
/// re-arms it at once. Linux re-arms the RTO instead when there is nothing to probe.
#[test]
fn attack_fully_sacked_flight_does_not_spin_the_probe_timer() {
    let (mut h, _) = active(sack_cfg(), sack_opts());
    h.app(AppCommand::Write(vec![1; 5_000]));
    assert_eq!(h.out().len(), 5);
    let una = h.pack;
    h.popts.sack_blocks = [Some((una, una.wrapping_add(5000))), None, None, None];
    h.send("A", &[]);
    h.out();
    let mut wakeups = 0;
    for _ in 0..1000 {
        let before = h.ep.stats().timeouts;
        h.run_timer(Duration::from_secs(10));
        h.out();
        wakeups += 1;
        if h.ep.stats().timeouts > before {
            break;
        }
    }
    eprintln!("fully SACKed: {wakeups} wake-ups until the first RTO");
    assert!(wakeups <= 3, "{wakeups} timer wake-ups with nothing to send, then an RTO that sends nothing");
}
