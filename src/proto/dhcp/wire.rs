//! BOOTP/DHCPv4 messages (RFC 2131 §2, RFC 2132): a zero-copy view over the bytes
//! ([`DhcpPacket`]) and the fields this client reads and writes ([`DhcpRepr`]).
//!
//! Invariants: parsing never panics and never allocates (every read is bounds-checked; the
//! options walk stops at the buffer's end, at END, or at the first option whose length runs
//! past the end, which is an error); [`DhcpRepr::emit`] writes exactly
//! [`DhcpRepr::buffer_len`] bytes, at least the 300-octet BOOTP minimum (RFC 1542 §2.1).
//! Options carried in `sname`/`file` (option overload, RFC 2132 §9.3) are not read.

use std::net::Ipv4Addr;

/// RFC 2131 §2: the fixed header up to and including `file` is 236 octets, then the magic
/// cookie (RFC 2131 §3, 99.130.83.99) and the options.
pub const HEADER_LEN: usize = 236;
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
pub const OPTIONS_OFFSET: usize = HEADER_LEN + 4;
/// RFC 1542 §2.1: a BOOTP message is at least 300 octets (the vendor area padded to 64).
pub const MIN_MESSAGE_LEN: usize = 300;
/// RFC 2131 §4.1: the client's and the server's UDP ports.
pub const CLIENT_PORT: u16 = 68;
pub const SERVER_PORT: u16 = 67;
/// RFC 2131 §2 `flags`: the BROADCAST bit.
pub const FLAG_BROADCAST: u16 = 0x8000;
/// RFC 951: `op` values.
pub const OP_BOOTREQUEST: u8 = 1;
pub const OP_BOOTREPLY: u8 = 2;
/// RFC 1700 (ARP hardware types): Ethernet, 6-octet addresses.
pub const HTYPE_ETHERNET: u8 = 1;
pub const HLEN_ETHERNET: u8 = 6;
/// DNS servers kept from option 6 (more are ignored): more than a resolver uses, so that
/// the client can pass over unusable ones and still keep its own few (`client::LEASE_DNS`).
pub const MAX_DNS_SERVERS: usize = 8;

/// RFC 2132 option codes.
pub mod opt {
    pub const PAD: u8 = 0; // §3.1
    pub const SUBNET_MASK: u8 = 1; // §3.3
    pub const ROUTER: u8 = 3; // §3.5
    pub const DNS_SERVER: u8 = 6; // §3.8
    pub const HOST_NAME: u8 = 12; // §3.14
    pub const REQUESTED_IP: u8 = 50; // §9.1
    pub const LEASE_TIME: u8 = 51; // §9.2
    pub const MESSAGE_TYPE: u8 = 53; // §9.6
    pub const SERVER_ID: u8 = 54; // §9.7
    pub const PARAMETER_LIST: u8 = 55; // §9.8
    pub const RENEWAL_TIME: u8 = 58; // §9.11 (T1)
    pub const REBINDING_TIME: u8 = 59; // §9.12 (T2)
    pub const CLIENT_ID: u8 = 61; // §9.14
    pub const END: u8 = 255; // §3.2
}

/// RFC 2132 §9.6: DHCP message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    pub fn from_u8(v: u8) -> Option<MessageType> {
        use MessageType::*;
        Some(match v {
            1 => Discover,
            2 => Offer,
            3 => Request,
            4 => Decline,
            5 => Ack,
            6 => Nak,
            7 => Release,
            8 => Inform,
            _ => return None,
        })
    }

    pub fn to_u8(self) -> u8 {
        use MessageType::*;
        match self {
            Discover => 1,
            Offer => 2,
            Request => 3,
            Decline => 4,
            Ack => 5,
            Nak => 6,
            Release => 7,
            Inform => 8,
        }
    }

    /// Messages a client sends are BOOTREQUESTs, a server's BOOTREPLYs (RFC 2131 §3).
    fn op(self) -> u8 {
        match self {
            MessageType::Offer | MessageType::Ack | MessageType::Nak => OP_BOOTREPLY,
            _ => OP_BOOTREQUEST,
        }
    }
}

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the header and cookie, or an option running past the end.
    Truncated,
    /// The magic cookie is not 99.130.83.99.
    BadCookie,
    /// Not Ethernet (htype 1, hlen 6).
    BadHardware,
    /// No option 53, or an unknown message type, or one that does not match `op`.
    BadMessageType,
    /// A known option with a length its definition forbids.
    BadOption(u8),
}

