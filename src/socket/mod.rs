//! The blocking socket facade, shaped like `std::net`.
//!
//! Sockets are used from application threads. Each is an id, the actor's command `Sender`
//! and its own event `Receiver`; blocking happens only here, never inside an actor.
//! Names, signatures and `io::ErrorKind`s follow std where they overlap; the one difference
//! is that constructors take the stack they belong to as their first argument.

/// The options of a raw datagram socket that [`datagram_timeouts!`] reads and writes.
#[derive(Default)]
pub(crate) struct DatagramState {
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    /// `set_nonblocking(true)`: receives and sends never wait.
    pub nonblocking: bool,
}

/// std's timeout and blocking accessors for a raw datagram socket whose `self.st` (a
/// `parking_lot::Mutex`) holds `read_timeout`, `write_timeout` and `nonblocking`.
macro_rules! datagram_timeouts {
    () => {
        pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
            check_timeout(t)?;
            self.st.lock().read_timeout = t;
            Ok(())
        }

        pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
            check_timeout(t)?;
            self.st.lock().write_timeout = t;
            Ok(())
        }

        /// As std's sockets: when `true`, receives return `WouldBlock` if nothing is queued
        /// and sends return `WouldBlock` if the stack's ip inbox is full. It wins over the
        /// timeouts.
        pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
            self.st.lock().nonblocking = nonblocking;
            Ok(())
        }

        pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
            Ok(self.st.lock().read_timeout)
        }

        pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
            Ok(self.st.lock().write_timeout)
        }
    };
}

mod dns;
mod packet;
mod raw;
mod tcp;
mod udp;

pub use dns::TRY_TIMEOUTS as DNS_TRY_TIMEOUTS;
pub use packet::PacketSocket;
pub use raw::{IcmpSocket, IpVersion};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

use crate::actor::StackHandle;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

/// First address of `addr`, names resolved by the stack's resolver.
pub(crate) fn one_addr(stack: &StackHandle, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs(stack)?
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses"))
}

/// Run `f` on each address of `addr` in turn until one succeeds, as std's `each_addr`:
/// the resolver's error if resolving fails, else the last address's error, else (no
/// address at all) `InvalidInput`.
pub(crate) fn each_addr<T>(
    stack: &StackHandle,
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs(stack)? {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses")))
}

/// What socket calls accept as an address: the shapes of std's `ToSocketAddrs` (a
/// `SocketAddr`, `(ip, port)`, `"host:port"`, `(host, port)`, a slice), except that a host
/// name is resolved by the stack's own DNS resolver ([`StackHandle::resolve`]), never by
/// the machine's. IP literals are taken as they are, without any lookup.
pub trait ToSocketAddrs {
    fn to_socket_addrs(&self, stack: &StackHandle) -> io::Result<Vec<SocketAddr>>;
}

/// `host` (an IP literal or a name) with `port`.
fn host_port(stack: &StackHandle, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(stack.resolve(host)?.into_iter().map(|ip| SocketAddr::new(ip, port)).collect())
}

macro_rules! literal_addrs {
    ($($t:ty),*) => {$(
        impl ToSocketAddrs for $t {
            fn to_socket_addrs(&self, _: &StackHandle) -> io::Result<Vec<SocketAddr>> {
                Ok(vec![SocketAddr::from(*self)])
            }
        }
    )*};
}
literal_addrs!(SocketAddr, SocketAddrV4, SocketAddrV6, (IpAddr, u16), (Ipv4Addr, u16), (Ipv6Addr, u16));

impl ToSocketAddrs for str {
    /// `"ip:port"`, `"[v6]:port"` or `"name:port"`.
    fn to_socket_addrs(&self, stack: &StackHandle) -> io::Result<Vec<SocketAddr>> {
        if let Ok(a) = self.parse::<SocketAddr>() {
            return Ok(vec![a]);
        }
        let (host, port) = self
            .rsplit_once(':')
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid socket address"))?;
        let port = port.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid port value"))?;
        host_port(stack, host, port)
    }
}

impl ToSocketAddrs for String {
    fn to_socket_addrs(&self, stack: &StackHandle) -> io::Result<Vec<SocketAddr>> {
        self.as_str().to_socket_addrs(stack)
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_socket_addrs(&self, stack: &StackHandle) -> io::Result<Vec<SocketAddr>> {
        host_port(stack, self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {
    fn to_socket_addrs(&self, stack: &StackHandle) -> io::Result<Vec<SocketAddr>> {
        host_port(stack, &self.0, self.1)
    }
}

impl ToSocketAddrs for [SocketAddr] {
    fn to_socket_addrs(&self, _: &StackHandle) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_socket_addrs(&self, stack: &StackHandle) -> io::Result<Vec<SocketAddr>> {
        (**self).to_socket_addrs(stack)
    }
}

/// std rejects a zero timeout with `InvalidInput`; so do we.
pub(crate) fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
    }
    Ok(())
}

/// A TTL / hop limit for `set_ttl`, as Linux's `IP_TTL` takes std's `u32` (as a C int):
/// 1 to 255; `u32::MAX` (-1) restores the default; else `InvalidInput` (EINVAL).
pub(crate) fn check_ttl(ttl: u32) -> io::Result<u8> {
    match u8::try_from(ttl) {
        Ok(t) if t > 0 => Ok(t),
        _ if ttl == u32::MAX => Ok(crate::wire::DEFAULT_HOP_LIMIT),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "TTL must be between 1 and 255")),
    }
}

/// As std: binding an address the host does not have fails with `AddrNotAvailable`.
pub(crate) fn check_local(stack: &StackHandle, addr: SocketAddr) -> io::Result<()> {
    let ip = &stack.config().ip;
    let ours = match addr.ip() {
        std::net::IpAddr::V4(a) => a.is_unspecified() || stack.has_v4(a),
        std::net::IpAddr::V6(a) => a.is_unspecified() || ip.v6.contains(&a),
    };
    if ours {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::AddrNotAvailable, format!("{} is not an address of this stack", addr.ip())))
    }
}

