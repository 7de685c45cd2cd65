//! Raw ICMP socket table: which socket an incoming ICMP message goes to.
//!
//! Sockets behave like Linux's ping sockets (`net/ipv4/ping.c`): each is bound to one
//! family and owns an echo identifier (RFC 792 "Identifier", RFC 4443 §4.1), its "port".
//! The IP core (`proto::ip`) delivers to a socket:
//! * echo replies whose identifier is the socket's;
//! * ICMP errors (destination unreachable, time exceeded, parameter problem, packet too big)
//!   that quote one of our echo requests carrying the socket's identifier;
//! * a copy of every ICMP error quoting one of our non-ICMP packets (UDP, TCP), to every
//!   socket of the family — what a traceroute with UDP probes reads.
//!
//! Everything else (echo requests, replies for no socket, NDP) stays with the core.
//! Invariants: identifiers are unique per family among open sockets and never 0 (0 asks for
//! one to be chosen); each socket's queue is bounded in bytes by the caller's limit, shared
//! with the socket through [`RawShared::queued`] (the socket subtracts what it reads).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

pub type RawSockId = u64;

/// What a raw socket shares with the ip core: the bytes charged to its receive queue.
#[derive(Debug, Default)]
pub struct RawShared {
    pub queued: AtomicU64,
}

pub type RawQueue = Arc<RawShared>;

struct Entry {
    v6: bool,
    ident: u16,
    queue: RawQueue,
}

/// The open raw ICMP sockets.
pub struct RawTable {
    socks: HashMap<RawSockId, Entry>,
    next_id: RawSockId,
    /// Where the search for a free identifier starts (the caller seeds it).
    next_ident: u16,
}

impl RawTable {
    /// An empty table; automatic identifiers start at `first_ident` (the ip actor passes a
    /// random value, as Linux picks ping "ports" from a range).
    pub fn new(first_ident: u16) -> RawTable {
        RawTable { socks: HashMap::new(), next_id: 1, next_ident: first_ident }
    }

    fn taken(&self, v6: bool, ident: u16) -> bool {
        self.socks.values().any(|e| e.v6 == v6 && e.ident == ident)
    }

    /// Open a socket of family `v6` with echo identifier `ident` (0: a free one).
    /// `AddrInUse` if that identifier is taken, or all 65,535 are.
    pub fn bind(&mut self, v6: bool, ident: u16, queue: RawQueue) -> io::Result<(RawSockId, u16)> {
        let ident = if ident != 0 {
            if self.taken(v6, ident) {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, "echo identifier in use"));
            }
            ident
        } else {
            let mut found = None;
            for _ in 0..u16::MAX {
                let c = self.next_ident;
                self.next_ident = self.next_ident.wrapping_add(1);
                if c != 0 && !self.taken(v6, c) {
                    found = Some(c);
                    break;
                }
            }
            found.ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free echo identifier"))?
        };
        let id = self.next_id;
        self.next_id += 1;
        self.socks.insert(id, Entry { v6, ident, queue });
        Ok((id, ident))
    }

    pub fn close(&mut self, id: RawSockId) {
        self.socks.remove(&id);
    }

    /// `(is_v6, identifier)` of an open socket.
    pub fn get(&self, id: RawSockId) -> Option<(bool, u16)> {
        self.socks.get(&id).map(|e| (e.v6, e.ident))
    }

    /// The socket of family `v6` owning echo identifier `ident`.
    pub fn by_ident(&self, v6: bool, ident: u16) -> Option<RawSockId> {
        self.socks.iter().find(|(_, e)| e.v6 == v6 && e.ident == ident).map(|(id, _)| *id)
    }

    /// Every socket of family `v6`.
    pub fn of_family(&self, v6: bool) -> Vec<RawSockId> {
        self.socks.iter().filter(|(_, e)| e.v6 == v6).map(|(id, _)| *id).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }

    /// Charge `bytes` to socket `id`'s queue if that keeps it within `limit`; false (nothing
    /// charged) otherwise, or when the socket is gone.
    pub fn charge(&self, id: RawSockId, bytes: u64, limit: u64) -> bool {
        let Some(e) = self.socks.get(&id) else { return false };
        if e.queue.queued.load(Relaxed) + bytes > limit {
            return false;
        }
        e.queue.queued.fetch_add(bytes, Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_unique_per_family() {
        let mut t = RawTable::new(u16::MAX);
        let (a, ia) = t.bind(false, 0, Default::default()).unwrap();
        assert_eq!(ia, u16::MAX);
        // The search wraps past 0, which is never handed out.
        let (_, ib) = t.bind(false, 0, Default::default()).unwrap();
        assert_eq!(ib, 1);
        assert_eq!(t.bind(false, 1, Default::default()).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        // The same identifier in the other family is free.
        let (c, ic) = t.bind(true, 1, Default::default()).unwrap();
        assert_eq!(ic, 1);
        assert_eq!(t.by_ident(false, u16::MAX), Some(a));
        assert_eq!(t.by_ident(true, 1), Some(c));
        assert_eq!(t.of_family(false).len(), 2);
        t.close(a);
        assert_eq!(t.by_ident(false, u16::MAX), None);
        assert!(t.bind(false, u16::MAX, Default::default()).is_ok());
    }

    #[test]
    fn charge_is_bounded() {
        let mut t = RawTable::new(7);
        let q: RawQueue = Default::default();
        let (id, _) = t.bind(false, 0, q.clone()).unwrap();
        assert!(t.charge(id, 600, 1000));
        assert!(!t.charge(id, 600, 1000));
        assert_eq!(q.queued.load(Relaxed), 600);
        q.queued.fetch_sub(600, Relaxed);
        assert!(t.charge(id, 600, 1000));
        assert!(!t.charge(99, 1, 1000), "no such socket");
    }
}
