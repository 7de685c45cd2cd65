//! Flags shared by every bin, and starting a stack on a TUN device from them: the flags
//! become a [`StackBuilder`] (the one set-up path, whose checks name the flags here), after
//! the checks that are the bins' own (flag syntax, addresses already in the namespace).

use crate::actor::{Stack, StackConfig};
use crate::builder::check::{is_link_local, same_subnet};
use crate::builder::StackBuilder;
use crate::device::fault::FaultSpec;
use clap::{Args, ValueEnum};
use slog::{info, Logger};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Which directions the fault flags apply to.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultDir {
    /// Both ways.
    Both,
    /// Only packets the stack receives (kernel → stack).
    In,
    /// Only packets the stack sends (stack → kernel).
    Out,
}

/// A time flag of the bins (`-i`, `-W`, `-w`): seconds in [0.001, 3600].
pub fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if (0.001..=3600.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s}: must be between 0.001 and 3600 seconds"))
    }
}

/// A probability flag: a number in `0..=1`.
fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("a probability must be between 0 and 1 (0.05 is 5 %), got {s}"))
    }
}

/// A MAC flag: six hex octets separated by colons, unicast.
fn mac(s: &str) -> Result<crate::wire::EthernetAddress, String> {
    let octets: Vec<&str> = s.split(':').collect();
    let bad = || format!("`{s}` is not a MAC address like 02:00:00:00:00:02");
    if octets.len() != 6 {
        return Err(bad());
    }
    let mut b = [0u8; 6];
    for (d, o) in b.iter_mut().zip(&octets) {
        if o.is_empty() || o.len() > 2 {
            return Err(bad());
        }
        *d = u8::from_str_radix(o, 16).map_err(|_| bad())?;
    }
    // IEEE 802: a station's own address is an individual (I/G bit clear), non-zero one.
    if b[0] & 1 != 0 || b == [0; 6] {
        return Err(format!("`{s}` is a group or zero address; a station needs a unicast MAC"));
    }
    Ok(crate::wire::EthernetAddress(b))
}

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Device name (default tun0, or tap0 with --tap).
    #[arg(long, default_value = "tun0")]
    pub iface: String,
    /// Run on a TAP device (Ethernet frames, ARP, NDP) instead of TUN.
    #[arg(long, conflicts_with = "offload")]
    pub tap: bool,
    /// The stack's MAC on a TAP device (default: a random locally administered one).
    #[arg(long, value_name = "MAC", value_parser = mac, requires = "tap")]
    pub mac: Option<crate::wire::EthernetAddress>,
    /// Default gateway, IPv4 or IPv6 (repeat for one of each), on a connected subnet. Without
    /// one, off-subnet destinations are unreachable. On TUN it lets them out the device (the
    /// kernel side forwards); on TAP they go to the gateway's MAC.
    #[arg(long = "gateway", value_name = "ADDR")]
    pub gateways: Vec<IpAddr>,
    /// DNS server for names (the stub resolver asks over the stack; repeat for more).
    #[arg(long = "dns", value_name = "ADDR")]
    pub dns: Vec<IpAddr>,
    /// The stack's IPv4 address.
    #[arg(long, default_value = "10.0.0.2")]
    pub addr: Ipv4Addr,
    /// Get the IPv4 address, prefix, gateway and DNS server by DHCP (TAP only); the bin
    /// waits up to 30 s for the lease and releases it on exit.
    #[arg(long, requires = "tap", conflicts_with = "addr")]
    pub dhcp: bool,
    /// The stack's IPv6 addresses (besides fe80::2).
    #[arg(long, default_value = "fd00::2")]
    pub addr6: Ipv6Addr,
    /// Addresses with prefix length for the kernel side of the device (repeat the flag for
    /// several). A family not given keeps its defaults (10.0.0.1/24; fe80::1/64, fd00::1/64).
    #[arg(long = "host-addr", value_name = "ADDR/LEN", default_values = ["10.0.0.1/24", "fe80::1/64", "fd00::1/64"])]
    pub host_addrs: Vec<String>,
    /// Link MTU.
    #[arg(long, default_value_t = 1500)]
    pub mtu: usize,
    /// Attach to an existing, already configured device (no root needed if you own it).
    #[arg(long)]
    pub no_configure: bool,
    /// Exchange 64 KiB TCP super-segments with the kernel (IFF_VNET_HDR + TSO): much faster;
    /// tcpdump then shows segments longer than the MTU with partial checksums.
    #[arg(long, conflicts_with = "corrupt")]
    pub offload: bool,
    /// How long (µs) the actors poll an empty inbox (dev-rx: the device) before they park
    /// (StackConfig::spin): lower latency for a little CPU after each burst; 0 parks at once.
    #[arg(long, value_name = "US", default_value_t = crate::actor::SPIN.as_micros() as u64)]
    pub spin_us: u64,
    /// TCP congestion control: bbr (default, as the Linux peers here), cubic or newreno.
    #[arg(long, value_name = "ALGO", default_value = "bbr")]
    pub congestion: crate::proto::tcp::CongestionAlgorithm,
    /// Log level: off, error, warn, info, debug, trace (default: RUST_LOG, else info).
    #[arg(long, value_parser = ["off", "error", "warn", "info", "debug", "trace"])]
    pub log: Option<String>,
    /// Record every packet the stack receives and sends (after the fault injector) to FILE,
    /// in pcap format for `tcpdump -r FILE` or Wireshark.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
    /// Write a CSV trace of every TCP sender (segments sent, retransmitted, acknowledged, with
    /// cwnd, ssthresh, in flight, srtt, rto) to FILE; `scripts/plot_tcp.py FILE` draws it.
    #[arg(long, value_name = "FILE")]
    pub trace_tcp: Option<std::path::PathBuf>,
    /// Print the stack's counters (nstat's names, non-zero ones) on stderr at exit.
    #[arg(long)]
    pub stats: bool,
    /// Serve no control socket (`netstack ctl stats`, `netstack ctl ss`).
    #[arg(long)]
    pub no_ctl: bool,
    /// Use IPv6 (same as the positional `v6`).
    #[arg(long)]
    pub v6: bool,
    /// `v6` selects IPv6, as in the original seeds' usage.
    #[arg(value_parser = ["v6"])]
    pub mode: Option<String>,
    /// Fault injection: probability (0..=1) that a packet is dropped.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability, help_heading = "Faults")]
    pub drop: f64,
    /// Probability that a packet is delivered twice.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability, help_heading = "Faults")]
    pub dup: f64,
    /// Probability that a packet is held back 1 ms, so later packets overtake it.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability, help_heading = "Faults")]
    pub reorder: f64,
    /// Probability that one checksum-covered bit of a packet is flipped (the receiver must drop
    /// it). Not with --offload, whose partial checksums would hide the flip.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability, help_heading = "Faults")]
    pub corrupt: f64,
    /// Fixed one-way delay added to every packet, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0, help_heading = "Faults",
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub delay_ms: u64,
    /// Extra random delay in [0, MS) per packet (packets may overtake each other).
    #[arg(long, value_name = "MS", default_value_t = 0, help_heading = "Faults",
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub jitter_ms: u64,
    /// Seed of the fault schedule (the outgoing direction uses a seed derived from it).
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Faults")]
    pub seed: u64,
    /// Directions the faults apply to.
    #[arg(long, value_enum, default_value_t = FaultDir::Both, help_heading = "Faults")]
    pub fault_dir: FaultDir,
}

