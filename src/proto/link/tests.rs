//! `LinkCore` tests on a virtual clock: frames in, frames and events out.

use super::arp::{self, arp_frame};
use super::ethernet::{self, BROADCAST};
use super::ndp::{self, ndp_frame, solicited_node};
use super::neigh::State;
use super::route::Origin;
use super::*;
use crate::wire::{ArpOperation, ArpRepr, IpProtocol, NdiscRepr};
use smoltcp::wire::{NdiscNeighborFlags, NdiscPrefixInfoFlags, NdiscPrefixInformation, NdiscRouterFlags};
use std::time::Duration;

const US: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);
const PEER: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
const EVIL: Mac = Mac([0x02, 0, 0, 0, 0, 0xee]);

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// A core whose IPv6 addresses are usable at once (no DAD), and the start-up frames drained.
fn core(cfg: LinkConfig, now: Instant) -> LinkCore {
    let mut c = LinkCore::new(LinkConfig { dad: false, ..cfg }, now);
    drain(&mut c);
    c
}

fn drain(c: &mut LinkCore) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| c.poll_transmit()).collect()
}

fn events(c: &mut LinkCore) -> Vec<LinkEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn ip4(src: Ipv4Addr, dst: Ipv4Addr, payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload];
    let h = crate::wire::Ipv4Header {
        src,
        dst,
        proto: IpProtocol::Udp,
        ident: 1,
        frag_offset: 0,
        more_frags: false,
        dont_frag: true,
        ttl: 64,
    };
    crate::wire::emit_ipv4_header(&mut p, &h, payload);
    p
}

fn ip6(src: Ipv6Addr, dst: Ipv6Addr, payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; 40 + payload];
    crate::wire::emit_ipv6_header(&mut p, src, dst, IpProtocol::Udp, payload, 64);
    p
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

fn dst_mac(f: &[u8]) -> Mac {
    Mac::from_bytes(&f[..6])
}

fn ethertype(f: &[u8]) -> u16 {
    u16::from_be_bytes([f[12], f[13]])
}

/// The ARP fields of a frame we sent.
fn arp_of(f: &[u8]) -> (ArpOperation, Mac, Ipv4Addr, Mac, Ipv4Addr) {
    assert_eq!(ethertype(f), 0x0806);
    arp::parse(&f[14..]).expect("a valid ARP packet")
}

/// The NDP message of a frame we sent, with its checksum cross-checked by etherparse.
fn ndp_of(f: &[u8]) -> (Ipv6Addr, Ipv6Addr, NdiscRepr<'_>) {
    assert_eq!(ethertype(f), 0x86dd);
    let ip = &f[14..];
    let icmp = etherparse::Icmpv6Slice::from_slice(&ip[40..]).unwrap();
    assert!(icmp.is_checksum_valid(ip[8..24].try_into().unwrap(), ip[24..40].try_into().unwrap()));
    let m = ndp::parse(ip).expect("a valid NDP message");
    (m.src, m.dst, m.repr)
}

fn na(target: Ipv6Addr, mac: Mac, solicited: bool, override_: bool) -> NdiscRepr<'static> {
    let mut flags = NdiscNeighborFlags::empty();
    if solicited {
        flags |= NdiscNeighborFlags::SOLICITED;
    }
    if override_ {
        flags |= NdiscNeighborFlags::OVERRIDE;
    }
    NdiscRepr::NeighborAdvert { flags, target_addr: target, lladdr: Some(mac.into()) }
}

fn ra(lifetime: u64, ll: Mac, prefix: Option<(&str, u8)>) -> NdiscRepr<'static> {
    NdiscRepr::RouterAdvert {
        hop_limit: 64,
        flags: NdiscRouterFlags::empty(),
        router_lifetime: smoltcp::time::Duration::from_secs(lifetime),
        reachable_time: smoltcp::time::Duration::from_secs(0),
        retrans_time: smoltcp::time::Duration::from_secs(0),
        lladdr: Some(ll.into()),
        mtu: None,
        prefix_info: prefix.map(|(p, l)| NdiscPrefixInformation {
            prefix_len: l,
            flags: NdiscPrefixInfoFlags::ON_LINK,
            valid_lifetime: smoltcp::time::Duration::from_secs(3600),
            preferred_lifetime: smoltcp::time::Duration::from_secs(1800),
            prefix: v6(p),
        }),
    }
}

