//! The IP layer core: validation, reassembly, ICMP, UDP and raw ICMP demux, fragmentation on send.
//!
//! Pure: fed `(now, packet)` and commands, it appends packets to send and deliveries to an
//! [`IpOutput`]; the ip actor moves them. Every packet it does not deliver is counted in
//! [`IpStats`] under the reason it was dropped. Invariants:
//! * a packet is delivered only after its version, lengths, header checksum (IPv4), source
//!   and destination were checked; transport checksums are checked for UDP and ICMP here and
//!   for TCP by the TCP engine;
//! * ICMP errors are never sent about ICMP errors, non-first fragments, or packets to/from
//!   broadcast/multicast addresses (RFC 1122 §3.2.2, RFC 4443 §2.4(e)), and are rate-limited
//!   by a token bucket;
//! * echo replies are rate-limited by a token bucket of their own (`echo_rate`/`echo_burst`),
//!   so an echo flood costs at most that many replies per second, counted in
//!   `echo_rate_limited`;
//! * reassembly memory is bounded (see [`crate::proto::frag`]);
//! * echo replies and ICMP errors reach raw ICMP sockets as [`crate::proto::raw`] describes;
//! * the core names the socket a datagram or message is for ([`Deliver`]); the bound on the
//!   bytes a socket holds unread (`udp_queue_bytes`, `raw_queue_bytes`) is the ip actor's,
//!   as `sk_rcvbuf` is Linux's socket layer's, since the socket drains it in its own thread.

use super::frag::{fragment_ranges, FragKey, Fragment, Reassembler, MAX_DATAGRAM};
use super::ident::IdentGen;
use super::raw::{RawSockId, RawTable};
use super::udp::{bad_source, UdpSockId, UdpTable};
use crate::buf::{Batch, Buffers};
use crate::wire::{self, IpProtocol, Ipv4Header, Ipv4Packet, Ipv6Packet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Addresses and limits of the IP layer.
#[derive(Debug, Clone)]
pub struct IpConfig {
    pub v4: Vec<Ipv4Addr>,
    /// Prefix length of the IPv4 link (for the subnet broadcast address).
    pub v4_prefix: u8,
    pub v6: Vec<Ipv6Addr>,
    /// Prefix length of the IPv6 addresses' subnet (fe80::/64 is always on-link).
    pub v6_prefix: u8,
    /// Default gateways (`--gateway`): off-subnet destinations are routed through them
    /// (`proto::routing`; on TUN that just lets them out the device). `None`: no route.
    pub gateway4: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
    /// The link MTU: the device's, set by `Stack::new` (read it with [`IpConfig::mtu`]).
    pub(crate) mtu: usize,
    /// Bound on bytes held by partial datagrams.
    pub reassembly_bytes: usize,
    /// ICMP errors per second (token bucket rate) and burst.
    pub icmp_rate: u32,
    pub icmp_burst: u32,
    /// Echo replies per second (token bucket rate) and burst. Linux's figures for its ICMP
    /// limits (`icmp_msgs_per_sec` 1000, `icmp_msgs_burst` 50); Linux leaves echo replies
    /// out of `icmp_ratemask` by default, we do not: a flood of requests must not take the
    /// link from TCP.
    pub echo_rate: u32,
    pub echo_burst: u32,
    /// Bound on the memory queued for one UDP socket (each datagram's buffer, [`udp_charge`]).
    pub udp_queue_bytes: usize,
    /// Bound on bytes queued for one raw ICMP socket (each message charged as a UDP
    /// datagram, [`udp_charge`]).
    pub raw_queue_bytes: usize,
    /// Each received packet ends with one metadata byte from the device (1: the transport
    /// checksum is already valid; an offloading TUN device, see `device::tun`). Set by
    /// `Stack::new` from the device.
    pub(crate) rx_trailer: bool,
    /// Packets for the device must end with a transmit trailer (`wire::gso`). Set by
    /// `Stack::new` from the device.
    pub(crate) tx_trailer: bool,
}

impl IpConfig {
    /// The link MTU (the device's; `StackConfig::mtu` to require one).
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Whether received packets end with the device's metadata byte (offload).
    pub fn rx_trailer(&self) -> bool {
        self.rx_trailer
    }

    /// Whether packets for the device end with a transmit trailer (offload).
    pub fn tx_trailer(&self) -> bool {
        self.tx_trailer
    }
}

impl Default for IpConfig {
    fn default() -> Self {
        IpConfig {
            v4: vec![Ipv4Addr::new(10, 0, 0, 2)],
            v4_prefix: 24,
            v6: vec!["fe80::2".parse().unwrap(), "fd00::2".parse().unwrap()],
            v6_prefix: 64,
            gateway4: None,
            gateway6: None,
            mtu: 1500,
            reassembly_bytes: 4 << 20,
            icmp_rate: 1000,
            icmp_burst: 50,
            echo_rate: 1000,
            echo_burst: 50,
            udp_queue_bytes: 1 << 20,
            raw_queue_bytes: 256 << 10,
            rx_trailer: false,
            tx_trailer: false,
        }
    }
}

counters!(
    /// Counters of the IP layer, kept by the core (the ip actor publishes them for other
    /// threads: `actor::counters`).
    IpStats {
        rx_packets,
        rx_bad_header,
        rx_bad_checksum,
        rx_not_ours,
        rx_bad_source,
        rx_frag_dropped,
        rx_frag_pending,
        rx_frag_too_far,
        rx_reassembled,
        rx_unknown_protocol,
        rx_bad_ext_header,
        rx_udp,
        rx_udp_bad,
        rx_udp_no_port,
        rx_udp_queue_full,
        rx_icmp_bad,
        rx_icmp_ignored,
        rx_icmp_errors,
        rx_raw,
        rx_raw_queue_full,
        rx_tcp,
        tx_packets,
        tx_fragments,
        tx_echo_replies,
        tx_icmp_errors,
        /// Socket calls refused for want of a route: counted by the sockets as they consult
        /// the routing table in their own threads (`actor::route`), never by the core.
        tx_no_route,
        icmp_rate_limited,
        echo_rate_limited,
        reassembly_held_bytes,
    }
);

/// Where an ICMP error about one of our sockets should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpErrorClass {
    /// Port unreachable (ICMPv4 3/3, ICMPv6 1/4).
    PortUnreachable,
    /// Fragmentation needed / packet too big, with the next-hop MTU.
    PacketTooBig(u16),
    /// Everything else that is not ignored: net/host/protocol unreachable, time exceeded,
    /// parameter problem (soft errors for TCP, RFC 1122 §4.2.3.9), with the error Linux
    /// would report for it (see `soft_error_kind`).
    Soft(io::ErrorKind),
}

/// The error a soft ICMP error stands for, as Linux's `icmp_err_convert` (v4) and
/// `icmpv6_err_convert` (v6) map them. EPROTO, ENOPROTOOPT and EOPNOTSUPP have no
/// `io::ErrorKind` and become `Other`.
pub(crate) fn soft_error_kind(v6: bool, icmp_type: u8, code: u8) -> io::ErrorKind {
    use io::ErrorKind::*;
    if v6 {
        match (icmp_type, code) {
            (icmp6::DEST_UNREACHABLE, 0) => NetworkUnreachable,       // no route
            (icmp6::DEST_UNREACHABLE, 1 | 5 | 6) => PermissionDenied, // prohibited, policy, reject
            (icmp6::PARAM_PROBLEM, _) => Other,
            _ => HostUnreachable, // beyond scope, address unreachable, time exceeded
        }
    } else {
        match (icmp_type, code) {
            // Net unreachable, net unknown, net prohibited, net unreachable for TOS.
            (icmp4::DEST_UNREACHABLE, 0 | 6 | 9 | 11) => NetworkUnreachable,
            // Protocol unreachable, source route failed; parameter problem.
            (icmp4::DEST_UNREACHABLE, icmp4::CODE_PROTO_UNREACHABLE | 5) | (icmp4::PARAM_PROBLEM, _) => Other,
            _ => HostUnreachable, // host codes, filtered, precedence; time exceeded
        }
    }
}

