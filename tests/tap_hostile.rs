//! Hostile peers on the kernel side of tap0 (issue 9, "Hostile input"): a raw packet socket
//! in the test's own network namespace writes floods of ARP, NDP and broken Ethernet frames
//! onto tap0 while a TCP transfer runs between the stack (10.0.0.2) and the kernel
//! (10.0.0.1). A second packet socket watches what the stack sends: no IP packet may go to
//! the spoofer's MAC. Every loop that sends is bounded in frames and in time.

mod common;
use common::*;
use netstack::device::sys;
use netstack::device::tap::{TapConfig, TapDevice};
use netstack::proto::link::arp::arp_frame;
use netstack::proto::link::ethernet::{self, BROADCAST};
use netstack::proto::link::ndp::{self, ndp_frame};
use netstack::proto::link::neigh::NeighConfig;
use netstack::proto::link::LinkConfig;
use netstack::wire::{ArpOperation, ArpRepr, EthernetAddress as Mac, EthernetProtocol, NdiscRepr};
use netstack::{Stack, StackConfig, TcpStream};
use smoltcp::wire::{NdiscNeighborFlags, NdiscPrefixInfoFlags, NdiscPrefixInformation, NdiscRouterFlags};
use socket2::Socket;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The spoofer's MAC: it claims 10.0.0.1 and fd00::1.
const EVIL: Mac = Mac([0x02, 0xee, 0xee, 0xee, 0xee, 0xee]);
/// Upper bounds of every flood: frames, and time.
const MAX_FLOOD_FRAMES: u64 = 1_000_000;
const MAX_FLOOD_TIME: Duration = Duration::from_secs(30);

fn tap_stack(link: LinkConfig) -> Stack {
    let dev = TapDevice::open(&TapConfig::default()).expect("open tap0");
    let cfg = StackConfig { link: Some(link), ..StackConfig::default() };
    Stack::new(Box::new(dev), cfg, netstack::log::discard()).expect("start stack")
}

fn link_stat(stack: &Stack, name: &str) -> u64 {
    let l = stack.stats.link.as_ref().expect("a TAP stack has link counters");
    l.snapshot().iter().find(|(k, _)| *k == name).unwrap_or_else(|| panic!("no link counter {name}")).1
}

fn packet_socket() -> Socket {
    Socket::from(sys::packet_socket("tap0").expect("AF_PACKET socket on tap0"))
}

fn lcg(x: &mut u64) -> u32 {
    *x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (*x >> 33) as u32
}

fn arp(op: ArpOperation, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> ArpRepr {
    ArpRepr::EthernetIpv4 {
        operation: op,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    }
}

fn ra(router_lifetime: u64, ll: Mac, prefix: Ipv6Addr, len: u8, valid: u64) -> NdiscRepr<'static> {
    let secs = smoltcp::time::Duration::from_secs;
    NdiscRepr::RouterAdvert {
        hop_limit: 64,
        flags: NdiscRouterFlags::empty(),
        router_lifetime: secs(router_lifetime),
        reachable_time: secs(0),
        retrans_time: secs(0),
        lladdr: Some(ll.into()),
        mtu: None,
        prefix_info: Some(NdiscPrefixInformation {
            prefix_len: len,
            flags: NdiscPrefixInfoFlags::ON_LINK,
            valid_lifetime: secs(valid),
            preferred_lifetime: secs(valid),
            prefix,
        }),
    }
}

/// What a flood writes: all kinds (`spoof_only` false) or only the messages claiming
/// 10.0.0.1/fd00::1 for [`EVIL`].
struct Flood {
    us: Mac,
    spoof_only: bool,
}