#[test]
fn arp_request_for_us_is_answered_and_its_sender_learnt() {
    let t0 = Instant::now();
    let mut c = core(LinkConfig::default(), t0);
    let req = arp(ArpOperation::Request, PEER, v4("10.0.0.1"), Mac([0; 6]), v4("10.0.0.2"));
    assert_eq!(c.handle_frame(t0, &arp_frame(BROADCAST, PEER, &req)), None);
    let out = drain(&mut c);
    assert_eq!(out.len(), 1);
    assert_eq!(dst_mac(&out[0]), PEER);
    assert_eq!(arp_of(&out[0]), (ArpOperation::Reply, US, v4("10.0.0.2"), PEER, v4("10.0.0.1")));
    assert_eq!(c.neighbours().get(IpAddr::V4(v4("10.0.0.1"))), Some((State::Stale, Some(PEER))));
    // A request for somebody else is neither answered nor learnt (RFC 826: only the target adds).
    let other = arp(ArpOperation::Request, EVIL, v4("10.0.0.7"), Mac([0; 6]), v4("10.0.0.3"));
    c.handle_frame(t0, &arp_frame(BROADCAST, EVIL, &other));
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.neighbours().get(IpAddr::V4(v4("10.0.0.7"))), None);
    // The learnt entry is used at once.
    c.send_ip(t0, ip4(v4("10.0.0.2"), v4("10.0.0.1"), 8));
    let out = drain(&mut c);
    assert_eq!((out.len(), dst_mac(&out[0]), ethertype(&out[0])), (1, PEER, 0x0800));
}

#[test]
fn start_up_announces_v4_and_runs_dad_on_v6() {
    let t0 = Instant::now();
    let mut c = LinkCore::new(LinkConfig::default(), t0);
    let out = drain(&mut c);
    assert_eq!(out.len(), 3, "one gratuitous ARP, one DAD NS per IPv6 address");
    assert_eq!(dst_mac(&out[0]), BROADCAST);
    assert_eq!(arp_of(&out[0]), (ArpOperation::Request, US, v4("10.0.0.2"), Mac([0; 6]), v4("10.0.0.2")));
    for (f, a) in out[1..].iter().zip([v6("fe80::2"), v6("fd00::2")]) {
        let (src, dst, repr) = ndp_of(f);
        assert_eq!((src, dst), (Ipv6Addr::UNSPECIFIED, solicited_node(a)));
        assert_eq!(repr, NdiscRepr::NeighborSolicit { target_addr: a, lladdr: None });
        assert_eq!(dst_mac(f), Mac([0x33, 0x33, 0xff, 0, 0, 2]));
    }
    assert!(c.v6_addrs().iter().all(|(_, s)| matches!(s, AddrState::Tentative { .. })));
    // A solicitation for a tentative address is not answered.
    let ns = NdiscRepr::NeighborSolicit { target_addr: v6("fd00::2"), lladdr: Some(PEER.into()) };
    let nsf = ndp_frame(
        ethernet::ipv6_multicast_mac(solicited_node(v6("fd00::2"))),
        PEER,
        v6("fd00::1"),
        solicited_node(v6("fd00::2")),
        &ns,
    );
    c.handle_frame(t0, &nsf);
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    c.handle_timeout(t0 + Duration::from_millis(999));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(events(&mut c), vec![LinkEvent::DadSucceeded(v6("fe80::2")), LinkEvent::DadSucceeded(v6("fd00::2"))]);
    assert!(c.v6_addrs().iter().all(|(_, s)| *s == AddrState::Preferred));
    // With a link-local address, a router solicitation goes out (RFC 4861 §6.3.7).
    let out = drain(&mut c);
    assert_eq!(out.len(), 1);
    assert_eq!(dst_mac(&out[0]), Mac([0x33, 0x33, 0, 0, 0, 2]));
    let (src, dst, repr) = ndp_of(&out[0]);
    assert_eq!(
        (src, dst, repr),
        (v6("fe80::2"), ndp::ALL_ROUTERS, NdiscRepr::RouterSolicit { lladdr: Some(US.into()) })
    );
    // Now it is answered: a solicited, overriding NA to the sender, with our link address.
    c.handle_frame(t0, &nsf);
    let out = drain(&mut c);
    assert_eq!(out.len(), 1);
    assert_eq!(dst_mac(&out[0]), PEER);
    let (src, dst, repr) = ndp_of(&out[0]);
    assert_eq!((src, dst), (v6("fd00::2"), v6("fd00::1")));
    assert_eq!(repr, na(v6("fd00::2"), US, true, true));
}

