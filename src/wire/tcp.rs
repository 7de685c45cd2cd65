//! TCP wire format: header + options parsing and emission (RFC 9293 §3.1).
//!
//! A high-level `TcpRepr` in the style of smoltcp. Parsing never panics on any input:
//! every access to packet bytes is bounds checked. Options are parsed leniently
//! (RFC 9293 M-4..M-7, M-64): unknown kinds are skipped by their length, garbage
//! lengths (0, 1, overrunning the header) end option parsing without failing the segment.
//! When emitting, options are padded to a 4-byte boundary with zeros (EOL, M-69).

use std::net::IpAddr;

/// TCP header flags (the window field and all flags are unsigned / plain bits, M-1).
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFlags {
    pub fin: bool,
    pub syn: bool,
    pub rst: bool,
    pub psh: bool,
    pub ack: bool,
    pub urg: bool,
    pub ece: bool,
    pub cwr: bool,
}

impl TcpFlags {
    fn to_byte(self) -> u8 {
        (self.fin as u8)
            | (self.syn as u8) << 1
            | (self.rst as u8) << 2
            | (self.psh as u8) << 3
            | (self.ack as u8) << 4
            | (self.urg as u8) << 5
            | (self.ece as u8) << 6
            | (self.cwr as u8) << 7
    }
    fn from_byte(b: u8) -> Self {
        TcpFlags {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
            psh: b & 0x08 != 0,
            ack: b & 0x10 != 0,
            urg: b & 0x20 != 0,
            ece: b & 0x40 != 0,
            cwr: b & 0x80 != 0,
        }
    }
}

/// The TCP options this stack understands.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (RFC 9293 §3.7.1), kind 2.
    pub mss: Option<u16>,
    /// Window scale shift (RFC 7323 §2), kind 3. Stored as received (not capped here).
    pub window_scale: Option<u8>,
    /// SACK permitted (RFC 2018 §2), kind 4.
    pub sack_permitted: bool,
    /// SACK blocks `(left, right)` (RFC 2018 §3), kind 5. First block is the most recent.
    pub sack_blocks: [Option<(u32, u32)>; 4],
    /// Timestamps `(tsval, tsecr)` (RFC 7323 §3), kind 8.
    pub timestamps: Option<(u32, u32)>,
}

/// A parsed (or to-be-emitted) TCP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
}

/// Why a segment could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpError {
    /// Shorter than the fixed 20-byte header.
    Truncated,
    /// Data offset below 5 words or beyond the segment.
    BadHeaderLen,
    /// One's-complement checksum over pseudo-header + segment did not verify (M-2, M-3).
    BadChecksum,
}

impl std::fmt::Display for TcpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for TcpError {}

/// Minimum TCP header length.
pub const HEADER_LEN: usize = 20;
/// Maximum option bytes (data offset is 4 bits: 60 - 20).
pub const MAX_OPTIONS_LEN: usize = 40;

const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WS: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_SACK: u8 = 5;
const OPT_TS: u8 = 8;

/// IP protocol number of TCP.
const PROTO_TCP: u8 = 6;

// ---------------------------------------------------------------------------------------
// Checksum (RFC 1071 one's-complement sum)
// ---------------------------------------------------------------------------------------

