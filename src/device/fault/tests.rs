//! Unit tests of the fault schedule, corruption, the line's bounds and timing, and the
//! wrapper on an in-memory pair.

use super::*;
use crate::device::pair::{pair, FaultConfig, PairDevice};
use crate::wire::{self, IpProtocol, Ipv4Header, Ipv4Packet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const SRC4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn spec(seed: u64) -> FaultSpec {
    FaultSpec { seed, drop: 0.02, dup: 0.01, reorder: 0.01, corrupt: 0.005, ..FaultSpec::default() }
}

/// An IPv4 packet carrying `proto` with a valid header checksum and transport checksum
/// (`csum_at`: offset of the checksum field in the transport header; `None` leaves it 0).
fn v4(proto: IpProtocol, transport_len: usize, csum_at: Option<usize>) -> Vec<u8> {
    let mut p = vec![0u8; 20 + transport_len];
    let h = Ipv4Header {
        src: SRC4,
        dst: DST4,
        proto,
        ident: 7,
        frag_offset: 0,
        more_frags: false,
        dont_frag: true,
        ttl: 64,
    };
    wire::emit_ipv4_header(&mut p, &h, transport_len);
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(1);
    }
    if let Some(at) = csum_at {
        p[20 + at..20 + at + 2].copy_from_slice(&[0, 0]);
        let c = wire::transport_checksum(SRC4.into(), DST4.into(), proto, &p[20..]);
        p[20 + at..20 + at + 2].copy_from_slice(&c.to_be_bytes());
    } else if proto == IpProtocol::Udp {
        p[26..28].copy_from_slice(&[0, 0]);
    }
    p
}

fn v6_udp(len: usize) -> Vec<u8> {
    let (s, d): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
    let mut p = vec![0u8; 40 + len];
    wire::emit_ipv6_header(&mut p, s, d, IpProtocol::Udp, len, 64);
    p[40..42].copy_from_slice(&1234u16.to_be_bytes());
    p[44..46].copy_from_slice(&(len as u16).to_be_bytes());
    let c = wire::transport_checksum(s.into(), d.into(), IpProtocol::Udp, &p[40..]);
    p[46..48].copy_from_slice(&c.to_be_bytes());
    p
}