#[test]
fn dad_conflicts_fail_the_address() {
    let t0 = Instant::now();
    let mut c = LinkCore::new(LinkConfig::default(), t0);
    drain(&mut c);
    // Someone answers for fd00::2: it is a duplicate (RFC 4862 §5.4.4).
    let f = ndp_frame(
        ethernet::ipv6_multicast_mac(ndp::ALL_NODES),
        EVIL,
        v6("fd00::9"),
        ndp::ALL_NODES,
        &na(v6("fd00::2"), EVIL, false, true),
    );
    c.handle_frame(t0, &f);
    // Someone else probes for fe80::2 at the same time (RFC 4862 §5.4.3).
    let g = solicited_node(v6("fe80::2"));
    let ns = NdiscRepr::NeighborSolicit { target_addr: v6("fe80::2"), lladdr: None };
    c.handle_frame(t0, &ndp_frame(ethernet::ipv6_multicast_mac(g), PEER, Ipv6Addr::UNSPECIFIED, g, &ns));
    assert_eq!(events(&mut c), vec![LinkEvent::DadFailed(v6("fd00::2")), LinkEvent::DadFailed(v6("fe80::2"))]);
    assert!(c.v6_addrs().iter().all(|(_, s)| *s == AddrState::Duplicate));
    assert_eq!(c.stats().dad_conflicts, 2);
    c.handle_timeout(t0 + Duration::from_secs(2));
    assert!(events(&mut c).is_empty(), "a duplicate never becomes preferred");
    // Its solicited-node group is left.
    c.handle_frame(t0, &ndp_frame(ethernet::ipv6_multicast_mac(g), PEER, Ipv6Addr::UNSPECIFIED, g, &ns));
    assert_eq!(c.stats().rx_group_not_joined, 1);
}

#[test]
fn send_resolves_by_arp_then_flushes_in_order() {
    let t0 = Instant::now();
    let mut c = core(LinkConfig::default(), t0);
    let p1 = ip4(v4("10.0.0.2"), v4("10.0.0.1"), 10);
    let p2 = ip4(v4("10.0.0.2"), v4("10.0.0.1"), 20);
    c.send_ip(t0, p1.clone());
    c.send_ip(t0, p2.clone());
    let out = drain(&mut c);
    assert_eq!(out.len(), 1, "one request while resolving");
    assert_eq!(dst_mac(&out[0]), BROADCAST);
    assert_eq!(arp_of(&out[0]), (ArpOperation::Request, US, v4("10.0.0.2"), Mac([0; 6]), v4("10.0.0.1")));
    let reply = arp(ArpOperation::Reply, PEER, v4("10.0.0.1"), US, v4("10.0.0.2"));
    c.handle_frame(t0 + Duration::from_millis(1), &arp_frame(US, PEER, &reply));
    let out = drain(&mut c);
    assert_eq!(out.len(), 2);
    for (f, p) in out.iter().zip([&p1, &p2]) {
        assert_eq!((dst_mac(f), Mac::from_bytes(&f[6..12]), ethertype(f)), (PEER, US, 0x0800));
        assert_eq!(&f[14..], &p[..]);
    }
    assert_eq!(c.neighbours().get(IpAddr::V4(v4("10.0.0.1"))), Some((State::Reachable, Some(PEER))));
}

#[test]
fn failed_resolution_drops_queue_and_reports_unreachable() {
    let t0 = Instant::now();
    let mut c = core(LinkConfig { accept_ra: false, ..Default::default() }, t0);
    for _ in 0..5 {
        c.send_ip(t0, ip4(v4("10.0.0.2"), v4("10.0.0.9"), 10));
    }
    let mut requests = vec![];
    let mut t = t0;
    while t <= t0 + Duration::from_secs(5) {
        c.handle_timeout(t);
        for f in drain(&mut c) {
            assert_eq!(arp_of(&f).4, v4("10.0.0.9"));
            requests.push(t);
        }
        t += Duration::from_millis(100);
    }
    assert_eq!(requests, vec![t0, t0 + Duration::from_secs(1), t0 + Duration::from_secs(2)]);
    assert_eq!(events(&mut c), vec![LinkEvent::Unreachable(IpAddr::V4(v4("10.0.0.9")))]);
    assert_eq!(c.stats().neigh_unresolved_dropped, 5);
    assert_eq!(c.stats().neigh_resolve_failed, 1);
}

