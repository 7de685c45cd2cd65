//! The engine's segments as IP packets for the device: the IP header (an identification
//! counter, each connection's TTL) and, when the device takes them (`wire::gso`), TCP
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
    /// IPv4 identification of the last packet built (RFC 6864: any value for atomic datagrams).
    ident: u16,
    /// Joins segments into super-segments (`Some` when the device takes them).
    gso: Option<Coalescer>,
}

impl PacketOut {
    pub(crate) fn new(ident: u16, gso: bool) -> PacketOut {
        PacketOut { ident, gso: gso.then(Coalescer::default) }
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
                self.poll_transmit_ttl(now, &mut |src, dst, ttl, repr, payload| {
                    gso.push(bufs, out, src, dst, ttl, repr, payload)
                });
                gso.flush(out);
            }
            None => {
                let ident = &mut po.ident;
                self.poll_transmit_ttl(now, &mut |src, dst, ttl, repr, payload| {
                    let mut b = bufs.small();
                    *ident = ident.wrapping_add(1);
                    build_packet_with_ttl(&mut b, (*ident, ttl), src, dst, repr, payload);
                    out.push(b);
                });
            }
        }
        self.packets = po;
    }

    /// Join consecutive data segments into super-segments for a device that takes them
    /// (`IFF_VNET_HDR`; every packet then carries the transmit trailer).
    pub fn set_gso(&mut self, on: bool) {
        let ident = self.packets.ident;
        self.packets = PacketOut::new(ident, on);
    }
}
