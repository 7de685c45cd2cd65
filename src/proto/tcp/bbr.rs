//! BBR congestion control, version 1 (draft-cardwell-iccrg-bbr-congestion-control-00, as
//! Linux's `tcp_bbr.c`): the window follows a model of the path — the bottleneck
//! bandwidth (windowed maximum of delivery-rate samples, [`super::rate`]) times the
//! minimum RTT — instead of shrinking on every loss. On a link with random loss a
//! loss-based algorithm settles at `cwnd ≈ 1.2/√p` segments (about five at 5 % loss);
//! BBR keeps about two bandwidth-delay products in flight.
//!
//! The sender paces at the model's rate (draft §4.2.1, Linux `bbr_set_pacing_rate`:
//! `CongestionControl::pacing_rate`; the connection's [`super::pacing::Pacer`] spends it
//! in bursts of 2 ms of data). Differences from Linux, on purpose: DRAIN also caps cwnd at
//! one BDP (cwnd gain 1), since on short paths a 2 ms burst is more than the window and
//! the pacing rate alone would not drain the queue; no long-term bandwidth ("policer")
//! model. Loss is handled as Linux does: packet conservation for the first round of a
//! recovery, then the model's window; after a timeout cwnd restarts from one segment and
//! regrows by what is delivered.
//!
//! Invariants: `cwnd >= 4 * smss` except right after a timeout; in PROBE_RTT `cwnd <=
//! 4 * smss`; the bandwidth filter holds at most `BW_ROUNDS` (10) per-round maxima.

use super::congestion::{initial_window, CongestionControl};
use super::rate::RateSample;
use std::time::{Duration, Instant};

/// Rounds the bandwidth maximum is remembered (draft §4.1.1: 10 round trips).
const BW_ROUNDS: usize = 10;
/// draft §4.1.2: min_rtt expires after 10 s; PROBE_RTT then lasts at least 200 ms.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// draft §4.3.1: 2/ln 2, the smallest gain that doubles the rate each round.
const HIGH_GAIN: f64 = 2.885;
/// draft §4.3.3: the PROBE_BW gain cycle.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// draft §4.3.3: cwnd gain in PROBE_BW.
const CWND_GAIN: f64 = 2.0;
/// draft §4.3.2: the pipe is full once three rounds grow the bandwidth by less than 25 %.
const FULL_BW_GROWTH: f64 = 1.25;
const FULL_BW_ROUNDS: u32 = 3;
/// Linux `bbr_cwnd_min_target`: four segments.
const MIN_CWND_SEGS: usize = 4;
/// Linux `bbr_pacing_margin_percent`: pace 1 % below the estimate, so queues drain.
const PACING_MARGIN: f64 = 0.99;
/// Linux `bbr_init_pacing_rate_from_rtt`: the RTT assumed when the handshake gave none.
const NOMINAL_RTT: Duration = Duration::from_millis(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Startup,
    Drain,
    ProbeBw,
    ProbeRtt,
}

#[derive(Debug, Clone)]
pub struct Bbr {
    smss: usize,
    cwnd: usize,
    pub mode: Mode,
    /// Per-round maxima of the delivery rate (bytes/s), indexed by round % BW_ROUNDS.
    bw: [(u64, u64); BW_ROUNDS],
    /// The maximum over the filter's window ([`Bbr::max_bw`]), recomputed whenever `bw` or
    /// `round` change (only in `update_bw`): several model steps read it on every ACK.
    max_bw: u64,
    round: u64,
    next_round_delivered: u64,
    round_start: bool,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Option<Instant>,
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_done: bool,
    pacing_gain: f64,
    cwnd_gain: f64,
    cycle_idx: usize,
    cycle_stamp: Option<Instant>,
    full_bw: u64,
    full_bw_cnt: u32,
    filled_pipe: bool,
    /// cwnd before a recovery or timeout, restored after it.
    prior_cwnd: usize,
    packet_conservation: bool,
    /// A loss was reported in this PROBE_BW phase.
    loss_in_cycle: bool,
    /// Bytes/s the sender paces at (Linux `sk_pacing_rate`).
    pacing_rate: u64,
    /// The pacing rate was set from a measured RTT rather than [`NOMINAL_RTT`].
    has_seen_rtt: bool,
}

/// Linux `bbr_init_pacing_rate_from_rtt`: STARTUP's gain times `cwnd` per `rtt`.
fn rate_from_rtt(cwnd: usize, rtt: Duration) -> u64 {
    let rtt = rtt.max(Duration::from_micros(1)).as_secs_f64();
    (cwnd as f64 / rtt * HIGH_GAIN * PACING_MARGIN) as u64
}

