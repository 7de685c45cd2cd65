//! The blocking stub resolver: RFC 1035 queries over the stack's own [`UdpSocket`] to the
//! servers in `StackConfig::dns` and then the DHCP lease's (`actor::dhcp`), answers kept in the stack's bounded cache
//! (`proto::dns::Cache`). The machine's resolver (std's `ToSocketAddrs`, getaddrinfo) is
//! never used: it would ask the host's servers, not the network the stack is on.
//!
//! Each lookup tries every server up to [`TRY_TIMEOUTS`]`.len()` times with a fresh random ID
//! and a random source port (the UDP table's ephemeral choice) per try;
//! datagrams that are not the answer to the current query (wrong ID, source or question,
//! malformed) are ignored, so a spoofer must guess both. A silent server costs the sum of
//! the timeouts (5 s) and ends in `TimedOut`.

use super::UdpSocket;
use crate::actor::StackHandle;
use crate::proto::dns::{self, Answer, DnsError, RecordType};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Per-try receive timeouts, as glibc's resolver (RES_TIMEOUT 5 s split over its attempts):
/// 1 s, then 2 s, then 2 s.
pub const TRY_TIMEOUTS: [Duration; 3] = [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(2)];

impl StackHandle {
    /// The addresses of `name` (an IP literal is returned as is): its A records when the
    /// stack has an IPv4 address, then its AAAA records when it has a global IPv6 one.
    /// `NotFound` for NXDOMAIN or no address, `TimedOut` when no server answered.
    pub fn resolve(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        // RFC 1123 §2.1 host names (letters, digits, hyphens; underscores as seen in practice):
        // anything else (a bracketed or scoped literal, a stray colon) is a mistake, not a query.
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(invalid(format!("{name}: not an IP address or a host name")));
        }
        let ip = &self.config().ip;
        let mut types = Vec::new();
        if !ip.v4.is_empty() || self.lease().is_some() {
            types.push(RecordType::A);
        }
        if ip.v6.iter().any(|a| a.segments()[0] & 0xffc0 != 0xfe80) {
            types.push(RecordType::Aaaa);
        }
        let mut addrs = Vec::new();
        let mut soft_err = None;
        for t in types {
            match self.lookup(name, t) {
                Ok(a) => addrs.extend(a.addrs()),
                // The name does not exist, or nobody answers: the other type would say the same.
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::TimedOut) => return Err(e),
                Err(e) => soft_err = Some(e),
            }
        }
        if addrs.is_empty() {
            return Err(soft_err.unwrap_or_else(|| not_found(format!("{name}: no address records"))));
        }
        Ok(addrs)
    }

    /// The answer for (`name`, `qtype`): from the cache, or from the first server that
    /// answers. An empty answer is NODATA (the name exists without such records).
    pub fn lookup(&self, name: &str, qtype: RecordType) -> io::Result<Answer> {
        let qname = dns::normalize_name(name).map_err(|e| invalid(format!("{name}: {e}")))?;
        if let Some(a) = self.dns_cache.lock().get(Instant::now(), &qname, qtype) {
            return Ok(a);
        }
        let servers = &self.dns_servers(); // configured, then from the DHCP lease
        if servers.is_empty() {
            return Err(invalid(format!("cannot resolve {name}: no DNS server configured (--dns ADDR, or --dhcp)")));
        }
        let mut last = None;
        for timeout in TRY_TIMEOUTS {
            for &server in servers {
                match self.query(SocketAddr::new(server, dns::PORT), &qname, qtype, timeout) {
                    Ok(a) => {
                        self.dns_cache.lock().insert(Instant::now(), &qname, qtype, a.clone());
                        return Ok(a);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
                    Err(e) => last = Some(e),
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::TimedOut)))
    }

    /// One query to `server`, waiting up to `timeout` for its answer.
    fn query(&self, server: SocketAddr, qname: &str, qtype: RecordType, timeout: Duration) -> io::Result<Answer> {
        let any: IpAddr = if server.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
        // The UDP table picks the port at random (RFC 5452 §9.2, RFC 6056 §3.3.1).
        let sock = UdpSocket::bind(self, SocketAddr::new(any, 0))?;
        sock.connect(server)?; // only the server's datagrams are received
        let id: u16 = rand::random();
        let mut msg = Vec::with_capacity(dns::MAX_UDP_LEN);
        dns::build_query(id, qname, qtype, &mut msg).map_err(|e| invalid(format!("{qname}: {e}")))?;
        sock.send(&msg)?;
        self.stats.dns_queries.fetch_add(1, Relaxed);
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out(server, qname, qtype));
            }
            sock.set_read_timeout(Some(left))?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(timed_out(server, qname, qtype)),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(io::Error::new(e.kind(), format!("DNS server {server} refused (port unreachable)")))
                }
                Err(e) => return Err(e),
            };
            match dns::parse_response(&buf[..n], id, qname, qtype) {
                Ok(a) => return Ok(a),
                Err(DnsError::NxDomain) => return Err(not_found(format!("{qname}: {}", DnsError::NxDomain))),
                Err(e @ (DnsError::Rcode(_) | DnsError::TruncatedFlag | DnsError::BadRdata)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{qname} {qtype} from {server}: {e}"),
                    ))
                }
                // Not the answer to this query (or garbage): keep waiting for the real one.
                Err(_) => continue,
            }
        }
    }

    /// DNS counters: (queries sent, cache hits, cache misses).
    pub fn dns_stats(&self) -> (u64, u64, u64) {
        let c = self.dns_cache.lock();
        (self.stats.dns_queries.load(Relaxed), c.hits, c.misses)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn not_found(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, msg)
}

fn timed_out(server: SocketAddr, qname: &str, qtype: RecordType) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("no answer from DNS server {server} for {qname} {qtype}"))
}