/// Receive from `rx` until `deadline`, waking early (as `Timeout`) when the stack's device
/// fails, so the caller sees the failure. Polls `rx` for `spin` first (`actor::spin_recv`).
pub(crate) fn recv_or_device<T>(
    rx: &crossbeam_channel::Receiver<T>,
    stack: &crate::actor::StackHandle,
    deadline: Option<std::time::Instant>,
    spin: Duration,
) -> Result<T, crossbeam_channel::RecvTimeoutError> {
    if let Some(m) = crate::actor::spin_recv(rx, spin) {
        return Ok(m);
    }
    let watch = stack.device.watch();
    let mut sel = crossbeam_channel::Select::new();
    let i_rx = sel.recv(rx);
    sel.recv(watch);
    let op = match deadline {
        None => sel.select(),
        Some(d) => sel.select_deadline(d).map_err(|_| crossbeam_channel::RecvTimeoutError::Timeout)?,
    };
    if op.index() == i_rx {
        op.recv(rx).map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected)
    } else {
        // The alarm only ever disconnects.
        let _ = op.recv(watch);
        Err(crossbeam_channel::RecvTimeoutError::Timeout)
    }
}

/// The next message in a raw datagram socket's inbox: what already arrived first, then a
/// stopped device's error; `WouldBlock` at once when non-blocking, or when the read timeout
/// passes.
pub(crate) fn next_datagram<T>(
    rx: &crossbeam_channel::Receiver<T>,
    stack: &StackHandle,
    st: &parking_lot::Mutex<DatagramState>,
) -> io::Result<T> {
    let (deadline, nonblocking) = {
        let st = st.lock();
        (st.read_timeout.map(|t| std::time::Instant::now() + t), st.nonblocking)
    };
    if let Ok(m) = rx.try_recv() {
        return Ok(m);
    }
    stack.check_device()?;
    if nonblocking {
        return Err(not_ready());
    }
    recv_or_device(rx, stack, deadline, Duration::ZERO).map_err(|e| {
        stack.device_error().unwrap_or_else(|| match e {
            crossbeam_channel::RecvTimeoutError::Timeout => would_block(),
            crossbeam_channel::RecvTimeoutError::Disconnected => crate::actor::stack_gone(),
        })
    })
}

pub(crate) fn would_block() -> io::Error {
    // std on Unix reports an expired SO_RCVTIMEO/SO_SNDTIMEO as EAGAIN, i.e. WouldBlock.
    io::Error::new(io::ErrorKind::WouldBlock, "Resource temporarily unavailable (timed out)")
}

/// What a non-blocking socket returns when the operation would have to wait (EAGAIN).
pub(crate) fn not_ready() -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, "Resource temporarily unavailable")
}

/// Hand `msg` to an actor's bounded inbox: at once or `WouldBlock` when non-blocking (which
/// wins over `timeout`, as in std), else waiting at most `timeout` (then `WouldBlock`, as
/// std reports an expired `SO_SNDTIMEO`), else waiting as long as it takes.
pub(crate) fn send_msg<T>(
    tx: &crossbeam_channel::Sender<T>,
    msg: T,
    timeout: Option<Duration>,
    nonblocking: bool,
) -> io::Result<()> {
    use crossbeam_channel::{SendTimeoutError, TrySendError};
    if nonblocking {
        return tx.try_send(msg).map_err(|e| match e {
            TrySendError::Full(_) => not_ready(),
            TrySendError::Disconnected(_) => crate::actor::stack_gone(),
        });
    }
    match timeout {
        None => tx.send(msg).map_err(|_| crate::actor::stack_gone()),
        Some(t) => tx.send_timeout(msg, t).map_err(|e| match e {
            SendTimeoutError::Timeout(_) => would_block(),
            SendTimeoutError::Disconnected(_) => crate::actor::stack_gone(),
        }),
    }
}