impl Bbr {
    pub fn new(smss: usize) -> Self {
        let smss = smss.max(1);
        Bbr {
            smss,
            cwnd: initial_window(smss),
            mode: Mode::Startup,
            bw: [(0, 0); BW_ROUNDS],
            max_bw: 0,
            round: 0,
            next_round_delivered: 0,
            round_start: false,
            min_rtt: None,
            min_rtt_stamp: None,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            cycle_idx: 0,
            cycle_stamp: None,
            full_bw: 0,
            full_bw_cnt: 0,
            filled_pipe: false,
            prior_cwnd: 0,
            packet_conservation: false,
            loss_in_cycle: false,
            pacing_rate: rate_from_rtt(initial_window(smss), NOMINAL_RTT),
            has_seen_rtt: false,
        }
    }

    /// draft §4.2.1 / Linux `bbr_set_pacing_rate`: gain × bandwidth, less the margin; until
    /// the pipe is full it only grows (a sample of a partly used path must not slow the
    /// start); the first RTT sample replaces the nominal start if the handshake gave none.
    fn set_pacing_rate(&mut self, rs: &RateSample) {
        if !self.has_seen_rtt {
            if let Some(rtt) = rs.rtt {
                self.has_seen_rtt = true;
                self.pacing_rate = rate_from_rtt(self.cwnd, rtt);
            }
        }
        let rate = (self.max_bw() as f64 * self.pacing_gain * PACING_MARGIN) as u64;
        if rate > 0 && (self.filled_pipe || rate > self.pacing_rate) {
            self.pacing_rate = rate;
        }
    }

    /// The bottleneck bandwidth estimate (bytes/s): the maximum over the last rounds.
    pub fn max_bw(&self) -> u64 {
        self.max_bw
    }

    fn window_max_bw(&self) -> u64 {
        let oldest = self.round.saturating_sub(BW_ROUNDS as u64 - 1);
        self.bw.iter().filter(|(r, _)| *r >= oldest).map(|(_, b)| *b).max().unwrap_or(0)
    }

    /// `gain` times the estimated bandwidth-delay product, in bytes.
    fn bdp(&self, gain: f64) -> Option<usize> {
        let (bw, rtt) = (self.max_bw(), self.min_rtt?);
        if bw == 0 {
            return None;
        }
        Some((bw as f64 * rtt.as_secs_f64() * gain) as usize)
    }

    fn save_cwnd(&mut self) {
        self.prior_cwnd = if self.packet_conservation || self.mode == Mode::ProbeRtt {
            self.prior_cwnd.max(self.cwnd)
        } else {
            self.cwnd
        };
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.mode = Mode::ProbeBw;
        self.cwnd_gain = CWND_GAIN;
        // Linux starts at a random phase other than 1 (the 0.75 drain); phase 2 here keeps
        // the core free of randomness.
        self.cycle_idx = 2;
        self.pacing_gain = CYCLE[self.cycle_idx];
        self.cycle_stamp = Some(now);
    }

