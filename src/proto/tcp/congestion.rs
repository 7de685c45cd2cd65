//! Congestion control (RFC 5681, RFC 6582, RFC 9438) behind one trait.
//!
//! Loss detection (RACK, duplicate ACKs), the Open / Recovery / Loss states and the window
//! during fast recovery (PRR, RFC 6937) live in the connection; an implementation of
//! [`CongestionControl`] only does window arithmetic on the events it is told about.
//! Invariant: `cwnd() >= smss` and `ssthresh() >= 2 * smss` after any loss event.

use std::time::{Duration, Instant};

/// Window arithmetic of one congestion-control algorithm. All sizes in bytes.
pub trait CongestionControl: std::fmt::Debug + Send {
    fn name(&self) -> &'static str;
    fn cwnd(&self) -> usize;
    fn ssthresh(&self) -> usize;
    /// The sender MSS changed (handshake, PMTU).
    fn set_mss(&mut self, smss: usize);
    /// New data was cumulatively acknowledged outside fast recovery.
    fn on_ack(&mut self, now: Instant, bytes_acked: usize, srtt: Option<Duration>);
    /// Loss detected: set ssthresh for fast recovery (RFC 5681 §3.2 step 2, eq. 4). During
    /// recovery the connection sets the window itself (PRR).
    fn on_enter_recovery(&mut self, now: Instant, flight_size: usize);
    /// Recovery is over: cwnd = ssthresh (RFC 6937 §3, RFC 6582 §3.2 step 6).
    fn on_exit_recovery(&mut self);
    /// The last reduction was spurious (RFC 3522, RFC 2883 §5): go back to at least the
    /// window and threshold from before it.
    fn undo(&mut self, prior_cwnd: usize, prior_ssthresh: usize);
    /// Retransmission timeout (RFC 5681 §3.1 eq. 4). `first` is false when the segment
    /// was already retransmitted by the timer: ssthresh is then held constant.
    fn on_rto(&mut self, now: Instant, flight_size: usize, first: bool);
    /// The connection was idle for more than an RTO (RFC 5681 §4.1): restart from the
    /// initial window.
    fn on_idle_restart(&mut self);
    /// A delivery-rate sample ([`super::rate`]) from an ACK, with the connection's total
    /// delivered bytes and the bytes in flight after it. Model-based algorithms (BBR) do
    /// their work here; loss-based ones ignore it.
    fn on_rate_sample(&mut self, _now: Instant, _rs: &super::rate::RateSample, _delivered: u64, _inflight: usize) {}
    /// The handshake measured the connection's first RTT (SRTT after the SYN exchange).
    /// BBR paces its first window at this RTT instead of a nominal one.
    fn on_handshake_rtt(&mut self, _srtt: std::time::Duration) {}
    /// Bytes/s to pace the sender at (`super::pacing`); `None` sends up to cwnd at once, as
    /// Linux does for Reno and CUBIC without the fq qdisc.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
    /// True if the algorithm sets the window during fast recovery itself (BBR's packet
    /// conservation) instead of the connection's PRR.
    fn owns_recovery_window(&self) -> bool {
        false
    }
}

/// RFC 6928 initial window: min(10*MSS, max(2*MSS, 14600)). RFC 5681 §3.1 allows at most
/// 4 segments; 10 is common practice (Linux since 2.6.39) and documented here.
pub fn initial_window(smss: usize) -> usize {
    (10 * smss).min((2 * smss).max(14600))
}

/// The sender MSS changed: an untouched initial window is recomputed for it (RFC 6928),
/// and cwnd stays at least one segment.
pub(crate) fn set_mss(cwnd: &mut usize, old_smss: &mut usize, smss: usize) {
    let smss = smss.max(1);
    if *cwnd == initial_window(*old_smss) {
        *cwnd = initial_window(smss);
    }
    *old_smss = smss;
    *cwnd = (*cwnd).max(smss);
}

