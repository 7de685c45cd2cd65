//! Transmit segmentation offload: consecutive TCP segments of one flow, built by the engine
//! one MSS at a time, are joined into one super-segment that the kernel splits (or, for a
//! local receiver, takes whole), described by a `virtio_net_hdr` (the Linux TUN
//! `IFF_VNET_HDR` format; see `device::tun`).
//!
//! Invariants: only plain data segments are joined (ACK, optionally PSH; never SYN, FIN,
//! RST or URG), in sequence order, with identical ports, ACK number, window and options;
//! every joined segment but the last has exactly `gso_size` bytes of payload; a super-segment
//! never exceeds [`MAX_GSO_PACKET`] bytes. A lone segment goes out as it was built, with its
//! full checksum. Packets leave with a transmit trailer: marker `0`, or the 10-byte header
//! followed by marker `1` ([`TX_TRAILER_VNET`]).

use super::tcp::TcpRepr;
use super::{emit_ipv4_header, emit_ipv6_header, ip_header_len, pseudo_header_sum, IpProtocol, Ipv4Header};
use crate::buf::{Batch, Buffers};
use std::net::IpAddr;

/// Largest super-segment (IP header included): the 16-bit length fields, with room to spare.
pub const MAX_GSO_PACKET: usize = 65_000;
/// Trailer marker: the packet is followed by nothing else.
pub const TX_TRAILER_PLAIN: u8 = 0;
/// Trailer marker: a 10-byte `virtio_net_hdr` precedes this byte.
pub const TX_TRAILER_VNET: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV4` / `_TCPV6`.
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
const F_NEEDS_CSUM: u8 = 1;
/// Offset of the checksum in the TCP header (RFC 9293 §3.1).
const TCP_CSUM_OFFSET: u16 = 16;

struct Pending {
    pkt: Vec<u8>,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    first: TcpRepr,
    ip_hlen: usize,
    tcp_hlen: usize,
    gso_size: usize,
    count: usize,
    next_seq: u32,
    psh: bool,
    /// A short segment was joined: nothing may follow it.
    closed: bool,
}

/// Joins segments as they are emitted; [`Coalescer::flush`] after each burst.
#[derive(Default)]
pub struct Coalescer {
    cur: Option<Pending>,
    /// Super-segments sent and segments they carried (for counters and tests).
    pub supers: u64,
    pub joined: u64,
}

fn plain_data(r: &TcpRepr) -> bool {
    let f = r.flags;
    f.ack && !f.syn && !f.fin && !f.rst && !f.urg
}

impl Coalescer {
    /// Emit one segment: join it to the pending super-segment or start a new one. `ttl` is
    /// the IPv4 TTL / IPv6 hop limit of its header (segments with different ones never join).
    #[allow(clippy::too_many_arguments)] // the sinks, then what the header needs
    pub fn push(
        &mut self,
        bufs: &dyn Buffers,
        out: &mut Batch,
        src: IpAddr,
        dst: IpAddr,
        (ident, ttl): (u16, u8),
        repr: &TcpRepr,
        payload: &[u8],
    ) {
        if let Some(p) = self.cur.as_mut() {
            let fits = !p.closed
                && plain_data(repr)
                && p.src == src
                && p.dst == dst
                && p.ttl == ttl
                && repr.src_port == p.first.src_port
                && repr.dst_port == p.first.dst_port
                && repr.seq == p.next_seq
                && repr.ack == p.first.ack
                && repr.window == p.first.window
                && repr.options == p.first.options
                && !payload.is_empty()
                && payload.len() <= p.gso_size
                && p.pkt.len() + payload.len() <= MAX_GSO_PACKET;
            if fits {
                p.pkt.extend_from_slice(payload);
                p.count += 1;
                p.next_seq = p.next_seq.wrapping_add(payload.len() as u32);
                p.psh |= repr.flags.psh;
                p.closed = payload.len() < p.gso_size;
                return;
            }
            self.flush(out);
        }
        let pkt = Self::build(bufs, src, dst, (ident, ttl), repr, payload);
        if plain_data(repr) && !payload.is_empty() {
            self.cur = Some(Pending {
                pkt,
                src,
                dst,
                ttl,
                first: *repr,
                ip_hlen: ip_header_len(src),
                tcp_hlen: repr.header_len(),
                gso_size: payload.len(),
                count: 1,
                next_seq: repr.seq.wrapping_add(payload.len() as u32),
                psh: repr.flags.psh,
                closed: false,
            });
        } else {
            out.push(with_plain_trailer(pkt));
        }
    }

    /// Send what is pending.
    pub fn flush(&mut self, out: &mut Batch) {
        let Some(mut p) = self.cur.take() else { return };
        if p.count == 1 {
            out.push(with_plain_trailer(p.pkt));
            return;
        }
        self.supers += 1;
        self.joined += p.count as u64;
        let tcp_len = p.pkt.len() - p.ip_hlen;
        // IP length fields cover the whole super-segment; the kernel fixes each piece.
        match (p.src, p.dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => {
                let total = (p.pkt.len() as u16).to_be_bytes();
                p.pkt[2..4].copy_from_slice(&total);
                p.pkt[10..12].copy_from_slice(&[0, 0]);
                let c = !super::ones_sum(&p.pkt[..p.ip_hlen]);
                p.pkt[10..12].copy_from_slice(&c.to_be_bytes());
            }
            _ => {
                let plen = (tcp_len as u16).to_be_bytes();
                p.pkt[4..6].copy_from_slice(&plen);
            }
        }
        let th = p.ip_hlen;
        if p.psh {
            p.pkt[th + 13] |= 0x08;
        }
        // NEEDS_CSUM: the checksum field holds the pseudo-header sum, not complemented; the
        // kernel adds the rest (Linux's tcp_v4_send_check does the same).
        let pseudo = pseudo_header_sum(p.src, p.dst, IpProtocol::Tcp, tcp_len);
        p.pkt[th + 16..th + 18].copy_from_slice(&pseudo.to_be_bytes());
        let gso_type = if p.src.is_ipv4() { GSO_TCPV4 } else { GSO_TCPV6 };
        let mut hdr = [0u8; 10];
        hdr[0] = F_NEEDS_CSUM;
        hdr[1] = gso_type;
        hdr[2..4].copy_from_slice(&((p.ip_hlen + p.tcp_hlen) as u16).to_le_bytes());
        hdr[4..6].copy_from_slice(&(p.gso_size as u16).to_le_bytes());
        hdr[6..8].copy_from_slice(&(p.ip_hlen as u16).to_le_bytes());
        hdr[8..10].copy_from_slice(&TCP_CSUM_OFFSET.to_le_bytes());
        p.pkt.extend_from_slice(&hdr);
        p.pkt.push(TX_TRAILER_VNET);
        out.push(p.pkt);
    }

    /// IP header + TCP segment with full checksums, in a buffer with room to grow.
    fn build(bufs: &dyn Buffers, src: IpAddr, dst: IpAddr, ip: (u16, u8), repr: &TcpRepr, payload: &[u8]) -> Vec<u8> {
        let mut b = if payload.is_empty() { bufs.small() } else { bufs.large() };
        build_packet_with_ttl(&mut b, ip, src, dst, repr, payload);
        b
    }
}

fn with_plain_trailer(mut pkt: Vec<u8>) -> Vec<u8> {
    pkt.push(TX_TRAILER_PLAIN);
    pkt
}

/// Write IP header + TCP segment (full checksums) into `b` (emptied first), with the
/// default TTL / hop limit ([`super::DEFAULT_HOP_LIMIT`]).
pub fn build_packet_into(b: &mut Vec<u8>, ident: u16, src: IpAddr, dst: IpAddr, repr: &TcpRepr, payload: &[u8]) {
    build_packet_with_ttl(b, (ident, super::DEFAULT_HOP_LIMIT), src, dst, repr, payload)
}

/// Write IP header + TCP segment (full checksums) into `b` (emptied first), with IPv4
/// identification `ident` and TTL / hop limit `ttl`. The payload is copied once, from the
/// send buffer into the packet.
pub fn build_packet_with_ttl(
    b: &mut Vec<u8>,
    (ident, ttl): (u16, u8),
    src: IpAddr,
    dst: IpAddr,
    repr: &TcpRepr,
    payload: &[u8],
) {
    let ih = ip_header_len(src);
    let th = repr.header_len();
    b.clear();
    b.resize(ih + th + payload.len(), 0);
    repr.emit(&mut b[ih..], payload, src, dst);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let h = Ipv4Header {
                src: s,
                dst: d,
                proto: IpProtocol::Tcp,
                ident,
                frag_offset: 0,
                more_frags: false,
                dont_frag: true, // RFC 1191: TCP does path MTU discovery
                ttl,
            };
            emit_ipv4_header(b, &h, th + payload.len());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => emit_ipv6_header(b, s, d, IpProtocol::Tcp, th + payload.len(), ttl),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::Pool;
    use crate::wire::tcp::{TcpFlags, TcpOptions};

    fn seg(seq: u32, psh: bool) -> TcpRepr {
        TcpRepr {
            src_port: 40000,
            dst_port: 3000,
            seq,
            ack: 7,
            flags: TcpFlags { ack: true, psh, ..Default::default() },
            window: 100,
            urgent: 0,
            options: TcpOptions { timestamps: Some((1, 2)), ..Default::default() },
        }
    }

    /// Split a super-segment as the kernel would and check every piece is a valid segment.
    fn resegment(pkt: &[u8], src: IpAddr, dst: IpAddr) -> Vec<(TcpRepr, Vec<u8>)> {
        let (body, marker) = pkt.split_at(pkt.len() - 1);
        if marker[0] == TX_TRAILER_PLAIN {
            let ih = ip_header_len(src);
            let (r, h) = TcpRepr::parse(&body[ih..], src, dst).expect("valid lone segment");
            return vec![(r, body[ih + h..].to_vec())];
        }
        let (pkt, hdr) = body.split_at(body.len() - 10);
        assert_eq!(hdr[0], F_NEEDS_CSUM);
        let hdr_len = u16::from_le_bytes([hdr[2], hdr[3]]) as usize;
        let gso = u16::from_le_bytes([hdr[4], hdr[5]]) as usize;
        let ih = u16::from_le_bytes([hdr[6], hdr[7]]) as usize;
        let mut out = Vec::new();
        let mut off = hdr_len;
        let (first, _) = TcpRepr::parse_trusted(&pkt[ih..]).unwrap();
        while off < pkt.len() {
            let n = gso.min(pkt.len() - off);
            let mut r = first;
            r.seq = first.seq.wrapping_add((off - hdr_len) as u32);
            r.flags.psh = first.flags.psh && off + n == pkt.len();
            let mut one = vec![0u8; r.header_len() + n];
            r.emit(&mut one, &pkt[off..off + n], src, dst);
            let (again, h) = TcpRepr::parse(&one, src, dst).unwrap();
            out.push((again, one[h..].to_vec()));
            off += n;
        }
        out
    }

    #[test]
    fn joins_a_burst_and_keeps_lone_segments_whole() {
        let pool = Pool::default();
        let (src, dst): (IpAddr, IpAddr) = ("10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap());
        let mut c = Coalescer::default();
        let mut out = Vec::new();
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut seq = 1000u32;
        let mut ident = 100u16; // the connection's counter: one per segment
        for chunk in data.chunks(1448) {
            let last = chunk.len() < 1448;
            ident += 1;
            c.push(&pool, &mut out, src, dst, (ident, 64), &seg(seq, last), chunk);
            seq = seq.wrapping_add(chunk.len() as u32);
        }
        // a pure ACK ends the run and goes out alone
        c.push(&pool, &mut out, src, dst, (ident + 1, 64), &seg(seq, false), &[]);
        c.flush(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((c.supers, c.joined), (1, 7));
        let pieces = resegment(&out[0], src, dst);
        let joined: Vec<u8> = pieces.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(joined, data);
        assert!(pieces.last().unwrap().0.flags.psh);
        assert_eq!(pieces[0].0.seq, 1000);
        let ack = resegment(&out[1], src, dst);
        assert_eq!(ack.len(), 1);
        assert!(ack[0].1.is_empty());
        // IPv4 header of the super-segment is valid with the full length.
        let p = crate::wire::Ipv4Packet::new_checked(&out[0][..out[0].len() - 11]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.total_len() as usize, out[0].len() - 11);
        // The super-segment carries its first segment's identification (the device numbers
        // the pieces on from it); the ACK its own.
        assert_eq!(p.ident(), 101);
        assert_eq!(crate::wire::Ipv4Packet::new_checked(&out[1][..out[1].len() - 1]).unwrap().ident(), 108);
    }

    #[test]
    fn gaps_and_header_changes_start_a_new_run() {
        let pool = Pool::default();
        let (src, dst): (IpAddr, IpAddr) = ("fd00::2".parse().unwrap(), "fd00::1".parse().unwrap());
        let mut c = Coalescer::default();
        let mut out = Vec::new();
        c.push(&pool, &mut out, src, dst, (1, 64), &seg(0, false), &[1; 1000]);
        c.push(&pool, &mut out, src, dst, (1, 64), &seg(1000, false), &[2; 1000]);
        c.push(&pool, &mut out, src, dst, (1, 64), &seg(5000, false), &[3; 1000]); // gap: new run
        let mut other = seg(6000, false);
        other.window = 99; // window changed: new run
        c.push(&pool, &mut out, src, dst, (1, 64), &other, &[4; 1000]);
        c.flush(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(resegment(&out[0], src, dst).len(), 2);
        assert_eq!(resegment(&out[1], src, dst)[0].1, vec![3; 1000]);
        assert_eq!(resegment(&out[2], src, dst)[0].0.window, 99);
    }
}
