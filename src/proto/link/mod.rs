//! The link layer core for an Ethernet (TAP) device: framing, ARP, NDP, the neighbour cache
//! and routing, run by the ip actor on a TAP device (`actor::link`).
//!
//! Pure: fed `(now, frame)` by [`LinkCore::handle_frame`] and `(now, ip packet)` by
//! [`LinkCore::send_ip`], it queues frames to send ([`LinkCore::poll_transmit`]) and events
//! for the layers above ([`LinkCore::poll_event`]); timers run in
//! [`LinkCore::handle_timeout`] at [`LinkCore::poll_timeout`]. It holds no clock, no
//! randomness, no threads and nothing shared with them (its counters are plain; the actor
//! publishes [`LinkCore::stats`]). Invariants:
//! * every frame that is not handed up or answered is counted in [`LinkStats`] under the
//!   reason it was dropped; malformed input never panics;
//! * memory is bounded: the neighbour cache (entries and waiting packets, see [`neigh`]),
//!   the routing table, the joined groups, the transmit queue (`tx_queue_frames`) and the
//!   event queue (`event_queue`), the frame copies waiting for packet sockets
//!   (`packet_queue_bytes`, see [`packet`]); what does not fit is dropped and counted;
//! * an IPv6 address is *tentative* until duplicate address detection (RFC 4862 §5.4) ends:
//!   we do not answer solicitations for it nor use it as a source; [`LinkEvent::DadSucceeded`]
//!   tells the caller when it may give it to the IP layer;
//! * a packet leaves only for the link address of its next hop (the destination when
//!   on-link, else the gateway of the longest matching route), or for the broadcast or
//!   multicast address its destination maps to (a packet socket's frames leave as given).

pub mod arp;
pub mod ethernet;
pub mod ndp;
pub mod neigh;
pub mod packet;
pub mod route;

use self::ethernet::{RxDrop, BROADCAST};
use self::neigh::{Action, NeighCache, NeighConfig};
use self::packet::{PacketSockId, PacketTable};
use self::route::{Origin, Route, RouteTable};
use crate::wire::{EthernetAddress as Mac, EthernetProtocol};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::time::Instant;

/// Addresses, routes and limits of the link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub mac: Mac,
    pub v4: Vec<Ipv4Addr>,
    pub v4_prefix: u8,
    /// Our IPv6 addresses; fe80::/64 is always on-link (RFC 4291 §2.5.6).
    pub v6: Vec<Ipv6Addr>,
    pub v6_prefix: u8,
    pub gateway4: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
    /// Run duplicate address detection on our IPv6 addresses (RFC 4862 §5.4).
    pub dad: bool,
    /// Accept router advertisements for a default route and on-link prefixes.
    pub accept_ra: bool,
    pub neigh: NeighConfig,
    pub max_routes: usize,
    /// Default routers learnt from RAs at once (RFC 4861 §6.3.4 leaves the bound to us).
    pub max_ra_routers: usize,
    /// On-link prefixes learnt from RAs at once.
    pub max_ra_prefixes: usize,
    /// Multicast groups joined through [`LinkCore::join_group`].
    pub max_groups: usize,
    pub tx_queue_frames: usize,
    pub event_queue: usize,
    /// Bytes of received frames each packet socket may hold unread ([`packet`]).
    pub packet_queue_bytes: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            mac: Mac([0x02, 0, 0, 0, 0, 0x02]),
            v4: vec![Ipv4Addr::new(10, 0, 0, 2)],
            v4_prefix: 24,
            v6: vec!["fe80::2".parse().unwrap(), "fd00::2".parse().unwrap()],
            v6_prefix: 64,
            gateway4: None,
            gateway6: None,
            dad: true,
            accept_ra: true,
            neigh: NeighConfig::default(),
            max_routes: 64,
            max_ra_routers: 4,
            max_ra_prefixes: 8,
            max_groups: 32,
            tx_queue_frames: 4096,
            event_queue: 1024,
            packet_queue_bytes: 256 << 10,
        }
    }
}