/// RFC 1071 one's-complement sum of `data` as 16-bit big-endian words (odd byte padded
/// with zero), added into `acc` (not folded); see [`super::ones_sum`].
fn sum_words(acc: u64, data: &[u8]) -> u64 {
    acc + super::ones_sum(data) as u64
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Pseudo-header sum for TCP (RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for IPv6).
/// Mixed families are treated as IPv6 (IPv4-mapped), which never happens on a real path.
fn pseudo_header_sum(src: IpAddr, dst: IpAddr, len: usize) -> u64 {
    // The addresses' 16-bit big-endian words, added as numbers (this runs for every segment).
    let v4 = |a: std::net::Ipv4Addr| {
        let a = u32::from(a);
        u64::from(a >> 16) + u64::from(a & 0xffff)
    };
    let v6 = |a: IpAddr| {
        let a = match a {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        a.segments().iter().map(|&w| u64::from(w)).sum::<u64>()
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => v4(s) + v4(d) + PROTO_TCP as u64 + (len as u64 & 0xffff),
        _ => v6(src) + v6(dst) + PROTO_TCP as u64 + (len as u64 & 0xffff_ffff),
    }
}

/// The value to put in the checksum field of `segment` (with its checksum field zero).
pub fn checksum(segment: &[u8], src: IpAddr, dst: IpAddr) -> u16 {
    let acc = sum_words(pseudo_header_sum(src, dst, segment.len()), segment);
    !fold(acc)
}

/// True when `segment` (with its checksum field as received) verifies.
pub fn verify_checksum(segment: &[u8], src: IpAddr, dst: IpAddr) -> bool {
    let acc = sum_words(pseudo_header_sum(src, dst, segment.len()), segment);
    fold(acc) == 0xffff
}

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

/// Parse the options area. Never fails: garbage ends parsing (M-7).
fn parse_options(mut opts: &[u8]) -> TcpOptions {
    let mut out = TcpOptions::default();
    while let Some(&kind) = opts.first() {
        match kind {
            OPT_EOL => break,
            OPT_NOP => {
                opts = &opts[1..];
                continue;
            }
            _ => {}
        }
        let len = match opts.get(1) {
            Some(&l) => l as usize,
            None => break,
        };
        if len < 2 || len > opts.len() {
            // Illegal length (0, 1 or overrunning): stop, keep what we have (M-7).
            break;
        }
        let body = &opts[2..len];
        match (kind, body.len()) {
            (OPT_MSS, 2) => out.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            (OPT_WS, 1) => out.window_scale = Some(body[0]),
            (OPT_SACK_PERM, 0) => out.sack_permitted = true,
            (OPT_SACK, n) if n % 8 == 0 && n > 0 => {
                for (i, blk) in body.chunks_exact(8).take(4).enumerate() {
                    let l = u32::from_be_bytes([blk[0], blk[1], blk[2], blk[3]]);
                    let r = u32::from_be_bytes([blk[4], blk[5], blk[6], blk[7]]);
                    out.sack_blocks[i] = Some((l, r));
                }
            }
            (OPT_TS, 8) => {
                let v = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let e = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                out.timestamps = Some((v, e));
            }
            // Unknown kinds, or known kinds with a wrong length: skipped by length (M-6).
            _ => {}
        }
        opts = &opts[len..];
    }
    out
}

/// Write options into `buf`, returning the unpadded length. The layout is the common
/// Linux one (MSS, SACK-permitted+timestamps, NOP+window scale, NOP NOP+SACK blocks).
/// SACK blocks that would overflow the 40-byte option space are left out.
fn write_options(o: &TcpOptions, buf: &mut [u8; MAX_OPTIONS_LEN]) -> usize {
    let mut n = 0;
    if let Some(mss) = o.mss {
        buf[n] = OPT_MSS;
        buf[n + 1] = 4;
        buf[n + 2..n + 4].copy_from_slice(&mss.to_be_bytes());
        n += 4;
    }
    match (o.sack_permitted, o.timestamps) {
        (true, Some(_)) => {
            buf[n] = OPT_SACK_PERM;
            buf[n + 1] = 2;
            n += 2;
        }
        (true, None) => {
            buf[n] = OPT_NOP;
            buf[n + 1] = OPT_NOP;
            buf[n + 2] = OPT_SACK_PERM;
            buf[n + 3] = 2;
            n += 4;
        }
        (false, Some(_)) => {
            buf[n] = OPT_NOP;
            buf[n + 1] = OPT_NOP;
            n += 2;
        }
        (false, None) => {}
    }
    if let Some((v, e)) = o.timestamps {
        buf[n] = OPT_TS;
        buf[n + 1] = 10;
        buf[n + 2..n + 6].copy_from_slice(&v.to_be_bytes());
        buf[n + 6..n + 10].copy_from_slice(&e.to_be_bytes());
        n += 10;
    }
    if let Some(ws) = o.window_scale {
        buf[n] = OPT_NOP;
        buf[n + 1] = OPT_WS;
        buf[n + 2] = 3;
        buf[n + 3] = ws;
        n += 4;
    }
    let nblocks = o.sack_blocks.iter().take_while(|b| b.is_some()).count();
    // NOP NOP kind len + 8 per block must fit.
    let room = MAX_OPTIONS_LEN.saturating_sub(n);
    let fit = if room >= 4 { ((room - 4) / 8).min(nblocks) } else { 0 };
    if fit > 0 {
        buf[n] = OPT_NOP;
        buf[n + 1] = OPT_NOP;
        buf[n + 2] = OPT_SACK;
        buf[n + 3] = (2 + 8 * fit) as u8;
        n += 4;
        for (l, r) in o.sack_blocks.iter().take(fit).flatten() {
            buf[n..n + 4].copy_from_slice(&l.to_be_bytes());
            buf[n + 4..n + 8].copy_from_slice(&r.to_be_bytes());
            n += 8;
        }
    }
    n
}

impl TcpOptions {
    /// Length in bytes the options take when emitted, padded to 4.
    pub fn emitted_len(&self) -> usize {
        let mut scratch = [0u8; MAX_OPTIONS_LEN];
        let n = write_options(self, &mut scratch);
        (n + 3) & !3
    }
}

// ---------------------------------------------------------------------------------------
// Repr
// ---------------------------------------------------------------------------------------

impl TcpRepr {
    /// Parse `segment` (TCP header + payload, no IP header). Verifies the checksum with the
    /// v4/v6 pseudo-header from src/dst. Returns the repr and the payload offset.
    pub fn parse(segment: &[u8], src: IpAddr, dst: IpAddr) -> Result<(TcpRepr, usize), TcpError> {
        Self::parse_inner(segment, Some((src, dst)))
    }

    /// As [`TcpRepr::parse`], without checking the checksum: for segments whose checksum the
    /// device has vouched for (an offloading TUN device's partial or verified checksums).
    pub fn parse_trusted(segment: &[u8]) -> Result<(TcpRepr, usize), TcpError> {
        Self::parse_inner(segment, None)
    }

    fn parse_inner(segment: &[u8], check: Option<(IpAddr, IpAddr)>) -> Result<(TcpRepr, usize), TcpError> {
        if segment.len() < HEADER_LEN {
            return Err(TcpError::Truncated);
        }
        let hlen = ((segment[12] >> 4) as usize) * 4;
        if hlen < HEADER_LEN || hlen > segment.len() {
            return Err(TcpError::BadHeaderLen);
        }
        if check.is_some_and(|(src, dst)| !verify_checksum(segment, src, dst)) {
            return Err(TcpError::BadChecksum);
        }
        let be16 = |i: usize| u16::from_be_bytes([segment[i], segment[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([segment[i], segment[i + 1], segment[i + 2], segment[i + 3]]);
        let repr = TcpRepr {
            src_port: be16(0),
            dst_port: be16(2),
            seq: be32(4),
            ack: be32(8),
            flags: TcpFlags::from_byte(segment[13]),
            window: be16(14),
            urgent: be16(18),
            options: parse_options(&segment[HEADER_LEN..hlen]),
        };
        Ok((repr, hlen))
    }

    /// Header length in bytes including options, padded to 4 (zeros after EOL, M-69).
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.emitted_len()
    }

    /// Sequence space consumed by a segment with this header and `payload_len` bytes.
    pub fn segment_len(&self, payload_len: usize) -> u32 {
        (payload_len as u32).wrapping_add(self.flags.syn as u32).wrapping_add(self.flags.fin as u32)
    }

    /// Write header + payload into `buf` and fill the checksum for src/dst.
    /// `buf.len()` must be `header_len() + payload.len()`; a too-short buffer is left
    /// untouched (never panics), extra bytes are not part of the segment.
    pub fn emit(&self, buf: &mut [u8], payload: &[u8], src: IpAddr, dst: IpAddr) {
        let mut opts = [0u8; MAX_OPTIONS_LEN];
        let olen = write_options(&self.options, &mut opts);
        let hlen = HEADER_LEN + ((olen + 3) & !3);
        let total = hlen + payload.len();
        let Some(buf) = buf.get_mut(..total) else {
            return;
        };
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..8].copy_from_slice(&self.seq.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ack.to_be_bytes());
        buf[12] = ((hlen / 4) as u8) << 4;
        buf[13] = self.flags.to_byte();
        buf[14..16].copy_from_slice(&self.window.to_be_bytes());
        buf[16..18].copy_from_slice(&[0, 0]);
        buf[18..20].copy_from_slice(&self.urgent.to_be_bytes());
        // Options followed by zero padding (EOL = 0), M-69.
        buf[HEADER_LEN..hlen].fill(0);
        buf[HEADER_LEN..HEADER_LEN + olen].copy_from_slice(&opts[..olen]);
        buf[hlen..].copy_from_slice(payload);
        let c = checksum(buf, src, dst);
        buf[16..18].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn v6(a: u16) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, a))
    }

    fn base() -> TcpRepr {
        TcpRepr {
            src_port: 1234,
            dst_port: 80,
            seq: 0x01020304,
            ack: 0x0a0b0c0d,
            flags: TcpFlags { ack: true, psh: true, ..Default::default() },
            window: 0xfffe,
            urgent: 0,
            options: TcpOptions::default(),
        }
    }

    /// A Linux-style SYN (10.0.0.1:41000 -> 10.0.0.2:80): MSS 1460, SACK-perm, TS, NOP,
    /// WS 7. The checksum is computed independently with the RFC 1071 reference loop.
    #[test]
    fn known_linux_syn_checksum() {
        let mut seg: Vec<u8> = vec![
            0xa0, 0x28, 0x00, 0x50, // ports 41000 -> 80
            0x12, 0x34, 0x56, 0x78, // seq
            0x00, 0x00, 0x00, 0x00, // ack
            0xa0, 0x02, 0xfa, 0xf0, // doff 10, SYN, window 64240
            0x00, 0x00, 0x00, 0x00, // checksum, urgent
            0x02, 0x04, 0x05, 0xb4, // MSS 1460
            0x04, 0x02, 0x08, 0x0a, // SACK-perm, TS
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // tsval 1, tsecr 0
            0x01, 0x03, 0x03, 0x07, // NOP, WS 7
        ];
        let mut sum: u32 = 0;
        for ip in [[10u8, 0, 0, 1], [10, 0, 0, 2]] {
            sum += u16::from_be_bytes([ip[0], ip[1]]) as u32 + u16::from_be_bytes([ip[2], ip[3]]) as u32;
        }
        sum += 6 + seg.len() as u32;
        for w in seg.chunks(2) {
            sum += u16::from_be_bytes([w[0], w[1]]) as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let expect = !(sum as u16);
        assert_eq!(checksum(&seg, A4, B4), expect);
        seg[16..18].copy_from_slice(&expect.to_be_bytes());
        let (r, off) = TcpRepr::parse(&seg, A4, B4).unwrap();
        assert_eq!(off, 40);
        assert_eq!(r.src_port, 41000);
        assert!(r.flags.syn && !r.flags.ack);
        assert_eq!(r.window, 64240);
        assert_eq!(r.options.mss, Some(1460));
        assert!(r.options.sack_permitted);
        assert_eq!(r.options.timestamps, Some((1, 0)));
        assert_eq!(r.options.window_scale, Some(7));
        // Our own emission of the same header is byte-identical.
        let mut out = vec![0u8; r.header_len()];
        r.emit(&mut out, &[], A4, B4);
        assert_eq!(out, seg);
        // Wrong pseudo-header -> bad checksum (M-2).
        assert_eq!(TcpRepr::parse(&seg, B4, A4).map(|_| ()), Ok(()), "swap keeps the sum");
        assert_eq!(TcpRepr::parse(&seg, A4, v6(1)).unwrap_err(), TcpError::BadChecksum);
        seg[30] ^= 1;
        assert_eq!(TcpRepr::parse(&seg, A4, B4).unwrap_err(), TcpError::BadChecksum);
    }

    /// Cross-check against smoltcp's independent implementation.
    #[test]
    fn checksum_matches_smoltcp() {
        use smoltcp::wire::{IpAddress, TcpPacket};
        let mut r = base();
        r.options.timestamps = Some((5, 6));
        let payload = b"cross-check payload, odd length!!";
        let mut buf = vec![0u8; r.header_len() + payload.len()];
        for (s, d) in [(A4, B4), (v6(1), v6(2))] {
            r.emit(&mut buf, payload, s, d);
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            let (ss, dd): (IpAddress, IpAddress) = (s.into(), d.into());
            assert!(p.verify_checksum(&ss, &dd));
        }
    }

    #[test]
    fn truncated_and_bad_header_len() {
        assert_eq!(TcpRepr::parse(&[0u8; 19], A4, B4).unwrap_err(), TcpError::Truncated);
        let mut h = [0u8; 20];
        h[12] = 4 << 4;
        assert_eq!(TcpRepr::parse(&h, A4, B4).unwrap_err(), TcpError::BadHeaderLen);
        h[12] = 6 << 4;
        assert_eq!(TcpRepr::parse(&h, A4, B4).unwrap_err(), TcpError::BadHeaderLen);
    }

    fn with_opts(opts: &[u8]) -> Vec<u8> {
        let hlen = 20 + opts.len();
        assert_eq!(hlen % 4, 0);
        let mut seg = vec![0u8; hlen + 3];
        seg[12] = ((hlen / 4) as u8) << 4;
        seg[13] = 0x10;
        seg[20..hlen].copy_from_slice(opts);
        seg[hlen..].copy_from_slice(b"abc");
        let c = checksum(&seg, A4, B4);
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        seg
    }

    #[test]
    fn options_garbage_lengths_survive() {
        // M-7: length 0, length 1, overrunning length: parse succeeds, earlier options kept.
        for bad in [[2u8, 4, 5, 0xb4, 9, 0, 0, 0], [2, 4, 5, 0xb4, 9, 1, 0, 0], [2, 4, 5, 0xb4, 9, 40, 0, 0]] {
            let seg = with_opts(&bad);
            let (r, off) = TcpRepr::parse(&seg, A4, B4).unwrap();
            assert_eq!(off, 28);
            assert_eq!(r.options.mss, Some(1460));
            assert_eq!(&seg[off..], b"abc");
        }
        // Option kind with no length byte.
        let seg = with_opts(&[1, 1, 1, 2]);
        assert!(TcpRepr::parse(&seg, A4, B4).unwrap().0.options.mss.is_none());
    }

    #[test]
    fn options_unknown_skipped_and_unaligned() {
        // M-6: unknown kind 99 of length 5, then an unaligned MSS (M-64), then TS unaligned.
        let opts = [99u8, 5, 1, 2, 3, 2, 4, 0x02, 0x18, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9, 0];
        let seg = with_opts(&opts);
        let (r, _) = TcpRepr::parse(&seg, A4, B4).unwrap();
        assert_eq!(r.options.mss, Some(536));
        assert_eq!(r.options.timestamps, Some((7, 9)));
        // MSS with a wrong length is skipped, not misread.
        let seg = with_opts(&[2, 3, 9, 1]);
        assert_eq!(TcpRepr::parse(&seg, A4, B4).unwrap().0.options.mss, None);
        // EOL stops parsing.
        let seg = with_opts(&[0, 2, 4, 5, 0xb4, 0, 0, 0]);
        assert_eq!(TcpRepr::parse(&seg, A4, B4).unwrap().0.options.mss, None);
    }

    #[test]
    fn sack_blocks_parse_and_limit() {
        let mut o = TcpOptions { timestamps: Some((1, 2)), ..Default::default() };
        o.sack_blocks = [Some((1, 2)), Some((3, 4)), Some((5, 6)), Some((7, 8))];
        // With timestamps only three blocks fit (12 + 4 + 24 = 40).
        let mut r = base();
        r.options = o;
        let hl = r.header_len();
        assert_eq!(hl, 60);
        let mut buf = vec![0u8; hl];
        r.emit(&mut buf, &[], A4, B4);
        let (p, _) = TcpRepr::parse(&buf, A4, B4).unwrap();
        assert_eq!(p.options.sack_blocks, [Some((1, 2)), Some((3, 4)), Some((5, 6)), None]);
        r.options.timestamps = None;
        let mut buf = vec![0u8; r.header_len()];
        r.emit(&mut buf, &[], A4, B4);
        let (p, _) = TcpRepr::parse(&buf, A4, B4).unwrap();
        assert_eq!(p.options.sack_blocks, o.sack_blocks);
    }

    #[test]
    fn padding_is_zero_and_v6_roundtrip() {
        let mut r = base();
        r.options.window_scale = Some(14);
        r.options.mss = Some(1440);
        let hl = r.header_len();
        assert_eq!(hl % 4, 0);
        let mut buf = vec![0xffu8; hl + 5];
        r.emit(&mut buf, b"hello", v6(1), v6(2));
        let (p, off) = TcpRepr::parse(&buf, v6(1), v6(2)).unwrap();
        assert_eq!(p, r);
        assert_eq!(&buf[off..], b"hello");
        assert!(TcpRepr::parse(&buf, v6(1), v6(3)).is_err());
        // A lone SACK-permitted without TS is padded with NOPs; a lone WS ends in zeros.
        let mut r2 = base();
        r2.options.sack_permitted = true;
        let mut b2 = vec![0xffu8; r2.header_len()];
        r2.emit(&mut b2, &[], A4, B4);
        assert_eq!(&b2[20..], &[1, 1, 4, 2]);
        let mut r3 = base();
        r3.options.timestamps = Some((1, 1));
        r3.options.sack_permitted = true;
        // SACK-perm(2) + TS(10) = 12: no padding needed; with MSS only: 4.
        assert_eq!(r3.header_len(), 32);
        let mut r4 = base();
        r4.options.sack_blocks[0] = Some((1, 2));
        r4.options.timestamps = Some((1, 1));
        // NOP NOP TS(12) + NOP NOP SACK(4+8) = 24.
        assert_eq!(r4.header_len(), 44);
    }

    #[test]
    fn emit_into_short_buffer_does_not_panic() {
        let r = base();
        let mut buf = vec![0u8; 10];
        r.emit(&mut buf, b"payload", A4, B4);
        assert_eq!(buf, vec![0u8; 10]);
    }

    #[test]
    fn window_is_unsigned() {
        let mut r = base();
        r.window = 0xffff;
        let mut buf = vec![0u8; r.header_len()];
        r.emit(&mut buf, &[], A4, B4);
        assert_eq!(TcpRepr::parse(&buf, A4, B4).unwrap().0.window, 0xffff);
    }

    fn arb_flags() -> impl Strategy<Value = TcpFlags> {
        any::<u8>().prop_map(TcpFlags::from_byte)
    }

    fn arb_opts() -> impl Strategy<Value = TcpOptions> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            proptest::option::of((any::<u32>(), any::<u32>())),
            proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=4),
        )
            .prop_map(|(mss, ws, sp, ts, blocks)| {
                let mut o =
                    TcpOptions { mss, window_scale: ws, sack_permitted: sp, timestamps: ts, ..Default::default() };
                for (i, b) in blocks.into_iter().enumerate() {
                    o.sack_blocks[i] = Some(b);
                }
                o
            })
    }

    fn emitted_len_without_sack(o: &TcpOptions) -> usize {
        let mut o = *o;
        o.sack_blocks = [None; 4];
        let mut scratch = [0u8; MAX_OPTIONS_LEN];
        write_options(&o, &mut scratch)
    }

    proptest! {
        #[test]
        fn emit_parse_roundtrip(sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(),
                                flags in arb_flags(), window in any::<u16>(), urgent in any::<u16>(),
                                options in arb_opts(), payload in proptest::collection::vec(any::<u8>(), 0..64),
                                v4 in any::<bool>()) {
            let r = TcpRepr { src_port: sp, dst_port: dp, seq, ack, flags, window, urgent, options };
            let (s, d) = if v4 { (A4, B4) } else { (v6(7), v6(9)) };
            let mut buf = vec![0u8; r.header_len() + payload.len()];
            r.emit(&mut buf, &payload, s, d);
            let (p, off) = TcpRepr::parse(&buf, s, d).unwrap();
            prop_assert_eq!(&buf[off..], &payload[..]);
            // SACK blocks that did not fit are dropped; everything else round-trips.
            let mut expect = r;
            let room = 40 - emitted_len_without_sack(&r.options);
            let fit = if room >= 4 { (room - 4) / 8 } else { 0 };
            for (i, b) in expect.options.sack_blocks.iter_mut().enumerate() { if i >= fit { *b = None; } }
            prop_assert_eq!(p, expect);
        }

        #[test]
        fn fast_sum_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut naive: u64 = 0;
            for w in data.chunks(2) {
                naive += (u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])) as u64;
            }
            prop_assert_eq!(fold(sum_words(0, &data)), fold(naive));
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = TcpRepr::parse(&data, A4, B4);
            let _ = parse_options(&data);
        }
    }
}