/// The device actually opened (the kernel names it when `--iface` has a `%d`).
static OPENED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// The IPv4 address a DHCP lease gave (`--dhcp`).
static LEASED: std::sync::OnceLock<Ipv4Addr> = std::sync::OnceLock::new();

const DEFAULT_HOST_V4: [&str; 1] = ["10.0.0.1/24"];
const DEFAULT_HOST_V6: [&str; 2] = ["fe80::1/64", "fd00::1/64"];

/// `ADDR/LEN` as an address and prefix length, or a one-line reason.
fn parse_prefix(a: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = a.split_once('/').ok_or_else(|| {
        format!("--host-addr {a} needs a prefix length, e.g. {a}/24 (a /32 would leave the stack unreachable)")
    })?;
    let ip: IpAddr = ip.parse().map_err(|_| format!("--host-addr {a}: `{ip}` is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match len.parse::<u8>() {
        Ok(l) if l <= max => Ok((ip, l)),
        _ => Err(format!("--host-addr {a}: the prefix length must be 0..={max}")),
    }
}

impl CommonArgs {
    /// The kernel side's addresses: `--host-addr`, with the defaults of a family not given.
    pub fn kernel_addrs(&self) -> Vec<String> {
        let mut v = self.host_addrs.clone();
        let has = |v6: bool| self.host_addrs.iter().any(|a| a.contains(':') == v6);
        if !has(false) {
            v.extend(DEFAULT_HOST_V4.iter().map(|s| s.to_string()));
        }
        if !has(true) {
            v.extend(DEFAULT_HOST_V6.iter().map(|s| s.to_string()));
        }
        v
    }

    /// Check the flags against each other before anything is touched: a one-line reason
    /// that says what to change (the builder's checks, naming the flags).
    pub fn validate(&self) -> Result<(), String> {
        self.builder()?.plan_pure().map(|_| ())
    }

    /// The flags as a stack builder (not yet checked against each other: `validate`).
    pub fn builder(&self) -> Result<StackBuilder, String> {
        let host: Vec<(IpAddr, u8)> = self.kernel_addrs().iter().map(|a| parse_prefix(a)).collect::<Result<_, _>>()?;
        // The subnet is the kernel side's that holds the address (the builder checks the rest).
        let cidr = |ours: IpAddr, default: u8| {
            let len =
                host.iter().find(|(h, l)| !is_link_local(h) && same_subnet(*h, ours, *l)).map_or(default, |h| h.1);
            format!("{ours}/{len}")
        };
        let mut b = Stack::builder().spelled_as_flags();
        b = if self.tap { b.tap(&self.device_name()) } else { b.tun(&self.iface) };
        b = if self.dhcp { b.dhcp() } else { b.addr(&cidr(IpAddr::V4(self.addr), 24)) };
        b = b.addr6(&cidr(IpAddr::V6(self.addr6), 64)).mtu(self.mtu);
        for h in self.kernel_addrs() {
            b = b.host_addr(&h);
        }
        if self.no_configure {
            b = b.no_configure();
        }
        if self.offload {
            b = b.offload();
        }
        if let Some(mac) = self.mac {
            b = b.mac(mac);
        }
        for g in &self.gateways {
            b = b.gateway(*g);
        }
        for d in &self.dns {
            b = b.dns(*d);
        }
        let tcp = crate::proto::tcp::TcpConfig { congestion: self.congestion, ..StackConfig::default().tcp };
        let (rx, tx) = self.fault_specs();
        b = b.tcp(tcp).spin(Duration::from_micros(self.spin_us)).faults(rx, tx);
        if let Some(p) = &self.pcap {
            b = b.pcap(p);
        }
        if let Some(p) = &self.trace_tcp {
            b = b.trace_tcp(p);
        }
        Ok(b)
    }

    /// Before creating `device_name()`: none of the kernel-side addresses may already be on
    /// another interface of this network namespace (a second bin with `--iface tun1` and the
    /// same addresses would clash, and its connections time out).
    pub fn check_namespace(&self) -> Result<(), String> {
        if self.no_configure {
            return Ok(());
        }
        let Ok(out) = std::process::Command::new("ip").args(["-o", "addr", "show"]).output() else {
            return Ok(()); // no `ip`: the device set-up will say so
        };
        let name = self.device_name();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(dev), Some(addr)) = (f.get(1), f.get(3)) else { continue };
            if *dev == name {
                continue;
            }
            let Ok((ip, _)) = parse_prefix(addr) else { continue };
            if let Some(mine) = self.kernel_addrs().into_iter().find(|a| a.split('/').next() == Some(&ip.to_string())) {
                if !is_link_local(&ip) {
                    return Err(format!(
                        "{mine} is already on {dev} in this network namespace: another bin may be running \
                         there; give {name} other addresses (--addr, --addr6, --host-addr) or stop it"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The device to open: `--iface`, where the default tun0 means tap0 with `--tap`; once a
    /// device is open, its real name.
    pub fn device_name(&self) -> String {
        if let Some(n) = OPENED.get() {
            return n.clone();
        }
        if self.tap && self.iface == "tun0" {
            "tap0".into()
        } else {
            self.iface.clone()
        }
    }

    pub fn ipv6(&self) -> bool {
        self.v6 || self.mode.is_some()
    }

    /// The kernel side's address of the chosen family (the peer the bins talk to).
    pub fn host_ip(&self) -> IpAddr {
        let want_v6 = self.ipv6();
        self.kernel_addrs()
            .iter()
            .filter_map(|a| a.split('/').next()?.parse::<IpAddr>().ok())
            .find(|ip| ip.is_ipv6() == want_v6 && !is_link_local(ip))
            .unwrap_or(if want_v6 {
                IpAddr::V6("fd00::1".parse().unwrap())
            } else {
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
            })
    }

    /// The stack's own address of the chosen family (with `--dhcp`, the leased one).
    pub fn local_ip(&self) -> IpAddr {
        if self.ipv6() {
            IpAddr::V6(self.addr6)
        } else {
            IpAddr::V4(self.local_v4())
        }
    }

    /// The stack's IPv4 address: `--addr`, or the lease's once `--dhcp` has one.
    pub fn local_v4(&self) -> Ipv4Addr {
        LEASED.get().copied().unwrap_or(self.addr)
    }

    /// The faults for packets the stack receives and sends, or `None` for a clean direction.
    /// The outgoing direction's seed differs from the incoming one's, so the two schedules are
    /// independent.
    pub fn fault_specs(&self) -> (Option<FaultSpec>, Option<FaultSpec>) {
        let spec = FaultSpec {
            seed: self.seed,
            drop: self.drop,
            dup: self.dup,
            reorder: self.reorder,
            corrupt: self.corrupt,
            delay: Duration::from_millis(self.delay_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            ..FaultSpec::default()
        };
        if spec.is_clean() {
            return (None, None);
        }
        let out = FaultSpec { seed: self.seed ^ 0x9e37_79b9_7f4a_7c15, ..spec };
        match self.fault_dir {
            FaultDir::Both => (Some(spec), Some(out)),
            FaultDir::In => (Some(spec), None),
            FaultDir::Out => (None, Some(out)),
        }
    }

    /// Stop the stack (lingering for closing connections), then, with `--stats`, print its
    /// counters on stderr.
    pub fn finish(&self, stack: Stack) {
        let handle = stack.handle();
        stack.shutdown();
        if self.stats {
            eprint!(
                "{}",
                handle.stats().nonzero().map(|c| format!("{:<32}{:>16}\n", c.name, c.value)).collect::<String>()
            );
        }
    }

    /// Wait for the DHCP lease and print it, or exit 1 saying what to check.
    fn wait_for_lease(&self, s: &Stack) {
        match s.wait_dhcp(DHCP_WAIT) {
            Ok(l) => {
                let _ = LEASED.set(l.addr);
                let gw = l.gateway.map_or("none".into(), |g| g.to_string());
                let dns: Vec<String> = l.dns.iter().map(|a| a.to_string()).collect();
                let lease = l.lease.map_or("infinite".into(), |d| format!("{} s", d.as_secs()));
                eprintln!(
                    "dhcp: {}/{} from {}, gateway {gw}, dns [{}], lease {lease}",
                    l.addr,
                    l.prefix,
                    l.server,
                    dns.join(", ")
                );
            }
            Err(e) => {
                eprintln!("error: {e}: is a DHCP server answering on {}?", self.device_name());
                std::process::exit(1);
            }
        }
    }

    /// The control socket for `netstack ctl` (kept for the life of the process; a failure
    /// only warns: the bin works without it).
    fn serve_control(&self, stack: &Stack, log: &Logger) {
        static CONTROL: std::sync::OnceLock<crate::ctl::ControlServer> = std::sync::OnceLock::new();
        match crate::ctl::serve(stack.handle(), &self.device_name()) {
            Ok(c) => {
                info!(log, "control socket"; "path" => %c.path().display());
                let _ = CONTROL.set(c);
            }
            Err(e) => slog::warn!(log, "no control socket (netstack ctl will not see this bin)"; "error" => %e),
        }
    }

    /// Open the device and start the stack, or print a one-line reason and exit: 2 for
    /// flags that do not fit together (nothing touched), 1 when the set-up fails.
    pub fn start(&self) -> (Stack, Logger) {
        crate::device::sys::default_sigpipe();
        let log = crate::log::logger(self.log.as_deref());
        let checked = self.builder().and_then(|b| {
            b.plan_pure()?;
            self.check_namespace()?;
            b.validate().map_err(|e| e.to_string())?;
            Ok(b)
        });
        let builder = checked.unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        });
        match builder.logger(log.clone()).build() {
            Ok(s) => {
                if let Some(name) = s.device_name() {
                    let _ = OPENED.set(name.to_string());
                }
                if !self.no_ctl {
                    self.serve_control(&s, &log);
                }
                if self.dhcp {
                    self.wait_for_lease(&s);
                }
                (s, log)
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// How long `CommonArgs::start` waits for a DHCP lease (DISCOVERs at 0, ~4, ~12 and ~28 s).
pub const DHCP_WAIT: Duration = Duration::from_secs(30);

/// Block until Ctrl-C or SIGTERM.
pub fn wait_for_ctrl_c() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let _ = ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    });
    let _ = rx.recv();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        c: CommonArgs,
    }

    fn check(args: &[&str]) -> Result<(), String> {
        let t = T::try_parse_from(std::iter::once("bin").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        t.c.validate()
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&["--tap"]), Ok(()));
    }

    #[test]
    fn bad_configurations_are_refused_with_what_to_change() {
        let err = |a: &[&str]| check(a).unwrap_err();
        assert!(err(&["--mtu", "1000"]).contains("at least 1280"));
        assert!(err(&["--host-addr", "10.0.0.1"]).contains("needs a prefix length"));
        assert!(err(&["--host-addr", "10.0.0.1/33"]).contains("0..=32"));
        assert!(err(&["--addr", "10.0.1.2"]).contains("outside the kernel side's subnet"));
        assert!(err(&["--addr", "10.0.0.1"]).contains("also the kernel side's"));
        assert!(err(&["--addr6", "fd01::2"]).contains("outside"));
        assert!(err(&["--iface", ""]).contains("1 to 15"));
        assert!(err(&["--iface", "a-twenty-two-chars-nm"]).contains("1 to 15"));
        assert!(err(&["--log", "verbose"]).contains("invalid value"));
        // --no-configure: the device's addresses count, not the flags.
        assert_eq!(check(&["--no-configure", "--addr", "192.168.1.2"]), Ok(()));
    }

    #[test]
    fn a_family_not_given_keeps_its_defaults() {
        let t = T::try_parse_from(["bin", "--host-addr", "10.1.0.1/24", "--addr", "10.1.0.2"]).unwrap();
        assert_eq!(t.c.kernel_addrs(), ["10.1.0.1/24", "fe80::1/64", "fd00::1/64"]);
        assert_eq!(t.c.validate(), Ok(()));
        let t = T::try_parse_from(["bin", "--host-addr", "fd09::1/64", "--addr6", "fd09::2"]).unwrap();
        assert_eq!(t.c.kernel_addrs(), ["fd09::1/64", "10.0.0.1/24"]);
        assert_eq!(t.c.validate(), Ok(()));
    }
}
