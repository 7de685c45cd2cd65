//! Retransmission timeout computation (RFC 6298, with Linux's floor).
//!
//! `RTO = SRTT + max(min_rto, K·RTTVAR)`: the floor applies to the variance term, as
//! Linux's `tcp_rto_min` does (`__tcp_set_rto`), not to the whole RTO as RFC 6298 §2.4
//! has it. With timestamps every ACK is a sample and RTTVAR decays towards zero; a floor
//! on the whole RTO would then give `max(200 ms, SRTT)`, which a delayed-ACK peer beats
//! and which fires spuriously on any path whose RTT varies by more than the gap.
//!
//! Invariant: `rto` is always within `[min_rto, max_rto]`; `backoff` doubles it on each
//! expiry (§5.5) and a new RTT sample resets the backoff.

use std::time::Duration;

/// RFC 6298 §2: K = 4.
const K: u32 = 4;

#[derive(Clone, Debug)]
pub struct RttEstimator {
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    /// The un-backed-off RTO.
    base_rto: Duration,
    /// Number of consecutive backoffs applied.
    pub backoff: u32,
    min_rto: Duration,
    max_rto: Duration,
}

impl RttEstimator {
    /// RFC 6298 §2.1: before any sample RTO = initial (1 s).
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            base_rto: initial.clamp(min_rto, max_rto),
            backoff: 0,
            min_rto,
            max_rto,
        }
    }

    /// Feed one RTT measurement `r` (RFC 6298 §2.2, §2.3; α = 1/8, β = 1/4).
    pub fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                // §2.2: SRTT <- R, RTTVAR <- R/2.
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // §2.3: RTTVAR <- (1 - β) RTTVAR + β |SRTT - R'|, SRTT <- (1 - α) SRTT + α R'.
                let diff = srtt.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + diff / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        // RTO <- SRTT + max(G, K*RTTVAR) with G raised to the floor (Linux), §2.5 cap.
        self.base_rto = (srtt + (self.rttvar * K).max(self.min_rto)).min(self.max_rto);
        self.backoff = 0;
    }

    /// A timeout proved spurious (RFC 3522): drop the backoff it caused.
    pub fn undo_backoff(&mut self) {
        self.backoff = 0;
    }

    /// The current RTO including exponential backoff (§5.5), capped at max_rto.
    pub fn rto(&self) -> Duration {
        let mut r = self.base_rto;
        for _ in 0..self.backoff.min(32) {
            r = r.saturating_mul(2);
            if r >= self.max_rto {
                return self.max_rto;
            }
        }
        r.min(self.max_rto)
    }

    /// §5.5: the timer expired: back off.
    pub fn on_timeout(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// RFC 6298 §5.7: the SYN was retransmitted and no sample taken: RTO at least 3 s
    /// once data transfer begins.
    pub fn syn_was_retransmitted(&mut self) {
        if self.srtt.is_none() {
            self.base_rto = Duration::from_secs(3).clamp(self.min_rto, self.max_rto);
        }
        self.backoff = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    #[test]
    fn rfc6298_arithmetic() {
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        assert_eq!(e.rto(), ms(1000));
        e.sample(ms(100));
        // SRTT=100, RTTVAR=50, RTO=100+200=300.
        assert_eq!(e.srtt, Some(ms(100)));
        assert_eq!(e.rttvar, ms(50));
        assert_eq!(e.rto(), ms(300));
        e.sample(ms(200));
        // RTTVAR = 3/4*50 + 1/4*100 = 62.5; SRTT = 87.5 + 25 = 112.5; RTO = 112.5 + 250 = 362.5
        assert_eq!(e.rttvar, Duration::from_micros(62_500));
        assert_eq!(e.srtt, Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(362_500));
    }

    /// Review defect 5: with a steady RTT (timestamps: a sample per ACK) RTTVAR decays to
    /// zero. The old `clamp(SRTT + 4·RTTVAR, 200 ms)` then gave 200 ms for a 150 ms path,
    /// 50 ms of margin against a 40 ms delayed ACK plus jitter; Linux gives SRTT + 200 ms.
    #[test]
    fn floor_is_on_the_variance_term() {
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        for _ in 0..200 {
            e.sample(ms(150));
        }
        assert!(e.rttvar < ms(1));
        assert_eq!(e.rto(), ms(350), "SRTT + max(200 ms, 4·RTTVAR)");
    }
    #[test]
    fn floor_cap_and_backoff() {
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        e.sample(ms(1));
        assert_eq!(e.rto(), ms(201), "SRTT + the 200 ms floor (Linux)");
        e.on_timeout();
        assert_eq!(e.rto(), ms(402));
        e.on_timeout();
        assert_eq!(e.rto(), ms(804));
        for _ in 0..40 {
            e.on_timeout();
        }
        assert_eq!(e.rto(), ms(60_000), "cap");
        e.sample(ms(10));
        assert_eq!(e.backoff, 0);
        assert!(e.rto() < ms(1000));
        let mut s = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        s.syn_was_retransmitted();
        assert_eq!(s.rto(), ms(3000));
    }
}
