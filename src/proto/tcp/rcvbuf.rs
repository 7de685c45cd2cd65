//! Receive-buffer auto-tuning ("dynamic right-sizing", Linux's `tcp_rcv_space_adjust`).
//!
//! A connection starts with `TcpConfig::recv_buf` and may grow it up to
//! `TcpConfig::recv_buf_max`, but only while the application keeps up: once per receiver
//! round-trip time, the bytes the application consumed (credited back) in that time are
//! measured, and when they beat the best round so far the buffer becomes
//! `2 × consumed + 16 × MSS` (plus the growth again, as Linux, so a sender in slow start
//! is not held back), with room for the queue's per-chunk charge. A window that passes what
//! the application drains in an RTT is what the transfer needs in flight (the
//! bandwidth-delay product) and no more.
//!
//! The receiver's RTT is measured as Linux's `tcp_rcv_rtt_measure` does without
//! timestamps: the time the peer takes to send one advertised window's worth past a mark
//! (RCV.NXT passes the mark plus the window last advertised), the minimum over the
//! connection. When the window limits the sender that is one round trip, queueing
//! included; otherwise it is longer, which only makes a round count more bytes.
//!
//! Invariants:
//! * the buffer never shrinks and never passes `max`: what a connection holds stays below
//!   about twice the buffer (`rcvqueue`, and the out-of-order queue, bounded by the buffer
//!   as it is and by `max_ooo_bytes`);
//! * it grows only on bytes the application consumed: a peer cannot grow it against an
//!   application that does not read, which keeps the initial buffer's bound;
//! * pure: time comes from the caller.

use super::seq;
use std::time::{Duration, Instant};

/// Segments of slack Linux adds to twice the bytes consumed per round (`16 * advmss`).
const SLACK_SEGMENTS: usize = 16;

/// Auto-tuning state of one connection's receive buffer.
#[derive(Debug)]
pub struct RcvSpace {
    /// Ceiling (`TcpConfig::recv_buf_max`, at least the initial buffer).
    max: usize,
    /// Receiver RTT: the shortest window fill seen.
    rtt: Option<Duration>,
    /// Mark of the RTT measurement in progress: (right edge of the window then, time).
    mark: Option<(u32, Instant)>,
    /// Start of the current round and the bytes consumed since.
    round_start: Option<Instant>,
    consumed: usize,
    /// Most bytes consumed in one round so far.
    space: usize,
}

impl RcvSpace {
    /// A buffer of `initial` bytes that may grow to `max`; `mss` sets the first round's
    /// baseline (10 segments, as Linux's `rcvq_space`).
    pub fn new(initial: usize, max: usize, mss: usize) -> Self {
        RcvSpace { max: max.max(initial), rtt: None, mark: None, round_start: None, consumed: 0, space: 10 * mss }
    }

    /// The receiver's RTT estimate, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// In-order data moved RCV.NXT to `rcv_nxt`; `rcv_wnd` is the window last advertised
    /// (its size, not what is left of it).
    pub fn on_data(&mut self, now: Instant, rcv_nxt: u32, rcv_wnd: usize) {
        if let Some((edge, at)) = self.mark {
            if seq::lt(rcv_nxt, edge) {
                return;
            }
            let sample = now.saturating_duration_since(at).max(Duration::from_micros(1));
            self.rtt = Some(self.rtt.map_or(sample, |r| r.min(sample)));
        }
        self.mark = Some((rcv_nxt.wrapping_add(rcv_wnd as u32), now));
    }

