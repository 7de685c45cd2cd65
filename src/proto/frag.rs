//! IP fragment reassembly (RFC 791 §3.2, RFC 815, RFC 8200 §4.5) with bounded memory.
//!
//! Invariants:
//! * the memory held by all partial datagrams, charged as what their fragments brought
//!   (never what their offsets span) plus bookkeeping per piece and per datagram, never
//!   exceeds `max_bytes`; a fragment that would pass the bound first evicts the partial
//!   datagrams closest to their deadline, and is dropped (counted) if it still does not fit;
//! * at most `max_datagrams` partial datagrams exist at once; a new one past that evicts
//!   the one holding the least data (the oldest of those), so a flood of one-fragment
//!   datagrams under fresh IDs evicts its own kind before a datagram well on its way;
//! * an IPv6 datagram never exceeds 65,535 bytes of payload, an IPv4 one 65,535 bytes with
//!   a 20-byte header (fragments past that are dropped);
//! * every partial datagram has a deadline (`timeout` after its first fragment) and is
//!   discarded by [`Reassembler::expire`] after it;
//! * IPv6 fragments that overlap make the whole datagram be discarded (RFC 5722 §4); for
//!   IPv4 the first data received for a byte wins;
//! * IPv4 fragments of one datagram never arrive more than [`MAX_DIST`] fragments (from the
//!   same source) apart: beyond that the partial datagram is started afresh, so fragments
//!   of a later datagram that reuses the 16-bit ID after it wrapped are never spliced into
//!   an earlier one (RFC 4963 §2; Linux's `ipfrag_max_dist`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Largest reassembled payload: RFC 8200 §4.5, the 16-bit payload length field.
pub const MAX_DATAGRAM: usize = 65_535;
/// Largest reassembled IPv4 payload: RFC 791 §3.1, the total length field counts the
/// header (20 bytes at least) too; Linux's `ip_frag_reasm` drops an "oversized IP packet".
pub const MAX_DATAGRAM_V4: usize = MAX_DATAGRAM - 20;
/// RFC 791 §3.2 suggests 15 s as the lower bound; Linux uses 30 s for IPv4.
pub const V4_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 8200 §4.5: 60 seconds.
pub const V6_TIMEOUT: Duration = Duration::from_secs(60);
/// Fragments from one source that may arrive between two fragments of one IPv4 datagram
/// (as Linux's `ipfrag_max_dist`, but 1024 instead of 64: a burst of fragmented datagrams
/// reordered by a few ms of jitter easily spreads one datagram over 64). A reused ID is at
/// least 65,536 datagrams later, so with every datagram fragmented it is far beyond this.
pub const MAX_DIST: u64 = 1024;
/// Sources whose fragment counts are remembered; beyond it the counts restart (partial
/// datagrams then look too far and restart too: the safe direction).
const MAX_PEERS: usize = 4096;
/// Charged per stored piece besides its bytes: its `Vec` and its place in the list, the
/// allocator's minimum chunk and the range list's share (an 8-byte piece costs about
/// 80–110 bytes in all).
const PIECE_OVERHEAD: usize = 128;
/// Charged per partial datagram besides its pieces (its table entry and ranges).
const PARTIAL_OVERHEAD: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4: the protocol field (part of the RFC 791 key); IPv6: 0 (the id is per pair).
    pub proto: u8,
    pub id: u32,
}

/// Why a fragment was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragDrop {
    /// Offset + length past the largest datagram ([`MAX_DATAGRAM`], [`MAX_DATAGRAM_V4`]), or
    /// a non-final fragment whose length is not a multiple of 8.
    BadGeometry,
    /// Conflicting last fragments, or data past a known end.
    Inconsistent,
    /// IPv6 overlap: the whole datagram was discarded.
    Overlap,
    /// No memory within the bound.
    NoRoom,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FragStats {
    pub fragments: u64,
    pub reassembled: u64,
    pub dropped: u64,
    pub timed_out: u64,
    pub evicted: u64,
    /// IPv4 partial datagrams restarted because their fragments arrived too far apart.
    pub too_far: u64,
}

