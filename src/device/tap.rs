//! A Linux TAP device (`IFF_TAP | IFF_NO_PI`) polled with mio: its halves carry Ethernet II
//! frames ([`Medium::Ethernet`]), which the ip actor passes through the link core
//! (`proto::link`: ARP, NDP, neighbour cache, routes).
//!
//! As with [`super::tun`], the fd is non-blocking: dev-rx drains it until `WouldBlock`
//! (mio is edge-triggered), then parks in `mio::Poll` until the fd is readable or the
//! [`StopHandle`] wakes it; dev-tx writes on the same fd (a TAP write hands the frame to the
//! kernel's receive path and does not block). No offload: every frame is at most
//! `mtu + 14` bytes (VLAN tags are not spoken; a longer frame is read truncated and then
//! refused by the IP layer's length checks).
//!
//! The kernel side has its own MAC (chosen by the kernel); the stack's MAC is
//! [`crate::proto::link::LinkConfig::mac`], so `ip neigh show dev tap0` lists ours once ARP
//! or NDP has run.

use super::{DevRx, DevTx, Device, Medium, StopHandle};
use crate::buf::{Batch, Pool};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tun_tap::{Iface, Mode};

const TAP_TOKEN: Token = Token(0);
const WAKE_TOKEN: Token = Token(1);
/// Ethernet II header (RFC 894): destination, source, EtherType.
const ETHERNET_HEADER_LEN: usize = 14;

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

pub struct TapDevice {
    iface: Arc<Iface>,
    name: String,
    mtu: usize,
}

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

fn run_ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `ip` (install iproute2): {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
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
        let name = iface.name().to_string();
        super::sys::set_nonblocking(iface.as_raw_fd())?;
        if cfg.configure {
            let conf = format!("/proc/sys/net/ipv6/conf/{name}");
            // As on TUN: no kernel-generated link-local address, no DAD delay, no router
            // solicitations; the kernel side has exactly the addresses we give it.
            for (k, v) in [("addr_gen_mode", "1"), ("accept_dad", "0"), ("router_solicitations", "0")] {
                // Best effort: IPv6 may be disabled.
                let _ = std::fs::write(format!("{conf}/{k}"), v);
            }
            run_ip(&["link", "set", "dev", &name, "mtu", &cfg.mtu.to_string()])?;
            run_ip(&["link", "set", "dev", &name, "txqueuelen", &cfg.txqueuelen.to_string()])?;
            for a in &cfg.host_addrs {
                if a.contains(':') {
                    run_ip(&["-6", "addr", "replace", a, "dev", &name, "nodad"])?;
                } else {
                    run_ip(&["addr", "replace", a, "dev", &name])?;
                }
            }
            run_ip(&["link", "set", "dev", &name, "up"])?;
        }
        Ok(TapDevice { iface: Arc::new(iface), name, mtu: cfg.mtu })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Device for TapDevice {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn medium(&self) -> Medium {
        Medium::Ethernet
    }

    fn split(self: Box<Self>) -> io::Result<(Box<dyn DevRx>, Box<dyn DevTx>)> {
        let poll = Poll::new()?;
        let fd = self.iface.as_raw_fd();
        poll.registry().register(&mut SourceFd(&fd), TAP_TOKEN, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE_TOKEN)?);
        let rx = TapRx {
            iface: self.iface.clone(),
            poll,
            events: Events::with_capacity(4),
            waker,
            stopped: Arc::new(AtomicBool::new(false)),
            read_len: self.mtu.max(1280) + ETHERNET_HEADER_LEN + 64,
        };
        Ok((Box::new(rx), Box::new(TapTx { iface: self.iface })))
    }
}

struct TapRx {
    iface: Arc<Iface>,
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    stopped: Arc<AtomicBool>,
    read_len: usize,
}

impl DevRx for TapRx {
    fn recv_batch(&mut self, pool: &Pool, out: &mut Batch, max: usize) -> io::Result<bool> {
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return Ok(false);
            }
            while out.len() < max {
                let mut b = pool.get();
                b.reserve(self.read_len);
                match super::sys::read_into(self.iface.as_raw_fd(), &mut b) {
                    Ok(_) => out.push(b),
                    Err(e) => {
                        pool.put(b);
                        match e.kind() {
                            io::ErrorKind::WouldBlock => break,
                            io::ErrorKind::Interrupted => continue,
                            _ => return Err(e),
                        }
                    }
                }
            }
            if !out.is_empty() {
                return Ok(true);
            }
            match self.poll.poll(&mut self.events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn stop_handle(&self) -> StopHandle {
        let waker = self.waker.clone();
        let stopped = self.stopped.clone();
        Arc::new(move || {
            stopped.store(true, Ordering::Release);
            let _ = waker.wake();
        })
    }
}

struct TapTx {
    iface: Arc<Iface>,
}

impl DevTx for TapTx {
    fn send_batch(&mut self, batch: &mut Batch, pool: &Pool) -> usize {
        let mut dropped = 0;
        for b in batch.drain(..) {
            // The rare EAGAIN (kernel backlog full) is a drop, as on a real link.
            let mut tries = 0;
            loop {
                match self.iface.send(&b) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < 3 => tries += 1,
                    Err(_) => {
                        dropped += 1;
                        break;
                    }
                }
            }
            pool.put(b);
        }
        dropped
    }
}
