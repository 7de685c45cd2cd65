//! Out-of-order reassembly queue (RFC 9293 §3.10.7.4 "segment text").
//!
//! Invariants:
//! * entries are sorted, disjoint and non-adjacent ranges of sequence space, all at or
//!   after `RCV.NXT` and inside the advertised window (the caller trims first);
//! * where data overlaps, the first data received wins (new bytes only fill gaps);
//! * the memory held is charged, not the payload (as Linux's truesize): each entry costs
//!   its allocation (`capacity`) plus [`ENTRY_OVERHEAD`]; the charge never exceeds
//!   `max_bytes` by more than the slack of appending to an entry (which at most doubles
//!   it), and the entry count never exceeds [`MAX_ENTRIES`]; data beyond either bound is
//!   dropped (the caller counts it; the peer retransmits it), never stored by growing;
//! * nothing held is ever dropped to make room (no reneging, RFC 2018 §8): pruning SACKed
//!   data, as Linux's `tcp_prune_ofo_queue` does under memory pressure, makes the sender
//!   wait for a timeout before it resends it; tried here, it stalled a 32 MiB download from
//!   Linux at 10 % loss, so a full queue refuses new data instead (the segment at
//!   `RCV.NXT` is in order and always taken).

use super::seq;
use std::collections::VecDeque;

/// Bound on the number of disjoint ranges kept.
pub const MAX_ENTRIES: usize = 256;

/// Charge per entry beyond its allocation: its `VecDeque` slot (32 bytes) and the
/// allocator's header and rounding.
pub const ENTRY_OVERHEAD: usize = 64;

fn cost(d: &[u8], capacity: usize) -> usize {
    capacity.max(d.len()) + ENTRY_OVERHEAD
}

#[derive(Debug)]
pub struct Reassembly {
    entries: VecDeque<(u32, Vec<u8>)>,
    bytes: usize,
    /// Memory charged: Σ (capacity + ENTRY_OVERHEAD) over the entries.
    charged: usize,
    max_bytes: usize,
}