counters!(
    /// Counters of the link layer, kept by the core and its neighbour cache
    /// ([`LinkCore::stats`]; the ip actor publishes them: `actor::counters`).
    LinkStats {
        rx_frames,
        rx_malformed,
        rx_bad_src_mac,
        rx_own_src_mac,
        rx_not_for_us,
        rx_group_not_joined,
        rx_unknown_ethertype,
        rx_ipv4,
        rx_ipv6,
        rx_arp,
        rx_arp_bad,
        rx_arp_off_subnet,
        rx_arp_addr_conflict,
        rx_ndp,
        rx_ndp_bad,
        rx_ndp_ignored,
        rx_ra,
        tx_rs,
        tx_frames,
        tx_arp_requests,
        tx_arp_replies,
        tx_ns,
        tx_na,
        tx_bad_packet,
        tx_no_route,
        tx_no_source,
        tx_queue_full,
        neigh_entries,
        neigh_solicits,
        neigh_evicted,
        neigh_gc,
        neigh_override_refused,
        neigh_unsolicited_ignored,
        neigh_full_ignored,
        neigh_resolve_failed,
        neigh_probe_failed,
        neigh_queue_dropped,
        neigh_unresolved_dropped,
        dad_conflicts,
        ra_ignored,
        events_dropped,
        rx_packet_copies,
        rx_packet_queue_full,
        tx_packet_frames,
    }
);

/// What the layers above need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Resolving this next hop failed; packets to it were dropped. Sockets connecting
    /// through it should fail with `HostUnreachable`.
    Unreachable(IpAddr),
    /// No route to this destination (`NetworkUnreachable`).
    NoRoute(IpAddr),
    /// Duplicate address detection found nobody else using this address: it may be used.
    DadSucceeded(Ipv6Addr),
    /// Another node uses this address: it must not be used (RFC 4862 §5.4.5).
    DadFailed(Ipv6Addr),
}

/// A received frame's IP packet: `frame[payload]`, trimmed of Ethernet padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub ethertype: EthernetProtocol,
    pub payload: Range<usize>,
    pub src_mac: Mac,
    /// Our MAC, broadcast or a group: the IP layer must not answer a link-level broadcast or
    /// multicast with an ICMP error (RFC 1122 §3.2.2).
    pub dst_mac: Mac,
}

/// RFC 4862 §5.4 address states (preferred/deprecated lifetimes are not tracked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrState {
    Tentative { until: Instant },
    Preferred,
    Duplicate,
}

pub struct LinkCore {
    cfg: LinkConfig,
    neigh: NeighCache,
    routes: RouteTable,
    v6: Vec<(Ipv6Addr, AddrState)>,
    user_groups: Vec<IpAddr>,
    /// Multicast MACs we accept: derived from our addresses plus `user_groups`.
    groups: Vec<Mac>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    acts: Vec<Action>,
    /// Router solicitations sent, and when the next one is due (RFC 4861 §6.3.7).
    rs_sent: u8,
    rs_next: Option<Instant>,
    /// Packet sockets, and the frame copies for them not yet taken ([`packet`]).
    packets: PacketTable,
    packet_rx: VecDeque<(PacketSockId, Vec<u8>)>,
    /// What the copies in `packet_rx` cost ([`packet::charge`]).
    packet_rx_bytes: u64,
    stats: LinkStats,
}