    /// draft §4.1.1: round counting and the bandwidth filter.
    fn update_bw(&mut self, rs: &RateSample, delivered: u64) {
        self.round_start = false;
        if rs.acked > 0 && rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = delivered;
            self.round += 1;
            self.round_start = true;
            self.packet_conservation = false;
            // A round older than the window may just have left it.
            self.max_bw = self.window_max_bw();
        }
        let Some(bw) = rs.bytes_per_sec() else { return };
        if rs.app_limited && bw < self.max_bw() {
            return;
        }
        let slot = &mut self.bw[(self.round % BW_ROUNDS as u64) as usize];
        if slot.0 != self.round {
            *slot = (self.round, 0);
        }
        slot.1 = slot.1.max(bw);
        self.max_bw = self.max_bw.max(bw);
    }

    /// draft §4.3.3: advance the gain cycle once a phase has lasted a min_rtt (and, for
    /// the probing phase, filled its target; for the draining one, emptied the queue).
    fn update_cycle(&mut self, now: Instant, inflight: usize) {
        if self.mode != Mode::ProbeBw {
            return;
        }
        let (Some(stamp), Some(rtt)) = (self.cycle_stamp, self.min_rtt) else { return };
        let full = now.saturating_duration_since(stamp) > rtt;
        let advance = if self.pacing_gain > 1.0 {
            full && (self.loss_in_cycle || self.bdp(self.pacing_gain).is_some_and(|b| inflight >= b))
        } else if self.pacing_gain < 1.0 {
            full || self.bdp(1.0).is_some_and(|b| inflight <= b)
        } else {
            full
        };
        if advance {
            self.cycle_idx = (self.cycle_idx + 1) % CYCLE.len();
            self.pacing_gain = CYCLE[self.cycle_idx];
            self.cycle_stamp = Some(now);
            self.loss_in_cycle = false;
        }
    }

    /// draft §4.3.2: STARTUP ends when the bandwidth stops growing; DRAIN when the queue
    /// it built is gone.
    fn check_full_pipe_and_drain(&mut self, now: Instant, rs: &RateSample, inflight: usize) {
        if !self.filled_pipe && self.round_start && !rs.app_limited {
            let bw = self.max_bw();
            if bw as f64 >= self.full_bw as f64 * FULL_BW_GROWTH {
                self.full_bw = bw;
                self.full_bw_cnt = 0;
            } else {
                self.full_bw_cnt += 1;
                self.filled_pipe = self.full_bw_cnt >= FULL_BW_ROUNDS;
            }
        }
        if self.mode == Mode::Startup && self.filled_pipe {
            // The queue STARTUP built drains at the 1/2.885 pacing gain and, where a
            // pacing burst exceeds the window (short paths), through cwnd: one BDP plus
            // the burst budget.
            self.mode = Mode::Drain;
            self.pacing_gain = 1.0 / HIGH_GAIN;
            self.cwnd_gain = 1.0;
        }
        let drained = self.bdp(1.0).is_none_or(|b| inflight <= b + self.quantization_budget());
        if self.mode == Mode::Drain && drained {
            self.enter_probe_bw(now);
        }
    }

    /// draft §4.3.4: refresh min_rtt; every 10 s without a lower sample, drain to four
    /// segments for 200 ms and a round to measure it again.
    fn update_min_rtt(&mut self, now: Instant, rs: &RateSample, inflight: usize) {
        let expired = self.min_rtt_stamp.is_some_and(|t| now.saturating_duration_since(t) > MIN_RTT_WINDOW);
        if let Some(r) = rs.rtt {
            if self.min_rtt.is_none_or(|m| r <= m) || expired {
                self.min_rtt = Some(r);
                self.min_rtt_stamp = Some(now);
            }
        }
        if expired && self.mode != Mode::ProbeRtt {
            self.save_cwnd();
            self.mode = Mode::ProbeRtt;
            self.pacing_gain = 1.0;
            self.cwnd_gain = 1.0;
            self.probe_rtt_done = None;
        }
        if self.mode != Mode::ProbeRtt {
            return;
        }
        match self.probe_rtt_done {
            None if inflight <= MIN_CWND_SEGS * self.smss => {
                self.probe_rtt_done = Some(now + PROBE_RTT_TIME);
                self.probe_rtt_round_done = false;
            }
            Some(done) => {
                self.probe_rtt_round_done |= self.round_start;
                if self.probe_rtt_round_done && now >= done {
                    self.min_rtt_stamp = Some(now);
                    self.cwnd = self.cwnd.max(self.prior_cwnd);
                    if self.filled_pipe {
                        self.enter_probe_bw(now);
                    } else {
                        self.mode = Mode::Startup;
                        self.pacing_gain = HIGH_GAIN;
                        self.cwnd_gain = HIGH_GAIN;
                    }
                }
            }
            None => {}
        }
    }

    /// Linux `bbr_quantization_budget`: room for three send bursts ("TSO goal": what the
    /// path delivers in 1 ms, between 2 segments and 64 KiB), so ACK aggregation and
    /// batching do not starve the pipe. On microsecond RTTs this, not the BDP, sets cwnd.
    fn quantization_budget(&self) -> usize {
        let per_ms = (self.max_bw() as f64 * self.pacing_gain / 1000.0) as usize;
        let goal = per_ms.clamp(2 * self.smss, (64 * 1024).max(2 * self.smss));
        3 * goal
    }

    /// draft §4.3.5 / Linux `bbr_set_cwnd`.
    fn set_cwnd(&mut self, rs: &RateSample, inflight: usize) {
        let acked = rs.acked as usize;
        let min = MIN_CWND_SEGS * self.smss;
        if self.packet_conservation {
            self.cwnd = self.cwnd.max(inflight + acked);
        } else {
            let target = self
                .bdp(self.cwnd_gain)
                .map_or(initial_window(self.smss), |b| b.saturating_add(self.quantization_budget()));
            if self.filled_pipe {
                self.cwnd = (self.cwnd + acked).min(target);
            } else if self.cwnd < target || rs.prior_delivered < initial_window(self.smss) as u64 {
                self.cwnd += acked;
            }
        }
        self.cwnd = self.cwnd.max(min);
        if self.mode == Mode::ProbeRtt {
            self.cwnd = self.cwnd.min(min);
        }
    }
}

