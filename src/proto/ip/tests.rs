//! Unit tests of the IP core: IPv6 extension headers and their errors, offload trailers,
//! echo rate limits, UDP TTL and broadcast, `bind_any`'s foreign destinations; and what a
//! hostile sender must not get through: martian sources and destinations, ICMP errors that
//! must not be sent or routed, IPv6 UDP without a checksum.

use super::*;
use crate::buf::Pool;

fn v6_packet(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 40 + payload.len()];
    let s: Ipv6Addr = "fd00::1".parse().unwrap();
    let d: Ipv6Addr = "fd00::2".parse().unwrap();
    wire::emit_ipv6_header(&mut b, s, d, IpProtocol::from(next), payload.len(), 64);
    b[40..].copy_from_slice(payload);
    b
}

/// RFC 8200 §4: an unknown upper-layer protocol gets a parameter problem (code 1) whose
/// pointer names the Next Header field that carried it.
#[test]
fn unknown_next_header_pointer() {
    let pool = Pool::default();
    for (pkt, want) in [
        (v6_packet(253, &[0; 8]), 6u32),
        // destination options (PadN filling 8 bytes), then protocol 253
        (v6_packet(60, &[253, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0]), 40),
        // an atomic fragment (RFC 6946), then protocol 253
        (v6_packet(44, &[253, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]), 40),
        // destination options, an atomic fragment, then protocol 253
        (v6_packet(60, &[44, 0, 1, 4, 0, 0, 0, 0, 253, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0]), 48),
    ] {
        let mut core = IpCore::new(IpConfig::default(), 1);
        let mut out = IpOutput::default();
        core.handle_packet(Instant::now(), pkt, &pool, &mut out);
        assert_eq!(out.tx.len(), 1, "one ICMPv6 error");
        let icmp = &out.tx[0][40..];
        assert_eq!((icmp[0], icmp[1]), (icmp6::PARAM_PROBLEM, icmp6::CODE_UNRECOGNIZED_NEXT_HEADER));
        assert_eq!(u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]), want);
    }
}

/// What the core did with one IPv6 packet.
#[derive(Debug, PartialEq)]
enum Fate {
    /// Handed to TCP with its header at `start`.
    Tcp { start: usize },
    /// Dropped and counted in `rx_bad_ext_header`, nothing sent.
    BadExtHeader,
    /// A parameter problem (code 2) pointing at byte `pointer`.
    ParamProblem { pointer: u32 },
}

fn fate_of(core: &mut IpCore, pkt: Vec<u8>) -> Fate {
    let mut out = IpOutput::default();
    let bad = core.stats.rx_bad_ext_header;
    core.handle_packet(Instant::now(), pkt, &Pool::default(), &mut out);
    if let [Deliver::Tcp { start, .. }] = &out.deliver[..] {
        return Fate::Tcp { start: *start };
    }
    assert!(out.deliver.is_empty(), "delivered something else");
    assert_eq!(core.stats.rx_bad_ext_header, bad + 1, "a drop is counted");
    match &out.tx[..] {
        [] => Fate::BadExtHeader,
        [m] => {
            assert_eq!((m[40], m[41]), (icmp6::PARAM_PROBLEM, icmp6::CODE_UNRECOGNIZED_OPTION));
            Fate::ParamProblem { pointer: u32::from_be_bytes([m[44], m[45], m[46], m[47]]) }
        }
        more => panic!("{} packets sent", more.len()),
    }
}

/// An 8-byte options header (hop-by-hop or destination) followed by `nh`: one option
/// of type `opt` with 4 bytes of data.
fn options_header(nh: u8, opt: u8) -> [u8; 8] {
    [nh, 0, opt, 4, 0, 0, 0, 0]
}

