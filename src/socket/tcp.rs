//! `TcpStream` and `TcpListener`: blocking handles on connections owned by the tcp engine.
//!
//! A stream's events (data, send credit, EOF, errors) arrive on one channel. Several threads
//! may use one stream (`try_clone`: read in one, write in another), so exactly one waiter at a
//! time receives from the channel (the "poller") and applies what it got to the shared state;
//! the others wait on a condition variable and are woken after each event. Invariants: bytes
//! queued in `rx` never exceed the window the engine advertised (the engine guarantees it);
//! the writer never hands the engine more than its credit.

use super::ToSocketAddrs;
use super::{check_timeout, check_ttl, each_addr, not_ready, recv_or_device, would_block};
use crate::actor::tcp::{Incoming as IncomingConn, TcpMsg};
use crate::actor::{stack_gone, StackHandle};
use crate::proto::tcp::sendbuf::MIN_OWNED_CHUNK;
use crate::proto::tcp::{AppCommand, ConnId, ListenAddr, ListenerId, SocketEvent};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest single `Write` command (bounds one message; credit bounds the total).
const MAX_WRITE_CHUNK: usize = 256 * 1024;
// A write's chunk must be small enough to come back for reuse (`sendbuf::SPENT_MAX_CAP`).
const _: () = assert!(MAX_WRITE_CHUNK <= crate::proto::tcp::sendbuf::SPENT_MAX_CAP);
/// Read credit is returned to the engine in steps of at least this much (or when the
/// queue empties), so a stream of small reads does not cost a message each.
const CREDIT_STEP: usize = 32 * 1024;
/// A stream spins on its next wait when its last one ended within this many spin
/// periods (`State::spin`).
const SPIN_AFTER: u32 = 4;
/// Accept backlog of [`TcpListener::bind`]: std's 128 (Linux's SOMAXCONN is 4,096; see
/// [`TcpListener::bind_with_backlog`]).
const DEFAULT_BACKLOG: usize = 128;

pub struct TcpStream {
    inner: Arc<Inner>,
}

struct Inner {
    id: ConnId,
    stack: StackHandle,
    events: Receiver<SocketEvent>,
    st: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    connected: bool,
    rx: VecDeque<Vec<u8>>,
    /// Bytes of `rx[0]` already read.
    rx_off: usize,
    /// Bytes read but not yet credited back to the engine.
    uncredited: usize,
    eof: bool,
    /// A fatal error (reset, timeout) not yet reported: the next read, write or `take_error`
    /// reports it once (`State::take_fatal`), as Linux's `sk_err`.
    error: Option<io::ErrorKind>,
    /// The fatal error was reported: the connection is over (Linux's `tcp_done` shut both
    /// halves): reads give EOF, writes `BrokenPipe`, `shutdown` `NotConnected`.
    aborted: bool,
    /// An error not yet reported through `take_error`.
    pending_error: Option<io::ErrorKind>,
    closed: bool,
    credit: usize,
    polling: bool,
    read_shut: bool,
    write_shut: bool,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// `set_nonblocking(true)`: reads and writes never wait (shared by every handle, as
    /// `O_NONBLOCK` is shared by `dup`ed descriptors).
    nonblocking: bool,
    /// IPv4 TTL / IPv6 hop limit of the segments (`set_ttl`); `None`: the default.
    ttl: Option<u8>,
    nodelay: bool,
    /// The last blocking wait ended soon (request/response, or a busy stream): the next one
    /// polls for `StackConfig::spin` before it parks. A stream whose events come seldom
    /// (an idle connection of a thread-per-connection server) parks at once.
    spin: bool,
}

