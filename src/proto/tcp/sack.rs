//! SACK (RFC 2018): the sender's scoreboard of blocks the peer reported, and the
//! receiver's choice of blocks to report.
//!
//! Scoreboard invariants: blocks are sorted, disjoint, lie inside `[SND.UNA, SND.MAX]`,
//! and there are at most [`MAX_BLOCKS`]. SACKed data is *not* freed: it is kept until
//! cumulatively acknowledged (RFC 2018 §8, the receiver may renege).

use super::seq;

/// Bound on the scoreboard size.
pub const MAX_BLOCKS: usize = 32;

#[derive(Debug, Default, Clone)]
pub struct Scoreboard {
    blocks: Vec<(u32, u32)>,
}

impl Scoreboard {
    pub fn clear(&mut self) {
        self.blocks.clear();
    }
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Drop everything below `snd_una` and add the valid blocks of an incoming ACK.
    /// Blocks outside `[snd_una, snd_max]` (or D-SACKs below SND.UNA) are ignored.
    /// Returns true when something new was SACKed.
    pub fn update(&mut self, snd_una: u32, snd_max: u32, blocks: &[Option<(u32, u32)>; 4]) -> bool {
        self.blocks.retain_mut(|b| {
            if seq::le(b.1, snd_una) {
                return false;
            }
            if seq::lt(b.0, snd_una) {
                b.0 = snd_una;
            }
            true
        });
        let mut new = false;
        for &(l, r) in blocks.iter().flatten() {
            if !(seq::le(snd_una, l) && seq::lt(l, r) && seq::le(r, snd_max)) {
                continue;
            }
            new |= self.insert(l, r);
        }
        new
    }

    fn insert(&mut self, l: u32, r: u32) -> bool {
        // Already covered?
        if self.blocks.iter().any(|&(a, b)| seq::le(a, l) && seq::le(r, b)) {
            return false;
        }
        let mut nl = l;
        let mut nr = r;
        self.blocks.retain(|&(a, b)| {
            if seq::le(a, nr) && seq::le(nl, b) {
                nl = seq::min(nl, a);
                nr = seq::max(nr, b);
                false
            } else {
                true
            }
        });
        let pos = self.blocks.iter().position(|&(a, _)| seq::gt(a, nl)).unwrap_or(self.blocks.len());
        self.blocks.insert(pos, (nl, nr));
        if self.blocks.len() > MAX_BLOCKS {
            // Forget the highest block: it is only an optimisation.
            self.blocks.pop();
        }
        true
    }

    /// Highest SACKed sequence number (right edge of the last block).
    pub fn highest(&self) -> Option<u32> {
        self.blocks.last().map(|b| b.1)
    }

    /// If `x` is SACKed, the right edge of its block.
    pub fn sacked_end(&self, x: u32) -> Option<u32> {
        self.blocks.iter().find(|&&(a, b)| seq::in_range(x, a, b)).map(|b| b.1)
    }

    /// The first un-SACKed range at or after `from` that lies below the highest SACKed
    /// byte (i.e. a hole the peer has reported around).
    pub fn next_hole(&self, from: u32) -> Option<(u32, u32)> {
        let mut cur = from;
        for &(a, b) in &self.blocks {
            if seq::le(b, cur) {
                continue;
            }
            if seq::lt(cur, a) {
                return Some((cur, a));
            }
            cur = b;
        }
        None
    }

    /// Total SACKed bytes.
    pub fn sacked_bytes(&self) -> usize {
        self.blocks.iter().map(|&(a, b)| b.wrapping_sub(a) as usize).sum()
    }
}

/// Receiver side: remembers the sequence numbers of the most recent out-of-order
/// segments so the first reported block is the most recent one and the following ones
/// repeat the most recently reported (RFC 2018 §4).
#[derive(Debug, Default, Clone)]
pub struct RecentBlocks {
    recent: [Option<u32>; 4],
}

impl RecentBlocks {
    pub fn clear(&mut self) {
        self.recent = [None; 4];
    }
    /// An out-of-order segment starting at `x` was received.
    pub fn note(&mut self, x: u32) {
        self.recent.rotate_right(1);
        self.recent[0] = Some(x);
    }
    /// Build up to `max` blocks: `range_of(seq)` maps a remembered seq to its current range.
    pub fn blocks(
        &self,
        max: usize,
        range_of: impl Fn(u32) -> Option<(u32, u32)>,
        mut others: impl Iterator<Item = (u32, u32)>,
    ) -> [Option<(u32, u32)>; 4] {
        let mut out = [None; 4];
        let mut n = 0;
        let max = max.min(4);
        for x in self.recent.iter().flatten() {
            if n >= max {
                break;
            }
            if let Some(r) = range_of(*x) {
                if !out[..n].contains(&Some(r)) {
                    out[n] = Some(r);
                    n += 1;
                }
            }
        }
        while n < max {
            match others.next() {
                Some(r) if !out[..n].contains(&Some(r)) => {
                    out[n] = Some(r);
                    n += 1;
                }
                Some(_) => {}
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoreboard_merge_prune_and_holes() {
        let mut s = Scoreboard::default();
        let una = 1000;
        let max = 10_000;
        assert!(s.update(una, max, &[Some((3000, 4000)), Some((5000, 6000)), None, None]));
        assert_eq!(s.next_hole(una), Some((1000, 3000)));
        assert_eq!(s.next_hole(3500), Some((4000, 5000)));
        assert_eq!(s.next_hole(6000), None);
        assert_eq!(s.sacked_end(3500), Some(4000));
        // Merge overlapping/adjacent.
        assert!(s.update(una, max, &[Some((4000, 5000)), None, None, None]));
        assert_eq!(s.next_hole(3000), None);
        assert_eq!(s.sacked_bytes(), 3000);
        // Repeat is not new.
        assert!(!s.update(una, max, &[Some((3000, 6000)), None, None, None]));
        // Blocks outside [SND.UNA, SND.MAX] are ignored (RFC 2018, D-SACK below una).
        assert!(!s.update(una, max, &[Some((500, 900)), Some((9000, 11_000)), Some((7, 3)), None]));
        // Cumulative ACK prunes.
        s.update(3500, max, &[None; 4]);
        assert_eq!(s.sacked_bytes(), 2500);
        s.update(7000, max, &[None; 4]);
        assert!(s.is_empty());
    }

    #[test]
    fn scoreboard_bounded() {
        let mut s = Scoreboard::default();
        for i in 0..100u32 {
            s.update(0, 100_000, &[Some((i * 100 + 10, i * 100 + 20)), None, None, None]);
        }
        assert!(s.blocks.len() <= MAX_BLOCKS);
    }

    #[test]
    fn recent_blocks_order() {
        let ranges = [(10u32, 20u32), (30, 40), (50, 60), (70, 80), (90, 95)];
        let range_of = |x: u32| ranges.iter().copied().find(|&(a, b)| a <= x && x < b);
        let mut r = RecentBlocks::default();
        r.note(30);
        r.note(55);
        r.note(31);
        let b = r.blocks(3, range_of, ranges.iter().copied());
        assert_eq!(b, [Some((30, 40)), Some((50, 60)), Some((10, 20)), None]);
    }
}
