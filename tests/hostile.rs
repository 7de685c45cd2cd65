//! Hostile input: 100,000 random, truncated and subtly broken packets pushed into a stack.
//! No panic, every packet counted, reassembly memory bounded, and ping still answered.

mod common;
use netstack::buf::{Batch, Pool};
use netstack::device::pair::{pair, FaultConfig};
use netstack::device::{DevRx, DevTx, Device};
use netstack::wire::{self, IpProtocol, Ipv4Header};
use netstack::{Stack, StackConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const US4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn v4(proto: IpProtocol, payload: &[u8], ident: u16, frag_offset: u16, more: bool) -> Vec<u8> {
    let mut b = vec![0u8; 20 + payload.len()];
    let h = Ipv4Header { src: PEER4, dst: US4, proto, ident, frag_offset, more_frags: more, dont_frag: false, ttl: 64 };
    wire::emit_ipv4_header(&mut b, &h, payload.len());
    b[20..].copy_from_slice(payload);
    b
}

fn v6(next: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 40 + payload.len()];
    let s: Ipv6Addr = "fd00::1".parse().unwrap();
    let d: Ipv6Addr = "fd00::2".parse().unwrap();
    wire::emit_ipv6_header(&mut b, s, d, next, payload.len(), 64);
    b[40..].copy_from_slice(payload);
    b
}

