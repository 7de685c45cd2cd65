//! The set-up rules [`super::StackBuilder`] and the bins' flags (`cli::CommonArgs`) share:
//! pure checks on names, MTUs and addresses, whose messages name the setting to change in
//! the caller's own words ([`Spelling`]: `.mtu(1000)` for the builder, `--mtu 1000` for a
//! bin).
//!
//! Invariant: nothing here touches a device or the system; the one check that reads the
//! system (an existing device's MTU, [`device_mtu`]) only runs `ip link show`.

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest interface name Linux takes (IFNAMSIZ less the terminating NUL).
pub(crate) const IFNAME_MAX: usize = 15;
/// RFC 8200 §5: every link that carries IPv6 has an MTU of at least 1280.
pub(crate) const IPV6_MIN_MTU: usize = 1280;
/// The largest IP packet (RFC 791 §3.1 Total Length; RFC 8200 §3 Payload Length).
pub(crate) const MAX_MTU: usize = 65_535;

/// Whose words an error message uses for the setting to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spelling {
    /// The builder's methods: `.mtu(1000)`, `.host_addr("10.0.0.1")`.
    Api,
    /// The bins' flags: `--mtu 1000`, `--host-addr 10.0.0.1`.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    Flags,
}

/// A setting an error message may name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Opt {
    Iface,
    Mtu,
    Addr,
    Addr6,
    HostAddr,
}

impl Spelling {
    /// The setting alone: `.mtu()` / `--mtu`.
    pub(crate) fn name(self, o: Opt) -> &'static str {
        match (self, o) {
            (Spelling::Api, Opt::Iface) => "the device name",
            (Spelling::Api, Opt::Mtu) => ".mtu()",
            (Spelling::Api, Opt::Addr) => ".addr()",
            (Spelling::Api, Opt::Addr6) => ".addr6()",
            (Spelling::Api, Opt::HostAddr) => ".host_addr()",
            (Spelling::Flags, Opt::Iface) => "--iface",
            (Spelling::Flags, Opt::Mtu) => "--mtu",
            (Spelling::Flags, Opt::Addr) => "--addr",
            (Spelling::Flags, Opt::Addr6) => "--addr6",
            (Spelling::Flags, Opt::HostAddr) => "--host-addr",
        }
    }

    /// The setting with a value: `.mtu(1000)` / `--mtu 1000`.
    pub(crate) fn with(self, o: Opt, v: impl Display) -> String {
        match (self, o) {
            (Spelling::Api, Opt::Iface) => format!("the device name `{v}`"),
            (Spelling::Api, Opt::Mtu) => format!(".mtu({v})"),
            (Spelling::Api, _) => format!("{}(\"{v}\")", self.name(o).trim_end_matches("()")),
            (Spelling::Flags, Opt::Iface) => format!("--iface `{v}`"),
            (Spelling::Flags, _) => format!("{} {v}", self.name(o)),
        }
    }
}

/// An interface name the kernel takes (`%d` lets the kernel number it): Linux's
/// `dev_valid_name` refuses `.`, `..`, '/', ':' and C `isspace` (space, \t \n \v \f \r).
pub(crate) fn iface(name: &str, sp: Spelling) -> Result<(), String> {
    let space = |c: char| c == ' ' || ('\t'..='\r').contains(&c);
    if name.is_empty()
        || name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name.contains(|c| c == '/' || c == ':' || space(c))
    {
        return Err(format!(
            "{}: an interface name is 1 to {IFNAME_MAX} characters without '/', ':' or white space, \
             and not `.` or `..`",
            sp.with(Opt::Iface, name)
        ));
    }
    Ok(())
}

/// The stack always runs IPv6 (fe80::2), so its link needs IPv6's minimum MTU.
pub(crate) fn mtu(mtu: usize, sp: Spelling) -> Result<(), String> {
    if !(IPV6_MIN_MTU..=MAX_MTU).contains(&mtu) {
        return Err(format!(
            "{}: the stack always runs IPv6 (fe80::2, {}), which needs at least {IPV6_MIN_MTU} \
             (RFC 8200 §5); the largest is {MAX_MTU}",
            sp.with(Opt::Mtu, mtu),
            sp.name(Opt::Addr6)
        ));
    }
    Ok(())
}

