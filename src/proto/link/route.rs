//! A small routing table for IPv4 and IPv6 with longest-prefix match.
//!
//! Routes are connected subnets (from our addresses, or on-link prefixes learnt from router
//! advertisements) and gateways (a default route from the configuration, a DHCP lease or an
//! RA).
//! Invariants: at most `max` routes; a route's network has no bits set past its prefix
//! length (they are cleared on insertion); an expired route is never returned and is removed
//! by [`RouteTable::expire`]; among matching routes the longest prefix wins, then the origin
//! (connected, then static, then DHCP, then RA), then the earliest added (RFC 1812
//! §5.2.4.3's longest match; the tie-breaks are ours).

use std::net::IpAddr;
use std::time::Instant;

/// Where a route came from; the order is the preference among equally long prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// A subnet of one of our addresses.
    Connected,
    /// Given by configuration (`--gateway`).
    Static,
    /// A DHCP lease's router (RFC 2132 §3.5): it goes with the lease.
    Dhcp,
    /// Learnt from a router advertisement (RFC 4861 §6.3.4).
    Ra,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub net: IpAddr,
    pub prefix_len: u8,
    /// `None`: on-link (the destination is its own next hop).
    pub via: Option<IpAddr>,
    pub origin: Origin,
    pub expires: Option<Instant>,
}

/// `addr` with the bits past `len` cleared; `len` is clamped to the family's width.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let l = u32::from(len.min(32));
            let m = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let l = u32::from(len.min(128));
            let m = if l == 0 { 0 } else { u128::MAX << (128 - l) };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// True when `addr` lies in `net/len` (families must match).
pub fn contains(net: IpAddr, len: u8, addr: IpAddr) -> bool {
    net.is_ipv4() == addr.is_ipv4() && mask(addr, len) == mask(net, len)
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
    max: usize,
    /// Bumped by every change (a copy of the table is current while its version is).
    version: u64,
}

impl RouteTable {
    pub fn new(max: usize) -> RouteTable {
        RouteTable { routes: Vec::new(), max, version: 0 }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Changes every time a route is added, refreshed or removed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Add `r`, or refresh the route with the same network, length, gateway and origin.
    /// False when the table is full.
    pub fn add(&mut self, mut r: Route) -> bool {
        r.net = mask(r.net, r.prefix_len);
        r.prefix_len = r.prefix_len.min(if r.net.is_ipv4() { 32 } else { 128 });
        let same = |x: &Route| (x.net, x.prefix_len, x.via, x.origin) == (r.net, r.prefix_len, r.via, r.origin);
        if let Some(x) = self.routes.iter_mut().find(|x| same(x)) {
            if x.expires != r.expires {
                x.expires = r.expires;
                self.version += 1;
            }
            return true;
        }
        if self.routes.len() >= self.max {
            return false;
        }
        self.routes.push(r);
        self.version += 1;
        true
    }

    /// Remove every route `f` selects; returns how many went.
    pub fn remove_where(&mut self, f: impl Fn(&Route) -> bool) -> usize {
        let before = self.routes.len();
        self.routes.retain(|r| !f(r));
        let gone = before - self.routes.len();
        if gone > 0 {
            self.version += 1;
        }
        gone
    }

    /// How many routes `f` selects.
    pub fn count(&self, f: impl Fn(&Route) -> bool) -> usize {
        self.routes.iter().filter(|r| f(r)).count()
    }

    /// The best route to `dst` at `now`.
    pub fn lookup(&self, now: Instant, dst: IpAddr) -> Option<&Route> {
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.expires.is_none_or(|t| t > now) && contains(r.net, r.prefix_len, dst))
            .min_by_key(|(i, r)| (std::cmp::Reverse(r.prefix_len), r.origin, *i))
            .map(|(_, r)| r)
    }

    /// The next hop for `dst`: the gateway of its route, or `dst` itself when on-link.
    pub fn next_hop(&self, now: Instant, dst: IpAddr) -> Option<IpAddr> {
        self.lookup(now, dst).map(|r| r.via.unwrap_or(dst))
    }