/// RFC 8200 §4: the extension-header walk. Hop-by-hop only first; options whose type's
/// high bits say so are skipped, discarded, or answered with a parameter problem naming
/// them; a routing header with segments left is discarded (we do not forward); an atomic
/// fragment is a whole datagram (RFC 6946); a truncated header is a counted drop.
#[test]
fn ipv6_extension_headers_are_walked_by_the_rfc() {
    const PADN: u8 = 1;
    let tcp = [0u8; 20];
    let cat = |parts: &[&[u8]]| parts.concat();
    let cases: Vec<(&str, u8, Vec<u8>, Fate)> = vec![
        ("hop-by-hop", ext::HOP_BY_HOP, cat(&[&options_header(6, PADN), &tcp]), Fate::Tcp { start: 48 }),
        (
            "destination options, then hop-by-hop",
            ext::DEST_OPTS,
            cat(&[&options_header(ext::HOP_BY_HOP, PADN), &options_header(6, PADN), &tcp]),
            Fate::BadExtHeader,
        ),
        ("unknown option, skip", ext::DEST_OPTS, cat(&[&options_header(6, 0x1e), &tcp]), Fate::Tcp { start: 48 }),
        ("unknown option, discard", ext::DEST_OPTS, cat(&[&options_header(6, 0x5e), &tcp]), Fate::BadExtHeader),
        (
            "unknown option, parameter problem",
            ext::HOP_BY_HOP,
            cat(&[&options_header(6, 0x9e), &tcp]),
            Fate::ParamProblem { pointer: 42 },
        ),
        ("routing, 0 segments left", ext::ROUTING, cat(&[&[6, 0, 0, 0, 0, 0, 0, 0], &tcp]), Fate::Tcp { start: 48 }),
        ("routing, 1 segment left", ext::ROUTING, cat(&[&[6, 0, 0, 1, 0, 0, 0, 0], &tcp]), Fate::BadExtHeader),
        ("atomic fragment", ext::FRAGMENT, cat(&[&[6, 0, 0, 0, 0, 0, 0, 7], &tcp]), Fate::Tcp { start: 48 }),
        (
            "atomic fragment, reserved bits set",
            ext::FRAGMENT,
            cat(&[&[6, 0xff, 0, 6, 0, 0, 0, 7], &tcp]),
            Fate::Tcp { start: 48 },
        ),
        ("routing header shorter than 8 bytes", ext::ROUTING, vec![6, 0, 0], Fate::BadExtHeader),
        ("truncated options", ext::HOP_BY_HOP, vec![6], Fate::BadExtHeader),
        ("options longer than the packet", ext::HOP_BY_HOP, vec![6, 1, PADN, 4, 0, 0, 0, 0], Fate::BadExtHeader),
        ("truncated fragment header", ext::FRAGMENT, vec![6, 0, 0, 1], Fate::BadExtHeader),
    ];
    let mut core = IpCore::new(IpConfig::default(), 1);
    for (name, next, payload, want) in cases {
        assert_eq!(fate_of(&mut core, v6_packet(next, &payload)), want, "{name}");
    }
}

/// RFC 8200 §4.3: hop-by-hop options must immediately follow the IPv6 header, also
/// when an atomic fragment header comes first (the walk once forgot that it had seen
/// a header when the header was an atomic fragment's).
#[test]
fn hop_by_hop_after_an_atomic_fragment_is_dropped() {
    let payload = [&[ext::HOP_BY_HOP, 0, 0, 0, 0, 0, 0, 7][..], &options_header(6, 1), &[0; 20]].concat();
    let mut core = IpCore::new(IpConfig::default(), 1);
    assert_eq!(fate_of(&mut core, v6_packet(ext::FRAGMENT, &payload)), Fate::BadExtHeader);
}

/// Two fragments (with destination options after the fragment header, in the
/// fragmentable part) are reassembled and handed on after those options.
#[test]
fn ipv6_fragments_are_reassembled_past_their_options() {
    let body = [&options_header(6, 1)[..], &[0xab; 40]].concat();
    let frag = |offset, more, data: &[u8]| v6_fragment(ext::DEST_OPTS, offset, more, data);
    let mut core = IpCore::new(IpConfig::default(), 1);
    let mut out = IpOutput::default();
    core.handle_packet(Instant::now(), frag(0, true, &body[..24]), &Pool::default(), &mut out);
    assert!(out.deliver.is_empty() && out.tx.is_empty());
    assert_eq!(fate_of(&mut core, frag(3, false, &body[24..])), Fate::Tcp { start: 8 });
}

/// The fragment `data` at `offset` (in 8-byte units) of datagram 9, whose fragmentable
/// part starts with header `nh`.
fn v6_fragment(nh: u8, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let [a, b] = ((offset << 3) | u16::from(more)).to_be_bytes();
    v6_packet(ext::FRAGMENT, &[&[nh, 0, a, b, 0, 0, 0, 9][..], data].concat())
}

/// A reassembled datagram's headers come after a fragment header: hop-by-hop there is
/// misplaced (RFC 8200 §4.3), and its options and routing header obey the same rules
/// as an unfragmented packet's (§4.2, §4.4). None can be quoted whole, so no parameter
/// problem: each is a counted drop.
#[test]
fn a_reassembled_datagrams_headers_are_checked() {
    let tcp = [0u8; 20];
    let cases: [(&str, u8, [u8; 8]); 4] = [
        ("hop-by-hop", ext::HOP_BY_HOP, options_header(6, 1)),
        ("unknown option, discard", ext::DEST_OPTS, options_header(6, 0x5e)),
        ("unknown option, parameter problem", ext::DEST_OPTS, options_header(6, 0x9e)),
        ("routing, 1 segment left", ext::ROUTING, [6, 0, 0, 1, 0, 0, 0, 0]),
    ];
    for (name, nh, header) in cases {
        let body = [&header[..], &tcp].concat();
        let mut core = IpCore::new(IpConfig::default(), 1);
        let mut out = IpOutput::default();
        core.handle_packet(Instant::now(), v6_fragment(nh, 0, true, &body[..16]), &Pool::default(), &mut out);
        assert!(out.deliver.is_empty() && out.tx.is_empty(), "{name}: first fragment");
        let fate = fate_of(&mut core, v6_fragment(nh, 2, false, &body[16..]));
        assert_eq!((name, fate), (name, Fate::BadExtHeader));
        assert_eq!(core.stats.rx_reassembled, 1, "{name}");
    }
}

