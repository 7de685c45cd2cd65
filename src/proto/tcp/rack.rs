//! RACK-TLP (RFC 8985): time-based loss detection and tail-loss probes.
//!
//! RACK remembers the most recently *sent* segment that has been delivered (cumulatively
//! ACKed or SACKed). A segment sent before it that is still undelivered after
//! `RACK.rtt + RACK.reo_wnd` is lost. The reordering window starts at zero until
//! reordering is seen, then is `min_rtt / 4` scaled by the D-SACK rounds (§6.2 step 4).
//! TLP sends one probe when the tail of a flight goes unacknowledged for a PTO, so a lost
//! tail is repaired by fast recovery instead of a retransmission timeout (§7).
//!
//! This module only keeps state and does the arithmetic; the connection walks its
//! retransmission queue ([`super::rtx`]) and applies the verdicts.

use super::seq;
use std::time::{Duration, Instant};

/// RFC 8985 §7.2: worst-case delayed-ACK time added to the PTO of a single segment.
pub const WC_DEL_ACK: Duration = Duration::from_millis(200);
/// Floor on the PTO (Linux: two jiffies, 10 ms), so a sub-millisecond RTT does not turn
/// every pause of the application into a probe.
pub const MIN_PTO: Duration = Duration::from_millis(10);
/// RFC 8985 §6.2 step 4: D-SACK-free recoveries before the window multiplier resets.
const REO_WND_PERSIST: u32 = 16;

#[derive(Clone, Debug, Default)]
pub struct Rack {
    /// Send time and end of the most recently sent delivered segment (RACK.xmit_ts,
    /// RACK.end_seq).
    pub xmit: Option<(Instant, u32)>,
    /// RTT measured from that segment (RACK.rtt).
    pub rtt: Duration,
    /// Smallest RTT seen (the connection's minimum; Linux keeps a windowed minimum).
    pub min_rtt: Option<Duration>,
    pub reordering_seen: bool,
    reo_wnd_mult: u32,
    reo_wnd_persist: u32,
    /// D-SACK round: the window grows at most once per round trip (RACK.dsack_round).
    dsack_round: Option<u32>,
}

impl Rack {
    /// §6.2 step 2: a delivered segment sent at `xmit` ending at `end`. A retransmitted
    /// segment counts only if the ACK cannot be for its original transmission: with
    /// timestamps `ts_echo_fresh` says the echoed TSval is not older than the
    /// retransmission; without them an RTT below min_rtt rules it out.
    pub fn update(&mut self, now: Instant, xmit: Instant, end: u32, retransmitted: bool, ts_echo_fresh: Option<bool>) {
        let rtt = now.saturating_duration_since(xmit);
        if retransmitted {
            match ts_echo_fresh {
                Some(false) => return,
                Some(true) => {}
                None if self.min_rtt.is_some_and(|m| rtt < m) => return,
                None => {}
            }
        }
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        let newer = self.xmit.is_none_or(|(t, e)| xmit > t || (xmit == t && seq::gt(end, e)));
        if newer {
            self.xmit = Some((xmit, end));
            self.rtt = rtt;
        }
    }

    /// §6.2 step 4 (D-SACK part): an ACK carried a D-SACK; `snd_max` ends the round.
    pub fn on_dsack(&mut self, snd_una: u32, snd_max: u32) {
        if self.dsack_round.is_some_and(|r| seq::ge(snd_una, r)) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() {
            self.dsack_round = Some(snd_max);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1).min(64);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// §6.2 step 4: leaving a recovery without D-SACK counts towards resetting the window.
    pub fn on_recovery_exit(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
        }
    }

    /// §6.2 step 4: the reordering window. `in_recovery` and `sacked_dupthresh` (at least
    /// DupThresh segments SACKed) make it zero while no reordering has been seen.
    pub fn reo_wnd(&self, in_recovery: bool, sacked_dupthresh: bool, srtt: Option<Duration>) -> Duration {
        if !self.reordering_seen && (in_recovery || sacked_dupthresh) {
            return Duration::ZERO;
        }
        let base = self.min_rtt.unwrap_or_default() / 4;
        let w = base * self.reo_wnd_mult.max(1);
        srtt.map_or(w, |s| w.min(s))
    }