impl Flood {
    /// Frame number `i` of the flood.
    fn frame(&self, i: u64, x: &mut u64) -> Vec<u8> {
        let r = lcg(x);
        let rnd_mac = Mac([0x02, (r >> 24) as u8, (r >> 16) as u8, (r >> 8) as u8, r as u8, 0x77]);
        let me = Ipv4Addr::new(10, 0, 0, 2);
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        let z = Mac([0; 6]);
        let us = self.us;
        let kinds = if self.spoof_only { 4 } else { 16 };
        match i % kinds {
            // Gratuitous ARP claiming the kernel's address (RFC 5227 §3 announcement form).
            0 => arp_frame(BROADCAST, EVIL, &arp(ArpOperation::Request, EVIL, gw, z, gw)),
            // A "reply" nobody asked for, to us.
            1 => arp_frame(us, EVIL, &arp(ArpOperation::Reply, EVIL, gw, us, me)),
            // A request for us from the kernel's address with the spoofer's MAC.
            2 => arp_frame(BROADCAST, EVIL, &arp(ArpOperation::Request, EVIL, gw, z, me)),
            // An unsolicited NA with Override for fd00::1, to all-nodes.
            3 => {
                let na = NdiscRepr::NeighborAdvert {
                    flags: NdiscNeighborFlags::OVERRIDE,
                    target_addr: "fd00::1".parse().unwrap(),
                    lladdr: Some(EVIL.into()),
                };
                let all = ethernet::ipv6_multicast_mac(ndp::ALL_NODES);
                ndp_frame(all, EVIL, "fe80::ee".parse().unwrap(), ndp::ALL_NODES, &na)
            }
            // Requests from random on-link senders and random MACs (cache pressure).
            4 => {
                let spa = Ipv4Addr::new(10, 0, 0, 3 + (r % 250) as u8);
                arp_frame(BROADCAST, rnd_mac, &arp(ArpOperation::Request, rnd_mac, spa, z, me))
            }
            5 => arp_frame(us, rnd_mac, &arp(ArpOperation::Reply, rnd_mac, Ipv4Addr::from(r), us, me)),
            // Neighbour solicitations from random fd00::/64 sources: each is a new entry.
            6 => {
                let src = Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(r));
                let ns = NdiscRepr::NeighborSolicit {
                    target_addr: "fd00::2".parse().unwrap(),
                    lladdr: Some(rnd_mac.into()),
                };
                ndp_frame(us, rnd_mac, src, "fd00::2".parse().unwrap(), &ns)
            }
            // Router advertisements from random routers with hostile prefixes and lifetimes.
            7 => {
                let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, (r >> 16) as u16, r as u16);
                let (prefix, len, valid) = match r % 4 {
                    0 => (Ipv6Addr::UNSPECIFIED, 0, u64::from(u32::MAX)),
                    1 => (Ipv6Addr::new(0x2001, 0xdb8, r as u16, 0, 0, 0, 0, 0), 64, 0xffff_fffe),
                    2 => (Ipv6Addr::new(0x2001, 0xdb8, r as u16, 0, 0, 0, 0, 0), 128, 0),
                    _ => ("fd00::".parse().unwrap(), 64, 1),
                };
                let all = ethernet::ipv6_multicast_mac(ndp::ALL_NODES);
                ndp_frame(all, rnd_mac, src, ndp::ALL_NODES, &ra(u64::from(r as u16), rnd_mac, prefix, len, valid))
            }
            // A runt, shorter than an Ethernet header.
            8 => vec![0xff; 6 + (r % 8) as usize],
            // An 802.1Q-tagged IPv4 packet, and an IEEE 802.3 length frame (LLC).
            9 => ethernet::frame(us, rnd_mac, EthernetProtocol::from(0x8100), &[0, 1, 0x08, 0, 0x45, 0, 0, 20]),
            10 => ethernet::frame(us, rnd_mac, EthernetProtocol::from(0x0030), &[0x42, 0x42, 3, 0, 0, 0]),
            // Group and own source addresses.
            11 => ethernet::frame(us, Mac([0x01, 0, 0x5e, 0, 0, 1]), EthernetProtocol::Ipv4, &[0x45; 40]),
            12 => ethernet::frame(BROADCAST, us, EthernetProtocol::Arp, &[0; 28]),
            // Garbage IPv4 to us, and a frame for another station.
            13 => ethernet::frame(us, rnd_mac, EthernetProtocol::Ipv4, &r.to_be_bytes().repeat(12)),
            14 => ethernet::frame(rnd_mac, EVIL, EthernetProtocol::Ipv4, &[0x45; 40]),
            // A router leaving.
            _ => {
                let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, (r >> 16) as u16, r as u16);
                let all = ethernet::ipv6_multicast_mac(ndp::ALL_NODES);
                ndp_frame(all, rnd_mac, src, ndp::ALL_NODES, &ra(0, rnd_mac, Ipv6Addr::UNSPECIFIED, 0, 0))
            }
        }
    }

    /// Write frames until `stop`, [`MAX_FLOOD_FRAMES`] or [`MAX_FLOOD_TIME`]; the count sent.
    fn run(self, stop: Arc<AtomicBool>) -> u64 {
        let sock = packet_socket();
        let t0 = Instant::now();
        let mut x = 0x5eed;
        let mut sent = 0;
        for i in 0..MAX_FLOOD_FRAMES {
            if stop.load(Relaxed) || t0.elapsed() > MAX_FLOOD_TIME {
                break;
            }
            if sock.send(&self.frame(i, &mut x)).is_ok() {
                sent += 1;
            }
            if i % 64 == 63 {
                thread::yield_now();
            }
        }
        sent
    }
}