/// A packet to an address that is not ours passes only as TCP (`bind_any`): an option
/// that asks for a parameter problem gets none sent from that address.
#[test]
fn no_parameter_problem_from_a_foreign_address() {
    let mut core = IpCore::new(IpConfig::default(), 1);
    core.accept_any_tcp = true;
    for upper in [17u8, 6] {
        let mut pkt = v6_packet(ext::HOP_BY_HOP, &[&options_header(upper, 0x9e)[..], &[0; 20]].concat());
        pkt[24..40].copy_from_slice(&"2001:db8::99".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(fate_of(&mut core, pkt), Fate::BadExtHeader, "upper layer {upper}");
    }
    assert_eq!(core.stats.tx_icmp_errors, 0);
}

/// An IPv4 echo request from 10.0.0.1 to 10.0.0.2 with sequence number `seq`.
fn v4_echo(seq: u16) -> Vec<u8> {
    v4_echo_from(Ipv4Addr::new(10, 0, 0, 1), seq)
}

/// An IPv4 echo request from `src` to 10.0.0.2 with sequence number `seq`.
fn v4_echo_from(src: Ipv4Addr, seq: u16) -> Vec<u8> {
    let mut b = vec![0u8; 20 + 16];
    let h = Ipv4Header {
        src,
        dst: Ipv4Addr::new(10, 0, 0, 2),
        proto: IpProtocol::Icmp,
        ident: seq,
        frag_offset: 0,
        more_frags: false,
        dont_frag: false,
        ttl: 64,
    };
    wire::emit_ipv4_header(&mut b, &h, 16);
    let m = &mut b[20..];
    m[0] = icmp4::ECHO_REQUEST;
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    let c = !wire::ones_sum(m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    b
}

/// For an offloading device every packet the core sends ends with the transmit
/// trailer (`wire::gso`), added by the core, not the actor: an echo reply, a UDP
/// datagram and each of its fragments.
#[test]
fn packets_for_an_offloading_device_carry_the_trailer() {
    let pool = Pool::default();
    let mut core = IpCore::new(IpConfig { tx_trailer: true, ..IpConfig::default() }, 1);
    let mut out = IpOutput::default();
    core.handle_packet(Instant::now(), v4_echo(1), &pool, &mut out);
    let from = "10.0.0.2:5000".parse().unwrap();
    core.send_udp_ttl(from, "10.0.0.1:9".parse().unwrap(), &[7; 3000], 64, &pool, &mut out).unwrap();
    assert_eq!(out.tx.len(), 4, "a reply and three fragments");
    for p in &out.tx {
        let ip_len = usize::from(u16::from_be_bytes([p[2], p[3]]));
        assert_eq!((p.len(), p[p.len() - 1]), (ip_len + 1, wire::gso::TX_TRAILER_PLAIN));
    }
    assert_eq!(core.stats.tx_packets, 4);
}

/// Echo replies come from their own token bucket: a burst, then the rate.
#[test]
fn echo_replies_are_rate_limited() {
    let pool = Pool::default();
    let cfg = IpConfig { echo_rate: 1000, echo_burst: 50, ..IpConfig::default() };
    let mut core = IpCore::new(cfg, 1);
    let t0 = Instant::now();
    let mut out = IpOutput::default();
    for i in 0..200 {
        core.handle_packet(t0, v4_echo(i), &pool, &mut out);
    }
    assert_eq!(out.tx.len(), 50, "the burst");
    assert_eq!(out.tx[0][20], icmp4::ECHO_REPLY);
    assert_eq!(core.stats.echo_rate_limited, 150);
    // 100 ms later: 100 more tokens, no more.
    out.tx.clear();
    for i in 0..200 {
        core.handle_packet(t0 + Duration::from_millis(100), v4_echo(i), &pool, &mut out);
    }
    assert_eq!(out.tx.len(), 50, "refilled to the burst only");
    // A flood spread over one second: at most rate·t + burst replies.
    out.tx.clear();
    let start = t0 + Duration::from_secs(10);
    for i in 0..20_000u32 {
        let now = start + Duration::from_micros(50 * i as u64);
        core.handle_packet(now, v4_echo(i as u16), &pool, &mut out);
    }
    assert!(out.tx.len() <= 1000 + 50, "{}", out.tx.len());
    assert!(out.tx.len() >= 1000, "{}", out.tx.len());
    // ICMP errors keep their own budget.
    assert_eq!(core.stats.icmp_rate_limited, 0);
}

/// A socket's TTL / hop limit reaches the header, fragments included; the default is 64.
#[test]
fn udp_ttl_is_the_callers() {
    let (pool, mut out) = (Pool::default(), IpOutput::default());
    let mut core = IpCore::new(IpConfig::default(), 1);
    let (v4, v6): (SocketAddr, SocketAddr) = ("10.0.0.1:33434".parse().unwrap(), "[fd00::1]:9".parse().unwrap());
    core.send_udp_ttl("0.0.0.0:5000".parse().unwrap(), v4, &[0; 32], 1, &pool, &mut out).unwrap();
    core.send_udp_ttl("0.0.0.0:5000".parse().unwrap(), v4, &[0; 3000], 7, &pool, &mut out).unwrap();
    core.send_udp_ttl("[::]:5000".parse().unwrap(), v6, &[0; 32], 255, &pool, &mut out).unwrap();
    core.send_udp("0.0.0.0:5000".parse().unwrap(), v4, &[0; 8], &pool, &mut out).unwrap();
    let ttls: Vec<u8> = out.tx.iter().map(|p| if p[0] >> 4 == 4 { p[8] } else { p[7] }).collect();
    assert_eq!(ttls, [1, 7, 7, 7, 255, 64]);
}

/// DHCP's datagrams (RFC 2131 §4.1): from 0.0.0.0 to 255.255.255.255, and back to
/// 255.255.255.255 for a core with no IPv4 address; both reach a 0.0.0.0-bound socket.
#[test]
fn limited_broadcast_udp_both_ways() {
    let any = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    let mut client = IpCore::new(IpConfig::default(), 1);
    client.set_v4(vec![], 24);
    let (csock, _) = client.udp.bind(any(68)).unwrap();
    let mut server = IpCore::new(IpConfig { v4: vec![Ipv4Addr::new(10, 0, 0, 1)], ..IpConfig::default() }, 2);
    let (ssock, _) = server.udp.bind(any(67)).unwrap();
    fn exchange(from: &mut IpCore, to: &mut IpCore, src: std::net::SocketAddrV4, port: u16, want: UdpSockId) {
        let pool = Pool::default();
        let mut out = IpOutput::default();
        let dst = std::net::SocketAddrV4::new(Ipv4Addr::BROADCAST, port);
        from.send_udp_from(src, dst, b"dhcp", &pool, &mut out).unwrap();
        let mut got = IpOutput::default();
        to.handle_packet(Instant::now(), out.tx.pop().unwrap(), &pool, &mut got);
        match got.deliver.pop() {
            Some(Deliver::Udp { sock, from, buf, start, end, .. }) => {
                assert_eq!((sock, from, &buf[start..end]), (want, SocketAddr::V4(src), &b"dhcp"[..]))
            }
            other => panic!("not delivered: {other:?}"),
        }
    }
    let v4 = std::net::SocketAddrV4::new;
    exchange(&mut client, &mut server, v4(Ipv4Addr::UNSPECIFIED, 68), 67, ssock);
    exchange(&mut server, &mut client, v4(Ipv4Addr::new(10, 0, 0, 1), 67), 68, csock);
    assert_eq!(client.stats.rx_not_ours + server.stats.rx_not_ours, 0);
}

/// bind_any lets TCP to a foreign address through, nothing else.
#[test]
fn foreign_destination_only_for_tcp() {
    let pool = Pool::default();
    let mut core = IpCore::new(IpConfig::default(), 1);
    core.accept_any_tcp = true;
    let mut echo = vec![128u8, 0, 0, 0, 0, 1, 0, 1];
    let mut pkt = v6_packet(58, &echo);
    pkt[24..40].copy_from_slice(&"2001:db8::99".parse::<Ipv6Addr>().unwrap().octets());
    let src: IpAddr = "fd00::1".parse().unwrap();
    let dst: IpAddr = "2001:db8::99".parse().unwrap();
    let c = wire::transport_checksum(src, dst, IpProtocol::Icmpv6, &echo);
    echo[2..4].copy_from_slice(&c.to_be_bytes());
    pkt[40..].copy_from_slice(&echo);
    let mut out = IpOutput::default();
    core.handle_packet(Instant::now(), pkt, &pool, &mut out);
    assert!(out.tx.is_empty(), "no echo reply from a foreign address");
    assert_eq!(core.stats.rx_not_ours, 1);
}

/// An IPv4 packet from `src` to `dst` carrying `payload` as protocol `proto`.
fn v4_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 20 + payload.len()];
    let h = Ipv4Header {
        src,
        dst,
        proto: IpProtocol::from(proto),
        ident: 1,
        frag_offset: 0,
        more_frags: false,
        dont_frag: false,
        ttl: 64,
    };
    wire::emit_ipv4_header(&mut b, &h, payload.len());
    b[20..].copy_from_slice(payload);
    b
}

