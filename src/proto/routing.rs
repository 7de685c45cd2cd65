//! Routing decisions for traffic the stack originates (`connect`, `send_to`), on TUN and TAP.
//!
//! Pure: a [`RouteTable`] (from [`crate::proto::link::route`]) and a destination in, a next
//! hop or a clear `NetworkUnreachable` error out. On TAP the table is the link core's (with
//! routes learnt from router advertisements); on TUN it is [`table_for`]: the connected
//! subnets of our addresses plus the configured default gateways. A TUN device has one link
//! and no link addresses, so there a gateway only means "off-subnet destinations go out the
//! device" (the kernel on the other side forwards them). Invariants:
//! * a unicast destination is routable only through a matching route; as Linux's
//!   `ip_route_connect` (ENETUNREACH), a socket call to one without a route fails before
//!   anything is queued;
//! * the limited broadcast 255.255.255.255 and multicast destinations always go out the
//!   link (RFC 919 §7, RFC 1112 §6.4, RFC 4291 §2.7): DHCP and NDP need no route;
//! * a gateway must lie on a connected subnet (RFC 1122 §3.3.1.1: a gateway is on a
//!   connected network) and not be one of our addresses, else [`check_gateways`] refuses
//!   the configuration.

use super::ip::IpConfig;
use super::link::route::{contains, Origin, Route, RouteTable};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// Routes a TUN stack's table holds at most (connected subnets, two gateways).
pub const MAX_ROUTES: usize = 16;

/// fe80::/64, always on-link (RFC 4291 §2.5.6).
const LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0);