/// What the stack sent, as seen on tap0: its frames, and its IPv4 packets to [`EVIL`].
#[derive(Default)]
struct Watch {
    frames: AtomicU64,
    ip_to_evil: AtomicU64,
}

/// Count the stack's frames until `stop` (bounded by [`MAX_FLOOD_TIME`] and more).
fn watch(us: Mac, stop: Arc<AtomicBool>, w: Arc<Watch>) {
    let sock = packet_socket();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    while !stop.load(Relaxed) && t0.elapsed() < MAX_FLOOD_TIME * 2 {
        let Ok(n) = (&sock).read(&mut buf) else { continue };
        let f = &buf[..n];
        if n < 14 || Mac::from_bytes(&f[6..12]) != us {
            continue;
        }
        w.frames.fetch_add(1, Relaxed);
        let et = u16::from_be_bytes([f[12], f[13]]);
        if Mac::from_bytes(&f[..6]) == EVIL && (et == 0x0800 || (et == 0x86dd && !ndp::is_ndp(&f[14..]))) {
            w.ip_to_evil.fetch_add(1, Relaxed);
        }
    }
}

/// Pieces and pause of [`paced_write`]: 64 pieces 50 ms apart make a transfer last at least
/// 3 s however fast the link is, so the flood and the neighbour timers have time to act.
const PIECES: usize = 64;
const PAUSE: Duration = Duration::from_millis(50);

fn paced_write(w: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    for piece in data.chunks(data.len().div_ceil(PIECES)) {
        w.write_all(piece)?;
        thread::sleep(PAUSE);
    }
    Ok(())
}

/// What [`transfer_under_flood`] saw.
struct Outcome {
    took: Duration,
    flood_sent: u64,
    stack_frames: u64,
    ip_to_evil: u64,
}

