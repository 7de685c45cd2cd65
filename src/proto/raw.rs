//! Raw ICMP socket table: which socket an incoming ICMP message goes to.
//!
//! Sockets behave like Linux's ping sockets (`net/ipv4/ping.c`): each is bound to one
//! family and owns an echo identifier (RFC 792 "Identifier", RFC 4443 §4.1), its "port".
//! The IP core (`proto::ip`) delivers to a socket:
//! * echo replies whose identifier is the socket's;
//! * ICMP errors (destination unreachable, time exceeded, parameter problem, packet too big)
//!   that quote one of our echo requests carrying the socket's identifier;
//! * a copy of every ICMP error quoting one of our non-ICMP packets (UDP, TCP), to every
//!   socket of the family — what a traceroute with UDP probes reads.
//!
//! Everything else (echo requests, replies for no socket, NDP) stays with the core.
//! Invariant: identifiers are unique per family among open sockets and never 0 (0 asks for
//! one to be chosen). Each socket's queue is bounded in bytes by the ip actor, which queues
//! what the core delivers (`proto::ip::Deliver::Raw`).

use std::collections::HashMap;
use std::io;

pub type RawSockId = u64;

struct Entry {
    v6: bool,
    ident: u16,
}

/// The open raw ICMP sockets.
pub struct RawTable {
    socks: HashMap<RawSockId, Entry>,
    next_id: RawSockId,
    /// Where the search for a free identifier starts (the caller seeds it).
    next_ident: u16,
}

impl RawTable {
    /// An empty table; automatic identifiers start at `first_ident` (the ip actor passes a
    /// random value, as Linux picks ping "ports" from a range).
    pub fn new(first_ident: u16) -> RawTable {
        RawTable { socks: HashMap::new(), next_id: 1, next_ident: first_ident }
    }

    fn taken(&self, v6: bool, ident: u16) -> bool {
        self.socks.values().any(|e| e.v6 == v6 && e.ident == ident)
    }