impl LinkCore {
    /// A new core; queues the gratuitous ARPs and DAD solicitations of start-up.
    pub fn new(cfg: LinkConfig, now: Instant) -> LinkCore {
        let mut routes = RouteTable::new(cfg.max_routes);
        let connected =
            |net: IpAddr, len| Route { net, prefix_len: len, via: None, origin: Origin::Connected, expires: None };
        for a in &cfg.v4 {
            routes.add(connected(IpAddr::V4(*a), cfg.v4_prefix));
        }
        routes.add(connected(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 64));
        for a in cfg.v6.iter().filter(|a| !ndp::is_link_local(a)) {
            routes.add(connected(IpAddr::V6(*a), cfg.v6_prefix));
        }
        let gateways = [cfg.gateway4.map(IpAddr::V4), cfg.gateway6.map(IpAddr::V6)];
        for gw in gateways.into_iter().flatten() {
            let net = if gw.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
            routes.add(Route { net, prefix_len: 0, via: Some(gw), origin: Origin::Static, expires: None });
        }
        let v6 = cfg.v6.iter().map(|a| (*a, AddrState::Preferred)).collect();
        let mut core = LinkCore {
            neigh: NeighCache::new(cfg.neigh.clone()),
            routes,
            v6,
            user_groups: Vec::new(),
            groups: Vec::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            acts: Vec::new(),
            rs_sent: 0,
            rs_next: None,
            packets: PacketTable::default(),
            packet_rx: VecDeque::new(),
            packet_rx_bytes: 0,
            stats: LinkStats::default(),
            cfg,
        };
        for a in core.cfg.v4.clone() {
            core.gratuitous_arp(a);
        }
        if core.cfg.dad {
            core.start_dad(now); // router solicitation waits for the link-local address
        } else if core.cfg.accept_ra {
            core.send_rs(now);
        }
        core.update_groups();
        core
    }

    pub fn mac(&self) -> Mac {
        self.cfg.mac
    }