impl State {
    fn apply(&mut self, ev: SocketEvent) {
        match ev {
            SocketEvent::Connected { local, remote } => {
                self.local = Some(local);
                self.peer = Some(remote);
                self.connected = true;
            }
            SocketEvent::Data(d) => {
                if !d.is_empty() {
                    self.rx.push_back(d)
                }
            }
            SocketEvent::SendCredit(n) => self.credit += n,
            SocketEvent::Eof => self.eof = true,
            SocketEvent::Error(k) => {
                // The engine's non-fatal errors (a write that raced `shutdown(Write)`, a write
                // beyond the credit) are reported once through `take_error`; they must not
                // poison later reads of a healthy connection.
                if !matches!(k, io::ErrorKind::BrokenPipe | io::ErrorKind::WouldBlock) {
                    self.error = Some(k);
                }
                self.pending_error = Some(k);
            }
            SocketEvent::Closed => self.closed = true,
        }
    }
}

impl State {
    /// The fatal error, once: afterwards the connection reads as EOF and writes fail with
    /// `BrokenPipe`, as on Linux (`sock_error` clears `sk_err`; `tcp_done` set
    /// `SHUTDOWN_MASK`), where a second read after a reset returns 0.
    fn take_fatal(&mut self) -> Option<io::ErrorKind> {
        let k = self.error.take()?;
        self.aborted = true;
        self.eof = true;
        self.write_shut = true;
        if self.pending_error == Some(k) {
            self.pending_error = None;
        }
        Some(k)
    }
}

impl Inner {
    fn send(&self, cmd: AppCommand) -> io::Result<()> {
        self.stack.tcp.send(TcpMsg::App(self.id, cmd)).map_err(|_| stack_gone())
    }

    /// When a read or write gives up: now when non-blocking (which wins over a timeout,
    /// as in std), else after `timeout`.
    fn deadline(st: &State, timeout: Option<Duration>) -> Option<Instant> {
        if st.nonblocking {
            Some(Instant::now())
        } else {
            timeout.map(|t| Instant::now() + t)
        }
    }