/// A UDP header and `data` from `src:sport` to `dst:dport`, with its checksum.
fn udp_segment(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 8 + data.len()];
    write_udp(&mut b, src, dst, sport, dport, data);
    b
}

/// RFC 4443 §2.4(e.1): no ICMPv6 error about an ICMPv6 error, also when what is wrong is
/// an option header in front of it (Linux's `icmp6_send` walks to the upper layer,
/// `is_ineligible`). An echo request behind the same header still gets its problem.
#[test]
fn no_parameter_problem_about_an_icmpv6_error() {
    let mut core = IpCore::new(IpConfig::default(), 1);
    // A destination unreachable (type 1) quoting something, behind hop-by-hop options
    // with an option whose type asks for a parameter problem.
    let unreachable = [&[icmp6::DEST_UNREACHABLE, 4, 0, 0, 0, 0, 0, 0][..], &[0x60; 48]].concat();
    let pkt = v6_packet(ext::HOP_BY_HOP, &[&options_header(58, 0x9e)[..], &unreachable].concat());
    assert_eq!(fate_of(&mut core, pkt), Fate::BadExtHeader);
    let echo = [icmp6::ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1];
    let pkt = v6_packet(ext::HOP_BY_HOP, &[&options_header(58, 0x9e)[..], &echo].concat());
    assert_eq!(fate_of(&mut core, pkt), Fate::ParamProblem { pointer: 42 });
    assert_eq!(core.stats.tx_icmp_errors, 1);
}