/// A read-only or writable view of a DHCP message (smoltcp style: `new_checked` verifies
/// only what the accessors need).
#[derive(Debug)]
pub struct DhcpPacket<T: AsRef<[u8]>> {
    buf: T,
}

fn addr_at(b: &[u8], off: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[off], b[off + 1], b[off + 2], b[off + 3])
}

impl<T: AsRef<[u8]>> DhcpPacket<T> {
    pub fn new_unchecked(buf: T) -> DhcpPacket<T> {
        DhcpPacket { buf }
    }

    /// A view, if `buf` holds at least the fixed header and the magic cookie.
    pub fn new_checked(buf: T) -> Result<DhcpPacket<T>, WireError> {
        if buf.as_ref().len() < OPTIONS_OFFSET {
            return Err(WireError::Truncated);
        }
        Ok(DhcpPacket { buf })
    }

    pub fn op(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    pub fn htype(&self) -> u8 {
        self.buf.as_ref()[1]
    }
    pub fn hlen(&self) -> u8 {
        self.buf.as_ref()[2]
    }
    pub fn xid(&self) -> u32 {
        let b = self.buf.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }
    pub fn secs(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[8], b[9]])
    }
    pub fn flags(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[10], b[11]])
    }
    pub fn ciaddr(&self) -> Ipv4Addr {
        addr_at(self.buf.as_ref(), 12)
    }
    pub fn yiaddr(&self) -> Ipv4Addr {
        addr_at(self.buf.as_ref(), 16)
    }
    pub fn siaddr(&self) -> Ipv4Addr {
        addr_at(self.buf.as_ref(), 20)
    }
    pub fn giaddr(&self) -> Ipv4Addr {
        addr_at(self.buf.as_ref(), 24)
    }
    /// The first six octets of `chaddr` (an Ethernet address).
    pub fn chaddr(&self) -> [u8; 6] {
        let b = self.buf.as_ref();
        [b[28], b[29], b[30], b[31], b[32], b[33]]
    }
    pub fn cookie(&self) -> [u8; 4] {
        let b = self.buf.as_ref();
        [b[236], b[237], b[238], b[239]]
    }

    /// The options, in order: `Ok((code, data))`, or one `Err(Truncated)` where an option
    /// runs past the end (the walk stops there). PAD is skipped; END or the buffer's end
    /// ends the walk.
    pub fn options(&self) -> Options<'_> {
        Options { rest: &self.buf.as_ref()[OPTIONS_OFFSET..] }
    }
}

/// Iterator over the options of a [`DhcpPacket`].
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u8, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&code, tail) = self.rest.split_first()?;
            match code {
                opt::PAD => self.rest = tail,
                opt::END => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let Some((&len, tail)) = tail.split_first() else {
                        self.rest = &[];
                        return Some(Err(WireError::Truncated));
                    };
                    let len = len as usize;
                    if len > tail.len() {
                        self.rest = &[];
                        return Some(Err(WireError::Truncated));
                    }
                    self.rest = &tail[len..];
                    return Some(Ok((code, &tail[..len])));
                }
            }
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DhcpPacket<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }
}

/// The fields of a DHCP message this client uses. Borrowed parts point into the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpRepr<'a> {
    pub message_type: MessageType,
    pub xid: u32,
    pub secs: u16,
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub subnet_mask: Option<Ipv4Addr>,
    /// The first router of option 3.
    pub router: Option<Ipv4Addr>,
    /// Option 6, at most [`MAX_DNS_SERVERS`] (unused slots `None`, filled in order).
    pub dns_servers: [Option<Ipv4Addr>; MAX_DNS_SERVERS],
    pub lease_time: Option<u32>,
    pub renewal_time: Option<u32>,
    pub rebinding_time: Option<u32>,
    pub server_id: Option<Ipv4Addr>,
    pub requested_ip: Option<Ipv4Addr>,
    pub client_id: Option<&'a [u8]>,
    pub host_name: Option<&'a [u8]>,
    pub parameter_list: Option<&'a [u8]>,
}

