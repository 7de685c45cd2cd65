//! Delivery rate estimation (draft-cheng-iccrg-delivery-rate-estimation, as Linux's
//! `tcp_rate.c`): each segment remembers how much had been delivered when it was sent; when
//! it is delivered, the bytes delivered in between over the elapsed time is a sample of
//! the bottleneck rate. BBR is built on these samples.
//!
//! Invariants: `delivered` only grows; a sample's interval is the larger of the send and
//! the ACK intervals (§3.3), so ACK compression cannot inflate it; a sample taken while the
//! sender had nothing to send is marked application-limited.

use std::time::{Duration, Instant};

/// What a segment carries from the moment it was sent (the draft's per-packet state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendStamp {
    /// `C.delivered` when it was sent.
    pub delivered: u64,
    /// `C.delivered_time` when it was sent.
    pub delivered_time: Instant,
    /// `C.first_sent_time`: send time of the first segment of the current flight.
    pub first_sent: Instant,
    pub app_limited: bool,
}

/// The connection's delivery counters (the draft's `C.*`).
#[derive(Clone, Debug, Default)]
pub struct RateState {
    /// Bytes delivered (cumulatively ACKed or SACKed) so far.
    pub delivered: u64,
    delivered_time: Option<Instant>,
    first_sent: Option<Instant>,
    /// Samples are application-limited until `delivered` passes this mark (0: not).
    app_limited_until: u64,
}

/// One rate sample (the draft's `rs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RateSample {
    /// Bytes delivered over `interval`.
    pub delivered: u64,
    pub interval: Duration,
    /// `C.delivered` when the newest delivered segment was sent (round-trip counting).
    pub prior_delivered: u64,
    pub app_limited: bool,
    /// RTT of the newest delivered segment, if it was never retransmitted.
    pub rtt: Option<Duration>,
    /// Bytes newly delivered by this ACK.
    pub acked: u64,
}

impl RateSample {
    /// Delivery rate in bytes per second, if the sample is usable.
    pub fn bytes_per_sec(&self) -> Option<u64> {
        if self.interval.is_zero() || self.delivered == 0 {
            return None;
        }
        Some((self.delivered as u128 * 1_000_000_000 / self.interval.as_nanos()) as u64)
    }
}

impl RateState {
    /// A segment is sent at `now`; `idle` says nothing was in flight (§3.2: restart the
    /// clocks so idle time does not count).
    pub fn on_send(&mut self, now: Instant, idle: bool) -> SendStamp {
        if idle || self.first_sent.is_none() {
            self.first_sent = Some(now);
            self.delivered_time = Some(now);
        }
        SendStamp {
            delivered: self.delivered,
            delivered_time: self.delivered_time.unwrap_or(now),
            first_sent: self.first_sent.unwrap_or(now),
            app_limited: self.app_limited_until != 0,
        }
    }

    /// The sender ran out of data with `pipe` bytes in flight and room in cwnd (§3.4).
    pub fn mark_app_limited(&mut self, pipe: usize) {
        self.app_limited_until = (self.delivered + pipe as u64).max(1);
    }

    /// An ACK delivered `acked` bytes; `newest` is the stamp and send time of the most
    /// recently sent segment among them, `retransmitted` whether it was ever resent.
    /// Returns the sample (§3.3).
    pub fn on_ack(
        &mut self,
        now: Instant,
        acked: u64,
        newest: Option<(SendStamp, Instant, bool)>,
        min_rtt: Option<Duration>,
    ) -> RateSample {
        let mut rs = RateSample { acked, ..Default::default() };
        if acked == 0 {
            return rs;
        }
        self.delivered += acked;
        self.delivered_time = Some(now);
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        let Some((p, sent, retransmitted)) = newest else { return rs };
        self.first_sent = Some(sent);
        let send_elapsed = sent.saturating_duration_since(p.first_sent);
        let ack_elapsed = now.saturating_duration_since(p.delivered_time);
        rs.prior_delivered = p.delivered;
        rs.app_limited = p.app_limited;
        rs.delivered = self.delivered - p.delivered;
        rs.interval = send_elapsed.max(ack_elapsed);
        rs.rtt = (!retransmitted).then(|| now.saturating_duration_since(sent));
        // §3.3: an interval below the minimum RTT is an artefact (ACK compression).
        if min_rtt.is_some_and(|m| rs.interval < m) {
            rs.interval = Duration::ZERO;
        }
        rs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_flight_gives_its_rate() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = RateState::default();
        // Ten 1000-byte segments sent 1 ms apart, each delivered 10 ms after it was sent.
        let stamps: Vec<_> = (0..10).map(|k| (c.on_send(t0 + ms(k), k == 0), t0 + ms(k))).collect();
        let mut last = RateSample::default();
        for (k, (p, sent)) in stamps.into_iter().enumerate() {
            last = c.on_ack(t0 + ms(k as u64 + 10), 1000, Some((p, sent, false)), None);
        }
        // The last sample: 10 segments over max(send 9 ms, ack 19 ms) = 19 ms.
        assert_eq!(last.delivered, 10_000);
        assert_eq!(last.interval, ms(19));
        assert_eq!(last.rtt, Some(ms(10)));
        assert_eq!(last.bytes_per_sec(), Some(10_000 * 1000 / 19));
    }

    #[test]
    fn app_limited_marks_samples_until_passed() {
        let t0 = Instant::now();
        let mut c = RateState::default();
        c.mark_app_limited(500);
        let p = c.on_send(t0, true);
        assert!(p.app_limited);
        let rs = c.on_ack(t0 + Duration::from_millis(5), 1000, Some((p, t0, false)), None);
        assert!(rs.app_limited);
        assert!(!c.on_send(t0, false).app_limited, "cleared once delivered passed the mark");
    }
}
