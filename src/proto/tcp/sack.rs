//! SACK (RFC 2018), receiver side: the choice of blocks to report. The sender's
//! scoreboard lives on the retransmission queue ([`super::rtx`]).

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