impl Reassembly {
    pub fn new(max_bytes: usize) -> Self {
        Reassembly { entries: VecDeque::new(), bytes: 0, charged: 0, max_bytes }
    }
    /// A new bound on the memory charged (the receive buffer grew); what is held stays.
    pub fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes;
    }

    /// Memory charged for what is held (allocations + per-entry overhead).
    pub fn charged(&self) -> usize {
        self.charged
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// Give back the entry list's spare capacity.
    pub fn shrink(&mut self) {
        self.entries.shrink_to_fit();
    }
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.charged = 0;
    }

    /// Insert `data` at `seg_seq` (already trimmed so `seg_seq >= rcv_nxt`). With
    /// `bounded == false` (in-order data about to be delivered) the bounds are not
    /// applied. Returns `(stored, refused)`: new bytes stored, and new bytes dropped because
    /// a bound was reached (bytes already held are neither).
    pub fn insert(&mut self, rcv_nxt: u32, seg_seq: u32, data: &[u8], bounded: bool) -> (usize, usize) {
        let off = |s: u32| s.wrapping_sub(rcv_nxt) as usize;
        let start = off(seg_seq);
        let end = start + data.len();

        let mut cur = start;
        let mut stored = 0;
        let mut idx = 0;
        while cur < end {
            // Skip entries that end at or before `cur`.
            while idx < self.entries.len() {
                let (s, d) = &self.entries[idx];
                if off(*s) + d.len() <= cur {
                    idx += 1;
                } else {
                    break;
                }
            }
            let next_start = self.entries.get(idx).map(|(s, _)| off(*s)).unwrap_or(usize::MAX);
            if next_start <= cur {
                // Covered: first data wins.
                let (s, d) = &self.entries[idx];
                cur = off(*s) + d.len();
                continue;
            }
            let mut piece_end = end.min(next_start);
            if bounded {
                let room = self.max_bytes.saturating_sub(self.charged + ENTRY_OVERHEAD);
                piece_end = piece_end.min(cur + room);
                if piece_end <= cur || self.entries.len() >= MAX_ENTRIES {
                    break;
                }
            }
            let piece = data[cur - start..piece_end - start].to_vec();
            self.bytes += piece.len();
            self.charged += cost(&piece, piece.capacity());
            stored += piece.len();
            self.entries.insert(idx, (rcv_nxt.wrapping_add(cur as u32), piece));
            cur = piece_end;
            idx += 1;
        }
        // What was left when a bound stopped the loop, less what is already held.
        let mut refused = 0;
        while cur < end {
            let next = self.entries.iter().map(|(s, d)| (off(*s), off(*s) + d.len())).find(|&(_, e)| e > cur);
            match next {
                Some((s, e)) if s <= cur => cur = e,
                Some((s, _)) => {
                    refused += s.min(end) - cur;
                    cur = s;
                }
                None => {
                    refused += end - cur;
                    cur = end;
                }
            }
        }
        self.coalesce();
        (stored, refused)
    }

    /// Merge adjacent entries when the right one is not larger than the left one (an
    /// amortized append; a small piece is never grown by copying a large one — adjacent
    /// entries are simply popped one after the other).
    fn coalesce(&mut self) {
        let mut i = 0;
        while i + 1 < self.entries.len() {
            let end = self.entries[i].0.wrapping_add(self.entries[i].1.len() as u32);
            if end == self.entries[i + 1].0 && self.entries[i].1.len() >= self.entries[i + 1].1.len() {
                if let Some((_, next)) = self.entries.remove(i + 1) {
                    let left = &mut self.entries[i].1;
                    self.charged -= cost(left, left.capacity()) + cost(&next, next.capacity());
                    left.extend_from_slice(&next);
                    self.charged += cost(left, left.capacity());
                }
            } else {
                i += 1;
            }
        }
    }

    /// Take the in-order data at `rcv_nxt`, if any.
    pub fn pop(&mut self, rcv_nxt: u32) -> Option<Vec<u8>> {
        loop {
            let (s, d) = self.entries.front()?;
            let end = s.wrapping_add(d.len() as u32);
            if seq::le(end, rcv_nxt) {
                // Entirely old (cannot happen with a well-behaved caller): discard.
                let (_, d) = self.entries.pop_front()?;
                self.bytes -= d.len();
                self.charged -= cost(&d, d.capacity());
                continue;
            }
            if seq::gt(*s, rcv_nxt) {
                return None;
            }
            let (s, mut d) = self.entries.pop_front()?;
            self.bytes -= d.len();
            self.charged -= cost(&d, d.capacity());
            let skip = rcv_nxt.wrapping_sub(s) as usize;
            if skip > 0 {
                d.drain(..skip);
            }
            return Some(d);
        }
    }

    /// The stored ranges `(left, right)` in order, adjacent entries merged (maximal
    /// contiguous blocks, as SACK reports them).
    pub fn ranges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let mut it = self.entries.iter().map(|(s, d)| (*s, s.wrapping_add(d.len() as u32))).peekable();
        std::iter::from_fn(move || {
            let (l, mut r) = it.next()?;
            while let Some(&(nl, nr)) = it.peek() {
                if nl != r {
                    break;
                }
                r = nr;
                it.next();
            }
            Some((l, r))
        })
    }

    /// The stored range containing `seq`, if any.
    pub fn range_containing(&self, x: u32) -> Option<(u32, u32)> {
        self.ranges().find(|&(l, r)| seq::in_range(x, l, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_gaps_first_data_wins() {
        let base = u32::MAX - 3; // exercise wraparound
        let mut r = Reassembly::new(1000);
        assert_eq!(r.insert(base, base.wrapping_add(4), b"EFGH", true), (4, 0));
        assert_eq!(r.insert(base, base.wrapping_add(10), b"KL", true), (2, 0));
        // Overlapping: only the gap bytes are new; old bytes win.
        // [6,14) over [4,8) and [10,12): only [8,10) and [12,14) are new.
        assert_eq!(r.insert(base, base.wrapping_add(6), b"xxxxxxxx", true), (4, 0));
        assert_eq!(r.ranges().count(), 1);
        assert_eq!(r.pop(base), None);
        assert_eq!(r.insert(base, base, b"ABCD", false), (4, 0));
        assert_eq!(r.ranges().count(), 1, "adjacent entries form one range");
        let mut d = r.pop(base).unwrap();
        assert_eq!(&d, b"ABCD", "a small piece is not merged into a larger one");
        d.extend(r.pop(base.wrapping_add(4)).unwrap());
        assert_eq!(&d, b"ABCDEFGHxxKLxx");
        assert!(r.is_empty());
        assert_eq!((r.bytes(), r.charged()), (0, 0));
    }

    #[test]
    fn bounded_in_bytes_and_entries() {
        let mut r = Reassembly::new(10 + ENTRY_OVERHEAD);
        assert_eq!(r.insert(0, 5, b"0123456789ABCDEF", true), (10, 6));
        assert_eq!(r.insert(0, 100, b"zz", true), (0, 2));
        assert_eq!(r.insert(0, 7, b"23456789AB", true), (0, 2), "held bytes are not refused");
        assert_eq!((r.bytes(), r.charged()), (10, 10 + ENTRY_OVERHEAD));
        // Unbounded insert for in-order data still works.
        assert_eq!(r.insert(0, 0, b"abcde", false), (5, 0));
        assert_eq!(r.pop(0).unwrap(), b"abcde");
        assert_eq!(r.pop(5).unwrap(), b"0123456789");
        assert_eq!(r.charged(), 0);
        let mut r = Reassembly::new(1 << 20);
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            r.insert(0, 10 + i * 2, b"x", true);
        }
        assert_eq!(r.ranges().count(), MAX_ENTRIES);
    }

    /// Tiny out-of-order segments are charged what they hold, not their payload: a budget
    /// of 64 KiB keeps at most 64 KiB / (1 + ENTRY_OVERHEAD) one-byte islands.
    #[test]
    fn tiny_segments_are_charged_their_overhead() {
        let budget = 64 * 1024;
        let mut r = Reassembly::new(budget);
        let mut refused = 0;
        for i in 0..MAX_ENTRIES as u32 {
            refused += r.insert(0, 1 + i * 2, b"x", true).1;
        }
        assert!(r.charged() <= budget);
        assert_eq!(r.ranges().count(), MAX_ENTRIES, "{} charged", r.charged());
        let mut r = Reassembly::new(4096);
        for i in 0..MAX_ENTRIES as u32 {
            refused += r.insert(0, 1 + i * 2, b"x", true).1;
        }
        let kept = r.ranges().count();
        assert_eq!(kept, 4096 / (1 + ENTRY_OVERHEAD));
        assert_eq!(refused, MAX_ENTRIES - kept);
        assert!(r.charged() <= 4096);
    }

    #[test]
    fn range_lookup() {
        let mut r = Reassembly::new(1000);
        r.insert(0, 10, b"abc", true);
        r.insert(0, 20, b"abc", true);
        assert_eq!(r.range_containing(21), Some((20, 23)));
        assert_eq!(r.range_containing(13), None);
    }
}