    /// Wait until `ready(state)` holds or `deadline` passes (`Ok(false)`). Exactly one waiter
    /// polls the channel; the rest sleep on the condition variable.
    fn wait<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        deadline: Option<Instant>,
        ready: impl Fn(&State) -> bool,
    ) -> io::Result<(MutexGuard<'a, State>, bool)> {
        loop {
            // Events must be applied in the order they were sent: only drain the channel
            // when no other thread is blocked receiving from it (it may hold an earlier one).
            if !st.polling {
                while let Ok(ev) = self.events.try_recv() {
                    st.apply(ev);
                }
            }
            if ready(&st) {
                return Ok((st, true));
            }
            // The device stopped: nothing more will come (what already arrived was read).
            self.stack.check_device()?;
            if st.closed && !st.polling && self.events.is_empty() {
                // Nothing more will ever arrive.
                let r = ready(&st);
                return Ok((st, r));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((st, false));
            }
            if !st.polling {
                st.polling = true;
                let spin_for = self.stack.cfg.spin;
                let spin = if st.spin { spin_for } else { Duration::ZERO };
                let start = Instant::now();
                let r = MutexGuard::unlocked(&mut st, || recv_or_device(&self.events, &self.stack, deadline, spin));
                st.polling = false;
                st.spin = r.is_ok() && start.elapsed() <= spin_for * SPIN_AFTER;
                self.cv.notify_all();
                match r {
                    Ok(ev) => st.apply(ev),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        self.stack.check_device()?;
                        st.closed = true;
                        if st.error.is_none() && !st.eof {
                            return Err(stack_gone());
                        }
                    }
                }
            } else {
                match deadline {
                    None => self.cv.wait(&mut st),
                    Some(d) => {
                        self.cv.wait_until(&mut st, d);
                    }
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.stack.tcp.send(TcpMsg::App(self.id, AppCommand::Close));
    }
}

fn err(kind: io::ErrorKind) -> io::Error {
    io::Error::from(kind)
}

impl TcpStream {
    /// Open a connection to `addr` (v4 or v6, from an ephemeral port). A name is resolved by
    /// the stack's resolver and, as std, each address is tried in turn until one connects;
    /// the last error is returned.
    pub fn connect(stack: &StackHandle, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(stack, addr, |a| Self::connect_inner(stack, a, None))
    }

    /// As `connect` to one address, giving up with `TimedOut` after `timeout` (std's
    /// signature; for a name, see [`TcpStream::connect_with_timeout`]).
    pub fn connect_timeout(stack: &StackHandle, addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        Self::connect_with_timeout(stack, addr, timeout)
    }

    /// `connect_timeout` for anything [`ToSocketAddrs`] (not in std, whose
    /// `connect_timeout` takes one `&SocketAddr`): each address is tried in turn with what
    /// remains of `timeout`, so the whole call takes at most `timeout` (an address that
    /// swallows SYNs can use it all up); the last error is returned.
    pub fn connect_with_timeout(
        stack: &StackHandle,
        addr: impl ToSocketAddrs,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        let end = Instant::now() + timeout;
        each_addr(stack, addr, |a| {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connection timed out"));
            }
            Self::connect_inner(stack, a, Some(left))
        })
    }

    fn connect_inner(stack: &StackHandle, remote: SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        if remote.ip().is_unspecified() || remote.ip().is_multicast() || remote.port() == 0 {
            // RFC 9293 M-46: no active open to broadcast/multicast.
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "invalid destination address"));
        }
        stack.check_device()?;
        stack.route(remote.ip())?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let (etx, erx) = unbounded();
        let (rtx, rrx) = bounded(1);
        stack.tcp.send(TcpMsg::Connect { remote, events: etx, reply: rtx }).map_err(|_| stack_gone())?;
        let id = rrx.recv().map_err(|_| stack_gone())??;
        let s = TcpStream {
            inner: Arc::new(Inner { id, stack: stack.clone(), events: erx, st: Mutex::default(), cv: Condvar::new() }),
        };
        let st = s.inner.st.lock();
        let (st, ok) = s.inner.wait(st, deadline, |st| st.connected || st.error.is_some())?;
        if let Some(e) = st.error {
            return Err(err(e));
        }
        if !ok {
            drop(st);
            let _ = s.inner.send(AppCommand::Abort);
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connection timed out"));
        }
        drop(st);
        Ok(s)
    }

    /// An accepted connection; `ttl` is its listener's `set_ttl` (the engine applied it).
    fn from_incoming(stack: &StackHandle, inc: IncomingConn, ttl: Option<u8>) -> TcpStream {
        let st = State { local: Some(inc.local), peer: Some(inc.remote), connected: true, ttl, ..State::default() };
        TcpStream {
            inner: Arc::new(Inner {
                id: inc.conn,
                stack: stack.clone(),
                events: inc.events,
                st: Mutex::new(st),
                cv: Condvar::new(),
            }),
        }
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.st.lock().peer.ok_or_else(|| err(io::ErrorKind::NotConnected))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.st.lock().local.ok_or_else(|| err(io::ErrorKind::NotConnected))
    }

    /// Another handle to the same connection (read in one thread, write in another).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream { inner: self.inner.clone() })
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.inner.st.lock().read_timeout = t;
        Ok(())
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.inner.st.lock().write_timeout = t;
        Ok(())
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.st.lock().read_timeout)
    }

    /// As std: when `true`, `read`/`peek` return `WouldBlock` if no byte (nor EOF, nor an
    /// error) is ready and `write` returns `WouldBlock` if no byte fits the send buffer
    /// (a write that fits partly is partial). It wins over the timeouts. Every handle of
    /// the connection (`try_clone`) shares the setting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.st.lock().nonblocking = nonblocking;
        Ok(())
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.st.lock().write_timeout)
    }

    /// The IPv4 TTL (IPv6 hop limit) of this connection's segments from now on (std's
    /// `set_ttl`, Linux's `IP_TTL`; the hop limit on IPv6): 1 to 255, `u32::MAX` (-1) for
    /// the default, else `InvalidInput` (EINVAL), as on Linux.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let t = check_ttl(ttl)?;
        self.inner.st.lock().ttl = Some(t);
        self.inner.stack.tcp.send(TcpMsg::SetConnTtl(self.inner.id, t)).map_err(|_| stack_gone())
    }

    /// The TTL set by [`TcpStream::set_ttl`] (or inherited from the listener), default 64.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(self.inner.st.lock().ttl.unwrap_or(crate::wire::DEFAULT_HOP_LIMIT).into())
    }

    /// Turn Nagle's algorithm off (`true`) or on (RFC 9293 M-17).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.st.lock().nodelay = nodelay;
        self.inner.send(AppCommand::SetNodelay(nodelay))
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.inner.st.lock().nodelay)
    }

    /// Keep-alive probes after `idle` of silence (`None`: off, the default; RFC 9293 M-25).
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.inner.send(AppCommand::SetKeepalive(idle))
    }

    /// The error the connection ended with (reset, timeout…), cleared by this call.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut st = self.inner.st.lock();
        if !st.polling {
            while let Ok(ev) = self.inner.events.try_recv() {
                st.apply(ev);
            }
        }
        // One error, reported once (Linux's SO_ERROR clears `sk_err`): taking the fatal
        // one here ends the connection as a read reporting it would.
        let e = st.pending_error.take();
        if e.is_some() && e == st.error {
            st.take_fatal();
        }
        Ok(e.map(err))
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let mut st = self.inner.st.lock();
        if st.error.is_some() || st.closed || st.aborted {
            return Err(err(io::ErrorKind::NotConnected));
        }
        if matches!(how, Shutdown::Read | Shutdown::Both) && !st.read_shut {
            st.read_shut = true;
            self.inner.send(AppCommand::ShutdownRead)?;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) && !st.write_shut {
            st.write_shut = true;
            self.inner.send(AppCommand::ShutdownWrite)?;
        }
        // Threads blocked in read or write see the shutdown: those on the condition
        // variable now, the one polling the channel when the engine's nudge comes.
        self.inner.cv.notify_all();
        Ok(())
    }

    /// Read without consuming.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf, true)
    }

    /// An empty `buf` reads nothing but waits as a full one, as Linux's `recv` with length
    /// 0 on a TCP socket does: `WouldBlock` when non-blocking, else `Ok(0)` once data, EOF
    /// or the read timeout comes.
    ///
    /// After `shutdown(Read)` it never waits: data already received, or arriving since, is
    /// still read, then `Ok(0)` (Linux's SHUT_RD).
    fn read_inner(&self, buf: &mut [u8], peek: bool) -> io::Result<usize> {
        let st = self.inner.st.lock();
        let deadline = Inner::deadline(&st, st.read_timeout);
        let (mut st, ready) =
            self.inner.wait(st, deadline, |s| !s.rx.is_empty() || s.eof || s.error.is_some() || s.read_shut)?;
        if st.rx.is_empty() {
            // A connection error that arrived first (a reset) is reported as it is, once.
            if let Some(e) = st.take_fatal() {
                return Err(err(e));
            }
            if !st.eof {
                self.inner.stack.check_device()?;
            }
            if st.eof || st.read_shut {
                return Ok(0);
            }
            if st.closed {
                // Gone without EOF or error: the stack stopped under us.
                return Err(stack_gone());
            }
            if !ready {
                return match (st.nonblocking, buf.is_empty()) {
                    (true, _) => Err(not_ready()),
                    // Linux: a zero-length recv whose timeout expires returns 0.
                    (false, true) => Ok(0),
                    (false, false) => Err(would_block()),
                };
            }
            return Ok(0);
        }
        let mut n = 0;
        let mut off = st.rx_off;
        let mut i = 0;
        while n < buf.len() && i < st.rx.len() {
            let chunk = &st.rx[i];
            let take = (chunk.len() - off).min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&chunk[off..off + take]);
            n += take;
            off += take;
            if off == chunk.len() {
                i += 1;
                off = 0;
            }
        }
        if !peek {
            for _ in 0..i {
                if let Some(c) = st.rx.pop_front() {
                    if crate::proto::tcp::rcvqueue::reusable(c.capacity()) {
                        self.inner.stack.rx_chunks.put(c); // reused by the engine
                    }
                }
            }
            st.rx_off = off;
            st.uncredited += n;
            if st.uncredited >= CREDIT_STEP || st.rx.is_empty() {
                let c = std::mem::take(&mut st.uncredited);
                drop(st);
                self.inner.send(AppCommand::ReadCredit(c))?;
            }
        }
        Ok(n)
    }

    fn write_inner(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.stack.check_device()?;
        let st = self.inner.st.lock();
        // Before the empty write's Ok(0): Linux checks SEND_SHUTDOWN first (EPIPE).
        if st.write_shut {
            return Err(err(io::ErrorKind::BrokenPipe));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = Inner::deadline(&st, st.write_timeout);
        let (mut st, _) =
            self.inner.wait(st, deadline, |s| s.credit > 0 || s.error.is_some() || s.closed || s.write_shut)?;
        if let Some(e) = st.take_fatal() {
            return Err(err(e));
        }
        // Another thread shut writing down while this one waited (Linux: EPIPE).
        if st.write_shut {
            return Err(err(io::ErrorKind::BrokenPipe));
        }
        // The engine resets every connection when the device dies: say why, not BrokenPipe.
        self.inner.stack.check_device()?;
        if st.closed {
            return Err(err(io::ErrorKind::BrokenPipe));
        }
        if st.credit == 0 {
            return Err(if st.nonblocking { not_ready() } else { would_block() });
        }
        let n = buf.len().min(st.credit).min(MAX_WRITE_CHUNK);
        st.credit -= n;
        drop(st);
        let mut data = write_chunk(&self.inner.stack.tx_chunks, n);
        data.extend_from_slice(&buf[..n]);
        // Sent under the lock, as `shutdown` sends its command: a shutdown(Write) from
        // another thread comes wholly before this write (which then fails, as Linux's EPIPE)
        // or after it, never between the check and the send (the engine would drop bytes
        // this call reported written).
        let mut st = self.inner.st.lock();
        if st.write_shut {
            st.credit += n;
            return Err(err(io::ErrorKind::BrokenPipe));
        }
        self.inner.send(AppCommand::Write(data))?;
        Ok(n)
    }
}

