//! The tcp engine actor: one thread owns every TCB (inside [`Endpoint`]).
//!
//! One inbox carries segments, app commands, ICMP errors and timer firings, so ordering is
//! simple and no lock guards TCP state. After each drained batch it flushes: the packets the
//! core built (`Endpoint::poll_packets`: IP headers, TTLs, GSO, from this thread's pool) to
//! dev-tx as one batch (on TAP to the ip actor's link layer instead, `link::TxPath`), events
//! to socket inboxes (never blocking: those inboxes are bounded in bytes by the
//! window/credit protocol, not by the channel), new deadlines to the timer.

use super::timer::TimerMsg;
use super::StackStats;
use crate::buf::{Batch, Pool};
use crate::proto::ip::IcmpErrorClass;
use crate::proto::tcp::diag::{Diag, TraceRow, TRACE_CSV_HEADER};
use crate::proto::tcp::{
    AppCommand, ConnId, Endpoint, Event, IcmpErrorKind, ListenAddr, ListenerId, SocketEvent, TcpConfig,
};
use ahash::AHashMap as HashMap;
use crossbeam_channel::{unbounded, Receiver, Sender};
use slog::Logger;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::StackConfig;

/// A TCP segment as the ip actor hands it over: `buf[start..end]` is header + payload.
pub struct SegmentIn {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub buf: Vec<u8>,
    pub start: usize,
    pub end: usize,
    /// The device vouched for the checksum (offload): parse without verifying it.
    pub csum_ok: bool,
}

/// What a listener's inbox receives.
pub struct Incoming {
    pub conn: ConnId,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub events: Receiver<SocketEvent>,
}

pub enum TcpMsg {
    Segments(Vec<SegmentIn>),
    Icmp {
        local: SocketAddr,
        remote: SocketAddr,
        seq: u32,
        class: IcmpErrorClass,
    },
    Timer(Vec<(u64, Instant)>),
    /// The link layer could not resolve these next hops (TAP only); connections are
    /// matched to them through the routing table given (a gateway stands for every
    /// destination routed through it).
    Unreachable(Vec<IpAddr>, Arc<crate::proto::link::route::RouteTable>),
    /// Our IPv4 addresses changed (a DHCP lease came or went): new connections use these.
    SetV4(Vec<std::net::Ipv4Addr>),
    Connect {
        remote: SocketAddr,
        events: Sender<SocketEvent>,
        reply: Sender<io::Result<ConnId>>,
    },
    Listen {
        addr: ListenAddr,
        backlog: usize,
        inbox: Sender<Incoming>,
        /// The listener and what it listens on (port 0 replaced by the port chosen).
        reply: Sender<io::Result<(ListenerId, ListenAddr)>>,
    },
    CloseListener(ListenerId),
    Accepted(ListenerId),
    /// IPv4 TTL / IPv6 hop limit of a connection's segments from now on (`TcpStream::set_ttl`).
    SetConnTtl(ConnId, u8),
    /// TTL that connections this listener accepts from now on start with, from their SYN-ACK
    /// (`TcpListener::set_ttl`).
    SetListenerTtl(ListenerId, u8),
    App(ConnId, AppCommand),
    /// Reply with every connection's [`crate::proto::tcp::TcpInfo`].
    Sockets(Sender<Vec<crate::proto::tcp::TcpInfo>>),
    /// Reply with the number of connections whose FIN is not yet acknowledged.
    Closing(Sender<usize>),
    /// The stack is stopping: reset every connection still open (RFC 9293 §3.10.5 abort),
    /// so no peer waits for a host that is gone.
    AbortAll,
    Shutdown,
}

/// Messages drained before one flush.
pub(crate) const DRAIN: usize = 64;

struct Engine {
    ep: Endpoint,
    log: Logger,
    conns: HashMap<ConnId, Sender<SocketEvent>>,
    listeners: HashMap<ListenerId, Sender<Incoming>>,
    /// Deadline each connection wants, as last reported by the core.
    wanted: HashMap<ConnId, Instant>,
    /// Firings in the wheel per connection (a handful: a new one is scheduled only when the
    /// wanted deadline is earlier than all of them, and each is removed when it fires).
    armed: HashMap<ConnId, Vec<Instant>>,
    touched: Vec<ConnId>,
    cfg: Arc<StackConfig>,
    recycle: super::Recyclers,
}

