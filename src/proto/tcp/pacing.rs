//! Pacing: spreading a sender's segments over time at the congestion controller's rate
//! instead of sending a window at once (Linux's internal TCP pacing, which BBR asks for:
//! `tcp_internal_pacing`, `sk_pacing_rate`).
//!
//! A credit in bytes refills at the rate and is capped at one quantum; a segment may go
//! while the credit is positive and then takes its length off it (so the credit may end
//! below zero, and a segment larger than the quantum is never stuck). When the credit is
//! spent the sender waits [`Pacer::wait`] — the connection's pacing deadline.
//!
//! Linux stamps each packet with a departure time (EDT) and releases it from an hrtimer
//! at microsecond precision. This stack's timers tick in milliseconds (`actor::timer`), so
//! the quantum is [`QUANTUM`] of data at the rate (at least two segments, Linux's
//! `tcp_min_tso_segs`): a deadline that fires up to a tick late still finds the credit
//! it needs, and the rate is kept. At the rates of a local TUN path (Gbit/s) a quantum is
//! megabytes, more than the window, so pacing only shapes slower paths.
//!
//! Invariants: `credit <= quantum`; time never runs backwards for the credit (`stamp` only
//! moves forward); without a rate nothing is paced.

use std::time::{Duration, Instant};

/// Time's worth of data one burst may carry: twice the timer tick (`actor::timer::TICK`).
pub const QUANTUM: Duration = Duration::from_millis(2);

/// The slowest pacing: this many segments per smoothed RTT (BBR's smallest window, Linux
/// `bbr_cwnd_min_target`). A bandwidth estimate that collapsed during timeouts (one
/// segment delivered per backed-off RTO) must not pace the recovery at that rate: in
/// simulation seed 27855 it spaced segments 90 s apart.
pub const FLOOR_SEGS: usize = 4;

/// `rate` (bytes/s) raised to [`FLOOR_SEGS`] segments per `srtt`, when there is one.
pub fn floored(rate: f64, smss: usize, srtt: Option<Duration>) -> f64 {
    let floor = srtt.map_or(0.0, |r| (FLOOR_SEGS * smss) as f64 / r.as_secs_f64().max(1e-6));
    rate.max(floor)
}

#[derive(Debug, Clone)]
pub struct Pacer {
    /// `TcpConfig::pacing`: off, every segment may leave.
    enabled: bool,
    /// Bytes that may still leave now (negative: sent ahead of the rate).
    credit: f64,
    /// When the credit was last brought up to date; `None` before the first segment (the
    /// first burst has a full quantum).
    stamp: Option<Instant>,
}

impl Pacer {
    pub fn new(enabled: bool) -> Self {
        Pacer { enabled, credit: 0.0, stamp: None }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The cap on the credit at `rate` bytes/s: one quantum, at least two segments.
    pub fn quantum(rate: f64, smss: usize) -> f64 {
        (rate * QUANTUM.as_secs_f64()).max(2.0 * smss as f64)
    }

    /// Bring the credit up to `now` at `rate` bytes/s; true if a segment may leave.
    pub fn ready(&mut self, now: Instant, rate: f64, smss: usize) -> bool {
        let cap = Self::quantum(rate, smss);
        self.credit = match self.stamp {
            None => cap,
            Some(t) => (self.credit + rate * now.saturating_duration_since(t).as_secs_f64()).min(cap),
        };
        self.stamp = Some(self.stamp.map_or(now, |t| t.max(now)));
        self.credit > 0.0
    }

    /// A segment of `len` bytes left.
    pub fn spend(&mut self, len: usize) {
        self.credit -= len.max(1) as f64;
    }

    /// How long until the credit is positive again at `rate` bytes/s (at least 1 µs).
    pub fn wait(&self, rate: f64) -> Duration {
        let deficit = (-self.credit).max(0.0) + 1.0;
        Duration::from_secs_f64(deficit / rate.max(1.0)).max(Duration::from_micros(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    #[test]
    fn the_first_burst_is_one_quantum_then_the_rate_holds() {
        let t0 = Instant::now();
        let rate = 1_000_000.0; // 1 MB/s: a quantum of 2 ms is 2,000 bytes = 2 segments
        let mut p = Pacer::new(true);
        let mut sent = 0;
        while p.ready(t0, rate, MSS) {
            p.spend(MSS);
            sent += MSS;
        }
        assert_eq!(sent, 2 * MSS);
        assert_eq!(p.wait(rate), Duration::from_micros(1), "credit at 0: one byte's worth");
        // Over the next 100 ms, sending whenever allowed, 100 kB more leave (± a segment).
        let mut now = t0;
        let mut later = 0;
        while now < t0 + Duration::from_millis(100) {
            if p.ready(now, rate, MSS) {
                p.spend(MSS);
                later += MSS;
            } else {
                now += p.wait(rate);
            }
        }
        assert!((99_000..=101_000).contains(&later), "{later} bytes in 100 ms at 1 MB/s");
    }

    #[test]
    fn idle_time_buys_no_more_than_one_quantum() {
        let t0 = Instant::now();
        let rate = 10_000_000.0; // a quantum of 20 kB
        let mut p = Pacer::new(true);
        assert!(p.ready(t0, rate, MSS));
        p.spend(MSS);
        let mut burst = 0;
        while p.ready(t0 + Duration::from_secs(5), rate, MSS) {
            p.spend(MSS);
            burst += MSS;
        }
        assert_eq!(burst, 20_000);
    }

    #[test]
    fn a_segment_larger_than_the_quantum_still_leaves_and_the_wait_repays_it() {
        let t0 = Instant::now();
        let rate = 100_000.0; // quantum: two segments (200 bytes of rate would be less)
        let mut p = Pacer::new(true);
        assert!(p.ready(t0, rate, MSS));
        p.spend(64 * 1024);
        assert!(!p.ready(t0, rate, MSS));
        let w = p.wait(rate);
        assert!(w > Duration::from_millis(600) && w < Duration::from_millis(700), "{w:?}");
        assert!(p.ready(t0 + w, rate, MSS));
    }

    #[test]
    fn the_rate_is_floored_at_four_segments_per_rtt() {
        let srtt = Some(Duration::from_millis(100));
        assert_eq!(floored(2.0, 1000, srtt), 40_000.0);
        assert_eq!(floored(1e6, 1000, srtt), 1e6);
        assert_eq!(floored(2.0, 1000, None), 2.0, "no RTT yet: no floor");
    }

    #[test]
    fn a_clock_that_steps_back_adds_nothing() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let rate = 1_000_000.0;
        let mut p = Pacer::new(true);
        assert!(p.ready(t0, rate, MSS));
        p.spend(3 * MSS);
        assert!(!p.ready(t0 - Duration::from_millis(500), rate, MSS));
        assert!(!p.ready(t0, rate, MSS), "the step back did not move the stamp back");
    }
}