/// RFC 8200 §8.1: an IPv6 UDP datagram with a zero checksum is discarded, even when its
/// bytes happen to sum so that zero passes verification (0x0000 and 0xffff are both
/// ones'-complement zero), and even when an offloading device vouched for it.
#[test]
fn ipv6_udp_with_a_zero_checksum_is_dropped() {
    let (s, d): (IpAddr, IpAddr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
    let mut udp = udp_segment(s, d, 1000, 53, &[0; 8]);
    // Make the correct checksum be zero (sent as 0xffff): add the current one to a
    // payload word, so that everything sums to all ones; then send zero instead.
    udp[6..8].copy_from_slice(&[0, 0]);
    let c = wire::transport_checksum(s, d, IpProtocol::Udp, &udp);
    let word = wire::checksum::combine(&[u16::from_be_bytes([udp[8], udp[9]]), c]);
    udp[8..10].copy_from_slice(&word.to_be_bytes());
    assert!(wire::transport_checksum_ok(s, d, IpProtocol::Udp, &udp), "zero passes the sum");
    for offload in [false, true] {
        let mut core = IpCore::new(IpConfig { rx_trailer: offload, ..IpConfig::default() }, 1);
        core.udp.bind("[::]:53".parse().unwrap()).unwrap();
        let mut pkt = v6_packet(17, &udp);
        if offload {
            pkt.push(1); // the device's "checksum valid"
        }
        let mut out = IpOutput::default();
        core.handle_packet(Instant::now(), pkt, &Pool::default(), &mut out);
        assert!(out.deliver.is_empty(), "offload {offload}: delivered");
        assert_eq!(core.stats.rx_udp_bad, 1, "offload {offload}");
    }
}

/// `bind_any` takes TCP for any unicast destination, not for addresses that never appear
/// on a link (RFC 1122 §3.2.1.3: 0/8 and 127/8; RFC 4291 §2.5.2/§2.5.3: :: and ::1),
/// which Linux drops as martian: the engine would answer from them.
#[test]
fn bind_any_takes_no_tcp_for_loopback_or_unspecified() {
    let mut core = IpCore::new(IpConfig::default(), 1);
    core.accept_any_tcp = true;
    let them = Ipv4Addr::new(10, 0, 0, 1);
    let fate = |core: &mut IpCore, pkt: Vec<u8>| {
        let mut out = IpOutput::default();
        core.handle_packet(Instant::now(), pkt, &Pool::default(), &mut out);
        matches!(out.deliver[..], [Deliver::Tcp { .. }])
    };
    for dst in ["127.0.0.1", "0.0.0.0", "0.1.2.3"] {
        let pkt = v4_packet(them, dst.parse().unwrap(), 6, &[0; 20]);
        assert!(!fate(&mut core, pkt), "TCP to {dst} delivered");
    }
    for dst in ["::1", "::"] {
        let mut pkt = v6_packet(6, &[0; 20]);
        pkt[24..40].copy_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
        assert!(!fate(&mut core, pkt), "TCP to {dst} delivered");
    }
    assert_eq!(core.stats.rx_not_ours, 5);
    // A foreign unicast destination still passes.
    assert!(fate(&mut core, v4_packet(them, Ipv4Addr::new(192, 0, 2, 7), 6, &[0; 20])));
}

/// RFC 1122 §3.2.1.3: {0, host} (0/8) is never a source outside initialisation; only
/// 0.0.0.0 passes, for UDP (DHCP). Linux drops 0/8 sources as martian; we must neither
/// deliver such a packet nor answer it with a port unreachable.
#[test]
fn a_source_in_0_slash_8_is_dropped() {
    let mut core = IpCore::new(IpConfig::default(), 1);
    let (src, us) = (Ipv4Addr::new(0, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 2));
    let udp = udp_segment(IpAddr::V4(src), IpAddr::V4(us), 1000, 9, b"x");
    for (proto, payload) in [(17u8, udp), (6, vec![0; 20])] {
        let mut out = IpOutput::default();
        core.handle_packet(Instant::now(), v4_packet(src, us, proto, &payload), &Pool::default(), &mut out);
        assert!(out.deliver.is_empty() && out.tx.is_empty(), "protocol {proto}: answered or delivered");
    }
    assert_eq!(core.stats.rx_bad_source, 2);
}

/// An ICMPv4 message `[type, code]` with `rest` (the 4 bytes after the checksum) quoting
/// `quote`, from 10.0.0.1 to `dst`.
fn icmp4_error(dst: Ipv4Addr, type_code: [u8; 2], rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
    let mut m = [&[type_code[0], type_code[1], 0, 0][..], &rest, quote].concat();
    let c = !wire::ones_sum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    v4_packet(Ipv4Addr::new(10, 0, 0, 1), dst, 1, &m)
}

/// An ICMPv4 error quotes an IPv4 packet (RFC 792), an ICMPv6 error an IPv6 one (RFC 4443
/// §3): an ICMPv4 "fragmentation needed" whose quote is shaped as an IPv6 header of ours
/// must not reach a TCP connection as that family's path MTU news.
#[test]
fn an_icmpv4_error_quoting_an_ipv6_packet_is_not_routed() {
    let mut core = IpCore::new(IpConfig::default(), 1);
    let mut quote = vec![0u8; 40 + 8];
    wire::emit_ipv6_header(&mut quote, "fd00::2".parse().unwrap(), "fd00::1".parse().unwrap(), IpProtocol::Tcp, 8, 64);
    quote[40..44].copy_from_slice(&[0x1f, 0x90, 0xc0, 0x00]); // ports 8080 -> 49152
    let pkt = icmp4_error(
        Ipv4Addr::new(10, 0, 0, 2),
        [icmp4::DEST_UNREACHABLE, icmp4::CODE_FRAG_NEEDED],
        [0, 0, 2, 0],
        &quote,
    );
    let mut out = IpOutput::default();
    core.handle_packet(Instant::now(), pkt, &Pool::default(), &mut out);
    assert!(out.deliver.is_empty(), "{:?}", out.deliver);
    assert_eq!(core.stats.rx_icmp_errors, 1);
    assert_eq!(core.stats.rx_icmp_bad, 1, "a quote of the wrong family is a bad one");
}

/// Linux's `icmp_rcv` drops ICMP errors sent to a broadcast address: a port unreachable
/// or "fragmentation needed" broadcast to the subnet is nobody's news about our packets.
#[test]
fn an_icmp_error_to_a_broadcast_address_is_ignored() {
    let mut core = IpCore::new(IpConfig::default(), 1);
    let (us, them) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1));
    let mut tcp = [0u8; 20];
    tcp[..4].copy_from_slice(&[0x1f, 0x90, 0xc0, 0x00]);
    let quote = v4_packet(us, them, 6, &tcp);
    for dst in [Ipv4Addr::new(10, 0, 0, 255), Ipv4Addr::BROADCAST] {
        let pkt = icmp4_error(dst, [icmp4::DEST_UNREACHABLE, icmp4::CODE_FRAG_NEEDED], [0, 0, 2, 0], &quote[..28]);
        let mut out = IpOutput::default();
        core.handle_packet(Instant::now(), pkt, &Pool::default(), &mut out);
        assert!(out.deliver.is_empty(), "to {dst}: {:?}", out.deliver);
    }
    assert_eq!(core.stats.rx_icmp_ignored, 2);
    // The same error to our address is delivered.
    let pkt = icmp4_error(us, [icmp4::DEST_UNREACHABLE, icmp4::CODE_FRAG_NEEDED], [0, 0, 2, 0], &quote[..28]);
    let mut out = IpOutput::default();
    core.handle_packet(Instant::now(), pkt, &Pool::default(), &mut out);
    assert!(matches!(out.deliver[..], [Deliver::TcpIcmp { class: IcmpErrorClass::PacketTooBig(512), .. }]));
}

