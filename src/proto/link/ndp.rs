//! Neighbour Discovery (RFC 4861) and duplicate address detection (RFC 4862 §5.4), on
//! smoltcp's `Icmpv6Packet` and `NdiscRepr`.
//!
//! Handled here: neighbour solicitations (answered for our preferred addresses; learnt from
//! their source link-layer option), neighbour advertisements (fed to the neighbour cache),
//! router advertisements (a default route and on-link prefixes, bounded), and DAD. Every
//! message is validated as RFC 4861 §6.1.2/§7.1 ask (hop limit 255, code 0, checksum, a
//! non-multicast target, the unspecified source only with a solicited-node destination and no
//! source link-layer option, S clear on a multicast NA, a link-local RA source) and counted
//! in `rx_ndp_bad` otherwise. Received router solicitations and redirects are ignored
//! (counted); we send router solicitations after start-up while `accept_ra` is on (§6.3.7).
//! DAD sends `DupAddrDetectTransmits` = 1 solicitation per address (RFC 4862 §5.1's
//! default) at start-up, without the random initial delay (the core has no randomness), and
//! fails on an NA for the address or an NS for it from the unspecified address.

use super::ethernet::{self, Rx};
use super::neigh::{Learn, RETRANS_TIMER};
use super::route::{Origin, Route};
use super::{AddrState, LinkCore, LinkEvent};
use crate::wire::{EthernetAddress as Mac, EthernetProtocol, Icmpv6Packet, IpProtocol, NdiscRepr};
use smoltcp::wire::{NdiscNeighborFlags, NdiscPrefixInfoFlags, RawHardwareAddress};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// RFC 4291 §2.7.1: all-nodes, link-local scope.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// RFC 4861 §7.1: NDP messages are sent and must arrive with hop limit 255.
pub const NDP_HOP_LIMIT: u8 = 255;
const IPV6_HEADER_LEN: usize = 40;
/// ICMPv6 types 133-137 (RFC 4861 §4).
const NDP_TYPES: std::ops::RangeInclusive<u8> = 133..=137;
/// RFC 4861 §10: all-routers, link-local scope (RFC 4291 §2.7.1).
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// RFC 4861 §10: MAX_RTR_SOLICITATIONS.
pub const MAX_RTR_SOLICITATIONS: u8 = 3;
/// RFC 4861 §10: RTR_SOLICITATION_INTERVAL.
pub const RTR_SOLICITATION_INTERVAL: Duration = Duration::from_secs(4);
/// A prefix lifetime of all ones is infinite (RFC 4861 §4.6.2).
const INFINITE: u64 = 0xffff_ffff;

/// The solicited-node multicast address of `a`: ff02::1:ff00:0/104 and `a`'s low 24 bits
/// (RFC 4291 §2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | o[13] as u16, u16::from_be_bytes([o[14], o[15]]))
}

fn is_solicited_node(a: Ipv6Addr) -> bool {
    let s = a.segments();
    s[..5] == [0xff02, 0, 0, 0, 0] && s[5] == 1 && s[6] >> 8 == 0xff
}

/// fe80::/10 (RFC 4291 §2.5.6).
pub fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// True when `ip` is an IPv6 packet whose first next header is ICMPv6 of an NDP type.
pub fn is_ndp(ip: &[u8]) -> bool {
    ip.len() > IPV6_HEADER_LEN && ip[6] == u8::from(IpProtocol::Icmpv6) && NDP_TYPES.contains(&ip[IPV6_HEADER_LEN])
}

/// An Ethernet frame carrying NDP message `repr` from `src` to `dst`.
pub fn ndp_frame(dst_mac: Mac, src_mac: Mac, src: Ipv6Addr, dst: Ipv6Addr, repr: &NdiscRepr) -> Vec<u8> {
    let icmp_len = repr.buffer_len();
    let mut ip = vec![0u8; IPV6_HEADER_LEN + icmp_len];
    crate::wire::emit_ipv6_header(&mut ip, src, dst, IpProtocol::Icmpv6, icmp_len, NDP_HOP_LIMIT);
    let mut icmp = Icmpv6Packet::new_unchecked(&mut ip[IPV6_HEADER_LEN..]);
    repr.emit(&mut icmp);
    icmp.fill_checksum(&src, &dst);
    ethernet::frame(dst_mac, src_mac, EthernetProtocol::Ipv6, &ip)
}

