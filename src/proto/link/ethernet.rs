//! Ethernet II framing (RFC 894): receive filtering and header emission.
//!
//! Pure functions over byte slices. Invariants:
//! * [`parse`] never panics and never allocates: every frame it refuses comes back as an
//!   [`RxDrop`] reason for the caller to count;
//! * a frame is accepted only when its destination is our MAC, the broadcast address, or a
//!   multicast group in the caller's joined list, its source is a unicast address other
//!   than ours, and its EtherType is IPv4, IPv6 or ARP ([`accept`] makes the same checks
//!   but the EtherType's);
//! * emitters write exactly [`ETHERNET_HEADER_LEN`] bytes and refuse (not panic on) a short
//!   buffer.

use crate::wire::{EthernetAddress as Mac, EthernetFrame, EthernetProtocol};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

pub use smoltcp::wire::ETHERNET_HEADER_LEN;

/// The broadcast address (IEEE 802: all ones).
pub const BROADCAST: Mac = Mac([0xff; 6]);

/// IEEE 802 address bits in the first octet: I/G (group) and U/L (locally administered).
const GROUP_BIT: u8 = 0x01;
const LOCAL_BIT: u8 = 0x02;

/// A broadcast or multicast address: the I/G bit, the first octet's lowest (IEEE 802 §8.2).
pub fn is_group(mac: Mac) -> bool {
    mac.0[0] & GROUP_BIT != 0
}

/// A locally administered unicast MAC built from 6 caller-chosen bytes (the caller passes
/// random ones: the core holds no randomness). IEEE 802 §8.2: U/L bit set, I/G bit clear.
pub fn local_mac(seed: [u8; 6]) -> Mac {
    let mut b = seed;
    b[0] = (b[0] | LOCAL_BIT) & !GROUP_BIT;
    Mac(b)
}