#[test]
fn off_link_goes_to_the_gateway_and_no_route_is_reported() {
    let t0 = Instant::now();
    let cfg = LinkConfig { gateway4: Some(v4("10.0.0.1")), ..Default::default() };
    let mut c = core(cfg, t0);
    let p = ip4(v4("10.0.0.2"), v4("192.0.2.7"), 4);
    c.send_ip(t0, p.clone());
    let out = drain(&mut c);
    assert_eq!(arp_of(&out[0]).4, v4("10.0.0.1"), "the gateway is resolved, not the destination");
    let reply = arp(ArpOperation::Reply, PEER, v4("10.0.0.1"), US, v4("10.0.0.2"));
    c.handle_frame(t0, &arp_frame(US, PEER, &reply));
    let out = drain(&mut c);
    assert_eq!((dst_mac(&out[0]), &out[0][14..]), (PEER, &p[..]));
    // Without a gateway, off-link has no route.
    let mut c = core(LinkConfig::default(), t0);
    c.send_ip(t0, ip4(v4("10.0.0.2"), v4("192.0.2.7"), 4));
    assert!(drain(&mut c).is_empty());
    assert_eq!(events(&mut c), vec![LinkEvent::NoRoute(IpAddr::V4(v4("192.0.2.7")))]);
    assert_eq!(c.stats().tx_no_route, 1);
}

#[test]
fn broadcast_and_multicast_need_no_resolution() {
    let t0 = Instant::now();
    let mut c = core(LinkConfig::default(), t0);
    c.send_ip(t0, ip4(v4("10.0.0.2"), v4("10.0.0.255"), 4));
    c.send_ip(t0, ip4(v4("10.0.0.2"), v4("255.255.255.255"), 4));
    c.send_ip(t0, ip4(v4("10.0.0.2"), v4("224.0.0.251"), 4));
    c.send_ip(t0, ip6(v6("fe80::2"), ndp::ALL_NODES, 4));
    let macs: Vec<Mac> = drain(&mut c).iter().map(|f| dst_mac(f)).collect();
    assert_eq!(macs, vec![BROADCAST, BROADCAST, Mac([1, 0, 0x5e, 0, 0, 0xfb]), Mac([0x33, 0x33, 0, 0, 0, 1])]);
    assert!(c.neighbours().is_empty());
    // Garbage is refused with a count.
    c.send_ip(t0, vec![0x45, 0, 0]);
    c.send_ip(t0, vec![]);
    assert_eq!(c.stats().tx_bad_packet, 2);
}

#[test]
fn ipv6_resolution_by_ns_and_na() {
    let t0 = Instant::now();
    let mut c = core(LinkConfig::default(), t0);
    let p = ip6(v6("fd00::2"), v6("fd00::1"), 12);
    c.send_ip(t0, p.clone());
    let out = drain(&mut c);
    assert_eq!(out.len(), 1);
    let (src, dst, repr) = ndp_of(&out[0]);
    assert_eq!((src, dst), (v6("fd00::2"), solicited_node(v6("fd00::1"))));
    assert_eq!(repr, NdiscRepr::NeighborSolicit { target_addr: v6("fd00::1"), lladdr: Some(US.into()) });
    assert_eq!(dst_mac(&out[0]), Mac([0x33, 0x33, 0xff, 0, 0, 1]));
    // A link-local target is solicited from our link-local address.
    c.send_ip(t0, ip6(v6("fe80::2"), v6("fe80::1"), 12));
    assert_eq!(ndp_of(&drain(&mut c)[0]).0, v6("fe80::2"));
    // The solicited NA releases the packet.
    c.handle_frame(t0, &ndp_frame(US, PEER, v6("fd00::1"), v6("fd00::2"), &na(v6("fd00::1"), PEER, true, true)));
    let out = drain(&mut c);
    assert_eq!((out.len(), dst_mac(&out[0]), &out[0][14..]), (1, PEER, &p[..]));
    assert_eq!(c.neighbours().get(IpAddr::V6(v6("fd00::1"))), Some((State::Reachable, Some(PEER))));
}

#[test]
fn ndp_validation_counts_bad_messages() {
    let t0 = Instant::now();
    let mut c = core(LinkConfig::default(), t0);
    let ns = NdiscRepr::NeighborSolicit { target_addr: v6("fd00::2"), lladdr: Some(PEER.into()) };
    let good = ndp_frame(US, PEER, v6("fd00::1"), v6("fd00::2"), &ns);
    let mut hop = good.clone();
    hop[14 + 7] = 254; // RFC 4861 §7.1.1: hop limit must be 255
    let mut sum = good.clone();
    sum[14 + 40 + 2] ^= 0xff;
    // From the unspecified address with a source link-layer option.
    let unspec = ndp_frame(US, PEER, Ipv6Addr::UNSPECIFIED, solicited_node(v6("fd00::2")), &ns);
    let mcast_target = NdiscRepr::NeighborSolicit { target_addr: ndp::ALL_NODES, lladdr: None };
    let mcast = ndp_frame(US, PEER, v6("fd00::1"), v6("fd00::2"), &mcast_target);
    for (i, f) in [hop, sum, unspec, mcast, good[..14 + 44].to_vec()].iter().enumerate() {
        assert_eq!(c.handle_frame(t0, f), None);
        assert_eq!(c.stats().rx_ndp_bad, i as u64 + 1, "case {i}");
    }
    assert!(drain(&mut c).is_empty());
    c.handle_frame(t0, &good);
    assert_eq!(drain(&mut c).len(), 1);
}