/// A received, validated NDP message.
pub(super) struct Msg<'a> {
    pub(super) src: Ipv6Addr,
    pub(super) dst: Ipv6Addr,
    pub(super) repr: NdiscRepr<'a>,
}

/// Parse and validate the checks common to all NDP messages (RFC 4861 §6.1, §7.1).
pub(super) fn parse(ip: &[u8]) -> Option<Msg<'_>> {
    let p = crate::wire::Ipv6Packet::new_checked(ip).ok()?;
    if p.hop_limit() != NDP_HOP_LIMIT || p.next_header() != IpProtocol::Icmpv6 {
        return None;
    }
    let (src, dst) = (p.src_addr(), p.dst_addr());
    let icmp = Icmpv6Packet::new_checked(p.payload()).ok()?;
    if icmp.msg_code() != 0 || !icmp.verify_checksum(&src, &dst) || src.is_multicast() {
        return None;
    }
    let repr = NdiscRepr::parse(&icmp).ok()?;
    Some(Msg { src, dst, repr })
}

/// A link-layer address option's Ethernet address (6 bytes, unicast), if present.
fn lladdr(o: Option<RawHardwareAddress>) -> Option<Mac> {
    let o = o?;
    let mac = Mac::from_bytes(o.as_bytes().get(..6).filter(|_| o.len() == 6)?);
    mac.is_unicast().then_some(mac)
}

impl LinkCore {
    pub(super) fn handle_ndp(&mut self, now: Instant, rx: &Rx, ip: &[u8]) {
        let Some(msg) = parse(ip) else {
            self.stats.rx_ndp_bad += 1;
            return;
        };
        let ok = match msg.repr {
            NdiscRepr::NeighborSolicit { target_addr, lladdr: ll } => self.handle_ns(now, rx, &msg, target_addr, ll),
            NdiscRepr::NeighborAdvert { flags, target_addr, lladdr: ll } => {
                self.handle_na(now, &msg, flags, target_addr, ll)
            }
            NdiscRepr::RouterAdvert { .. } => self.handle_ra(now, &msg),
            _ => {
                self.stats.rx_ndp_ignored += 1;
                true
            }
        };
        if !ok {
            self.stats.rx_ndp_bad += 1;
        }
    }

    fn addr_state(&self, a: Ipv6Addr) -> Option<AddrState> {
        self.v6.iter().find(|(x, _)| *x == a).map(|(_, s)| *s)
    }

    /// RFC 4861 §7.2.3-§7.2.4, RFC 4862 §5.4.3. False for an invalid message.
    fn handle_ns(&mut self, now: Instant, rx: &Rx, m: &Msg, target: Ipv6Addr, ll: Option<RawHardwareAddress>) -> bool {
        let from_unspec = m.src.is_unspecified();
        if target.is_multicast() || (from_unspec && (!is_solicited_node(m.dst) || ll.is_some())) {
            return false;
        }
        match self.addr_state(target) {
            Some(AddrState::Tentative { .. }) => {
                if from_unspec {
                    self.dad_failed(target); // another node is checking the same address
                }
                return true; // a unicast-sourced NS for a tentative address is ignored
            }
            Some(AddrState::Preferred) => {}
            _ => {
                self.stats.rx_ndp_ignored += 1;
                return true;
            }
        }
        let sender = lladdr(ll);
        if let (false, Some(mac)) = (from_unspec, sender) {
            let mut acts = std::mem::take(&mut self.acts);
            self.neigh.learn(now, IpAddr::V6(m.src), mac, Learn::Sender, &mut acts);
            self.run(&mut acts);
            self.acts = acts;
        }
        // From the unspecified address: to all-nodes, S clear (RFC 4861 §7.2.4).
        let (dst, dst_mac, solicited) = if from_unspec {
            (ALL_NODES, ethernet::ipv6_multicast_mac(ALL_NODES), false)
        } else {
            (m.src, sender.unwrap_or(rx.src), true)
        };
        let mut flags = NdiscNeighborFlags::OVERRIDE;
        if solicited {
            flags |= NdiscNeighborFlags::SOLICITED;
        }
        let na = NdiscRepr::NeighborAdvert { flags, target_addr: target, lladdr: Some(self.cfg.mac.into()) };
        self.stats.tx_na += 1;
        self.push_raw(ndp_frame(dst_mac, self.cfg.mac, target, dst, &na));
        true
    }