    /// §6.2 step 5: time left before a segment sent at `xmit` counts as lost
    /// (`None`: lost now). Only segments sent before RACK's segment are considered; a
    /// retransmission stamped with the same instant (one batch) was sent after it.
    pub fn remaining(
        &self,
        now: Instant,
        xmit: Instant,
        end: u32,
        retransmitted: bool,
        reo_wnd: Duration,
    ) -> Option<Option<Duration>> {
        let (rx, re) = self.xmit?;
        let sent_before = xmit < rx || (xmit == rx && !retransmitted && seq::lt(end, re));
        if !sent_before {
            return None;
        }
        let deadline = xmit + self.rtt + reo_wnd;
        Some(deadline.checked_duration_since(now).filter(|d| !d.is_zero()))
    }
}

/// Tail-loss probe state (RFC 8985 §7).
#[derive(Clone, Debug, Default)]
pub struct Tlp {
    /// SND.MAX when the probe was sent (TLP.end_seq); one probe per episode.
    pub end_seq: Option<u32>,
    /// The probe was a retransmission (TLP.is_retrans).
    pub is_retrans: bool,
}

/// §7.2: the probe timeout for a flight of `segs_in_flight` segments.
pub fn pto(srtt: Option<Duration>, segs_in_flight: usize) -> Duration {
    let Some(s) = srtt else { return Duration::from_secs(1) };
    let mut p = 2 * s;
    if segs_in_flight <= 1 {
        p += WC_DEL_ACK;
    }
    p.max(MIN_PTO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn loss_after_rtt_plus_reordering_window() {
        let t0 = Instant::now();
        let mut r = Rack::default();
        // Segment B (sent at 1 ms) delivered at 11 ms: RACK.rtt = 10 ms.
        r.update(t0 + ms(11), t0 + ms(1), 200, false, None);
        assert_eq!(r.rtt, ms(10));
        // Segment A sent at 0 ms, undelivered. No reordering seen, in recovery: window 0.
        let w = r.reo_wnd(true, false, Some(ms(10)));
        assert_eq!(w, Duration::ZERO);
        assert_eq!(r.remaining(t0 + ms(11), t0, 100, false, w), Some(None), "lost now");
        assert_eq!(r.remaining(t0 + ms(5), t0, 100, false, w), Some(Some(ms(5))), "lost in 5 ms");
        // Sent after RACK's segment: not judged.
        assert_eq!(r.remaining(t0 + ms(11), t0 + ms(2), 300, false, w), None);
        // A retransmission in the same batch as RACK's segment is not older than it.
        assert_eq!(r.remaining(t0 + ms(11), t0 + ms(1), 100, true, w), None);
        // Reordering seen: min_rtt / 4, growing with D-SACK rounds, capped at SRTT.
        r.reordering_seen = true;
        assert_eq!(r.reo_wnd(true, true, Some(ms(10))), Duration::from_micros(2500));
        r.on_dsack(0, 1000);
        r.on_dsack(10, 1000);
        assert_eq!(r.reo_wnd_mult, 1, "one increase per round");
        r.on_dsack(1000, 2000);
        assert_eq!(r.reo_wnd(true, true, Some(ms(10))), Duration::from_micros(5000));
        for _ in 0..REO_WND_PERSIST {
            r.on_recovery_exit();
        }
        assert_eq!(r.reo_wnd_mult, 1);
    }

    #[test]
    fn retransmitted_sample_below_min_rtt_ignored() {
        let t0 = Instant::now();
        let mut r = Rack::default();
        r.update(t0 + ms(10), t0, 100, false, None);
        // A retransmission acknowledged 1 ms after it was sent: the ACK was for the original.
        r.update(t0 + ms(21), t0 + ms(20), 200, true, None);
        assert_eq!(r.xmit, Some((t0, 100)));
        r.update(t0 + ms(40), t0 + ms(20), 200, true, Some(false));
        assert_eq!(r.xmit, Some((t0, 100)), "the echo is older than the retransmission");
        r.update(t0 + ms(21), t0 + ms(20), 200, true, Some(true));
        assert_eq!(r.xmit, Some((t0 + ms(20), 200)));
    }

    #[test]
    fn pto_values() {
        assert_eq!(pto(None, 3), Duration::from_secs(1));
        assert_eq!(pto(Some(ms(50)), 3), ms(100));
        assert_eq!(pto(Some(ms(50)), 1), ms(300));
        assert_eq!(pto(Some(Duration::from_micros(100)), 5), MIN_PTO);
    }
}
