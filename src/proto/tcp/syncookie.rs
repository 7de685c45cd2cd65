//! SYN cookies (RFC 4987 §3.6), laid out as Linux's `net/ipv4/syncookies.c`.
//!
//! When a listener's half-open queue is full, a SYN is answered with a SYN-ACK whose ISN
//! is a cookie and no state is kept. The ACK that completes the handshake acknowledges
//! `cookie + 1`; checking it rebuilds the connection's parameters.
//!
//! ISN layout (all arithmetic modulo 2^32, `h1`/`h2` keyed hashes):
//!
//! ```text
//! cookie = h1(tuple) + peer ISS + (count << 24) + mac
//! mac    = (h2(tuple, count, peer ISS, mss index) mod 2^24, low 2 bits cleared) | mss index
//! ```
//!
//! `count` is a coarse clock ([`COUNTER_PERIOD`], about a minute, from the caller's `now`).
//! A checker subtracts `h1 + peer ISS`, reads the count from the top 8 bits, refuses it
//! unless it is the current or the previous period ([`MAX_AGE`]), reads the MSS index
//! from the low 2 bits and recomputes the other 22: a forged ACK passes with probability
//! 2^-22 per count value. This is Linux's layout except that `h2` covers the peer's ISS
//! and the MSS index instead of having the index added to it, so a cookie or sequence
//! number changed by a few units does not decode to a neighbouring MSS index.
//!
//! Options beyond the MSS cannot fit in the ISN. When the peer sent timestamps, our TSval
//! carries them in its low [`TS_BITS`] bits (Linux `cookie_init_timestamp`): the peer's
//! window-scale shift (4 bits, 15 = none), SACK-permitted (bit 4) and ECN (bit 5, always 0
//! here: we do not negotiate ECN). The TSval is rounded down so it never runs ahead of the
//! timestamp clock, keeping our TSvals monotonic. Without timestamps a cookie connection
//! has no window scaling and no SACK.
//!
//! Invariants:
//! * nothing here keeps state per SYN: [`SynCookies`] holds only the key;
//! * no randomness and no clock: the key and the counter come from the caller;
//! * [`SynCookies::check`] accepts exactly the cookies [`SynCookies::make`] produced for
//!   the same 4-tuple and peer ISS within [`MAX_AGE`] periods (up to hash collisions).

use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Duration;

/// Length of one period of the cookie clock (Linux `tcp_cookie_time`: one minute).
pub const COUNTER_PERIOD: Duration = Duration::from_secs(60);
/// A cookie is valid in the period it was made and the next (Linux `MAX_SYNCOOKIE_AGE`).
pub const MAX_AGE: u32 = 2;
/// Bits of the ISN below the counter (Linux `COOKIEBITS`).
const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
/// Low TSval bits carrying the options (Linux `TSBITS`).
pub const TS_BITS: u32 = 6;
const TS_MASK: u32 = (1 << TS_BITS) - 1;
/// Window-scale nibble meaning "no window scaling" (Linux `TS_OPT_WSCALE_MASK`).
const TS_WSCALE_NONE: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
const TS_ECN: u32 = 1 << 5;
/// RFC 7323 §2.3: the shift is at most 14.
const MAX_WSCALE: u8 = 14;

/// MSS values a cookie can carry (Linux `msstab`, chosen from traffic statistics): the
/// largest entry not above the peer's MSS is used (the first when the peer's is smaller).
const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
/// IPv6: 1280, 1480, 1500 and 9000 byte links minus 60 bytes of headers (Linux).
const MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];
/// Entries in each MSS table: the index takes the cookie's low 2 bits.
pub const MSS_TABLE_LEN: usize = 4;
const IDX_MASK: u32 = MSS_TABLE_LEN as u32 - 1;

/// The options a cookie connection uses beyond the MSS, as carried in the TSval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CookieOptions {
    /// The peer's window-scale shift (RFC 7323 §2.2), if it offered one.
    pub wscale: Option<u8>,
    /// The peer sent SACK-permitted (RFC 2018 §2).
    pub sack: bool,
}

/// The cookie key: a MAC key given by the caller, nothing else.
#[derive(Clone)]
pub struct SynCookies {
    key: [u8; 16],
}

impl std::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SynCookies { .. }")
    }
}

/// The cookie clock at `elapsed` since the caller's epoch (wraps at 2^32 periods).
pub fn counter(elapsed: Duration) -> u32 {
    (elapsed.as_secs() / COUNTER_PERIOD.as_secs()) as u32
}

/// Index of the MSS table entry for a peer that advertised `mss` (None: no option, so the
/// RFC 9293 §3.7.1 default, the table's first entry).
pub fn mss_index(v6: bool, mss: Option<u16>) -> u8 {
    let t = if v6 { &MSS_V6 } else { &MSS_V4 };
    let m = mss.unwrap_or(0);
    (1..MSS_TABLE_LEN).rev().find(|&i| m >= t[i]).unwrap_or(0) as u8
}

