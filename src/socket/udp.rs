//! `UdpSocket`: datagrams through the ip actor.

use super::ToSocketAddrs;
use super::{check_timeout, each_addr, not_ready, one_addr, recv_or_device, would_block};
use crate::actor::ip::{IpMsg, UdpEvent};
use crate::actor::{stack_gone, StackHandle};
use crate::buf::SharedQueue;
use crate::proto::ip::{udp_charge, UDP_ERR_REFUSED};
use crate::proto::udp::UdpSockId;
use crate::wire;
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError};
use parking_lot::Mutex;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// A UDP socket served by the user-space stack. Dropping the last handle (see
/// [`UdpSocket::try_clone`]) closes it.
pub struct UdpSocket {
    inner: Arc<Inner>,
}

struct Inner {
    id: UdpSockId,
    local: SocketAddr,
    stack: StackHandle,
    rx: Receiver<UdpEvent>,
    shared: SharedQueue,
    /// IPv4 TTL / IPv6 hop limit of the datagrams sent (`set_ttl`).
    ttl: AtomicU8,
    st: Mutex<State>,
    /// Held by one receiver at a time across "peeked?" and the receive, so concurrent
    /// `recv`/`peek` calls neither lose nor reorder datagrams. A receiver waits for the turn
    /// no longer than for a datagram (its timeout; not at all when non-blocking).
    rx_turn: Mutex<Option<Peeked>>,
}

/// A datagram taken off the queue by `peek_from`: sender, buffer, payload range.
type Peeked = (SocketAddr, Vec<u8>, usize, usize);

#[derive(Default)]
struct State {
    peer: Option<SocketAddr>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// `set_nonblocking(true)`: receives and sends never wait (shared by every handle).
    nonblocking: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.stack.ip.send(IpMsg::UdpClose(self.id));
    }
}

impl UdpSocket {
    /// Bind to `addr` on `stack` (port 0: an ephemeral port; unspecified IP: every address).
    /// As std, each address `addr` yields is tried in turn; the last error is returned.
    pub fn bind(stack: &StackHandle, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(stack, addr, |a| Self::bind_one(stack, a))
    }

