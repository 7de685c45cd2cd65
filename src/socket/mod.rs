//! The blocking socket facade, shaped like `std::net`.
//!
//! Sockets are used from application threads. Each is an id, the actor's command `Sender`
//! and its own event `Receiver`; blocking happens only here, never inside an actor.
//! Names, signatures and `io::ErrorKind`s follow std where they overlap; the one difference
//! is that constructors take the stack they belong to as their first argument.

mod raw;
mod tcp;
mod udp;

pub use raw::{IcmpSocket, IpVersion};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// First address of `addr` (std's sockets try each; ours are literal addresses).
pub(crate) fn one_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses"))
}

/// std rejects a zero timeout with `InvalidInput`; so do we.
pub(crate) fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
    }
    Ok(())
}

/// As std: binding an address the host does not have fails with `AddrNotAvailable`.
pub(crate) fn check_local(stack: &crate::actor::StackHandle, addr: SocketAddr) -> io::Result<()> {
    let ip = &stack.config().ip;
    let ours = match addr.ip() {
        std::net::IpAddr::V4(a) => a.is_unspecified() || ip.v4.contains(&a),
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

pub(crate) fn would_block() -> io::Error {
    // std on Unix reports an expired SO_RCVTIMEO/SO_SNDTIMEO as EAGAIN, i.e. WouldBlock.
    io::Error::new(io::ErrorKind::WouldBlock, "Resource temporarily unavailable (timed out)")
}