#[test]
fn spoofed_replies_do_not_override_a_reachable_entry() {
    let t0 = Instant::now();
    let mut c = core(LinkConfig::default(), t0);
    let gw = IpAddr::V4(v4("10.0.0.1"));
    c.send_ip(t0, ip4(v4("10.0.0.2"), v4("10.0.0.1"), 4));
    let good = arp(ArpOperation::Reply, PEER, v4("10.0.0.1"), US, v4("10.0.0.2"));
    c.handle_frame(t0, &arp_frame(US, PEER, &good));
    drain(&mut c);
    let spoofs = [
        arp(ArpOperation::Reply, EVIL, v4("10.0.0.1"), US, v4("10.0.0.2")),
        arp(ArpOperation::Request, EVIL, v4("10.0.0.1"), Mac([0; 6]), v4("10.0.0.2")),
        arp(ArpOperation::Request, EVIL, v4("10.0.0.1"), Mac([0; 6]), v4("10.0.0.1")), // gratuitous
    ];
    for s in &spoofs {
        c.handle_frame(t0 + Duration::from_secs(1), &arp_frame(US, EVIL, s));
    }
    assert_eq!(c.neighbours().get(gw), Some((State::Reachable, Some(PEER))));
    assert_eq!(c.stats().neigh_override_refused, 3);
    c.send_ip(t0 + Duration::from_secs(2), ip4(v4("10.0.0.2"), v4("10.0.0.1"), 4));
    assert!(drain(&mut c).iter().filter(|f| ethertype(f) == 0x0800).all(|f| dst_mac(f) == PEER));
    // The same for NDP, even with the Override flag.
    let n = IpAddr::V6(v6("fd00::1"));
    c.send_ip(t0, ip6(v6("fd00::2"), v6("fd00::1"), 4));
    c.handle_frame(t0, &ndp_frame(US, PEER, v6("fd00::1"), v6("fd00::2"), &na(v6("fd00::1"), PEER, true, true)));
    c.handle_frame(t0, &ndp_frame(US, EVIL, v6("fd00::1"), v6("fd00::2"), &na(v6("fd00::1"), EVIL, true, true)));
    c.handle_frame(t0, &ndp_frame(US, EVIL, v6("fd00::1"), v6("fd00::2"), &na(v6("fd00::1"), EVIL, false, true)));
    assert_eq!(c.neighbours().get(n), Some((State::Reachable, Some(PEER))));
    // An unsolicited reply for a neighbour we never asked about creates nothing.
    let stray = arp(ArpOperation::Reply, EVIL, v4("10.0.0.50"), US, v4("10.0.0.2"));
    c.handle_frame(t0, &arp_frame(US, EVIL, &stray));
    assert_eq!(c.neighbours().get(IpAddr::V4(v4("10.0.0.50"))), None);
}

/// A small deterministic generator for flood sources.
fn lcg(x: &mut u64) -> u32 {
    *x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (*x >> 33) as u32
}

