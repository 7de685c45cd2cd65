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
    /// Send time, transmission number and end of the most recently sent delivered segment
    /// (RACK.xmit_ts, RACK.end_seq; the number orders segments sent at one instant).
    pub xmit: Option<(Instant, u64, u32)>,
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
    /// §6.2 step 2: a delivered segment sent at `xmit` (transmission number `tx`) ending at
    /// `end`. For a retransmitted segment the ACK may be for an earlier transmission: as
    /// Linux's `tcp_rack_advance`, it counts only if its RTT is at least min_rtt (echoed
    /// timestamps cannot tell: a receiver echoes the last in-order segment's TSval).
    pub fn update(&mut self, now: Instant, xmit: Instant, tx: u64, end: u32, retransmitted: bool) {
        let rtt = now.saturating_duration_since(xmit);
        if retransmitted && self.min_rtt.is_none_or(|m| rtt < m) {
            return;
        }
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        if self.xmit.is_none_or(|(t, n, _)| (xmit, tx) > (t, n)) {
            self.xmit = Some((xmit, tx, end));
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

    /// §6.2 step 5: time left before a segment sent at `xmit` (transmission number `tx`)
    /// counts as lost (`None`: lost now). Only segments sent before RACK's segment count.
    pub fn remaining(&self, now: Instant, xmit: Instant, tx: u64, reo_wnd: Duration) -> Option<Option<Duration>> {
        let (rx, rtx, _) = self.xmit?;
        if (xmit, tx) >= (rx, rtx) {
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
        r.update(t0 + ms(11), t0 + ms(1), 2, 200, false);
        assert_eq!(r.rtt, ms(10));
        // Segment A sent at 0 ms, undelivered. No reordering seen, in recovery: window 0.
        let w = r.reo_wnd(true, false, Some(ms(10)));
        assert_eq!(w, Duration::ZERO);
        assert_eq!(r.remaining(t0 + ms(11), t0, 1, w), Some(None), "lost now");
        assert_eq!(r.remaining(t0 + ms(5), t0, 1, w), Some(Some(ms(5))), "lost in 5 ms");
        // Sent after RACK's segment: not judged.
        assert_eq!(r.remaining(t0 + ms(11), t0 + ms(2), 3, w), None);
        // Sent at the same instant as RACK's segment: the transmission order decides.
        assert_eq!(r.remaining(t0 + ms(11), t0 + ms(1), 1, w), Some(None));
        assert_eq!(r.remaining(t0 + ms(11), t0 + ms(1), 3, w), None);
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
        r.update(t0 + ms(10), t0, 1, 100, false);
        // A retransmission acknowledged 1 ms after it was sent: the ACK was for the original.
        r.update(t0 + ms(21), t0 + ms(20), 2, 200, true);
        assert_eq!(r.xmit, Some((t0, 1, 100)));
        r.update(t0 + ms(40), t0 + ms(20), 2, 200, true);
        assert_eq!(r.xmit, Some((t0 + ms(20), 2, 200)), "an RTT of min_rtt or more counts");
    }

    #[test]
    fn pto_values() {
        assert_eq!(pto(None, 3), Duration::from_secs(1));
        assert_eq!(pto(Some(ms(50)), 3), ms(100));
        assert_eq!(pto(Some(ms(50)), 1), ms(300));
        assert_eq!(pto(Some(Duration::from_micros(100)), 5), MIN_PTO);
    }
}