/// The MSS of table entry `idx` (None beyond the table).
pub fn mss_of(v6: bool, idx: u8) -> Option<u16> {
    let t = if v6 { &MSS_V6 } else { &MSS_V4 };
    t.get(idx as usize).copied()
}

/// Our TSval for a cookie SYN-ACK at timestamp clock `ts_now`: the clock rounded down to
/// [`TS_BITS`] with the options in the low bits, never ahead of `ts_now` (modulo 2^32).
pub fn encode_ts(ts_now: u32, o: CookieOptions) -> u32 {
    let ws = o.wscale.map_or(TS_WSCALE_NONE, |s| u32::from(s.min(MAX_WSCALE)));
    let bits = ws | if o.sack { TS_SACK } else { 0 };
    let ts = (ts_now & !TS_MASK) | bits;
    if ts > ts_now {
        ts.wrapping_sub(1 << TS_BITS)
    } else {
        ts
    }
}

/// The options carried by the peer's TSecr (our cookie TSval echoed). None when the bits
/// cannot come from [`encode_ts`]: ECN set (every nibble is a shift 0–14 or "none").
pub fn decode_ts(tsecr: u32) -> Option<CookieOptions> {
    let bits = tsecr & TS_MASK;
    if bits & TS_ECN != 0 {
        return None;
    }
    let wscale = match bits & TS_WSCALE_NONE {
        TS_WSCALE_NONE => None,
        s => Some(s as u8),
    };
    Some(CookieOptions { wscale, sack: bits & TS_SACK != 0 })
}

impl SynCookies {
    pub fn new(key: [u8; 16]) -> Self {
        SynCookies { key }
    }

