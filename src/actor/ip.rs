//! The ip actor: runs [`IpCore`] on batches from dev-rx and commands from UDP and raw sockets,
//! and moves what it produces: packets to dev-tx, segments to the tcp engine, datagrams to
//! socket inboxes. On TAP it also runs the link layer (`actor::link`), packet sockets
//! included. No protocol logic lives here.

use super::counters::IpCounters;
use super::tcp::{SegmentIn, TcpMsg};
use crate::buf::{batch_bytes, Batch, ByteBudget, Pool, SharedQueue};
use crate::proto::ip::{udp_charge, Deliver, IpCore, IpOutput, UDP_ERR_REFUSED};
use crate::proto::link::packet::PacketSockId;
use crate::proto::raw::RawSockId;
use crate::proto::udp::UdpSockId;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use slog::{debug, Logger};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// What a UDP socket receives.
pub enum UdpEvent {
    /// Payload is `buf[start..end]` (the packet buffer itself, moved, not copied).
    Datagram { from: SocketAddr, buf: Vec<u8>, start: usize, end: usize },
    /// An ICMP-reported error is waiting in the socket's shared slot (`RecvQueue::set_error`;
    /// the socket calls `wake_taken` as it takes this event).
    ErrorPending,
}

pub type BindReply = Sender<io::Result<(UdpSockId, SocketAddr)>>;

/// What a raw ICMP socket receives: an ICMP message (from its type byte on) sent by `from`
/// with `hop_limit` (TTL), already charged to the socket's queue (`buf::RecvQueue`).
pub struct RawEvent {
    pub from: IpAddr,
    pub hop_limit: u8,
    pub msg: Vec<u8>,
}

/// The socket's id and echo identifier, or why it could not be opened.
pub type RawBindReply = Sender<io::Result<(RawSockId, u16)>>;

pub enum IpMsg {
    Rx(Batch),
    /// IP packets from the tcp engine, to be framed by the link layer (TAP only).
    Tx(Batch),
    UdpBind {
        addr: SocketAddr,
        inbox: Sender<UdpEvent>,
        queued: SharedQueue,
        reply: BindReply,
    },
    UdpConnect {
        id: UdpSockId,
        remote: Option<SocketAddr>,
    },
    UdpSend {
        from: SocketAddr,
        to: SocketAddr,
        data: Vec<u8>,
        /// IPv4 TTL / IPv6 hop limit (`UdpSocket::set_ttl`).
        ttl: u8,
    },
    UdpClose(UdpSockId),
    /// Open a raw ICMP (`v6`: ICMPv6) socket with echo identifier `ident` (0: any free one).
    RawBind {
        v6: bool,
        ident: u16,
        inbox: Sender<RawEvent>,
        queued: SharedQueue,
        reply: RawBindReply,
    },
    RawSend {
        id: RawSockId,
        to: IpAddr,
        msg: Vec<u8>,
    },
    RawClose(RawSockId),
    /// Open a packet socket (TAP only; `Unsupported` on TUN) for frames of `ethertype`
    /// (`None`: all), delivering whole frames to `inbox`.
    PacketBind {
        ethertype: Option<u16>,
        inbox: Sender<Vec<u8>>,
        queued: SharedQueue,
        reply: Sender<io::Result<PacketSockId>>,
    },
    /// A whole Ethernet frame from a packet socket, checked by the socket.
    PacketSend(Vec<u8>),
    PacketClose(PacketSockId),
    /// The stack is stopping: release the DHCP lease; the sender hears `true` when the
    /// RELEASE left, `false` at once without a lease or without DHCP (or when it could not
    /// leave in time).
    DhcpRelease(Sender<bool>),
    Shutdown,
}

/// What the ip actor shares with other threads (the core shares nothing).
pub struct Shared {
    /// Where the core's counters are published after each batch.
    pub counters: Arc<IpCounters>,
    /// Whether a `bind_any` listener exists: the core's `accept_any_tcp`, set before each
    /// batch of packets from the device is handled.
    pub any_tcp: Arc<AtomicBool>,
}

/// Most messages drained before flushing outputs.
const DRAIN: usize = 64;