/// `len` bytes each way on one connection from the stack to the kernel (10.0.0.1:3000),
/// with `flood` written onto tap0 from the moment the connection is up (the kernel's
/// entry is then confirmed) until the transfer ends; both directions checked by SHA-256.
fn transfer_under_flood(stack: &Stack, flood: Flood, len: usize) -> Outcome {
    let us = flood.us;
    let l = std::net::TcpListener::bind("10.0.0.1:3000").unwrap();
    let down = pattern(len, 7);
    let up = pattern(len, 8);
    let (want_down, want_up) = (sha256_hex(&down), sha256_hex(&up));
    let kernel = thread::spawn(move || {
        let (mut k, _) = l.accept().unwrap();
        k.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        k.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut w = k.try_clone().unwrap();
        let writer = thread::spawn(move || {
            paced_write(&mut w, &down).expect("kernel → stack");
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::with_capacity(len);
        k.read_to_end(&mut got).expect("kernel reads stack → kernel");
        writer.join().unwrap();
        (got.len(), sha256_hex(&got))
    });
    let s = TcpStream::connect(stack, "10.0.0.1:3000").expect("connect over TAP");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Watch::default());
    let watcher = {
        let (stop, seen) = (stop.clone(), seen.clone());
        thread::spawn(move || watch(us, stop, seen))
    };
    thread::sleep(Duration::from_millis(50)); // the watcher's socket is open
    let flooder = {
        let stop = stop.clone();
        thread::spawn(move || flood.run(stop))
    };
    let t0 = Instant::now();
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        paced_write(&mut w, &up).expect("stack → kernel");
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = s;
    let mut got = Vec::with_capacity(len);
    let read = r.read_to_end(&mut got);
    let took = t0.elapsed();
    stop.store(true, Relaxed);
    let flood_sent = flooder.join().unwrap();
    watcher.join().unwrap();
    read.expect("stack reads kernel → stack");
    writer.join().unwrap();
    let (n, h) = kernel.join().unwrap();
    assert_eq!((got.len(), sha256_hex(&got)), (len, want_down), "kernel → stack under the flood");
    assert_eq!((n, h), (len, want_up), "stack → kernel under the flood");
    Outcome { took, flood_sent, stack_frames: seen.frames.load(Relaxed), ip_to_evil: seen.ip_to_evil.load(Relaxed) }
}

/// Every kind of hostile frame at once, during an 8 MiB-each-way transfer paced over 3 s with the default
/// neighbour timers: the transfer completes intact, no IP packet goes to the spoofer, the
/// neighbour cache stays within its bound, and each kind of refusal is counted.
#[test]
fn tap_hostile_flood_during_tcp_transfer() {
    in_netns("tap_hostile_flood_during_tcp_transfer", || {
        let stack = tap_stack(LinkConfig::default());
        let us = stack.config().link.as_ref().unwrap().mac;
        let o = transfer_under_flood(&stack, Flood { us, spoof_only: false }, 8 << 20);
        let snap: Vec<String> =
            stack.stats.link.as_ref().unwrap().snapshot().iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!(
            "8 MiB each way in {:?} under {} hostile frames ({:.0}/s); the stack sent {} frames\n{}",
            o.took,
            o.flood_sent,
            o.flood_sent as f64 / o.took.as_secs_f64(),
            o.stack_frames,
            snap.join(" ")
        );
        assert!(o.flood_sent > 10_000, "the flood ran: {} frames", o.flood_sent);
        assert_eq!(o.ip_to_evil, 0, "IP packets the stack sent to the spoofer's MAC");
        let max = NeighConfig::default().max_entries as u64;
        assert!(link_stat(&stack, "neigh_entries") <= max, "neighbour cache over its bound");
        assert!(link_stat(&stack, "neigh_evicted") > 0, "the NS flood pressed the cache");
        assert!(link_stat(&stack, "neigh_override_refused") > 0, "spoofs refused while REACHABLE");
        for c in ["rx_bad_src_mac", "rx_own_src_mac", "rx_unknown_ethertype", "rx_not_for_us", "ra_ignored", "rx_ra"] {
            assert!(link_stat(&stack, c) > 0, "{c} counted nothing");
        }
        // The kernel's address still resolves to the kernel: a fresh connection works.
        let e = TcpStream::connect(&stack, "10.0.0.1:22").expect_err("nothing listens on 10.0.0.1:22");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "10.0.0.1 answers with a RST: {e}");
    });
}

