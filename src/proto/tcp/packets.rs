//! The engine's segments as IP packets for the device: the IP header (each connection's
//! identification counter and TTL) and, when the device takes them (`wire::gso`), TCP
//! super-segments. Kept in the core (the tcp actor only moves the batch it gets), with the
//! buffers from the caller ([`Buffers`]).
//!
//! Invariant: every segment [`Endpoint::poll_transmit`] emits becomes exactly one packet, or
//! one part of a super-segment, in emission order; a lone segment keeps its full checksum.

use super::Endpoint;
use crate::buf::{Batch, Buffers};
use crate::wire::gso::{build_packet_with_ttl, Coalescer};
use std::time::Instant;

/// Packet building state of an [`Endpoint`].
#[derive(Default)]
pub(crate) struct PacketOut {
    /// Joins segments into super-segments (`Some` when the device takes them).
    gso: Option<Coalescer>,
}

impl PacketOut {
    pub(crate) fn new(gso: bool) -> PacketOut {
        PacketOut { gso: gso.then(Coalescer::default) }
    }
}

impl Endpoint {
    /// Emit every ready segment into `out` as IP packets: one each, or joined into
    /// super-segments when [`Endpoint::set_gso`] is on (each then ends with the device's
    /// transmit trailer). Buffers come from `bufs`.
    pub fn poll_packets(&mut self, now: Instant, bufs: &dyn Buffers, out: &mut Batch) {
        let mut po = std::mem::take(&mut self.packets);
        match po.gso.as_mut() {
            Some(gso) => {
                self.poll_transmit_ip(now, &mut |src, dst, ip, repr, payload| {
                    gso.push(bufs, out, src, dst, ip, repr, payload)
                });
                gso.flush(out);
            }
            None => {
                self.poll_transmit_ip(now, &mut |src, dst, ip, repr, payload| {
                    let mut b = bufs.small();
                    build_packet_with_ttl(&mut b, ip, src, dst, repr, payload);
                    out.push(b);
                });
            }
        }
        self.packets = po;
    }

    /// Join consecutive data segments into super-segments for a device that takes them
    /// (`IFF_VNET_HDR`; every packet then carries the transmit trailer).
    pub fn set_gso(&mut self, on: bool) {
        self.packets = PacketOut::new(on);
    }
}