/// Something for a consumer other than the wire.
#[derive(Debug)]
pub enum Deliver {
    /// A TCP segment: `buf[start..end]` is the TCP header and payload. `csum_ok`: the device
    /// vouched for its checksum, so the engine need not verify it.
    Tcp { src: IpAddr, dst: IpAddr, buf: Vec<u8>, start: usize, end: usize, csum_ok: bool },
    /// A UDP datagram for socket `sock`: payload is `buf[start..end]`. The ip actor queues
    /// it if the socket's queue has room for [`udp_charge`] of `buf`'s capacity (`udp_queue_bytes`;
    /// otherwise `rx_udp_queue_full`), as Linux's socket layer checks `sk_rcvbuf`.
    Udp { sock: UdpSockId, from: SocketAddr, to: SocketAddr, buf: Vec<u8>, start: usize, end: usize },
    /// ICMP port unreachable for a connected UDP socket: the actor sets its pending error
    /// ([`UDP_ERR_REFUSED`]) and wakes a reader if none was pending.
    UdpError { sock: UdpSockId },
    /// An ICMP error quoting a TCP segment we sent from `local` to `remote`.
    TcpIcmp { local: SocketAddr, remote: SocketAddr, seq: u32, class: IcmpErrorClass },
    /// An ICMP message (type, code, checksum, rest) for raw socket `sock`, from `from`, which
    /// sent it with `hop_limit` (TTL). Queued as a UDP datagram is (`raw_queue_bytes`;
    /// `rx_raw` once queued, otherwise `rx_raw_queue_full`).
    Raw { sock: RawSockId, from: IpAddr, hop_limit: u8, msg: Vec<u8> },
}

/// What one call produced.
#[derive(Default)]
pub struct IpOutput {
    pub tx: Batch,
    pub deliver: Vec<Deliver>,
}

struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` per second.
    fn new(rate: u32, burst: u32) -> TokenBucket {
        TokenBucket { tokens: burst as f64, rate: rate as f64, burst: burst as f64, last: None }
    }

    fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A UDP socket's pending error (`buf::RecvQueue::set_error`) for "connection refused"
/// (ICMP port unreachable).
pub const UDP_ERR_REFUSED: u8 = 1;
/// Fixed cost charged per queued datagram besides the memory holding it (the queue's own
/// bookkeeping), so that nothing queues for free.
pub const UDP_DATAGRAM_OVERHEAD: u64 = 256;
/// A payload smaller than its buffer by more than this is copied out, so a small datagram
/// does not pin a 64 KiB offload buffer while it waits.
const UDP_COPY_SLACK: usize = 2048;

/// Bytes charged to a socket's queue for a message held in `held` bytes of memory: for a
/// UDP datagram its packet buffer's capacity, not its payload (Linux charges the buffer's
/// truesize), so that a flood of tiny datagrams cannot hold 2 KiB buffers at 256 bytes
/// each; for a raw socket's message its copy.
pub fn udp_charge(held: usize) -> u64 {
    held as u64 + UDP_DATAGRAM_OVERHEAD
}

pub struct IpCore {
    cfg: IpConfig,
    reasm: Reassembler,
    /// IPv4 and IPv6 fragment identifications, per destination (`proto::ident`).
    idents: IdentGen,
    icmp_bucket: TokenBucket,
    echo_bucket: TokenBucket,
    pub udp: UdpTable,
    /// Raw ICMP sockets (`proto::raw`).
    pub raw: RawTable,
    pub stats: IpStats,
    /// Deliver TCP to any unicast destination (the ip actor sets it before each batch,
    /// from whether a `bind_any` listener exists).
    pub accept_any_tcp: bool,
}

/// What the receive path threads through: the time, the pool, and where outputs go.
struct Io<'a> {
    now: Instant,
    pool: &'a dyn Buffers,
    out: &'a mut IpOutput,
    /// The device vouched for this packet's transport checksum.
    csum_ok: bool,
    /// IPv6: offset of the Next Header field that named the upper-layer protocol (for a
    /// parameter problem's pointer, RFC 8200 §4).
    nh_field: usize,
    /// The frame that carried it went to a link-layer broadcast or multicast address: not
    /// for TCP, and no ICMP error about it (RFC 1122 §3.2.2; RFC 4443 §2.4(e.4)/(e.5) but
    /// for their one exception, [`IpCore::icmp6_error`]).
    link_group: bool,
}

/// What an IPv6 packet's fixed header said, carried along its extension headers.
struct V6Meta {
    src: IpAddr,
    dst: IpAddr,
    foreign: bool,
    ttl: u8,
}

impl V6Meta {
    /// The transport payload `buf[start..end]` of this packet (never broadcast in IPv6).
    fn up(&self, buf: Vec<u8>, start: usize, end: usize, whole: bool) -> Up {
        let V6Meta { src, dst, foreign, ttl } = *self;
        Up { src, dst, buf, start, end, broadcast: false, whole, foreign, ttl }
    }
}

/// A transport payload on its way up: `buf[start..end]` from `src` to `dst`.
struct Up {
    src: IpAddr,
    dst: IpAddr,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Sent to a broadcast address (no ICMP errors about it, no echo replies).
    broadcast: bool,
    /// `buf` starts with the datagram's own IP header, so an ICMP error can quote it
    /// (false after reassembly).
    whole: bool,
    /// Sent to an address that is not ours, accepted only for a `bind_any` listener: only
    /// TCP may pass.
    foreign: bool,
    /// The IPv4 TTL or IPv6 hop limit it arrived with (after reassembly: the last fragment's).
    ttl: u8,
}

/// ICMPv4 types (RFC 792).
mod icmp4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    pub const CODE_PROTO_UNREACHABLE: u8 = 2;
    pub const CODE_PORT_UNREACHABLE: u8 = 3;
    pub const CODE_FRAG_NEEDED: u8 = 4;
}

/// ICMPv6 types (RFC 4443 §2.1).
mod icmp6 {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const CODE_PORT_UNREACHABLE: u8 = 4;
    pub const CODE_UNRECOGNIZED_NEXT_HEADER: u8 = 1;
    pub const CODE_UNRECOGNIZED_OPTION: u8 = 2;
}

/// RFC 8200 §4: extension header numbers.
mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

/// RFC 1191 / RFC 8201: IPv6 minimum MTU, and the most an ICMPv6 error may carry.
pub const IPV6_MIN_MTU: usize = 1280;
/// RFC 1812 §4.3.2.3: an ICMPv4 error should not exceed 576 bytes.
const ICMPV4_ERROR_MAX: usize = 576;

impl IpCore {
    /// A new core. The caller passes the secret that keys the identifications it gives its
    /// packets (`proto::ident`; the ip actor passes a random one, RFC 6864 §4.2 / RFC 7739
    /// §5; a test a fixed one) and its UDP ephemeral ports (RFC 6056 §3.3.1), so the core
    /// holds no source of randomness.
    pub fn new(cfg: IpConfig, secret: u128) -> IpCore {
        let idents = IdentGen::new(secret);
        let icmp_bucket = TokenBucket::new(cfg.icmp_rate, cfg.icmp_burst);
        let echo_bucket = TokenBucket::new(cfg.echo_rate, cfg.echo_burst);
        IpCore {
            reasm: Reassembler::new(cfg.reassembly_bytes, 256),
            cfg,
            icmp_bucket,
            echo_bucket,
            udp: UdpTable::new(secret),
            // The first automatic ping identifier: on the wire, so derived, not the key.
            raw: RawTable::new(idents.first_ping_ident()),
            idents,
            stats: IpStats::default(),
            accept_any_tcp: false,
        }
    }

    pub fn config(&self) -> &IpConfig {
        &self.cfg
    }

    /// Replace the IPv4 addresses and their prefix length (a DHCP lease, `actor::dhcp`;
    /// empty: no IPv4 address, only broadcasts are received).
    pub fn set_v4(&mut self, v4: Vec<Ipv4Addr>, prefix: u8) {
        self.cfg.v4 = v4;
        self.cfg.v4_prefix = prefix;
    }

    /// Send a UDP datagram from exactly `src` (no source selection; 0.0.0.0 allowed, as a
    /// DHCP client without an address sends, RFC 2131 §4.1) in one unfragmented packet.
    pub fn send_udp_from(
        &mut self,
        src: std::net::SocketAddrV4,
        to: std::net::SocketAddrV4,
        data: &[u8],
        pool: &dyn Buffers,
        out: &mut IpOutput,
    ) -> io::Result<()> {
        let ulen = wire::UDP_HEADER_LEN + data.len();
        if wire::IPV4_HEADER_LEN + ulen > self.cfg.mtu {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "message too long"));
        }
        let (s, d) = (IpAddr::V4(*src.ip()), IpAddr::V4(*to.ip()));
        let mut b = pool.small();
        b.resize(wire::IPV4_HEADER_LEN + ulen, 0);
        write_udp(&mut b[wire::IPV4_HEADER_LEN..], s, d, src.port(), to.port(), data);
        self.emit_ip_header(&mut b, s, d, IpProtocol::Udp, ulen, wire::DEFAULT_HOP_LIMIT);
        self.transmit(out, b);
        Ok(())
    }

    /// Queue packet `b` for the device, counted, with the transmit trailer an offloading
    /// device needs (`wire::gso`: the marker of a packet that is not a super-segment).
    fn transmit(&mut self, out: &mut IpOutput, mut b: Vec<u8>) {
        if self.cfg.tx_trailer {
            b.push(wire::gso::TX_TRAILER_PLAIN);
        }
        self.stats.tx_packets += 1;
        out.tx.push(b);
    }

    pub fn reassembly_bytes(&self) -> usize {
        self.reasm.held_bytes()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.reasm.next_deadline()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.reasm.expire(now) > 0 {
            self.update_reassembly_gauge();
        }
    }

    fn update_reassembly_gauge(&mut self) {
        self.stats.reassembly_held_bytes = self.reasm.held_bytes() as u64;
        // Partial datagrams restarted because an ID was reused (frag::MAX_DIST).
        self.stats.rx_frag_too_far = self.reasm.stats.too_far;
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.cfg.v4.contains(&a),
            IpAddr::V6(a) => self.cfg.v6.contains(&a),
        }
    }

    fn v4_broadcast(&self, a: Ipv4Addr) -> bool {
        if a.is_broadcast() {
            return true;
        }
        let host_bits = 32 - u32::from(self.cfg.v4_prefix.min(32));
        if host_bits < 2 || host_bits == 32 {
            return false; // /31 and /32 have no directed broadcast address (RFC 3021 §2.2)
        }
        let mask = u32::MAX >> (32 - host_bits);
        self.cfg.v4.iter().any(|ours| {
            let o = u32::from(*ours);
            u32::from(a) == (o & !mask) | mask
        })
    }

    /// A source address for a packet to `dst`: the first local address of the family, a
    /// link-local one for a link-local destination.
    pub fn source_for(&self, dst: IpAddr) -> Option<IpAddr> {
        match dst {
            IpAddr::V4(_) => self.cfg.v4.first().map(|a| IpAddr::V4(*a)),
            IpAddr::V6(d) => {
                let ll = |a: &Ipv6Addr| a.segments()[0] & 0xffc0 == 0xfe80;
                let pick = self.cfg.v6.iter().find(|a| ll(a) == ll(&d)).or(self.cfg.v6.first());
                pick.map(|a| IpAddr::V6(*a))
            }
        }
    }

    pub fn udp_close(&mut self, id: UdpSockId) {
        self.udp.unbind(id);
    }

    // ---------------------------------------------------------------- receive path

    /// Process one packet read from the device. The buffer is either moved into a delivery
    /// or handed back to `pool`.
    pub fn handle_packet(&mut self, now: Instant, buf: Vec<u8>, pool: &dyn Buffers, out: &mut IpOutput) {
        self.handle_link_packet(now, buf, false, pool, out)
    }

    /// [`Self::handle_packet`] for a packet a link-layer frame carried (TAP): `link_group`
    /// when the frame went to a broadcast or multicast MAC address.
    pub fn handle_link_packet(
        &mut self,
        now: Instant,
        buf: Vec<u8>,
        link_group: bool,
        pool: &dyn Buffers,
        out: &mut IpOutput,
    ) {
        self.stats.rx_packets += 1;
        let mut buf = buf;
        let csum_ok = self.cfg.rx_trailer && buf.pop() == Some(1);
        let mut io = Io { now, pool, out, csum_ok, nh_field: 6, link_group };
        match buf.first().map(|b| b >> 4) {
            Some(4) => self.rx_v4(&mut io, buf),
            Some(6) => self.rx_v6(&mut io, buf),
            _ => {
                self.stats.rx_bad_header += 1;
                pool.recycle(buf);
            }
        }
    }

    /// RFC 1122 §3.2.1.3: a datagram never comes from a broadcast, multicast, loopback,
    /// class E or 0/8 ({0, host}) address, nor from ours; 0.0.0.0 only for UDP (DHCP-style).
    fn v4_source_bogus(&self, src: Ipv4Addr, proto: u8) -> bool {
        bad_source(IpAddr::V4(src))
            || self.v4_broadcast(src)
            || src.is_loopback()
            || src.octets()[0] >= 240
            || src.octets()[0] == 0 && !(src.is_unspecified() && proto == 17)
            || self.cfg.v4.contains(&src)
    }

    fn rx_v4(&mut self, io: &mut Io, mut buf: Vec<u8>) {
        let (now, pool) = (io.now, io.pool);
        let (src, dst, proto, hlen, total, frag_off, more, ident, ttl) = {
            let Ok(p) = Ipv4Packet::new_checked(&buf[..]) else {
                self.stats.rx_bad_header += 1;
                return pool.recycle(buf);
            };
            if !p.verify_checksum() {
                self.stats.rx_bad_checksum += 1;
                return pool.recycle(buf);
            }
            (
                p.src_addr(),
                p.dst_addr(),
                u8::from(p.next_header()),
                p.header_len() as usize,
                p.total_len() as usize,
                p.frag_offset() as usize,
                p.more_frags(),
                p.ident(),
                p.hop_limit(),
            )
        };
        // RFC 1122 §3.2.1.7: a host must not discard a datagram for its TTL; we do not.
        buf.truncate(total); // drop link padding beyond total length
        let broadcast = self.v4_broadcast(dst);
        let local = self.cfg.v4.contains(&dst);
        // RFC 1122 §3.2.1.3: 0/8 and 127/8 never appear on a link (Linux drops them as
        // martian), so `bind_any` does not take them either.
        let martian = dst.octets()[0] == 0 || dst.is_loopback();
        let any_tcp = proto == 6 && !dst.is_multicast() && !broadcast && !martian && self.accept_any_tcp;
        if !local && !broadcast && !any_tcp {
            self.stats.rx_not_ours += 1;
            return pool.recycle(buf);
        }
        if self.v4_source_bogus(src, proto) {
            self.stats.rx_bad_source += 1;
            return pool.recycle(buf);
        }
        let (src, dst) = (IpAddr::V4(src), IpAddr::V4(dst));
        if more || frag_off != 0 {
            let key = FragKey { src, dst, proto, id: ident as u32 };
            let frag = Fragment { key, proto, offset: frag_off, more, data: &buf[hlen..] };
            let r = self.reasm.insert(now, frag);
            self.update_reassembly_gauge();
            pool.recycle(buf);
            match r {
                Ok(Some(d)) => {
                    self.stats.rx_reassembled += 1;
                    let len = d.payload.len();
                    let up = Up {
                        src,
                        dst,
                        buf: d.payload,
                        start: 0,
                        end: len,
                        broadcast,
                        whole: false,
                        foreign: !local && !broadcast,
                        ttl,
                    };
                    self.rx_transport(io, proto, up);
                }
                Ok(None) => self.stats.rx_frag_pending += 1,
                Err(_) => self.stats.rx_frag_dropped += 1,
            }
            return;
        }
        let len = buf.len();
        self.rx_transport(
            io,
            proto,
            Up { src, dst, buf, start: hlen, end: len, broadcast, whole: true, foreign: !local && !broadcast, ttl },
        );
    }

    fn rx_v6(&mut self, io: &mut Io, mut buf: Vec<u8>) {
        let pool = io.pool;
        let (src, dst, mut next, ttl) = {
            let Ok(p) = Ipv6Packet::new_checked(&buf[..]) else {
                self.stats.rx_bad_header += 1;
                return pool.recycle(buf);
            };
            (p.src_addr(), p.dst_addr(), u8::from(p.next_header()), p.hop_limit())
        };
        let total = wire::IPV6_HEADER_LEN + Ipv6Packet::new_unchecked(&buf[..]).payload_len() as usize;
        buf.truncate(total);
        let foreign = !self.cfg.v6.contains(&dst);
        // RFC 4291 §2.5.2/§2.5.3: :: and ::1 never appear as a destination on a link.
        let martian = dst.is_unspecified() || dst.is_loopback();
        let any_tcp = !dst.is_multicast() && !martian && self.accept_any_tcp;
        if foreign && !any_tcp {
            self.stats.rx_not_ours += 1;
            return pool.recycle(buf);
        }
        // RFC 4291 §2.5.2/§2.5.3/§2.7: never from ::, ::1, multicast or ourselves; nor from an
        // IPv4-mapped address (§2.5.5.2: the socket API's, not the wire's; Linux's ipv6_rcv).
        let bogus = src.is_multicast() || src.is_unspecified() || src.is_loopback() || src.to_ipv4_mapped().is_some();
        if bogus || self.cfg.v6.contains(&src) {
            self.stats.rx_bad_source += 1;
            return pool.recycle(buf);
        }
        let meta = V6Meta { src: IpAddr::V6(src), dst: IpAddr::V6(dst), foreign, ttl };
        // Walk the extension headers (RFC 8200 §4.1 order is recommended, not required, except
        // that hop-by-hop must come first).
        let mut off = wire::IPV6_HEADER_LEN;
        let mut first = true;
        loop {
            let hlen = match next {
                ext::HOP_BY_HOP | ext::DEST_OPTS | ext::ROUTING => {
                    let Some((nh, hlen)) = self.rx_v6_option_header(io, &buf, off, next, first) else {
                        return pool.recycle(buf);
                    };
                    next = nh;
                    hlen
                }
                ext::FRAGMENT => {
                    let Some(h) = buf.get(off..off + wire::IPV6_FRAG_HEADER_LEN) else {
                        self.stats.rx_bad_ext_header += 1;
                        return pool.recycle(buf);
                    };
                    // RFC 6946: an atomic fragment (offset 0, no more; the reserved bits are
                    // ignored) is a whole datagram.
                    if u16::from_be_bytes([h[2], h[3]]) & 0xfff9 != 0 {
                        return self.rx_v6_fragment(io, buf, off, &meta);
                    }
                    next = h[0];
                    wire::IPV6_FRAG_HEADER_LEN
                }
                ext::NO_NEXT => return pool.recycle(buf),
                proto => {
                    let len = buf.len();
                    return self.rx_transport(io, proto, meta.up(buf, off, len, true));
                }
            };
            io.nh_field = off;
            off += hlen;
            first = false;
        }
    }

    /// A hop-by-hop, destination-options or routing header at `off`: its next header and
    /// length, or `None` when the packet is to be dropped (counted; a parameter problem sent
    /// for an option that asks for one).
    fn rx_v6_option_header(
        &mut self,
        io: &mut Io,
        buf: &[u8],
        off: usize,
        kind: u8,
        first: bool,
    ) -> Option<(u8, usize)> {
        match option_header(buf, off, kind, first) {
            Ok(h) => Some(h),
            Err(ptr) => {
                self.stats.rx_bad_ext_header += 1;
                if let Some(pointer) = ptr {
                    let tc = [icmp6::PARAM_PROBLEM, icmp6::CODE_UNRECOGNIZED_OPTION];
                    self.icmp6_error(io, buf, tc, pointer as u32);
                }
                None
            }
        }
    }

    /// A (non-atomic) fragment whose header is at `off` (already bounds-checked): into
    /// reassembly; a completed datagram goes on up.
    fn rx_v6_fragment(&mut self, io: &mut Io, buf: Vec<u8>, off: usize, meta: &V6Meta) {
        let h = &buf[off..off + wire::IPV6_FRAG_HEADER_LEN];
        let nh = h[0];
        let fo = u16::from_be_bytes([h[2], h[3]]);
        let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let (offset, more) = ((fo & 0xfff8) as usize, fo & 1 == 1);
        let data = &buf[off + wire::IPV6_FRAG_HEADER_LEN..];
        // RFC 8200 §4.5: the reassembled Payload Length counts the unfragmentable part's
        // headers too (reassembly bounds only the fragmentable part).
        if off - wire::IPV6_HEADER_LEN + offset + data.len() > MAX_DATAGRAM {
            self.stats.rx_frag_dropped += 1;
            return io.pool.recycle(buf);
        }
        let key = FragKey { src: meta.src, dst: meta.dst, proto: 0, id };
        let r = self.reasm.insert(io.now, Fragment { key, proto: nh, offset, more, data });
        self.update_reassembly_gauge();
        io.pool.recycle(buf);
        match r {
            Ok(Some(d)) => {
                self.stats.rx_reassembled += 1;
                // The reassembled payload starts with the fragmentable part's headers; walk
                // them (no fragment header may follow).
                let len = d.payload.len();
                self.rx_v6_upper(io, d.proto, meta.up(d.payload, 0, len, false));
            }
            Ok(None) => self.stats.rx_frag_pending += 1,
            Err(_) => self.stats.rx_frag_dropped += 1,
        }
    }

    /// Upper layer of a reassembled IPv6 datagram: walk the headers of its fragmentable part,
    /// then dispatch. They follow a fragment header, so hop-by-hop is misplaced there (RFC
    /// 8200 §4.3); a header to be dropped is dropped without a parameter problem, since the
    /// datagram cannot be quoted as it arrived.
    fn rx_v6_upper(&mut self, io: &mut Io, mut proto: u8, mut up: Up) {
        while proto == ext::DEST_OPTS || proto == ext::ROUTING || proto == ext::HOP_BY_HOP {
            let Ok((nh, hlen)) = option_header(&up.buf[..up.end], up.start, proto, false) else {
                self.stats.rx_bad_ext_header += 1;
                return;
            };
            proto = nh;
            up.start += hlen;
        }
        self.rx_transport(io, proto, up);
    }

    /// Dispatch a transport payload to TCP, UDP or ICMP.
    fn rx_transport(&mut self, io: &mut Io, proto: u8, up: Up) {
        if up.foreign && proto != 6 {
            self.stats.rx_not_ours += 1;
            return io.pool.recycle(up.buf);
        }
        match (proto, up.src) {
            (6, _) if !up.broadcast && !io.link_group => {
                self.stats.rx_tcp += 1;
                let Up { src, dst, buf, start, end, whole, .. } = up;
                // Only a packet as the device delivered it carries the device's word.
                let csum_ok = io.csum_ok && whole;
                io.out.deliver.push(Deliver::Tcp { src, dst, buf, start, end, csum_ok });
            }
            (6, _) => {
                // To a broadcast address, or in a link-layer group frame (Linux's `tcp_v4_rcv`
                // discards what is not `PACKET_HOST`): not for any connection, yet not an
                // unknown protocol.
                self.stats.rx_not_ours += 1;
                io.pool.recycle(up.buf);
            }
            (17, _) => self.rx_udp(io, up),
            (1, IpAddr::V4(_)) => self.rx_icmp4(io, up),
            (58, IpAddr::V6(_)) => self.rx_icmp6(io, up),
            _ => {
                self.stats.rx_unknown_protocol += 1;
                if !up.broadcast && up.whole {
                    // RFC 1122 §3.2.2.1: protocol unreachable; RFC 8200 §4: parameter problem
                    // pointing at the next-header field (the IPv6 header's when there are no
                    // extension headers).
                    match up.src {
                        IpAddr::V4(_) => {
                            self.icmp4_error(io, &up.buf, [icmp4::DEST_UNREACHABLE, icmp4::CODE_PROTO_UNREACHABLE])
                        }
                        IpAddr::V6(_) => {
                            let ptr = io.nh_field as u32;
                            let tc = [icmp6::PARAM_PROBLEM, icmp6::CODE_UNRECOGNIZED_NEXT_HEADER];
                            self.icmp6_error(io, &up.buf, tc, ptr)
                        }
                    }
                }
                io.pool.recycle(up.buf);
            }
        }
    }

    fn rx_udp(&mut self, io: &mut Io, up: Up) {
        self.stats.rx_udp += 1;
        let (src, dst) = (up.src, up.dst);
        let seg = &up.buf[up.start..up.end];
        if seg.len() < wire::UDP_HEADER_LEN {
            self.stats.rx_udp_bad += 1;
            return io.pool.recycle(up.buf);
        }
        let sport = u16::from_be_bytes([seg[0], seg[1]]);
        let dport = u16::from_be_bytes([seg[2], seg[3]]);
        let ulen = u16::from_be_bytes([seg[4], seg[5]]) as usize;
        let csum = u16::from_be_bytes([seg[6], seg[7]]);
        if ulen < wire::UDP_HEADER_LEN || ulen > seg.len() {
            self.stats.rx_udp_bad += 1;
            return io.pool.recycle(up.buf);
        }
        let seg = &seg[..ulen];
        // RFC 768: zero means "no checksum" for IPv4; RFC 8200 §8.1: IPv6 receivers discard
        // a zero checksum (checked here, as the sum of such a datagram can verify).
        if csum == 0 && src.is_ipv6() {
            self.stats.rx_udp_bad += 1;
            return io.pool.recycle(up.buf);
        }
        let need_check = csum != 0 && !(io.csum_ok && up.whole);
        if need_check && !wire::transport_checksum_ok(src, dst, IpProtocol::Udp, seg) {
            self.stats.rx_udp_bad += 1;
            return io.pool.recycle(up.buf);
        }
        let from = SocketAddr::new(src, sport);
        let to = SocketAddr::new(dst, dport);
        let Some(sock) = self.udp.lookup(from, to) else {
            self.stats.rx_udp_no_port += 1;
            if !up.broadcast && up.whole && !src.is_unspecified() {
                match src {
                    IpAddr::V4(_) => {
                        self.icmp4_error(io, &up.buf, [icmp4::DEST_UNREACHABLE, icmp4::CODE_PORT_UNREACHABLE])
                    }
                    IpAddr::V6(_) => {
                        self.icmp6_error(io, &up.buf, [icmp6::DEST_UNREACHABLE, icmp6::CODE_PORT_UNREACHABLE], 0)
                    }
                }
            }
            return io.pool.recycle(up.buf);
        };
        let payload = ulen - wire::UDP_HEADER_LEN;
        let pstart = up.start + wire::UDP_HEADER_LEN;
        let (buf, start, end) = if up.buf.capacity() > payload + UDP_COPY_SLACK {
            let small = up.buf[pstart..pstart + payload].to_vec();
            io.pool.recycle(up.buf);
            (small, 0, payload)
        } else {
            (up.buf, pstart, pstart + payload)
        };
        io.out.deliver.push(Deliver::Udp { sock, from, to, buf, start, end });
    }

    fn rx_icmp4(&mut self, io: &mut Io, up: Up) {
        let Up { src, dst, buf, start, end, broadcast, whole, ttl, .. } = up;
        let msg = &buf[start..end];
        if msg.len() < wire::ICMP_HEADER_LEN || wire::ones_sum(msg) != !0 {
            self.stats.rx_icmp_bad += 1;
            return io.pool.recycle(buf);
        }
        if broadcast {
            // RFC 1122 §3.2.2.6 lets an echo request to a broadcast address go unanswered;
            // nothing else sent there is about us (Linux's `icmp_rcv` drops all but echo,
            // timestamp and address mask requests, and ignores broadcast echoes).
            self.stats.rx_icmp_ignored += 1;
            return io.pool.recycle(buf);
        }
        match msg[0] {
            icmp4::ECHO_REPLY => {
                self.raw_echo_reply(io.out, src, ttl, msg);
                io.pool.recycle(buf);
            }
            icmp4::ECHO_REQUEST => {
                let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else { return io.pool.recycle(buf) };
                if !self.echo_bucket.take(io.now) {
                    self.stats.echo_rate_limited += 1;
                    return io.pool.recycle(buf);
                }
                if !whole || !self.cfg.v4.contains(&d) {
                    // A reassembled echo (no header in this buffer) or to a non-local
                    // address: build a fresh packet.
                    let data = buf[start + 4..end].to_vec();
                    io.pool.recycle(buf);
                    return self.send_icmp4(io, s, d, [icmp4::ECHO_REPLY, 0], &data);
                }
                self.echo_reply4_in_place(io, (d, s), buf, start..end);
            }
            icmp4::DEST_UNREACHABLE | icmp4::TIME_EXCEEDED | icmp4::PARAM_PROBLEM => {
                self.stats.rx_icmp_errors += 1;
                let class = match (msg[0], msg[1]) {
                    (icmp4::DEST_UNREACHABLE, icmp4::CODE_PORT_UNREACHABLE) => IcmpErrorClass::PortUnreachable,
                    (icmp4::DEST_UNREACHABLE, icmp4::CODE_FRAG_NEEDED) => {
                        IcmpErrorClass::PacketTooBig(u16::from_be_bytes([msg[6], msg[7]]))
                    }
                    (t, c) => IcmpErrorClass::Soft(soft_error_kind(false, t, c)),
                };
                if !self.raw_error(io.out, src, ttl, msg) {
                    self.quoted_error(&msg[8..], false, class, io.out);
                }
                io.pool.recycle(buf);
            }
            icmp4::SOURCE_QUENCH => {
                // RFC 6633: source quench is deprecated and ignored.
                self.stats.rx_icmp_ignored += 1;
                io.pool.recycle(buf);
            }
            _ => {
                // Other messages have no taker here.
                self.stats.rx_icmp_ignored += 1;
                io.pool.recycle(buf);
            }
        }
    }

    /// The echo reply to a request that arrived whole (its 20-byte-or-longer IPv4 header
    /// at the front of `buf`, the message at `msg`), built in the request's own buffer: the
    /// addresses swapped, the type changed, both checksums redone.
    fn echo_reply4_in_place(
        &mut self,
        io: &mut Io,
        (us, them): (Ipv4Addr, Ipv4Addr),
        mut buf: Vec<u8>,
        msg: std::ops::Range<usize>,
    ) {
        let hdr = Ipv4Header {
            src: us,
            dst: them,
            proto: IpProtocol::Icmp,
            ident: self.next_ident(them, IpProtocol::Icmp),
            frag_offset: 0,
            more_frags: false,
            dont_frag: false,
            ttl: wire::DEFAULT_HOP_LIMIT,
        };
        // Keep the 20-byte header form: move the ICMP message right after it.
        if msg.start != wire::IPV4_HEADER_LEN {
            buf.copy_within(msg.clone(), wire::IPV4_HEADER_LEN);
            buf.truncate(wire::IPV4_HEADER_LEN + msg.len());
        }
        let ilen = buf.len() - wire::IPV4_HEADER_LEN;
        wire::emit_ipv4_header(&mut buf, &hdr, ilen);
        let m = &mut buf[wire::IPV4_HEADER_LEN..];
        m[0] = icmp4::ECHO_REPLY;
        m[2] = 0;
        m[3] = 0;
        let c = !wire::ones_sum(m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        self.stats.tx_echo_replies += 1;
        self.transmit(io.out, buf);
    }

    fn rx_icmp6(&mut self, io: &mut Io, up: Up) {
        let Up { src, dst, buf, start, end, ttl, .. } = up;
        let msg = &buf[start..end];
        if msg.len() < wire::ICMP_HEADER_LEN || !wire::transport_checksum_ok(src, dst, IpProtocol::Icmpv6, msg) {
            self.stats.rx_icmp_bad += 1;
            return io.pool.recycle(buf);
        }
        match msg[0] {
            icmp6::ECHO_REPLY => {
                self.raw_echo_reply(io.out, src, ttl, msg);
                io.pool.recycle(buf);
            }
            icmp6::ECHO_REQUEST => {
                let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else { return io.pool.recycle(buf) };
                if !self.echo_bucket.take(io.now) {
                    self.stats.echo_rate_limited += 1;
                    return io.pool.recycle(buf);
                }
                let body = msg[4..].to_vec();
                io.pool.recycle(buf);
                self.send_icmp6(io, s, d, [icmp6::ECHO_REPLY, 0], &body);
                self.stats.tx_echo_replies += 1;
            }
            icmp6::DEST_UNREACHABLE | icmp6::PACKET_TOO_BIG | icmp6::TIME_EXCEEDED | icmp6::PARAM_PROBLEM => {
                self.stats.rx_icmp_errors += 1;
                let class = match (msg[0], msg[1]) {
                    (icmp6::DEST_UNREACHABLE, icmp6::CODE_PORT_UNREACHABLE) => IcmpErrorClass::PortUnreachable,
                    (icmp6::PACKET_TOO_BIG, _) => {
                        let mtu = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
                        IcmpErrorClass::PacketTooBig(mtu.min(u16::MAX as u32) as u16)
                    }
                    (t, c) => IcmpErrorClass::Soft(soft_error_kind(true, t, c)),
                };
                if !self.raw_error(io.out, src, ttl, msg) {
                    self.quoted_error(&msg[8..], true, class, io.out);
                }
                io.pool.recycle(buf);
            }
            _ => {
                self.stats.rx_icmp_ignored += 1;
                io.pool.recycle(buf);
            }
        }
    }

    /// Route an ICMP error by the packet it quotes (RFC 1122 §3.2.2, RFC 4443 §2.4): one of
    /// its own family (`v6`: an ICMPv6 error), RFC 792 / RFC 4443 §3.
    fn quoted_error(&mut self, quoted: &[u8], v6: bool, class: IcmpErrorClass, out: &mut IpOutput) {
        let Some((qsrc, qdst, proto, l4)) = parse_quoted(quoted).filter(|q| q.0.is_ipv6() == v6) else {
            self.stats.rx_icmp_bad += 1;
            return;
        };
        if !self.is_local(qsrc) || l4.len() < 8 {
            self.stats.rx_icmp_ignored += 1;
            return;
        }
        let sport = u16::from_be_bytes([l4[0], l4[1]]);
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        let local = SocketAddr::new(qsrc, sport);
        let remote = SocketAddr::new(qdst, dport);
        match proto {
            17 => match (self.udp.lookup_sender(local, remote), class) {
                (Some(sock), IcmpErrorClass::PortUnreachable) => out.deliver.push(Deliver::UdpError { sock }),
                _ => self.stats.rx_icmp_ignored += 1,
            },
            6 => {
                let seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
                out.deliver.push(Deliver::TcpIcmp { local, remote, seq, class });
            }
            _ => self.stats.rx_icmp_ignored += 1,
        }
    }

    // ---------------------------------------------------------------- raw ICMP sockets

    /// ICMP message `msg` from `from` for raw socket `sock` (the ip actor queues it within
    /// the socket's byte bound, `raw_queue_bytes`).
    fn raw_deliver(&mut self, out: &mut IpOutput, sock: RawSockId, from: IpAddr, hop_limit: u8, msg: &[u8]) {
        // A copy: a ping-sized message must not pin a (possibly 64 KiB) receive buffer.
        out.deliver.push(Deliver::Raw { sock, from, hop_limit, msg: msg.to_vec() });
    }

    /// An echo reply goes to the raw socket owning its identifier, as with Linux's ping
    /// sockets; without one it is ignored (counted).
    fn raw_echo_reply(&mut self, out: &mut IpOutput, from: IpAddr, hop_limit: u8, msg: &[u8]) {
        let ident = u16::from_be_bytes([msg[4], msg[5]]);
        match self.raw.by_ident(from.is_ipv6(), ident) {
            Some(sock) => self.raw_deliver(out, sock, from, hop_limit, msg),
            None => self.stats.rx_icmp_ignored += 1,
        }
    }

    /// ICMP error `msg` (at least its 8-byte header) for the raw sockets: it goes to the
    /// socket whose echo request it quotes (true: nobody else wants it); one quoting another
    /// protocol's packet from us is copied to every socket of the family (false: the
    /// transport still gets it, see `quoted_error`).
    fn raw_error(&mut self, out: &mut IpOutput, from: IpAddr, hop_limit: u8, msg: &[u8]) -> bool {
        if self.raw.is_empty() {
            return false;
        }
        let v6 = from.is_ipv6();
        let Some((qsrc, _, proto, l4)) = parse_quoted(&msg[wire::ICMP_HEADER_LEN..]) else { return false };
        if qsrc.is_ipv6() != v6 || !self.is_local(qsrc) {
            return false;
        }
        let (icmp_proto, echo) = if v6 { (58, icmp6::ECHO_REQUEST) } else { (1, icmp4::ECHO_REQUEST) };
        if proto != icmp_proto {
            for sock in self.raw.of_family(v6) {
                self.raw_deliver(out, sock, from, hop_limit, msg);
            }
            return false;
        }
        if l4.len() < 6 || l4[0] != echo {
            return false;
        }
        match self.raw.by_ident(v6, u16::from_be_bytes([l4[4], l4[5]])) {
            Some(sock) => {
                self.raw_deliver(out, sock, from, hop_limit, msg);
                true
            }
            None => false,
        }
    }

    /// Send ICMP message `msg` (type, code, checksum, rest) from raw socket `sock` to `to`;
    /// the core fills the IP header and chooses the source. An echo request gets the
    /// socket's identifier written in (as Linux's ping sockets do). The checksum is always
    /// computed here, the caller's field ignored: over the message for ICMPv4 (RFC 792),
    /// with the pseudo-header for ICMPv6 (RFC 4443 §2.3).
    pub fn send_raw(
        &mut self,
        sock: RawSockId,
        to: IpAddr,
        msg: &[u8],
        pool: &dyn Buffers,
        out: &mut IpOutput,
    ) -> io::Result<usize> {
        let (v6, ident) =
            self.raw.get(sock).ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "socket closed"))?;
        check_raw_send(v6, to, msg.len())?;
        let src =
            self.source_for(to).ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no source address"))?;
        let mut m = msg.to_vec();
        let (proto, echo) =
            if v6 { (IpProtocol::Icmpv6, icmp6::ECHO_REQUEST) } else { (IpProtocol::Icmp, icmp4::ECHO_REQUEST) };
        if m[0] == echo {
            m[4..6].copy_from_slice(&ident.to_be_bytes());
        }
        m[2..4].copy_from_slice(&[0, 0]);
        let c = if v6 { wire::transport_checksum(src, to, proto, &m) } else { !wire::ones_sum(&m) };
        m[2..4].copy_from_slice(&c.to_be_bytes());
        self.send_datagram(src, to, proto, &m, pool, out);
        Ok(msg.len())
    }

    // ---------------------------------------------------------------- send path

    /// The IPv4 Identification of the next datagram to `dst` carrying `proto`.
    fn next_ident(&mut self, dst: Ipv4Addr, proto: IpProtocol) -> u16 {
        self.idents.next(IpAddr::V4(dst), u8::from(proto)) as u16
    }

    /// ICMPv4 error `[type, code]` about `orig` (a whole IPv4 packet as received).
    fn icmp4_error(&mut self, io: &mut Io, orig: &[u8], type_code: [u8; 2]) {
        let Ok(p) = Ipv4Packet::new_checked(orig) else { return };
        // RFC 1122 §3.2.2: never about a link-layer broadcast or multicast; and an error
        // comes from the address the packet was sent to, so only about one sent to ours
        // (not a broadcast, nor a foreign address `bind_any` lets TCP take).
        if io.link_group || !self.cfg.v4.contains(&p.dst_addr()) {
            return;
        }
        let is_icmp_error = u8::from(p.next_header()) == 1
            && orig.get(p.header_len() as usize).is_some_and(|t| ![icmp4::ECHO_REPLY, icmp4::ECHO_REQUEST].contains(t));
        if p.frag_offset() != 0 || is_icmp_error {
            return; // never about non-first fragments or ICMP errors (RFC 1122 §3.2.2)
        }
        if !self.icmp_bucket.take(io.now) {
            self.stats.icmp_rate_limited += 1;
            return;
        }
        let (us, them) = (p.dst_addr(), p.src_addr());
        // RFC 1812 §4.3.2.3: as much of the original as fits in 576 bytes; 4 unused bytes first.
        let quote_len = orig.len().min(ICMPV4_ERROR_MAX - wire::IPV4_HEADER_LEN - wire::ICMP_HEADER_LEN);
        let mut body = Vec::with_capacity(4 + quote_len);
        body.extend_from_slice(&[0; 4]);
        body.extend_from_slice(&orig[..quote_len]);
        self.stats.tx_icmp_errors += 1;
        self.send_icmp4(io, them, us, type_code, &body);
    }

    /// ICMPv6 error `[type, code]` about `orig` with the 32-bit parameter `param`.
    fn icmp6_error(&mut self, io: &mut Io, orig: &[u8], type_code: [u8; 2], param: u32) {
        let Ok(p) = Ipv6Packet::new_checked(orig) else { return };
        // RFC 4443 §2.4(e.3)-(e.5), and the exception that (e.4)/(e.5) keep for link-layer
        // group frames: a parameter problem (code 2) about an option whose type's high bits
        // are 10 (RFC 8200 §4.2: "regardless of" a multicast destination; Linux's
        // `opt_unrec`). Packet Too Big, the other exception, is a router's.
        let option_10 = type_code == [icmp6::PARAM_PROBLEM, icmp6::CODE_UNRECOGNIZED_OPTION]
            && orig.get(param as usize).is_some_and(|t| t >> 6 == 0b10);
        // An error comes from the address the packet was sent to: only ours (not a multicast
        // group, which would leave it no unicast source, nor a foreign address `bind_any`
        // lets TCP take).
        let ours = self.cfg.v6.contains(&p.dst_addr());
        if !ours || p.src_addr().is_unspecified() || (io.link_group && !option_10) {
            return;
        }
        // RFC 4443 §2.4(e.1): never about an ICMPv6 error message (types below 128, §2.1),
        // found past the extension headers as Linux's `is_ineligible` finds it: a header in
        // front of it may be what is wrong.
        if let Some((_, _, 58, l4)) = parse_quoted(orig) {
            if l4.first().is_none_or(|&t| t < icmp6::ECHO_REQUEST) {
                return;
            }
        }
        if !self.icmp_bucket.take(io.now) {
            self.stats.icmp_rate_limited += 1;
            return;
        }
        let (us, them) = (p.dst_addr(), p.src_addr());
        // RFC 4443 §2.4(c): as much of the invoking packet as fits in the minimum MTU.
        let quote_len = orig.len().min(IPV6_MIN_MTU - wire::IPV6_HEADER_LEN - wire::ICMP_HEADER_LEN);
        let mut body = Vec::with_capacity(4 + quote_len);
        body.extend_from_slice(&param.to_be_bytes());
        body.extend_from_slice(&orig[..quote_len]);
        self.stats.tx_icmp_errors += 1;
        self.send_icmp6(io, them, us, type_code, &body);
    }

    /// Send an ICMPv4 message `[type, code]` to `to` from `from`; `body` follows the
    /// checksum (the 4 "rest of header" bytes, then data).
    fn send_icmp4(&mut self, io: &mut Io, to: Ipv4Addr, from: Ipv4Addr, type_code: [u8; 2], body: &[u8]) {
        let mut msg = Vec::with_capacity(4 + body.len());
        msg.extend_from_slice(&[type_code[0], type_code[1], 0, 0]);
        msg.extend_from_slice(body);
        let c = !wire::ones_sum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        self.send_datagram(IpAddr::V4(from), IpAddr::V4(to), IpProtocol::Icmp, &msg, io.pool, io.out);
    }

    /// Send an ICMPv6 message `[type, code]` to `to` from `from`.
    fn send_icmp6(&mut self, io: &mut Io, to: Ipv6Addr, from: Ipv6Addr, type_code: [u8; 2], body: &[u8]) {
        let mut msg = Vec::with_capacity(4 + body.len());
        msg.extend_from_slice(&[type_code[0], type_code[1], 0, 0]);
        msg.extend_from_slice(body);
        let c = wire::transport_checksum(IpAddr::V6(from), IpAddr::V6(to), IpProtocol::Icmpv6, &msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        self.send_datagram(IpAddr::V6(from), IpAddr::V6(to), IpProtocol::Icmpv6, &msg, io.pool, io.out);
    }

    /// Send a UDP datagram. `from.ip()` may be unspecified (a source is chosen).
    pub fn send_udp(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
        pool: &dyn Buffers,
        out: &mut IpOutput,
    ) -> io::Result<usize> {
        self.send_udp_ttl(from, to, data, wire::DEFAULT_HOP_LIMIT, pool, out)
    }

    /// As [`Self::send_udp`], with `ttl` as the IPv4 TTL or IPv6 hop limit of every packet
    /// (a socket's `set_ttl`; RFC 1122 §3.2.1.7 lets the transport choose it).
    pub fn send_udp_ttl(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
        ttl: u8,
        pool: &dyn Buffers,
        out: &mut IpOutput,
    ) -> io::Result<usize> {
        // RFC 768: the length field is 16 bits (65,507 bytes of payload over IPv4).
        let max = match to {
            SocketAddr::V4(_) => 65_535 - wire::IPV4_HEADER_LEN - wire::UDP_HEADER_LEN,
            SocketAddr::V6(_) => 65_535 - wire::UDP_HEADER_LEN,
        };
        if data.len() > max {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "message too long"));
        }
        if from.is_ipv4() != to.is_ipv4() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "address family mismatch"));
        }
        let src = if from.ip().is_unspecified() {
            self.source_for(to.ip())
                .ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no source address"))?
        } else {
            from.ip()
        };
        let ulen = wire::UDP_HEADER_LEN + data.len();
        let hlen = wire::ip_header_len(src);
        if hlen + ulen <= self.cfg.mtu {
            // Fast path: build header and payload straight into one pooled buffer.
            let mut b = pool.small();
            b.resize(hlen + ulen, 0);
            write_udp(&mut b[hlen..], src, to.ip(), from.port(), to.port(), data);
            self.emit_ip_header(&mut b, src, to.ip(), IpProtocol::Udp, ulen, ttl);
            self.transmit(out, b);
        } else {
            let mut dgram = vec![0u8; ulen];
            write_udp(&mut dgram, src, to.ip(), from.port(), to.port(), data);
            self.send_datagram_ttl(src, to.ip(), IpProtocol::Udp, &dgram, ttl, pool, out);
        }
        Ok(data.len())
    }

    fn emit_ip_header(&mut self, b: &mut [u8], src: IpAddr, dst: IpAddr, proto: IpProtocol, len: usize, ttl: u8) {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let h = Ipv4Header {
                    src: s,
                    dst: d,
                    proto,
                    ident: self.next_ident(d, proto),
                    frag_offset: 0,
                    more_frags: false,
                    dont_frag: false,
                    ttl,
                };
                wire::emit_ipv4_header(b, &h, len);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => wire::emit_ipv6_header(b, s, d, proto, len, ttl),
            _ => {}
        }
    }

    /// Send a transport payload, fragmenting when it does not fit the MTU
    /// (RFC 791 §3.2; RFC 8200 §4.5 with a fragment header).
    pub fn send_datagram(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: IpProtocol,
        payload: &[u8],
        pool: &dyn Buffers,
        out: &mut IpOutput,
    ) {
        self.send_datagram_ttl(src, dst, proto, payload, wire::DEFAULT_HOP_LIMIT, pool, out)
    }

    #[allow(clippy::too_many_arguments)] // send_datagram's, plus the TTL
    fn send_datagram_ttl(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: IpProtocol,
        payload: &[u8],
        ttl: u8,
        pool: &dyn Buffers,
        out: &mut IpOutput,
    ) {
        let hlen = wire::ip_header_len(src);
        if hlen + payload.len() <= self.cfg.mtu {
            let mut b = pool.small();
            b.resize(hlen + payload.len(), 0);
            b[hlen..].copy_from_slice(payload);
            self.emit_ip_header(&mut b, src, dst, proto, payload.len(), ttl);
            self.transmit(out, b);
            return;
        }
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let ident = self.next_ident(d, proto);
                for (off, len, more) in fragment_ranges(payload.len(), self.cfg.mtu - hlen) {
                    let mut b = pool.small();
                    b.resize(hlen + len, 0);
                    b[hlen..].copy_from_slice(&payload[off..off + len]);
                    let h = Ipv4Header {
                        src: s,
                        dst: d,
                        proto,
                        ident,
                        frag_offset: off as u16,
                        more_frags: more,
                        dont_frag: false,
                        ttl,
                    };
                    wire::emit_ipv4_header(&mut b, &h, len);
                    self.stats.tx_fragments += 1;
                    self.transmit(out, b);
                }
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let id = self.idents.next(IpAddr::V6(d), u8::from(proto));
                let fh = hlen + wire::IPV6_FRAG_HEADER_LEN;
                let max_payload = self.cfg.mtu.max(IPV6_MIN_MTU) - fh;
                for (off, len, more) in fragment_ranges(payload.len(), max_payload) {
                    let mut b = pool.small();
                    b.resize(fh + len, 0);
                    wire::emit_ipv6_header(&mut b, s, d, IpProtocol::Ipv6Frag, wire::IPV6_FRAG_HEADER_LEN + len, ttl);
                    let f = &mut b[hlen..fh];
                    f[0] = u8::from(proto);
                    f[1] = 0;
                    let fo = (off as u16) | more as u16;
                    f[2..4].copy_from_slice(&fo.to_be_bytes());
                    f[4..8].copy_from_slice(&id.to_be_bytes());
                    b[fh..].copy_from_slice(&payload[off..off + len]);
                    self.stats.tx_fragments += 1;
                    self.transmit(out, b);
                }
            }
            _ => {}
        }
    }
}

/// Whether a raw socket of family `v6` may send a `len`-byte ICMP message to `to`
/// (`InvalidInput` otherwise, as std for a bad address or an oversized datagram).
pub fn check_raw_send(v6: bool, to: IpAddr, len: usize) -> io::Result<()> {
    let bad = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_string()));
    // The IPv4 total length and the IPv6 payload length are 16 bits (no jumbograms).
    let max = if v6 { 65_535 } else { 65_535 - wire::IPV4_HEADER_LEN };
    if to.is_ipv6() != v6 {
        bad("address family mismatch")
    } else if to.is_unspecified() {
        bad("unspecified destination")
    } else if len < wire::ICMP_HEADER_LEN {
        bad("an ICMP message has an 8-byte header")
    } else if len > max {
        bad("message too long")
    } else {
        Ok(())
    }
}

/// Write a UDP header + payload into `b` (exactly `8 + data.len()` bytes) with its checksum.
fn write_udp(b: &mut [u8], src: IpAddr, dst: IpAddr, sport: u16, dport: u16, data: &[u8]) {
    let ulen = b.len() as u16;
    b[0..2].copy_from_slice(&sport.to_be_bytes());
    b[2..4].copy_from_slice(&dport.to_be_bytes());
    b[4..6].copy_from_slice(&ulen.to_be_bytes());
    b[6..8].copy_from_slice(&[0, 0]);
    b[8..].copy_from_slice(data);
    let mut c = wire::transport_checksum(src, dst, IpProtocol::Udp, b);
    if c == 0 {
        c = 0xffff; // RFC 768: a computed zero is sent as all ones
    }
    b[6..8].copy_from_slice(&c.to_be_bytes());
}

/// The hop-by-hop, destination-options or routing header (`kind`) at `buf[off..]`: its
/// next header and length. `Err(Some(pointer))`: drop, with a parameter problem pointing at
/// byte `pointer` of `buf` (RFC 8200 §4.2: the option's type); `Err(None)`: drop silently.
fn option_header(buf: &[u8], off: usize, kind: u8, first: bool) -> Result<(u8, usize), Option<usize>> {
    // RFC 8200 §4.3: hop-by-hop options only directly after the IPv6 header.
    let misplaced = kind == ext::HOP_BY_HOP && !first;
    let header = buf.get(off..off + 2).map(|h| (h[0], (h[1] as usize + 1) * 8));
    // The length is at least 8, so a routing header's segments-left byte is inside.
    let Some((nh, hlen)) = header.filter(|&(_, l)| !misplaced && off + l <= buf.len()) else {
        return Err(None);
    };
    if kind == ext::ROUTING {
        // We are a host: a routing header with segments left asks us to forward, which we
        // do not (RFC 8200 §4.4 allows discarding).
        if buf[off + 3] != 0 {
            return Err(None);
        }
    } else {
        check_options(&buf[off + 2..off + hlen]).map_err(|ptr| ptr.map(|p| off + 2 + p))?;
    }
    Ok((nh, hlen))
}

/// Check the TLV options of a hop-by-hop or destination options header (RFC 8200 §4.2).
/// `Err(Some(offset))` asks for a parameter problem pointing at the option; `Err(None)`
/// discards silently.
fn check_options(opts: &[u8]) -> Result<(), Option<usize>> {
    let mut i = 0;
    while i < opts.len() {
        let t = opts[i];
        if t == 0 {
            i += 1; // Pad1
            continue;
        }
        let Some(&len) = opts.get(i + 1) else { return Err(None) };
        let next = i + 2 + len as usize;
        if next > opts.len() {
            return Err(None);
        }
        if t != 1 {
            // Unknown option: the two high bits say what to do.
            match t >> 6 {
                0 => {}
                1 => return Err(None),
                _ => return Err(Some(i)),
            }
        }
        i = next;
    }
    Ok(())
}

/// Parse the IP header quoted in an ICMP error: (src, dst, protocol, transport bytes).
fn parse_quoted(q: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    match q.first()? >> 4 {
        4 => {
            let ihl = ((q[0] & 0x0f) as usize) * 4;
            if ihl < 20 || q.len() < ihl {
                return None;
            }
            let src = Ipv4Addr::new(q[12], q[13], q[14], q[15]);
            let dst = Ipv4Addr::new(q[16], q[17], q[18], q[19]);
            Some((IpAddr::V4(src), IpAddr::V4(dst), q[9], &q[ihl..]))
        }
        6 => {
            if q.len() < 40 {
                return None;
            }
            let src: [u8; 16] = q[8..24].try_into().ok()?;
            let dst: [u8; 16] = q[24..40].try_into().ok()?;
            let mut nh = q[6];
            let mut off = 40;
            // Skip extension headers in the quote.
            while matches!(nh, ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTS | ext::FRAGMENT) {
                let h = q.get(off..off + 2)?;
                let len = if nh == ext::FRAGMENT { 8 } else { (h[1] as usize + 1) * 8 };
                nh = h[0];
                off += len;
            }
            Some((IpAddr::V6(src.into()), IpAddr::V6(dst.into()), nh, q.get(off..)?))
        }
        _ => None,
    }
}

/// How long the ip actor may sleep before reassembly needs attention.
pub fn idle_timeout(core: &IpCore, now: Instant) -> Option<Duration> {
    core.next_deadline().map(|d| d.saturating_duration_since(now))
}

#[cfg(test)]
mod tests;