/// An empty `Vec` for a write of `n` bytes. A large write fills a send chunk the engine is
/// done with (`Recyclers::tx_chunks`) when one fits it: at least its size and at most twice,
/// which is what the send buffer keeps as it is (`SendBuffer::push_vec` copies a write out of
/// a larger allocation, and the chunk would be lost to the recycler); a chunk that does not
/// fit goes back. A small write is copied into the send buffer anyway.
fn write_chunk(recycled: &crate::buf::Recycler<u8>, n: usize) -> Vec<u8> {
    if n < MIN_OWNED_CHUNK {
        return Vec::with_capacity(n);
    }
    match recycled.take() {
        Some(c) if (n..=2 * n).contains(&c.capacity()) => c,
        Some(c) => {
            recycled.put(c);
            Vec::with_capacity(n)
        }
        None => Vec::with_capacity(n),
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf, false)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf, false)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_inner(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_inner(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.st.lock();
        f.debug_struct("TcpStream").field("local", &st.local).field("peer", &st.peer).finish()
    }
}

/// A listening socket. Dropping its last handle (see [`TcpListener::try_clone`]) resets
/// connections still in its accept queue.
pub struct TcpListener {
    inner: Arc<ListenerInner>,
}

struct ListenerInner {
    id: ListenerId,
    stack: StackHandle,
    local: SocketAddr,
    /// Every handle takes from this one queue (crossbeam receivers are multi-consumer).
    inbox: Receiver<IncomingConn>,
    /// Made by `bind_any`: the ip layer accepts TCP to foreign addresses while it lives.
    any: bool,
    /// `set_nonblocking(true)`: `accept` never waits (shared by every handle).
    nonblocking: AtomicBool,
    /// `set_ttl`, 0 for the default (a valid TTL is never 0).
    ttl: AtomicU8,
}

