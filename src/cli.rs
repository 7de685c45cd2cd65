//! Flags shared by every bin, and starting a stack on a TUN device from them.

use crate::actor::{Stack, StackConfig};
use crate::device::tun::{TunConfig, TunDevice};
use clap::Args;
use slog::Logger;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// TUN device name.
    #[arg(long, default_value = "tun0")]
    pub iface: String,
    /// The stack's IPv4 address.
    #[arg(long, default_value = "10.0.0.2")]
    pub addr: Ipv4Addr,
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
    #[arg(long)]
    pub offload: bool,
    /// Log level: off, error, warn, info, debug, trace (default: RUST_LOG, else info).
    #[arg(long)]
    pub log: Option<String>,
    /// Use IPv6 (same as the positional `v6`).
    #[arg(long)]
    pub v6: bool,
    /// `v6` selects IPv6, as in the original seeds' usage.
    #[arg(value_parser = ["v6"])]
    pub mode: Option<String>,
}

impl CommonArgs {
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
        cfg
    }

    pub fn tun_config(&self) -> TunConfig {
        TunConfig {
            name: self.iface.clone(),
            mtu: self.mtu,
            configure: !self.no_configure,
            host_addrs: self.host_addrs.clone(),
            offload: self.offload,
        }
    }

    /// Open the device and start the stack, or print a one-line reason and exit(1).
    pub fn start(&self) -> (Stack, Logger) {
        let log = crate::log::logger(self.log.as_deref());
        let dev = match TunDevice::open(&self.tun_config()) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        };
        match Stack::new(Box::new(dev), self.stack_config(), log.clone()) {
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

/// Block until Ctrl-C or SIGTERM.
pub fn wait_for_ctrl_c() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let _ = ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    });
    let _ = rx.recv();
}
