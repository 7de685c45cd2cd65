//! Packet views and representations (no state).
//!
//! The rest of the stack reaches packet formats only through this module. IPv4, IPv6, UDP and
//! ICMP use smoltcp's zero-copy `Packet<T: AsRef<[u8]>>` views (fuzzed, `unsafe`-free; their
//! accessors cannot panic after `new_checked`); TCP has its own `Repr` in [`tcp`]. This module
//! adds the few helpers the stack needs on top: pseudo-header checksums over `std::net::IpAddr`
//! and header emitters that write straight into a pooled buffer.

pub mod gso;
pub mod tcp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use smoltcp::wire::{
    checksum, Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet, UdpPacket,
};
pub use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, NdiscRepr,
};

/// IPv4 header length without options (RFC 791 §3.1).
pub const IPV4_HEADER_LEN: usize = 20;
/// IPv6 fixed header length (RFC 8200 §3).
pub const IPV6_HEADER_LEN: usize = 40;
/// IPv6 fragment extension header length (RFC 8200 §4.5).
pub const IPV6_FRAG_HEADER_LEN: usize = 8;
/// UDP header length (RFC 768).
pub const UDP_HEADER_LEN: usize = 8;
/// ICMP header length (echo and error messages both start with 8 bytes; RFC 792, RFC 4443).
pub const ICMP_HEADER_LEN: usize = 8;
/// Default hop limit / TTL for what we originate (RFC 1700's recommended 64).
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// RFC 1071 one's-complement sum of `data` (not complemented), as a host-order `u16` whose
/// big-endian bytes are the checksum field's. Adds 32-bit words in native byte order into
/// four 64-bit accumulators (RFC 1071 §2(B): the sum is byte-order independent; §2(C):
/// carries are deferred, and none is lost for inputs below 16 GiB), which the compiler
/// vectorizes, then folds with end-around carry.
pub fn ones_sum(data: &[u8]) -> u16 {
    let mut acc = [0u64; 4];
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        for (i, a) in acc.iter_mut().enumerate() {
            let w = [c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]];
            *a += u64::from(u32::from_ne_bytes(w));
        }
    }
    let rem = chunks.remainder();
    let mut tail = [0u8; 16];
    tail[..rem.len()].copy_from_slice(rem);
    for (i, a) in acc.iter_mut().enumerate() {
        let w = [tail[4 * i], tail[4 * i + 1], tail[4 * i + 2], tail[4 * i + 3]];
        *a += u64::from(u32::from_ne_bytes(w));
    }
    // Each accumulator took len/16 + 1 words below 2^32: for len < 16 GiB the four add up
    // to less than 2^64.
    let acc = acc.iter().sum::<u64>();
    // Fold 64 -> 16 bits, carrying around each time.
    let mut x = (acc >> 32) + (acc & 0xffff_ffff);
    x = (x >> 32) + (x & 0xffff_ffff);
    x = (x >> 16) + (x & 0xffff);
    x = (x >> 16) + (x & 0xffff);
    x = (x >> 16) + (x & 0xffff);
    u16::from_be(x as u16)
}

/// One's-complement sum of the pseudo-header for `proto` carrying `len` bytes
/// (RFC 793 §3.1 for IPv4, RFC 8200 §8.1 for IPv6), not yet complemented.
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, proto: IpProtocol, len: usize) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(&s, &d, proto, len as u32),
        (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_header_v6(&s, &d, proto, len as u32),
        // Mixed families never occur on the wire; make the checksum fail rather than panic.
        _ => 0,
    }
}

/// Full transport checksum (pseudo-header + `data`), complemented, ready for the header.
/// The checksum field inside `data` must be zero.
pub fn transport_checksum(src: IpAddr, dst: IpAddr, proto: IpProtocol, data: &[u8]) -> u16 {
    let sum = checksum::combine(&[pseudo_header_sum(src, dst, proto, data.len()), ones_sum(data)]);
    !sum
}