struct Partial {
    /// The bytes received, as `(offset, bytes)` pieces that never overlap (a fragment keeps
    /// only what no earlier one brought), in arrival order; joined when complete.
    pieces: Vec<(usize, Vec<u8>)>,
    /// Received ranges, sorted and merged, half-open.
    have: Vec<(usize, usize)>,
    /// Total payload length, once the last fragment arrived.
    total: Option<usize>,
    /// Upper-layer protocol (IPv6: the fragment header's next header).
    proto: u8,
    deadline: Instant,
    /// The source's fragment count at this datagram's latest fragment.
    src_seq: u64,
    /// Memory charged against the bound: the pieces and [`PARTIAL_OVERHEAD`] (0 until the
    /// first fragment is stored).
    charge: usize,
}

impl Partial {
    /// The parts of `[offset, end)` not received yet.
    fn gaps(&self, offset: usize, end: usize) -> Vec<(usize, usize)> {
        let mut pos = offset;
        let mut gaps = Vec::new();
        for &(s, e) in &self.have {
            if e <= pos {
                continue;
            }
            if s >= end {
                break;
            }
            if s > pos {
                gaps.push((pos, s.min(end)));
            }
            pos = pos.max(e);
        }
        if pos < end {
            gaps.push((pos, end));
        }
        gaps
    }

    /// What storing `gaps` costs: their bytes and a piece's bookkeeping each, and the
    /// datagram's own on its first piece.
    fn cost(&self, gaps: &[(usize, usize)]) -> usize {
        let first = if self.charge == 0 { PARTIAL_OVERHEAD } else { 0 };
        first + gaps.iter().map(|&(s, e)| e - s + PIECE_OVERHEAD).sum::<usize>()
    }

    /// Store `data` (at `offset`) where it fills `gaps`: the first data received for a byte
    /// wins. `cost` is what [`Self::cost`] said for them.
    fn fill(&mut self, offset: usize, data: &[u8], gaps: Vec<(usize, usize)>, cost: usize) {
        for (s, e) in gaps {
            self.pieces.push((s, data[s - offset..e - offset].to_vec()));
            insert_range(&mut self.have, s, e);
        }
        self.charge += cost;
    }

    /// The whole payload, `total` bytes (every byte of it received).
    fn join(self, total: usize) -> Vec<u8> {
        let mut payload = vec![0; total];
        for (s, b) in self.pieces {
            payload[s..s + b.len()].copy_from_slice(&b);
        }
        payload
    }
}

pub struct Reassembler {
    parts: HashMap<FragKey, Partial>,
    /// IPv4 fragments received per source (Linux's per-peer `rid`).
    peers: HashMap<IpAddr, u64>,
    bytes: usize,
    max_bytes: usize,
    max_datagrams: usize,
    pub stats: FragStats,
}

/// One fragment's place in its datagram.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub key: FragKey,
    /// Upper-layer protocol (IPv6: the fragment header's next header).
    pub proto: u8,
    /// Offset of `data` in the datagram's payload, in bytes.
    pub offset: usize,
    /// More fragments follow (MF / M flag).
    pub more: bool,
    pub data: &'a [u8],
}

/// A whole datagram put back together.
#[derive(Debug)]
pub struct Reassembled {
    pub proto: u8,
    pub payload: Vec<u8>,
}

impl Reassembler {
    pub fn new(max_bytes: usize, max_datagrams: usize) -> Reassembler {
        Reassembler {
            parts: HashMap::new(),
            peers: HashMap::new(),
            bytes: 0,
            max_bytes,
            max_datagrams,
            stats: FragStats::default(),
        }
    }

