//! Flags shared by every bin, and starting a stack on a TUN device from them.

use crate::actor::{Stack, StackConfig};
use crate::device::fault::{FaultDevice, FaultSpec};
use crate::device::tap::{TapConfig, TapDevice};
use crate::device::tun::{TunConfig, TunDevice};
use crate::device::Device;
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
    /// Default gateway on a TAP device, IPv4 or IPv6 (repeat for one of each).
    #[arg(long = "gateway", value_name = "ADDR", requires = "tap")]
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
    /// Addresses for the kernel side of the device (repeat the flag for several).
    #[arg(long = "host-addr", default_values = ["10.0.0.1/24", "fe80::1/64", "fd00::1/64"])]
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
    /// How long (µs) the actors poll an empty inbox before they park (StackConfig::spin):
    /// lower latency for a little CPU after each burst; 0 parks at once.
    #[arg(long, value_name = "US", default_value_t = crate::actor::SPIN.as_micros() as u64)]
    pub spin_us: u64,
    /// TCP congestion control: bbr (default, as the Linux peers here), cubic or newreno.
    #[arg(long, value_name = "ALGO", default_value = "bbr")]
    pub congestion: crate::proto::tcp::CongestionAlgorithm,
    /// Log level: off, error, warn, info, debug, trace (default: RUST_LOG, else info).
    #[arg(long)]
    pub log: Option<String>,
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

impl CommonArgs {
    /// The device to open: `--iface`, where the default tun0 means tap0 with `--tap`.
    pub fn device_name(&self) -> String {
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
        self.host_addrs
            .iter()
            .filter_map(|a| a.split('/').next()?.parse::<IpAddr>().ok())
            .find(|ip| ip.is_ipv6() == want_v6 && !is_link_local(ip))
            .unwrap_or(if want_v6 {
                IpAddr::V6("fd00::1".parse().unwrap())
            } else {
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
            })
    }

    /// The stack's own address of the chosen family.
    pub fn local_ip(&self) -> IpAddr {
        if self.ipv6() {
            IpAddr::V6(self.addr6)
        } else {
            IpAddr::V4(self.addr)
        }
    }

    pub fn stack_config(&self) -> StackConfig {
        let mut cfg = StackConfig::default();
        cfg.ip.v4 = vec![self.addr];
        cfg.ip.v6 = vec!["fe80::2".parse().unwrap(), self.addr6];
        cfg.ip.mtu = self.mtu;
        cfg.tcp.congestion = self.congestion;
        cfg.spin = std::time::Duration::from_micros(self.spin_us);
        cfg.dns = self.dns.clone();
        cfg.dhcp = self.dhcp;
        if self.tap {
            let mut link = crate::proto::link::LinkConfig {
                mac: self.mac.unwrap_or_else(|| crate::proto::link::ethernet::local_mac(rand::random())),
                ..Default::default()
            };
            for g in &self.gateways {
                match g {
                    IpAddr::V4(a) => link.gateway4 = Some(*a),
                    IpAddr::V6(a) => link.gateway6 = Some(*a),
                }
            }
            cfg.link = Some(link);
        }
        cfg
    }

    pub fn tap_config(&self) -> TapConfig {
        TapConfig {
            name: self.device_name(),
            mtu: self.mtu,
            configure: !self.no_configure,
            host_addrs: self.host_addrs.clone(),
            ..TapConfig::default()
        }
    }

    pub fn tun_config(&self) -> TunConfig {
        TunConfig {
            name: self.iface.clone(),
            mtu: self.mtu,
            configure: !self.no_configure,
            host_addrs: self.host_addrs.clone(),
            offload: self.offload,
            ..TunConfig::default()
        }
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

    /// Open the device and start the stack, or print a one-line reason and exit(1).
    pub fn start(&self) -> (Stack, Logger) {
        let log = crate::log::logger(self.log.as_deref());
        let fail = |what: &str, e: std::io::Error| -> ! {
            eprintln!("error: {what}{e}");
            std::process::exit(1)
        };
        let mut dev: Box<dyn Device> = if self.tap {
            Box::new(TapDevice::open(&self.tap_config()).unwrap_or_else(|e| fail("", e)))
        } else {
            Box::new(TunDevice::open(&self.tun_config()).unwrap_or_else(|e| fail("", e)))
        };
        let (rx, tx) = self.fault_specs();
        if rx.is_some() || tx.is_some() {
            info!(log, "fault injection on";
                "drop" => self.drop, "dup" => self.dup, "reorder" => self.reorder,
                "corrupt" => self.corrupt, "delay_ms" => self.delay_ms, "jitter_ms" => self.jitter_ms,
                "seed" => self.seed, "directions" => ?self.fault_dir);
            let f = FaultDevice::new(dev, rx, tx, log.clone()).unwrap_or_else(|e| fail("", e));
            dev = Box::new(f);
        }
        match Stack::new(dev, self.stack_config(), log.clone()) {
            Ok(s) if self.dhcp => match s.wait_dhcp(DHCP_WAIT) {
                Ok(l) => {
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
                    (s, log)
                }
                Err(e) => {
                    eprintln!("error: {e}: is a DHCP server answering on {}?", self.device_name());
                    std::process::exit(1);
                }
            },
            Ok(s) => (s, log),
            Err(e) => {
                eprintln!("error: cannot start the stack: {e}");
                std::process::exit(1);
            }
        }
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
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