/// Segments from ip give back their bytes of `stats.tcp_inbox` as they are taken.
pub fn run(
    cfg: Arc<StackConfig>,
    inbox: Receiver<TcpMsg>,
    devtx: super::link::TxPath,
    timer: Sender<TimerMsg>,
    (pool, recycle): (Pool, super::Recyclers),
    stats: Arc<StackStats>,
    log: Logger,
) {
    let tcp_cfg: TcpConfig = cfg.tcp.clone();
    slog::debug!(log, "tcp engine started"; "congestion" => ?tcp_cfg.congestion, "mtu" => tcp_cfg.mtu);
    let mut e = Engine {
        ep: Endpoint::new(tcp_cfg, rand::random(), Instant::now()),
        log: log.clone(),
        conns: HashMap::default(),
        listeners: HashMap::default(),
        wanted: HashMap::default(),
        armed: HashMap::default(),
        touched: Vec::new(),
        cfg,
        recycle,
    };
    // The core builds the packets (GSO when the device takes super-segments) and picks
    // sources; the actor moves them.
    e.ep.set_gso(e.cfg.ip.tx_trailer());
    e.ep.set_local_addrs(e.cfg.ip.v4.clone(), e.cfg.ip.v6.clone());
    // Diagnostics only when someone will read them (a debug log, a trace file).
    e.ep.set_diagnostics(slog::Drain::is_debug_enabled(&log));
    let mut trace = e.cfg.trace_tcp.as_deref().and_then(|p| TraceFile::create(p, &log));
    e.ep.set_trace(trace.is_some());
    let mut out: Batch = e.recycle.tx.get();
    let mut schedule: Vec<(u64, Instant)> = Vec::new();
    let spin = e.cfg.spin;
    while let Some(first) = super::spin_recv(&inbox, spin).or_else(|| inbox.recv().ok()) {
        let now = Instant::now();
        while let Some(c) = e.recycle.chunks.take() {
            e.ep.recycle_rx_chunk(c);
        }
        let mut next = Some(first);
        let mut n = 0;
        while let Some(m) = next.take() {
            if let TcpMsg::Segments(segs) = &m {
                stats.tcp_inbox.release(crate::buf::batch_bytes(segs.iter().map(|s| &s.buf)));
            }
            if !e.handle(now, m, &pool) {
                // Last words (the RSTs of `AbortAll`) go out before the engine stops.
                e.transmit(now, &pool, &mut out);
                if !out.is_empty() {
                    let _ = devtx.send(std::mem::take(&mut out), &pool, &stats.dev_tx_dropped);
                }
                return;
            }
            n += 1;
            if n < DRAIN {
                next = inbox.try_recv().ok();
            }
        }
        e.flush(now, &pool, &mut out, &mut schedule);
        while let Some(c) = e.ep.take_spent_tx() {
            e.recycle.tx_chunks.put(c);
        }
        if !out.is_empty() && !devtx.send(std::mem::replace(&mut out, e.recycle.tx.get()), &pool, &stats.dev_tx_dropped)
        {
            return;
        }
        if !schedule.is_empty() && timer.send(TimerMsg::Schedule(std::mem::take(&mut schedule))).is_err() {
            return;
        }
        stats.tcp.store(&e.ep.stats());
        stats.tcp_conns.store(e.ep.conn_count() as u64, std::sync::atomic::Ordering::Relaxed);
        log_diagnostics(&mut e.ep, &log);
        if let Some(t) = trace.as_mut() {
            t.write(&mut e.ep);
        }
    }
}

