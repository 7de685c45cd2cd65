//! `IcmpSocket`: raw ICMP/ICMPv6 messages through the ip actor, shaped like a Linux ping
//! socket (`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`).
//!
//! The socket owns an echo identifier ([`IcmpSocket::ident`]). It sends whole ICMP messages
//! (type, code, checksum, rest): the stack fills the IP header, chooses the source address,
//! writes the socket's identifier into echo requests and always computes the checksum (the
//! caller's checksum field is ignored, for ICMPv4 as for ICMPv6). It receives the ICMP
//! messages the stack does not consume itself (`proto::raw`): echo replies carrying its
//! identifier, errors quoting its echo requests, and copies of errors quoting any of the
//! stack's UDP or TCP packets (for traceroute). Each message is received whole, from its
//! type byte on, without the IP header. The receive queue is bounded in bytes
//! (`IpConfig::raw_queue_bytes`); what does not fit is dropped and counted in
//! `rx_raw_queue_full`.

use super::check_timeout;
use crate::actor::ip::{IpMsg, RawEvent};
use crate::actor::{stack_gone, StackHandle};
use crate::buf::SharedQueue;
use crate::proto::ip::{check_raw_send, udp_charge};
use crate::proto::raw::RawSockId;
use crossbeam_channel::{bounded, unbounded, Receiver};
use parking_lot::Mutex;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

/// The IP version of a raw socket: ICMP over IPv4 or ICMPv6 over IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
}

/// A raw ICMP socket on the user-space stack. Dropping it closes it.
pub struct IcmpSocket {
    id: RawSockId,
    ident: u16,
    version: IpVersion,
    stack: StackHandle,
    rx: Receiver<RawEvent>,
    shared: SharedQueue,
    st: Mutex<State>,
}

use super::DatagramState as State;

impl Drop for IcmpSocket {
    fn drop(&mut self) {
        let _ = self.stack.ip.send(IpMsg::RawClose(self.id));
    }
}

impl IcmpSocket {
    /// Open a socket of `version` with a free echo identifier.
    pub fn bind(stack: &StackHandle, version: IpVersion) -> io::Result<IcmpSocket> {
        Self::bind_ident(stack, version, 0)
    }

    /// Open a socket of `version` owning echo identifier `ident` (0: a free one);
    /// `AddrInUse` when another socket of that version owns it.
    pub fn bind_ident(stack: &StackHandle, version: IpVersion, ident: u16) -> io::Result<IcmpSocket> {
        stack.check_device()?;
        let (tx, rx) = unbounded();
        let (rtx, rrx) = bounded(1);
        let shared: SharedQueue = Default::default();
        let v6 = version == IpVersion::V6;
        let msg = IpMsg::RawBind { v6, ident, inbox: tx, queued: shared.clone(), reply: rtx };
        stack.ip.send(msg).map_err(|_| stack_gone())?;
        let (id, ident) = rrx.recv().map_err(|_| stack_gone())??;
        Ok(IcmpSocket { id, ident, version, stack: stack.clone(), rx, shared, st: Mutex::default() })
    }

    /// The echo identifier the stack writes into this socket's echo requests.
    pub fn ident(&self) -> u16 {
        self.ident
    }

    pub fn version(&self) -> IpVersion {
        self.version
    }

    datagram_timeouts!();

    /// Send ICMP message `buf` (at least the 8-byte header) to `addr`; see the module docs
    /// for what the stack fills in. `InvalidInput` for a short or oversized message, an
    /// address of the other version or an unspecified one; `NetworkUnreachable` for one
    /// without a route (`StackHandle::route`).
    pub fn send_to(&self, buf: &[u8], addr: IpAddr) -> io::Result<usize> {
        check_raw_send(self.version == IpVersion::V6, addr, buf.len())?;
        self.stack.check_device()?;
        self.stack.route(addr)?;
        let (timeout, nonblocking) = {
            let st = self.st.lock();
            (st.write_timeout, st.nonblocking)
        };
        let msg = IpMsg::RawSend { id: self.id, to: addr, msg: buf.to_vec() };
        super::send_msg(&self.stack.ip, msg, timeout, nonblocking)?;
        Ok(buf.len())
    }

    /// Receive one ICMP message into `buf` (truncated to it, as std does for datagrams):
    /// its length and sender. `WouldBlock` when the read timeout passes first.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, IpAddr)> {
        self.recv_with_hop_limit(buf).map(|(n, from, _)| (n, from))
    }

    /// As [`IcmpSocket::recv_from`], with the TTL / hop limit the message arrived with
    /// (Linux's `IP_RECVTTL` / `IPV6_RECVHOPLIMIT`).
    pub fn recv_with_hop_limit(&self, buf: &mut [u8]) -> io::Result<(usize, IpAddr, u8)> {
        let ev = super::next_datagram(&self.rx, &self.stack, &self.st)?;
        self.shared.uncharge(udp_charge(ev.msg.len()));
        let n = ev.msg.len().min(buf.len());
        buf[..n].copy_from_slice(&ev.msg[..n]);
        Ok((n, ev.from, ev.hop_limit))
    }
}

impl std::fmt::Debug for IcmpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IcmpSocket").field("version", &self.version).field("ident", &self.ident).finish()
    }
}