fn echo_request(seq: u16) -> Vec<u8> {
    let mut m = vec![8u8, 0, 0, 0, 0x12, 0x34, (seq >> 8) as u8, seq as u8];
    m.extend_from_slice(b"still alive?");
    let c = !wire::checksum::data(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    v4(IpProtocol::Icmp, &m, 1, 0, false)
}

fn udp(src: IpAddr, dst: IpAddr, dport: u16, data: &[u8], good_sum: bool) -> Vec<u8> {
    let mut u = vec![0u8; 8 + data.len()];
    u[0..2].copy_from_slice(&4000u16.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    let ulen = u.len() as u16;
    u[4..6].copy_from_slice(&ulen.to_be_bytes());
    u[8..].copy_from_slice(data);
    let c = wire::transport_checksum(src, dst, IpProtocol::Udp, &u);
    let c = if good_sum { c } else { c ^ 0x5555 };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

fn hostile(rng: &mut StdRng) -> Vec<u8> {
    let kind = rng.gen_range(0..12);
    let mut junk = vec![0u8; rng.gen_range(0..1600)];
    rng.fill(&mut junk[..]);
    let s4 = IpAddr::V4(PEER4);
    let d4 = IpAddr::V4(US4);
    match kind {
        0 => junk,
        1 => {
            // valid header, random protocol and payload
            let p = IpProtocol::from(rng.gen::<u8>());
            v4(p, &junk, rng.gen(), 0, false)
        }
        2 => {
            // bad header checksum
            let mut p = v4(IpProtocol::Udp, &junk, rng.gen(), 0, false);
            p[10] ^= 0xff;
            p
        }
        3 => {
            // lying lengths / IHL
            let mut p = v4(IpProtocol::Tcp, &junk, rng.gen(), 0, false);
            if rng.gen() {
                p[0] = 0x40 | rng.gen_range(0..16);
            } else {
                p[2..4].copy_from_slice(&rng.gen::<u16>().to_be_bytes());
            }
            p
        }
        4 => {
            // never-completed / overlapping fragments with random ids and offsets
            let len = rng.gen_range(1..180) * 8;
            let off = rng.gen_range(0..8191u16) * 8;
            v4(IpProtocol::Udp, &junk[..len.min(junk.len()) / 8 * 8], rng.gen_range(0..64), off.min(65000), rng.gen())
        }
        5 => {
            // UDP with a bad checksum, or to a closed port (ICMP answers, rate-limited)
            let u = udp(s4, d4, rng.gen_range(1..20), &junk[..junk.len().min(200)], rng.gen());
            v4(IpProtocol::Udp, &u, rng.gen(), 0, false)
        }
        6 => {
            // ICMP with garbage (bad checksum almost always)
            v4(IpProtocol::Icmp, &junk, rng.gen(), 0, false)
        }
        7 => {
            // truncated valid packet
            let mut p = echo_request(rng.gen());
            let cut = rng.gen_range(0..p.len());
            p.truncate(cut);
            p
        }
        8 => {
            // IPv6 with random extension header chains
            let nh = [0u8, 43, 44, 60, 59, 17, 58, 6][rng.gen_range(0..8)];
            v6(IpProtocol::from(nh), &junk)
        }
        9 => {
            // IPv6 fragments, random
            let mut f = vec![17u8, 0, 0, 0, 0, 0, 0, 0];
            let off: u16 = rng.gen_range(0..8191) << 3 | rng.gen_range(0..2);
            f[2..4].copy_from_slice(&off.to_be_bytes());
            f[4..8].copy_from_slice(&rng.gen_range(0..64u32).to_be_bytes());
            f.extend_from_slice(&junk[..junk.len() / 8 * 8]);
            v6(IpProtocol::Ipv6Frag, &f)
        }
        10 => {
            // TCP segment with garbage header/options to the engine
            let mut t = junk.clone();
            if t.len() >= 20 {
                t[12] = (rng.gen_range(0..16) << 4) | (t[12] & 0x0f);
            }
            v4(IpProtocol::Tcp, &t, rng.gen(), 0, false)
        }
        _ => {
            // bit flips in a valid packet
            let mut p = echo_request(rng.gen());
            let i = rng.gen_range(0..p.len());
            p[i] ^= 1 << rng.gen_range(0..8);
            p
        }
    }
}

fn stat(stack: &Stack, name: &str) -> u64 {
    stack.stats.ip.snapshot().into_iter().find(|(k, _)| *k == name).unwrap().1
}

#[test]
fn hundred_thousand_hostile_packets() {
    let (da, db) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let mut cfg = StackConfig::default();
    cfg.ip.reassembly_bytes = 256 * 1024;
    let bound = cfg.ip.reassembly_bytes as u64;
    let stack = Stack::new(Box::new(da), cfg, netstack::log::discard()).unwrap();
    let (mut rx, mut tx): (Box<dyn DevRx>, Box<dyn DevTx>) = Box::new(db).split().expect("split the pair");
    let pool = Pool::default();
    // Drain whatever the stack answers, on a thread, counting echo replies.
    let stop = rx.stop_handle();
    let replies = std::thread::spawn(move || {
        let p = Pool::default();
        let mut got = 0usize;
        let mut echo = 0usize;
        loop {
            let mut b: Batch = Vec::new();
            match rx.recv_batch(&p, &mut b, 64) {
                Ok(true) => {
                    for pkt in &b {
                        got += 1;
                        if pkt.len() >= 28 && pkt[9] == 1 && pkt[20] == 0 && &pkt[28..] == b"still alive?" {
                            echo += 1;
                        }
                    }
                }
                _ => return (got, echo),
            }
        }
    });
    let mut rng = StdRng::seed_from_u64(0x5eed);
    const N: u64 = 100_000;
    let mut sent = 0u64;
    let mut max_held = 0;
    while sent < N {
        let mut batch: Batch = (0..64).map(|_| hostile(&mut rng)).collect();
        sent += batch.len() as u64;
        let dropped = tx.send_batch(&mut batch, &pool);
        assert_eq!(dropped, 0, "link full: pacing is wrong");
        // Pace: keep the link's backlog small so nothing is dropped on the way.
        let deadline = Instant::now() + Duration::from_secs(30);
        while stat(&stack, "rx_packets") + 2048 < sent {
            assert!(Instant::now() < deadline, "stack stopped consuming");
            std::thread::yield_now();
        }
        max_held = max_held.max(stat(&stack, "reassembly_held_bytes"));
    }
    // Ping still answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(&stack, "tx_echo_replies") == 0 {
        let mut b = vec![echo_request(7)];
        tx.send_batch(&mut b, &pool);
        std::thread::sleep(Duration::from_millis(50));
        assert!(Instant::now() < deadline, "no echo reply after the storm");
    }
    // Every later ping is answered too.
    let before = stat(&stack, "tx_echo_replies");
    for i in 0..5 {
        let mut b = vec![echo_request(100 + i)];
        tx.send_batch(&mut b, &pool);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(&stack, "tx_echo_replies") < before + 5 {
        assert!(Instant::now() < deadline, "pings after the storm were not all answered");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let snap = stack.stats.ip.snapshot();
    println!("{snap:?}");
    assert!(stat(&stack, "rx_packets") >= N, "every packet was seen");
    let dropped: u64 = snap
        .iter()
        .filter(|(k, _)| {
            k.starts_with("rx_bad")
                || k.starts_with("rx_not")
                || *k == "rx_frag_dropped"
                || *k == "rx_udp_bad"
                || *k == "rx_icmp_bad"
                || *k == "rx_unknown_protocol"
        })
        .map(|(_, v)| v)
        .sum();
    assert!(dropped > N / 2, "drops are counted ({dropped})");
    assert!(max_held <= bound, "reassembly memory bounded: {max_held} > {bound}");
    assert!(stat(&stack, "icmp_rate_limited") > 0, "ICMP errors were rate-limited");
    stop();
    let (got, echo) = replies.join().unwrap();
    assert!(echo >= 6, "echo reply seen on the wire ({got} packets back)");
    // Bounded answers: the token bucket caps ICMP errors.
    assert!(got < 20_000, "the stack answered {got} of {N} garbage packets");
    drop(tx);
    stack.shutdown();
}
