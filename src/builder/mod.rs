//! [`Stack::builder`]: one set-up path that opens the device, configures its kernel side and
//! starts the stack, with every address given once.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let stack = netstack::Stack::builder().tun("tun0").addr("10.0.0.2/24").build()?;
//! # Ok(()) }
//! ```
//!
//! The stack's address carries the subnet (`.addr("10.0.0.2/24")`); the kernel side's
//! address (`.host_addr`) defaults to the subnet's first host (10.0.0.1/24, and fd00::1/64
//! plus fe80::1/64 for IPv6) and takes the stack's prefix when given without one.
//!
//! Invariants: [`StackBuilder::build`] checks every setting against the others
//! ([`StackBuilder::validate`]: `InvalidInput` with a message naming what to change) before
//! it touches a device or creates a file; the link MTU is decided once (the `.mtu()` given,
//! else an existing device's with `.no_configure()` or a given device's, else 1500) and is
//! the one the device, the IP core and TCP use. The bins (`cli::CommonArgs::start`) start
//! their stacks through this builder too, with [`check::Spelling::Flags`] so that messages
//! name their flags.

pub(crate) mod check;
#[cfg(test)]
mod tests;

use crate::actor::{Stack, StackConfig};
use crate::device::capture::Capture;
use crate::device::fault::{FaultDevice, FaultSpec};
use crate::device::pair::{pair, FaultConfig};
use crate::device::tap::{TapConfig, TapDevice};
use crate::device::tun::{TunConfig, TunDevice};
use crate::device::{Device, Medium};
use crate::proto::tcp::TcpConfig;
use crate::wire::EthernetAddress;
use check::{Opt, Spelling};
use slog::{info, Logger};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

/// The link MTU when nothing decides another (Ethernet's, RFC 894).
pub const DEFAULT_MTU: usize = 1500;
/// The stack's addresses when `.addr()` / `.addr6()` are not given.
pub const DEFAULT_ADDR: &str = "10.0.0.2/24";
pub const DEFAULT_ADDR6: &str = "fd00::2/64";
/// The stack's IPv6 link-local address, and the kernel side's default one (RFC 4291 §2.5.6).
const LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const HOST_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// What the stack runs on.
enum Choice {
    Unset,
    Tun(String),
    Tap(String),
    Given(Box<dyn Device>),
    /// An in-memory pair ([`StackBuilder::pair`]): the peer stack plays the kernel side.
    Pair,
}

impl Choice {
    fn medium(&self) -> Medium {
        match self {
            Choice::Tap(_) => Medium::Ethernet,
            Choice::Given(d) => d.medium(),
            _ => Medium::Ip,
        }
    }

    /// Whether the builder sets up the other side's addresses (kernel side or peer).
    fn owns_other_side(&self) -> bool {
        matches!(self, Choice::Tun(_) | Choice::Tap(_) | Choice::Pair)
    }
}

/// Settings for a [`Stack`], checked against each other by [`StackBuilder::build`]. Made by
/// [`Stack::builder`].
pub struct StackBuilder {
    device: Choice,
    /// A second device method called (`.tun()` after `.tap()`, ...): refused at build.
    twice: Option<&'static str>,
    mac: Option<EthernetAddress>,
    addr: Option<String>,
    addr6: Option<String>,
    host: Vec<String>,
    mtu: Option<usize>,
    offload: bool,
    configure: bool,
    gateways: Vec<IpAddr>,
    dns: Vec<IpAddr>,
    dhcp: bool,
    tcp: Option<TcpConfig>,
    spin: Option<Duration>,
    linger: Option<Duration>,
    log: Option<Logger>,
    pcap: Option<PathBuf>,
    trace_tcp: Option<PathBuf>,
    faults: (Option<FaultSpec>, Option<FaultSpec>),
    spelling: Spelling,
}

/// What the checks decided: the stack's configuration, the other side's addresses, the MTU.
pub(crate) struct Plan {
    pub(crate) cfg: StackConfig,
    pub(crate) host: Vec<(IpAddr, u8)>,
    pub(crate) mtu: usize,
}