impl<'a> DhcpRepr<'a> {
    /// A message of `message_type` with every other field empty.
    pub fn new(message_type: MessageType, xid: u32, chaddr: [u8; 6]) -> DhcpRepr<'a> {
        let z = Ipv4Addr::UNSPECIFIED;
        DhcpRepr {
            message_type,
            xid,
            secs: 0,
            broadcast: false,
            ciaddr: z,
            yiaddr: z,
            siaddr: z,
            giaddr: z,
            chaddr,
            subnet_mask: None,
            router: None,
            dns_servers: [None; MAX_DNS_SERVERS],
            lease_time: None,
            renewal_time: None,
            rebinding_time: None,
            server_id: None,
            requested_ip: None,
            client_id: None,
            host_name: None,
            parameter_list: None,
        }
    }

    /// The DNS servers given, in order.
    pub fn dns(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.dns_servers.iter().flatten().copied()
    }

    /// Parse a message. Unknown options are skipped; a known option with a bad length is an
    /// error; when an option repeats, the first one counts (RFC 3396 concatenation is not
    /// done: none of the options read here may be that long).
    pub fn parse(bytes: &'a [u8]) -> Result<DhcpRepr<'a>, WireError> {
        let p = DhcpPacket::new_checked(bytes)?;
        if p.cookie() != MAGIC_COOKIE {
            return Err(WireError::BadCookie);
        }
        if p.htype() != HTYPE_ETHERNET || p.hlen() != HLEN_ETHERNET {
            return Err(WireError::BadHardware);
        }
        let mut r = DhcpRepr::new(MessageType::Discover, p.xid(), p.chaddr());
        r.secs = p.secs();
        r.broadcast = p.flags() & FLAG_BROADCAST != 0;
        (r.ciaddr, r.yiaddr, r.siaddr, r.giaddr) = (p.ciaddr(), p.yiaddr(), p.siaddr(), p.giaddr());
        let mut mtype = None;
        for o in (Options { rest: &bytes[OPTIONS_OFFSET..] }) {
            let (code, data) = o?;
            r.option(code, data, &mut mtype)?;
        }
        let mtype = mtype.ok_or(WireError::BadMessageType)?;
        if mtype.op() != p.op() {
            return Err(WireError::BadMessageType);
        }
        r.message_type = mtype;
        Ok(r)
    }

    /// Take one option into `self` (the first occurrence of each wins).
    fn option(&mut self, code: u8, data: &'a [u8], mtype: &mut Option<MessageType>) -> Result<(), WireError> {
        let bad = || WireError::BadOption(code);
        let addr = || -> Result<Ipv4Addr, WireError> {
            let a: [u8; 4] = data.try_into().map_err(|_| bad())?;
            Ok(a.into())
        };
        let secs = || -> Result<u32, WireError> { Ok(u32::from_be_bytes(data.try_into().map_err(|_| bad())?)) };
        match code {
            opt::MESSAGE_TYPE if mtype.is_none() => {
                let [t] = data else { return Err(bad()) };
                *mtype = Some(MessageType::from_u8(*t).ok_or(WireError::BadMessageType)?);
            }
            opt::SUBNET_MASK if self.subnet_mask.is_none() => self.subnet_mask = Some(addr()?),
            opt::SERVER_ID if self.server_id.is_none() => self.server_id = Some(addr()?),
            opt::REQUESTED_IP if self.requested_ip.is_none() => self.requested_ip = Some(addr()?),
            opt::LEASE_TIME if self.lease_time.is_none() => self.lease_time = Some(secs()?),
            opt::RENEWAL_TIME if self.renewal_time.is_none() => self.renewal_time = Some(secs()?),
            opt::REBINDING_TIME if self.rebinding_time.is_none() => self.rebinding_time = Some(secs()?),
            // RFC 2132 §3.5 / §3.8: one or more addresses, length a multiple of 4.
            opt::ROUTER | opt::DNS_SERVER => {
                if data.is_empty() || !data.len().is_multiple_of(4) {
                    return Err(bad());
                }
                let mut addrs = data.chunks_exact(4).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]));
                if code == opt::ROUTER && self.router.is_none() {
                    self.router = addrs.next();
                } else if code == opt::DNS_SERVER && self.dns_servers[0].is_none() {
                    for (slot, a) in self.dns_servers.iter_mut().zip(addrs) {
                        *slot = Some(a);
                    }
                }
            }
            // RFC 2132 §9.14, §3.14, §9.8: at least 2, 1 and 1 octets.
            opt::CLIENT_ID if self.client_id.is_none() && data.len() >= 2 => self.client_id = Some(data),
            opt::HOST_NAME if self.host_name.is_none() && !data.is_empty() => self.host_name = Some(data),
            opt::PARAMETER_LIST if self.parameter_list.is_none() && !data.is_empty() => {
                self.parameter_list = Some(data)
            }
            opt::CLIENT_ID | opt::HOST_NAME | opt::PARAMETER_LIST if data.is_empty() => return Err(bad()),
            _ => {} // unknown, or a repeat
        }
        Ok(())
    }

    /// The options this message carries, as (code, bytes) in the order they are emitted.
    fn emit_options(&self, mut put: impl FnMut(u8, &[u8])) {
        put(opt::MESSAGE_TYPE, &[self.message_type.to_u8()]);
        let a = |x: Option<Ipv4Addr>| x.map(|a| a.octets());
        if let Some(v) = a(self.server_id) {
            put(opt::SERVER_ID, &v);
        }
        if let Some(v) = a(self.requested_ip) {
            put(opt::REQUESTED_IP, &v);
        }
        if let Some(v) = self.client_id {
            put(opt::CLIENT_ID, v);
        }
        if let Some(v) = self.host_name {
            put(opt::HOST_NAME, v);
        }
        if let Some(v) = self.parameter_list {
            put(opt::PARAMETER_LIST, v);
        }
        if let Some(v) = a(self.subnet_mask) {
            put(opt::SUBNET_MASK, &v);
        }
        if let Some(v) = a(self.router) {
            put(opt::ROUTER, &v);
        }
        let mut dns = [0u8; 4 * MAX_DNS_SERVERS];
        let n = self.dns().zip(dns.chunks_exact_mut(4)).map(|(a, c)| c.copy_from_slice(&a.octets())).count();
        if n > 0 {
            put(opt::DNS_SERVER, &dns[..4 * n]);
        }
        for (code, v) in [
            (opt::LEASE_TIME, self.lease_time),
            (opt::RENEWAL_TIME, self.renewal_time),
            (opt::REBINDING_TIME, self.rebinding_time),
        ] {
            if let Some(v) = v {
                put(code, &v.to_be_bytes());
            }
        }
    }

    /// Bytes [`Self::emit`] writes: header, cookie, options, END, padded to the minimum.
    /// Options longer than 255 octets are cut to 255 (the variable ones come from the caller).
    pub fn buffer_len(&self) -> usize {
        let mut n = OPTIONS_OFFSET + 1;
        self.emit_options(|_, v| n += 2 + v.len().min(255));
        n.max(MIN_MESSAGE_LEN)
    }

    /// Write the message into `p`, whose buffer must be [`Self::buffer_len`] bytes (longer:
    /// the rest is zeroed; shorter: `Err(Truncated)`).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut DhcpPacket<T>) -> Result<(), WireError> {
        let need = self.buffer_len();
        let b = p.bytes_mut();
        if b.len() < need {
            return Err(WireError::Truncated);
        }
        b.fill(0);
        b[0] = self.message_type.op();
        b[1] = HTYPE_ETHERNET;
        b[2] = HLEN_ETHERNET;
        b[4..8].copy_from_slice(&self.xid.to_be_bytes());
        b[8..10].copy_from_slice(&self.secs.to_be_bytes());
        let flags = if self.broadcast { FLAG_BROADCAST } else { 0 };
        b[10..12].copy_from_slice(&flags.to_be_bytes());
        for (off, a) in [(12, self.ciaddr), (16, self.yiaddr), (20, self.siaddr), (24, self.giaddr)] {
            b[off..off + 4].copy_from_slice(&a.octets());
        }
        b[28..34].copy_from_slice(&self.chaddr);
        b[HEADER_LEN..OPTIONS_OFFSET].copy_from_slice(&MAGIC_COOKIE);
        let mut at = OPTIONS_OFFSET;
        self.emit_options(|code, v| {
            let v = &v[..v.len().min(255)];
            b[at] = code;
            b[at + 1] = v.len() as u8;
            b[at + 2..at + 2 + v.len()].copy_from_slice(v);
            at += 2 + v.len();
        });
        b[at] = opt::END;
        Ok(())
    }

    /// The message as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        // The buffer is exactly `buffer_len` long: emit cannot fail.
        let _ = self.emit(&mut DhcpPacket::new_unchecked(&mut v[..]));
        v
    }
}

/// Parse `bytes` as a DHCP message (see [`DhcpRepr::parse`]).
pub fn parse(bytes: &[u8]) -> Result<DhcpRepr<'_>, WireError> {
    DhcpRepr::parse(bytes)
}