/// The MAC an IPv4 multicast group maps to: 01:00:5e followed by the group's low 23 bits
/// (RFC 1112 §6.4).
pub fn ipv4_multicast_mac(group: Ipv4Addr) -> Mac {
    let o = group.octets();
    Mac([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
}

/// The MAC an IPv6 multicast group maps to: 33:33 followed by the group's low 32 bits
/// (RFC 2464 §7).
pub fn ipv6_multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Why [`parse`] refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxDrop {
    /// Shorter than an Ethernet header.
    Malformed,
    /// Source address is a group address (IEEE 802: sources are individual addresses).
    BadSource,
    /// Source address is our own: a loop or a spoof.
    OwnSource,
    /// Unicast to another station.
    NotForUs,
    /// Multicast to a group we did not join.
    GroupNotJoined,
    /// An EtherType we do not speak, or an IEEE 802.3 length field (values below 0x0600).
    UnknownEthertype,
}

/// An accepted frame's header fields and where its payload lies in the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rx {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: EthernetProtocol,
    pub payload: Range<usize>,
}

/// Filter and split a received frame. `joined` holds the multicast MACs we listen to.
pub fn parse(frame: &[u8], ours: Mac, joined: &[Mac]) -> Result<Rx, RxDrop> {
    let rx = accept(frame, ours, joined)?;
    match rx.ethertype {
        EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6 | EthernetProtocol::Arp => Ok(rx),
        _ => Err(RxDrop::UnknownEthertype),
    }
}

/// [`parse`]'s address checks alone: a frame for this station, of any EtherType (what a
/// packet socket may see, `super::packet`).
pub fn accept(frame: &[u8], ours: Mac, joined: &[Mac]) -> Result<Rx, RxDrop> {
    let f = EthernetFrame::new_checked(frame).map_err(|_| RxDrop::Malformed)?;
    let (dst, src) = (f.dst_addr(), f.src_addr());
    if is_group(src) {
        return Err(RxDrop::BadSource);
    }
    if src == ours {
        return Err(RxDrop::OwnSource);
    }
    if dst != ours && dst != BROADCAST {
        if !is_group(dst) {
            return Err(RxDrop::NotForUs);
        }
        if !joined.contains(&dst) {
            return Err(RxDrop::GroupNotJoined);
        }
    }
    Ok(Rx { dst, src, ethertype: f.ethertype(), payload: ETHERNET_HEADER_LEN..frame.len() })
}

/// Write an Ethernet II header into `buf[..14]`; `None` if `buf` is shorter than that.
pub fn emit_header(buf: &mut [u8], dst: Mac, src: Mac, ethertype: EthernetProtocol) -> Option<usize> {
    let hdr = buf.get_mut(..ETHERNET_HEADER_LEN)?;
    let mut f = EthernetFrame::new_unchecked(hdr);
    f.set_dst_addr(dst);
    f.set_src_addr(src);
    f.set_ethertype(ethertype);
    Some(ETHERNET_HEADER_LEN)
}

/// A new frame: header followed by `payload`.
pub fn frame(dst: Mac, src: Mac, ethertype: EthernetProtocol, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; ETHERNET_HEADER_LEN + payload.len()];
    emit_header(&mut v, dst, src, ethertype);
    v[ETHERNET_HEADER_LEN..].copy_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Mac = Mac([0x02, 0, 0, 0, 0, 2]);
    const PEER: Mac = Mac([0x02, 0, 0, 0, 0, 1]);

    fn f(dst: Mac, src: Mac, et: u16) -> Vec<u8> {
        frame(dst, src, EthernetProtocol::from(et), &[1, 2, 3])
    }

    #[test]
    fn accepts_unicast_broadcast_and_joined_groups() {
        let g4 = ipv4_multicast_mac("224.0.0.1".parse().unwrap());
        let g6 = ipv6_multicast_mac("ff02::1:ff00:2".parse().unwrap());
        assert_eq!(g4, Mac([0x01, 0, 0x5e, 0, 0, 1]));
        assert_eq!(g6, Mac([0x33, 0x33, 0xff, 0, 0, 2]));
        let joined = [g4, g6];
        for dst in [US, BROADCAST, g4, g6] {
            let fr = f(dst, PEER, 0x0800);
            let rx = parse(&fr, US, &joined).unwrap();
            assert_eq!((rx.dst, rx.src, rx.ethertype), (dst, PEER, EthernetProtocol::Ipv4));
            assert_eq!(&fr[rx.payload], &[1, 2, 3]);
        }
        // The high bit of the group's second octet is not carried (RFC 1112 §6.4).
        assert_eq!(ipv4_multicast_mac("239.129.2.3".parse().unwrap()), Mac([0x01, 0, 0x5e, 0x01, 2, 3]));
    }

    #[test]
    fn refuses_with_reasons() {
        let other = Mac([0x02, 0, 0, 0, 0, 9]);
        let group = ipv6_multicast_mac("ff02::1:ff00:9".parse().unwrap());
        assert_eq!(parse(&f(other, PEER, 0x0800), US, &[]), Err(RxDrop::NotForUs));
        assert_eq!(parse(&f(group, PEER, 0x86dd), US, &[]), Err(RxDrop::GroupNotJoined));
        assert_eq!(parse(&f(US, BROADCAST, 0x0800), US, &[]), Err(RxDrop::BadSource));
        assert_eq!(parse(&f(US, US, 0x0800), US, &[]), Err(RxDrop::OwnSource));
        assert_eq!(parse(&f(US, PEER, 0x8100), US, &[]), Err(RxDrop::UnknownEthertype));
        assert_eq!(parse(&f(US, PEER, 0x0040), US, &[]), Err(RxDrop::UnknownEthertype));
        for n in 0..ETHERNET_HEADER_LEN {
            assert_eq!(parse(&f(US, PEER, 0x0800)[..n], US, &[]), Err(RxDrop::Malformed));
        }
    }

    #[test]
    fn emit_refuses_short_buffer_and_local_mac_bits() {
        assert_eq!(emit_header(&mut [0u8; 13], US, PEER, EthernetProtocol::Arp), None);
        let mut b = [0u8; 14];
        assert_eq!(emit_header(&mut b, US, PEER, EthernetProtocol::Arp), Some(14));
        assert_eq!(&b[12..], &[0x08, 0x06]);
        let m = local_mac([0xff; 6]);
        assert_eq!(m.0[0] & 0x03, 0x02);
        assert!(m.is_unicast());
    }
}