/// `ADDR` or `ADDR/LEN`: the address and the prefix length if one was given.
pub(crate) fn parse_cidr(s: &str, o: Opt, sp: Spelling) -> Result<(IpAddr, Option<u8>), String> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let ip: IpAddr = ip.trim().parse().map_err(|_| format!("{}: `{ip}` is not an IP address", sp.with(o, s)))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match len.map(|l| l.trim().parse::<u8>()) {
        None => Ok((ip, None)),
        Some(Ok(l)) if l <= max => Ok((ip, Some(l))),
        Some(_) => Err(format!("{}: the prefix length must be 0..={max}", sp.with(o, s))),
    }
}

/// Whether `a` and `b` share their first `len` bits (and a family).
pub(crate) fn same_subnet(a: IpAddr, b: IpAddr, len: u8) -> bool {
    let ((x, wx), (y, wy)) = (bits(a), bits(b));
    wx == wy && x & mask(len) == y & mask(len)
}

/// The address as the top bits of a u128, and its width.
fn bits(ip: IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

/// The first host of `ip/len`'s subnet (.1, ::1), or `None` when the subnet has no room
/// for two hosts (IPv4 /31, /32; IPv6 /127, /128).
pub(crate) fn first_host(ip: IpAddr, len: u8) -> Option<IpAddr> {
    let (x, width) = bits(ip);
    if u32::from(len) + 1 >= width {
        return None;
    }
    let net = x & mask(len);
    Some(match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(((net >> 96) as u32) + 1)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(net + 1)),
    })
}

/// fe80::/10 or 169.254/16: on every link, never a subnet to check against.
pub(crate) fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// The stack's address `ours` against the kernel side's addresses `host`: not one of them,
/// and inside the subnet of one of its family (the kernel could not reach it otherwise).
pub(crate) fn ours_vs_host(ours: IpAddr, host: &[(IpAddr, u8)], sp: Spelling) -> Result<(), String> {
    let fam: Vec<&(IpAddr, u8)> =
        host.iter().filter(|(h, _)| h.is_ipv4() == ours.is_ipv4() && !is_link_local(h)).collect();
    if let Some((h, _)) = fam.iter().find(|(h, _)| *h == ours) {
        return Err(format!(
            "the stack's address {ours} is also the kernel side's ({}): choose another",
            sp.with(Opt::HostAddr, h)
        ));
    }
    if !fam.is_empty() && !fam.iter().any(|(h, l)| same_subnet(*h, ours, *l)) {
        let subnets: Vec<String> = fam.iter().map(|(h, l)| format!("{h}/{l}")).collect();
        let (a, a6) = (sp.name(Opt::Addr), sp.name(Opt::Addr6));
        return Err(format!(
            "the stack's address {ours} is outside the kernel side's subnet ({}): the kernel could \
             not reach it; change {a}/{a6} or {}",
            subnets.join(", "),
            sp.name(Opt::HostAddr)
        ));
    }
    Ok(())
}

/// An existing interface's MTU, as `ip link show` reports it in the current network
/// namespace (`None`: no such device, or no `ip`).
pub(crate) fn device_mtu(name: &str) -> Option<usize> {
    let out = std::process::Command::new("ip").args(["-o", "link", "show", "dev", name]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().skip_while(|w| *w != "mtu").nth(1).and_then(|m| m.parse::<usize>().ok())
}

/// An existing device whose MTU is not the stack's: refused with the fix, or packets longer
/// than the stack's MTU would be dropped without a word.
pub(crate) fn existing_mtu(name: &str, dev: usize, ours: usize, sp: Spelling) -> Result<(), String> {
    if dev == ours {
        return Ok(());
    }
    Err(format!(
        "{name}'s MTU is {dev} but the stack's is {ours} ({}): pass {}, or set {name}'s MTU to {ours}",
        sp.name(Opt::Mtu),
        sp.with(Opt::Mtu, dev)
    ))
}