    /// RFC 4861 §7.2.5, RFC 4862 §5.4.4.
    fn handle_na(
        &mut self,
        now: Instant,
        m: &Msg,
        flags: NdiscNeighborFlags,
        target: Ipv6Addr,
        ll: Option<RawHardwareAddress>,
    ) -> bool {
        let solicited = flags.contains(NdiscNeighborFlags::SOLICITED);
        if target.is_multicast() || (m.dst.is_multicast() && solicited) {
            return false;
        }
        match self.addr_state(target) {
            Some(AddrState::Tentative { .. }) => {
                self.dad_failed(target);
                return true;
            }
            Some(_) => {
                self.stats.dad_conflicts += 1; // someone claims an address we hold
                return true;
            }
            None => {}
        }
        let Some(mac) = lladdr(ll) else {
            self.stats.rx_ndp_ignored += 1; // no target link-layer option: nothing to learn
            return true;
        };
        let how = Learn::Advert { solicited, override_: flags.contains(NdiscNeighborFlags::OVERRIDE) };
        let mut acts = std::mem::take(&mut self.acts);
        self.neigh.learn(now, IpAddr::V6(target), mac, how, &mut acts);
        self.run(&mut acts);
        self.acts = acts;
        true
    }

    /// RFC 4861 §6.1.2 validation and §6.3.4 processing.
    fn handle_ra(&mut self, now: Instant, m: &Msg) -> bool {
        let NdiscRepr::RouterAdvert { router_lifetime, lladdr: ll, prefix_info, .. } = m.repr else { return false };
        if !is_link_local(&m.src) {
            return false;
        }
        self.stats.rx_ra += 1;
        if !self.cfg.accept_ra {
            self.stats.ra_ignored += 1;
            return true;
        }
        self.rs_next = None; // RFC 4861 §6.3.7: an RA ends the solicitations
        if let Some(mac) = lladdr(ll) {
            let mut acts = std::mem::take(&mut self.acts);
            self.neigh.learn(now, IpAddr::V6(m.src), mac, Learn::Sender, &mut acts);
            self.run(&mut acts);
            self.acts = acts;
        }
        let router = IpAddr::V6(m.src);
        let default = |r: &Route| r.origin == Origin::Ra && r.prefix_len == 0 && r.net.is_ipv6();
        let lifetime = router_lifetime.secs();
        if lifetime == 0 {
            self.routes.remove_where(|r| default(r) && r.via == Some(router));
        } else {
            let known = self.routes.count(|r| default(r) && r.via == Some(router)) > 0;
            if known || self.routes.count(default) < self.cfg.max_ra_routers {
                let expires = Some(now + Duration::from_secs(lifetime));
                let net = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
                self.routes.add(Route { net, prefix_len: 0, via: Some(router), origin: Origin::Ra, expires });
            } else {
                self.stats.ra_ignored += 1;
            }
        }
        if let Some(pi) = prefix_info {
            self.ra_prefix(now, pi.flags, pi.prefix, pi.prefix_len, pi.valid_lifetime.secs());
        }
        true
    }

    /// An on-link prefix from an RA (RFC 4861 §6.3.4): added, refreshed, or removed when its
    /// valid lifetime is zero. No SLAAC.
    fn ra_prefix(&mut self, now: Instant, flags: NdiscPrefixInfoFlags, prefix: Ipv6Addr, len: u8, valid: u64) {
        if !flags.contains(NdiscPrefixInfoFlags::ON_LINK) || is_link_local(&prefix) || len > 128 {
            return;
        }
        let net = super::route::mask(IpAddr::V6(prefix), len);
        let same = |r: &Route| r.origin == Origin::Ra && r.via.is_none() && r.net == net && r.prefix_len == len;
        if valid == 0 {
            self.routes.remove_where(same);
            return;
        }
        let onlink = |r: &Route| r.origin == Origin::Ra && r.via.is_none();
        if self.routes.count(same) == 0 && self.routes.count(onlink) >= self.cfg.max_ra_prefixes {
            self.stats.ra_ignored += 1;
            return;
        }
        let expires = (valid != INFINITE).then(|| now + Duration::from_secs(valid));
        self.routes.add(Route { net, prefix_len: len, via: None, origin: Origin::Ra, expires });
    }

