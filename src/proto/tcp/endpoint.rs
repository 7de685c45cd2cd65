//! The endpoint: every TCB and listener, demultiplexing and closed-port resets.
//!
//! Invariants:
//! * `tuples` and `conns` describe the same TCBs: `(local, remote) -> ConnId -> Tcb`; a
//!   segment is demultiplexed with one hash lookup (never a scan of connections);
//! * per listener, half-open TCBs `<= max_half_open` and the accept queue `<= backlog`;
//!   in total, half-open TCBs `<= max_half_open_total`; a SYN beyond these bounds gets a
//!   SYN cookie (`syncookie.rs`) and leaves no state;
//! * an ACK with no TCB is checked as a cookie only while a cookie of its listener may be
//!   valid (Linux `tcp_synq_no_recent_overflow`); otherwise it gets a RST as before;
//! * TIME-WAIT TCBs `<= max_time_wait` (beyond it a connection closes without TIME-WAIT,
//!   right after its pending ACK of the peer's FIN is sent);
//! * orphans (closed by the application, not yet in TIME-WAIT or gone) `<= max_orphans`:
//!   `orphans` holds exactly those ids; a close beyond the bound resets that connection;
//! * pending control segments (RSTs for closed ports, aborts) `<= MAX_CTL`;
//! * ConnIds are allocated from a counter and never reused.

use super::isn::IsnGenerator;
use super::syncookie::{self, CookieOptions, SynCookies};
use super::tcb::{self, Ctx, Tcb};
use super::{
    AppCommand, ConnId, Event, IcmpErrorKind, ListenAddr, ListenerId, SocketEvent, State, TcpConfig, TcpStats,
};
use crate::wire::tcp::{TcpFlags, TcpOptions, TcpRepr};
use crate::wire::DEFAULT_HOP_LIMIT;
use ahash::AHashMap as HashMap;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use crate::proto::ports::PortPicker;

/// Bound on queued control segments (RSTs) awaiting poll_transmit.
const MAX_CTL: usize = 4096;

/// The segment sink of [`Endpoint::poll_transmit`]: `(src ip, dst ip, header, payload)`.
pub type TxFn<'a> = dyn FnMut(IpAddr, IpAddr, &TcpRepr, &[u8]) + 'a;
/// [`TxFn`] with the IP header's fields a connection chooses: `(identification, TTL)`, the
/// IPv4 identification from the connection's own counter (0 for a segment without one,
/// as Linux: RFC 6864 §4.1 lets an atomic datagram carry any value) and the IPv4 TTL /
/// IPv6 hop limit.
pub(crate) type IpTxFn<'a> = dyn FnMut(IpAddr, IpAddr, (u16, u8), &TcpRepr, &[u8]) + 'a;

/// The endpoint's bookkeeping on one connection, so that each list and count holds it at
/// most once and lets it go exactly once (`Endpoint::after`, `Endpoint::remove`).
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// Counted in its listener's and the endpoint's half-open totals.
    pub half_open_counted: bool,
    /// Counted among the TIME-WAIT connections.
    pub tw_counted: bool,
    /// Queued in `dirty` (it may have segments to send).
    pub in_dirty: bool,
    /// Queued in `rx_ready` (data held back for the application).
    pub in_rx_ready: bool,
    /// The deadline last queued in `timer_updates` (a new one is queued only on change).
    pub reported_deadline: Option<Instant>,
}

#[derive(Debug)]
struct Listener {
    backlog: usize,
    half_open: usize,
    /// Established connections not yet taken by the application (FIFO).
    accept_q: VecDeque<ConnId>,
    key: ListenAddr,
    /// Until then an ACK without a TCB may carry one of this listener's cookies.
    cookies_until: Option<Instant>,
    /// TTL of the connections it accepts (`TcpListener::set_ttl`), from their SYN-ACK on.
    ttl: u8,
}

pub struct Endpoint {
    cfg: TcpConfig,
    isn: IsnGenerator,
    cookies: SynCookies,
    epoch: Instant,
    next_conn: ConnId,
    next_listener: ListenerId,
    /// Ephemeral ports (`ports`: per-destination sequences under a key).
    ports: PortPicker,
    /// Boxed, so an idle map slot costs a pointer, not a whole TCB, and the map's spare
    /// capacity after a burst of connections is small (see [`shrink_if_sparse`]).
    conns: HashMap<ConnId, Box<Tcb>>,
    tuples: HashMap<(SocketAddr, SocketAddr), ConnId>,
    listeners: HashMap<ListenerId, Listener>,
    listen_addrs: HashMap<SocketAddr, ListenerId>,
    listen_any: Option<ListenerId>,
    events: VecDeque<Event>,
    timer_updates: VecDeque<(ConnId, Option<Instant>)>,
    dirty: VecDeque<ConnId>,
    /// Connections holding in-order data back for the application (`Tcb::release_rx`).
    rx_ready: VecDeque<ConnId>,
    ctl: VecDeque<(IpAddr, IpAddr, TcpRepr)>,
    time_wait_count: usize,
    half_open_total: usize,
    /// Orphaned connections not in TIME-WAIT (bounded by `max_orphans`).
    orphans: ahash::AHashSet<ConnId>,
    /// State changes and timeouts for the log, when asked for ([`Endpoint::set_diagnostics`]).
    diag: Option<VecDeque<super::diag::Diag>>,
    /// Sender trace rows, when asked for ([`Endpoint::set_trace`]).
    trace: Option<Vec<super::diag::TraceRow>>,
    /// IP packet building and GSO ([`Endpoint::poll_packets`]).
    pub(super) packets: super::packets::PacketOut,
    /// Our addresses ([`Endpoint::source_for`]).
    local_v4: Vec<Ipv4Addr>,
    local_v6: Vec<Ipv6Addr>,
    stats: TcpStats,
    /// Receive chunks handed back by the caller ([`Endpoint::recycle_rx_chunk`]).
    spare_chunks: Vec<Vec<u8>>,
    /// Acknowledged send chunks for the caller to reuse ([`Endpoint::take_spent_tx`]).
    spent_tx: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("conns", &self.conns.len()).field("stats", &self.stats).finish()
    }
}