/// State changes and retransmission timeouts, at debug level with the connection's
/// addresses as keys (nothing per packet).
fn log_diagnostics(ep: &mut Endpoint, log: &Logger) {
    while let Some(d) = ep.poll_diag() {
        match d {
            Diag::State { conn, local, remote, from, to } => {
                slog::debug!(log, "tcp state"; "conn" => conn, "local" => %local, "remote" => %remote, "from" => ?from, "to" => ?to)
            }
            Diag::Timeout { conn, local, remote, rto, retries } => slog::debug!(log, "tcp retransmission timeout";
                "conn" => conn, "local" => %local, "remote" => %remote, "rto_ms" => rto.as_millis() as u64, "retries" => retries),
        }
    }
}

/// The `StackConfig::trace_tcp` file: the engine's trace rows as CSV, written after each batch.
struct TraceFile {
    out: std::io::BufWriter<std::fs::File>,
    rows: Vec<TraceRow>,
    /// The engine's epoch as seconds since the Unix epoch, so rows carry wall-clock time.
    offset: std::time::Duration,
    log: Logger,
}

impl TraceFile {
    fn create(path: &std::path::Path, log: &Logger) -> Option<TraceFile> {
        use std::io::Write;
        let f = std::fs::File::create(path)
            .map_err(|e| slog::warn!(log, "no TCP trace"; "file" => %path.display(), "error" => %e))
            .ok()?;
        let mut out = std::io::BufWriter::new(f);
        writeln!(out, "{TRACE_CSV_HEADER}").ok()?;
        let offset = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Some(TraceFile { out, rows: Vec::new(), offset, log: log.clone() })
    }

    fn write(&mut self, ep: &mut Endpoint) {
        use std::io::Write;
        ep.take_trace(&mut self.rows);
        let mut ok = true;
        for r in &self.rows {
            ok &= writeln!(self.out, "{}", r.csv(self.offset)).is_ok();
        }
        ok &= self.rows.is_empty() || self.out.flush().is_ok();
        if !ok {
            slog::warn!(self.log, "TCP trace write failed; tracing stops");
            ep.set_trace(false);
        }
    }
}

impl Engine {
    /// Returns false on shutdown.
    fn handle(&mut self, now: Instant, m: TcpMsg, pool: &Pool) -> bool {
        match m {
            TcpMsg::Segments(mut segs) => {
                for s in segs.drain(..) {
                    self.ep.handle_packet(now, s.src, s.dst, &s.buf[s.start..s.end], s.csum_ok);
                    pool.put(s.buf);
                }
                self.recycle.segs.put(segs);
            }
            TcpMsg::Icmp { local, remote, seq, class } => {
                slog::debug!(self.log, "icmp error for a connection"; "local" => %local, "remote" => %remote, "class" => ?class);
                let kind = match class {
                    IcmpErrorClass::PortUnreachable => IcmpErrorKind::PortUnreachable,
                    IcmpErrorClass::PacketTooBig(mtu) => IcmpErrorKind::PacketTooBig(mtu),
                    IcmpErrorClass::Soft(k) => IcmpErrorKind::Soft(k),
                };
                self.ep.handle_icmp_error(now, local, remote, seq, kind);
            }
            TcpMsg::Timer(fired) => {
                for (conn, at) in fired {
                    if let Some(v) = self.armed.get_mut(&conn) {
                        if let Some(i) = v.iter().position(|&t| t == at) {
                            v.swap_remove(i);
                        }
                        if v.is_empty() {
                            self.armed.remove(&conn);
                        }
                    }
                    self.ep.handle_timeout(now, conn);
                    self.touched.push(conn);
                }
            }
            TcpMsg::Unreachable(hops, routes) => {
                for hop in hops {
                    self.ep.neighbour_unreachable_where(now, |remote| routes.next_hop(now, remote) == Some(hop));
                }
            }
            TcpMsg::SetV4(v4) => self.ep.set_local_v4(v4),
            TcpMsg::Connect { remote, events, reply } => {
                let local_ip = self.ep.source_for(remote.ip());
                let r = match local_ip {
                    Some(ip) => self.ep.connect(now, ip, remote),
                    None => Err(io::Error::new(io::ErrorKind::AddrNotAvailable, "no local address of that family")),
                };
                if let Ok(id) = &r {
                    self.conns.insert(*id, events);
                }
                let _ = reply.try_send(r);
            }
            TcpMsg::Listen { addr, backlog, inbox, reply } => {
                let r = self.ep.listen(addr, backlog).map(|id| (id, self.ep.listener_addr(id).unwrap_or(addr)));
                if let Ok((id, _)) = &r {
                    self.listeners.insert(*id, inbox);
                }
                let _ = reply.try_send(r);
            }
            TcpMsg::CloseListener(id) => {
                self.listeners.remove(&id);
                self.ep.close_listener(now, id);
            }
            TcpMsg::Accepted(id) => self.ep.listener_accepted(id),
            TcpMsg::SetConnTtl(conn, ttl) => self.ep.set_conn_ttl(conn, ttl),
            TcpMsg::SetListenerTtl(id, ttl) => self.ep.set_listener_ttl(id, ttl),
            TcpMsg::App(conn, cmd) => self.app(now, conn, cmd),
            TcpMsg::Sockets(reply) => {
                let _ = reply.try_send(self.ep.sockets());
            }
            TcpMsg::Closing(reply) => {
                let _ = reply.try_send(self.ep.closing_count());
            }
            TcpMsg::AbortAll => self.ep.abort_all(now),
            TcpMsg::Shutdown => return false,
        }
        true
    }