    /// A cookie key derived from the caller's secret (the endpoint's ISN key) by a hash
    /// with its own label, so neither key reveals the other.
    pub fn from_secret(secret: &[u8; 16]) -> Self {
        let d = Sha256::new().chain_update(b"netstack syncookie key").chain_update(secret).finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&d[..16]);
        SynCookies { key }
    }

    /// Keyed hash of the 4-tuple: `h1` with `more = None`, `h2` with the counter, the
    /// peer's ISS and the MSS index.
    fn hash(&self, local: SocketAddr, remote: SocketAddr, more: Option<(u32, u32, u8)>) -> u32 {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update([u8::from(more.is_some())]);
        let (count, iss, idx) = more.unwrap_or((0, 0, 0));
        h.update(count.to_be_bytes());
        h.update(iss.to_be_bytes());
        h.update([idx]);
        super::isn::hash_tuple(h, local, remote)
    }

    /// The cookie ISN for a SYN with sequence number `peer_iss` at counter `count`,
    /// carrying MSS table index `mss_idx` (< [`MSS_TABLE_LEN`]).
    pub fn make(&self, local: SocketAddr, remote: SocketAddr, peer_iss: u32, count: u32, mss_idx: u8) -> u32 {
        self.hash(local, remote, None)
            .wrapping_add(peer_iss)
            .wrapping_add(count << COOKIE_BITS)
            .wrapping_add(self.mac(local, remote, count, peer_iss, mss_idx))
    }

    /// Check `cookie` (the ACK's SEG.ACK - 1) against the peer's ISS (SEG.SEQ - 1) at
    /// counter `count_now`. Returns the MSS table index, or None for a forged, mangled or
    /// expired cookie.
    pub fn check(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        peer_iss: u32,
        count_now: u32,
        cookie: u32,
    ) -> Option<u8> {
        let c = cookie.wrapping_sub(self.hash(local, remote, None)).wrapping_sub(peer_iss);
        // The counter is known modulo 2^8: the age is the difference in the top bits.
        let age = count_now.wrapping_sub(c >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
        if age >= MAX_AGE {
            return None;
        }
        let count = count_now.wrapping_sub(age);
        let idx = (c & IDX_MASK) as u8;
        (c & COOKIE_MASK == self.mac(local, remote, count, peer_iss, idx)).then_some(idx)
    }

    /// The low 24 bits of a cookie: 22 bits of `h2`, then the MSS index.
    fn mac(&self, local: SocketAddr, remote: SocketAddr, count: u32, peer_iss: u32, idx: u8) -> u32 {
        self.hash(local, remote, Some((count, peer_iss, idx))) & COOKIE_MASK & !IDX_MASK | u32::from(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple() -> (SocketAddr, SocketAddr) {
        ("10.0.0.2:7".parse().unwrap(), "10.0.0.77:40000".parse().unwrap())
    }

    #[test]
    fn round_trip_every_mss_index_and_both_families() {
        let c = SynCookies::new([9; 16]);
        let (l, r) = tuple();
        let l6: SocketAddr = "[fd00::2]:7".parse().unwrap();
        let r6: SocketAddr = "[fd00::1]:40000".parse().unwrap();
        for (local, remote) in [(l, r), (l6, r6)] {
            for idx in 0..MSS_TABLE_LEN as u8 {
                for iss in [0, 1, 0x7fff_ffff, u32::MAX] {
                    for count in [0, 1, 255, 256, u32::MAX] {
                        let k = c.make(local, remote, iss, count, idx);
                        assert_eq!(c.check(local, remote, iss, count, k), Some(idx));
                        // Still valid one period later.
                        assert_eq!(c.check(local, remote, iss, count.wrapping_add(1), k), Some(idx));
                    }
                }
            }
        }
    }

    #[test]
    fn expired_cookie_is_refused() {
        let c = SynCookies::new([9; 16]);
        let (l, r) = tuple();
        let k = c.make(l, r, 1000, 40, 2);
        assert_eq!(c.check(l, r, 1000, 40 + MAX_AGE, k), None);
        assert_eq!(c.check(l, r, 1000, 40 + 100, k), None);
        // A cookie from the future (clock went back, or forged top bits).
        assert_eq!(c.check(l, r, 1000, 39, k), None);
        // From the counter's elapsed time: made at 59 s, checked at 60 s and 119 s (ok),
        // refused at 120 s.
        let k = c.make(l, r, 5, counter(Duration::from_secs(59)), 1);
        assert_eq!(c.check(l, r, 5, counter(Duration::from_secs(119)), k), Some(1));
        assert_eq!(c.check(l, r, 5, counter(Duration::from_secs(120)), k), None);
    }

    #[test]
    fn tampered_cookie_tuple_iss_or_key_is_refused() {
        let c = SynCookies::new([9; 16]);
        let (l, r) = tuple();
        let k = c.make(l, r, 1000, 7, 3);
        let other: SocketAddr = "10.0.0.78:40000".parse().unwrap();
        let other_port: SocketAddr = "10.0.0.77:40001".parse().unwrap();
        assert_eq!(c.check(l, other, 1000, 7, k), None);
        assert_eq!(c.check(l, other_port, 1000, 7, k), None);
        assert_eq!(c.check(l, r, 1001, 7, k), None);
        assert_eq!(SynCookies::new([8; 16]).check(l, r, 1000, 7, k), None);
        // Any one-bit change, and any small shift, of the cookie or of the peer's ISS is
        // caught (the index is covered by the MAC, unlike Linux's added index).
        for bit in 0..32 {
            assert_eq!(c.check(l, r, 1000, 7, k ^ (1 << bit)), None, "bit {bit}");
            assert_eq!(c.check(l, r, 1000 ^ (1 << bit), 7, k), None, "iss bit {bit}");
        }
        for d in 1..=8u32 {
            assert_eq!(c.check(l, r, 1000, 7, k.wrapping_add(d)), None);
            assert_eq!(c.check(l, r, 1000, 7, k.wrapping_sub(d)), None);
        }
        // Random forgeries: about MAX_AGE / 2^22 pass; 100,000 tries pass none with
        // probability about 95 %, at most one with probability above 99.8 %.
        let mut x = 0x1234_5678u32;
        let forged = (0..100_000)
            .filter(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                c.check(l, r, 1000, 7, x).is_some()
            })
            .count();
        assert!(forged <= 1, "{forged} random cookies accepted");
    }

    #[test]
    fn mss_table_choice() {
        assert_eq!(mss_index(false, None), 0);
        assert_eq!(mss_index(false, Some(100)), 0);
        assert_eq!(mss_index(false, Some(1299)), 0);
        assert_eq!(mss_index(false, Some(1300)), 1);
        assert_eq!(mss_index(false, Some(1459)), 2);
        assert_eq!(mss_index(false, Some(1460)), 3);
        assert_eq!(mss_index(false, Some(65495)), 3);
        assert_eq!(mss_index(true, Some(1440)), 2);
        assert_eq!(mss_index(true, Some(9000)), 3);
        for v6 in [false, true] {
            for i in 0..MSS_TABLE_LEN as u8 {
                let m = mss_of(v6, i).unwrap();
                assert_eq!(mss_index(v6, Some(m)), i, "entry {i} maps back to itself");
            }
            assert_eq!(mss_of(v6, MSS_TABLE_LEN as u8), None);
        }
    }

    #[test]
    fn timestamp_option_bits() {
        for now in [0u32, 5, 63, 64, 1000, 0xffff_ffc0, u32::MAX] {
            for wscale in [None, Some(0), Some(7), Some(14), Some(15)] {
                for sack in [false, true] {
                    let o = CookieOptions { wscale, sack };
                    let ts = encode_ts(now, o);
                    // Never ahead of the clock, at most 2^TS_BITS behind.
                    let behind = now.wrapping_sub(ts);
                    assert!(behind < 1 << TS_BITS, "now {now} ts {ts}");
                    let want = CookieOptions { wscale: wscale.map(|s| s.min(14)), sack };
                    assert_eq!(decode_ts(ts), Some(want));
                }
            }
        }
        // ECN is never negotiated: a TSecr with its bit is refused.
        assert_eq!(decode_ts(TS_ECN), None);
        assert_eq!(decode_ts(0x0e), Some(CookieOptions { wscale: Some(14), sack: false }));
        assert_eq!(decode_ts(0x1f), Some(CookieOptions { wscale: None, sack: true }));
    }
}
