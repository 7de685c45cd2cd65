//! UDP port table (RFC 768): which socket gets a datagram.
//!
//! Invariants: one socket per (local address, port), where an unspecified address covers
//! every local address of its family and conflicts with any specific one on the same port;
//! ephemeral ports come from the IANA dynamic range 49152–65535 (RFC 6335 §6), each search
//! starting at a keyed random point (`ports::random_search`; the caller passes the key, the
//! table draws no random numbers); a connected socket accepts datagrams only from its peer.

use super::ports;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};

pub type UdpSockId = u64;

#[derive(Debug, Clone)]
pub struct UdpBinding {
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
}

#[derive(Default)]
pub struct UdpTable {
    by_id: HashMap<UdpSockId, UdpBinding>,
    /// (is_v6, port) -> sockets on that port (few: one wildcard or several specific addresses).
    by_port: HashMap<(bool, u16), Vec<UdpSockId>>,
    next_id: UdpSockId,
    /// Keys the start of each ephemeral port search.
    port_key: u128,
    /// Ephemeral searches so far (hashed with the key for the next one's start).
    port_searches: u64,
}

impl UdpTable {
    /// A table whose ephemeral ports are chosen under `port_key` (a secret: with it the
    /// ports are predictable).
    pub fn new(port_key: u128) -> UdpTable {
        UdpTable { next_id: 1, port_key, ..Default::default() }
    }

    fn conflicts(&self, addr: SocketAddr) -> bool {
        self.by_port.get(&(addr.is_ipv6(), addr.port())).is_some_and(|ids| {
            ids.iter().any(|id| {
                let l = self.by_id[id].local.ip();
                l.is_unspecified() || addr.ip().is_unspecified() || l == addr.ip()
            })
        })
    }