    /// A socket's command for its connection. After a shutdown, a thread of the socket
    /// blocked on its event channel is woken so it sees the shutdown another thread made
    /// (Linux wakes a blocked recv/send likewise): a `SendCredit(0)`, a no-op in any order.
    fn app(&mut self, now: Instant, conn: ConnId, cmd: AppCommand) {
        let shutdown = matches!(cmd, AppCommand::ShutdownRead | AppCommand::ShutdownWrite);
        self.ep.handle_app(now, conn, cmd);
        if shutdown {
            if let Some(tx) = self.conns.get(&conn) {
                let _ = tx.send(SocketEvent::SendCredit(0));
            }
        }
    }

    /// Emit every ready segment into `out`: one packet each, or joined into super-segments
    /// when the device takes them (`wire::gso`).
    fn transmit(&mut self, now: Instant, pool: &Pool, out: &mut Batch) {
        self.ep.poll_packets(now, pool, out);
    }

    fn flush(&mut self, now: Instant, pool: &Pool, out: &mut Batch, schedule: &mut Vec<(u64, Instant)>) {
        self.transmit(now, pool, out);
        while let Some(ev) = self.ep.poll_event() {
            match ev {
                Event::Accepted { listener, conn, local, remote } => {
                    let (tx, rx) = unbounded();
                    self.conns.insert(conn, tx);
                    let delivered = self
                        .listeners
                        .get(&listener)
                        .is_some_and(|l| l.send(Incoming { conn, local, remote, events: rx }).is_ok());
                    if !delivered {
                        // The listener went away: the connection has no owner.
                        self.ep.handle_app(now, conn, AppCommand::Abort);
                    }
                }
                Event::Conn(conn, ev) => {
                    let closed = matches!(ev, SocketEvent::Closed);
                    if let Some(tx) = self.conns.get(&conn) {
                        let _ = tx.send(ev);
                    }
                    if closed {
                        self.conns.remove(&conn);
                    }
                }
            }
        }
        // Anything Abort just queued.
        self.transmit(now, pool, out);
        while let Some((conn, dl)) = self.ep.poll_timer_update() {
            match dl {
                Some(d) => {
                    self.wanted.insert(conn, d);
                }
                None => {
                    self.wanted.remove(&conn);
                }
            }
            self.touched.push(conn);
        }
        for conn in self.touched.drain(..) {
            match self.wanted.get(&conn) {
                Some(&d) => {
                    let v = self.armed.entry(conn).or_default();
                    if v.iter().min().is_none_or(|&a| a > d) {
                        v.push(d);
                        schedule.push((conn, d));
                    }
                }
                None => {
                    // Nothing wanted: a pending firing will be a no-op; forget it unless
                    // the connection is gone entirely.
                    if !self.conns.contains_key(&conn) {
                        self.armed.remove(&conn);
                    }
                }
            }
        }
    }
}
