//! A Linux TAP device (`IFF_TAP | IFF_NO_PI`) polled with mio: its halves carry Ethernet II
//! frames ([`Medium::Ethernet`]), which the ip actor passes through the link core
//! (`proto::link`: ARP, NDP, neighbour cache, routes).
//!
//! Everything but the opening is [`super::tun`]'s: the same non-blocking fd drained by dev-rx
//! and parked in `mio::Poll`, the same writes on dev-tx, the same kernel-side set-up. No
//! offload: every frame is at most `mtu + 14` bytes (VLAN tags are not spoken; a longer
//! frame is read truncated and then refused by the IP layer's length checks).
//!
//! The kernel side has its own MAC (chosen by the kernel); the stack's MAC is
//! [`crate::proto::link::LinkConfig::mac`], so `ip neigh show dev tap0` lists ours once ARP
//! or NDP has run.

use super::tun::{configure_kernel_side, TunDevice};
use super::{DevRx, DevTx, Device, Medium};
use std::io;
use std::os::fd::AsRawFd;
use tun_tap::{Iface, Mode};

/// How the kernel side of the device is set up.
#[derive(Debug, Clone)]
pub struct TapConfig {
    pub name: String,
    /// The IP MTU of the link (frames are 14 bytes longer).
    pub mtu: usize,
    /// Create and configure the interface (addresses, MTU, up). When false, attach to an
    /// existing, already configured device.
    pub configure: bool,
    /// Addresses with prefix length given to the kernel side, e.g. "10.0.0.1/24".
    pub host_addrs: Vec<String>,
    /// The kernel's transmit queue towards us, in frames (as `TunConfig::txqueuelen`).
    pub txqueuelen: usize,
}

impl Default for TapConfig {
    fn default() -> Self {
        TapConfig {
            name: "tap0".into(),
            mtu: 1500,
            configure: true,
            host_addrs: vec!["10.0.0.1/24".into(), "fe80::1/64".into(), "fd00::1/64".into()],
            txqueuelen: super::tun::TXQUEUELEN,
        }
    }
}

/// A TAP device: a [`TunDevice`] body opened with `IFF_TAP`, carrying Ethernet frames.
pub struct TapDevice(TunDevice);

/// Turn an OS error from opening into a one-line message that says what to do.
fn explain(e: io::Error, cfg: &TapConfig) -> io::Error {
    let msg = match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "no permission for /dev/net/tun or to create {}: run with sudo, or make the device \
             once with `sudo ip tuntap add dev {} mode tap user $USER` and use --no-configure",
            cfg.name, cfg.name
        ),
        Some(libc::EBUSY) => format!("device {} is busy: another process has it open", cfg.name),
        Some(libc::EINVAL) => format!("cannot open {} as a TAP device: is it a TUN device?", cfg.name),
        Some(libc::ENOENT) | Some(libc::ENODEV) => {
            "/dev/net/tun is missing: load the tun module (`sudo modprobe tun`)".to_string()
        }
        _ => format!("cannot open TAP device {}: {e}", cfg.name),
    };
    io::Error::new(e.kind(), msg)
}

impl TapDevice {
    pub fn open(cfg: &TapConfig) -> io::Result<TapDevice> {
        if !cfg.configure && !super::sys::interface_exists(&cfg.name) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "device {} does not exist: create it with `sudo ip tuntap add dev {} mode tap \
                     user $USER`, configure it, or run without --no-configure as root",
                    cfg.name, cfg.name
                ),
            ));
        }
        let iface = Iface::without_packet_info(&cfg.name, Mode::Tap).map_err(|e| explain(e, cfg))?;
        super::sys::set_nonblocking(iface.as_raw_fd())?;
        let dev = TunDevice::plain(iface, cfg.mtu, Medium::Ethernet);
        if cfg.configure {
            configure_kernel_side(dev.name(), cfg.mtu, cfg.txqueuelen, &cfg.host_addrs)
                .map_err(|e| super::tun::configure_advice(e, dev.name()))?;
        }
        Ok(TapDevice(dev))
    }

    pub fn name(&self) -> &str {
        self.0.name()
    }
}

impl Device for TapDevice {
    fn mtu(&self) -> usize {
        self.0.mtu()
    }

    fn medium(&self) -> Medium {
        Medium::Ethernet
    }

    fn split(self: Box<Self>) -> io::Result<(Box<dyn DevRx>, Box<dyn DevTx>)> {
        Box::new(self.0).split()
    }
}