    /// Bind `addr` (port 0 picks an ephemeral port). `AddrInUse` if taken.
    pub fn bind(&mut self, mut addr: SocketAddr) -> io::Result<(UdpSockId, SocketAddr)> {
        if addr.port() == 0 {
            self.port_searches += 1;
            let free = ports::random_search(self.port_key, self.port_searches, |p| {
                addr.set_port(p);
                self.conflicts(addr)
            });
            match free {
                Some(p) => addr.set_port(p),
                None => return Err(io::Error::new(io::ErrorKind::AddrInUse, "no free ephemeral UDP port")),
            }
        } else if self.conflicts(addr) {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("UDP {addr} is in use")));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.by_id.insert(id, UdpBinding { local: addr, remote: None });
        self.by_port.entry((addr.is_ipv6(), addr.port())).or_default().push(id);
        Ok((id, addr))
    }

    pub fn unbind(&mut self, id: UdpSockId) {
        if let Some(b) = self.by_id.remove(&id) {
            let key = (b.local.is_ipv6(), b.local.port());
            if let Some(v) = self.by_port.get_mut(&key) {
                v.retain(|x| *x != id);
                if v.is_empty() {
                    self.by_port.remove(&key);
                }
            }
        }
    }

    pub fn connect(&mut self, id: UdpSockId, remote: Option<SocketAddr>) {
        if let Some(b) = self.by_id.get_mut(&id) {
            b.remote = remote;
        }
    }

    pub fn get(&self, id: UdpSockId) -> Option<&UdpBinding> {
        self.by_id.get(&id)
    }

    /// The socket a datagram from `src` to `dst` goes to.
    pub fn lookup(&self, src: SocketAddr, dst: SocketAddr) -> Option<UdpSockId> {
        let ids = self.by_port.get(&(dst.is_ipv6(), dst.port()))?;
        ids.iter().copied().find(|id| {
            let b = &self.by_id[id];
            (b.local.ip().is_unspecified() || b.local.ip() == dst.ip()) && b.remote.is_none_or(|r| r == src)
        })
    }

    /// The connected socket that sent from `local` to `remote` (for ICMP errors).
    pub fn lookup_sender(&self, local: SocketAddr, remote: SocketAddr) -> Option<UdpSockId> {
        let ids = self.by_port.get(&(local.is_ipv6(), local.port()))?;
        ids.iter().copied().find(|id| {
            let b = &self.by_id[id];
            (b.local.ip().is_unspecified() || b.local.ip() == local.ip()) && b.remote == Some(remote)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// True for addresses a datagram may not come from (RFC 1122 §3.2.1.3, RFC 4291 §2.7).
pub fn bad_source(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_multicast(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bind_conflicts_and_ephemeral() {
        let mut t = UdpTable::new(7);
        let (a, _) = t.bind(sa("0.0.0.0:7")).unwrap();
        assert_eq!(t.bind(sa("10.0.0.2:7")).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        // Same port on v6 is a different table.
        t.bind(sa("[::]:7")).unwrap();
        let (_, e1) = t.bind(sa("0.0.0.0:0")).unwrap();
        let (_, e2) = t.bind(sa("0.0.0.0:0")).unwrap();
        assert!(e1.port() >= ports::EPHEMERAL_LO && e2.port() != e1.port());
        assert!(t.bind(sa("[::]:0")).unwrap().1.port() >= ports::EPHEMERAL_LO);
        assert_eq!(t.lookup(sa("10.0.0.1:5000"), sa("10.0.0.2:7")), Some(a));
        t.unbind(a);
        assert_eq!(t.lookup(sa("10.0.0.1:5000"), sa("10.0.0.2:7")), None);
        t.bind(sa("10.0.0.2:7")).unwrap();
    }

    #[test]
    fn connected_filters_source() {
        let mut t = UdpTable::new(7);
        let (a, _) = t.bind(sa("10.0.0.2:9000")).unwrap();
        t.connect(a, Some(sa("10.0.0.1:53")));
        assert_eq!(t.lookup(sa("10.0.0.1:54"), sa("10.0.0.2:9000")), None);
        assert_eq!(t.lookup(sa("10.0.0.1:53"), sa("10.0.0.2:9000")), Some(a));
        assert_eq!(t.lookup_sender(sa("10.0.0.2:9000"), sa("10.0.0.1:53")), Some(a));
    }

    /// RFC 6056 §3.3.1 / RFC 5452 §9.2: a spoofer who saw one socket's ephemeral port cannot
    /// name the next one's; before, the table handed them out in sequence (49152, 49153, …).
    #[test]
    fn ephemeral_ports_are_unpredictable() {
        let mut t = UdpTable::new(0x5eed);
        let ports: Vec<u16> = (0..64).map(|_| t.bind(sa("0.0.0.0:0")).unwrap().1.port()).collect();
        assert!(ports.iter().all(|p| *p >= ports::EPHEMERAL_LO));
        let steps = ports.windows(2).filter(|w| w[1].wrapping_sub(w[0]) < 16).count();
        assert!(steps <= 2, "{steps} of 63 ports within 16 of the one before: {ports:?}");
        // Another key, other ports.
        let mut u = UdpTable::new(0x5eee);
        let other: Vec<u16> = (0..64).map(|_| u.bind(sa("0.0.0.0:0")).unwrap().1.port()).collect();
        assert_ne!(ports, other);
    }

    /// A nearly full range still finds its last free port.
    #[test]
    fn ephemeral_search_finds_the_last_free_port() {
        let mut t = UdpTable::new(1);
        for p in ports::EPHEMERAL_LO..=65535 {
            if p != 60000 {
                t.bind(SocketAddr::from(([0, 0, 0, 0], p))).unwrap();
            }
        }
        assert_eq!(t.bind(sa("0.0.0.0:0")).unwrap().1.port(), 60000);
        assert_eq!(t.bind(sa("0.0.0.0:0")).unwrap_err().kind(), io::ErrorKind::AddrInUse);
    }
}