impl Stack {
    /// Settings for a stack: choose a device (`.tun()`, `.tap()`, `.device()`, or end with
    /// `.pair()`), then `.build()`.
    pub fn builder() -> StackBuilder {
        StackBuilder {
            device: Choice::Unset,
            twice: None,
            mac: None,
            addr: None,
            addr6: None,
            host: Vec::new(),
            mtu: None,
            offload: false,
            configure: true,
            gateways: Vec::new(),
            dns: Vec::new(),
            dhcp: false,
            tcp: None,
            spin: None,
            linger: None,
            log: None,
            pcap: None,
            trace_tcp: None,
            faults: (None, None),
            spelling: Spelling::Api,
        }
    }
}

impl StackBuilder {
    fn choose(mut self, c: Choice, what: &'static str) -> Self {
        if !matches!(self.device, Choice::Unset) {
            self.twice = Some(what);
        }
        self.device = c;
        self
    }

    /// Run on TUN device `name` (`tun%d`: the kernel numbers it), created and configured
    /// unless `.no_configure()`. Needs root (or a device the user owns, with `.no_configure()`).
    pub fn tun(self, name: &str) -> Self {
        self.choose(Choice::Tun(name.into()), ".tun()")
    }

    /// Run on TAP device `name`: Ethernet frames, ARP and NDP (see `.mac()`, `.dhcp()`).
    pub fn tap(self, name: &str) -> Self {
        self.choose(Choice::Tap(name.into()), ".tap()")
    }

    /// Run on a device opened by the caller (its MTU and medium count; nothing is
    /// configured): e.g. one half of [`crate::device::pair::pair`].
    pub fn device(self, dev: Box<dyn Device>) -> Self {
        self.choose(Choice::Given(dev), ".device()")
    }

    /// The stack's MAC on an Ethernet device (default: a random locally administered one).
    pub fn mac(mut self, mac: EthernetAddress) -> Self {
        self.mac = Some(mac);
        self
    }

    /// The stack's IPv4 address with its prefix, `"10.0.0.2/24"` (the default).
    pub fn addr(mut self, cidr: &str) -> Self {
        self.addr = Some(cidr.into());
        self
    }

    /// The stack's IPv6 address with its prefix, `"fd00::2/64"` (the default); fe80::2 is
    /// always there too.
    pub fn addr6(mut self, cidr: &str) -> Self {
        self.addr6 = Some(cidr.into());
        self
    }

    /// An address of the kernel side (or of the peer, with `.pair()`), `"10.0.0.1"` (the
    /// stack's prefix) or `"10.0.0.1/24"`; repeat for more. A family given here loses its
    /// defaults (the subnet's first host; for IPv6 also fe80::1/64).
    pub fn host_addr(mut self, addr: &str) -> Self {
        self.host.push(addr.into());
        self
    }

    /// The link MTU (1280..=65535). Default: an existing device's, else 1500.
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// TUN only: exchange 64 KiB TCP super-segments with the kernel (`IFF_VNET_HDR`).
    pub fn offload(mut self) -> Self {
        self.offload = true;
        self
    }

    /// Attach to an existing, already configured device: its addresses and MTU count.
    pub fn no_configure(mut self) -> Self {
        self.configure = false;
        self
    }

    /// A default gateway (one per family) on a connected subnet.
    pub fn gateway(mut self, gw: IpAddr) -> Self {
        self.gateways.push(gw);
        self
    }

    /// A DNS server for the stub resolver (repeat for more, asked in order).
    pub fn dns(mut self, server: IpAddr) -> Self {
        self.dns.push(server);
        self
    }

    /// Get the IPv4 address, prefix, gateway and a DNS server by DHCP (Ethernet only; see
    /// `StackHandle::wait_dhcp`). Not with `.addr()`.
    pub fn dhcp(mut self) -> Self {
        self.dhcp = true;
        self
    }

    /// The TCP configuration (default: [`StackConfig::default`]'s, with BBR). Its `mtu` is
    /// replaced by the link MTU.
    pub fn tcp(mut self, tcp: TcpConfig) -> Self {
        self.tcp = Some(tcp);
        self
    }