    /// The counters: the core's and its neighbour cache's.
    pub fn stats(&self) -> LinkStats {
        let mut s = self.stats;
        crate::proto::Counters::add(&mut s, &self.neigh.stats);
        s
    }

    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// Our IPv6 addresses and their DAD states.
    pub fn v6_addrs(&self) -> &[(Ipv6Addr, AddrState)] {
        &self.v6
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub fn neighbours(&self) -> &NeighCache {
        &self.neigh
    }

    /// Replace our IPv4 address, its connected route and the default route through the
    /// previous lease's router by a DHCP lease's: `addr`, and with `gateway` a default route
    /// through it that replaces a configured one (`--gateway`). The new address is announced
    /// with a gratuitous ARP (RFC 5227 §3). `None` removes the address and the lease's routes,
    /// as a lease that ends takes its router with it (dhclient's `EXPIRE`); a configured
    /// gateway replaced before does not come back.
    pub fn set_ipv4(&mut self, addr: Option<(Ipv4Addr, u8)>, gateway: Option<Ipv4Addr>) {
        self.routes.remove_where(|r| r.net.is_ipv4() && matches!(r.origin, Origin::Connected | Origin::Dhcp));
        self.cfg.v4.clear();
        self.sync_gateway4();
        let Some((a, prefix)) = addr else { return };
        self.cfg.v4 = vec![a];
        self.cfg.v4_prefix = prefix;
        let connected =
            Route { net: IpAddr::V4(a), prefix_len: prefix, via: None, origin: Origin::Connected, expires: None };
        self.routes.add(connected);
        if let Some(gw) = gateway {
            let default = |r: &Route| r.net.is_ipv4() && r.prefix_len == 0 && r.origin == Origin::Static;
            self.routes.remove_where(default);
            let net = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            self.routes.add(Route {
                net,
                prefix_len: 0,
                via: Some(IpAddr::V4(gw)),
                origin: Origin::Dhcp,
                expires: None,
            });
            self.sync_gateway4();
        }
        self.gratuitous_arp(a);
    }

    /// `config().gateway4` names the router of the IPv4 default route in the table, if any.
    fn sync_gateway4(&mut self) {
        let default =
            self.routes.routes().iter().filter(|r| r.net.is_ipv4() && r.prefix_len == 0).min_by_key(|r| r.origin);
        self.cfg.gateway4 = default.and_then(|r| match r.via {
            Some(IpAddr::V4(g)) => Some(g),
            _ => None,
        });
    }

    /// Listen to multicast group `group` (IPv4 or IPv6). False when the bound is reached or
    /// `group` is not multicast.
    pub fn join_group(&mut self, group: IpAddr) -> bool {
        if !group.is_multicast() || self.user_groups.len() >= self.cfg.max_groups {
            return false;
        }
        if !self.user_groups.contains(&group) {
            self.user_groups.push(group);
            self.update_groups();
        }
        true
    }

    pub fn leave_group(&mut self, group: IpAddr) {
        self.user_groups.retain(|g| *g != group);
        self.update_groups();
    }

    /// Recompute the multicast MACs we accept: IPv4 all-systems (RFC 1112 §4), IPv6
    /// all-nodes and the solicited-node group of each address not found duplicate
    /// (RFC 4861 §7.2.1, RFC 4862 §5.4.2), and the user's groups.
    fn update_groups(&mut self) {
        let mut g = vec![ethernet::ipv4_multicast_mac(Ipv4Addr::new(224, 0, 0, 1))];
        g.push(ethernet::ipv6_multicast_mac(ndp::ALL_NODES));
        for (a, st) in &self.v6 {
            if *st != AddrState::Duplicate {
                g.push(ethernet::ipv6_multicast_mac(ndp::solicited_node(*a)));
            }
        }
        g.extend(self.user_groups.iter().filter_map(|a| multicast_mac(*a)));
        g.sort_by_key(|m| m.0);
        g.dedup();
        self.groups = g;
    }

    /// Filter a received frame. ARP and NDP are handled here (answers are queued for
    /// [`Self::poll_transmit`]); an IPv4 or IPv6 packet for the IP layer comes back as
    /// `frame[payload]`.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> Option<Received> {
        self.stats.rx_frames += 1;
        let rx = match ethernet::accept(frame, self.cfg.mac, &self.groups) {
            Ok(rx) => {
                self.copy_to_packet_sockets(&rx, frame);
                rx
            }
            Err(why) => {
                let s = &mut self.stats;
                *match why {
                    RxDrop::Malformed => &mut s.rx_malformed,
                    RxDrop::BadSource => &mut s.rx_bad_src_mac,
                    RxDrop::OwnSource => &mut s.rx_own_src_mac,
                    RxDrop::NotForUs => &mut s.rx_not_for_us,
                    RxDrop::GroupNotJoined => &mut s.rx_group_not_joined,
                    RxDrop::UnknownEthertype => &mut s.rx_unknown_ethertype,
                } += 1;
                return None;
            }
        };
        if !matches!(rx.ethertype, EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6 | EthernetProtocol::Arp) {
            self.stats.rx_unknown_ethertype += 1;
            return None;
        }
        let payload = &frame[rx.payload.clone()];
        let ip_len = match rx.ethertype {
            EthernetProtocol::Arp => {
                self.stats.rx_arp += 1;
                self.handle_arp(now, &rx, payload);
                return None;
            }
            EthernetProtocol::Ipv6 if ndp::is_ndp(payload) => {
                self.stats.rx_ndp += 1;
                self.handle_ndp(now, &rx, payload);
                return None;
            }
            EthernetProtocol::Ipv6 => {
                self.stats.rx_ipv6 += 1;
                payload.get(4..6).map(|b| 40 + u16::from_be_bytes([b[0], b[1]]) as usize)
            }
            _ => {
                self.stats.rx_ipv4 += 1;
                payload.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            }
        };
        // Trim the padding of short frames (IEEE 802.3's 60-byte minimum) when the IP header
        // says less than we have; a longer claim is left for the IP layer to refuse.
        let len = ip_len.filter(|l| *l <= payload.len()).unwrap_or(payload.len());
        let start = rx.payload.start;
        Some(Received { ethertype: rx.ethertype, payload: start..start + len, src_mac: rx.src, dst_mac: rx.dst })
    }

