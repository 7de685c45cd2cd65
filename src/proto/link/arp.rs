//! ARP (RFC 826) for Ethernet and IPv4, on smoltcp's `ArpPacket`/`ArpRepr` views.
//!
//! Rules, in RFC 826's order ("Packet Reception"): an existing entry for the sender is
//! updated (the merge rule; the neighbour cache refuses to change a REACHABLE entry); a new
//! entry is made only when we are the target of a request; a request for one of our
//! addresses is answered. Hardening on top, as Linux does: a sender whose protocol address
//! is not on one of our subnets, is unspecified (an RFC 5227 probe: answered but not
//! learnt), or is one of our own addresses (a conflict, counted) is not learnt; a sender
//! hardware address that is not unicast is refused. A reply only confirms an entry for which
//! we have a request outstanding; an unsolicited reply creates nothing.

use super::ethernet::{self, BROADCAST};
use super::neigh::Learn;
use super::{route, LinkCore};
use crate::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress as Mac, EthernetProtocol};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

/// An ARP frame carrying `repr` to `dst`.
pub fn arp_frame(dst: Mac, src: Mac, repr: &ArpRepr) -> Vec<u8> {
    let mut body = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut body[..]));
    ethernet::frame(dst, src, EthernetProtocol::Arp, &body)
}

/// The fields of an Ethernet/IPv4 ARP packet, if `payload` is one.
pub fn parse(payload: &[u8]) -> Option<(ArpOperation, Mac, Ipv4Addr, Mac, Ipv4Addr)> {
    let p = ArpPacket::new_checked(payload).ok()?;
    match ArpRepr::parse(&p).ok()? {
        ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_hardware_addr,
            target_protocol_addr,
        } => Some((operation, source_hardware_addr, source_protocol_addr, target_hardware_addr, target_protocol_addr)),
        #[allow(unreachable_patterns)] // `ArpRepr` is non-exhaustive
        _ => None,
    }
}

impl LinkCore {
    pub(super) fn handle_arp(&mut self, now: Instant, _rx: &ethernet::Rx, payload: &[u8]) {
        let Some((op, sha, spa, _tha, tpa)) = parse(payload) else {
            self.stats.rx_arp_bad += 1;
            return;
        };
        if !matches!(op, ArpOperation::Request | ArpOperation::Reply) || !sha.is_unicast() {
            self.stats.rx_arp_bad += 1;
            return;
        }
        let for_us = self.cfg.v4.contains(&tpa);
        if self.cfg.v4.contains(&spa) {
            // Someone else claims our address (RFC 5227 §2.4): never learnt.
            self.stats.rx_arp_addr_conflict += 1;
        } else if !spa.is_unspecified() {
            let on_link =
                self.cfg.v4.iter().any(|o| route::contains(IpAddr::V4(*o), self.cfg.v4_prefix, IpAddr::V4(spa)));
            if on_link && !spa.is_broadcast() && !spa.is_multicast() {
                let how = match (op, for_us) {
                    (ArpOperation::Request, true) => Learn::Sender,
                    (ArpOperation::Reply, true) => Learn::Advert { solicited: true, override_: true },
                    _ => Learn::Advert { solicited: false, override_: true },
                };
                let mut acts = std::mem::take(&mut self.acts);
                self.neigh.learn(now, IpAddr::V4(spa), sha, how, &mut acts);
                self.run(&mut acts);
                self.acts = acts;
            } else {
                self.stats.rx_arp_off_subnet += 1;
            }
        }
        if op == ArpOperation::Request && for_us {
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: self.cfg.mac,
                source_protocol_addr: tpa,
                target_hardware_addr: sha,
                target_protocol_addr: spa,
            };
            self.stats.tx_arp_replies += 1;
            self.push_raw(arp_frame(sha, self.cfg.mac, &reply));
        }
    }

    /// Ask who has `target`: broadcast, or unicast to `unicast` when probing a known entry.
    pub(super) fn arp_request(&mut self, target: Ipv4Addr, unicast: Option<Mac>) {
        let t = IpAddr::V4(target);
        let src = self.cfg.v4.iter().find(|o| route::contains(IpAddr::V4(**o), self.cfg.v4_prefix, t));
        let Some(&spa) = src.or(self.cfg.v4.first()) else {
            self.stats.tx_no_source += 1;
            return;
        };
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: spa,
            target_hardware_addr: unicast.unwrap_or(Mac([0; 6])),
            target_protocol_addr: target,
        };
        self.stats.tx_arp_requests += 1;
        self.push_raw(arp_frame(unicast.unwrap_or(BROADCAST), self.cfg.mac, &req));
    }

    /// An ARP announcement of `addr` (RFC 5227 §3: a request with sender and target both
    /// `addr`), so neighbours holding an old mapping update it.
    pub(super) fn gratuitous_arp(&mut self, addr: Ipv4Addr) {
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: addr,
            target_hardware_addr: Mac([0; 6]),
            target_protocol_addr: addr,
        };
        self.stats.tx_arp_requests += 1;
        self.push_raw(arp_frame(BROADCAST, self.cfg.mac, &req));
    }
}
