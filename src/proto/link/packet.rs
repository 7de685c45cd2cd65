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
//! Invariants: each copy is charged ([`charge`]) to its socket's queue
//! ([`PacketShared::queued`], which the socket decreases as it reads) before it is queued,
//! and a copy that would take the queue past `LinkConfig::packet_queue_bytes` is dropped
//! and counted (`rx_packet_queue_full`); so the copies waiting in the core and in the
//! socket's inbox never exceed that bound per socket, whatever arrives. Sending never
//! trusts the caller: [`check_send`] bounds the frame's length (RFC 894: a 14-byte header
//! and at most an MTU of payload).
//!
//! [`LinkCore::handle_frame`]: super::LinkCore::handle_frame

use super::ethernet::ETHERNET_HEADER_LEN;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

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

/// What a packet socket shares with the link core: the bytes charged to its queue.
#[derive(Debug, Default)]
pub struct PacketShared {
    pub queued: AtomicU64,
}

pub type PacketQueue = Arc<PacketShared>;

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
    queue: PacketQueue,
}

/// The open packet sockets (a few: a scan per frame is cheapest).
#[derive(Default)]
pub struct PacketTable {
    socks: Vec<Entry>,
    next_id: PacketSockId,
}

impl PacketTable {
    /// Open a socket receiving frames of `ethertype` (`None`: all).
    pub fn bind(&mut self, ethertype: Option<u16>, queue: PacketQueue) -> io::Result<PacketSockId> {
        check_ethertype(ethertype)?;
        self.next_id += 1;
        self.socks.push(Entry { id: self.next_id, ethertype, queue });
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

    /// For each socket matching `ethertype`: `Some(id)` when a frame of `len` bytes was
    /// charged to its queue within `limit`, `None` when its queue is full (nothing charged).
    pub fn charge_matching(
        &self,
        ethertype: u16,
        len: usize,
        limit: u64,
    ) -> impl Iterator<Item = Result<PacketSockId, ()>> + '_ {
        let cost = charge(len);
        self.socks.iter().filter(move |e| e.ethertype.is_none_or(|t| t == ethertype)).map(move |e| {
            if e.queue.queued.load(Relaxed) + cost > limit {
                return Err(());
            }
            e.queue.queued.fetch_add(cost, Relaxed);
            Ok(e.id)
        })
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
    fn filter_and_bounded_charge() {
        let mut t = PacketTable::default();
        let (qa, qall): (PacketQueue, PacketQueue) = Default::default();
        let a = t.bind(Some(0x0806), qa.clone()).unwrap();
        let all = t.bind(None, qall.clone()).unwrap();
        assert_ne!(a, all);
        assert_eq!(t.bind(Some(0x05dc), Default::default()).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let limit = 2 * charge(60);
        let got: Vec<_> = t.charge_matching(0x0806, 60, limit).collect();
        assert_eq!(got, vec![Ok(a), Ok(all)]);
        let got: Vec<_> = t.charge_matching(0x0800, 60, limit).collect();
        assert_eq!(got, vec![Ok(all)], "an IPv4 frame is not for the ARP socket");
        // `all` is full now; `a` has room for one more.
        let got: Vec<_> = t.charge_matching(0x0806, 60, limit).collect();
        assert_eq!(got, vec![Ok(a), Err(())]);
        assert_eq!(qall.queued.load(Relaxed), limit, "a refused copy charges nothing");
        assert_eq!(qa.queued.load(Relaxed), limit);
        // Reading gives room back.
        qall.queued.fetch_sub(charge(60), Relaxed);
        assert_eq!(t.charge_matching(0x86dd, 60, limit).collect::<Vec<_>>(), vec![Ok(all)]);
        t.close(all);
        assert_eq!(t.len(), 1);
        assert_eq!(t.charge_matching(0x86dd, 60, limit).count(), 0);
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
        c.stats.snapshot().into_iter().find(|(n, _)| *n == name).unwrap().1
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
    /// frames for another station are not; copies are bounded in bytes per socket.
    #[test]
    fn core_copies_what_it_consumes_within_bounds() {
        let t0 = Instant::now();
        let cfg = LinkConfig { dad: false, accept_ra: false, packet_queue_bytes: 4 * 300, ..Default::default() };
        let us = cfg.mac;
        let mut c = LinkCore::new(cfg, t0);
        while c.poll_transmit().is_some() {}
        let (qa, qall): (PacketQueue, PacketQueue) = Default::default();
        let arp = c.packet_bind(Some(0x0806), qa.clone()).unwrap();
        let all = c.packet_bind(None, qall.clone()).unwrap();
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
        // A flood nobody reads: each socket holds at most 1200 bytes of charges.
        for _ in 0..1000 {
            c.handle_frame(t0, &exp);
        }
        let held = std::iter::from_fn(|| c.poll_packet()).count() as u64;
        assert!(qall.queued.load(Relaxed) <= 1200 && qa.queued.load(Relaxed) <= 1200);
        assert_eq!(held, (1200 - charge(42) - charge(60)) / charge(60), "what fits beside the earlier copies");
        assert_eq!(stat(&c, "rx_packet_queue_full"), 1000 - held);
        assert_eq!(stat(&c, "rx_packet_copies"), 3 + held);
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