    /// Solicit `target`'s link address: to its solicited-node group, or to `unicast` when
    /// probing (RFC 4861 §7.2.2), from one of our preferred addresses.
    pub(super) fn send_ns(&mut self, target: Ipv6Addr, unicast: Option<Mac>) {
        let Some(src) = self.ns_source(target) else {
            self.stats.tx_no_source += 1;
            return;
        };
        let (dst, dst_mac) = match unicast {
            Some(mac) => (target, mac),
            None => (solicited_node(target), ethernet::ipv6_multicast_mac(solicited_node(target))),
        };
        let ns = NdiscRepr::NeighborSolicit { target_addr: target, lladdr: Some(self.cfg.mac.into()) };
        self.stats.tx_ns += 1;
        self.push_raw(ndp_frame(dst_mac, self.cfg.mac, src, dst, &ns));
    }

    /// A preferred address of the target's scope, on its prefix if we have one.
    fn ns_source(&self, target: Ipv6Addr) -> Option<Ipv6Addr> {
        let ours = || self.v6.iter().filter(|(_, s)| *s == AddrState::Preferred).map(|(a, _)| *a);
        if is_link_local(&target) {
            return ours().find(is_link_local);
        }
        let t = IpAddr::V6(target);
        ours()
            .find(|a| super::route::contains(IpAddr::V6(*a), self.cfg.v6_prefix, t))
            .or_else(|| ours().find(|a| !is_link_local(a)))
            .or_else(|| ours().next())
    }

    /// RFC 4862 §5.4.2: every address starts tentative; one NS from the unspecified address
    /// to its solicited-node group, then `RetransTimer` of silence makes it preferred.
    pub(super) fn start_dad(&mut self, now: Instant) {
        let until = now + RETRANS_TIMER;
        for i in 0..self.v6.len() {
            let a = self.v6[i].0;
            self.v6[i].1 = AddrState::Tentative { until };
            let ns = NdiscRepr::NeighborSolicit { target_addr: a, lladdr: None };
            let dst = solicited_node(a);
            self.stats.tx_ns += 1;
            self.push_raw(ndp_frame(ethernet::ipv6_multicast_mac(dst), self.cfg.mac, Ipv6Addr::UNSPECIFIED, dst, &ns));
        }
    }

    pub(super) fn dad_timeout(&mut self, now: Instant) {
        let mut done = Vec::new();
        for (a, s) in self.v6.iter_mut() {
            if matches!(s, AddrState::Tentative { until } if *until <= now) {
                *s = AddrState::Preferred;
                done.push(*a);
            }
        }
        for a in done {
            self.push_event(LinkEvent::DadSucceeded(a));
            if is_link_local(&a) && self.cfg.accept_ra && self.rs_sent == 0 {
                self.send_rs(now);
            }
        }
    }

    /// Send a router solicitation (RFC 4861 §6.3.7): from our link-local address with our
    /// link-layer address, or from `::` without it (§4.1) when we have none yet; then another
    /// every `RTR_SOLICITATION_INTERVAL` until an RA arrives or `MAX_RTR_SOLICITATIONS` went.
    /// The random initial delay is left out: the core has no randomness.
    pub(super) fn send_rs(&mut self, now: Instant) {
        let ll = self.v6.iter().find(|(a, s)| *s == AddrState::Preferred && is_link_local(a)).map(|(a, _)| *a);
        let src = ll.unwrap_or(Ipv6Addr::UNSPECIFIED);
        let rs = NdiscRepr::RouterSolicit { lladdr: ll.map(|_| self.cfg.mac.into()) };
        self.stats.tx_rs += 1;
        self.push_raw(ndp_frame(ethernet::ipv6_multicast_mac(ALL_ROUTERS), self.cfg.mac, src, ALL_ROUTERS, &rs));
        self.rs_sent += 1;
        self.rs_next = (self.rs_sent < MAX_RTR_SOLICITATIONS).then(|| now + RTR_SOLICITATION_INTERVAL);
    }

    /// RFC 4862 §5.4.5: a duplicate address is not used.
    fn dad_failed(&mut self, a: Ipv6Addr) {
        self.stats.dad_conflicts += 1;
        for (x, s) in self.v6.iter_mut() {
            if *x == a {
                *s = AddrState::Duplicate;
            }
        }
        self.update_groups();
        self.push_event(LinkEvent::DadFailed(a));
    }
}
