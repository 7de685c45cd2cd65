//! Identification values for the packets the IP core originates: the IPv4 Identification of
//! datagrams that may be fragmented (RFC 6864 §4.2: unique per source, destination and
//! protocol while fragments may live) and the IPv6 fragment header's (RFC 7739 §5). One
//! counter per bucket of destinations, the bucket and the counter's starting point chosen
//! by a keyed hash of the destination and protocol, as Linux's `ip_idents` (RFC 7739 §5.3).
//! The caller passes the key (the core draws no random numbers).
//!
//! Invariants: identifiers to one destination and protocol step by one per packet, so two
//! datagrams to it share one only after 2^16 (IPv4) or 2^32 (IPv6) more; and a packet to one
//! destination moves only its own bucket's counter, so a prober reading the identifiers of
//! the replies it draws learns nothing of the packets sent to destinations in other buckets
//! (with one counter for every packet it learned how many the stack sent to anyone).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;

/// SipHash with the secret `key` as its first input: a function of `input` that an observer
/// without the key cannot compute or predict. The cores' one keyed hash (identifications
/// here, UDP and TCP ephemeral ports); the caller passes the key. Std's `DefaultHasher` may
/// change between Rust releases, which changes the values, never their properties.
pub(crate) fn keyed_hash(key: u128, input: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    input.hash(&mut h);
    h.finish()
}

/// Buckets of destinations (Linux sizes `ip_idents` by memory, at least 2,048).
const BUCKETS: usize = 2048;

pub struct IdentGen {
    key: u128,
    counts: Vec<u32>,
}

impl IdentGen {
    pub fn new(key: u128) -> IdentGen {
        IdentGen { key, counts: vec![0; BUCKETS] }
    }

    /// The next identifier for a packet to `dst` carrying `proto` (IPv4 takes its low 16
    /// bits).
    pub fn next(&mut self, dst: IpAddr, proto: u8) -> u32 {
        let h = self.hash(dst, proto);
        let count = &mut self.counts[(h as usize) % BUCKETS];
        *count = count.wrapping_add(1);
        ((h >> 32) as u32).wrapping_add(*count)
    }

    /// A starting point for the ping sockets' automatic identifiers: a function of the key
    /// that tells nothing of it.
    pub fn first_ping_ident(&self) -> u16 {
        self.hash(IpAddr::from([0u8; 4]), 0) as u16
    }

    fn hash(&self, dst: IpAddr, proto: u8) -> u64 {
        keyed_hash(self.key, (dst, proto))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_destination_counts_alone_from_a_keyed_start() {
        let mut g = IdentGen::new(0x5eed);
        let first = g.next(a("10.0.0.1"), 1);
        // Packets to many other destinations: only those sharing 10.0.0.1's bucket move it.
        let shared = (2..=254u8)
            .filter(|i| {
                let other = a(&format!("10.0.0.{i}"));
                g.hash(other, 1) as usize % BUCKETS == g.hash(a("10.0.0.1"), 1) as usize % BUCKETS
            })
            .count() as u32;
        for i in 2..=254u8 {
            g.next(a(&format!("10.0.0.{i}")), 1);
        }
        assert_eq!(g.next(a("10.0.0.1"), 1), first.wrapping_add(1 + shared));
        assert!(shared <= 2, "{shared} of 253 destinations share a bucket of 2,048");
        // Another key starts elsewhere; the protocol is part of the key.
        assert_ne!(IdentGen::new(0x5eee).next(a("10.0.0.1"), 1), first);
        assert_ne!(IdentGen::new(0x5eed).next(a("10.0.0.1"), 17), first);
        assert_ne!(IdentGen::new(0x5eed).next(a("fd00::1"), 17), first);
    }
}