/// `inbox` and `tcp` come with their byte budgets (`buf::ByteBudget`): a batch from
/// dev-rx gives its bytes back when taken; segments for the engine are dropped (counted)
/// when its inbox is over budget, so a slow engine cannot make packets pile up.
#[allow(clippy::too_many_arguments)] // the actor's channels and parts, each used once
pub fn run(
    core: IpCore,
    inbox: (Receiver<IpMsg>, ByteBudget),
    devtx: Sender<Batch>,
    tcp: (Sender<TcpMsg>, ByteBudget),
    (pool, recycle): (Pool, super::Recyclers),
    spin: std::time::Duration,
    log: Logger,
    link: Option<super::link::LinkShell>,
    dhcp: Option<super::dhcp::DhcpShell>,
    shared: Shared,
) {
    let (inbox, budget) = inbox;
    let (tcp, tcp_budget) = tcp;
    let mut a = IpActor {
        out: IpOutput { tx: recycle.tx.get(), ..IpOutput::default() },
        segs: recycle.segs.get(),
        core,
        budget,
        devtx,
        tcp,
        tcp_budget,
        pool,
        recycle,
        log,
        link,
        dhcp,
        udp: HashMap::new(),
        raw: HashMap::new(),
        unreachable: Vec::new(),
        shared,
        admitted: 0,
    };
    loop {
        let msg = match (super::spin_recv(&inbox, spin), a.wait(Instant::now())) {
            (Some(m), _) => Ok(m),
            (None, Some(d)) => inbox.recv_timeout(d),
            (None, None) => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let mut next = match msg {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = Instant::now();
        a.core.handle_timeout(now);
        if let Some(l) = a.link.as_mut() {
            l.handle_timeout(now);
        }
        if let Some(d) = a.dhcp.as_mut() {
            d.handle_timeout(now);
        }
        let mut n = 0;
        while let Some(m) = next.take() {
            if !a.handle(now, m) {
                return;
            }
            n += 1;
            if n < DRAIN {
                next = inbox.try_recv().ok();
            }
        }
        if !a.flush(now) {
            return;
        }
    }
}

/// The ip actor's state between messages: the core, the link layer on TAP, the sockets'
/// inboxes, and what a flush sends on.
struct IpActor {
    core: IpCore,
    budget: ByteBudget,
    devtx: Sender<Batch>,
    tcp: Sender<TcpMsg>,
    tcp_budget: ByteBudget,
    pool: Pool,
    recycle: super::Recyclers,
    log: Logger,
    link: Option<super::link::LinkShell>,
    /// The DHCP client (TAP with `StackConfig::dhcp`, `actor::dhcp`).
    dhcp: Option<super::dhcp::DhcpShell>,
    /// Sockets' inboxes and what each holds unread.
    udp: HashMap<UdpSockId, (Sender<UdpEvent>, SharedQueue)>,
    raw: HashMap<RawSockId, (Sender<RawEvent>, SharedQueue)>,
    out: IpOutput,
    /// How many of `out.deliver` [`IpActor::admit`] has looked at.
    admitted: usize,
    segs: Vec<SegmentIn>,
    unreachable: Vec<IpAddr>,
    shared: Shared,
}

impl IpActor {
    /// How long to wait for a message before the core's (or the link's, or DHCP's) next timer.
    fn wait(&self, now: Instant) -> Option<std::time::Duration> {
        let wait = crate::proto::ip::idle_timeout(&self.core, now);
        let timers =
            [self.link.as_ref().and_then(|l| l.poll_timeout()), self.dhcp.as_ref().and_then(|d| d.poll_timeout())];
        timers.into_iter().flatten().map(|t| t.saturating_duration_since(now)).chain(wait).min()
    }

    /// One message; false when the actor is to stop.
    fn handle(&mut self, now: Instant, m: IpMsg) -> bool {
        let (core, out, pool) = (&mut self.core, &mut self.out, &self.pool);
        match m {
            IpMsg::Rx(batch) => self.rx(now, batch),
            IpMsg::Tx(mut batch) => match self.link.as_mut() {
                Some(l) => l.send(now, &mut batch),
                None => {
                    let _ = self.devtx.send(batch);
                }
            },
            IpMsg::UdpBind { addr, inbox, queued, reply } => {
                let r = core.udp.bind(addr);
                if let Ok((id, local)) = &r {
                    self.udp.insert(*id, (inbox, queued));
                    debug!(self.log, "udp bind"; "local" => %local);
                }
                let _ = reply.try_send(r);
            }
            IpMsg::UdpConnect { id, remote } => core.udp.connect(id, remote),
            IpMsg::UdpSend { from, to, data, ttl } => {
                let _ = core.send_udp_ttl(from, to, &data, ttl, pool, out);
            }
            IpMsg::UdpClose(id) => {
                core.udp_close(id);
                self.udp.remove(&id);
            }
            IpMsg::RawBind { v6, ident, inbox, queued, reply } => {
                let r = core.raw.bind(v6, ident);
                if let Ok((id, ident)) = &r {
                    self.raw.insert(*id, (inbox, queued));
                    debug!(self.log, "raw icmp bind"; "v6" => v6, "ident" => ident);
                }
                let _ = reply.try_send(r);
            }
            IpMsg::RawSend { id, to, msg } => {
                // The socket checked the message (`check_raw_send`); what fails here
                // (a socket closed meanwhile) has no one left to tell.
                let _ = core.send_raw(id, to, &msg, pool, out);
            }
            IpMsg::RawClose(id) => {
                core.raw.close(id);
                self.raw.remove(&id);
            }
            IpMsg::PacketBind { ethertype, inbox, queued, reply } => {
                let r = match self.link.as_mut() {
                    Some(l) => l.packet_bind(ethertype, inbox, queued),
                    None => Err(super::link::no_link()),
                };
                let _ = reply.try_send(r);
            }
            IpMsg::PacketSend(frame) => {
                if let Some(l) = self.link.as_mut() {
                    l.send_frame(frame);
                }
            }
            IpMsg::PacketClose(id) => {
                if let Some(l) = self.link.as_mut() {
                    l.packet_close(id);
                }
            }
            IpMsg::DhcpRelease(done) => match self.dhcp.as_mut() {
                Some(d) => d.release(now, done),
                None => {
                    let _ = done.try_send(false);
                }
            },
            IpMsg::Shutdown => return false,
        }
        true
    }

    /// A batch from dev-rx: through the link layer (TAP) into the core; then the DHCP
    /// client's datagrams, and the sockets' admission.
    fn rx(&mut self, now: Instant, mut batch: Batch) {
        let (core, out, pool) = (&mut self.core, &mut self.out, &self.pool);
        self.budget.release(batch_bytes(&batch));
        // Read per batch from the device, not once per loop: a SYN read after `bind_any`
        // returned must find the listener, as in Linux, even when this loop's drain began
        // before it (the old per-packet atomic's rule).
        core.accept_any_tcp = self.shared.any_tcp.load(Relaxed);
        for p in batch.drain(..) {
            match self.link.as_mut() {
                Some(l) => match l.rx(now, p, pool) {
                    Some((p, link_group)) => core.handle_link_packet(now, p, link_group, pool, out),
                    None => continue,
                },
                None => core.handle_packet(now, p, pool, out),
            }
        }
        self.recycle.rx.put(batch);
        // The DHCP client's datagrams first (its socket is not in `udp`), so that what
        // `admit` passed is never taken from under it.
        if let Some(d) = self.dhcp.as_mut() {
            d.take(now, &mut self.out.deliver, &self.pool);
        }
        self.admit();
    }

    /// Send on what the messages produced: one batch to dev-tx (through the link layer on
    /// TAP), deliveries to sockets, one batch of segments to the engine. False when a
    /// receiver is gone (the stack is stopping).
    fn flush(&mut self, now: Instant) -> bool {
        if let (Some(d), Some(l)) = (self.dhcp.as_mut(), self.link.as_mut()) {
            d.take(now, &mut self.out.deliver, &self.pool);
            d.flush(&mut self.core, l, (&self.pool, &mut self.out), &self.tcp);
        }
        self.admit();
        if let Some(l) = self.link.as_mut() {
            l.send(now, &mut self.out.tx);
            l.drain(&mut self.out.tx);
        }
        // Counters before anything this batch produced leaves: whoever sees its effect
        // (a reply, a datagram) finds it counted.
        self.shared.counters.store(&self.core.stats);
        if let Some(l) = self.link.as_mut() {
            l.publish_stats();
            l.deliver_packets(); // publishes what it counted
            l.unreachable(&mut self.unreachable);
            l.publish_routes();
            if !self.unreachable.is_empty() {
                let hops = std::mem::take(&mut self.unreachable);
                if let Some(routes) = l.published_routes() {
                    let _ = self.tcp.try_send(TcpMsg::Unreachable(hops, routes));
                }
            }
        }
        if !self.out.tx.is_empty()
            && self.devtx.send(std::mem::replace(&mut self.out.tx, self.recycle.tx.get())).is_err()
        {
            return false;
        }
        if let (Some(d), Some(l)) = (self.dhcp.as_mut(), self.link.as_ref()) {
            d.check_release(now, l);
        }
        self.deliver();
        if !self.segs.is_empty() {
            let bytes = batch_bytes(self.segs.iter().map(|s| &s.buf));
            if !self.tcp_budget.reserve(bytes, self.segs.len()) {
                for s in self.segs.drain(..) {
                    self.pool.put(s.buf);
                }
            } else if self
                .tcp
                .send(TcpMsg::Segments(std::mem::replace(&mut self.segs, self.recycle.segs.get())))
                .is_err()
            {
                return false;
            }
        }
        true
    }

    /// Keep only the datagrams and ICMP messages their sockets have room for: each is
    /// charged to its socket's queue within the socket's byte bound (`udp_queue_bytes`,
    /// `raw_queue_bytes`), as Linux's socket layer checks `sk_rcvbuf`; what does not fit is
    /// dropped here, counted in the core's `rx_udp_queue_full` / `rx_raw_queue_full`.
    /// Runs after each batch from the device, so what a flood makes the core copy for a
    /// full socket is freed a batch later, not a whole drain later; only the deliveries
    /// since the last call are looked at (their order is kept). A datagram for a socket
    /// not in the table (closed) is dropped by `deliver`.
    fn admit(&mut self) {
        let cfg = self.core.config();
        let (udp_limit, raw_limit) = (cfg.udp_queue_bytes as u64, cfg.raw_queue_bytes as u64);
        let (udp, raw, pool, stats) = (&self.udp, &self.raw, &self.pool, &mut self.core.stats);
        self.admitted = retain_from(&mut self.out.deliver, self.admitted, |d| match d {
            Deliver::Udp { sock, buf, .. } => {
                match udp.get(sock).map(|(_, q)| q.try_charge(udp_charge(buf.capacity()), udp_limit)) {
                    Some(false) => {
                        stats.rx_udp_queue_full += 1;
                        pool.put(std::mem::take(buf));
                        false
                    }
                    _ => true,
                }
            }
            Deliver::Raw { sock, msg, .. } => {
                let room = raw.get(sock).map(|(_, q)| q.try_charge(udp_charge(msg.len()), raw_limit));
                match room {
                    Some(true) => stats.rx_raw += 1,
                    Some(false) => stats.rx_raw_queue_full += 1,
                    None => {}
                }
                room == Some(true)
            }
            _ => true,
        });
    }

    /// Hand each delivery to its socket (segments are gathered for one message to the
    /// engine); datagrams and ICMP messages were charged to their sockets' queues by
    /// [`Self::admit`], and give the charge back if the socket closed meanwhile.
    fn deliver(&mut self) {
        self.admitted = 0;
        for d in self.out.deliver.drain(..) {
            match d {
                Deliver::Tcp { src, dst, buf, start, end, csum_ok } => {
                    self.segs.push(SegmentIn { src, dst, buf, start, end, csum_ok })
                }
                Deliver::TcpIcmp { local, remote, seq, class } => {
                    let _ = self.tcp.send(TcpMsg::Icmp { local, remote, seq, class });
                }
                Deliver::Udp { sock, from, buf, start, end, .. } => {
                    let Some((tx, queue)) = self.udp.get(&sock) else {
                        self.pool.put(buf);
                        continue;
                    };
                    let cost = udp_charge(buf.capacity());
                    if let Err(e) = tx.send(UdpEvent::Datagram { from, buf, start, end }) {
                        queue.uncharge(cost);
                        if let UdpEvent::Datagram { buf, .. } = e.into_inner() {
                            self.pool.put(buf);
                        }
                    }
                }
                Deliver::Raw { sock, from, hop_limit, msg } => {
                    // A closed socket's inbox is gone with it (nothing to give back: a copy).
                    let Some((tx, queue)) = self.raw.get(&sock) else { continue };
                    let cost = udp_charge(msg.len());
                    if tx.send(RawEvent { from, hop_limit, msg }).is_err() {
                        queue.uncharge(cost);
                    }
                }
                Deliver::UdpError { sock } => {
                    // One pending error per socket, at most one wake-up in its inbox.
                    if let Some((tx, queue)) = self.udp.get(&sock) {
                        if queue.set_error(UDP_ERR_REFUSED) {
                            let _ = tx.send(UdpEvent::ErrorPending);
                        }
                    }
                }
            }
        }
    }
}

/// `Vec::retain_mut` on `v[from..]` only, keeping the order of what stays; the new length.
fn retain_from<T>(v: &mut Vec<T>, from: usize, mut keep: impl FnMut(&mut T) -> bool) -> usize {
    let from = from.min(v.len());
    let mut kept = from;
    for i in from..v.len() {
        if keep(&mut v[i]) {
            v.swap(kept, i); // everything in kept..i was dropped: the order is kept
            kept += 1;
        }
    }
    v.truncate(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::retain_from;

    #[test]
    fn retain_from_keeps_the_prefix_and_the_order() {
        let mut v: Vec<u32> = (0..10).collect();
        let n = retain_from(&mut v, 3, |x| *x % 3 != 0);
        assert_eq!(v, vec![0, 1, 2, 4, 5, 7, 8]);
        assert_eq!(n, 7);
        assert_eq!(retain_from(&mut v, 7, |_| false), 7, "nothing past the end");
        assert_eq!(retain_from(&mut v, 9, |_| false), 7, "a start past the end keeps all");
        assert_eq!(retain_from(&mut v, 0, |x| *x > 6), 2);
        assert_eq!(v, vec![7, 8]);
    }
}