impl TcpListener {
    /// Listen on `addr` (unspecified IP: every local address of that family; port 0: an
    /// ephemeral port, which `local_addr` shows), with std's accept backlog of 128.
    pub fn bind(stack: &StackHandle, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::bind_with_backlog(stack, addr, DEFAULT_BACKLOG)
    }

    /// [`TcpListener::bind`] with an accept backlog of `backlog` connections (established,
    /// not yet accepted; `listen(2)`'s argument). A busy server wants Linux's 4,096: with a
    /// short queue, clients that find it full wait for their SYN retransmission (1 s, then 3 s).
    /// As std, each address `addr` yields is tried in turn; the last error is returned.
    pub fn bind_with_backlog(stack: &StackHandle, addr: impl ToSocketAddrs, backlog: usize) -> io::Result<TcpListener> {
        each_addr(stack, addr, |a| {
            super::check_local(stack, a)?;
            Self::listen(stack, ListenAddr::Addr(a), backlog)
        })
    }

    /// Accept connections to **any** address and port routed to the interface (ustunet's
    /// `bind("tuna")`). Each accepted stream's `local_addr` is the address the client dialled.
    pub fn bind_any(stack: &StackHandle) -> io::Result<TcpListener> {
        let l = Self::listen(stack, ListenAddr::Any, DEFAULT_BACKLOG)?;
        stack.any_tcp.store(true, Relaxed);
        Ok(l)
    }

