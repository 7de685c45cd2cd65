//! Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4).
//!
//! All comparisons are "serial number" comparisons: `a < b` iff `(a - b) as i32 < 0`.
//! They are meaningful only for numbers less than 2^31 apart, which every window and
//! queue in this stack guarantees (windows are capped at 2^30 by RFC 7323 §2.3).

#[inline]
pub fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
#[inline]
pub fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}
#[inline]
pub fn gt(a: u32, b: u32) -> bool {
    lt(b, a)
}
#[inline]
pub fn ge(a: u32, b: u32) -> bool {
    le(b, a)
}
#[inline]
pub fn max(a: u32, b: u32) -> u32 {
    if gt(a, b) {
        a
    } else {
        b
    }
}
#[inline]
pub fn min(a: u32, b: u32) -> u32 {
    if lt(a, b) {
        a
    } else {
        b
    }
}
/// `lo <= x < hi` in sequence space.
#[inline]
pub fn in_range(x: u32, lo: u32, hi: u32) -> bool {
    le(lo, x) && lt(x, hi)
}
/// Distance `b - a` as usize, 0 if `b` is before `a`.
#[inline]
pub fn dist(a: u32, b: u32) -> usize {
    if lt(b, a) {
        0
    } else {
        b.wrapping_sub(a) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn wraparound() {
        assert!(lt(u32::MAX, 0));
        assert!(gt(5, u32::MAX - 5));
        assert!(le(7, 7) && ge(7, 7));
        assert_eq!(max(u32::MAX, 3), 3);
        assert_eq!(min(u32::MAX, 3), u32::MAX);
        assert!(in_range(1, u32::MAX, 4));
        assert!(!in_range(4, u32::MAX, 4));
        assert_eq!(dist(u32::MAX - 1, 2), 4);
        assert_eq!(dist(2, u32::MAX), 0);
    }
}