    /// Send an IP packet: framed at once for a multicast/broadcast destination or a known
    /// neighbour, else queued while its next hop is resolved.
    pub fn send_ip(&mut self, now: Instant, packet: Vec<u8>) {
        let Some(dst) = ip_dst(&packet) else {
            self.stats.tx_bad_packet += 1;
            return;
        };
        if let Some(mac) = self.group_mac(dst) {
            self.push_frame(mac, packet);
            return;
        }
        if dst.is_unspecified() || dst.is_loopback() {
            self.stats.tx_bad_packet += 1;
            return;
        }
        let Some(hop) = self.routes.next_hop(now, dst) else {
            self.stats.tx_no_route += 1;
            self.push_event(LinkEvent::NoRoute(dst));
            return;
        };
        let mut acts = std::mem::take(&mut self.acts);
        self.neigh.send(now, hop, packet, &mut acts);
        self.run(&mut acts);
        self.acts = acts;
    }

    /// The link address a broadcast or multicast destination maps to.
    fn group_mac(&self, dst: IpAddr) -> Option<Mac> {
        if let IpAddr::V4(a) = dst {
            if a.is_broadcast() || self.cfg.v4.iter().any(|o| is_subnet_broadcast(*o, self.cfg.v4_prefix, a)) {
                return Some(BROADCAST);
            }
        }
        multicast_mac(dst)
    }

    /// Carry out what the neighbour cache asked for.
    fn run(&mut self, acts: &mut Vec<Action>) {
        for a in acts.drain(..) {
            match a {
                Action::Send { mac, packet } => self.push_frame(mac, packet),
                Action::Solicit { ip: IpAddr::V4(ip), unicast } => self.arp_request(ip, unicast),
                Action::Solicit { ip: IpAddr::V6(ip), unicast } => self.send_ns(ip, unicast),
                Action::Unreachable { ip, .. } => self.push_event(LinkEvent::Unreachable(ip)),
            }
        }
    }

    /// Frame IP `packet` for `dst` in its own buffer: the packet moves up by the header's
    /// length (no allocation when the buffer has that much room, as pooled ones do).
    fn push_frame(&mut self, dst: Mac, mut packet: Vec<u8>) {
        let et =
            if packet.first().is_some_and(|b| b >> 4 == 6) { EthernetProtocol::Ipv6 } else { EthernetProtocol::Ipv4 };
        let len = packet.len();
        packet.resize(len + ethernet::ETHERNET_HEADER_LEN, 0);
        packet.copy_within(..len, ethernet::ETHERNET_HEADER_LEN);
        ethernet::emit_header(&mut packet, dst, self.cfg.mac, et);
        self.push_raw(packet);
    }

    /// Queue a finished frame.
    fn push_raw(&mut self, frame: Vec<u8>) {
        if self.tx.len() >= self.cfg.tx_queue_frames {
            self.stats.tx_queue_full += 1;
            return;
        }
        self.stats.tx_frames += 1;
        self.tx.push_back(frame);
    }

    fn push_event(&mut self, ev: LinkEvent) {
        if self.events.len() >= self.cfg.event_queue {
            self.stats.events_dropped += 1;
            return;
        }
        self.events.push_back(ev);
    }

    /// Open a packet socket for frames of `ethertype` (`None`: every frame); its copies are
    /// charged to `queue` (see [`packet`]). `InvalidInput` for an 802.3 length.
    pub fn packet_bind(&mut self, ethertype: Option<u16>) -> std::io::Result<PacketSockId> {
        self.packets.bind(ethertype)
    }

    /// Close a packet socket; its copies not yet taken are discarded.
    pub fn packet_close(&mut self, id: PacketSockId) {
        self.packets.close(id);
        self.packet_rx.retain(|(s, _)| *s != id);
        self.packet_rx_bytes = self.packet_rx.iter().map(|(_, f)| packet::charge(f.len())).sum();
    }

