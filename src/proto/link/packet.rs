//! Packet sockets (raw Ethernet, like Linux `AF_PACKET`/`SOCK_RAW`): which socket gets a
//! copy of a received frame, and what a socket may send.
//!
//! A socket is bound to one EtherType or to all of them. [`LinkCore::handle_frame`]
//! copies every frame that passes the Ethernet address filter (our MAC, broadcast, a joined
//! group; a valid source other than ours: `ethernet::accept`) to each matching socket
//! *before* the core acts on it, so frames the core consumes itself (ARP, NDP) or refuses
//! for their EtherType are seen too. No promiscuous mode: frames for other stations are
//! not copied; nor are the frames we send (Linux's `PACKET_OUTGOING`).
//!
//! Invariants: the copies waiting in the core for the actor to take them
//! ([`LinkCore::poll_packet`]) cost at most `LinkConfig::packet_queue_bytes` ([`charge`]);
//! the actor queues each to its socket only within the same bound on what the socket holds
//! unread (`buf::RecvQueue`, which the socket gives back as it reads); a copy refused by
//! either is dropped and counted (`rx_packet_queue_full`), one queued counted in
//! `rx_packet_copies`. So memory per socket stays bounded whatever arrives. Sending never
//! trusts the caller: [`check_send`] bounds the frame's length (RFC 894: a 14-byte header
//! and at most an MTU of payload).
//!
//! [`LinkCore::poll_packet`]: super::LinkCore::poll_packet
//!
//! [`LinkCore::handle_frame`]: super::LinkCore::handle_frame

use super::ethernet::ETHERNET_HEADER_LEN;
use std::io;

pub type PacketSockId = u64;

/// Bytes a queued frame is charged beyond its length: the allocation, the channel slot and
/// bookkeeping, as UDP datagrams are charged (`proto::ip::udp_charge`), so a flood of
/// minimal frames is bounded as well as a few large ones.
pub const FRAME_OVERHEAD: u64 = 256;

/// Smallest EtherType (IEEE 802.3 §3.2.6: below 0x0600 the field is a length).
pub const MIN_ETHERTYPE: u16 = 0x0600;

/// What a frame of `len` bytes costs its socket's queue.
pub fn charge(len: usize) -> u64 {
    len as u64 + FRAME_OVERHEAD
}

/// `InvalidInput` unless `len` is a whole Ethernet II frame for a link of `mtu`: a header
/// and at most `mtu` bytes of payload (RFC 894).
pub fn check_send(len: usize, mtu: usize) -> io::Result<()> {
    if len < ETHERNET_HEADER_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "an Ethernet frame is at least 14 bytes"));
    }
    if len > mtu + ETHERNET_HEADER_LEN {
        let m = format!("frame of {len} bytes is longer than the link's MTU ({mtu}) plus its 14-byte header");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, m));
    }
    Ok(())
}

/// `InvalidInput` for an EtherType filter that is an IEEE 802.3 length instead.
pub fn check_ethertype(ethertype: Option<u16>) -> io::Result<()> {
    match ethertype {
        Some(t) if t < MIN_ETHERTYPE => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("EtherType {t:#06x} is an IEEE 802.3 length (EtherTypes start at 0x0600)"),
        )),
        _ => Ok(()),
    }
}

struct Entry {
    id: PacketSockId,
    ethertype: Option<u16>,
}

/// The open packet sockets (a few: a scan per frame is cheapest).
#[derive(Default)]
pub struct PacketTable {
    socks: Vec<Entry>,
    next_id: PacketSockId,
}

impl PacketTable {
    /// Open a socket receiving frames of `ethertype` (`None`: all).
    pub fn bind(&mut self, ethertype: Option<u16>) -> io::Result<PacketSockId> {
        check_ethertype(ethertype)?;
        self.next_id += 1;
        self.socks.push(Entry { id: self.next_id, ethertype });
        Ok(self.next_id)
    }

    pub fn close(&mut self, id: PacketSockId) {
        self.socks.retain(|e| e.id != id);
    }