/// RFC 5681 + RFC 6582 NewReno.
#[derive(Debug, Clone)]
pub struct NewReno {
    smss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acked since the last congestion-avoidance increase (RFC 5681 §3.1, byte counting).
    acked_accum: usize,
}

impl NewReno {
    pub fn new(smss: usize) -> Self {
        let smss = smss.max(1);
        // RFC 5681 §3.1: ssthresh initially arbitrarily high.
        NewReno { smss, cwnd: initial_window(smss), ssthresh: usize::MAX / 2, acked_accum: 0 }
    }
}

impl CongestionControl for NewReno {
    fn name(&self) -> &'static str {
        "newreno"
    }
    fn cwnd(&self) -> usize {
        self.cwnd
    }
    fn ssthresh(&self) -> usize {
        self.ssthresh
    }
    fn set_mss(&mut self, smss: usize) {
        set_mss(&mut self.cwnd, &mut self.smss, smss);
    }
    fn on_ack(&mut self, _now: Instant, bytes_acked: usize, _srtt: Option<Duration>) {
        if self.cwnd < self.ssthresh {
            // Slow start: cwnd += min(N, SMSS) (RFC 5681 §3.1 eq. 2).
            self.cwnd += bytes_acked.min(self.smss);
        } else {
            // Congestion avoidance: +1 SMSS per cwnd of data acked (§3.1, eq. 3 variant).
            self.acked_accum += bytes_acked;
            if self.acked_accum >= self.cwnd {
                self.acked_accum -= self.cwnd;
                self.cwnd += self.smss;
            }
        }
    }
    fn on_enter_recovery(&mut self, _now: Instant, flight_size: usize) {
        // RFC 5681 §3.2 eq. 4.
        self.ssthresh = (flight_size / 2).max(2 * self.smss);
        self.acked_accum = 0;
    }
    fn on_exit_recovery(&mut self) {
        self.cwnd = self.ssthresh.max(self.smss);
    }
    fn undo(&mut self, prior_cwnd: usize, prior_ssthresh: usize) {
        self.cwnd = self.cwnd.max(prior_cwnd);
        self.ssthresh = self.ssthresh.max(prior_ssthresh);
    }
    fn on_rto(&mut self, _now: Instant, flight_size: usize, first: bool) {
        if first {
            self.ssthresh = (flight_size / 2).max(2 * self.smss);
        }
        // RFC 5681 §3.1: loss window = 1 segment.
        self.cwnd = self.smss;
        self.acked_accum = 0;
    }
    fn on_idle_restart(&mut self) {
        self.cwnd = self.cwnd.min(initial_window(self.smss));
    }
}

/// CUBIC (RFC 9438) with the Reno-friendly region and fast convergence.
#[derive(Debug, Clone)]
pub struct Cubic {
    smss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// W_max in bytes (window before the last reduction).
    w_max: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch_start: Option<Instant>,
    /// K in seconds (RFC 9438 §4.2 eq. 2).
    k: f64,
    /// Reno-friendly estimate W_est in bytes (§4.3).
    w_est: f64,
    /// Fractional bytes of window growth not yet applied.
    frac: f64,
}

/// RFC 9438 §4.6: β_cubic = 0.7.
const BETA_CUBIC: f64 = 0.7;
/// RFC 9438 §5: C = 0.4.
const C_CUBIC: f64 = 0.4;

impl Cubic {
    pub fn new(smss: usize) -> Self {
        let smss = smss.max(1);
        Cubic {
            smss,
            cwnd: initial_window(smss),
            ssthresh: usize::MAX / 2,
            w_max: 0.0,
            epoch_start: None,
            k: 0.0,
            w_est: 0.0,
            frac: 0.0,
        }
    }