    /// Copy an accepted frame to the packet sockets that want it, while the copies waiting
    /// for the actor stay within `packet_queue_bytes`.
    fn copy_to_packet_sockets(&mut self, rx: &ethernet::Rx, frame: &[u8]) {
        if self.packets.is_empty() {
            return;
        }
        let (cost, limit) = (packet::charge(frame.len()), self.cfg.packet_queue_bytes as u64);
        for id in self.packets.matching(u16::from(rx.ethertype)) {
            if self.packet_rx_bytes + cost > limit {
                self.stats.rx_packet_queue_full += 1;
                continue;
            }
            self.packet_rx_bytes += cost;
            self.packet_rx.push_back((id, frame.to_vec()));
        }
    }

    /// The next frame copied for a packet socket: (socket, whole frame). The actor queues
    /// it within the socket's bound and reports which ([`Self::packet_delivered`]).
    pub fn poll_packet(&mut self) -> Option<(PacketSockId, Vec<u8>)> {
        let (id, f) = self.packet_rx.pop_front()?;
        self.packet_rx_bytes -= packet::charge(f.len());
        Some((id, f))
    }

    /// A copy taken with [`Self::poll_packet`] was `queued` to its socket, or refused
    /// because the socket already held `packet_queue_bytes` unread.
    pub fn packet_delivered(&mut self, queued: bool) {
        if queued {
            self.stats.rx_packet_copies += 1;
        } else {
            self.stats.rx_packet_queue_full += 1;
        }
    }

    /// Send a whole Ethernet frame from a packet socket, as it is. The socket checked its
    /// length against the MTU (`packet::check_send`); one shorter than a header is dropped
    /// here too (`tx_bad_packet`).
    pub fn send_frame(&mut self, frame: Vec<u8>) {
        if frame.len() < ethernet::ETHERNET_HEADER_LEN {
            self.stats.tx_bad_packet += 1;
            return;
        }
        self.stats.tx_packet_frames += 1;
        self.push_raw(frame);
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dad = self.v6.iter().filter_map(|(_, s)| match s {
            AddrState::Tentative { until } => Some(*until),
            _ => None,
        });
        [self.neigh.poll_timeout(), self.routes.poll_timeout(), self.rs_next].into_iter().flatten().chain(dad).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let mut acts = std::mem::take(&mut self.acts);
        self.neigh.handle_timeout(now, &mut acts);
        self.run(&mut acts);
        self.acts = acts;
        self.routes.expire(now);
        self.dad_timeout(now);
        if self.rs_next.is_some_and(|t| t <= now) {
            self.send_rs(now);
        }
    }
}

/// The MAC a multicast destination maps to.
fn multicast_mac(dst: IpAddr) -> Option<Mac> {
    match dst {
        IpAddr::V4(a) if a.is_multicast() => Some(ethernet::ipv4_multicast_mac(a)),
        IpAddr::V6(a) if a.is_multicast() => Some(ethernet::ipv6_multicast_mac(a)),
        _ => None,
    }
}

/// True when `a` is the directed broadcast address of `ours/prefix` (RFC 919 §7).
fn is_subnet_broadcast(ours: Ipv4Addr, prefix: u8, a: Ipv4Addr) -> bool {
    let host_bits = 32 - u32::from(prefix.min(32));
    if host_bits < 2 {
        return false; // /31 and /32 have no broadcast address (RFC 3021)
    }
    let mask = u32::MAX >> (32 - host_bits);
    u32::from(a) == (u32::from(ours) & !mask) | mask
}

/// The destination of an IP packet, if its header is long enough to hold one.
fn ip_dst(p: &[u8]) -> Option<IpAddr> {
    match p.first()? >> 4 {
        4 if p.len() >= 20 => Some(IpAddr::V4(<[u8; 4]>::try_from(&p[16..20]).ok()?.into())),
        6 if p.len() >= 40 => Some(IpAddr::V6(<[u8; 16]>::try_from(&p[24..40]).ok()?.into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