    fn listen(stack: &StackHandle, addr: ListenAddr, backlog: usize) -> io::Result<TcpListener> {
        stack.check_device()?;
        let any = matches!(addr, ListenAddr::Any);
        let (itx, irx) = unbounded();
        let (rtx, rrx) = bounded(1);
        stack.tcp.send(TcpMsg::Listen { addr, backlog, inbox: itx, reply: rtx }).map_err(|_| stack_gone())?;
        let (id, bound) = rrx.recv().map_err(|_| stack_gone())??;
        let local = match bound {
            ListenAddr::Addr(a) => a,
            ListenAddr::Any => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let inner = ListenerInner {
            id,
            stack: stack.clone(),
            local,
            inbox: irx,
            any,
            nonblocking: AtomicBool::new(false),
            ttl: AtomicU8::new(0),
        };
        Ok(TcpListener { inner: Arc::new(inner) })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.local)
    }

    /// Another handle to the same listener (std's `try_clone`): both accept from one queue,
    /// each connection once; the listener closes when the last handle drops.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener { inner: self.inner.clone() })
    }

    /// As std: when `true`, `accept` returns `WouldBlock` if no connection is waiting. The
    /// accepted streams are blocking (as std's on Linux). Shared by every handle.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Relaxed);
        Ok(())
    }

    /// The TTL (IPv6 hop limit) of the connections this listener accepts, 1 to 255 (std's
    /// `set_ttl`; Linux's accepted sockets inherit `IP_TTL` likewise): from the SYN-ACK of
    /// each handshake that starts after this call on.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let t = check_ttl(ttl)?;
        self.inner.ttl.store(t, Relaxed);
        self.inner.stack.tcp.send(TcpMsg::SetListenerTtl(self.inner.id, t)).map_err(|_| stack_gone())
    }

    /// The TTL set by [`TcpListener::set_ttl`], default 64.
    pub fn ttl(&self) -> io::Result<u32> {
        match self.inner.ttl.load(Relaxed) {
            0 => Ok(crate::wire::DEFAULT_HOP_LIMIT.into()),
            t => Ok(t.into()),
        }
    }

    /// Wait for the next established connection (`WouldBlock` at once when non-blocking).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let now = self.inner.nonblocking.load(Relaxed).then(Instant::now);
        self.accept_until(now)
    }

    /// As `accept`, giving up with `WouldBlock` after `timeout` (not in std).
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        let nb = self.inner.nonblocking.load(Relaxed);
        self.accept_until(Some(if nb { Instant::now() } else { Instant::now() + timeout }))
    }

    fn accept_until(&self, deadline: Option<Instant>) -> io::Result<(TcpStream, SocketAddr)> {
        let l = &*self.inner;
        l.stack.check_device()?;
        if let Ok(inc) = l.inbox.try_recv() {
            return self.take(inc);
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(not_ready());
        }
        match recv_or_device(&l.inbox, &l.stack, deadline, Duration::ZERO) {
            Ok(inc) => self.take(inc),
            Err(RecvTimeoutError::Timeout) => l.stack.check_device().and_then(|_| Err(would_block())),
            Err(RecvTimeoutError::Disconnected) => Err(l.stack.device_error().unwrap_or_else(stack_gone)),
        }
    }

    fn take(&self, inc: IncomingConn) -> io::Result<(TcpStream, SocketAddr)> {
        let _ = self.inner.stack.tcp.send(TcpMsg::Accepted(self.inner.id));
        let remote = inc.remote;
        let ttl = Some(self.inner.ttl.load(Relaxed)).filter(|&t| t != 0);
        if let Some(t) = ttl {
            // The engine gives it to connections whose SYN came after `set_ttl`; this covers
            // those that were already queued.
            let _ = self.inner.stack.tcp.send(TcpMsg::SetConnTtl(inc.conn, t));
        }
        Ok((TcpStream::from_incoming(&self.inner.stack, inc, ttl), remote))
    }

    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }
}