    /// Open a socket of family `v6` with echo identifier `ident` (0: a free one).
    /// `AddrInUse` if that identifier is taken, or all 65,535 are.
    pub fn bind(&mut self, v6: bool, ident: u16) -> io::Result<(RawSockId, u16)> {
        let ident = if ident != 0 {
            if self.taken(v6, ident) {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, "echo identifier in use"));
            }
            ident
        } else {
            let mut found = None;
            for _ in 0..u16::MAX {
                let c = self.next_ident;
                self.next_ident = self.next_ident.wrapping_add(1);
                if c != 0 && !self.taken(v6, c) {
                    found = Some(c);
                    break;
                }
            }
            found.ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free echo identifier"))?
        };
        let id = self.next_id;
        self.next_id += 1;
        self.socks.insert(id, Entry { v6, ident });
        Ok((id, ident))
    }

    pub fn close(&mut self, id: RawSockId) {
        self.socks.remove(&id);
    }

    /// `(is_v6, identifier)` of an open socket.
    pub fn get(&self, id: RawSockId) -> Option<(bool, u16)> {
        self.socks.get(&id).map(|e| (e.v6, e.ident))
    }

    /// The socket of family `v6` owning echo identifier `ident`.
    pub fn by_ident(&self, v6: bool, ident: u16) -> Option<RawSockId> {
        self.socks.iter().find(|(_, e)| e.v6 == v6 && e.ident == ident).map(|(id, _)| *id)
    }

    /// Every socket of family `v6`.
    pub fn of_family(&self, v6: bool) -> Vec<RawSockId> {
        self.socks.iter().filter(|(_, e)| e.v6 == v6).map(|(id, _)| *id).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_unique_per_family() {
        let mut t = RawTable::new(u16::MAX);
        let (a, ia) = t.bind(false, 0).unwrap();
        assert_eq!(ia, u16::MAX);
        // The search wraps past 0, which is never handed out.
        let (_, ib) = t.bind(false, 0).unwrap();
        assert_eq!(ib, 1);
        assert_eq!(t.bind(false, 1).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        // The same identifier in the other family is free.
        let (c, ic) = t.bind(true, 1).unwrap();
        assert_eq!(ic, 1);
        assert_eq!(t.by_ident(false, u16::MAX), Some(a));
        assert_eq!(t.by_ident(true, 1), Some(c));
        assert_eq!(t.of_family(false).len(), 2);
        t.close(a);
        assert_eq!(t.by_ident(false, u16::MAX), None);
        assert!(t.bind(false, u16::MAX).is_ok());
    }

    // ------------------------------------------------ delivery decisions, through IpCore

    use crate::buf::Pool;
    use crate::proto::ip::{Deliver, IpConfig, IpCore, IpOutput};
    use crate::wire::{self, IpProtocol, Ipv4Header};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::time::Instant;

    const THEM4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const US4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// An IPv4 packet `src` → `dst` carrying ICMP message `msg` (checksum filled in).
    fn v4_icmp(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, msg: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 20 + msg.len()];
        let h = Ipv4Header {
            src,
            dst,
            proto: IpProtocol::Icmp,
            ident: 1,
            frag_offset: 0,
            more_frags: false,
            dont_frag: false,
            ttl,
        };
        wire::emit_ipv4_header(&mut b, &h, msg.len());
        b[20..].copy_from_slice(msg);
        let c = !wire::ones_sum(&b[20..]);
        b[22..24].copy_from_slice(&c.to_be_bytes());
        b
    }

    /// An IPv6 packet fd00::1 → fd00::2 carrying ICMPv6 message `msg` (checksum filled in).
    fn v6_icmp(msg: &[u8]) -> Vec<u8> {
        let (s, d): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let mut b = vec![0u8; 40 + msg.len()];
        wire::emit_ipv6_header(&mut b, s, d, IpProtocol::Icmpv6, msg.len(), 60);
        b[40..].copy_from_slice(msg);
        let c = wire::transport_checksum(s.into(), d.into(), IpProtocol::Icmpv6, &b[40..]);
        b[42..44].copy_from_slice(&c.to_be_bytes());
        b
    }

    fn echo(t: u8, ident: u16, seq: u16) -> Vec<u8> {
        let mut m = vec![t, 0, 0, 0];
        m.extend_from_slice(&ident.to_be_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(b"12345678");
        m
    }

    fn raws(out: &IpOutput) -> Vec<(RawSockId, IpAddr, u8, Vec<u8>)> {
        let f = |d: &Deliver| match d {
            Deliver::Raw { sock, from, hop_limit, msg } => Some((*sock, *from, *hop_limit, msg.clone())),
            _ => None,
        };
        out.deliver.iter().filter_map(f).collect()
    }

    fn stat(core: &IpCore, name: &str) -> u64 {
        core.stats.snapshot().into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// Echo replies go to the socket owning their identifier (its queue's bound is the ip
    /// actor's: `actor::ip`'s tests).
    #[test]
    fn echo_reply_by_identifier() {
        let pool = Pool::default();
        let mut core = IpCore::new(IpConfig::default(), 1);
        let (a, ia) = core.raw.bind(false, 0).unwrap();
        let (_b, ib) = core.raw.bind(false, 0).unwrap();
        let mut out = IpOutput::default();
        for seq in 1..=3 {
            core.handle_packet(Instant::now(), v4_icmp(THEM4, US4, 61, &echo(0, ia, seq)), &pool, &mut out);
        }
        // A reply for no socket.
        let free = (1..).find(|i| *i != ia && *i != ib).unwrap();
        core.handle_packet(Instant::now(), v4_icmp(THEM4, US4, 61, &echo(0, free, 9)), &pool, &mut out);
        let got = raws(&out);
        assert_eq!(got.len(), 3);
        assert!(got
            .iter()
            .all(|(s, from, ttl, m)| *s == a && *from == IpAddr::V4(THEM4) && *ttl == 61 && m.len() == 16));
        assert_eq!(stat(&core, "rx_icmp_ignored"), 1);
        // An ICMPv6 echo reply with a v4 socket's identifier finds no v6 socket.
        out.deliver.clear();
        core.handle_packet(Instant::now(), v6_icmp(&echo(129, ib, 1)), &pool, &mut out);
        assert!(raws(&out).is_empty());
    }

    /// An error quoting our echo request goes only to that request's socket; one quoting our
    /// UDP datagram is copied to every socket of the family and still reaches UDP.
    #[test]
    fn errors_by_what_they_quote() {
        let pool = Pool::default();
        let mut core = IpCore::new(IpConfig::default(), 1);
        let (a, ia) = core.raw.bind(false, 0).unwrap();
        let (b, _) = core.raw.bind(false, 0).unwrap();
        // Time exceeded (RFC 792) quoting our echo request with a's identifier.
        let mut te = vec![11, 0, 0, 0, 0, 0, 0, 0];
        te.extend_from_slice(&v4_icmp(US4, THEM4, 1, &echo(8, ia, 5))[..28]);
        let mut out = IpOutput::default();
        core.handle_packet(Instant::now(), v4_icmp(THEM4, US4, 64, &te), &pool, &mut out);
        let got = raws(&out);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0, got[0].3[0]), (a, 11));
        // Port unreachable quoting a UDP datagram 10.0.0.2:40000 → 10.0.0.1:33434.
        let mut udp = vec![0u8; 28];
        let h = Ipv4Header {
            src: US4,
            dst: THEM4,
            proto: IpProtocol::Udp,
            ident: 2,
            frag_offset: 0,
            more_frags: false,
            dont_frag: false,
            ttl: 64,
        };
        wire::emit_ipv4_header(&mut udp, &h, 8);
        udp[20..24].copy_from_slice(&[0x9c, 0x40, 0x82, 0x9a]);
        let mut pu = vec![3, 3, 0, 0, 0, 0, 0, 0];
        pu.extend_from_slice(&udp);
        let (u, _) = core.udp.bind("10.0.0.2:40000".parse().unwrap()).unwrap();
        core.udp.connect(u, Some("10.0.0.1:33434".parse().unwrap()));
        out.deliver.clear();
        core.handle_packet(Instant::now(), v4_icmp(THEM4, US4, 64, &pu), &pool, &mut out);
        let mut socks: Vec<_> = raws(&out).iter().map(|r| r.0).collect();
        socks.sort();
        assert_eq!(socks, vec![a, b]);
        assert!(out.deliver.iter().any(|d| matches!(d, Deliver::UdpError { sock } if *sock == u)), "UDP still told");
        // Quoting someone else's packet: nobody's.
        let mut other = pu.clone();
        other[8 + 12..8 + 16].copy_from_slice(&[10, 0, 0, 7]);
        out.deliver.clear();
        core.handle_packet(Instant::now(), v4_icmp(THEM4, US4, 64, &other), &pool, &mut out);
        assert!(raws(&out).is_empty());
    }

    /// The core writes the socket's identifier into echo requests and the checksum always.
    #[test]
    fn send_fills_identifier_and_checksum() {
        let pool = Pool::default();
        let mut core = IpCore::new(IpConfig::default(), 1);
        let (a4, i4) = core.raw.bind(false, 0).unwrap();
        let (a6, i6) = core.raw.bind(true, 0).unwrap();
        let mut out = IpOutput::default();
        let mut m = echo(8, 0, 7);
        m[2] = 0xde; // a wrong checksum: ignored
        assert_eq!(core.send_raw(a4, IpAddr::V4(THEM4), &m, &pool, &mut out).unwrap(), 16);
        let to6: IpAddr = "fe80::1".parse().unwrap();
        core.send_raw(a6, to6, &echo(128, 0, 7), &pool, &mut out).unwrap();
        assert_eq!(out.tx.len(), 2);
        let p4 = &out.tx[0];
        assert_eq!((p4[9], &p4[12..16], &p4[16..20]), (1, &US4.octets()[..], &THEM4.octets()[..]));
        assert_eq!(u16::from_be_bytes([p4[24], p4[25]]), i4);
        assert_eq!(wire::ones_sum(&p4[20..]), !0, "ICMPv4 checksum");
        let p6 = &out.tx[1];
        let src: Ipv6Addr = <[u8; 16]>::try_from(&p6[8..24]).unwrap().into();
        assert_eq!(src, "fe80::2".parse::<Ipv6Addr>().unwrap(), "link-local source for a link-local peer");
        assert_eq!(u16::from_be_bytes([p6[44], p6[45]]), i6);
        assert!(wire::transport_checksum_ok(src.into(), to6, IpProtocol::Icmpv6, &p6[40..]));
        // Bad input: clear errors, nothing sent.
        let e = core.send_raw(a4, to6, &m, &pool, &mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = core.send_raw(a4, IpAddr::V4(THEM4), &m[..7], &pool, &mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        core.raw.close(a4);
        let e = core.send_raw(a4, IpAddr::V4(THEM4), &m, &pool, &mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        assert_eq!(out.tx.len(), 2);
    }
}
