//! DNS stub-resolver core (RFC 1035): building queries, checking and parsing responses, and a
//! bounded cache honouring TTLs. Pure: the caller passes the query ID, the clock and buffers.
//!
//! Invariants:
//! * Parsing never panics and never allocates more than the message's own size allows: every
//!   read is bounds-checked, a name is at most 255 octets (RFC 1035 §2.3.4) and follows at
//!   most [`MAX_POINTERS`] compression pointers, each pointing strictly backwards: a loop
//!   (which needs labels between its pointers) runs into one of those limits, an error.
//! * A response is accepted only if its ID, QR bit, opcode and question match the query; a
//!   mismatch is an error the caller treats as "not our answer" and keeps waiting.
//! * The cache holds at most `capacity` entries of at most [`MAX_ADDRS`] addresses each; an
//!   entry lives no longer than its smallest TTL, capped at [`MAX_TTL`].

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// RFC 1035 §4.1.1: the header is 12 octets.
pub const HEADER_LEN: usize = 12;
/// RFC 1035 §2.3.4: names are 255 octets or less, labels 63 or less.
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_LABEL_LEN: usize = 63;
/// RFC 1035 §4.2.1: the well-known port.
pub const PORT: u16 = 53;
/// RFC 1035 §2.3.4: UDP messages are 512 octets or less (without EDNS, which we do not send).
pub const MAX_UDP_LEN: usize = 512;
/// Compression pointers followed per name (each must point backwards, so this only bounds work).
pub const MAX_POINTERS: usize = 32;
/// CNAME links followed within one answer section.
pub const MAX_CNAMES: usize = 8;
/// Addresses kept per cache entry.
pub const MAX_ADDRS: usize = 32;
/// Longest a cache entry lives (RFC 2181 §8 allows up to 2^31 − 1 s; a stub keeps less).
pub const MAX_TTL: u32 = 86_400;

// RFC 1035 §4.1.1 header flags.
const FLAG_QR: u16 = 0x8000;
const OPCODE_MASK: u16 = 0x7800;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const RCODE_MASK: u16 = 0x000f;
/// RFC 1035 §4.1.1 RCODE 3: the name does not exist.
const RCODE_NXDOMAIN: u8 = 3;

/// RFC 1035 §3.2.4: class IN.
pub const CLASS_IN: u16 = 1;
/// RFC 1035 §3.2.2: CNAME.
pub const TYPE_CNAME: u16 = 5;

/// The record types this resolver asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// RFC 1035 §3.4.1: an IPv4 address, type 1.
    A,
    /// RFC 3596 §2.1: an IPv6 address, type 28.
    Aaaa,
}

impl RecordType {
    pub fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Aaaa => 28,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
        })
    }
}

/// Why a name could not be encoded or a response was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// The name is empty, has an empty or over-long label, an octet that is not printable
    /// ASCII or is `\`, or is over 255 octets.
    BadName,
    /// The message ends inside a field.
    Truncated,
    /// A compression pointer points forwards, at itself, or too many were followed.
    BadPointer,
    /// The ID differs from the query's.
    IdMismatch,
    /// QR is 0 or the opcode is not QUERY: not a response to a standard query.
    NotResponse,
    /// The question section is not the one we asked.
    QuestionMismatch,
    /// RFC 1035 §4.1.1 RCODE 3.
    NxDomain,
    /// Any other non-zero RCODE (2 server failure, 5 refused, …).
    Rcode(u8),
    /// TC set: the answer did not fit in UDP (TCP fallback is not implemented).
    TruncatedFlag,
    /// An A/AAAA record whose RDLENGTH is not 4/16, or a CNAME whose data is not a name.
    BadRdata,
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::BadName => f.write_str("invalid domain name"),
            DnsError::Truncated => f.write_str("malformed DNS message (ends inside a field)"),
            DnsError::BadPointer => f.write_str("malformed DNS message (bad compression pointer)"),
            DnsError::IdMismatch => f.write_str("DNS response ID does not match the query"),
            DnsError::NotResponse => f.write_str("DNS message is not a response to a query"),
            DnsError::QuestionMismatch => f.write_str("DNS response is for another question"),
            DnsError::NxDomain => f.write_str("name does not exist (NXDOMAIN)"),
            DnsError::Rcode(2) => f.write_str("DNS server failure (SERVFAIL)"),
            DnsError::Rcode(5) => f.write_str("DNS server refused the query (REFUSED)"),
            DnsError::Rcode(c) => write!(f, "DNS server answered with RCODE {c}"),
            DnsError::TruncatedFlag => f.write_str("DNS response truncated (TC set; TCP fallback not supported)"),
            DnsError::BadRdata => f.write_str("malformed DNS record data"),
        }
    }
}

impl std::error::Error for DnsError {}