/// M-57 / M-63 / M-46: addresses that can never be a TCP peer.
fn bad_peer(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast() || a.is_unspecified(),
        IpAddr::V6(a) => a.is_multicast() || a.is_unspecified(),
    }
}

/// A [`Ctx`] over the endpoint's fields. A macro, not a method: the TCB it serves is
/// borrowed from `conns` meanwhile, and only field-by-field borrows let both live.
macro_rules! ctx {
    ($ep:ident) => {
        Ctx {
            cfg: &$ep.cfg,
            epoch: $ep.epoch,
            stats: &mut $ep.stats,
            spare_chunks: &mut $ep.spare_chunks,
            spent_tx: &mut $ep.spent_tx,
            trace: $ep.trace.as_mut(),
        }
    };
}

impl Endpoint {
    /// A new endpoint. `isn_key` keys the RFC 6528 ISN hash and, through independent
    /// hashes of it, the SYN cookies and the ephemeral ports (`ports`); the 4 µs ISN clock,
    /// the timestamp clock and the cookie clock run from `epoch`, which the caller passes
    /// (the core reads no clock), so a simulation with a fixed key and a virtual clock
    /// replays bit for bit.
    pub fn new(mut cfg: TcpConfig, isn_key: [u8; 16], epoch: Instant) -> Self {
        cfg.send_buf = cfg.send_buf.max(super::MIN_SEND_BUF);
        cfg.recv_buf = cfg.recv_buf.max(super::MIN_RECV_BUF);
        Endpoint {
            cfg,
            isn: IsnGenerator::new(isn_key, epoch),
            cookies: SynCookies::from_secret(&isn_key),
            epoch,
            next_conn: 1,
            next_listener: 1,
            ports: PortPicker::new(u128::from_be_bytes(isn_key)),
            conns: HashMap::default(),
            tuples: HashMap::default(),
            listeners: HashMap::default(),
            listen_addrs: HashMap::default(),
            listen_any: None,
            events: VecDeque::new(),
            timer_updates: VecDeque::new(),
            dirty: VecDeque::new(),
            rx_ready: VecDeque::new(),
            ctl: VecDeque::new(),
            time_wait_count: 0,
            half_open_total: 0,
            orphans: Default::default(),
            diag: None,
            trace: None,
            packets: super::packets::PacketOut::new(false),
            local_v4: Vec::new(),
            local_v6: Vec::new(),
            stats: TcpStats::default(),
            spare_chunks: Vec::new(),
            spent_tx: Vec::new(),
        }
    }

    /// Take back a `Data` chunk the application has consumed, to be reused for later
    /// received data (at most `rcvqueue::SPARE_CHUNKS` are kept; others are freed).
    pub fn recycle_rx_chunk(&mut self, c: Vec<u8>) {
        super::rcvqueue::recycle(&mut self.spare_chunks, c);
    }

    /// An emptied send chunk whose bytes were all acknowledged (at most
    /// `sendbuf::SPENT_KEEP` wait here), for the caller to hand to a socket for its next
    /// large write: the writer then fills memory already faulted in instead of a fresh
    /// allocation that the engine frees on another thread.
    pub fn take_spent_tx(&mut self) -> Option<Vec<u8>> {
        self.spent_tx.pop()
    }

    /// Queue a [`super::diag::Diag`] for each state change and retransmission timeout (the
    /// caller logs them; bounded by `diag::DIAG_QUEUE`).
    pub fn set_diagnostics(&mut self, on: bool) {
        self.diag = on.then(VecDeque::new);
    }

    pub fn poll_diag(&mut self) -> Option<super::diag::Diag> {
        self.diag.as_mut()?.pop_front()
    }

    /// Record [`super::diag::TraceRow`]s of every sender (bounded by `diag::TRACE_ROWS`
    /// between two [`Endpoint::take_trace`] calls).
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    /// Move the trace rows recorded so far into `out` (which is cleared first).
    pub fn take_trace(&mut self, out: &mut Vec<super::diag::TraceRow>) {
        out.clear();
        if let Some(t) = self.trace.as_mut() {
            std::mem::swap(t, out);
        }
    }