fn is_link_local6(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The connected subnets of `cfg`'s addresses (IPv4 at `v4_prefix`, IPv6 at `v6_prefix`,
/// plus fe80::/64).
fn connected(cfg: &IpConfig) -> Vec<Route> {
    let route = |net: IpAddr, len| Route { net, prefix_len: len, via: None, origin: Origin::Connected, expires: None };
    let mut v: Vec<Route> = cfg.v4.iter().map(|a| route(IpAddr::V4(*a), cfg.v4_prefix)).collect();
    v.push(route(IpAddr::V6(LINK_LOCAL), 64));
    v.extend(cfg.v6.iter().filter(|a| !is_link_local6(a)).map(|a| route(IpAddr::V6(*a), cfg.v6_prefix)));
    v
}

/// The table of a TUN stack: connected subnets and the static default routes of `cfg`.
pub fn table_for(cfg: &IpConfig) -> RouteTable {
    let mut t = RouteTable::new(MAX_ROUTES);
    for r in connected(cfg) {
        t.add(r);
    }
    for gw in [cfg.gateway4.map(IpAddr::V4), cfg.gateway6.map(IpAddr::V6)].into_iter().flatten() {
        let net = if gw.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
        t.add(Route { net, prefix_len: 0, via: Some(gw), origin: Origin::Static, expires: None });
    }
    t
}

/// `InvalidInput` when a configured gateway is not on one of `cfg`'s connected subnets
/// (Linux refuses such a route too: "Nexthop has invalid gateway") or is one of our own
/// addresses (Linux: "Gateway can not be a local address").
pub fn check_gateways(cfg: &IpConfig) -> io::Result<()> {
    let subnets = connected(cfg);
    for gw in [cfg.gateway4.map(IpAddr::V4), cfg.gateway6.map(IpAddr::V6)].into_iter().flatten() {
        let own = match gw {
            IpAddr::V4(a) => cfg.v4.contains(&a),
            IpAddr::V6(a) => cfg.v6.contains(&a),
        };
        if own {
            let msg = format!("gateway {gw} is one of this stack's own addresses");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        if !subnets.iter().any(|r| contains(r.net, r.prefix_len, gw)) {
            let msg = format!("gateway {gw} is not on a connected subnet of this stack's addresses");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
    }
    Ok(())
}

/// The next hop for a packet to `dst` at `now`: `dst` itself for an on-link, broadcast or
/// multicast destination, the gateway for an off-link one; `NetworkUnreachable` when no
/// route matches.
pub fn next_hop(table: &RouteTable, now: Instant, dst: IpAddr) -> io::Result<IpAddr> {
    let group = match dst {
        IpAddr::V4(a) => a.is_broadcast() || a.is_multicast(),
        IpAddr::V6(a) => a.is_multicast(),
    };
    if group || dst.is_unspecified() {
        // Unspecified destinations are refused (InvalidInput) by the callers' own checks.
        return Ok(dst);
    }
    table.next_hop(now, dst).ok_or_else(|| {
        let hint = if dst.is_ipv4() { "IPv4" } else { "IPv6" };
        let msg = format!("network unreachable: no route to {dst} (off-subnet, and no {hint} gateway: --gateway)");
        io::Error::new(io::ErrorKind::NetworkUnreachable, msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_a_gateway_only_connected_subnets_route() {
        let t = table_for(&IpConfig::default());
        let now = Instant::now();
        for on_link in ["10.0.0.1", "10.0.0.254", "fd00::1", "fe80::1"] {
            assert_eq!(next_hop(&t, now, a(on_link)).unwrap(), a(on_link));
        }
        for group in ["255.255.255.255", "224.0.0.251", "ff02::1"] {
            assert_eq!(next_hop(&t, now, a(group)).unwrap(), a(group), "{group} needs no route");
        }
        for off in ["10.9.0.2", "10.0.1.1", "127.0.0.1", "fd09::2", "2001:db8::1"] {
            let e = next_hop(&t, now, a(off)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NetworkUnreachable, "{off}");
            assert!(e.to_string().contains(off), "{e}");
        }
    }

    #[test]
    fn a_gateway_routes_off_subnet_per_family() {
        let cfg = IpConfig { gateway4: Some(Ipv4Addr::new(10, 0, 0, 1)), ..IpConfig::default() };
        check_gateways(&cfg).unwrap();
        let t = table_for(&cfg);
        let now = Instant::now();
        assert_eq!(next_hop(&t, now, a("10.9.0.2")).unwrap(), a("10.0.0.1"));
        assert_eq!(next_hop(&t, now, a("10.0.0.7")).unwrap(), a("10.0.0.7"), "connected beats the default");
        let e = next_hop(&t, now, a("fd09::2")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NetworkUnreachable, "a v4 gateway does not route v6");
        let cfg6 = IpConfig { gateway6: Some("fd00::1".parse().unwrap()), ..cfg };
        assert_eq!(next_hop(&table_for(&cfg6), now, a("fd09::2")).unwrap(), a("fd00::1"));
    }

    /// REVIEW9 FINDING (fails on main 7354658): a gateway that is one of our own addresses
    /// was accepted; every off-link packet then waited for an ARP/NDP answer from ourselves
    /// and failed seconds later with HostUnreachable (Linux refuses such a route: "Gateway
    /// can not be a local address").
    #[test]
    fn a_gateway_may_not_be_our_own_address() {
        let own4 = IpConfig { gateway4: Some(Ipv4Addr::new(10, 0, 0, 2)), ..IpConfig::default() };
        let e = check_gateways(&own4).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("10.0.0.2"), "{e}");
        let own6 = IpConfig { gateway6: Some("fd00::2".parse().unwrap()), ..IpConfig::default() };
        assert_eq!(check_gateways(&own6).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let ll6 = IpConfig { gateway6: Some("fe80::2".parse().unwrap()), ..IpConfig::default() };
        assert_eq!(check_gateways(&ll6).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn gateways_must_be_on_link() {
        let cfg = IpConfig { gateway4: Some(Ipv4Addr::new(10, 9, 0, 1)), ..IpConfig::default() };
        assert_eq!(check_gateways(&cfg).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let ll = IpConfig { gateway6: Some("fe80::1".parse().unwrap()), ..IpConfig::default() };
        check_gateways(&ll).unwrap();
        let off6 = IpConfig { gateway6: Some("fd09::1".parse().unwrap()), ..IpConfig::default() };
        assert_eq!(check_gateways(&off6).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