#[test]
fn arp_and_ns_floods_keep_the_cache_bounded() {
    let t0 = Instant::now();
    let neigh = NeighConfig { max_entries: 64, ..Default::default() };
    let mut c = core(LinkConfig { v4_prefix: 16, neigh, ..Default::default() }, t0);
    // One confirmed neighbour first.
    c.send_ip(t0, ip4(v4("10.0.0.2"), v4("10.0.0.1"), 4));
    c.handle_frame(t0, &arp_frame(US, PEER, &arp(ArpOperation::Reply, PEER, v4("10.0.0.1"), US, v4("10.0.0.2"))));
    let mut x = 7;
    for i in 0..5000u32 {
        let r = lcg(&mut x);
        let mac = Mac([0x02, (r >> 24) as u8, (r >> 16) as u8, (r >> 8) as u8, r as u8, 1]);
        let t = t0 + Duration::from_micros(i as u64);
        let spa = Ipv4Addr::from(0x0a00_0000 | (r & 0xffff));
        let req = arp(ArpOperation::Request, mac, spa, Mac([0; 6]), v4("10.0.0.2"));
        c.handle_frame(t, &arp_frame(BROADCAST, mac, &req));
        // A reply claiming an address we never asked for, and one off our subnet.
        let rep = arp(ArpOperation::Reply, mac, Ipv4Addr::from(r | 0x0a01_0000), US, v4("10.0.0.2"));
        c.handle_frame(t, &arp_frame(US, mac, &rep));
        let src = Ipv6Addr::from(0xfd00_u128 << 112 | r as u128);
        let ns = NdiscRepr::NeighborSolicit { target_addr: v6("fd00::2"), lladdr: Some(mac.into()) };
        c.handle_frame(t, &ndp_frame(US, mac, src, v6("fd00::2"), &ns));
        assert!(c.neighbours().len() <= 64);
        drain(&mut c);
    }
    assert_eq!(c.neighbours().len(), 64);
    assert_eq!(c.neighbours().get(IpAddr::V4(v4("10.0.0.1"))), Some((State::Reachable, Some(PEER))));
    assert!(c.stats().neigh_evicted > 9000);
    assert_eq!(c.stats().tx_arp_replies, 5000);
    assert_eq!(c.stats().tx_na, 5000);
    assert!(c.stats().rx_arp_off_subnet + c.stats().neigh_unsolicited_ignored >= 5000);
}

#[test]
fn router_advertisement_gives_a_default_route() {
    let t0 = Instant::now();
    let mut c = core(LinkConfig::default(), t0);
    let rtr = v6("fe80::1");
    let f = ndp_frame(
        ethernet::ipv6_multicast_mac(ndp::ALL_NODES),
        PEER,
        rtr,
        ndp::ALL_NODES,
        &ra(1800, PEER, Some(("2001:db8::", 64))),
    );
    c.handle_frame(t0, &f);
    assert_eq!(c.stats().rx_ra, 1);
    // Off-link goes to the router, whose link address the RA told us: sent at once.
    let p = ip6(v6("fd00::2"), v6("2001:db8:1::5"), 4);
    c.send_ip(t0, p.clone());
    let out = drain(&mut c);
    assert_eq!((out.len(), dst_mac(&out[0]), &out[0][14..]), (1, PEER, &p[..]));
    // The advertised prefix is on-link: its hosts are solicited directly.
    c.send_ip(t0, ip6(v6("fd00::2"), v6("2001:db8::5"), 4));
    let out = drain(&mut c);
    let (_, _, repr) = ndp_of(&out[0]);
    assert!(matches!(repr, NdiscRepr::NeighborSolicit { target_addr, .. } if target_addr == v6("2001:db8::5")));
    // The route expires with the router lifetime ...
    c.handle_timeout(t0 + Duration::from_secs(1800));
    assert_eq!(c.routes().next_hop(t0 + Duration::from_secs(1800), IpAddr::V6(v6("2001:db8:1::5"))), None);
    // ... or at once with lifetime 0.
    c.handle_frame(t0, &f);
    assert!(c.routes().next_hop(t0, IpAddr::V6(v6("2001:db8:1::5"))).is_some());
    let bye = ndp_frame(US, PEER, rtr, v6("fe80::2"), &ra(0, PEER, None));
    c.handle_frame(t0, &bye);
    assert_eq!(c.routes().next_hop(t0, IpAddr::V6(v6("2001:db8:1::5"))), None);
    // A flood of routers is bounded; a non-link-local source is refused.
    for i in 0..100u16 {
        let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 1, i);
        c.handle_frame(t0, &ndp_frame(US, EVIL, src, v6("fe80::2"), &ra(600, EVIL, None)));
    }
    let cfg = c.config().max_ra_routers;
    assert_eq!(c.routes().count(|r| r.origin == Origin::Ra && r.prefix_len == 0), cfg);
    let bad = c.stats().rx_ndp_bad;
    c.handle_frame(t0, &ndp_frame(US, EVIL, v6("fd00::66"), v6("fe80::2"), &ra(600, EVIL, None)));
    assert_eq!(c.stats().rx_ndp_bad, bad + 1);
    // With accept_ra off nothing is learnt.
    let mut c = core(LinkConfig { accept_ra: false, ..Default::default() }, t0);
    c.handle_frame(t0, &f);
    assert_eq!((c.stats().ra_ignored, c.routes().next_hop(t0, IpAddr::V6(v6("2001:db8:1::5")))), (1, None));
}

