//! The link layer inside the ip actor, for an Ethernet (TAP) device.
//!
//! The ip actor owns the [`LinkCore`] (no state shared with other threads): every frame
//! from dev-rx passes through [`LinkShell::rx`], which answers ARP/NDP and hands the IP
//! packet inside to the IP core; every IP packet for the wire (the ip core's own and the
//! tcp engine's, which in this mode reach the ip actor as `IpMsg::Tx` instead of going to
//! dev-tx) passes through [`LinkShell::send`], and the frames the core queues go to dev-tx.
//! The core's timers run from the ip actor's loop ([`LinkShell::poll_timeout`]).
//! Packet sockets (`socket::PacketSocket`) are opened, fed and closed here too: the core
//! copies the frames ([`crate::proto::link::packet`]), this shell queues each copy to its
//! socket's inbox within the socket's byte bound (`buf::RecvQueue`).
//!
//! On a TUN device none of this exists: the ip actor's `link` is `None` and the tcp engine
//! sends straight to dev-tx ([`TxPath::Dev`]).

use super::counters::LinkCounters;
use super::ip::IpMsg;
use crate::buf::{Batch, Pool, SharedQueue};
use crate::proto::link::packet::{self, PacketSockId};
use crate::proto::link::route::RouteTable;
use crate::proto::link::{LinkConfig, LinkCore, LinkEvent};
use crossbeam_channel::{Sender, TrySendError};
use slog::{debug, info, warn, Logger};
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// The [`LinkConfig`] for a stack whose IP layer has `ip`'s addresses: the caller's MAC,
/// gateways and limits, our addresses and prefixes from the IP configuration.
/// A gateway the link configuration leaves unset comes from the IP configuration
/// (`--gateway`), as does the IPv6 prefix.
pub fn link_config(base: &LinkConfig, ip: &crate::proto::ip::IpConfig) -> LinkConfig {
    LinkConfig {
        v4: ip.v4.clone(),
        v4_prefix: ip.v4_prefix,
        v6: ip.v6.clone(),
        v6_prefix: ip.v6_prefix,
        gateway4: base.gateway4.or(ip.gateway4),
        gateway6: base.gateway6.or(ip.gateway6),
        ..base.clone()
    }
}

/// The error opening a packet socket on a stack without a link layer (TUN).
pub fn no_link() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "netstack: packet sockets need an Ethernet (TAP) device")
}

pub struct LinkShell {
    core: LinkCore,
    log: Logger,
    /// Where the core's routing table is published for socket calls (`actor::route`).
    routes: Option<Arc<super::route::RouteView>>,
    /// Packet sockets' inboxes (whole frames) and what they hold unread.
    packets: HashMap<PacketSockId, (Sender<Vec<u8>>, SharedQueue)>,
    /// Where the core's counters are published for other threads.
    counters: Arc<LinkCounters>,
    /// Copies charged to their sockets, waiting for the counters to be published
    /// (`deliver_packets`; empty between calls).
    ready: Vec<(PacketSockId, Vec<u8>)>,
}

impl LinkShell {
    pub fn new(cfg: LinkConfig, now: Instant, log: Logger) -> LinkShell {
        info!(log, "link layer on"; "mac" => %cfg.mac, "gateway4" => ?cfg.gateway4, "gateway6" => ?cfg.gateway6);
        let counters = Default::default();
        LinkShell {
            core: LinkCore::new(cfg, now),
            log,
            routes: None,
            packets: HashMap::new(),
            counters,
            ready: Vec::new(),
        }
    }

    /// The core's routing table (connected subnets, gateways, routes from RAs).
    pub fn routes(&self) -> &RouteTable {
        self.core.routes()
    }

    pub fn set_route_view(&mut self, view: Arc<super::route::RouteView>) {
        self.routes = Some(view);
    }

    /// Publish the routing table if it changed.
    pub fn publish_routes(&self) {
        if let Some(view) = &self.routes {
            view.publish(self.core.routes());
        }
    }

    /// The published table (what a next hop in an `Unreachable` event is matched against).
    pub fn published_routes(&self) -> Option<Arc<RouteTable>> {
        self.routes.as_ref().map(|v| v.snapshot())
    }

    /// The core's counters as last published ([`Self::publish_stats`]).
    pub fn counters(&self) -> Arc<LinkCounters> {
        self.counters.clone()
    }

    /// Publish the core's counters (the ip actor, after each batch).
    pub fn publish_stats(&self) {
        self.counters.store(&self.core.stats());
    }

    /// Our IPv4 address, its prefix and the default gateway changed (DHCP, `actor::dhcp`).
    pub fn set_ipv4(&mut self, addr: Option<(std::net::Ipv4Addr, u8)>, gateway: Option<std::net::Ipv4Addr>) {
        self.core.set_ipv4(addr, gateway);
    }

    /// Whether `ip`'s link address is known (packets to it leave at once).
    pub fn neighbour_known(&self, ip: IpAddr) -> bool {
        self.core.neighbours().get(ip).is_some_and(|(_, mac)| mac.is_some())
    }

