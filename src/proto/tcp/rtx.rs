//! The retransmission queue: one record per segment sent and not yet cumulatively
//! acknowledged, with the SACK scoreboard (RFC 6675 §3) kept on the records.
//!
//! Each record is a range `[start, end)` of sequence space, when it was last sent, and
//! flags: SACKed, lost (RFC 6675 `IsLost` or RACK, RFC 8985 §6.2), retransmitted and that
//! retransmission still believed in flight, and "ever retransmitted" (for Karn's rule and
//! RACK's RTT filter). Byte counters make RFC 6675's `pipe` O(1):
//! `pipe = (SND.MAX - SND.UNA) - sacked - lost + retrans`, the same sum Linux keeps as
//! `packets_out - sacked_out - lost_out + retrans_out`, in bytes.
//!
//! Invariants:
//! * records are sorted, disjoint and contiguous: they cover exactly `[SND.UNA, SND.MAX)`
//!   (the SYN is never a record; a FIN is the last byte of the last record);
//! * `SACKED` excludes `LOST` and `RETRANS` (a SACKed byte is delivered);
//! * `sacked`, `lost` and `retrans` equal the sums over the records of their flags
//!   (checked by `RtxQueue::check` in tests);
//! * the record count is bounded: a SACK block splits a record only at whole multiples of
//!   the MSS from its start (as Linux's `tcp_match_skb_to_sack`; the part of a block that
//!   covers less than an MSS of a record is ignored), so records are about an MSS long and
//!   a hostile peer cannot shred the queue with tiny blocks; [`MAX_RECORDS`] caps it too;
//! * `lost_from` is at or below the start of every record that is lost and not yet
//!   retransmitted, so [`RtxQueue::next_lost`] need not scan from the head.

use super::rate::SendStamp;
use super::seq;
use std::collections::VecDeque;
use std::time::Instant;

/// Bound on records; beyond it SACK blocks that cut a record are applied only to the
/// records they cover entirely.
pub const MAX_RECORDS: usize = 16 * 1024;

pub const SACKED: u8 = 1;
pub const LOST: u8 = 2;
/// Retransmitted, and that retransmission is still counted in flight.
pub const RETRANS: u8 = 4;
pub const EVER_RETRANS: u8 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub start: u32,
    pub end: u32,
    /// When this range was last (re)transmitted, and its place in the connection's
    /// transmission order (ties between segments sent in one batch, at one instant).
    pub xmit: Instant,
    pub tx: u64,
    pub flags: u8,
    /// Delivery counters when it was last sent (rate sampling).
    pub stamp: SendStamp,
}

