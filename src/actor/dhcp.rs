//! The DHCPv4 client inside the ip actor (TAP only, `StackConfig::dhcp`).
//!
//! The ip actor owns the [`Client`] core, as it owns the IP and link cores whose IPv4
//! address the lease sets, so no state is shared for the protocol. The client's socket is
//! a binding of 0.0.0.0:68 in the IP core's UDP table, made at start: replies (broadcast to
//! 255.255.255.255, since we set the BROADCAST flag, RFC 2131 §4.1, or unicast to the leased
//! address while renewing) are taken out of the ip core's deliveries before they would go to
//! a socket, and no application socket can bind port 68. Messages leave from 0.0.0.0:68 (or
//! the leased address) to 255.255.255.255:67 (the broadcast MAC) or the server.
//!
//! On `Configured` the shell sets the address and prefix in the IP core, the address, prefix
//! and default gateway in the link core (a gratuitous ARP goes out), the tcp engine's source
//! address (`TcpMsg::SetV4`), and publishes the lease in [`DhcpShared`], where the resolver
//! finds the DNS servers and [`StackHandle::wait_dhcp`] wakes. `Deconfigured` undoes it.
//!
//! Before the lease the stack has no IPv4 address: sockets bound to 0.0.0.0 (UDP, TCP
//! listeners) work and start receiving once it comes; a send or connect over IPv4 fails with
//! `AddrNotAvailable`; binding the leased address itself works only once it is leased.
//! Connections made on a lease that ends keep its address and fail as their peer stops
//! answering. On shutdown `Stack` asks for a RELEASE (`IpMsg::DhcpRelease`) before it stops
//! the device, and waits (bounded) until it left; the lease stays installed meanwhile (the
//! RELEASE needs its route to the server), while a lease that ends takes its address and
//! routes with it.

use super::tcp::TcpMsg;
use super::StackHandle;
use crate::buf::Pool;
use crate::proto::dhcp::wire::{CLIENT_PORT, SERVER_PORT};
use crate::proto::dhcp::{Client, ClientConfig, DhcpStats, Event, Lease};
use crate::proto::ip::{Deliver, IpCore, IpOutput};
use crate::proto::udp::UdpSockId;
use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};
use slog::{info, warn, Logger};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long shutdown waits for the RELEASE to leave (its next hop's MAC may need resolving).
pub const RELEASE_WAIT: Duration = Duration::from_secs(1);
/// How long the stack keeps the device once the RELEASE has left the ip actor: dev-tx
/// still has to write it, and a server bound to the interface (dnsmasq) discards a
/// datagram it reads after the interface vanished, which happens as soon as the stack
/// closes a TAP device it created (`tests/tap_dhcp.rs` lost the RELEASE in 1 of 5 runs).
pub const RELEASE_GRACE: Duration = Duration::from_millis(50);

/// What the ip actor publishes for other threads: the lease and the client's counters.
#[derive(Default)]
pub struct DhcpShared {
    lease: Mutex<Option<Lease>>,
    changed: Condvar,
    stats: Mutex<DhcpStats>,
}

impl DhcpShared {
    fn set(&self, lease: Option<Lease>) {
        *self.lease.lock() = lease;
        self.changed.notify_all();
    }
}

/// The client and what it needs in the ip actor.
pub struct DhcpShell {
    client: Client,
    sock: UdpSockId,
    shared: Arc<DhcpShared>,
    /// What was installed last (a renewal's identical ACK changes nothing).
    installed: Option<Lease>,
    published: DhcpStats,
    /// Shutdown waits on this until the RELEASE to this server left or the deadline passed.
    release: Option<(Sender<bool>, Instant, Ipv4Addr)>,
    log: Logger,
}

impl DhcpShell {
    /// Bind 0.0.0.0:68 in `core` and start a client in INIT (its DISCOVER goes out at the
    /// first timeout, due now).
    pub fn new(
        mac: [u8; 6],
        seed: u64,
        core: &mut IpCore,
        shared: Arc<DhcpShared>,
        log: Logger,
    ) -> io::Result<DhcpShell> {
        let (sock, _) = core.udp.bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), CLIENT_PORT))?;
        let client = Client::new(ClientConfig { mac, host_name: None, seed }, Instant::now());
        Ok(DhcpShell { client, sock, shared, installed: None, published: DhcpStats::default(), release: None, log })
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.client.poll_timeout(), self.release.as_ref().map(|r| r.1)].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
    }

    /// Take the datagrams for port 68 out of `deliver` and feed them to the client.
    pub fn take(&mut self, now: Instant, deliver: &mut Vec<Deliver>, pool: &Pool) {
        let ours = |d: &mut Deliver| matches!(d, Deliver::Udp { sock, .. } if *sock == self.sock);
        for d in deliver.extract_if(.., ours) {
            if let Deliver::Udp { buf, start, end, .. } = d {
                self.client.handle_packet(now, &buf[start..end]);
                pool.put(buf);
            }
        }
    }

    /// Shutdown: queue a RELEASE (if we hold a lease); `done` hears when it left (`true`),
    /// or that there was none to send or it could not leave in time (`false`).
    pub fn release(&mut self, now: Instant, done: Sender<bool>) {
        let server = self.client.lease().map(|l| l.server);
        if let (Some(server), true) = (server, self.client.release(now)) {
            info!(self.log, "dhcp: releasing the lease"; "server" => %server);
            self.release = Some((done, now + RELEASE_WAIT, server));
        } else {
            let _ = done.try_send(false);
        }
    }

    /// Send what the client queued and apply its events to the IP core, the link layer and
    /// the tcp engine.
    pub fn flush(
        &mut self,
        core: &mut IpCore,
        link: &mut super::link::LinkShell,
        (pool, out): (&Pool, &mut IpOutput),
        tcp: &Sender<TcpMsg>,
    ) {
        while let Some(t) = self.client.poll_transmit() {
            let from = SocketAddrV4::new(t.src, CLIENT_PORT);
            let to = SocketAddrV4::new(t.dst, SERVER_PORT);
            if let Err(e) = core.send_udp_from(from, to, &t.payload, pool, out) {
                warn!(self.log, "dhcp: cannot send"; "error" => %e);
            }
        }
        while let Some(ev) = self.client.poll_event() {
            let lease = match ev {
                Event::Configured(l) => Some(l),
                // The RELEASE of a stopping stack is still in `out`: the lease's address and
                // routes stay until it has left (the stack stops after it anyway).
                Event::Deconfigured if self.release.is_some() => continue,
                Event::Deconfigured => None,
            };
            self.install(lease, core, link, tcp);
        }
        if self.client.stats != self.published {
            self.published = self.client.stats;
            *self.shared.stats.lock() = self.published;
        }
    }

    fn install(
        &mut self,
        lease: Option<Lease>,
        core: &mut IpCore,
        link: &mut super::link::LinkShell,
        tcp: &Sender<TcpMsg>,
    ) {
        let key = |l: &Option<Lease>| l.as_ref().map(|l| (l.addr, l.prefix, l.gateway));
        if key(&lease) != key(&self.installed) {
            let v4: Vec<Ipv4Addr> = lease.iter().map(|l| l.addr).collect();
            let prefix = lease.as_ref().map_or(core.config().v4_prefix, |l| l.prefix);
            core.set_v4(v4.clone(), prefix);
            link.set_ipv4(lease.as_ref().map(|l| (l.addr, l.prefix)), lease.as_ref().and_then(|l| l.gateway));
            let _ = tcp.send(TcpMsg::SetV4(v4));
        }
        match &lease {
            Some(l) => info!(self.log, "dhcp: lease"; "addr" => %l.addr, "prefix" => l.prefix,
                "gateway" => ?l.gateway, "dns" => ?l.dns, "server" => %l.server, "lease" => ?l.lease),
            None => info!(self.log, "dhcp: no lease"),
        }
        self.installed = lease.clone();
        self.shared.set(lease);
    }

    /// After a flush: tell a waiting shutdown that the RELEASE left (the MAC of its next hop
    /// was known, so it was framed and handed to dev-tx) or that the wait is over. The next
    /// hop is the server itself on the link, else the router (a server behind a relay).
    pub fn check_release(&mut self, now: Instant, link: &super::link::LinkShell) {
        let Some((_, deadline, server)) = &self.release else { return };
        let server = IpAddr::V4(*server);
        let left = link.neighbour_known(link.routes().next_hop(now, server).unwrap_or(server));
        if now >= *deadline || left {
            if let Some((done, ..)) = self.release.take() {
                let _ = done.try_send(left);
            }
        }
    }
}