impl CongestionControl for Bbr {
    fn name(&self) -> &'static str {
        "bbr"
    }
    fn cwnd(&self) -> usize {
        self.cwnd
    }
    fn ssthresh(&self) -> usize {
        // BBR has no threshold; "infinite" keeps the caller's slow-start checks inert.
        usize::MAX / 2
    }
    fn set_mss(&mut self, smss: usize) {
        super::congestion::set_mss(&mut self.cwnd, &mut self.smss, smss);
    }
    fn on_ack(&mut self, _now: Instant, _bytes_acked: usize, _srtt: Option<Duration>) {}
    fn on_rate_sample(&mut self, now: Instant, rs: &RateSample, delivered: u64, inflight: usize) {
        self.update_bw(rs, delivered);
        self.update_cycle(now, inflight);
        self.check_full_pipe_and_drain(now, rs, inflight);
        self.update_min_rtt(now, rs, inflight);
        self.set_pacing_rate(rs);
        self.set_cwnd(rs, inflight);
    }
    /// Linux `bbr_init_pacing_rate_from_rtt` with the handshake's SRTT: the first window
    /// leaves at STARTUP's gain × cwnd per that RTT rather than per [`NOMINAL_RTT`].
    fn on_handshake_rtt(&mut self, srtt: Duration) {
        if !self.has_seen_rtt {
            self.has_seen_rtt = true;
            self.pacing_rate = rate_from_rtt(self.cwnd, srtt);
        }
    }

    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate)
    }
    fn owns_recovery_window(&self) -> bool {
        true
    }
    fn on_enter_recovery(&mut self, _now: Instant, flight_size: usize) {
        // Linux `bbr_set_cwnd_to_recover_or_restore`: one round of packet conservation.
        self.save_cwnd();
        self.packet_conservation = true;
        self.loss_in_cycle = true;
        self.cwnd = self.cwnd.min(flight_size.max(self.smss));
    }
    fn on_exit_recovery(&mut self) {
        self.packet_conservation = false;
        self.cwnd = self.cwnd.max(self.prior_cwnd);
    }
    fn undo(&mut self, prior_cwnd: usize, _prior_ssthresh: usize) {
        // Linux `bbr_undo_cwnd`: forget the full-pipe estimate, keep the window.
        self.full_bw = 0;
        self.full_bw_cnt = 0;
        self.packet_conservation = false;
        self.cwnd = self.cwnd.max(prior_cwnd);
    }
    fn on_rto(&mut self, _now: Instant, _flight_size: usize, first: bool) {
        if first {
            self.save_cwnd();
        }
        self.packet_conservation = false;
        self.loss_in_cycle = true;
        // RFC 5681 §3.1 loss window; the model regrows it by what is delivered.
        self.cwnd = self.smss;
    }
    fn on_idle_restart(&mut self) {
        // Linux `bbr_cwnd_event(CA_EVENT_TX_START)`: an idle connection has drained, so a
        // PROBE_RTT waiting for a low inflight is done once its time is up.
        if self.mode == Mode::ProbeRtt && self.probe_rtt_done.is_some() {
            self.probe_rtt_round_done = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: usize = 1000;

    /// Feed `rounds` round trips of a path with `bw` bytes/s and `rtt`, the sender always
    /// keeping `cwnd` in flight (capped at the path's BDP plus a queue of `queue` bytes).
    fn drive(b: &mut Bbr, t: &mut Instant, delivered: &mut u64, rounds: usize, bw: u64, rtt: Duration, queue: usize) {
        let bdp = (bw as f64 * rtt.as_secs_f64()) as usize;
        for _ in 0..rounds {
            let inflight = b.cwnd().min(bdp + queue);
            // One ACK per round carrying a round's worth of delivery at the path rate.
            let delivered_now = inflight as u64;
            let rtt_now = rtt + Duration::from_secs_f64(inflight.saturating_sub(bdp) as f64 / bw as f64);
            let rs = RateSample {
                delivered: delivered_now,
                interval: rtt_now,
                prior_delivered: *delivered,
                app_limited: false,
                rtt: Some(rtt_now),
                acked: delivered_now,
            };
            *t += rtt_now;
            *delivered += delivered_now;
            b.on_rate_sample(*t, &rs, *delivered, inflight);
        }
    }

    #[test]
    fn cached_max_bw_is_the_windowed_maximum() {
        // Several samples per round, rising and falling bandwidth, app-limited ones mixed in:
        // the cached maximum is always the filter's maximum over the last BW_ROUNDS rounds.
        let mut b = Bbr::new(M);
        let t = Instant::now();
        let mut delivered = 0u64;
        for i in 0..400u64 {
            let bw_kb = 1000 + (i * 37 % 23) * 100 + if i < 200 { i * 10 } else { 0 };
            let round_end = i % 3 == 0;
            let rs = RateSample {
                delivered: bw_kb * 1000 / 100, // over 10 ms
                interval: Duration::from_millis(10),
                prior_delivered: if round_end { delivered } else { 0 },
                app_limited: i % 5 == 0,
                rtt: Some(Duration::from_millis(10)),
                acked: 1000,
            };
            delivered += 1000;
            b.on_rate_sample(t, &rs, delivered, 0);
            assert_eq!(b.max_bw(), b.window_max_bw(), "sample {i}");
        }
        assert!(b.max_bw() < 1000 * 1000 + 2300 * 1000, "the peak of the rising phase aged out");
    }

    #[test]
    fn startup_finds_the_bandwidth_then_probes_at_two_bdp() {
        let mut b = Bbr::new(M);
        let mut t = Instant::now();
        let mut d = 0;
        let (bw, rtt) = (10_000_000u64, Duration::from_millis(10)); // BDP = 100 kB
        drive(&mut b, &mut t, &mut d, 40, bw, rtt, 1_000_000);
        assert_eq!(b.mode, Mode::ProbeBw);
        assert!((b.max_bw() as f64 - bw as f64).abs() < bw as f64 * 0.05, "bw {}", b.max_bw());
        let cwnd = b.cwnd() as f64;
        // 2 BDP + 3 bursts of 1 ms at the path rate (Linux's quantization budget).
        assert!((220_000.0..=245_000.0).contains(&cwnd), "cwnd ≈ 2 BDP + quanta: {cwnd}");
    }

    #[test]
    fn random_loss_does_not_collapse_the_window() {
        let mut b = Bbr::new(M);
        let mut t = Instant::now();
        let mut d = 0;
        let (bw, rtt) = (10_000_000u64, Duration::from_millis(10));
        drive(&mut b, &mut t, &mut d, 40, bw, rtt, 1_000_000);
        let before = b.cwnd();
        for _ in 0..20 {
            b.on_enter_recovery(t, b.cwnd());
            drive(&mut b, &mut t, &mut d, 2, bw, rtt, 1_000_000);
            b.on_exit_recovery();
        }
        assert!(b.cwnd() >= before * 9 / 10, "{} vs {before}", b.cwnd());
        // A timeout restarts from one segment and regrows by what is delivered.
        b.on_rto(t, b.cwnd(), true);
        assert_eq!(b.cwnd(), M);
        drive(&mut b, &mut t, &mut d, 8, bw, rtt, 1_000_000);
        assert!(b.cwnd() >= before / 2, "{}", b.cwnd());
    }

    #[test]
    fn probe_rtt_after_ten_seconds() {
        let mut b = Bbr::new(M);
        let mut t = Instant::now();
        let mut d = 0;
        let (bw, rtt) = (10_000_000u64, Duration::from_millis(10));
        drive(&mut b, &mut t, &mut d, 40, bw, rtt, 0);
        let start = t;
        // Samples above min_rtt (a standing queue) for 10 s: PROBE_RTT with 4 segments.
        let mut seen = None;
        for _ in 0..1500 {
            drive(&mut b, &mut t, &mut d, 1, bw, rtt, 50_000);
            if b.mode == Mode::ProbeRtt {
                seen.get_or_insert(t - start);
                assert!(b.cwnd() <= 4 * M);
            } else if seen.is_some() {
                break;
            }
        }
        let at = seen.expect("PROBE_RTT entered");
        assert!(at >= MIN_RTT_WINDOW - Duration::from_millis(500), "after {at:?}");
        assert_eq!(b.mode, Mode::ProbeBw, "and left");
    }
}
