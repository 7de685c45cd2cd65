//! Devices: things that move whole IP packets, or Ethernet frames ([`Medium::Ethernet`]:
//! [`tap`]).
//!
//! A device is split into a receive half (owned by the dev-rx actor) and a transmit half
//! (owned by dev-tx). Both move [`Batch`]es of pooled buffers. Implementations:
//! [`tun`] (a Linux TUN device polled with mio), [`capture`] (records packets to a pcap file), [`pair`] (two stacks back to back in memory,
//! with an optional seeded [`pair::FaultConfig`]), [`fault`] (seeded loss, duplication,
//! reordering, corruption and delay around any device, sharing its schedule with `pair`), and
//! the [`sys`] module, the only place in the crate with `unsafe` (syscalls: network
//! namespaces, non-blocking fds).
//!
//! Invariant: `recv_batch` never holds more than `max` packets and returns promptly once its
//! [`StopHandle`] has been called; `send_batch` never blocks indefinitely (a full link drops,
//! as a real one does, and counts the drop).

pub mod capture;
pub mod fault;
pub mod pair;
pub mod sys;
pub mod tap;
pub mod tun;

use crate::buf::{Batch, Pool};
use std::io;
use std::sync::Arc;

/// Makes the matching `recv_batch` return promptly with `Ok(false)`.
pub type StopHandle = Arc<dyn Fn() + Send + Sync>;

pub trait DevRx: Send {
    /// Block until at least one packet is available, then append up to `max` packets to
    /// `out`. Returns `Ok(false)` when stopped or when the device is gone.
    fn recv_batch(&mut self, pool: &Pool, out: &mut Batch, max: usize) -> io::Result<bool>;
    fn stop_handle(&self) -> StopHandle;
    /// How long `recv_batch` may keep reading an empty device, yielding between reads, before
    /// it blocks (`StackConfig::spin`; `actor::Spin`'s rules). Devices that cannot do better
    /// than block ignore it.
    fn set_spin(&mut self, _spin: std::time::Duration) {}
}

pub trait DevTx: Send {
    /// Write every packet of `batch`, then hand the buffers back to `pool`, leaving `batch`
    /// empty. Returns how many packets were dropped (link full or write error).
    fn send_batch(&mut self, batch: &mut Batch, pool: &Pool) -> usize;
}

/// What a device's packets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Medium {
    /// Bare IPv4/IPv6 packets (TUN, pair).
    #[default]
    Ip,
    /// Ethernet II frames (TAP): the ip actor runs the link core (`proto::link`) on them.
    Ethernet,
}

/// Something the stack can run on.
pub trait Device: Send {
    /// MTU of the link in bytes (the largest IP packet it carries).
    fn mtu(&self) -> usize;
    /// Whether each received packet ends with one metadata byte (1: the transport checksum
    /// is already valid), as an offloading TUN device delivers them.
    fn rx_trailer(&self) -> bool {
        false
    }
    /// Whether each packet handed to the transmit half ends with a transmit trailer
    /// (`wire::gso`: marker 0, or a virtio-net header then marker 1).
    fn tx_trailer(&self) -> bool {
        false
    }
    /// What the halves carry: IP packets unless the device says otherwise.
    fn medium(&self) -> Medium {
        Medium::Ip
    }
    /// The receive and transmit halves; an error (e.g. no poller for the fd) instead of a
    /// panic when the device cannot be split.
    fn split(self: Box<Self>) -> io::Result<(Box<dyn DevRx>, Box<dyn DevTx>)>;
}