/// Only the spoofer's claims (gratuitous ARP, unsolicited replies and requests from
/// 10.0.0.1, NA overrides for fd00::1), with short neighbour timers so the kernel's entry
/// ages out of REACHABLE many times during the transfer (REACHABLE → STALE → DELAY →
/// PROBE, as an entry in use does every `reachable_time`). The kernel keeps answering our
/// probes, so its entry must stay with its MAC: no IP packet may go to the spoofer.
#[test]
fn tap_garp_flood_cannot_take_over_a_neighbour_in_use() {
    in_netns("tap_garp_flood_cannot_take_over_a_neighbour_in_use", || {
        let neigh = NeighConfig {
            reachable_time: Duration::from_millis(300),
            delay_first_probe: Duration::from_millis(100),
            retrans_timer: Duration::from_millis(100),
            ..NeighConfig::default()
        };
        let stack = tap_stack(LinkConfig { neigh, ..LinkConfig::default() });
        let us = stack.config().link.as_ref().unwrap().mac;
        let o = transfer_under_flood(&stack, Flood { us, spoof_only: true }, 8 << 20);
        eprintln!(
            "8 MiB each way in {:?} under {} spoofs; the stack sent {} frames, {} IP packets to the spoofer; \
             probes {} refused {}",
            o.took,
            o.flood_sent,
            o.stack_frames,
            o.ip_to_evil,
            link_stat(&stack, "neigh_solicits"),
            link_stat(&stack, "neigh_override_refused"),
        );
        assert!(o.took > Duration::from_millis(600), "the transfer outlived reachable_time: {:?}", o.took);
        assert_eq!(o.ip_to_evil, 0, "IP packets the stack sent to the spoofer's MAC");
    });
}

/// RFC 1122 §3.2.2: no ICMP error about a datagram that came in a link-layer broadcast. A
/// UDP datagram to a closed port of ours, written onto tap0 in an Ethernet broadcast frame
/// (a way to make every host on a segment answer one frame), draws no port unreachable;
/// the same datagram in a frame to our MAC does.
#[test]
fn tap_no_icmp_error_about_a_link_broadcast() {
    in_netns("tap_no_icmp_error_about_a_link_broadcast", || {
        let stack = tap_stack(LinkConfig::default());
        let us = stack.config().link.as_ref().unwrap().mac;
        let sock = packet_socket();
        let ip_stat = |name: &str| stack.stats.ip.snapshot().into_iter().find(|(k, _)| *k == name).unwrap().1;
        let mut datagram = vec![0u8; 28];
        let h = netstack::wire::Ipv4Header {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            proto: netstack::wire::IpProtocol::Udp,
            ident: 1,
            frag_offset: 0,
            more_frags: false,
            dont_frag: false,
            ttl: 64,
        };
        netstack::wire::emit_ipv4_header(&mut datagram, &h, 8);
        // UDP 5000 → 9 (nothing bound), length 8, no checksum (RFC 768).
        datagram[20..28].copy_from_slice(&[0x13, 0x88, 0, 9, 0, 8, 0, 0]);
        let src = Mac([0x02, 0x11, 0x11, 0x11, 0x11, 0x11]);
        for (dst, errors) in [(BROADCAST, 0), (us, 1)] {
            let (udp, icmp) = (ip_stat("rx_udp"), ip_stat("tx_icmp_errors"));
            sock.send(&ethernet::frame(dst, src, EthernetProtocol::Ipv4, &datagram)).expect("write the frame");
            let deadline = Instant::now() + Duration::from_secs(5);
            while ip_stat("rx_udp") == udp {
                assert!(Instant::now() < deadline, "the datagram to {dst} never reached the IP layer");
                thread::sleep(Duration::from_millis(10));
            }
            thread::sleep(Duration::from_millis(100));
            assert_eq!(ip_stat("tx_icmp_errors") - icmp, errors, "ICMP errors about the datagram in a frame to {dst}");
        }
    });
}