/// RFC 4291 §2.5.5.2: IPv4-mapped addresses are for the socket API, not the wire; Linux's
/// `ipv6_rcv` drops packets from them (a dual-stack socket would see ::ffff:127.0.0.1
/// as a local peer).
#[test]
fn an_ipv4_mapped_source_is_dropped() {
    let mut core = IpCore::new(IpConfig::default(), 1);
    core.udp.bind("[::]:53".parse().unwrap()).unwrap();
    let src: Ipv6Addr = "::ffff:127.0.0.1".parse().unwrap();
    let udp = udp_segment(IpAddr::V6(src), "fd00::2".parse().unwrap(), 1000, 53, b"x");
    let mut pkt = v6_packet(17, &udp);
    pkt[8..24].copy_from_slice(&src.octets());
    let mut out = IpOutput::default();
    core.handle_packet(Instant::now(), pkt, &Pool::default(), &mut out);
    assert!(out.deliver.is_empty() && out.tx.is_empty());
    assert_eq!(core.stats.rx_bad_source, 1);
}

/// RFC 3021 §2.2: a /31 has no directed broadcast address, its two addresses are the two
/// hosts (as the link layer's `is_subnet_broadcast` knows); a /32 has none either. The
/// peer of 10.0.0.2/31 is 10.0.0.3: its echo request is answered, its UDP delivered.
#[test]
fn a_slash_31_peer_is_not_a_broadcast_address() {
    let (us, peer) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3));
    for prefix in [31, 32] {
        let mut core = IpCore::new(IpConfig { v4: vec![us], v4_prefix: prefix, ..IpConfig::default() }, 1);
        let mut echo = v4_echo(1);
        echo[12..16].copy_from_slice(&peer.octets());
        echo[10..12].copy_from_slice(&[0, 0]);
        let c = !wire::ones_sum(&echo[..20]);
        echo[10..12].copy_from_slice(&c.to_be_bytes());
        let mut out = IpOutput::default();
        core.handle_packet(Instant::now(), echo, &Pool::default(), &mut out);
        assert_eq!(out.tx.len(), 1, "/{prefix}: no echo reply");
        assert_eq!(out.tx[0][16..20], peer.octets());
        let (sock, _) = core.udp.bind("0.0.0.0:9".parse().unwrap()).unwrap();
        let udp = udp_segment(IpAddr::V4(peer), IpAddr::V4(us), 1000, 9, b"x");
        core.handle_packet(Instant::now(), v4_packet(peer, us, 17, &udp), &Pool::default(), &mut out);
        assert!(matches!(out.deliver[..], [Deliver::Udp { sock: s, .. }] if s == sock), "/{prefix}: {:?}", out.deliver);
        assert_eq!(core.stats.rx_bad_source, 0);
    }
}