    fn bind_one(stack: &StackHandle, addr: SocketAddr) -> io::Result<UdpSocket> {
        super::check_local(stack, addr)?;
        stack.check_device()?;
        let (tx, rx) = unbounded();
        let (rtx, rrx) = bounded(1);
        let shared: SharedQueue = Default::default();
        stack
            .ip
            .send(IpMsg::UdpBind { addr, inbox: tx, queued: shared.clone(), reply: rtx })
            .map_err(|_| stack_gone())?;
        let (id, local) = rrx.recv().map_err(|_| stack_gone())??;
        Ok(UdpSocket {
            inner: Arc::new(Inner {
                id,
                local,
                stack: stack.clone(),
                rx,
                shared,
                ttl: AtomicU8::new(wire::DEFAULT_HOP_LIMIT),
                st: Mutex::default(),
                rx_turn: Mutex::new(None),
            }),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.local)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.st.lock().peer.ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }

    /// Another handle to the same socket (std's `try_clone`).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket { inner: self.inner.clone() })
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

    /// As std: when `true`, `recv`/`recv_from`/`peek`/`peek_from` return `WouldBlock` if no
    /// datagram is queued, and `send`/`send_to` return `WouldBlock` if the stack's ip
    /// inbox is full (std: the socket's send buffer). It wins over the timeouts.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.st.lock().nonblocking = nonblocking;
        Ok(())
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.st.lock().read_timeout)
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.st.lock().write_timeout)
    }

    /// The IPv4 TTL of the datagrams this socket sends (std's `set_ttl`, Linux's `IP_TTL`),
    /// 1 to 255, `u32::MAX` (-1) for the default; others are `InvalidInput` (EINVAL), as on
    /// Linux. On an IPv6 socket it
    /// sets the hop limit (Linux's `IPV6_UNICAST_HOPS`). Default 64.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.ttl.store(super::check_ttl(ttl)?, Relaxed);
        Ok(())
    }

    /// The TTL (hop limit on IPv6) set by [`UdpSocket::set_ttl`].
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(self.inner.ttl.load(Relaxed).into())
    }

    /// The pending ICMP-reported error, cleared by this call.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(self.take_pending_error())
    }

    fn take_pending_error(&self) -> Option<io::Error> {
        match self.inner.shared.take_error() {
            UDP_ERR_REFUSED => Some(io::Error::from(io::ErrorKind::ConnectionRefused)),
            _ => None,
        }
    }

    /// Only datagrams from `addr` are received afterwards; `send`/`recv` use it.
    /// `NetworkUnreachable` when no route leads to `addr` (`StackHandle::route`). As std,
    /// each address `addr` yields is tried in turn (one of the wrong family, or without a
    /// route, fails); the last error is returned.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(&self.inner.stack, addr, |a| self.connect_one(a))
    }

    fn connect_one(&self, addr: SocketAddr) -> io::Result<()> {
        if addr.is_ipv4() != self.inner.local.is_ipv4() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "address family mismatch"));
        }
        // As Linux: connecting looks the route up (ENETUNREACH without one).
        self.inner.stack.route(addr.ip())?;
        self.inner.st.lock().peer = Some(addr);
        self.inner.stack.ip.send(IpMsg::UdpConnect { id: self.inner.id, remote: Some(addr) }).map_err(|_| stack_gone())
    }

    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let to = one_addr(&self.inner.stack, addr)?;
        self.send_inner(buf, to)
    }

    /// Send to the connected peer. Unconnected: Linux's `EDESTADDRREQ`, as std reports it
    /// (an OS error whose kind is `Uncategorized`, not `NotConnected`).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let Some(to) = self.inner.st.lock().peer else {
            return Err(io::Error::from_raw_os_error(libc::EDESTADDRREQ));
        };
        self.send_inner(buf, to)
    }

    fn send_inner(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let max = match to {
            SocketAddr::V4(_) => 65_535 - wire::IPV4_HEADER_LEN - wire::UDP_HEADER_LEN,
            SocketAddr::V6(_) => 65_535 - wire::UDP_HEADER_LEN,
        };
        if buf.len() > max {
            // Linux's EMSGSIZE, as std reports it (an OS error of kind `Uncategorized`).
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        if to.is_ipv4() != self.inner.local.is_ipv4() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "address family mismatch"));
        }
        if to.port() == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "destination port 0"));
        }
        self.inner.stack.check_device()?;
        self.inner.stack.route(to.ip())?;
        let (timeout, nonblocking) = {
            let st = self.inner.st.lock();
            (st.write_timeout, st.nonblocking)
        };
        let ttl = self.inner.ttl.load(Relaxed);
        let msg = IpMsg::UdpSend { from: self.inner.local, to, data: buf.to_vec(), ttl };
        super::send_msg(&self.inner.stack.ip, msg, timeout, nonblocking)?;
        Ok(buf.len())
    }

    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_inner(buf, false)
    }

    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_inner(buf, true)
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.peek_from(buf).map(|(n, _)| n)
    }

    fn recv_inner(&self, out: &mut [u8], peek: bool) -> io::Result<(usize, SocketAddr)> {
        let (deadline, nonblocking) = {
            let st = self.inner.st.lock();
            (st.read_timeout.map(|t| std::time::Instant::now() + t), st.nonblocking)
        };
        // Another receiver may hold the turn while it waits for a datagram: wait for it no
        // longer than this call may wait at all (nothing is queued meanwhile, or the holder
        // would have taken it).
        let turn = match (nonblocking, deadline) {
            (true, _) => self.inner.rx_turn.try_lock().ok_or_else(not_ready),
            (false, Some(d)) => self.inner.rx_turn.try_lock_until(d).ok_or_else(would_block),
            (false, None) => Ok(self.inner.rx_turn.lock()),
        };
        let mut turn = turn?;
        // A pending ICMP-reported error comes before the datagrams already queued, as in
        // Linux (`__skb_recv_udp` checks `sock_error` first); peeking takes it too.
        if let Some(e) = self.take_pending_error() {
            return Err(e);
        }
        let (from, buf, start, end) = match turn.take() {
            Some(p) => p,
            None => {
                loop {
                    // What already arrived is received first; then a stopped device fails.
                    let ev = match self.inner.rx.try_recv() {
                        Ok(ev) => ev,
                        Err(_) => {
                            self.inner.stack.check_device()?;
                            if nonblocking {
                                return Err(not_ready());
                            }
                            recv_or_device(&self.inner.rx, &self.inner.stack, deadline, Duration::ZERO).map_err(
                                |e| {
                                    self.inner.stack.device_error().unwrap_or_else(|| match e {
                                        RecvTimeoutError::Timeout => would_block(),
                                        RecvTimeoutError::Disconnected => stack_gone(),
                                    })
                                },
                            )?
                        }
                    };
                    match ev {
                        UdpEvent::Datagram { from, buf, start, end } => break (from, buf, start, end),
                        // As std: a connected socket reports an ICMP error on its next receive
                        // (unless take_error already took it).
                        UdpEvent::ErrorPending => {
                            self.inner.shared.wake_taken();
                            if let Some(e) = self.take_pending_error() {
                                return Err(e);
                            }
                        }
                    }
                }
            }
        };
        // std truncates a datagram to the buffer and discards the rest.
        let n = (end - start).min(out.len());
        out[..n].copy_from_slice(&buf[start..start + n]);
        if peek {
            *turn = Some((from, buf, start, end));
        } else {
            self.inner.shared.uncharge(udp_charge(buf.capacity()));
            self.inner.stack.pool.put(buf);
        }
        Ok((n, from))
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket").field("local", &self.inner.local).field("peer", &self.inner.st.lock().peer).finish()
    }
}