    /// Memory charged to partial datagrams now (their bytes and bookkeeping).
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }

    pub fn partials(&self) -> usize {
        self.parts.len()
    }

    /// Earliest deadline of any partial datagram.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.parts.values().map(|p| p.deadline).min()
    }

    /// Drop partial datagrams whose deadline has passed. Returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.parts.len();
        let mut freed = 0;
        self.parts.retain(|_, p| {
            let keep = p.deadline > now;
            if !keep {
                freed += p.charge;
            }
            keep
        });
        self.bytes -= freed;
        let n = before - self.parts.len();
        self.stats.timed_out += n as u64;
        n
    }

    /// Add one fragment. IPv6 fragments (by the key's address family) follow RFC 8200's rules
    /// (overlap discards, 60 s timeout), IPv4 ones RFC 791's (first data wins, 30 s).
    /// Returns the datagram when it is complete.
    pub fn insert(&mut self, now: Instant, f: Fragment<'_>) -> Result<Option<Reassembled>, FragDrop> {
        self.stats.fragments += 1;
        let r = self.insert_inner(now, f);
        match r {
            Err(_) => self.stats.dropped += 1,
            Ok(Some(_)) => self.stats.reassembled += 1,
            Ok(None) => {}
        }
        r
    }

    fn insert_inner(&mut self, now: Instant, f: Fragment<'_>) -> Result<Option<Reassembled>, FragDrop> {
        let Fragment { key, proto, offset, more, data } = f;
        let v6 = key.src.is_ipv6();
        let (timeout, max) = if v6 { (V6_TIMEOUT, MAX_DATAGRAM) } else { (V4_TIMEOUT, MAX_DATAGRAM_V4) };
        let end = offset + data.len();
        // RFC 8200 §4.5: non-final fragments are multiples of 8 bytes; RFC 791 implies it.
        if end > max || (more && !data.len().is_multiple_of(8)) || (more && data.is_empty()) {
            self.discard(&key);
            return Err(FragDrop::BadGeometry);
        }
        let src_seq = self.check_distance(&key);
        if !self.parts.contains_key(&key) {
            if self.parts.len() >= self.max_datagrams {
                self.evict_one();
            }
            let deadline = now + timeout;
            let p = Partial { pieces: Vec::new(), have: Vec::new(), total: None, proto, deadline, src_seq, charge: 0 };
            self.parts.insert(key, p);
        }
        if let Some(p) = self.parts.get_mut(&key) {
            p.src_seq = src_seq;
        }
        // Consistency of the end.
        {
            let p = self.parts.get(&key).ok_or(FragDrop::NoRoom)?;
            let bad_end = match p.total {
                Some(t) => end > t || (!more && end != t),
                None => !more && p.have.last().is_some_and(|&(_, e)| e > end),
            };
            if bad_end {
                self.discard(&key);
                return Err(FragDrop::Inconsistent);
            }
            if v6 && p.have.iter().any(|&(s, e)| offset < e && s < end) {
                self.discard(&key);
                return Err(FragDrop::Overlap);
            }
        }
        // Memory: what the new bytes cost, within the bound.
        let (gaps, cost) = {
            let p = self.parts.get(&key).ok_or(FragDrop::NoRoom)?;
            let gaps = p.gaps(offset, end);
            let cost = p.cost(&gaps);
            (gaps, cost)
        };
        while self.bytes + cost > self.max_bytes {
            if !self.evict_other(&key) {
                self.discard(&key);
                return Err(FragDrop::NoRoom);
            }
        }
        let p = self.parts.get_mut(&key).ok_or(FragDrop::NoRoom)?;
        if !more {
            p.total = Some(end);
        }
        if offset == 0 {
            // RFC 8200 §4.5: the upper-layer protocol is the offset-0 fragment's.
            p.proto = proto;
        }
        p.fill(offset, data, gaps, cost);
        self.bytes += cost;
        let complete = matches!(p.total, Some(t) if p.have.len() == 1 && p.have[0] == (0, t));
        if complete {
            let p = self.parts.remove(&key).ok_or(FragDrop::NoRoom)?;
            self.bytes -= p.charge;
            let (proto, total) = (p.proto, p.total.unwrap_or(0));
            return Ok(Some(Reassembled { proto, payload: p.join(total) }));
        }
        Ok(None)
    }

    /// One more IPv4 fragment from the key's source: its running count. A partial datagram
    /// whose last fragment is more than [`MAX_DIST`] fragments back is discarded first (its
    /// ID was reused). IPv6 (32-bit IDs) is not checked: 0.
    fn check_distance(&mut self, key: &FragKey) -> u64 {
        if key.src.is_ipv6() {
            return 0;
        }
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&key.src) {
            self.peers.clear();
        }
        let n = self.peers.entry(key.src).or_insert(0);
        *n += 1;
        let seq = *n;
        if self.parts.get(key).is_some_and(|p| seq.wrapping_sub(p.src_seq) > MAX_DIST) {
            self.discard(key);
            self.stats.too_far += 1;
        }
        seq
    }

    fn discard(&mut self, key: &FragKey) {
        if let Some(p) = self.parts.remove(key) {
            self.bytes -= p.charge;
        }
    }

    /// Make room for one more partial datagram: evict the one holding the least, the
    /// oldest of those.
    fn evict_one(&mut self) -> bool {
        let victim = self.parts.iter().min_by_key(|(_, p)| (p.charge, p.deadline)).map(|(k, _)| *k);
        match victim {
            Some(k) => {
                self.discard(&k);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }

    /// Evict the oldest partial datagram other than `keep`.
    fn evict_other(&mut self, keep: &FragKey) -> bool {
        let victim = self.parts.iter().filter(|(k, _)| *k != keep).min_by_key(|(_, p)| p.deadline).map(|(k, _)| *k);
        match victim {
            Some(k) => {
                self.discard(&k);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }
}

/// Insert `[s, e)` into a sorted list of disjoint ranges, merging neighbours.
fn insert_range(have: &mut Vec<(usize, usize)>, s: usize, e: usize) {
    let i = have.partition_point(|&(_, he)| he < s);
    let mut ns = s;
    let mut ne = e;
    let mut j = i;
    while j < have.len() && have[j].0 <= ne {
        ns = ns.min(have[j].0);
        ne = ne.max(have[j].1);
        j += 1;
    }
    have.splice(i..j, std::iter::once((ns, ne)));
}

/// Split `payload_len` bytes into fragment payload ranges that fit `max_frag_payload`
/// (rounded down to a multiple of 8, RFC 791 §3.2). Returns `(offset, len, more)` triples.
pub fn fragment_ranges(payload_len: usize, max_frag_payload: usize) -> Vec<(usize, usize, bool)> {
    let step = (max_frag_payload / 8 * 8).max(8);
    let mut v = Vec::with_capacity(payload_len / step + 1);
    let mut off = 0;
    while off < payload_len {
        let len = step.min(payload_len - off);
        v.push((off, len, off + len < payload_len));
        off += len;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(id: u32) -> FragKey {
        FragKey { src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), proto: 17, id }
    }

    fn key6(id: u32) -> FragKey {
        FragKey { src: "fd00::1".parse().unwrap(), dst: "fd00::2".parse().unwrap(), proto: 0, id }
    }

    #[test]
    fn in_order_and_reverse() {
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let now = Instant::now();
        for rev in [false, true] {
            let mut r = Reassembler::new(1 << 20, 16);
            let mut frs = fragment_ranges(data.len(), 1480);
            if rev {
                frs.reverse();
            }
            let mut out = None;
            for (off, len, more) in frs {
                out = r
                    .insert(now, Fragment { key: key(1), proto: 17, offset: off, more, data: &data[off..off + len] })
                    .unwrap();
            }
            assert_eq!(out.unwrap().payload, data);
            assert_eq!(r.held_bytes(), 0);
            assert_eq!(r.partials(), 0);
        }
    }

    /// Issue 7 (silent corruption at MTU 68): after the 16-bit ID wraps, a fragment of a new
    /// datagram must not complete an old partial one that reused the same ID.
    #[test]
    fn v4_id_reuse_far_apart_is_not_spliced() {
        let now = Instant::now();
        let mut r = Reassembler::new(1 << 20, 64);
        let frag = |id: u32, off: usize, more: bool, byte: u8| (key(id), off, more, vec![byte; 8]);
        // Datagram 7, first half only (its second half was lost).
        let (k, off, more, d) = frag(7, 0, true, 0xaa);
        assert!(r.insert(now, Fragment { key: k, proto: 17, offset: off, more, data: &d }).unwrap().is_none());
        // 600 whole datagrams (1,200 fragments) from the same source go by.
        for id in 100..700 {
            for (off, more) in [(0, true), (8, false)] {
                let (k, off, more, d) = frag(id, off, more, 1);
                let _ = r.insert(now, Fragment { key: k, proto: 17, offset: off, more, data: &d });
            }
        }
        // A new datagram reusing ID 7 sends its second half: it must not join the old first half.
        let (k, off, more, d) = frag(7, 8, false, 0xbb);
        let out = r.insert(now, Fragment { key: k, proto: 17, offset: off, more, data: &d }).unwrap();
        assert!(out.is_none(), "spliced: {out:?}");
        assert_eq!(r.stats.too_far, 1);
        // Fragments close together still reassemble.
        let (k, off, more, d) = frag(7, 0, true, 0xbb);
        let out = r.insert(now, Fragment { key: k, proto: 17, offset: off, more, data: &d }).unwrap();
        assert_eq!(out.unwrap().payload, vec![0xbb; 16]);
    }

    #[test]
    fn v4_overlap_first_wins_v6_overlap_discards() {
        let now = Instant::now();
        let mut r = Reassembler::new(1 << 20, 16);
        assert!(r
            .insert(now, Fragment { key: key(2), proto: 17, offset: 0, more: true, data: &[1u8; 16] })
            .unwrap()
            .is_none());
        // overlapping 8..24 with different bytes; first data (1s) wins for 8..16
        let d = r
            .insert(now, Fragment { key: key(2), proto: 17, offset: 8, more: false, data: &[2u8; 16] })
            .unwrap()
            .unwrap();
        assert_eq!(&d.payload[..16], &[1u8; 16]);
        assert_eq!(&d.payload[16..], &[2u8; 8]);
        assert!(r
            .insert(now, Fragment { key: key6(3), proto: 17, offset: 0, more: true, data: &[1u8; 16] })
            .unwrap()
            .is_none());
        assert_eq!(
            r.insert(now, Fragment { key: key6(3), proto: 17, offset: 8, more: false, data: &[2u8; 16] }).unwrap_err(),
            FragDrop::Overlap
        );
        assert_eq!(r.partials(), 0);
        assert_eq!(r.held_bytes(), 0);
    }

    #[test]
    fn protocol_comes_from_the_first_fragment_by_offset() {
        let now = Instant::now();
        let mut r = Reassembler::new(1 << 20, 16);
        let k = key6(10);
        assert!(r
            .insert(now, Fragment { key: k, proto: 60, offset: 8, more: false, data: &[2; 8] })
            .unwrap()
            .is_none());
        let d = r.insert(now, Fragment { key: k, proto: 17, offset: 0, more: true, data: &[1; 8] }).unwrap().unwrap();
        assert_eq!(d.proto, 17);
    }

    #[test]
    fn bad_geometry_and_inconsistent_end() {
        let now = Instant::now();
        let mut r = Reassembler::new(1 << 20, 16);
        assert_eq!(
            r.insert(now, Fragment { key: key(4), proto: 17, offset: 0, more: true, data: &[0; 7] }).unwrap_err(),
            FragDrop::BadGeometry
        );
        assert_eq!(
            r.insert(now, Fragment { key: key(4), proto: 17, offset: 65_528, more: false, data: &[0; 16] })
                .unwrap_err(),
            FragDrop::BadGeometry
        );
        r.insert(now, Fragment { key: key(5), proto: 17, offset: 16, more: false, data: &[0; 8] }).unwrap();
        assert_eq!(
            r.insert(now, Fragment { key: key(5), proto: 17, offset: 32, more: true, data: &[0; 8] }).unwrap_err(),
            FragDrop::Inconsistent
        );
        assert_eq!(r.held_bytes(), 0);
    }

    /// RFC 791 §3.1: an IPv4 datagram's total length, its header included, is at most
    /// 65,535, so its payload at most 65,515 (Linux's `ip_frag_reasm`: "oversized IP
    /// packet"). A larger one is the ping of death; an echo reply to it would be one too.
    /// IPv6's payload length excludes the fixed header: 65,535 there.
    #[test]
    fn an_ipv4_datagram_past_65535_bytes_with_its_header_is_dropped() {
        let now = Instant::now();
        let mut r = Reassembler::new(1 << 20, 16);
        let first = |k| Fragment { key: k, proto: 17, offset: 0, more: true, data: &[0; 8] };
        let last = |k, len: usize| Fragment { key: k, proto: 17, offset: 65_512, more: false, data: &[0; 24][..len] };
        r.insert(now, first(key(11))).unwrap();
        assert_eq!(r.insert(now, last(key(11), 4)).unwrap_err(), FragDrop::BadGeometry, "65,516 bytes");
        r.insert(now, first(key(12))).unwrap();
        assert!(r.insert(now, last(key(12), 3)).unwrap().is_none(), "65,515 bytes: waits for the middle");
        r.insert(now, first(key6(13))).unwrap();
        assert!(r.insert(now, last(key6(13), 23)).unwrap().is_none(), "IPv6: 65,535 bytes");
    }

    fn frag(key: FragKey, offset: usize, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment { key, proto: 17, offset, more, data }
    }

    /// A reassembler with room for `max_datagrams` partial datagrams holding the first half
    /// of a real one (id 1), and that datagram's bytes.
    fn half_received(max_datagrams: usize, now: Instant) -> (Reassembler, Vec<u8>) {
        let mut r = Reassembler::new(4 << 20, max_datagrams);
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        assert!(r.insert(now, frag(key(1), 0, true, &data[..1480])).unwrap().is_none());
        (r, data)
    }

    /// The real datagram's second half arrives at `at`: it completes, exact.
    fn completes(r: &mut Reassembler, data: &[u8], at: Instant) {
        let d = r.insert(at, frag(key(1), 1480, false, &data[1480..])).unwrap().expect("the real datagram completes");
        assert_eq!(d.payload, data);
    }

    /// A fragment is charged what it holds, not its offset: 65 eight-byte fragments far
    /// into their datagrams (about 1.8 KB on the wire) once cost 64 KiB each, took the
    /// 4 MiB bound and evicted a real datagram half received (found by review 18).
    #[test]
    fn tiny_fragments_far_out_cost_what_they_hold() {
        let now = Instant::now();
        let (mut r, data) = half_received(256, now);
        for id in 100..165 {
            assert!(r.insert(now, frag(key(id), 64_000, true, &[0xee; 8])).unwrap().is_none());
        }
        assert!(r.held_bytes() < 66 * 2048, "65 tiny fragments hold {} bytes", r.held_bytes());
        completes(&mut r, &data, now);
        assert_eq!(r.stats.evicted, 0);
    }

    /// At the datagram-count bound a flood of one-fragment datagrams under fresh IDs evicts
    /// its own kind, not a datagram half received (before, the oldest went: the real one).
    #[test]
    fn a_flood_of_fresh_ids_evicts_its_own_kind() {
        let now = Instant::now();
        let (mut r, data) = half_received(16, now);
        let later = |ms: u64| now + Duration::from_millis(ms);
        for id in 100..400 {
            assert!(r.insert(later(u64::from(id)), frag(key(id), 8, true, &[0xee; 8])).unwrap().is_none());
        }
        assert_eq!(r.partials(), 16);
        completes(&mut r, &data, later(500));
    }

    #[test]
    fn timeout_and_memory_bound() {
        let now = Instant::now();
        let mut r = Reassembler::new(64 * 1024, 1000);
        // Many never-completed datagrams: memory stays within the bound.
        for id in 0..1000u32 {
            let _ = r.insert(now, Fragment { key: key(id), proto: 17, offset: 8000, more: true, data: &[0u8; 1480] });
            assert!(r.held_bytes() <= 64 * 1024);
        }
        assert!(r.stats.evicted > 0);
        assert!(r.partials() > 0);
        assert_eq!(r.expire(now + V4_TIMEOUT), r.stats.timed_out as usize);
        assert_eq!(r.partials(), 0);
        assert_eq!(r.held_bytes(), 0);
    }

    proptest! {
        #[test]
        fn any_order_reassembles(len in 1usize..20_000, mtu in 64usize..3000, seed in any::<u64>()) {
            use rand::{seq::SliceRandom, SeedableRng};
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut frs = fragment_ranges(len, mtu);
            frs.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            let mut r = Reassembler::new(1 << 20, 16);
            let now = Instant::now();
            let mut out = None;
            for (off, l, more) in frs {
                let got = r.insert(now, Fragment { key: key6(9), proto: 6, offset: off, more, data: &data[off..off + l] }).unwrap();
                if got.is_some() { out = got; }
            }
            prop_assert_eq!(out.unwrap().payload, data);
            prop_assert_eq!(r.held_bytes(), 0);
        }
    }
}