impl StackHandle {
    /// The DHCP lease held now (`None`: none yet, or DHCP is off).
    pub fn lease(&self) -> Option<Lease> {
        self.dhcp.as_ref().and_then(|d| d.lease.lock().clone())
    }

    /// Wait up to `timeout` for a DHCP lease. `InvalidInput` when DHCP is off, `TimedOut`
    /// when none came.
    pub fn wait_dhcp(&self, timeout: Duration) -> io::Result<Lease> {
        let Some(d) = &self.dhcp else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "DHCP is off (StackConfig::dhcp, --dhcp)"));
        };
        let deadline = Instant::now() + timeout;
        let mut l = d.lease.lock();
        loop {
            if let Some(lease) = l.as_ref() {
                return Ok(lease.clone());
            }
            self.check_device()?;
            if d.changed.wait_until(&mut l, deadline).timed_out() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no DHCP lease within {timeout:?}")));
            }
        }
    }

    /// The DHCP client's counters (`None`: DHCP is off).
    pub fn dhcp_stats(&self) -> Option<DhcpStats> {
        self.dhcp.as_ref().map(|d| *d.stats.lock())
    }

    /// The DNS servers to ask: the configured ones, then the lease's.
    pub fn dns_servers(&self) -> Vec<IpAddr> {
        let mut v = self.config().dns.clone();
        for a in self.lease().map(|l| l.dns).unwrap_or_default() {
            if !v.contains(&IpAddr::V4(a)) {
                v.push(IpAddr::V4(a));
            }
        }
        v
    }

    /// Whether `a` is one of our IPv4 addresses (configured or leased).
    pub(crate) fn has_v4(&self, a: Ipv4Addr) -> bool {
        self.config().ip.v4.contains(&a) || self.lease().is_some_and(|l| l.addr == a)
    }
}