    /// [`StackConfig::spin`].
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = Some(spin);
        self
    }

    /// [`StackConfig::close_linger`].
    pub fn close_linger(mut self, linger: Duration) -> Self {
        self.linger = Some(linger);
        self
    }

    /// Where the stack logs (default: nowhere).
    pub fn logger(mut self, log: Logger) -> Self {
        self.log = Some(log);
        self
    }

    /// Record every packet received and sent (after the faults) to a pcap file.
    pub fn pcap(mut self, path: impl Into<PathBuf>) -> Self {
        self.pcap = Some(path.into());
        self
    }

    /// Write a CSV trace of every TCP sender to a file ([`StackConfig::trace_tcp`]).
    pub fn trace_tcp(mut self, path: impl Into<PathBuf>) -> Self {
        self.trace_tcp = Some(path.into());
        self
    }

    /// Seeded faults on packets the stack receives (`rx`) and sends (`tx`).
    pub fn faults(mut self, rx: Option<FaultSpec>, tx: Option<FaultSpec>) -> Self {
        self.faults = (rx, tx);
        self
    }

    /// Name the bins' flags instead of the builder's methods in error messages.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn spelled_as_flags(mut self) -> Self {
        self.spelling = Spelling::Flags;
        self
    }

    /// Check every setting against the others without touching a device: `InvalidInput`
    /// with a one-line reason naming what to change. `.build()` calls it first.
    pub fn validate(&self) -> io::Result<()> {
        self.plan().map(|_| ()).map_err(invalid)
    }

    /// Open (and configure) the device, wrap it in the capture and faults asked for, and
    /// start the stack.
    pub fn build(mut self) -> io::Result<Stack> {
        let plan = self.plan().map_err(invalid)?;
        let log = self.log.clone().unwrap_or_else(crate::log::discard);
        let capture = self.capture(&log)?;
        let (dev, name) = self.open(&plan)?;
        self.recheck_mtu(name.as_deref(), plan.mtu)?;
        let dev = self.wrap(dev, capture, &log)?;
        let mut stack = Stack::new(dev, plan.cfg, log)?;
        stack.set_device_name(name);
        Ok(stack)
    }

    /// Two stacks back to back on an in-memory link, no root needed: the first with this
    /// builder's addresses (and faults, capture), the second, its peer, with the host
    /// addresses (by default 10.0.0.1/24, fe80::1, fd00::1/64).
    pub fn pair(mut self) -> io::Result<(Stack, Stack)> {
        if !matches!(self.device, Choice::Unset) {
            return Err(invalid(".pair() makes its own devices: drop .tun(), .tap() or .device()".into()));
        }
        self.device = Choice::Pair;
        let plan = self.plan().map_err(invalid)?;
        let log = self.log.clone().unwrap_or_else(crate::log::discard);
        let capture = self.capture(&log)?;
        let (da, db) = pair(plan.mtu, FaultConfig::default(), FaultConfig::default());
        let dev = self.wrap(Box::new(da), capture, &log)?;
        let peer = peer_config(&plan);
        let a = Stack::new(dev, plan.cfg, log.clone())?;
        let b = Stack::new(Box::new(db), peer, log)?;
        Ok((a, b))
    }

    /// The device-level checks: one device, names the kernel takes, options it supports.
    fn check_device(&self) -> Result<(), String> {
        if let Some(what) = self.twice {
            return Err(format!("{what} after another device: choose one of .tun(), .tap(), .device()"));
        }
        match &self.device {
            Choice::Unset => return Err("no device: choose .tun(name), .tap(name) or .device(dev)".into()),
            Choice::Tun(n) | Choice::Tap(n) => check::iface(n, self.spelling)?,
            Choice::Given(_) | Choice::Pair => {
                if !self.configure {
                    return Err(".no_configure() is for .tun() and .tap(): nothing configures this device".into());
                }
                if matches!(self.device, Choice::Given(_)) && !self.host.is_empty() {
                    return Err(".host_addr() is for .tun(), .tap() and .pair(): a given device is set up \
                                by its owner"
                        .into());
                }
            }
        }
        let ethernet = self.device.medium() == Medium::Ethernet;
        if self.offload && !matches!(self.device, Choice::Tun(_)) {
            return Err("offload is for TUN devices (.tun()): other devices carry no virtio-net header".into());
        }
        if self.mac.is_some_and(|m| m.0[0] & 1 != 0 || m.0 == [0; 6]) {
            return Err(format!("MAC {}: a station needs a unicast, non-zero MAC", self.mac.unwrap_or_default()));
        }
        if self.mac.is_some() && !ethernet {
            return Err("a MAC needs an Ethernet device (.tap()): TUN carries bare IP packets".into());
        }
        if self.dhcp && !ethernet {
            return Err(
                "DHCP needs an Ethernet (TAP) device: its messages are link-level broadcasts (use .tap())".into()
            );
        }
        if self.dhcp && self.addr.is_some() {
            return Err("DHCP gives the IPv4 address: drop .addr() or .dhcp()".into());
        }
        self.check_faults()
    }

    fn check_faults(&self) -> Result<(), String> {
        for s in self.faults.0.iter().chain(self.faults.1.iter()) {
            s.validate()?;
            if s.corrupt > 0.0 && self.offload {
                return Err("corruption cannot be used with offload: the kernel completes the checksums \
                            of offloaded super-segments after the flip, so it would go undetected"
                    .into());
            }
        }
        Ok(())
    }

    /// The stack's address of one family: `cidr`, or the default.
    fn ours(&self, cidr: Option<&str>, v6: bool) -> Result<(IpAddr, u8), String> {
        let (o, default) = if v6 { (Opt::Addr6, DEFAULT_ADDR6) } else { (Opt::Addr, DEFAULT_ADDR) };
        let s = cidr.unwrap_or(default);
        let sp = self.spelling;
        let (ip, len) = check::parse_cidr(s, o, sp)?;
        if ip.is_ipv6() != v6 {
            return Err(format!("{}: not an {} address", sp.with(o, s), if v6 { "IPv6" } else { "IPv4" }));
        }
        let unicast = match ip {
            IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback()),
            IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
        };
        if !unicast {
            return Err(format!("{}: the stack needs a unicast address", sp.with(o, s)));
        }
        let len = len.ok_or_else(|| {
            format!("{}: give the prefix length too, e.g. {s}/{} (the subnet is given once, here)", sp.with(o, s), {
                if v6 {
                    64
                } else {
                    24
                }
            })
        })?;
        Ok((ip, len))
    }

    /// The other side's addresses: `.host_addr()`s, a family not given getting its defaults.
    fn hosts(&self, ours4: (IpAddr, u8), ours6: (IpAddr, u8)) -> Result<Vec<(IpAddr, u8)>, String> {
        let sp = self.spelling;
        let mut v = Vec::new();
        for s in &self.host {
            let (ip, len) = check::parse_cidr(s, Opt::HostAddr, sp)?;
            let ours = if ip.is_ipv4() { ours4.1 } else { ours6.1 };
            v.push((ip, len.unwrap_or(if check::is_link_local(&ip) { 64 } else { ours })));
        }
        for (ours, o) in [(ours4, Opt::Addr), (ours6, Opt::Addr6)] {
            if v.iter().any(|(h, _)| h.is_ipv4() == ours.0.is_ipv4()) {
                continue;
            }
            if ours.0.is_ipv6() {
                v.push((IpAddr::V6(HOST_LINK_LOCAL), 64));
            }
            let Some(h) = check::first_host(ours.0, ours.1) else {
                let mine = format!("{}/{}", ours.0, ours.1);
                return Err(format!(
                    "{}: the subnet has no room for the kernel side's address: give a shorter prefix or {}",
                    sp.with(o, mine),
                    sp.name(Opt::HostAddr)
                ));
            };
            v.push((h, ours.1));
        }
        Ok(v)
    }

    /// Our addresses against the other side's: not equal, inside its subnet, same prefix.
    fn check_addresses(&self, ours: &[(IpAddr, u8)], host: &[(IpAddr, u8)]) -> Result<(), String> {
        for &(a, len) in ours {
            check::ours_vs_host(a, host, self.spelling)?;
            let clash =
                host.iter().find(|(h, l)| !check::is_link_local(h) && check::same_subnet(*h, a, *l) && *l != len);
            if let Some((h, l)) = clash {
                return Err(format!(
                    "the stack's {a}/{len} and the kernel side's {h}/{l} differ in prefix length: give the \
                     subnet once, with the stack's address, and {} without a prefix",
                    self.spelling.name(Opt::HostAddr)
                ));
            }
        }
        Ok(())
    }

    /// The link MTU: the one given, else an existing device's (`.no_configure()`) or a given
    /// device's, else [`DEFAULT_MTU`]; a given MTU that differs from the device's is refused.
    fn link_mtu(&self) -> Result<usize, String> {
        let sp = self.spelling;
        let mtu = match (&self.device, self.mtu) {
            (Choice::Given(d), want) => {
                if want.is_some_and(|w| w != d.mtu()) {
                    return Err(format!(
                        "the device's MTU is {} but {} asks for {}: leave .mtu() out to take the device's",
                        d.mtu(),
                        sp.with(Opt::Mtu, want.unwrap_or_default()),
                        want.unwrap_or_default()
                    ));
                }
                d.mtu()
            }
            (Choice::Tun(n) | Choice::Tap(n), want) if !self.configure => match (want, check::device_mtu(n)) {
                (Some(w), Some(d)) => {
                    check::existing_mtu(n, d, w, sp)?;
                    w
                }
                (None, Some(d)) => d,
                (w, None) => w.unwrap_or(DEFAULT_MTU),
            },
            (_, want) => want.unwrap_or(DEFAULT_MTU),
        };
        check::mtu(mtu, sp)?;
        Ok(mtu)
    }

    /// Every check, and the configuration they decide.
    pub(crate) fn plan(&self) -> Result<Plan, String> {
        let plan = self.plan_pure()?;
        let mtu = self.link_mtu()?;
        Ok(Plan { cfg: StackConfig { mtu: Some(mtu), ..plan.cfg }, mtu, ..plan })
    }

    /// The checks that read nothing but the settings (the bins' `validate`): all but the
    /// existing device's MTU.
    pub(crate) fn plan_pure(&self) -> Result<Plan, String> {
        self.check_device()?;
        if let Some(m) = self.mtu {
            check::mtu(m, self.spelling)?;
        }
        let ours4 = self.ours(self.addr.as_deref(), false)?;
        let ours6 = self.ours(self.addr6.as_deref(), true)?;
        let host = self.hosts(ours4, ours6)?;
        if self.configure && self.device.owns_other_side() {
            let ours: &[(IpAddr, u8)] = if self.dhcp { &[ours6] } else { &[ours4, ours6] };
            self.check_addresses(ours, &host)?;
        }
        let cfg = self.stack_config(ours4, ours6)?;
        Ok(Plan { cfg, host, mtu: self.mtu.unwrap_or(DEFAULT_MTU) })
    }

    /// The stack's configuration from the settings (the MTU is filled in by `plan`).
    fn stack_config(&self, ours4: (IpAddr, u8), ours6: (IpAddr, u8)) -> Result<StackConfig, String> {
        let mut cfg = StackConfig::default();
        let (IpAddr::V4(a4), IpAddr::V6(a6)) = (ours4.0, ours6.0) else {
            return Err("internal: address families swapped".into());
        };
        cfg.ip.v4 = if self.dhcp { Vec::new() } else { vec![a4] };
        cfg.ip.v4_prefix = ours4.1;
        cfg.ip.v6 = vec![LINK_LOCAL, a6];
        cfg.ip.v6_prefix = ours6.1;
        for g in &self.gateways {
            let dup = match g {
                IpAddr::V4(a) => cfg.ip.gateway4.replace(*a).is_some(),
                IpAddr::V6(a) => cfg.ip.gateway6.replace(*a).is_some(),
            };
            if dup {
                return Err(format!("gateway {g}: one default gateway per family"));
            }
        }
        if self.dhcp && cfg.ip.gateway4.is_some() {
            return Err("DHCP gives the IPv4 gateway: drop the IPv4 .gateway() or .dhcp()".into());
        }
        crate::proto::routing::check_gateways(&cfg.ip).map_err(|e| e.to_string())?;
        cfg.dns = self.dns.clone();
        cfg.trace_tcp = self.trace_tcp.clone();
        cfg.dhcp = self.dhcp;
        if let Some(t) = &self.tcp {
            cfg.tcp = t.clone();
        }
        cfg.spin = self.spin.unwrap_or(cfg.spin);
        cfg.close_linger = self.linger.unwrap_or(cfg.close_linger);
        if let Some(mac) = self.mac {
            cfg.link = Some(crate::proto::link::LinkConfig { mac, ..Default::default() });
        }
        Ok(cfg)
    }

    /// The pcap file, created before the device is opened (a bad path touches nothing).
    fn capture(&self, log: &Logger) -> io::Result<Option<std::sync::Arc<Capture>>> {
        // The TCP trace's file too, so an unwritable path is an error here, as the pcap's
        // is, rather than a warning from the engine once it runs (it truncates it again).
        if let Some(t) = &self.trace_tcp {
            std::fs::File::create(t)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot create TCP trace file {}: {e}", t.display())))?;
        }
        let Some(path) = &self.pcap else { return Ok(None) };
        let cap = Capture::create(path, self.device.medium())?;
        info!(log, "capturing to pcap"; "file" => %path.display());
        Ok(Some(cap))
    }

    /// Open the chosen device (configuring its kernel side); its real name for TUN/TAP.
    fn open(&mut self, plan: &Plan) -> io::Result<(Box<dyn Device>, Option<String>)> {
        let host_addrs: Vec<String> = plan.host.iter().map(|(a, l)| format!("{a}/{l}")).collect();
        match std::mem::replace(&mut self.device, Choice::Unset) {
            Choice::Tun(name) => {
                let cfg = TunConfig {
                    name,
                    mtu: plan.mtu,
                    configure: self.configure,
                    host_addrs,
                    offload: self.offload,
                    ..TunConfig::default()
                };
                let d = TunDevice::open(&cfg)?;
                let name = d.name().to_string();
                Ok((Box::new(d), Some(name)))
            }
            Choice::Tap(name) => {
                let cfg =
                    TapConfig { name, mtu: plan.mtu, configure: self.configure, host_addrs, ..TapConfig::default() };
                let d = TapDevice::open(&cfg)?;
                let name = d.name().to_string();
                Ok((Box::new(d), Some(name)))
            }
            Choice::Given(d) => Ok((d, None)),
            Choice::Unset | Choice::Pair => Err(invalid("no device: choose .tun(), .tap() or .device()".into())),
        }
    }

    /// With `.no_configure()`: the device attached to still has the MTU planned (it may have
    /// changed between the check and the open). It also gives the kernel a moment after the
    /// attach, as the bins' set-up did before the builder: without it the arping bin on a
    /// premade TAP device lost its first reply when tests ran back to back
    /// (tests/tap_arping.rs; probably the carrier's linkwatch delay).
    fn recheck_mtu(&self, name: Option<&str>, mtu: usize) -> io::Result<()> {
        let Some(name) = name.filter(|_| !self.configure) else { return Ok(()) };
        match check::device_mtu(name) {
            Some(d) => check::existing_mtu(name, d, mtu, self.spelling).map_err(invalid),
            None => Ok(()),
        }
    }

    /// Put the faults (then the capture, outermost towards the stack) around `dev`.
    fn wrap(
        &self,
        dev: Box<dyn Device>,
        capture: Option<std::sync::Arc<Capture>>,
        log: &Logger,
    ) -> io::Result<Box<dyn Device>> {
        let keep = |s: Option<FaultSpec>| s.filter(|s| !s.is_clean());
        let (rx, tx) = (keep(self.faults.0), keep(self.faults.1));
        let faulty = rx.is_some() || tx.is_some();
        if faulty {
            info!(log, "fault injection on"; "rx" => ?rx, "tx" => ?tx);
        }
        let fault_log = log.clone();
        let inject = move |d: Box<dyn Device>| -> io::Result<Box<dyn Device>> {
            if faulty {
                Ok(Box::new(FaultDevice::new(d, rx, tx, fault_log)?))
            } else {
                Ok(d)
            }
        };
        match capture {
            Some(cap) => cap.wrap_around(dev, inject),
            None => inject(dev),
        }
    }
}

/// The peer of `.pair()`: the host addresses, our TCP settings and link MTU.
fn peer_config(plan: &Plan) -> StackConfig {
    let mut c = StackConfig { mtu: plan.mtu.into(), ..StackConfig::default() };
    c.tcp = plan.cfg.tcp.clone();
    c.spin = plan.cfg.spin;
    c.ip.v4 = plan.host.iter().filter_map(|(a, _)| if let IpAddr::V4(a) = a { Some(*a) } else { None }).collect();
    c.ip.v6 = plan.host.iter().filter_map(|(a, _)| if let IpAddr::V6(a) = a { Some(*a) } else { None }).collect();
    let prefix = |v4: bool| plan.host.iter().find(|(a, _)| a.is_ipv4() == v4 && !check::is_link_local(a)).map(|h| h.1);
    c.ip.v4_prefix = prefix(true).unwrap_or(c.ip.v4_prefix);
    c.ip.v6_prefix = prefix(false).unwrap_or(c.ip.v6_prefix);
    c
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}