    /// Drop routes expired at `now`; returns how many went.
    pub fn expire(&mut self, now: Instant) -> usize {
        self.remove_where(|r| r.expires.is_some_and(|t| t <= now))
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.routes.iter().filter_map(|r| r.expires).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn route(net: &str, len: u8, via: Option<&str>, origin: Origin) -> Route {
        Route { net: a(net), prefix_len: len, via: via.map(a), origin, expires: None }
    }

    #[test]
    fn version_moves_with_every_change_and_only_then() {
        let now = Instant::now();
        let mut t = RouteTable::new(2);
        let v0 = t.version();
        assert!(t.add(route("10.0.0.0", 24, None, Origin::Connected)));
        let v1 = t.version();
        assert_ne!(v1, v0);
        assert!(t.add(route("10.0.0.0", 24, None, Origin::Connected)));
        assert_eq!(t.version(), v1, "the same route again changes nothing");
        let ra = Route { expires: Some(now + Duration::from_secs(9)), ..route("::", 0, Some("fe80::1"), Origin::Ra) };
        assert!(t.add(ra.clone()));
        let v2 = t.version();
        assert!(t.add(Route { expires: Some(now + Duration::from_secs(30)), ..ra }));
        assert_ne!(t.version(), v2, "a refreshed lifetime is a change");
        let v3 = t.version();
        assert!(!t.add(route("fd00::", 64, None, Origin::Connected)), "full");
        assert_eq!(t.remove_where(|r| r.origin == Origin::Static), 0);
        assert_eq!(t.version(), v3, "a refused add or an empty removal changes nothing");
        assert_eq!(t.expire(now + Duration::from_secs(60)), 1);
        assert_ne!(t.version(), v3);
    }

    #[test]
    fn longest_prefix_wins_then_origin() {
        let now = Instant::now();
        let mut t = RouteTable::new(16);
        assert!(t.add(route("0.0.0.0", 0, Some("10.0.0.1"), Origin::Static)));
        assert!(t.add(route("10.0.0.77", 24, None, Origin::Connected))); // host bits cleared
        assert!(t.add(route("10.0.0.128", 25, Some("10.0.0.254"), Origin::Static)));
        assert!(t.add(route("::", 0, Some("fe80::1"), Origin::Ra)));
        assert!(t.add(route("::", 0, Some("fe80::2"), Origin::Static)));
        assert!(t.add(route("fd00::", 64, None, Origin::Connected)));
        assert_eq!(t.routes()[1].net, a("10.0.0.0"));
        assert_eq!(t.next_hop(now, a("10.0.0.5")), Some(a("10.0.0.5")));
        assert_eq!(t.next_hop(now, a("10.0.0.200")), Some(a("10.0.0.254")));
        assert_eq!(t.next_hop(now, a("10.0.1.5")), Some(a("10.0.0.1")));
        assert_eq!(t.next_hop(now, a("8.8.8.8")), Some(a("10.0.0.1")));
        assert_eq!(t.next_hop(now, a("fd00::9")), Some(a("fd00::9")));
        // Static beats RA at the same length.
        assert_eq!(t.next_hop(now, a("2001:db8::1")), Some(a("fe80::2")));
        t.remove_where(|r| r.origin == Origin::Static && r.net.is_ipv6());
        assert_eq!(t.next_hop(now, a("2001:db8::1")), Some(a("fe80::1")));
        t.remove_where(|r| r.net.is_ipv6() && r.prefix_len == 0);
        assert_eq!(t.next_hop(now, a("2001:db8::1")), None);
        // Families never mix: a v4 default does not catch v6.
        assert!(!contains(a("0.0.0.0"), 0, a("::1")));
    }

    #[test]
    fn expiry_bound_and_refresh() {
        let now = Instant::now();
        let mut t = RouteTable::new(2);
        let mut r = route("::", 0, Some("fe80::1"), Origin::Ra);
        r.expires = Some(now + Duration::from_secs(10));
        assert!(t.add(r.clone()));
        r.expires = Some(now + Duration::from_secs(20));
        assert!(t.add(r.clone()), "refresh, not a second route");
        assert_eq!(t.routes().len(), 1);
        assert!(t.add(route("fd00::", 64, None, Origin::Connected)));
        assert!(!t.add(route("fd01::", 64, None, Origin::Connected)), "full");
        assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(20)));
        assert_eq!(t.next_hop(now + Duration::from_secs(19), a("2001:db8::1")), Some(a("fe80::1")));
        assert_eq!(t.next_hop(now + Duration::from_secs(20), a("2001:db8::1")), None);
        assert_eq!(t.expire(now + Duration::from_secs(20)), 1);
        assert_eq!(t.routes().len(), 1);
    }
}
