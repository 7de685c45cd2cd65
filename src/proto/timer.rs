//! A hashed timer wheel (Varghese & Lauck), pure: fed `now`, it returns what fired.
//!
//! Keys are scheduled at an `Instant`; a key may be scheduled many times (re-arming is lazy:
//! the owner checks a firing against its current deadline, so cancel is free). Invariants:
//! an entry fires at the first `advance` whose `now >= at` (never early); each entry fires
//! once; `len()` counts pending entries.

use std::time::{Duration, Instant};

pub struct TimerWheel {
    slots: Vec<Vec<(u64, Instant)>>,
    tick: Duration,
    origin: Instant,
    /// Ticks processed so far: every slot for ticks `< cur` has been visited.
    cur: u64,
    len: usize,
}

impl TimerWheel {
    /// `slots` buckets of `tick` each: one rotation spans `slots × tick`; later entries wait
    /// in their bucket for further rotations.
    pub fn new(origin: Instant, tick: Duration, slots: usize) -> TimerWheel {
        TimerWheel { slots: vec![Vec::new(); slots.max(1)], tick, origin, cur: 0, len: 0 }
    }

    fn tick_of(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.origin).as_nanos() / self.tick.as_nanos().max(1)) as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn schedule(&mut self, key: u64, at: Instant) {
        // An entry in the past goes to the current slot and fires on the next advance.
        let t = self.tick_of(at).max(self.cur);
        let n = self.slots.len() as u64;
        self.slots[(t % n) as usize].push((key, at));
        self.len += 1;
    }

    /// Fire everything due at `now` into `fired`.
    pub fn advance(&mut self, now: Instant, fired: &mut Vec<(u64, Instant)>) {
        let target = self.tick_of(now);
        let n = self.slots.len() as u64;
        // Visit each slot at most once per call: a gap of more than one rotation visits all.
        let last = target.min(self.cur + n - 1);
        let mut t = self.cur;
        while t <= last {
            let slot = &mut self.slots[(t % n) as usize];
            let before = slot.len();
            let mut i = 0;
            while i < slot.len() {
                if slot[i].1 <= now {
                    fired.push(slot.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            self.len -= before - slot.len();
            t += 1;
        }
        self.cur = target;
    }

    /// The earliest pending deadline (exact; scans the slots, which is cheap next to a sleep).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        self.slots.iter().flat_map(|s| s.iter().map(|e| e.1)).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_on_time_never_early_and_once() {
        let o = Instant::now();
        let ms = Duration::from_millis;
        let mut w = TimerWheel::new(o, ms(1), 16);
        w.schedule(1, o + ms(5));
        w.schedule(2, o + ms(40)); // beyond one rotation
        w.schedule(3, o + ms(5));
        let mut f = Vec::new();
        w.advance(o + ms(4), &mut f);
        assert!(f.is_empty());
        assert_eq!(w.next_deadline(), Some(o + ms(5)));
        w.advance(o + ms(5), &mut f);
        let mut keys: Vec<_> = f.iter().map(|e| e.0).collect();
        keys.sort();
        assert_eq!(keys, vec![1, 3]);
        f.clear();
        w.advance(o + ms(24), &mut f); // slot 8 visited again, entry 2 not yet due
        assert!(f.is_empty());
        w.advance(o + ms(100), &mut f);
        assert_eq!(f, vec![(2, o + ms(40))]);
        assert!(w.is_empty());
        w.schedule(4, o); // in the past
        f.clear();
        w.advance(o + ms(100), &mut f);
        assert_eq!(f.len(), 1);
    }
}