/// `name` lower-cased, without a trailing dot, checked against RFC 1035 §2.3.4's limits.
/// Labels hold printable ASCII but `\`: the octets `read_name` writes as themselves, so
/// a question read back equals the one asked exactly when its octets do (RFC 5452 §9.1).
pub fn normalize_name(name: &str) -> Result<String, DnsError> {
    let n = name.strip_suffix('.').unwrap_or(name);
    // Encoded length: one length octet per label plus the labels plus the root octet.
    if n.is_empty() || n.len() + 2 > MAX_NAME_LEN {
        return Err(DnsError::BadName);
    }
    let bad_octet = |b: u8| !b.is_ascii_graphic() || b == b'\\';
    if n.split('.').any(|l| l.is_empty() || l.len() > MAX_LABEL_LEN || l.bytes().any(bad_octet)) {
        return Err(DnsError::BadName);
    }
    Ok(n.to_ascii_lowercase())
}

/// Append the query for (`name`, `qtype`, IN) with `id` and RD set (RFC 1035 §4.1) to `out`.
pub fn build_query(id: u16, name: &str, qtype: RecordType, out: &mut Vec<u8>) -> Result<(), DnsError> {
    let name = normalize_name(name)?;
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes()); // QR=0, OPCODE=0 (QUERY), RD=1
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1, AN/NS/AR 0
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.code().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(())
}

/// One resource record of an answer, as the `resolve` bin prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: RecordData,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    Addr(IpAddr),
    Cname(String),
}

/// A checked response: the chain of records that answer the question (CNAMEs followed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub records: Vec<Record>,
}

impl Answer {
    /// The addresses found, at most [`MAX_ADDRS`].
    pub fn addrs(&self) -> Vec<IpAddr> {
        let addrs = self.records.iter().filter_map(|r| match r.data {
            RecordData::Addr(a) => Some(a),
            RecordData::Cname(_) => None,
        });
        addrs.take(MAX_ADDRS).collect()
    }

    /// The smallest TTL of the chain (how long the whole answer may be cached).
    pub fn min_ttl(&self) -> u32 {
        self.records.iter().map(|r| r.ttl).min().unwrap_or(0)
    }
}

/// A bounds-checked reader over a message.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end = self.pos.checked_add(n).ok_or(DnsError::Truncated)?;
        let s = self.msg.get(self.pos..end).ok_or(DnsError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DnsError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A possibly compressed name (RFC 1035 §4.1.4), lower-cased, dotted, without the root dot.
    fn name(&mut self) -> Result<String, DnsError> {
        let (name, end) = read_name(self.msg, self.pos)?;
        self.pos = end;
        Ok(name)
    }
}

/// Read the name at `start`; returns it and the offset just after its in-place encoding.
fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut pos = start;
    let mut end = None;
    let mut pointers = 0;
    let mut encoded = 1; // the root octet
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => break,
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(DnsError::Truncated)?;
                encoded += 1 + len;
                if encoded > MAX_NAME_LEN {
                    return Err(DnsError::BadName);
                }
                if !name.is_empty() {
                    name.push('.');
                }
                // Non-ASCII octets are kept visible but harmless (escaped as `\DDD`, as dig does).
                for &b in label {
                    if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                        name.push(b.to_ascii_lowercase() as char);
                    } else {
                        name.push_str(&format!("\\{b:03}"));
                    }
                }
                pos += 1 + len;
            }
            // RFC 1035 §4.1.4: a pointer is two octets starting with 11.
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(DnsError::Truncated)? as usize;
                let target = ((len & 0x3f) << 8) | lo;
                pointers += 1;
                // Backwards only, so a loop must pass through labels and hits a limit.
                if target >= pos || pointers > MAX_POINTERS {
                    return Err(DnsError::BadPointer);
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            // 01 and 10 are reserved (RFC 6891 retired the extended label types).
            _ => return Err(DnsError::BadName),
        }
    }
    Ok((name, end.unwrap_or(pos + 1)))
}

/// A raw resource record (RFC 1035 §4.1.3).
struct RawRecord<'a> {
    name: String,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata_pos: usize,
    rdata: &'a [u8],
}

fn read_record<'a>(r: &mut Reader<'a>) -> Result<RawRecord<'a>, DnsError> {
    let name = r.name()?;
    let rtype = r.u16()?;
    let class = r.u16()?;
    // RFC 2181 §8: a TTL with the top bit set is treated as zero.
    let ttl = r.u32()?;
    let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
    let len = r.u16()? as usize;
    let rdata_pos = r.pos;
    let rdata = r.take(len)?;
    Ok(RawRecord { name, rtype, class, ttl, rdata_pos, rdata })
}