    fn reduce(&mut self, _flight_size: usize) {
        let cwnd = self.cwnd as f64;
        // §4.7 fast convergence.
        self.w_max = if cwnd < self.w_max { cwnd * (1.0 + BETA_CUBIC) / 2.0 } else { cwnd };
        self.ssthresh = ((cwnd * BETA_CUBIC) as usize).max(2 * self.smss);
        self.epoch_start = None;
        self.frac = 0.0;
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }
    fn cwnd(&self) -> usize {
        self.cwnd
    }
    fn ssthresh(&self) -> usize {
        self.ssthresh
    }
    fn set_mss(&mut self, smss: usize) {
        set_mss(&mut self.cwnd, &mut self.smss, smss);
    }
    fn on_ack(&mut self, now: Instant, bytes_acked: usize, srtt: Option<Duration>) {
        if self.cwnd < self.ssthresh {
            self.cwnd += bytes_acked.min(self.smss);
            return;
        }
        let smss = self.smss as f64;
        let start = match self.epoch_start {
            Some(s) => s,
            None => {
                self.epoch_start = Some(now);
                let cwnd = self.cwnd as f64;
                if self.w_max < cwnd {
                    self.w_max = cwnd;
                }
                // K = cbrt((W_max - cwnd_epoch) / C), in segments (§4.2 eq. 2), with
                // cwnd_epoch the window at the start of this epoch: after fast convergence
                // or slow start it is not β * W_max. 0 when cwnd_epoch >= W_max.
                self.k = ((self.w_max - cwnd) / smss / C_CUBIC).cbrt();
                self.w_est = cwnd;
                now
            }
        };
        let rtt = srtt.unwrap_or(Duration::from_millis(100)).as_secs_f64();
        let t = now.saturating_duration_since(start).as_secs_f64() + rtt;
        // W_cubic(t) = C (t - K)^3 + W_max  (segments), §4.2 eq. 1.
        let w_cubic = (C_CUBIC * (t - self.k).powi(3)) * smss + self.w_max;
        // §4.3: W_est += α * acked / cwnd, α = 3 (1 - β) / (1 + β).
        let alpha = 3.0 * (1.0 - BETA_CUBIC) / (1.0 + BETA_CUBIC);
        self.w_est += alpha * smss * (bytes_acked as f64) / (self.cwnd as f64);
        let cwnd = self.cwnd as f64;
        if w_cubic < self.w_est {
            // Reno-friendly region.
            if self.w_est > cwnd {
                self.cwnd = self.w_est as usize;
            }
        } else {
            // §4.4/4.5: target clamped to [cwnd, 1.5 cwnd]; cwnd += (target - cwnd)/cwnd per ACK.
            let target = w_cubic.clamp(cwnd, 1.5 * cwnd);
            self.frac += (target - cwnd) / cwnd * (bytes_acked as f64);
            let whole = self.frac.floor();
            self.frac -= whole;
            self.cwnd += whole as usize;
        }
        self.cwnd = self.cwnd.max(self.smss);
    }
    fn on_enter_recovery(&mut self, _now: Instant, flight_size: usize) {
        self.reduce(flight_size);
    }
    fn on_exit_recovery(&mut self) {
        self.cwnd = self.ssthresh.max(self.smss);
    }
    fn undo(&mut self, prior_cwnd: usize, prior_ssthresh: usize) {
        // Linux cubictcp: the window comes back; the epoch restarts from it.
        self.cwnd = self.cwnd.max(prior_cwnd);
        self.ssthresh = self.ssthresh.max(prior_ssthresh);
        self.epoch_start = None;
    }
    fn on_rto(&mut self, _now: Instant, flight_size: usize, first: bool) {
        if first {
            self.reduce(flight_size);
        }
        self.cwnd = self.smss;
    }
    fn on_idle_restart(&mut self) {
        self.cwnd = self.cwnd.min(initial_window(self.smss));
        self.epoch_start = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const M: usize = 1000;

    #[test]
    fn iw_rfc6928() {
        assert_eq!(initial_window(1460), 14600);
        assert_eq!(initial_window(536), 5360);
        assert_eq!(initial_window(9000), 18000);
    }

    #[test]
    fn newreno_slow_start_and_avoidance() {
        let now = Instant::now();
        let mut c = NewReno::new(M);
        assert_eq!(c.cwnd(), 10 * M);
        c.on_ack(now, 5000, None);
        assert_eq!(c.cwnd(), 11 * M, "slow start adds at most SMSS per ACK");
        c.on_rto(now, 20 * M, true);
        assert_eq!(c.ssthresh(), 10 * M);
        assert_eq!(c.cwnd(), M);
        c.on_rto(now, 2 * M, false);
        assert_eq!(c.ssthresh(), 10 * M, "held constant on repeated timeout");
        for _ in 0..9 {
            c.on_ack(now, M, None);
        }
        assert_eq!(c.cwnd(), 10 * M);
        // Congestion avoidance: one SMSS per cwnd of acked data.
        for _ in 0..10 {
            c.on_ack(now, M, None);
        }
        assert_eq!(c.cwnd(), 11 * M);
    }

    #[test]
    fn newreno_fast_recovery_arithmetic() {
        let now = Instant::now();
        let mut c = NewReno::new(M);
        c.on_enter_recovery(now, 10 * M);
        assert_eq!(c.ssthresh(), 5 * M);
        c.on_exit_recovery();
        assert_eq!(c.cwnd(), 5 * M, "cwnd = ssthresh after recovery (RFC 6937)");
        c.on_enter_recovery(now, M);
        assert_eq!(c.ssthresh(), 2 * M, "floor 2*SMSS");
        c.undo(10 * M, 5 * M);
        assert_eq!((c.cwnd(), c.ssthresh()), (10 * M, 5 * M), "undo restores the prior window");
    }

    #[test]
    fn cubic_reduces_by_beta_and_regrows() {
        let t0 = Instant::now();
        let mut c = Cubic::new(M);
        for _ in 0..90 {
            c.on_ack(t0, M, None);
        }
        assert_eq!(c.cwnd(), 100 * M);
        c.on_enter_recovery(t0, 100 * M);
        assert_eq!(c.ssthresh(), 70 * M);
        c.on_exit_recovery();
        assert_eq!(c.cwnd(), 70 * M);
        let mut t = t0;
        for _ in 0..2000 {
            t += Duration::from_millis(5);
            c.on_ack(t, M, Some(Duration::from_millis(50)));
        }
        assert!(c.cwnd() > 100 * M, "grows past W_max: {}", c.cwnd());
    }

    #[test]
    fn review_11_cubic_k_from_cwnd_at_epoch_start() {
        let t0 = Instant::now();
        let mut c = Cubic::new(M);
        for _ in 0..90 {
            c.on_ack(t0, M, None);
        }
        // Two losses in a row: the second one below W_max triggers fast convergence
        // (§4.7), so W_max = 70 * (1 + β) / 2 = 59.5 segments while the epoch starts at
        // cwnd = ssthresh = 49 segments, not at β * W_max.
        c.on_enter_recovery(t0, 100 * M);
        c.on_exit_recovery();
        c.on_enter_recovery(t0, 70 * M);
        c.on_exit_recovery();
        assert_eq!(c.cwnd(), 49 * M);
        c.on_ack(t0, M, Some(Duration::from_millis(50)));
        // RFC 9438 §4.2 eq. 2: K = cbrt((W_max - cwnd_epoch) / C), in segments.
        let want = ((59.5 - 49.0) / C_CUBIC).cbrt();
        assert!((c.k - want).abs() < 1e-9, "K = {} s, want {want} s", c.k);
        // So the curve starts at the epoch's cwnd: W_cubic(0) = W_max - C K^3 = cwnd_epoch.
        let w0 = c.w_max / M as f64 - C_CUBIC * c.k.powi(3);
        assert!((w0 - 49.0).abs() < 1e-6, "W_cubic(0) = {w0} segments");
    }
}