impl Drop for ListenerInner {
    fn drop(&mut self) {
        let _ = self.stack.tcp.send(TcpMsg::CloseListener(self.id));
        if self.any {
            // Only one `ListenAddr::Any` listener can exist, so this was the one.
            self.stack.any_tcp.store(false, Relaxed);
        }
    }
}

/// Iterator over accepted connections, as std's.
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener").field("local", &self.inner.local).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding: a 16 KiB write took a recycled 256 KiB chunk, and the send buffer
    /// kept all of it (16 MiB held for a 1 MiB buffer). A chunk is reused only when it fits.
    #[test]
    fn a_write_reuses_only_a_chunk_that_fits_it() {
        use crate::proto::tcp::sendbuf::SPENT_MAX_CAP;
        let r = crate::buf::Recycler::new(4, 1, SPENT_MAX_CAP);
        r.put(Vec::with_capacity(SPENT_MAX_CAP));
        let small = write_chunk(&r, MIN_OWNED_CHUNK);
        assert!(small.capacity() < 2 * MIN_OWNED_CHUNK, "16 KiB write in {} bytes", small.capacity());
        assert!(write_chunk(&r, 100).capacity() < MIN_OWNED_CHUNK, "a small write leaves the recycler alone");
        let big = write_chunk(&r, 200 * 1024);
        assert!(big.capacity() >= SPENT_MAX_CAP, "the recycled chunk, kept for a write it fits");
        assert!(r.take().is_none(), "taken once");
    }

    /// Issue 7: an event the engine marks non-fatal (BrokenPipe for a write that raced
    /// `shutdown(Write)`, WouldBlock for a write beyond the credit) does not end the
    /// connection for reads; a fatal one does.
    #[test]
    fn non_fatal_errors_stay_non_fatal() {
        let mut st = State::default();
        st.apply(SocketEvent::Error(io::ErrorKind::BrokenPipe));
        st.apply(SocketEvent::Data(b"still here".to_vec()));
        assert_eq!(st.error, None);
        assert_eq!(st.pending_error, Some(io::ErrorKind::BrokenPipe));
        assert_eq!(st.rx.front().map(|d| d.as_slice()), Some(&b"still here"[..]));
        st.apply(SocketEvent::Error(io::ErrorKind::WouldBlock));
        assert_eq!(st.error, None);
        st.apply(SocketEvent::Error(io::ErrorKind::ConnectionReset));
        assert_eq!(st.error, Some(io::ErrorKind::ConnectionReset));
    }

    /// A fatal error is reported once, then the connection is over (Linux: a second read
    /// after a reset returns 0, a write EPIPE).
    #[test]
    fn a_fatal_error_is_reported_once() {
        let mut st = State::default();
        st.apply(SocketEvent::Error(io::ErrorKind::ConnectionReset));
        assert_eq!(st.take_fatal(), Some(io::ErrorKind::ConnectionReset));
        assert_eq!(st.take_fatal(), None);
        assert_eq!(st.pending_error, None, "take_error would report it a second time");
        assert!(st.eof && st.write_shut && st.aborted);
    }
}