/// Check `msg` against the query (`id`, `name`, `qtype`) and collect the answer chain.
/// `NxDomain` and other RCODEs are errors; an empty `Answer` means the name exists without
/// records of that type (NODATA, RFC 2308 §2.2).
pub fn parse_response(msg: &[u8], id: u16, name: &str, qtype: RecordType) -> Result<Answer, DnsError> {
    let qname = normalize_name(name)?;
    let mut r = Reader { msg, pos: 0 };
    if r.u16()? != id {
        return Err(DnsError::IdMismatch);
    }
    let flags = r.u16()?;
    if flags & FLAG_QR == 0 || flags & OPCODE_MASK != 0 {
        return Err(DnsError::NotResponse);
    }
    let (qd, an) = (r.u16()?, r.u16()?);
    r.take(4)?; // NSCOUNT, ARCOUNT: the authority and additional sections are not used.
                // RFC 1035 §7.3: the question must be the one we sent.
    if qd != 1 {
        return Err(DnsError::QuestionMismatch);
    }
    let (n, t, c) = (r.name()?, r.u16()?, r.u16()?);
    if n != qname || t != qtype.code() || c != CLASS_IN {
        return Err(DnsError::QuestionMismatch);
    }
    match (flags & RCODE_MASK) as u8 {
        0 => {}
        RCODE_NXDOMAIN => return Err(DnsError::NxDomain),
        c => return Err(DnsError::Rcode(c)),
    }
    if flags & FLAG_TC != 0 {
        return Err(DnsError::TruncatedFlag);
    }
    let mut raw = Vec::new();
    for _ in 0..an {
        raw.push(read_record(&mut r)?);
    }
    follow_chain(msg, &raw, qname, qtype)
}

/// The records answering `qname`: CNAMEs from it (at most [`MAX_CNAMES`] + 1: a longer
/// chain or a loop stops there), then the addresses of the last name in the chain.
/// Records for other names are ignored.
fn follow_chain(msg: &[u8], raw: &[RawRecord], qname: String, qtype: RecordType) -> Result<Answer, DnsError> {
    let mut answer = Answer::default();
    let mut owner = qname;
    for _ in 0..=MAX_CNAMES {
        let cname = raw.iter().find(|rr| rr.class == CLASS_IN && rr.rtype == TYPE_CNAME && rr.name == owner);
        let Some(rr) = cname else { break };
        let (target, end) = read_name(msg, rr.rdata_pos)?;
        if end != rr.rdata_pos + rr.rdata.len() {
            return Err(DnsError::BadRdata);
        }
        answer.records.push(Record { name: owner, ttl: rr.ttl, data: RecordData::Cname(target.clone()) });
        owner = target;
    }
    for rr in raw.iter().filter(|rr| rr.class == CLASS_IN && rr.rtype == qtype.code() && rr.name == owner) {
        let addr = match qtype {
            RecordType::A => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(rr.rdata).map_err(|_| DnsError::BadRdata)?)),
            RecordType::Aaaa => {
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(rr.rdata).map_err(|_| DnsError::BadRdata)?))
            }
        };
        if answer.records.len() < MAX_ADDRS + MAX_CNAMES {
            answer.records.push(Record { name: owner.clone(), ttl: rr.ttl, data: RecordData::Addr(addr) });
        }
    }
    Ok(answer)
}

struct Entry {
    answer: Answer,
    expires: Instant,
}

/// A bounded cache of positive answers keyed by (name, type). TTL 0 answers are not kept.
pub struct Cache {
    map: HashMap<(String, RecordType), Entry>,
    capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache { map: HashMap::new(), capacity: capacity.max(1), hits: 0, misses: 0 }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The cached answer for (`name`, `qtype`) if it has not expired at `now`, with its TTLs
    /// reduced by the time it has spent in the cache.
    pub fn get(&mut self, now: Instant, name: &str, qtype: RecordType) -> Option<Answer> {
        let key = (normalize_name(name).ok()?, qtype);
        match self.map.get(&key) {
            Some(e) if now < e.expires => {
                self.hits += 1;
                let left = e.expires.duration_since(now).as_secs() as u32;
                let mut a = e.answer.clone();
                a.records.iter_mut().for_each(|r| r.ttl = r.ttl.min(left));
                Some(a)
            }
            Some(_) => {
                self.map.remove(&key);
                self.misses += 1;
                None
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Keep `answer` until `now` + its smallest TTL (capped at [`MAX_TTL`]); when full, expired
    /// entries go first, then the one expiring soonest.
    pub fn insert(&mut self, now: Instant, name: &str, qtype: RecordType, answer: Answer) {
        let ttl = answer.min_ttl().min(MAX_TTL);
        let Ok(name) = normalize_name(name) else { return };
        if ttl == 0 || answer.records.is_empty() {
            return;
        }
        let key = (name, qtype);
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.map.retain(|_, e| e.expires > now);
            if self.map.len() >= self.capacity {
                let soonest = self.map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    self.map.remove(&k);
                }
            }
        }
        self.map.insert(key, Entry { answer, expires: now + Duration::from_secs(ttl.into()) });
    }
}

#[cfg(test)]
mod tests;