    /// A received frame: the IP packet it carries, moved to the front of the same buffer,
    /// and whether the frame was sent to a link-layer group (broadcast or multicast); or
    /// `None` (the buffer back in `pool`) when the link core consumed or dropped it.
    pub fn rx(&mut self, now: Instant, mut frame: Vec<u8>, pool: &Pool) -> Option<(Vec<u8>, bool)> {
        match self.core.handle_frame(now, &frame) {
            Some(r) => {
                let len = r.payload.len();
                frame.copy_within(r.payload, 0);
                frame.truncate(len);
                Some((frame, crate::proto::link::ethernet::is_group(r.dst_mac)))
            }
            None => {
                pool.put(frame);
                None
            }
        }
    }

    /// IP packets for the wire: framed, or queued while their next hop is resolved.
    pub fn send(&mut self, now: Instant, packets: &mut Batch) {
        for p in packets.drain(..) {
            self.core.send_ip(now, p);
        }
    }

    /// Move every frame the core queued into `out`.
    pub fn drain(&mut self, out: &mut Batch) {
        while let Some(f) = self.core.poll_transmit() {
            out.push(f);
        }
    }

    /// Open a packet socket for `ethertype` (`None`: all) delivering to `inbox`.
    pub fn packet_bind(
        &mut self,
        ethertype: Option<u16>,
        inbox: Sender<Vec<u8>>,
        queue: SharedQueue,
    ) -> io::Result<PacketSockId> {
        let id = self.core.packet_bind(ethertype)?;
        debug!(self.log, "packet socket bound"; "ethertype" => ?ethertype, "id" => id);
        self.packets.insert(id, (inbox, queue));
        Ok(id)
    }

    pub fn packet_close(&mut self, id: PacketSockId) {
        self.core.packet_close(id);
        self.packets.remove(&id);
    }

    /// A whole frame from a packet socket, sent as it is.
    pub fn send_frame(&mut self, frame: Vec<u8>) {
        self.core.send_frame(frame);
    }

    /// Hand the frames the core copied to their packet sockets, each within its socket's
    /// bound (`packet_queue_bytes` unread). The counters are published once every copy is
    /// counted and before any leaves, so a reader finds the frame it read counted in
    /// `rx_packet_copies`. A socket that went away meanwhile gets nothing; its charge is
    /// given back so the accounting stays exact.
    pub fn deliver_packets(&mut self) {
        let limit = self.core.config().packet_queue_bytes as u64;
        let mut any = false;
        // At most `packet_queue_bytes` of copies: what the core held (`poll_packet`).
        let mut ready = std::mem::take(&mut self.ready);
        while let Some((id, frame)) = self.core.poll_packet() {
            any = true;
            let Some((_, queue)) = self.packets.get(&id) else { continue };
            let queued = queue.try_charge(packet::charge(frame.len()), limit);
            self.core.packet_delivered(queued);
            if queued {
                ready.push((id, frame));
            }
        }
        if any {
            self.publish_stats();
        }
        for (id, frame) in ready.drain(..) {
            let (tx, queue) = &self.packets[&id];
            let cost = packet::charge(frame.len());
            if tx.send(frame).is_err() {
                queue.uncharge(cost);
            }
        }
        self.ready = ready;
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
    }

    /// Next hops whose resolution failed since the last call (for the tcp engine); the
    /// other events are logged.
    pub fn unreachable(&mut self, out: &mut Vec<IpAddr>) {
        while let Some(ev) = self.core.poll_event() {
            match ev {
                LinkEvent::Unreachable(ip) => {
                    info!(self.log, "neighbour unreachable"; "ip" => %ip);
                    out.push(ip);
                }
                LinkEvent::NoRoute(ip) => info!(self.log, "no route"; "dst" => %ip),
                LinkEvent::DadSucceeded(a) => info!(self.log, "address ready (DAD)"; "addr" => %a),
                LinkEvent::DadFailed(a) => warn!(self.log, "duplicate address on the link (DAD)"; "addr" => %a),
            }
        }
    }
}

/// Where the tcp engine sends its segments: dev-tx (TUN), or the ip actor, which frames
/// them (TAP).
#[derive(Clone)]
pub enum TxPath {
    Dev(Sender<crate::buf::Batch>),
    Ip(Sender<IpMsg>),
}

impl TxPath {
    /// Hand `batch` on. To dev-tx this blocks as before; to the ip actor it never blocks
    /// (ip also sends to tcp, so blocking both ways could deadlock): a full ip inbox drops
    /// the batch, counted in `dropped`, as a full NIC queue does. False when the receiver
    /// is gone.
    pub fn send(&self, batch: Batch, pool: &Pool, dropped: &std::sync::atomic::AtomicU64) -> bool {
        match self {
            TxPath::Dev(tx) => tx.send(batch).is_ok(),
            TxPath::Ip(tx) => match tx.try_send(IpMsg::Tx(batch)) {
                Ok(()) => true,
                Err(TrySendError::Full(IpMsg::Tx(mut b))) => {
                    dropped.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    pool.put_batch(&mut b);
                    true
                }
                Err(_) => false,
            },
        }
    }
}