/// True when `data` (whose checksum field is filled) sums to all ones with the pseudo-header.
pub fn transport_checksum_ok(src: IpAddr, dst: IpAddr, proto: IpProtocol, data: &[u8]) -> bool {
    checksum::combine(&[pseudo_header_sum(src, dst, proto, data.len()), ones_sum(data)]) == !0
}

/// Fields of an IPv4 header we originate.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: IpProtocol,
    pub ident: u16,
    /// Fragment offset in bytes (multiple of 8).
    pub frag_offset: u16,
    pub more_frags: bool,
    pub dont_frag: bool,
    pub ttl: u8,
}

/// Write a 20-byte IPv4 header for `payload_len` bytes of payload into `buf[..20]`.
/// `buf` must be at least `IPV4_HEADER_LEN` long.
pub fn emit_ipv4_header(buf: &mut [u8], h: &Ipv4Header, payload_len: usize) {
    let mut p = Ipv4Packet::new_unchecked(&mut buf[..IPV4_HEADER_LEN]);
    p.set_version(4);
    p.set_header_len(IPV4_HEADER_LEN as u8);
    p.set_dscp(0);
    p.set_ecn(0);
    p.set_total_len((IPV4_HEADER_LEN + payload_len) as u16);
    p.set_ident(h.ident);
    p.clear_flags();
    p.set_dont_frag(h.dont_frag);
    p.set_more_frags(h.more_frags);
    p.set_frag_offset(h.frag_offset);
    p.set_hop_limit(h.ttl);
    p.set_next_header(h.proto);
    p.set_src_addr(h.src);
    p.set_dst_addr(h.dst);
    p.fill_checksum();
}

/// Write a 40-byte IPv6 header into `buf[..40]` (`buf` must be at least that long).
pub fn emit_ipv6_header(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: IpProtocol,
    payload_len: usize,
    hop_limit: u8,
) {
    let mut p = Ipv6Packet::new_unchecked(&mut buf[..IPV6_HEADER_LEN]);
    p.set_version(6);
    p.set_traffic_class(0);
    p.set_flow_label(0);
    p.set_payload_len(payload_len as u16);
    p.set_next_header(next_header);
    p.set_hop_limit(hop_limit);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
}

/// Length of the IP header we emit for a packet from `src` (no options, no extension headers).
pub fn ip_header_len(src: IpAddr) -> usize {
    match src {
        IpAddr::V4(_) => IPV4_HEADER_LEN,
        IpAddr::V6(_) => IPV6_HEADER_LEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let mut buf = [0u8; 28];
        let h = Ipv4Header {
            src: Ipv4Addr::new(10, 0, 0, 2),
            dst: Ipv4Addr::new(10, 0, 0, 1),
            proto: IpProtocol::Udp,
            ident: 0x1234,
            frag_offset: 0,
            more_frags: false,
            dont_frag: true,
            ttl: 64,
        };
        emit_ipv4_header(&mut buf, &h, 8);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.total_len(), 28);
        assert!(p.dont_frag());
        assert_eq!(p.src_addr(), h.src);
        // Cross-check with etherparse, an independent implementation.
        let (hdr, _) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
        assert_eq!(hdr.header_checksum, hdr.calc_header_checksum());
    }

    proptest::proptest! {
        #[test]
        fn ones_sum_matches_smoltcp(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)) {
            proptest::prop_assert_eq!(ones_sum(&data), checksum::data(&data));
        }
    }

    #[test]
    fn ones_sum_known_vector() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(ones_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        assert_eq!(ones_sum(&[0xff; 9]), 0xff00);
    }

    #[test]
    fn transport_checksum_roundtrip_v6() {
        let src: IpAddr = "fd00::2".parse().unwrap();
        let dst: IpAddr = "fd00::1".parse().unwrap();
        let mut udp = vec![0x1f, 0x40, 0x1f, 0x41, 0, 11, 0, 0, b'a', b'b', b'c'];
        let c = transport_checksum(src, dst, IpProtocol::Udp, &udp);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(transport_checksum_ok(src, dst, IpProtocol::Udp, &udp));
        udp[10] ^= 1;
        assert!(!transport_checksum_ok(src, dst, IpProtocol::Udp, &udp));
    }
}