impl Record {
    pub fn len(&self) -> usize {
        self.end.wrapping_sub(self.start) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// What one cumulative ACK or SACK block delivered.
#[derive(Clone, Copy, Debug, Default)]
pub struct Delivered {
    /// Bytes newly acknowledged or SACKed (RFC 6937 `DeliveredData`).
    pub bytes: usize,
    /// The most recently sent delivered record: `(xmit, tx, end, ever_retransmitted)`
    /// (RFC 8985 §6.2 step 2).
    pub newest: Option<(Instant, u64, u32, bool)>,
    /// A never-retransmitted record was delivered below the highest delivered sequence
    /// number: reordering (RFC 8985 §6.2 step 3).
    pub reordered: bool,
    /// Stamp, send time and "ever retransmitted" of the delivered record sent last in
    /// delivery order (the newest `stamp.delivered`), for the rate sample.
    pub rate_newest: Option<(SendStamp, Instant, bool)>,
    /// Transmission number of `rate_newest` (orders segments sent at one instant).
    rate_tx: u64,
    /// The highest SACKed sequence number before this ACK (RACK.fack).
    prior_fack: Option<u32>,
}

impl Delivered {
    /// Start accounting one ACK against `q` as it stands before the ACK.
    pub fn new(q: &RtxQueue) -> Self {
        Delivered { prior_fack: q.fack, ..Default::default() }
    }

    fn note(&mut self, r: &Record) {
        self.bytes += r.len();
        if self.newest.is_none_or(|(t, tx, _, _)| (r.xmit, r.tx) > (t, tx)) {
            self.newest = Some((r.xmit, r.tx, r.end, r.has(EVER_RETRANS)));
        }
        let rate_newer =
            self.rate_newest.is_none_or(|(s, t, _)| (r.stamp.delivered, r.xmit, r.tx) > (s.delivered, t, self.rate_tx));
        if rate_newer {
            self.rate_newest = Some((r.stamp, r.xmit, r.has(EVER_RETRANS)));
            self.rate_tx = r.tx;
        }
        if !r.has(EVER_RETRANS) && self.prior_fack.is_some_and(|f| seq::lt(r.end, f)) {
            self.reordered = true;
        }
    }
}

#[derive(Debug, Default)]
pub struct RtxQueue {
    recs: VecDeque<Record>,
    sacked: usize,
    lost: usize,
    retrans: usize,
    /// Highest SACKed sequence number (right edge), RFC 6675 `HighACK`/Linux `fackets`.
    fack: Option<u32>,
    /// No record below this is lost and awaiting retransmission.
    lost_from: u32,
    /// Transmissions so far (the last record's `tx`).
    next_tx: u64,
}

impl RtxQueue {
    /// Bytes allocated for the records.
    pub fn allocated(&self) -> usize {
        self.recs.capacity() * std::mem::size_of::<Record>()
    }

    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }
    pub fn len(&self) -> usize {
        self.recs.len()
    }
    pub fn sacked_bytes(&self) -> usize {
        self.sacked
    }
    pub fn lost_bytes(&self) -> usize {
        self.lost
    }
    /// Right edge of the highest SACKed record, if any.
    pub fn fack(&self) -> Option<u32> {
        self.fack
    }
    /// RFC 6675 §4 `pipe` over `[snd_una, snd_max)` of `flight` bytes.
    pub fn pipe(&self, flight: usize) -> usize {
        (flight + self.retrans).saturating_sub(self.sacked + self.lost)
    }

    /// A new segment `[start, end)` was sent at `now` (appended at SND.MAX).
    pub fn push(&mut self, start: u32, end: u32, now: Instant, stamp: SendStamp) {
        if start == end {
            return;
        }
        if self.recs.is_empty() {
            self.lost_from = start;
        }
        self.next_tx += 1;
        self.recs.push_back(Record { start, end, xmit: now, tx: self.next_tx, flags: 0, stamp });
    }

    fn uncount(&mut self, r: &Record) {
        let n = r.len();
        if r.has(SACKED) {
            self.sacked -= n;
        }
        if r.has(LOST) {
            self.lost -= n;
        }
        if r.has(RETRANS) {
            self.retrans -= n;
        }
    }

    fn count(&mut self, r: &Record) {
        let n = r.len();
        if r.has(SACKED) {
            self.sacked += n;
        }
        if r.has(LOST) {
            self.lost += n;
        }
        if r.has(RETRANS) {
            self.retrans += n;
        }
    }

    /// Replace the flags of record `i`, keeping the counters right.
    fn set_flags(&mut self, i: usize, flags: u8) {
        let r = self.recs[i];
        self.uncount(&r);
        self.recs[i].flags = flags;
        let r = self.recs[i];
        self.count(&r);
    }

    /// Split record `i` at `at` (strictly inside it); both halves keep flags and time.
    fn split(&mut self, i: usize, at: u32) {
        let r = self.recs[i];
        debug_assert!(seq::lt(r.start, at) && seq::lt(at, r.end));
        self.recs[i].end = at;
        self.recs.insert(i + 1, Record { start: at, ..r });
    }

    /// Cumulative ACK up to `ack`: drop (or trim) the records below it.
    pub fn ack(&mut self, ack: u32, d: &mut Delivered) {
        while let Some(&r) = self.recs.front() {
            if seq::le(r.end, ack) {
                self.uncount(&r);
                self.recs.pop_front();
                if !r.has(SACKED) {
                    d.note(&r);
                }
            } else {
                if seq::lt(r.start, ack) {
                    // Partly acknowledged (a probe or a PMTU change cut it): trim.
                    self.uncount(&r);
                    let head = Record { end: ack, ..r };
                    if !r.has(SACKED) {
                        d.note(&head);
                    }
                    self.recs[0].start = ack;
                    let t = self.recs[0];
                    self.count(&t);
                }
                break;
            }
        }
        if self.fack.is_some_and(|f| seq::le(f, ack)) {
            self.fack = None;
        }
        if seq::lt(self.lost_from, ack) {
            self.lost_from = ack;
        }
    }

    /// Apply one SACK block `[l, r)` (already validated inside `[SND.UNA, SND.MAX]`);
    /// records are split only at multiples of `mss` from their start.
    pub fn sack(&mut self, l: u32, r: u32, mss: usize, d: &mut Delivered) {
        let mss = mss.max(1) as u32;
        let mut marked = false;
        // First record that ends after `l`.
        let mut i = self.recs.partition_point(|x| seq::le(x.end, l));
        while i < self.recs.len() {
            let rec = self.recs[i];
            if seq::ge(rec.start, r) {
                break;
            }
            if rec.has(SACKED) {
                i += 1;
                continue;
            }
            let room = self.recs.len() < MAX_RECORDS;
            if seq::lt(rec.start, l) {
                // The block starts inside: split at the next MSS boundary at or after `l`.
                let at = rec.start.wrapping_add(l.wrapping_sub(rec.start).div_ceil(mss) * mss);
                if room && seq::lt(at, rec.end) && seq::lt(at, r) {
                    self.split(i, at);
                }
                i += 1;
                continue;
            }
            if seq::gt(rec.end, r) {
                // The block ends inside: keep only whole MSS of it.
                let at = rec.start.wrapping_add(r.wrapping_sub(rec.start) / mss * mss);
                if !room || at == rec.start {
                    break;
                }
                self.split(i, at);
            }
            let rec = self.recs[i];
            d.note(&rec);
            self.set_flags(i, (rec.flags & !(LOST | RETRANS)) | SACKED);
            marked = true;
            i += 1;
        }
        if marked {
            self.fack = Some(self.fack.map_or(r, |f| seq::max(f, r)));
        }
    }

    /// Mark record `i` lost: it needs a retransmission (a retransmission of it that was
    /// counted in flight is now believed lost as well).
    pub fn mark_lost(&mut self, i: usize) {
        let f = self.recs[i].flags;
        if f & SACKED == 0 && (f & LOST == 0 || f & RETRANS != 0) {
            self.set_flags(i, (f | LOST) & !RETRANS);
            self.lost_from = seq::min(self.lost_from, self.recs[i].start);
        }
    }

    /// Retransmission timeout: every record not SACKed is lost. With `forget_sack`, or when
    /// the first record is SACKed (the receiver reneged: it must resend SND.UNA, RFC 2018
    /// §8), the SACK information is dropped first.
    pub fn mark_all_lost(&mut self, forget_sack: bool) {
        let forget = forget_sack || self.recs.front().is_some_and(|r| r.has(SACKED));
        for i in 0..self.recs.len() {
            let f = self.recs[i].flags;
            let f = if forget { f & !SACKED } else { f };
            if f & SACKED == 0 {
                self.set_flags(i, (f | LOST) & !RETRANS);
            }
        }
        if forget {
            self.fack = None;
        }
        if let Some(r) = self.recs.front() {
            self.lost_from = r.start;
        }
    }

    /// The path MTU shrank: records longer than `mss` must go again in smaller pieces;
    /// the others still fit (Linux `tcp_simple_retransmit`). Returns whether any was marked.
    pub fn mark_lost_longer_than(&mut self, mss: usize) -> bool {
        let mut any = false;
        for i in 0..self.recs.len() {
            if self.recs[i].len() > mss && !self.recs[i].has(SACKED) {
                self.mark_lost(i);
                any = true;
            }
        }
        any
    }

    /// Forget that anything is lost (a spurious retransmission was undone).
    pub fn clear_lost(&mut self) {
        for i in 0..self.recs.len() {
            let f = self.recs[i].flags;
            if f & LOST != 0 {
                self.set_flags(i, f & !LOST);
            }
        }
    }

    /// RFC 6675 `NextSeg()` rule 1 with RACK's marks: the first record that is lost and not
    /// retransmitted since, cut to at most `max_len` bytes. Returns `(index, start, end)`.
    pub fn next_lost(&mut self, max_len: usize) -> Option<(usize, u32, u32)> {
        let from = self.recs.partition_point(|r| seq::le(r.end, self.lost_from));
        let Some(k) = self.recs.range(from..).position(|r| r.flags & (LOST | RETRANS | SACKED) == LOST) else {
            self.lost_from = self.recs.back().map_or(self.lost_from, |r| r.end);
            return None;
        };
        let i = from + k;
        self.lost_from = self.recs[i].start;
        let r = self.recs[i];
        if r.len() > max_len && self.recs.len() < MAX_RECORDS {
            self.split(i, r.start.wrapping_add(max_len as u32));
        }
        let r = self.recs[i];
        Some((i, r.start, r.end))
    }

    /// The last record not SACKed (the tail-loss probe retransmits it, RFC 8985 §7.3).
    pub fn last_unsacked(&self) -> Option<usize> {
        self.recs.iter().rposition(|r| !r.has(SACKED))
    }

    /// Record `i` was retransmitted at `now`.
    pub fn retransmitted(&mut self, i: usize, now: Instant, stamp: SendStamp) {
        let f = self.recs[i].flags;
        self.next_tx += 1;
        self.recs[i].xmit = now;
        self.recs[i].tx = self.next_tx;
        self.recs[i].stamp = stamp;
        self.set_flags(i, f | RETRANS | EVER_RETRANS);
    }

    /// Index and record by position.
    pub fn get(&self, i: usize) -> Option<&Record> {
        self.recs.get(i)
    }

    /// Forget records at or beyond `at` (a zero-window probe is not kept in flight).
    pub fn truncate(&mut self, at: u32) {
        while let Some(&r) = self.recs.back() {
            if seq::lt(r.start, at) {
                break;
            }
            self.uncount(&r);
            self.recs.pop_back();
        }
    }

    /// Recompute the counters and check the invariants (tests).
    #[cfg(test)]
    pub fn check(&self, snd_una: u32, snd_max: u32) {
        let (mut s, mut l, mut r) = (0, 0, 0);
        let mut at = snd_una;
        for rec in &self.recs {
            assert_eq!(rec.start, at, "records contiguous from SND.UNA: {:?}", self.recs);
            assert!(seq::lt(rec.start, rec.end));
            if rec.has(SACKED) {
                assert!(!rec.has(LOST) && !rec.has(RETRANS));
                s += rec.len();
            }
            if rec.has(LOST) {
                l += rec.len();
            }
            if rec.has(RETRANS) {
                r += rec.len();
            }
            at = rec.end;
        }
        if !self.recs.is_empty() {
            assert_eq!(at, snd_max, "records end at SND.MAX");
        }
        assert_eq!((s, l, r), (self.sacked, self.lost, self.retrans));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(t: Instant) -> SendStamp {
        SendStamp { delivered: 0, delivered_time: t, first_sent: t, app_limited: false }
    }

    fn q(n: u32, now: Instant) -> RtxQueue {
        let mut q = RtxQueue::default();
        for k in 0..n {
            q.push(1000 + k * 100, 1100 + k * 100, now, st(now));
        }
        q
    }

    #[test]
    fn sack_marks_splits_and_counts() {
        let t = Instant::now();
        let mut rq = q(10, t);
        let mut d = Delivered::new(&rq);
        rq.sack(1250, 1400, 50, &mut d);
        rq.check(1000, 2000);
        assert_eq!(rq.sacked_bytes(), 150);
        assert_eq!(d.bytes, 150);
        assert_eq!(rq.fack(), Some(1400));
        assert_eq!(rq.pipe(1000), 850);
        // The same block again delivers nothing.
        let mut d2 = Delivered::new(&rq);
        rq.sack(1250, 1400, 50, &mut d2);
        assert_eq!(d2.bytes, 0);
        // Lost + retransmitted: counted once in flight (RFC 6675 pipe).
        rq.mark_lost(0);
        assert_eq!(rq.pipe(1000), 750);
        let (i, s, e) = rq.next_lost(1000).unwrap();
        assert_eq!((i, s, e), (0, 1000, 1100));
        rq.retransmitted(i, t, st(t));
        assert_eq!(rq.pipe(1000), 850);
        assert!(rq.next_lost(1000).is_none(), "a hole is retransmitted once");
        // Its retransmission lost too: needs sending again.
        rq.mark_lost(0);
        assert_eq!(rq.next_lost(1000).map(|x| x.1), Some(1000));
        rq.check(1000, 2000);
        // Cumulative ACK past the SACKed block: only un-SACKed bytes are "delivered".
        let mut d3 = Delivered::new(&rq);
        rq.ack(1400, &mut d3);
        assert_eq!(d3.bytes, 250);
        assert_eq!(rq.fack(), None);
        rq.check(1400, 2000);
        assert_eq!(rq.sacked_bytes() + rq.lost_bytes() + rq.retrans, 0);
    }

    #[test]
    fn partial_ack_trims_and_tlp_retrans_counts_twice() {
        let t = Instant::now();
        let mut rq = q(3, t);
        let mut d = Delivered::new(&rq);
        rq.ack(1050, &mut d);
        assert_eq!(d.bytes, 50);
        rq.check(1050, 1300);
        let i = rq.last_unsacked().unwrap();
        rq.retransmitted(i, t, st(t));
        assert_eq!(rq.pipe(250), 350, "a probe copy of an un-lost segment is extra in flight");
        rq.mark_all_lost(false);
        assert_eq!(rq.pipe(250), 0);
        rq.clear_lost();
        assert_eq!(rq.pipe(250), 250);
        rq.check(1050, 1300);
    }

    #[test]
    fn reordering_and_newest_delivered() {
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(1);
        let mut rq = RtxQueue::default();
        rq.push(0, 100, t0, st(t0));
        rq.push(100, 200, t1, st(t1));
        let mut d = Delivered::new(&rq);
        rq.sack(100, 200, 100, &mut d);
        assert_eq!(d.newest, Some((t1, 2, 200, false)));
        assert!(!d.reordered);
        let mut d = Delivered::new(&rq);
        rq.ack(200, &mut d);
        assert!(d.reordered, "segment 0 delivered after segment 1 was SACKed");
    }

    #[test]
    fn sack_edges_inside_a_record_round_to_whole_mss() {
        let t = Instant::now();
        let mut rq = RtxQueue::default();
        rq.push(0, 3000, t, st(t)); // a 3-MSS record (e.g. after an MSS change)
        let mut d = Delivered::new(&rq);
        rq.sack(1, 2, 1000, &mut d);
        assert_eq!((rq.len(), d.bytes), (1, 0), "a sub-MSS block neither splits nor SACKs");
        rq.sack(500, 2500, 1000, &mut d);
        assert_eq!(d.bytes, 1000, "only the whole MSS [1000, 2000) is SACKed");
        assert_eq!(rq.len(), 3);
        rq.check(0, 3000);
    }

    #[test]
    fn splits_are_bounded() {
        let t = Instant::now();
        let mut rq = RtxQueue::default();
        rq.push(0, 1 << 30, t, st(t));
        for k in 0..(MAX_RECORDS as u32 + 100) {
            let mut d = Delivered::new(&rq);
            rq.sack(k * 4 + 1, k * 4 + 2, 1, &mut d);
        }
        assert!(rq.len() <= MAX_RECORDS + 1, "{}", rq.len());
        rq.check(0, 1 << 30);
    }
}