#[test]
fn ethernet_filtering_padding_and_groups() {
    let t0 = Instant::now();
    let mut c = core(LinkConfig::default(), t0);
    // A short IPv4 packet padded to Ethernet's 60-byte minimum comes up trimmed.
    let p = ip4(v4("10.0.0.1"), v4("10.0.0.2"), 2);
    let mut f = ethernet::frame(US, PEER, EthernetProtocol::Ipv4, &p);
    f.resize(60, 0);
    let rx = c.handle_frame(t0, &f).unwrap();
    assert_eq!(
        (rx.ethertype, &f[rx.payload.clone()], rx.src_mac, rx.dst_mac),
        (EthernetProtocol::Ipv4, &p[..], PEER, US)
    );
    // Not for us, a group we did not join, then joined.
    let g = v4("239.1.2.3");
    let to_group = ethernet::frame(ethernet::ipv4_multicast_mac(g), PEER, EthernetProtocol::Ipv4, &p);
    assert_eq!(c.handle_frame(t0, &ethernet::frame(EVIL, PEER, EthernetProtocol::Ipv4, &p)), None);
    assert_eq!(c.handle_frame(t0, &to_group), None);
    assert_eq!((c.stats().rx_not_for_us, c.stats().rx_group_not_joined), (1, 1));
    assert!(c.join_group(IpAddr::V4(g)));
    assert_eq!(c.handle_frame(t0, &to_group).unwrap().dst_mac, ethernet::ipv4_multicast_mac(g));
    c.leave_group(IpAddr::V4(g));
    assert_eq!(c.handle_frame(t0, &to_group), None);
    assert!(!c.join_group(IpAddr::V4(v4("10.0.0.1"))), "not a group");
    // IPv6 to all-nodes is accepted without joining.
    let p6 = ip6(v6("fe80::1"), ndp::ALL_NODES, 3);
    assert!(c
        .handle_frame(t0, &ethernet::frame(Mac([0x33, 0x33, 0, 0, 0, 1]), PEER, EthernetProtocol::Ipv6, &p6))
        .is_some());
}

proptest::proptest! {
    /// Arbitrary bytes after a header that passes the filter never panic and never grow state
    /// past its bounds.
    #[test]
    fn arbitrary_frames_never_panic(et in proptest::sample::select(vec![0x0800u16, 0x86dd, 0x0806]),
                                    body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
                                    ndp_type in 133u8..=137) {
        let t0 = Instant::now();
        let mut c = core(LinkConfig::default(), t0);
        let mut f = ethernet::frame(US, PEER, EthernetProtocol::from(et), &body);
        let _ = c.handle_frame(t0, &f);
        if et == 0x86dd && f.len() > 14 + 41 {
            // Steer it into the NDP path too.
            f[14] = 0x60;
            f[14 + 6] = 58;
            f[14 + 7] = 255;
            f[14 + 40] = ndp_type;
            let _ = c.handle_frame(t0, &f);
        }
        let _ = c.handle_frame(t0, &f[..f.len().min(20)]);
        proptest::prop_assert!(c.neighbours().len() <= 1);
    }
}

#[test]
fn router_solicitations_repeat_until_an_advertisement() {
    let t0 = Instant::now();
    let mut c = LinkCore::new(LinkConfig { dad: false, ..Default::default() }, t0);
    let rs_times = |c: &mut LinkCore, from: u64, to: u64| {
        let mut at = vec![];
        for s in from..=to {
            c.handle_timeout(t0 + Duration::from_secs(s));
            for f in drain(c) {
                if matches!(ndp_of(&f).2, NdiscRepr::RouterSolicit { .. }) {
                    at.push(s);
                }
            }
        }
        at
    };
    let first: Vec<_> = drain(&mut c).iter().filter(|f| ethertype(f) == 0x86dd).map(|f| ndp_of(f).0).collect();
    assert_eq!(first, vec![v6("fe80::2")], "the first at start-up, from our link-local address");
    assert_eq!(rs_times(&mut c, 0, 20), vec![4, 8], "MAX_RTR_SOLICITATIONS, 4 s apart");
    // An RA stops them.
    let mut c = LinkCore::new(LinkConfig { dad: false, ..Default::default() }, t0);
    drain(&mut c);
    c.handle_frame(t0, &ndp_frame(US, PEER, v6("fe80::1"), v6("fe80::2"), &ra(600, PEER, None)));
    assert_eq!(rs_times(&mut c, 0, 20), Vec::<u64>::new());
    assert_eq!(c.stats().tx_rs, 1);
}

