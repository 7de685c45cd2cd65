//! Ephemeral ports (RFC 6335 §6's dynamic range) for TCP's active opens and for sockets
//! bound to port 0 (TCP listeners, UDP), chosen so that a port tells an observer nothing of
//! the connections made to others, nor of the next port.
//!
//! A TCP active open uses RFC 6056 §3.3.4's double-hash selection (Algorithm 4, as Linux's
//! `__inet_hash_connect`): the search starts at a keyed hash of the local and remote
//! addresses plus a counter kept per bucket of destinations. Successive connections to one
//! host walk one sequence, so its 4-tuples are not reused early (RFC 6056 §3.3.4's point
//! against fully random ports), while a host that sees two of our connections learns only
//! how many we made to destinations of its own bucket in between; with one global counter
//! it learned how many we made to anyone. The remote port is left out of the hash so that a
//! simultaneous open can be aimed at our port (the simulation does). A bind to port 0
//! ([`random_search`]) searches from a keyed hash of a counter (Algorithm 1), so one
//! socket's port tells an off-path spoofer nothing of the next one's (RFC 5452 §9.2).
//!
//! Invariants: the caller passes the key (the core draws no random numbers); every search
//! visits each port of the range once before it gives up, so a free port is always found.

use crate::proto::ident::keyed_hash;
use std::hash::Hash;
use std::net::IpAddr;

/// Ephemeral port range (RFC 6335 §6): 49152–65535.
pub(crate) const EPHEMERAL_LO: u16 = 49152;
pub(crate) const EPHEMERAL_N: u32 = 16384;

/// Buckets of destinations with a counter each (RFC 6056 §3.3.4's `table`): 65,536, as
/// Linux since 5.18 (128 KiB per endpoint). With 256 (Linux before), a site that makes us
/// connect twice to a hundred of its destinations reads from the port steps which of them
/// share a bucket, a function of the key that identifies us for as long as it lives
/// (Klein and Pinkas, USENIX Security 2022, CVE-2022-32296).
const TABLE: usize = 65_536;

pub(crate) struct PortPicker {
    key: u128,
    /// Per bucket of destinations: how far its sequence has moved (`TABLE` entries).
    table: Box<[u16]>,
    /// Port-0 searches so far (hashed for the next one's start).
    searches: u64,
}

impl PortPicker {
    pub(crate) fn new(key: u128) -> PortPicker {
        PortPicker { key, table: vec![0; TABLE].into_boxed_slice(), searches: 0 }
    }

    /// A port for a connection from `local` to `remote` that `taken` does not reject, or
    /// `None` when every port of the range is.
    pub(crate) fn for_connect(&mut self, local: IpAddr, remote: IpAddr, taken: impl Fn(u16) -> bool) -> Option<u16> {
        let (offset, bucket) = split(hash(self.key, (local, remote)));
        for _ in 0..EPHEMERAL_N {
            // The range's size divides 2^16, so the counter may wrap.
            let i = offset.wrapping_add(u32::from(self.table[bucket]));
            self.table[bucket] = self.table[bucket].wrapping_add(1);
            let port = nth(i);
            if !taken(port) {
                return Some(port);
            }
        }
        None
    }

    /// A port for a listener bound to port 0 that `taken` does not reject.
    pub(crate) fn for_bind(&mut self, taken: impl FnMut(u16) -> bool) -> Option<u16> {
        self.searches += 1;
        random_search(self.key, self.searches, taken)
    }

    /// The port an endpoint keyed `key` gives its first connection from `local` to `remote`
    /// when that port is free (to aim a simultaneous open in tests).
    #[cfg(test)]
    pub(crate) fn first_for_connect(key: u128, local: IpAddr, remote: IpAddr) -> u16 {
        nth(split(hash(key, (local, remote))).0)
    }
}

/// Bind search number `search` under `key` (RFC 6056 §3.3.1, Algorithm 1): from a keyed
/// point of the range, the first port `taken` does not reject; `None` when it rejects all.
pub(crate) fn random_search(key: u128, search: u64, mut taken: impl FnMut(u16) -> bool) -> Option<u16> {
    let start = hash(key, search) as u32;
    (0..EPHEMERAL_N).map(|i| nth(start.wrapping_add(i))).find(|&p| !taken(p))
}

fn nth(i: u32) -> u16 {
    EPHEMERAL_LO + (i % EPHEMERAL_N) as u16
}

/// (offset into the range, bucket) from one hash.
fn split(h: u64) -> (u32, usize) {
    (h as u32, (h >> 32) as usize % TABLE)
}

/// SipHash of the key and `input`: a keyed function an observer cannot compute.
fn hash(key: u128, input: impl Hash) -> u64 {
    keyed_hash(key, (b"ports", input))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Before, every connection took the next port after the last one's, to whatever
    /// destination: a host that saw two of our connections learned how many we made to
    /// anyone in between (as the IPv4 identification did, `proto::ident`).
    #[test]
    fn a_port_tells_nothing_of_connections_to_others() {
        let mut p = PortPicker::new(0x5eed);
        let (us, prober) = (ip("10.0.0.2"), ip("10.0.0.1"));
        let first = p.for_connect(us, prober, |_| false).unwrap();
        let prober_bucket = split(hash(0x5eed, (us, prober))).1;
        let mut shared = 0;
        for i in 0..200u8 {
            let other = ip(&format!("10.9.{i}.7"));
            shared += u16::from(split(hash(0x5eed, (us, other))).1 == prober_bucket);
            p.for_connect(us, other, |_| false).unwrap();
        }
        let second = p.for_connect(us, prober, |_| false).unwrap();
        assert_eq!(second.wrapping_sub(first), 1 + shared, "only its own bucket's connections move it");
        assert!(shared <= 4, "{shared} of 200 destinations share its bucket");
        assert_eq!(PortPicker::first_for_connect(0x5eed, us, prober), first);
        // Another key starts elsewhere.
        assert_ne!(PortPicker::new(0x5eee).for_connect(us, prober, |_| false).unwrap(), first);
    }

    #[test]
    fn searches_find_the_last_free_port() {
        let mut p = PortPicker::new(9);
        let (a, b) = (ip("10.0.0.2"), ip("10.0.0.1"));
        assert_eq!(p.for_connect(a, b, |port| port != 50000), Some(50000));
        assert_eq!(p.for_connect(a, b, |_| true), None);
        assert_eq!(p.for_bind(|port| port != 65535), Some(65535));
        assert_eq!(p.for_bind(|_| true), None);
        let binds: Vec<u16> = (0..32).map(|_| p.for_bind(|_| false).unwrap()).collect();
        assert!(binds.windows(2).filter(|w| w[1].wrapping_sub(w[0]) == 1).count() <= 1, "{binds:?}");
    }
}