fn bits_differing(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Whether a receiver's checks reject `p` (header checksum, then transport checksum).
fn rejected(p: &[u8]) -> bool {
    if p[0] >> 4 == 4 {
        if !Ipv4Packet::new_unchecked(p).verify_checksum() {
            return true;
        }
        let proto = IpProtocol::from(p[9]);
        let (s, d): (IpAddr, IpAddr) = (SRC4.into(), DST4.into());
        return !wire::transport_checksum_ok(s, d, proto, &p[20..]);
    }
    let (s, d): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
    !wire::transport_checksum_ok(s.into(), d.into(), IpProtocol::from(p[6]), &p[40..])
}

#[test]
fn schedule_is_deterministic_per_seed() {
    let run = |seed| {
        let mut s = Schedule::new(FaultSpec { jitter: Duration::from_millis(5), ..spec(seed) });
        (0..20_000).map(|_| s.next_verdict()).collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn schedule_rates_match_probabilities() {
    let n = 400_000u64;
    let mut s = Schedule::new(spec(9));
    let (mut d, mut u, mut r, mut c) = (0u64, 0u64, 0u64, 0u64);
    for _ in 0..n {
        let v = s.next_verdict();
        d += u64::from(v.drop);
        u += u64::from(v.dup);
        r += u64::from(v.reorder);
        c += u64::from(v.corrupt.is_some());
        assert!(v.delay.is_zero() && v.dup_delay.is_zero());
    }
    // Within five standard deviations of n·p.
    for (name, got, p) in [("drop", d, 0.02), ("dup", u, 0.01), ("reorder", r, 0.01), ("corrupt", c, 0.005)] {
        let mean = n as f64 * p;
        let sd = (mean * (1.0 - p)).sqrt();
        assert!((got as f64 - mean).abs() < 5.0 * sd, "{name}: {got} vs expected {mean}");
    }
}

#[test]
fn jitter_stays_in_range() {
    let mut s = Schedule::new(FaultSpec {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(4),
        ..FaultSpec::default()
    });
    let ds: Vec<Duration> = (0..10_000).map(|_| s.next_verdict().delay).collect();
    assert!(ds.iter().all(|d| *d >= Duration::from_millis(10) && *d < Duration::from_millis(14)));
    assert!(ds.iter().any(|d| *d > Duration::from_millis(13)));
}

#[test]
fn corruption_flips_exactly_one_covered_bit() {
    let cases = [
        ("tcp v4", v4(IpProtocol::Tcp, 20 + 100, Some(16))),
        ("udp v4", v4(IpProtocol::Udp, 8 + 50, Some(6))),
        ("icmp v4", v4(IpProtocol::Icmp, 8 + 30, Some(2))),
        ("udp v6", v6_udp(8 + 64)),
    ];
    for (name, orig) in cases {
        assert!(!rejected(&orig), "{name}: test packet must start valid");
        for r in (0..5_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) {
            let mut p = orig.clone();
            assert!(corrupt_one_bit(&mut p, r), "{name}");
            assert_eq!(bits_differing(&orig, &p), 1, "{name} r={r}");
            assert!(rejected(&p), "{name} r={r}: a flipped bit was not caught");
        }
    }
}

#[test]
fn corruption_skips_what_no_checksum_covers() {
    // IPv4 UDP without checksum: only the IP header may be hit.
    let orig = v4(IpProtocol::Udp, 8 + 50, None);
    for r in 0..2_000u64 {
        let mut p = orig.clone();
        assert!(corrupt_one_bit(&mut p, r));
        assert_eq!(p[20..], orig[20..]);
        assert!(!Ipv4Packet::new_unchecked(&p).verify_checksum());
    }
    // IPv6 with a hop-by-hop header (0), garbage, and an empty packet: untouched.
    let mut v6 = v6_udp(16);
    v6[6] = 0;
    for orig in [v6, vec![0xff; 60], vec![0x45; 10], vec![]] {
        let mut p = orig.clone();
        assert!(!corrupt_one_bit(&mut p, 12345));
        assert_eq!(p, orig);
    }
}

fn line(spec: FaultSpec) -> (Line, Sender<Batch>, Arc<FaultStats>) {
    let (tx, rx) = bounded(LINE_DEPTH);
    let stats = Arc::new(FaultStats::default());
    (Line::new(spec, rx, never(), stats.clone()), tx, stats)
}

fn numbered(n: usize, len: usize) -> Batch {
    (0..n).map(|i| vec![i as u8; len]).collect()
}

#[test]
fn queue_is_bounded_in_packets_and_bytes() {
    let pool = Pool::new(64, 256);
    let delay = Duration::from_secs(60);
    let (mut l, _tx, st) = line(FaultSpec { delay, max_packets: 4, ..FaultSpec::default() });
    l.admit(Instant::now(), numbered(10, 100), &pool);
    assert_eq!((l.queue.len(), st.queue_full.load(Relaxed), st.delayed.load(Relaxed)), (4, 6, 10));

    let (mut l, _tx, st) = line(FaultSpec { delay, max_bytes: 1000, ..FaultSpec::default() });
    l.admit(Instant::now(), numbered(30, 100), &pool);
    assert_eq!((l.queue.len(), l.queued_bytes, st.queue_full.load(Relaxed)), (10, 1000, 20));
    // Nothing is due for a minute: release gives nothing and the bytes stay accounted.
    let mut out = Vec::new();
    l.release(Instant::now(), &mut out, 64);
    assert!(out.is_empty());
    l.close(&pool);
    assert_eq!((l.queue.len(), l.queued_bytes), (0, 0));
}

#[test]
fn delayed_packets_arrive_on_time_without_more_traffic() {
    let pool = Pool::default();
    let delay = Duration::from_millis(40);
    let (mut l, tx, st) = line(FaultSpec { delay, ..FaultSpec::default() });
    let t0 = Instant::now();
    tx.send(numbered(3, 60)).unwrap();
    let mut out = Vec::new();
    // The sender stays connected and silent: only the queue's deadline can wake the line.
    assert!(l.recv(&pool, &mut out, 64));
    let took = t0.elapsed();
    assert_eq!(out.len(), 3);
    assert!(took >= delay && took < delay * 10, "delivered after {took:?}");
    assert_eq!(out.iter().map(|p| p[0]).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(st.delayed.load(Relaxed), 3);
    drop(tx);
    assert!(!l.recv(&pool, &mut Vec::new(), 64));
}

#[test]
fn reordered_packet_is_overtaken() {
    // Find a seed whose first packet is reordered and second is not.
    let s = (0..1000)
        .map(|seed| FaultSpec { seed, reorder: 0.5, ..FaultSpec::default() })
        .find(|s| {
            let mut sc = Schedule::new(*s);
            let (a, b) = (sc.next_verdict(), sc.next_verdict());
            a.reorder && !b.reorder
        })
        .unwrap();
    let pool = Pool::default();
    let (mut l, tx, st) = line(s);
    tx.send(numbered(2, 60)).unwrap();
    let mut out = Vec::new();
    while out.len() < 2 {
        assert!(l.recv(&pool, &mut out, 64));
    }
    assert_eq!(out.iter().map(|p| p[0]).collect::<Vec<_>>(), [1, 0]);
    assert_eq!(st.reordered.load(Relaxed), 1);
}

#[test]
fn duplicates_and_drops_are_counted_and_delivered() {
    let pool = Pool::default();
    let (mut l, tx, st) = line(FaultSpec { seed: 3, drop: 0.3, dup: 0.3, ..FaultSpec::default() });
    tx.send(numbered(200, 40)).unwrap();
    drop(tx);
    let mut out = Vec::new();
    while l.recv(&pool, &mut out, 1000) {}
    let (d, u) = (st.dropped.load(Relaxed), st.duplicated.load(Relaxed));
    assert!(d > 20 && u > 20, "dropped {d} duplicated {u}");
    assert_eq!(out.len() as u64, 200 - d + u);
    assert_eq!(st.packets.load(Relaxed), 200);
}

/// A pair device that claims offload trailers.
struct Trailered(PairDevice);

impl Device for Trailered {
    fn mtu(&self) -> usize {
        1500
    }
    fn rx_trailer(&self) -> bool {
        true
    }
    fn tx_trailer(&self) -> bool {
        true
    }
    fn split(self: Box<Self>) -> std::io::Result<(Box<dyn DevRx>, Box<dyn DevTx>)> {
        Box::new(self.0).split()
    }
}

#[test]
fn wrapper_refuses_bad_specs_and_corruption_with_trailers() {
    let log = crate::log::discard();
    let (a, _b) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let bad = FaultSpec { drop: 1.5, ..FaultSpec::default() };
    assert!(FaultDevice::new(Box::new(a), Some(bad), None, log.clone()).is_err());
    let (a, _b) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let corrupt = FaultSpec { corrupt: 0.1, ..FaultSpec::default() };
    let e = FaultDevice::new(Box::new(Trailered(a)), Some(corrupt), Some(corrupt), log.clone()).err().unwrap();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    // Other faults keep the trailer contract and are accepted.
    let (a, _b) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let no_corrupt = FaultSpec { corrupt: 0.0, ..spec(1) };
    let d = FaultDevice::new(Box::new(Trailered(a)), Some(no_corrupt), Some(no_corrupt), log).map(|d| d.counters());
    assert!(d.is_ok());
}

#[test]
fn wrapper_faults_both_directions_of_a_pair() {
    let log = crate::log::discard();
    let (a, b) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let s = FaultSpec { seed: 5, drop: 0.25, delay: Duration::from_millis(5), ..FaultSpec::default() };
    let dev = FaultDevice::new(Box::new(a), Some(s), Some(FaultSpec { seed: 6, ..s }), log).unwrap();
    let counters = dev.counters();
    let (mut a_rx, mut a_tx) = Box::new(dev).split().unwrap();
    let (mut b_rx, mut b_tx) = Box::new(b).split().unwrap();
    let pool = Pool::default();
    let n = 400;
    // A → B through the wrapper's tx line, then B → A through its rx line.
    let mut got = Vec::new();
    for (tx, rx) in [(&mut a_tx, &mut b_rx), (&mut b_tx, &mut a_rx)] {
        let mut batch = numbered(n, 80);
        assert_eq!(tx.send_batch(&mut batch, &pool), 0);
        // Everything due arrives within a few ms; stop well after that.
        let stop = rx.stop_handle();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop();
        });
        let mut out = Vec::new();
        while let Ok(true) = rx.recv_batch(&pool, &mut out, 1000) {}
        t.join().unwrap();
        got.push(out.len() as u64);
    }
    for (i, st) in [&counters.tx, &counters.rx].iter().enumerate() {
        let (p, d) = (st.packets.load(Relaxed), st.dropped.load(Relaxed));
        assert_eq!(p, n as u64);
        assert!(d > 50 && d < 150, "dropped {d} of {n}");
        assert_eq!(got[i], p - d, "direction {i}");
        assert_eq!(st.delayed.load(Relaxed), p - d);
    }
}