    pub fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.socks.len()
    }

    /// The sockets that want a frame of `ethertype`.
    pub fn matching(&self, ethertype: u16) -> impl Iterator<Item = PacketSockId> + '_ {
        self.socks.iter().filter(move |e| e.ethertype.is_none_or(|t| t == ethertype)).map(|e| e.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_length_bounds() {
        assert_eq!(check_send(13, 1500).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(check_send(14, 1500).is_ok());
        assert!(check_send(1514, 1500).is_ok());
        assert_eq!(check_send(1515, 1500).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(check_send(0, 0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn filter_by_ethertype() {
        let mut t = PacketTable::default();
        let a = t.bind(Some(0x0806)).unwrap();
        let all = t.bind(None).unwrap();
        assert_ne!(a, all);
        assert_eq!(t.bind(Some(0x05dc)).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(t.matching(0x0806).collect::<Vec<_>>(), vec![a, all]);
        assert_eq!(t.matching(0x0800).collect::<Vec<_>>(), vec![all], "an IPv4 frame is not for the ARP socket");
        t.close(all);
        assert_eq!(t.len(), 1);
        assert_eq!(t.matching(0x86dd).count(), 0);
        t.close(a);
        assert!(t.is_empty());
    }

    // ------------------------------------------------ through the link core

    use super::super::arp::arp_frame;
    use super::super::ethernet::{frame, BROADCAST};
    use super::super::{LinkConfig, LinkCore};
    use crate::wire::{ArpOperation, ArpRepr, EthernetAddress as Mac, EthernetProtocol};
    use std::time::Instant;

    const PEER: Mac = Mac([0x02, 0, 0, 0, 0, 1]);

    fn stat(c: &LinkCore, name: &str) -> u64 {
        c.stats().snapshot().into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    fn who_has(target: [u8; 4]) -> Vec<u8> {
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: PEER,
            source_protocol_addr: [10, 0, 0, 1].into(),
            target_hardware_addr: Mac([0; 6]),
            target_protocol_addr: target.into(),
        };
        arp_frame(BROADCAST, PEER, &req)
    }

    /// Frames the core consumes (ARP) or refuses for their EtherType are still copied;
    /// frames for another station are not; the copies waiting are bounded in bytes.
    #[test]
    fn core_copies_what_it_consumes_within_bounds() {
        let t0 = Instant::now();
        let cfg = LinkConfig { dad: false, accept_ra: false, packet_queue_bytes: 4 * 300, ..Default::default() };
        let us = cfg.mac;
        let mut c = LinkCore::new(cfg, t0);
        while c.poll_transmit().is_some() {}
        let arp = c.packet_bind(Some(0x0806)).unwrap();
        let all = c.packet_bind(None).unwrap();
        let req = who_has([10, 0, 0, 2]);
        assert_eq!(c.handle_frame(t0, &req), None, "ARP is consumed by the core");
        let reply = c.poll_transmit().expect("and still answered");
        assert_eq!(&reply[..6], &PEER.0);
        let mut got: Vec<_> = std::iter::from_fn(|| c.poll_packet()).collect();
        got.sort();
        assert_eq!(got, vec![(arp, req.clone()), (all, req.clone())]);
        // An EtherType the core does not speak (IEEE 802.1 local experimental): refused and
        // counted by the core, copied to the socket for all.
        let exp = frame(us, PEER, EthernetProtocol::from(0x88b5), &[7; 46]);
        assert_eq!(c.handle_frame(t0, &exp), None);
        assert_eq!(stat(&c, "rx_unknown_ethertype"), 1);
        assert_eq!(std::iter::from_fn(|| c.poll_packet()).collect::<Vec<_>>(), vec![(all, exp.clone())]);
        // Unicast to someone else: nobody's.
        let other = frame(Mac([0x02, 9, 9, 9, 9, 9]), PEER, EthernetProtocol::Arp, &req[14..]);
        c.handle_frame(t0, &other);
        assert_eq!(c.poll_packet(), None);
        assert_eq!(stat(&c, "rx_not_for_us"), 1);
        // A flood the actor does not take: the copies waiting hold at most 1200 bytes.
        for _ in 0..1000 {
            c.handle_frame(t0, &exp);
        }
        let held = std::iter::from_fn(|| c.poll_packet()).count() as u64;
        assert_eq!(held, 1200 / charge(60), "what fits in the bound");
        assert_eq!(stat(&c, "rx_packet_queue_full"), 1000 - held);
        // The actor reports what it queued and what a full socket refused.
        c.packet_delivered(true);
        c.packet_delivered(false);
        assert_eq!((stat(&c, "rx_packet_copies"), stat(&c, "rx_packet_queue_full")), (1, 1001 - held));
        // Taken copies leave room again.
        c.handle_frame(t0, &exp);
        assert_eq!(std::iter::from_fn(|| c.poll_packet()).count(), 1);
        // Closing discards what was not taken.
        c.handle_frame(t0, &req);
        c.packet_close(arp);
        assert!(std::iter::from_fn(|| c.poll_packet()).all(|(id, _)| id == all));
        // Sending: as given, or refused when shorter than a header.
        while c.poll_transmit().is_some() {}
        c.send_frame(exp.clone());
        c.send_frame(vec![0; 13]);
        assert_eq!(c.poll_transmit(), Some(exp));
        assert_eq!(c.poll_transmit(), None);
        assert_eq!((stat(&c, "tx_packet_frames"), stat(&c, "tx_bad_packet")), (1, 1));
    }
}