/// A lease's router goes with the lease (review 21's note): before, a lease that ended, or
/// a renewal without a router, left the default route through the old router, so off-link
/// packets were still sent to it from a stack that no longer had its address.
#[test]
fn a_lease_takes_its_router_with_it() {
    let t0 = Instant::now();
    let mut c = core(LinkConfig { v4: vec![], ..Default::default() }, t0);
    let default4 = |c: &LinkCore| c.routes().lookup(t0, IpAddr::V4(v4("192.0.2.7"))).map(|r| (r.via, r.origin));
    c.set_ipv4(Some((v4("10.0.0.57"), 24)), Some(v4("10.0.0.1")));
    assert_eq!(default4(&c), Some((Some(IpAddr::V4(v4("10.0.0.1"))), Origin::Dhcp)));
    assert_eq!(c.config().gateway4, Some(v4("10.0.0.1")));
    // A renewal whose ACK names no router: the old one goes.
    c.set_ipv4(Some((v4("10.0.0.57"), 24)), None);
    assert_eq!(default4(&c), None);
    assert_eq!(c.config().gateway4, None);
    // A lease that ends takes its router too.
    c.set_ipv4(Some((v4("10.0.0.57"), 24)), Some(v4("10.0.0.1")));
    c.set_ipv4(None, None);
    assert_eq!(default4(&c), None);
    assert!(c.routes().routes().iter().all(|r| r.net.is_ipv6()), "{:?}", c.routes().routes());
    // A configured gateway stays while no lease replaced it.
    let mut c = core(LinkConfig { v4: vec![], gateway4: Some(v4("10.0.0.254")), ..Default::default() }, t0);
    c.set_ipv4(Some((v4("10.0.0.57"), 24)), None);
    assert_eq!(default4(&c), Some((Some(IpAddr::V4(v4("10.0.0.254"))), Origin::Static)));
    assert_eq!(c.config().gateway4, Some(v4("10.0.0.254")));
}

/// Review 24: a renewal that changes the router leaves one IPv4 default route, through the
/// new one; a configured gateway a lease replaced stays gone after the lease (as documented
/// on `set_ipv4`); the IPv6 routes an RA gave are untouched by every step.
#[test]
fn lease_changes_keep_one_v4_default_and_leave_ipv6_alone() {
    let t0 = Instant::now();
    let cfg = LinkConfig { v4: vec![], gateway4: Some(v4("10.0.0.254")), ..Default::default() };
    let mut c = core(cfg, t0);
    let ra_frame = ndp_frame(US, PEER, v6("fe80::1"), v6("fe80::2"), &ra(1800, PEER, Some(("2001:db8::", 64))));
    c.handle_frame(t0, &ra_frame);
    let v6_routes = |c: &LinkCore| c.routes().routes().iter().filter(|r| r.net.is_ipv6()).cloned().collect::<Vec<_>>();
    let before = v6_routes(&c);
    assert!(before.iter().any(|r| r.origin == Origin::Ra && r.prefix_len == 0), "{before:?}");
    let defaults4 = |c: &LinkCore| {
        let d = c.routes().routes().iter().filter(|r| r.net.is_ipv4() && r.prefix_len == 0);
        d.map(|r| (r.via, r.origin)).collect::<Vec<_>>()
    };
    let via = |s: &str| Some(IpAddr::V4(v4(s)));
    c.set_ipv4(Some((v4("10.0.0.57"), 24)), Some(v4("10.0.0.1")));
    assert_eq!((defaults4(&c), c.config().gateway4), (vec![(via("10.0.0.1"), Origin::Dhcp)], Some(v4("10.0.0.1"))));
    // A renewal naming another router: one default route, through the new one.
    c.set_ipv4(Some((v4("10.0.0.57"), 24)), Some(v4("10.0.0.2")));
    assert_eq!((defaults4(&c), c.config().gateway4), (vec![(via("10.0.0.2"), Origin::Dhcp)], Some(v4("10.0.0.2"))));
    // A lease on another subnet: its connected route replaces the old one.
    c.set_ipv4(Some((v4("10.1.0.5"), 16)), Some(v4("10.1.0.1")));
    assert_eq!(c.routes().lookup(t0, IpAddr::V4(v4("10.0.0.9"))).map(|r| r.via), Some(via("10.1.0.1")));
    assert_eq!(c.routes().lookup(t0, IpAddr::V4(v4("10.1.3.9"))).map(|r| r.via), Some(None));
    // The lease ends: no IPv4 default route is left (the configured one was replaced).
    c.set_ipv4(None, None);
    assert_eq!((defaults4(&c), c.config().gateway4), (vec![], None));
    assert_eq!(c.routes().next_hop(t0, IpAddr::V4(v4("192.0.2.7"))), None);
    assert_eq!(v6_routes(&c), before);
}
