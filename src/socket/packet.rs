//! `PacketSocket`: whole Ethernet II frames on a TAP stack, shaped like a Linux packet
//! socket (`socket(AF_PACKET, SOCK_RAW, htons(ethertype))`).
//!
//! A socket is bound to one EtherType or to all (`None`, Linux's `ETH_P_ALL`). It receives
//! a copy of every frame the stack accepts for itself (our MAC, broadcast, a joined
//! multicast group) with a matching EtherType, header included, *also* the frames the
//! stack consumes (ARP and NDP, which it still answers) or does not speak; not the frames
//! for other stations (no promiscuous mode) nor the stack's own outgoing frames. It sends
//! frames exactly as given: the caller writes the destination, source (see
//! [`StackHandle::mac`]) and EtherType. The receive queue is bounded in bytes
//! (`LinkConfig::packet_queue_bytes`, each frame charged its length + 256); what does not
//! fit is dropped and counted in `LinkStats::rx_packet_queue_full`.
//!
//! On a TUN stack there are no frames: [`PacketSocket::bind`] fails with `Unsupported`.

use super::check_timeout;
use crate::actor::ip::IpMsg;
use crate::actor::{stack_gone, StackHandle};
use crate::buf::SharedQueue;
use crate::proto::link::packet::{self, PacketSockId};
use crate::wire::{EthernetAddress, EthernetFrame};
use crossbeam_channel::{bounded, unbounded, Receiver};
use parking_lot::Mutex;
use std::io;
use std::time::Duration;

impl StackHandle {
    /// The stack's MAC address on an Ethernet (TAP) device; `None` on TUN.
    pub fn mac(&self) -> Option<EthernetAddress> {
        self.stats.link.as_ref().and(self.cfg.link.as_ref()).map(|l| l.mac)
    }
}

/// A raw Ethernet socket on the user-space stack. Dropping it closes it.
pub struct PacketSocket {
    id: PacketSockId,
    ethertype: Option<u16>,
    mac: EthernetAddress,
    stack: StackHandle,
    rx: Receiver<Vec<u8>>,
    shared: SharedQueue,
    st: Mutex<State>,
}

use super::DatagramState as State;

impl Drop for PacketSocket {
    fn drop(&mut self) {
        let _ = self.stack.ip.send(IpMsg::PacketClose(self.id));
    }
}

impl PacketSocket {
    /// Open a socket receiving frames of `ethertype` (e.g. `0x0806` for ARP), or every
    /// frame with `None`. `Unsupported` on a TUN stack; `InvalidInput` for a value below
    /// 0x0600 (an IEEE 802.3 length, not an EtherType).
    pub fn bind(stack: &StackHandle, ethertype: Option<u16>) -> io::Result<PacketSocket> {
        stack.check_device()?;
        packet::check_ethertype(ethertype)?;
        let mac = stack.mac().ok_or_else(crate::actor::link::no_link)?;
        let (tx, rx) = unbounded();
        let (rtx, rrx) = bounded(1);
        let shared: SharedQueue = Default::default();
        let msg = IpMsg::PacketBind { ethertype, inbox: tx, queued: shared.clone(), reply: rtx };
        stack.ip.send(msg).map_err(|_| stack_gone())?;
        let id = rrx.recv().map_err(|_| stack_gone())??;
        Ok(PacketSocket { id, ethertype, mac, stack: stack.clone(), rx, shared, st: Mutex::default() })
    }

    /// The EtherType this socket receives (`None`: all).
    pub fn ethertype(&self) -> Option<u16> {
        self.ethertype
    }

    /// The stack's MAC address, for the source field of frames sent.
    pub fn local_mac(&self) -> EthernetAddress {
        self.mac
    }

    datagram_timeouts!();

    /// Send `frame`, a whole Ethernet II frame (header included), as it is. `InvalidInput`
    /// when it is shorter than the 14-byte header or longer than the MTU plus the header.
    /// `WouldBlock` when the write timeout passes while the stack's inbox is full.
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        packet::check_send(frame.len(), self.stack.config().ip.mtu)?;
        self.stack.check_device()?;
        let (timeout, nonblocking) = {
            let st = self.st.lock();
            (st.write_timeout, st.nonblocking)
        };
        let msg = IpMsg::PacketSend(frame.to_vec());
        super::send_msg(&self.stack.ip, msg, timeout, nonblocking)?;
        Ok(frame.len())
    }

    /// Receive one frame, header included, into `buf` (truncated to it, as std does for
    /// datagrams): its length. `WouldBlock` when the read timeout passes first.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// As [`PacketSocket::recv`], with the frame's source MAC (Linux's `sll_addr`).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, EthernetAddress)> {
        let frame = super::next_datagram(&self.rx, &self.stack, &self.st)?;
        self.shared.uncharge(packet::charge(frame.len()));
        // The link core copies only frames with a whole header.
        let src = EthernetFrame::new_unchecked(&frame[..]).src_addr();
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok((n, src))
    }

    /// Bytes charged to this socket's receive queue (frames waiting, plus 256 each).
    pub fn queued_bytes(&self) -> u64 {
        self.shared.queued()
    }
}

impl std::fmt::Debug for PacketSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSocket").field("ethertype", &self.ethertype).field("mac", &self.mac).finish()
    }
}