/// TCP to a broadcast address is dropped (a connection joins two unicast addresses; Linux's
/// `tcp_v4_conn_request` drops a SYN routed as broadcast) and counted as a packet that is
/// not ours (IpInAddrErrors), not as an unknown protocol (IpInUnknownProtos): TCP is known.
#[test]
fn tcp_to_a_broadcast_address_is_not_an_unknown_protocol() {
    let mut core = IpCore::new(IpConfig::default(), 1);
    let pkt = v4_packet(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 255), 6, &[0; 20]);
    let mut out = IpOutput::default();
    core.handle_packet(Instant::now(), pkt, &Pool::default(), &mut out);
    assert!(out.deliver.is_empty() && out.tx.is_empty());
    assert_eq!((core.stats.rx_unknown_protocol, core.stats.rx_not_ours), (0, 1));
}

/// RFC 8200 §4.5: a fragment that would make the reassembled packet's Payload Length pass
/// 65,535 is discarded; that length counts the unfragmentable part's headers as well as
/// the fragmentable part (which reassembly alone bounds by 65,535).
#[test]
fn an_ipv6_fragment_past_65535_with_its_unfragmentable_headers_is_dropped() {
    let mut core = IpCore::new(IpConfig::default(), 1);
    // Hop-by-hop (8 bytes), then the last fragment at 65,520: 65,528 bytes of fragmentable
    // part, 65,536 of payload. Then the same fragment without the hop-by-hop header.
    let frag = |hbh: bool| {
        let [a, b] = 65_520u16.to_be_bytes(); // M = 0
        let f = [&[17u8, 0, a, b, 0, 0, 0, 9][..], &[0; 8]].concat();
        match hbh {
            true => v6_packet(ext::HOP_BY_HOP, &[&options_header(ext::FRAGMENT, 1)[..], &f].concat()),
            false => v6_packet(ext::FRAGMENT, &f),
        }
    };
    let mut out = IpOutput::default();
    core.handle_packet(Instant::now(), frag(true), &Pool::default(), &mut out);
    assert_eq!((core.stats.rx_frag_dropped, core.stats.rx_frag_pending), (1, 0));
    core.handle_packet(Instant::now(), frag(false), &Pool::default(), &mut out);
    assert_eq!((core.stats.rx_frag_dropped, core.stats.rx_frag_pending), (1, 1));
}