    /// The application consumed `n` bytes; `buf` is the current buffer and `mss` the
    /// segment size we receive. Returns the grown buffer when a round ends with more
    /// consumed than any round before.
    pub fn on_consumed(&mut self, now: Instant, n: usize, buf: usize, mss: usize) -> Option<usize> {
        if buf >= self.max {
            return None;
        }
        let start = *self.round_start.get_or_insert(now);
        self.consumed = self.consumed.saturating_add(n);
        let rtt = self.rtt?;
        if now.saturating_duration_since(start) < rtt {
            return None;
        }
        let copied = std::mem::take(&mut self.consumed);
        self.round_start = Some(now);
        if copied <= self.space {
            return None;
        }
        // Linux: rcvwin = 2 * copied + 16 * advmss, and the growth of this round again (in
        // 128 bits here, saturating: a round of gigabytes must not wrap, nor on 32 bits).
        let win = 2 * copied as u128 + (SLACK_SEGMENTS * mss) as u128;
        let grow = (2 * win).saturating_mul((copied - self.space) as u128) / self.space.max(1) as u128;
        let win = usize::try_from(win + grow).unwrap_or(usize::MAX);
        self.space = copied;
        // The queue is charged a little over the payload (each chunk's event, `rcvqueue`).
        let want = win.saturating_add(win / 8).min(self.max);
        (want > buf).then_some(want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Window fills measure the RTT (their minimum); a reader that drains more each round
    /// grows the buffer (at least twice what a round drained), never past the ceiling.
    #[test]
    fn grows_with_what_is_consumed_per_round_up_to_max() {
        let t0 = Instant::now();
        let mut s = RcvSpace::new(64 << 10, 64 << 20, 1000);
        s.on_data(t0, 0, 64 << 10);
        assert_eq!(s.rtt(), None);
        assert_eq!(s.on_consumed(t0, 64 << 10, 64 << 10, 1000), None, "no RTT yet");
        s.on_data(t0 + us(500), 32 << 10, 64 << 10);
        assert_eq!(s.rtt(), None, "the window is not filled yet");
        s.on_data(t0 + us(900), 64 << 10, 64 << 10);
        assert_eq!(s.rtt(), Some(us(900)));
        s.on_data(t0 + us(1300), 128 << 10, 64 << 10);
        assert_eq!(s.rtt(), Some(us(400)), "the minimum fill");
        // The round (1,300 µs ≥ 400 µs) consumed 192 KiB.
        let grown = s.on_consumed(t0 + us(1300), 128 << 10, 64 << 10, 1000).expect("grows");
        assert_eq!(s.on_consumed(t0 + us(1400), 50 << 10, grown, 1000), None, "a round is not over");
        assert!((2 * (192 << 10)..64 << 20).contains(&grown), "{grown}");
        // The round ends having consumed no more than the best one: no growth.
        assert_eq!(s.on_consumed(t0 + us(1800), 0, grown, 1000), None);
        assert_eq!(s.on_consumed(t0 + us(2200), 100 << 10, grown, 1000), None);
        // Far more: grows again, at least twice the round.
        let again = s.on_consumed(t0 + us(2600), 8 << 20, grown, 1000).expect("grows");
        assert!(again >= 16 << 20 && again > grown, "{again}");
        let capped = s.on_consumed(t0 + us(3000), 60 << 20, again, 1000).unwrap_or(again);
        assert_eq!(capped, 64 << 20, "capped at the ceiling");
        assert_eq!(s.on_consumed(t0 + us(3300), 90 << 20, 64 << 20, 1000), None, "at the ceiling");
    }

    /// An application that does not read never grows the buffer, however fast data comes.
    #[test]
    fn no_growth_without_consumption() {
        let t0 = Instant::now();
        let mut s = RcvSpace::new(64 << 10, 4 << 20, 1448);
        for i in 0..1000u32 {
            s.on_data(t0 + us(10 * u64::from(i)), i.wrapping_mul(65536), 64 << 10);
            assert_eq!(s.on_consumed(t0 + us(10 * u64::from(i)), 0, 64 << 10, 1448), None);
        }
        assert!(s.rtt().is_some());
    }

    /// A ceiling below the initial buffer turns tuning off; sequence numbers wrap.
    #[test]
    fn max_below_initial_is_off_and_marks_wrap() {
        let t0 = Instant::now();
        let mut s = RcvSpace::new(1 << 20, 0, 1448);
        s.on_data(t0, u32::MAX - 100, 1000);
        s.on_data(t0 + us(5), 500, 1000);
        assert_eq!(s.rtt(), None, "edge u32::MAX + 900 not reached at 500");
        s.on_data(t0 + us(7), 900, 1000);
        assert_eq!(s.rtt(), Some(us(7)));
        assert_eq!(s.on_consumed(t0 + us(100), 1 << 30, 1 << 20, 1448), None);
    }

    /// With no practical ceiling (`recv_buf_max = usize::MAX`, a 1 GiB window at shift 14)
    /// a round may consume gigabytes: a larger round never grows the buffer less (Linux
    /// computes the growth in 64 bits; `2 * win * (copied - space)` must not wrap, nor
    /// panic with overflow checks on).
    #[test]
    fn growth_of_huge_rounds_does_not_wrap() {
        let t0 = Instant::now();
        let grown = |copied: usize| {
            let mut s = RcvSpace::new(1 << 20, usize::MAX, 1460);
            s.on_data(t0, 0, 1 << 30);
            s.on_data(t0 + us(100_000), 1 << 30, 1 << 30);
            s.on_consumed(t0 + us(100_000), 0, 1 << 20, 1460);
            s.on_consumed(t0 + us(200_000), copied, 1 << 20, 1460).expect("grows")
        };
        let mut last = 0;
        for gib in 1..=8usize {
            let g = grown(gib << 30);
            assert!(g >= last && g >= 2 * (gib << 30), "{gib} GiB consumed: {g} after {last}");
            last = g;
        }
        assert_eq!(grown(usize::MAX), usize::MAX, "saturates at the ceiling");
    }
}