    /// The configuration new connections use.
    /// Tests only: a receive buffer below [`super::MIN_RECV_BUF`], to reach states that a
    /// configured endpoint no longer can but that the code still guards against.
    #[cfg(test)]
    pub(crate) fn set_recv_buf_below_the_floor(&mut self, recv_buf: usize) {
        self.cfg.recv_buf = recv_buf;
    }

    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }

    /// Start listening. `backlog` bounds the accept queue (connections established but not
    /// yet taken with [`Endpoint::listener_accepted`]). AddrInUse if the address is taken.
    /// Port 0 picks a free ephemeral port ([`Endpoint::listener_addr`] tells which).
    pub fn listen(&mut self, mut addr: ListenAddr, backlog: usize) -> io::Result<ListenerId> {
        if let ListenAddr::Addr(a) = &mut addr {
            if a.port() == 0 {
                a.set_port(self.free_port().ok_or(io::ErrorKind::AddrInUse)?);
            }
        }
        match addr {
            ListenAddr::Any if self.listen_any.is_some() => return Err(io::ErrorKind::AddrInUse.into()),
            ListenAddr::Addr(a) if self.listen_addrs.contains_key(&a) => return Err(io::ErrorKind::AddrInUse.into()),
            _ => {}
        }
        let id = self.next_listener;
        self.next_listener += 1;
        match addr {
            ListenAddr::Any => self.listen_any = Some(id),
            ListenAddr::Addr(a) => {
                self.listen_addrs.insert(a, id);
            }
        }
        let l = Listener {
            backlog: backlog.max(1),
            half_open: 0,
            accept_q: VecDeque::new(),
            key: addr,
            cookies_until: None,
            ttl: DEFAULT_HOP_LIMIT,
        };
        self.listeners.insert(id, l);
        Ok(id)
    }

    /// The address listener `id` listens on (its port chosen when it asked for port 0).
    pub fn listener_addr(&self, id: ListenerId) -> Option<ListenAddr> {
        self.listeners.get(&id).map(|l| l.key)
    }

    /// An ephemeral port (RFC 6335 §6) that no listener and no connection uses locally, on
    /// any address (as Linux's `bind` to port 0). One pass over the connections.
    fn free_port(&mut self) -> Option<u16> {
        let mut used: ahash::AHashSet<u16> = self.listen_addrs.keys().map(|a| a.port()).collect();
        used.extend(self.tuples.keys().map(|(l, _)| l.port()));
        self.ports.for_bind(|p| used.contains(&p))
    }

    /// Stop listening; half-open and established-but-unaccepted connections get a RST
    /// (the latter also a `Closed` event).
    pub fn close_listener(&mut self, now: Instant, id: ListenerId) {
        let Some(l) = self.listeners.remove(&id) else { return };
        match l.key {
            ListenAddr::Any => self.listen_any = None,
            ListenAddr::Addr(a) => {
                self.listen_addrs.remove(&a);
            }
        }
        // RST every half-open and every established-but-unaccepted connection.
        let mut victims: Vec<ConnId> = l.accept_q.iter().copied().collect();
        victims.extend(
            self.conns
                .values()
                .filter(|t| t.listener == Some(id) && t.state == State::SynReceived && !t.announced)
                .map(|t| t.id),
        );
        for c in victims {
            if self.conns.contains_key(&c) {
                self.with_tcb(now, c, true, |t, now, ctx| t.handle_app(now, ctx, AppCommand::Abort));
            }
        }
    }

    /// The application took one connection from the accept queue (FIFO, in `Accepted`
    /// order): frees a backlog slot. Must be called once per `Accepted` taken.
    pub fn listener_accepted(&mut self, id: ListenerId) {
        if let Some(l) = self.listeners.get_mut(&id) {
            l.accept_q.pop_front();
        }
    }

    fn find_listener(&self, local: SocketAddr) -> Option<ListenerId> {
        if let Some(&id) = self.listen_addrs.get(&local) {
            return Some(id);
        }
        let unspec: IpAddr = if local.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
        if let Some(&id) = self.listen_addrs.get(&SocketAddr::new(unspec, local.port())) {
            return Some(id);
        }
        self.listen_any
    }

    /// Active open from `local_ip` with an ephemeral port (49152..=65535) that collides
    /// with no live 4-tuple and that no listener holds (on `local_ip` or on the unspecified
    /// address). The SYN is queued for poll_transmit. InvalidInput for a
    /// broadcast/multicast/unspecified remote or mixed families (M-46).
    pub fn connect(&mut self, now: Instant, local_ip: IpAddr, remote: SocketAddr) -> io::Result<ConnId> {
        if bad_peer(remote.ip()) || remote.port() == 0 || local_ip.is_ipv4() != remote.is_ipv4() {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        // A port a listener holds, on our address or on every address of the family, is
        // skipped (as Linux's `__inet_hash_connect` skips every port a `bind` holds).
        let unspec: IpAddr =
            if local_ip.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
        let (tuples, listen_addrs) = (&self.tuples, &self.listen_addrs);
        let port = self.ports.for_connect(local_ip, remote.ip(), |p| {
            let local = SocketAddr::new(local_ip, p);
            tuples.contains_key(&(local, remote))
                || listen_addrs.contains_key(&local)
                || listen_addrs.contains_key(&SocketAddr::new(unspec, p))
        });
        let chosen = port.map(|p| SocketAddr::new(local_ip, p));
        let local = chosen.ok_or(io::ErrorKind::AddrNotAvailable)?;
        let id = self.alloc_id();
        let iss = self.isn.isn(now, local, remote);
        let tcb = Tcb::new_active(id, local, remote, iss, self.isn.ts_offset(local, remote), now, &self.cfg);
        self.conns.insert(id, Box::new(tcb));
        self.tuples.insert((local, remote), id);
        self.stats.conns_opened += 1;
        self.after(now, id, true);
        Ok(id)
    }

    fn alloc_id(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        id
    }

    /// Run `f` on a TCB with a context, then do the bookkeeping.
    fn with_tcb(&mut self, now: Instant, id: ConnId, dirty: bool, f: impl FnOnce(&mut Tcb, Instant, &mut Ctx)) {
        let Some(t) = self.conns.get_mut(&id) else { return };
        let mut ctx = ctx!(self);
        f(t, now, &mut ctx);
        self.after(now, id, dirty);
    }

    /// A raw segment (TCP header + payload) from `src` to `dst`: parsed and checked here
    /// (the checksum is skipped when `checksum_verified`, as an offloading device vouches
    /// for it). A segment that fails is counted in `malformed` and dropped (RFC 9293
    /// §3.10.7.1 / M-3: silently).
    pub fn handle_packet(&mut self, now: Instant, src: IpAddr, dst: IpAddr, seg: &[u8], checksum_verified: bool) {
        let parsed = if checksum_verified { TcpRepr::parse_trusted(seg) } else { TcpRepr::parse(seg, src, dst) };
        match parsed {
            Ok((repr, hlen)) => self.handle_segment(now, src, dst, &repr, &seg[hlen..]),
            Err(_) => {
                self.stats.segments_in += 1;
                self.stats.malformed += 1;
            }
        }
    }

    /// A validated segment (checksum verified by `TcpRepr::parse`) from `src` to `dst`.
    /// No matching TCB or listener: RST per RFC 9293 §3.5.2 (never for a RST).
    pub fn handle_segment(&mut self, now: Instant, src: IpAddr, dst: IpAddr, repr: &TcpRepr, payload: &[u8]) {
        self.stats.segments_in += 1;
        if repr.src_port == 0 || repr.dst_port == 0 {
            // Port 0 is reserved: never a connection, never answered.
            self.stats.dropped += 1;
            return;
        }
        let local = SocketAddr::new(dst, repr.dst_port);
        let remote = SocketAddr::new(src, repr.src_port);
        if let Some(&id) = self.tuples.get(&(local, remote)) {
            let reopen = self.conns.get(&id).is_some_and(|t| t.time_wait_reopenable(repr));
            if reopen {
                if let Some(lid) = self.find_listener(local) {
                    // RFC 6191: the new SYN ends TIME-WAIT and opens a new connection.
                    self.with_tcb(now, id, false, |t, _, _| t.force_close());
                    self.passive_open(now, lid, local, remote, repr);
                    return;
                }
            }
            let room = self
                .conns
                .get(&id)
                .and_then(|t| t.listener)
                .and_then(|l| self.listeners.get(&l))
                .map(|l| l.accept_q.len() < l.backlog)
                .unwrap_or(true);
            if let Some(t) = self.conns.get_mut(&id) {
                t.accept_room = room;
            }
            self.with_tcb(now, id, true, |t, now, ctx| t.handle_segment(now, ctx, repr, payload));
            return;
        }
        let f = repr.flags;
        if f.rst {
            // Never answer a RST (RFC 9293 §3.10.7.1).
            self.stats.dropped += 1;
            return;
        }
        if bad_peer(src) || bad_peer(dst) {
            // M-57, M-63: no SYN processing (and no RST) for broadcast/multicast/invalid.
            self.stats.dropped += 1;
            return;
        }
        if f.syn && !f.ack {
            if let Some(lid) = self.find_listener(local) {
                self.passive_open(now, lid, local, remote, repr);
                return;
            }
        }
        if f.ack && !f.syn {
            if let Some(lid) = self.find_listener(local) {
                if self.cookie_ack(now, lid, local, remote, repr, payload) {
                    return;
                }
            }
        }
        // No TCB: RST per RFC 9293 §3.5.2 (a SYN-ACK or ACK in LISTEN gets one too).
        self.send_reset(dst, src, repr, payload.len());
    }

    fn passive_open(&mut self, now: Instant, lid: ListenerId, local: SocketAddr, remote: SocketAddr, syn: &TcpRepr) {
        let Some(l) = self.listeners.get_mut(&lid) else { return };
        if l.accept_q.len() >= l.backlog {
            // A full accept queue drops the SYN, cookie or not (Linux tcp_conn_request).
            self.stats.syn_dropped += 1;
            return;
        }
        if l.half_open >= self.cfg.max_half_open || self.half_open_total >= self.cfg.max_half_open_total {
            // RFC 4987 §3.6: the half-open queue is full: a cookie, or a drop.
            if self.cfg.syncookies {
                self.send_cookie(now, lid, local, remote, syn);
            } else {
                self.stats.syn_dropped += 1;
            }
            return;
        }
        l.half_open += 1;
        let ttl = l.ttl;
        self.half_open_total += 1;
        let id = self.alloc_id();
        let iss = self.isn.isn(now, local, remote);
        let mut tcb =
            Tcb::new_passive(id, local, remote, iss, self.isn.ts_offset(local, remote), now, &self.cfg, lid, syn);
        tcb.marks.half_open_counted = true;
        tcb.ttl = ttl;
        self.conns.insert(id, Box::new(tcb));
        self.tuples.insert((local, remote), id);
        self.after(now, id, true);
    }

    /// Answer `syn` with a SYN-ACK whose ISN is a cookie (RFC 4987 §3.6), keeping no
    /// state. With timestamps the TSval carries the window-scale and SACK choices
    /// (`syncookie::encode_ts`); without, the connection does without both.
    fn send_cookie(&mut self, now: Instant, lid: ListenerId, local: SocketAddr, remote: SocketAddr, syn: &TcpRepr) {
        let elapsed = now.saturating_duration_since(self.epoch);
        let v6 = local.is_ipv6();
        let cfg = &self.cfg;
        let idx = syncookie::mss_index(v6, syn.options.mss);
        let iss = self.cookies.make(local, remote, syn.seq, syncookie::counter(elapsed), idx);
        let mut o = TcpOptions { mss: Some(tcb::our_mss_for(cfg, v6) as u16), ..TcpOptions::default() };
        if let (true, Some((tsval, _))) = (cfg.timestamps, syn.options.timestamps) {
            let co = CookieOptions {
                wscale: syn.options.window_scale.filter(|_| cfg.window_scale),
                sack: cfg.sack && syn.options.sack_permitted,
            };
            o.window_scale = co.wscale.map(|_| tcb::rcv_wscale_for(cfg));
            o.sack_permitted = co.sack;
            // The TCB's timestamp clock (`Tcb::ts_now`): milliseconds plus the offset.
            let ts_now = (elapsed.as_millis() as u32).wrapping_add(self.isn.ts_offset(local, remote));
            o.timestamps = Some((syncookie::encode_ts(ts_now, co), tsval));
        }
        let synack = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq: iss,
            ack: syn.seq.wrapping_add(1),
            flags: TcpFlags { syn: true, ack: true, ..Default::default() },
            window: cfg.recv_buf.min(0xffff) as u16, // never scaled in a SYN (RFC 7323 §2.2)
            urgent: 0,
            options: o,
        };
        if let Some(l) = self.listeners.get_mut(&lid) {
            l.cookies_until = Some(now + syncookie::COUNTER_PERIOD * syncookie::MAX_AGE);
        }
        self.stats.syncookies_sent += 1;
        self.push_ctl(local.ip(), remote.ip(), synack);
    }

    /// An ACK with no TCB for listener `lid`: if it completes a valid cookie handshake,
    /// build the connection and let the ACK establish it. Returns false when the segment
    /// is not handled here (the caller answers with a RST): no cookie may be outstanding,
    /// or the cookie is bad (counted in `syncookies_failed`).
    fn cookie_ack(
        &mut self,
        now: Instant,
        lid: ListenerId,
        local: SocketAddr,
        remote: SocketAddr,
        ack: &TcpRepr,
        payload: &[u8],
    ) -> bool {
        let Some(l) = self.listeners.get(&lid) else { return false };
        if l.cookies_until.is_none_or(|t| now >= t) {
            return false;
        }
        let Some(syn) = self.cookie_syn(now, local, remote, ack) else {
            self.stats.syncookies_failed += 1;
            return false;
        };
        if l.accept_q.len() >= l.backlog {
            // No room to accept: drop it; the peer retransmits and the cookie is checked
            // again (Linux's listen overflow).
            self.stats.dropped += 1;
            return true;
        }
        self.stats.syncookies_recv_ok += 1;
        let id = self.alloc_id();
        let ts_offset = self.isn.ts_offset(local, remote);
        let mut tcb =
            Tcb::new_from_cookie(id, local, remote, ack.ack.wrapping_sub(1), ts_offset, now, &self.cfg, lid, &syn);
        tcb.ttl = self.listeners.get(&lid).map_or(DEFAULT_HOP_LIMIT, |l| l.ttl);
        self.conns.insert(id, Box::new(tcb));
        self.tuples.insert((local, remote), id);
        // The echoed TSval holds cookie bits, not a send time: no RTT sample from it.
        let mut ack = *ack;
        if let Some((tsval, _)) = ack.options.timestamps {
            ack.options.timestamps = Some((tsval, 0));
        }
        self.with_tcb(now, id, true, |t, now, ctx| {
            t.accept_room = true;
            t.handle_segment(now, ctx, &ack, payload);
            if t.state == State::SynReceived {
                // Not established after all: keep no state for it.
                t.force_close();
            }
        });
        true
    }

    /// The SYN a cookie ACK stands for (SEQ = SEG.SEQ - 1, the decoded MSS and options),
    /// or None if SEG.ACK - 1 is not a valid cookie or the options are not ones we would
    /// have sent (Linux `cookie_timestamp_decode`).
    fn cookie_syn(&self, now: Instant, local: SocketAddr, remote: SocketAddr, ack: &TcpRepr) -> Option<TcpRepr> {
        let count = syncookie::counter(now.saturating_duration_since(self.epoch));
        let irs = ack.seq.wrapping_sub(1);
        let idx = self.cookies.check(local, remote, irs, count, ack.ack.wrapping_sub(1))?;
        let mss = syncookie::mss_of(local.is_ipv6(), idx)?;
        let o = match ack.options.timestamps {
            Some(_) if !self.cfg.timestamps => return None,
            Some((_, tsecr)) => syncookie::decode_ts(tsecr)?,
            None => CookieOptions::default(),
        };
        if (o.sack && !self.cfg.sack) || (o.wscale.is_some() && !self.cfg.window_scale) {
            return None;
        }
        Some(TcpRepr {
            src_port: remote.port(),
            dst_port: local.port(),
            seq: irs,
            ack: 0,
            flags: TcpFlags { syn: true, ..Default::default() },
            window: ack.window,
            urgent: 0,
            options: TcpOptions {
                mss: Some(mss),
                window_scale: o.wscale,
                sack_permitted: o.sack,
                timestamps: ack.options.timestamps.map(|(tsval, _)| (tsval, 0)),
                ..TcpOptions::default()
            },
        })
    }

    /// RFC 9293 §3.5.2 reset generation for a segment with no connection.
    fn send_reset(&mut self, our_ip: IpAddr, their_ip: IpAddr, r: &TcpRepr, payload_len: usize) {
        let rst = if r.flags.ack {
            TcpRepr {
                src_port: r.dst_port,
                dst_port: r.src_port,
                seq: r.ack,
                ack: 0,
                flags: TcpFlags { rst: true, ..Default::default() },
                window: 0,
                urgent: 0,
                options: TcpOptions::default(),
            }
        } else {
            TcpRepr {
                src_port: r.dst_port,
                dst_port: r.src_port,
                seq: 0,
                ack: r.seq.wrapping_add(r.segment_len(payload_len)),
                flags: TcpFlags { rst: true, ack: true, ..Default::default() },
                window: 0,
                urgent: 0,
                options: TcpOptions::default(),
            }
        };
        self.push_ctl(our_ip, their_ip, rst);
    }

    fn push_ctl(&mut self, src: IpAddr, dst: IpAddr, r: TcpRepr) {
        if self.ctl.len() < MAX_CTL {
            self.ctl.push_back((src, dst, r));
        } else {
            self.stats.dropped += 1;
        }
    }

    /// An ICMP error quoting a segment we sent (`local`, `remote`, quoted sequence number).
    /// Ignored unless the quoted number lies in [SND.UNA, SND.NXT] (RFC 5927).
    pub fn handle_icmp_error(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seq: u32,
        kind: IcmpErrorKind,
    ) {
        if let Some(&id) = self.tuples.get(&(local, remote)) {
            self.with_tcb(now, id, true, |t, now, ctx| t.on_icmp(now, ctx, seq, kind));
        }
    }

    /// The link layer could not resolve `ip` (ARP/NDP failed, RFC 4861 §7.3.3): connections
    /// to it in SYN-SENT fail with `HostUnreachable` (Linux's connect() reports EHOSTUNREACH
    /// the same way); others only record it as a soft error (M-56: never abort).
    pub fn neighbour_unreachable(&mut self, now: Instant, ip: IpAddr) {
        self.neighbour_unreachable_where(now, |remote| remote == ip)
    }

    /// As [`Self::neighbour_unreachable`] for every connection whose remote address
    /// `through` selects (those routed through an unreachable gateway).
    pub fn neighbour_unreachable_where(&mut self, now: Instant, through: impl Fn(IpAddr) -> bool) {
        let ids: Vec<ConnId> = self.tuples.iter().filter(|((_, r), _)| through(r.ip())).map(|(_, id)| *id).collect();
        for id in ids {
            self.with_tcb(now, id, true, |t, now, _| t.on_neighbour_unreachable(now));
        }
    }

    /// The last soft ICMP error recorded for `conn` (like `SO_ERROR`), cleared on read and
    /// by an acceptable ACK; a timeout reports it instead of TimedOut.
    pub fn take_soft_error(&mut self, conn: ConnId) -> Option<IcmpErrorKind> {
        self.conns.get_mut(&conn).and_then(|t| t.soft_error.take())
    }

    /// A command from the application; unknown connections are ignored.
    pub fn handle_app(&mut self, now: Instant, conn: ConnId, cmd: AppCommand) {
        self.with_tcb(now, conn, true, |t, now, ctx| t.handle_app(now, ctx, cmd));
    }

    /// The timer wheel fired for `conn`. Lazy: nothing happens unless its deadline is due;
    /// an early firing re-reports the current deadline through `poll_timer_update`.
    pub fn handle_timeout(&mut self, now: Instant, conn: ConnId) {
        let Some(deadline) = self.conns.get(&conn).and_then(|t| t.deadline()) else { return };
        if deadline <= now {
            self.with_tcb(now, conn, true, |t, now, ctx| t.handle_timeout(now, ctx));
        } else {
            // Fired early (e.g. wheel granularity) or stale: report the deadline again so a
            // wheel that dropped its entry re-arms it.
            self.timer_updates.push_back((conn, Some(deadline)));
        }
    }

    /// Emit every segment that is ready, one `tx(src_ip, dst_ip, &repr, payload)` call per
    /// segment; `payload` borrows the send buffer. All segments handled since the last
    /// poll are answered by at most one ACK per connection (M-58/M-59).
    pub fn poll_transmit(&mut self, now: Instant, tx: &mut TxFn) {
        self.poll_transmit_ip(now, &mut |s, d, _, r, p| tx(s, d, r, p));
    }

    /// [`Endpoint::poll_transmit`] with each segment's IPv4 identification and TTL (a reset
    /// without a connection: identification 0 and the default TTL).
    pub(crate) fn poll_transmit_ip(&mut self, now: Instant, tx: &mut IpTxFn) {
        while let Some((s, d, r)) = self.ctl.pop_front() {
            tx(s, d, (0, DEFAULT_HOP_LIMIT), &r, &[]);
            self.stats.segments_out += 1;
            self.stats.rst_out += u64::from(r.flags.rst);
        }
        while let Some(id) = self.dirty.pop_front() {
            let Some(t) = self.conns.get_mut(&id) else { continue };
            t.marks.in_dirty = false;
            let (l, r, ttl) = (t.local.ip(), t.remote.ip(), t.ttl);
            // One identification per segment, so that a super-segment the device cuts up
            // (each piece the next number) stays in step with the counter.
            let mut ident = t.ip_ident;
            let mut ctx = ctx!(self);
            t.poll_transmit(now, &mut ctx, &mut |repr, payload| {
                ident = ident.wrapping_add(1);
                tx(l, r, (ident, ttl), repr, payload)
            });
            t.ip_ident = ident;
            self.after(now, id, false);
        }
        // Aborted TCBs may have left RSTs.
        while let Some((s, d, r)) = self.ctl.pop_front() {
            tx(s, d, (0, DEFAULT_HOP_LIMIT), &r, &[]);
            self.stats.segments_out += 1;
            self.stats.rst_out += u64::from(r.flags.rst);
        }
    }

    /// The next event for the engine / sockets. Called at the end of a batch: once the
    /// queued events are out, each connection holding in-order data back hands it to its
    /// socket as one `Data` chunk, unless the socket has not yet read the chunks it was
    /// given (then the data keeps coalescing; a `ReadCredit` makes it ready again). So a
    /// reading application gets its data at the end of every batch, and one that does not
    /// read holds few, full chunks (`rcvqueue`).
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            let id = self.rx_ready.pop_front()?;
            let Some(t) = self.conns.get_mut(&id) else { continue };
            t.marks.in_rx_ready = false;
            if t.release_rx(false) {
                while let Some(e) = t.events.pop_front() {
                    self.events.push_back(Event::Conn(id, e));
                }
            }
        }
    }

    /// Deadline changes since the last call: `(conn, earliest deadline or None)`. When a
    /// connection appears several times the last entry wins.
    pub fn poll_timer_update(&mut self) -> Option<(ConnId, Option<Instant>)> {
        self.timer_updates.pop_front()
    }

    /// Connections that sent (or must still send) their FIN and have not had it
    /// acknowledged: FIN-WAIT-1, CLOSING, LAST-ACK.
    pub fn closing_count(&self) -> usize {
        self.conns.values().filter(|t| matches!(t.state, State::FinWait1 | State::Closing | State::LastAck)).count()
    }

    /// Abort every connection the application still holds open: an RST for each
    /// synchronized one (RFC 9293 §3.10.5), then `Closed`. For a host that stops. Those the
    /// application closed are left to finish as orphans do (their FIN went out first).
    pub fn abort_all(&mut self, now: Instant) {
        let ids: Vec<ConnId> = self
            .conns
            .values()
            .filter(|t| !t.is_orphaned() && !matches!(t.state, State::TimeWait | State::Closed))
            .map(|t| t.id)
            .collect();
        for id in ids {
            self.with_tcb(now, id, true, |t, now, ctx| t.handle_app(now, ctx, AppCommand::Abort));
        }
    }

    /// Every connection (not the listeners) as `ss -tin` shows it, ordered by address.
    pub fn sockets(&self) -> Vec<super::TcpInfo> {
        let mut v: Vec<super::TcpInfo> = self.conns.values().map(|t| t.info()).collect();
        v.sort_by_key(|i| (i.local, i.remote));
        v
    }

    /// The TTL / hop limit of connection `id`'s segments from now on (`TcpStream::set_ttl`).
    pub fn set_conn_ttl(&mut self, id: ConnId, ttl: u8) {
        if let Some(t) = self.conns.get_mut(&id) {
            t.ttl = ttl;
        }
    }

    /// The TTL of the connections listener `id` accepts from now on, SYN-ACK included.
    pub fn set_listener_ttl(&mut self, id: ListenerId, ttl: u8) {
        if let Some(l) = self.listeners.get_mut(&id) {
            l.ttl = ttl;
        }
    }

    /// Our addresses, for choosing the source of an active open ([`Endpoint::source_for`]).
    pub fn set_local_addrs(&mut self, v4: Vec<Ipv4Addr>, v6: Vec<Ipv6Addr>) {
        self.local_v4 = v4;
        self.local_v6 = v6;
    }

    /// Replace our IPv4 addresses (a DHCP lease came or went).
    pub fn set_local_v4(&mut self, v4: Vec<Ipv4Addr>) {
        self.local_v4 = v4;
    }

    /// The source address for a connection to `dst`: the first IPv4 address, or the first
    /// IPv6 address of the same scope (link-local for link-local), else the first IPv6 one
    /// (RFC 6724 §5 rule 2, reduced to the two scopes we have).
    pub fn source_for(&self, dst: IpAddr) -> Option<IpAddr> {
        match dst {
            IpAddr::V4(_) => self.local_v4.first().map(|a| IpAddr::V4(*a)),
            IpAddr::V6(d) => {
                let ll = |a: &Ipv6Addr| a.segments()[0] & 0xffc0 == 0xfe80;
                self.local_v6.iter().find(|a| ll(a) == ll(&d)).or(self.local_v6.first()).map(|a| IpAddr::V6(*a))
            }
        }
    }

    /// `(local, remote)` of connection `id`, while it exists.
    pub fn conn_tuple(&self, id: ConnId) -> Option<(SocketAddr, SocketAddr)> {
        self.conns.get(&id).map(|t| (t.local, t.remote))
    }

    /// Live TCBs, TIME-WAIT included.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Counters since creation (and the `half_open` gauge).
    pub fn stats(&self) -> TcpStats {
        TcpStats { half_open: self.half_open_total as u64, ..self.stats }
    }

    /// Half-open (SYN-RECEIVED) TCBs over all listeners.
    pub fn half_open_count(&self) -> usize {
        self.half_open_total
    }

    /// Bytes a connection has allocated on its send side (send buffer and retransmission
    /// records), for tests and diagnostics.
    pub fn tx_memory(&self, conn: ConnId) -> Option<usize> {
        self.conns.get(&conn).map(|t| t.tx_memory())
    }

    /// Bytes of memory a connection's receive queue is charged (what it holds for the
    /// application and what the application was handed and has not read), and bytes it
    /// holds (the charge plus the unused room of the chunk being filled). Diagnostics.
    pub fn rx_memory(&self, conn: ConnId) -> Option<(usize, usize)> {
        self.conns.get(&conn).map(|t| t.rx_memory())
    }

    /// The state of a connection (for diagnostics and tests).
    pub fn state(&self, conn: ConnId) -> Option<State> {
        self.conns.get(&conn).map(|t| t.state)
    }

    /// Bookkeeping after any operation on a TCB: events, listener accounting, TIME-WAIT
    /// bound, transmit scheduling, deadline changes, removal of closed TCBs. `mark_dirty`
    /// is false after the TCB transmitted (and for a forced close).
    fn after(&mut self, now: Instant, id: ConnId, mark_dirty: bool) {
        self.track_orphan(now, id);
        let Some(t) = self.conns.get_mut(&id) else { return };
        if t.just_established {
            t.just_established = false;
            let free = self.cfg.send_buf;
            if t.marks.half_open_counted {
                t.marks.half_open_counted = false;
                self.half_open_total = self.half_open_total.saturating_sub(1);
                if let Some(l) = t.listener.and_then(|l| self.listeners.get_mut(&l)) {
                    l.half_open = l.half_open.saturating_sub(1);
                }
            }
            if let Some(lid) = t.listener {
                if let Some(l) = self.listeners.get_mut(&lid) {
                    l.accept_q.push_back(id);
                    self.stats.conns_accepted += 1;
                    self.events.push_back(Event::Accepted {
                        listener: lid,
                        conn: id,
                        local: t.local,
                        remote: t.remote,
                    });
                    self.events.push_back(Event::Conn(id, SocketEvent::SendCredit(free)));
                }
            }
        }
        while let Some(e) = t.events.pop_front() {
            self.events.push_back(Event::Conn(id, e));
        }
        if t.rx_pending() && !t.marks.in_rx_ready {
            t.marks.in_rx_ready = true;
            self.rx_ready.push_back(id);
        }
        if t.state == State::TimeWait && !t.marks.tw_counted {
            if self.time_wait_count < self.cfg.max_time_wait {
                self.time_wait_count += 1;
                t.marks.tw_counted = true;
            } else if mark_dirty && t.wants_transmit() {
                // No TIME-WAIT slot, but the ACK of the peer's FIN is not sent yet: keep
                // the TCB until poll_transmit has sent it (its `after` call, with
                // `mark_dirty` false, lands in the branch below). Not counted meanwhile.
                if !t.marks.in_dirty {
                    t.marks.in_dirty = true;
                    self.dirty.push_back(id);
                }
            } else {
                // Bounded TIME-WAIT: close at once (like Linux's tw_buckets overflow).
                self.stats.time_wait_overflow += 1;
                t.state = State::Closed;
                if t.announced {
                    self.events.push_back(Event::Conn(id, SocketEvent::Closed));
                }
            }
        }
        if let Some(q) = self.diag.as_mut() {
            t.take_diag(&mut |d| {
                if q.len() < super::diag::DIAG_QUEUE {
                    q.push_back(d);
                }
            });
        }
        if t.state == State::Closed {
            if let Some(rst) = t.rst_out.take() {
                let (l, r) = (t.local.ip(), t.remote.ip());
                self.push_ctl(l, r, rst);
            }
            self.remove(id);
            return;
        }
        if mark_dirty && !t.marks.in_dirty && t.wants_transmit() {
            t.marks.in_dirty = true;
            self.dirty.push_back(id);
        }
        let d = t.deadline();
        if d != t.marks.reported_deadline {
            t.marks.reported_deadline = d;
            self.timer_updates.push_back((id, d));
        }
    }

    /// Keep `orphans` in step with the TCB; a connection that becomes an orphan when
    /// `max_orphans` already exist is reset at once (Linux's `tcp_max_orphans`: "too many
    /// orphaned sockets", the close sends an RST). The abort re-enters `after` with the TCB
    /// closed, which removes it.
    fn track_orphan(&mut self, now: Instant, id: ConnId) {
        let Some(t) = self.conns.get(&id) else { return };
        let orphan = t.is_orphaned() && !matches!(t.state, State::TimeWait | State::Closed);
        if !orphan {
            self.orphans.remove(&id);
        } else if !self.orphans.contains(&id) {
            if self.orphans.len() < self.cfg.max_orphans {
                self.orphans.insert(id);
            } else {
                self.stats.orphans_reset += 1;
                self.with_tcb(now, id, true, |t, now, ctx| t.handle_app(now, ctx, AppCommand::Abort));
            }
        }
    }

    /// Orphaned connections still finishing (not counting TIME-WAIT).
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    fn remove(&mut self, id: ConnId) {
        self.orphans.remove(&id);
        let Some(t) = self.conns.remove(&id) else { return };
        self.tuples.remove(&(t.local, t.remote));
        shrink_if_sparse(&mut self.conns);
        shrink_if_sparse(&mut self.tuples);
        if t.marks.tw_counted {
            self.time_wait_count = self.time_wait_count.saturating_sub(1);
        }
        if t.marks.half_open_counted {
            self.half_open_total = self.half_open_total.saturating_sub(1);
            if let Some(l) = t.listener.and_then(|l| self.listeners.get_mut(&l)) {
                l.half_open = l.half_open.saturating_sub(1);
            }
        }
        if t.marks.reported_deadline.is_some() {
            self.timer_updates.push_back((id, None));
        }
    }
}

/// A map keeps the capacity of its busiest moment; once it is less than a quarter full, give
/// most of that back (to twice its length), so memory returns after a burst of connections.
/// Amortised O(1): the next shrink needs the length to halve again.
fn shrink_if_sparse<K: Eq + std::hash::Hash, V>(m: &mut HashMap<K, V>) {
    let len = m.len();
    if m.capacity() > 64 && len * 4 < m.capacity() {
        m.shrink_to(len * 2);
    }
}