/// RFC 4443 §2.4(e.4)/(e.5): no ICMPv6 error about a packet that came in a link-layer broadcast
/// or multicast frame (TAP); the same datagram to a closed port in a unicast frame draws a
/// port unreachable.
#[test]
fn no_icmpv6_error_about_a_link_group_frame() {
    let (s, d): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
    let mut udp = vec![0x13, 0x88, 0, 9, 0, 12, 0, 0, b'p', b'i', b'n', b'g'];
    let c = wire::transport_checksum(s.into(), d.into(), IpProtocol::Udp, &udp);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    for (link_group, sent) in [(true, 0), (false, 1)] {
        let mut core = IpCore::new(IpConfig::default(), 1);
        let mut out = IpOutput::default();
        core.handle_link_packet(Instant::now(), v6_packet(17, &udp), link_group, &Pool::default(), &mut out);
        assert_eq!(core.stats.rx_udp, 1, "the datagram reached UDP");
        assert_eq!(out.tx.len(), sent, "ICMPv6 errors with link_group {link_group}");
    }
}

/// RFC 8200 §4.2 and RFC 4443 §2.4(e.4)/(e.5): an unrecognized option whose type's high
/// bits are 10 draws a parameter problem (code 2) even about a packet that came in a
/// link-layer multicast or broadcast frame (the exception of §2.4(e.3) applies there too;
/// Linux's `icmp6_send`: `opt_unrec`); with high bits 11, or any other error, it does not.
#[test]
fn parameter_problem_for_a_10_option_even_about_a_link_group_frame() {
    for (opt, link_group, sent) in [(0x9e, true, 1), (0x9e, false, 1), (0xde, true, 0), (0xde, false, 1)] {
        let pkt = v6_packet(ext::DEST_OPTS, &[&options_header(17, opt)[..], &[0; 8]].concat());
        let mut core = IpCore::new(IpConfig::default(), 1);
        let mut out = IpOutput::default();
        core.handle_link_packet(Instant::now(), pkt, link_group, &Pool::default(), &mut out);
        let case = format!("option {opt:#x}, link group {link_group}");
        assert_eq!(core.stats.rx_bad_ext_header, 1, "{case}: dropped");
        assert_eq!(out.tx.len(), sent, "{case}: errors sent");
        if let [m] = &out.tx[..] {
            assert_eq!((m[40], m[41]), (icmp6::PARAM_PROBLEM, icmp6::CODE_UNRECOGNIZED_OPTION), "{case}");
            assert_eq!(u32::from_be_bytes([m[44], m[45], m[46], m[47]]), 42, "{case}: pointer");
        }
    }
}

/// A TCP segment to our unicast address in a link-layer broadcast or multicast frame is
/// not for a connection: Linux's `tcp_v4_rcv`/`tcp_v6_rcv` discard what is not
/// `PACKET_HOST` before any lookup, so such a frame draws neither a SYN-ACK nor a RST.
#[test]
fn tcp_in_a_link_group_frame_is_not_ours() {
    let v4 = v4_packet(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 6, &[0; 20]);
    let v6 = v6_packet(6, &[0; 20]);
    for (pkt, link_group, delivered) in [(&v4, true, 0), (&v4, false, 1), (&v6, true, 0), (&v6, false, 1)] {
        let mut core = IpCore::new(IpConfig::default(), 1);
        let mut out = IpOutput::default();
        core.handle_link_packet(Instant::now(), pkt.clone(), link_group, &Pool::default(), &mut out);
        let v = if pkt[0] >> 4 == 4 { "IPv4" } else { "IPv6" };
        assert_eq!(out.deliver.len(), delivered, "{v}, link group {link_group}");
        assert_eq!(core.stats.rx_not_ours, 1 - delivered as u64, "{v}, link group {link_group}: counted");
        assert!(out.tx.is_empty());
    }
}

/// The identification of the packets the core sends counts per destination (keyed, as
/// Linux's `ip_idents`): a prober pinging us twice sees consecutive values however many
/// replies went to others in between. With one counter for all it read how many packets
/// the stack had sent meanwhile (an idle scan over ICMP or UDP; review 19).
#[test]
fn echo_reply_identifications_tell_a_prober_nothing() {
    let mut core = IpCore::new(IpConfig::default(), 7);
    let pool = Pool::default();
    let reply_ident = |core: &mut IpCore, src: Ipv4Addr, seq: u16| {
        let mut out = IpOutput::default();
        core.handle_packet(Instant::now(), v4_echo_from(src, seq), &pool, &mut out);
        assert_eq!(out.tx.len(), 1, "an echo reply");
        u16::from_be_bytes([out.tx[0][4], out.tx[0][5]])
    };
    let prober = Ipv4Addr::new(10, 0, 0, 1);
    let first = reply_ident(&mut core, prober, 1);
    for (i, host) in (3..23).enumerate() {
        reply_ident(&mut core, Ipv4Addr::new(10, 0, 0, host), i as u16);
    }
    assert_eq!(reply_ident(&mut core, prober, 2), first.wrapping_add(1), "20 replies to others in between");
}
