//! A Linux TUN device (`IFF_TUN | IFF_NO_PI`) polled with mio.
//!
//! The fd is non-blocking; dev-rx drains it until `WouldBlock` (mio is edge-triggered), then
//! parks in `mio::Poll` until the fd is readable or the [`StopHandle`] wakes it through a
//! `mio::Waker`. While packets keep coming it first reads the empty fd again between yields
//! for up to its spin ([`DevRx::set_spin`], `actor::Spin`); every park still follows a read
//! that returned `WouldBlock`, so no packet waits in the queue for the next edge. dev-tx
//! writes on the same fd (a TUN write hands the packet to the kernel's receive path and
//! does not block).
//!
//! With `offload` (off by default: `tcpdump -i tun0` then shows every packet with its final
//! checksum; the bins' `--offload`) the fd is opened with `IFF_VNET_HDR` and `TUNSETOFFLOAD`
//! (CSUM, TSO4, TSO6): the kernel hands over TCP super-segments of up to 64 KiB whose
//! checksums it vouches for (partial or already verified), so one read carries up to 44
//! segments and nobody computes a checksum for them. Each received packet then ends with one
//! metadata byte (1: transport checksum valid), which the ip core strips
//! ([`crate::proto::ip::IpConfig::rx_trailer`]). What we write carries a zero header (no
//! offload requested).

use super::{DevRx, DevTx, Device, Medium, StopHandle};
use crate::buf::{Batch, Pool};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tun_tap::{Iface, Mode};

const TUN_TOKEN: Token = Token(0);
const WAKE_TOKEN: Token = Token(1);

/// How the kernel side of the device is set up.
#[derive(Debug, Clone)]
pub struct TunConfig {
    pub name: String,
    pub mtu: usize,
    /// Create and configure the interface (addresses, MTU, up). When false, attach to an
    /// existing, already configured device (works unprivileged on a device owned by the user).
    pub configure: bool,
    /// Addresses with prefix length given to the kernel side, e.g. "10.0.0.1/24".
    pub host_addrs: Vec<String>,
    /// Let the kernel pass TCP super-segments and partial checksums (`IFF_VNET_HDR`): about
    /// 2.5x the throughput, at the price of partial checksums in captures of the device.
    pub offload: bool,
    /// The kernel's transmit queue towards us, in packets (`txqueuelen`; set only when
    /// `configure`). The kernel drops what overflows it, and a TUN's default of 500 overflowed
    /// during bulk downloads whenever the reader was descheduled for a moment (1,102 drops in a
    /// 64 MiB transfer, each repaired by a kernel fast retransmit). 4,096 covers about 5 ms at
    /// 10 Gbit/s of MTU-sized packets; the kernel's TCP small-queue limit bounds the bytes one
    /// flow queues, so the longer queue does not add latency.
    pub txqueuelen: usize,
}

/// Default [`TunConfig::txqueuelen`].
pub const TXQUEUELEN: usize = 4096;

impl Default for TunConfig {
    fn default() -> Self {
        TunConfig {
            name: "tun0".into(),
            mtu: 1500,
            configure: true,
            host_addrs: vec!["10.0.0.1/24".into(), "fe80::1/64".into(), "fd00::1/64".into()],
            offload: false,
            txqueuelen: TXQUEUELEN,
        }
    }
}

/// The open fd: through tun-tap, or (offload) opened with `IFF_VNET_HDR`.
enum Handle {
    Plain(Iface),
    Vnet(std::fs::File),
}

impl Handle {
    fn fd(&self) -> std::os::fd::RawFd {
        match self {
            Handle::Plain(i) => i.as_raw_fd(),
            Handle::Vnet(f) => f.as_raw_fd(),
        }
    }
}

/// Also the TAP device's body ([`super::tap`]): the same fd handling, halves and kernel-side
/// set-up, opened with `Mode::Tap` and carrying Ethernet frames.
pub struct TunDevice {
    handle: Arc<Handle>,
    name: String,
    mtu: usize,
    offload: bool,
    medium: Medium,
}

/// Turn an OS error from opening/attaching into a one-line message that says what to do.
fn explain(e: io::Error, cfg: &TunConfig) -> io::Error {
    let msg = match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => permission_advice(cfg),
        Some(libc::EBUSY) => format!(
            "device {} is busy: another process has it open; stop that process, or use another device \
             (--iface) with addresses of its own (--addr, --host-addr)",
            cfg.name
        ),
        Some(libc::ENOENT) | Some(libc::ENODEV) => {
            "/dev/net/tun is missing: load the tun module (`sudo modprobe tun`)".to_string()
        }
        _ => format!("cannot open TUN device {}: {e}", cfg.name),
    };
    io::Error::new(e.kind(), msg)
}

/// What to do about EACCES/EPERM from opening `/dev/net/tun` or attaching to `cfg.name`.
fn permission_advice(cfg: &TunConfig) -> String {
    use std::os::unix::fs::PermissionsExt;
    let node = std::fs::metadata("/dev/net/tun").map(|m| m.permissions().mode() & 0o777).ok();
    if super::sys::is_root() {
        return format!("permission denied opening {} even as root (a security module?)", cfg.name);
    }
    match node {
        Some(mode) if mode & 0o006 != 0o006 => format!(
            "no permission to open /dev/net/tun (mode {mode:04o}): the device node must be readable \
             and writable by everyone (`sudo chmod 0666 /dev/net/tun`, the usual mode), or run with sudo"
        ),
        _ if cfg.configure => format!(
            "creating {} needs root: run with sudo, or make the device once with `sudo ip tuntap add \
             dev {} mode tun user $USER`, configure it, and add --no-configure",
            cfg.name, cfg.name
        ),
        _ => format!(
            "{} belongs to another user: make your own with `sudo ip tuntap add dev NAME mode tun user \
             $USER` and pass --iface NAME",
            cfg.name
        ),
    }
}

/// Set up the kernel side of device `name`: no kernel-generated link-local address, no DAD
/// delay, no router solicitations (the link has exactly the addresses we give it), the MTU,
/// the transmit queue, `host_addrs`, and up.
pub(super) fn configure_kernel_side(
    name: &str,
    mtu: usize,
    txqueuelen: usize,
    host_addrs: &[String],
) -> io::Result<()> {
    let conf = format!("/proc/sys/net/ipv6/conf/{name}");
    write_sysctl(&format!("{conf}/addr_gen_mode"), "1");
    write_sysctl(&format!("{conf}/accept_dad"), "0");
    write_sysctl(&format!("{conf}/router_solicitations"), "0");
    run_ip(&["link", "set", "dev", name, "mtu", &mtu.to_string()])?;
    run_ip(&["link", "set", "dev", name, "txqueuelen", &txqueuelen.to_string()])?;
    for a in host_addrs {
        if a.contains(':') {
            run_ip(&["-6", "addr", "replace", a, "dev", name, "nodad"])?;
        } else {
            run_ip(&["addr", "replace", a, "dev", name])?;
        }
    }
    run_ip(&["link", "set", "dev", name, "up"])
}

/// A failed kernel-side set-up, with what to do when it failed for want of root (a user who
/// owns the device but forgot `--no-configure`).
pub(super) fn configure_advice(e: io::Error, name: &str) -> io::Error {
    if super::sys::is_root() || !e.to_string().contains("Operation not permitted") {
        return e;
    }
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "configuring {name} needs root ({e}): if {name} is yours and already configured, add \
             --no-configure; otherwise run with sudo"
        ),
    )
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

fn write_sysctl(path: &str, value: &str) {
    // Best effort: IPv6 may be disabled, in which case there is nothing to quiet.
    let _ = std::fs::write(path, value);
}

impl TunDevice {
    pub fn open(cfg: &TunConfig) -> io::Result<TunDevice> {
        if !cfg.configure && !super::sys::interface_exists(&cfg.name) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "device {} does not exist: create it with `sudo ip tuntap add dev {} mode tun \
                     user $USER`, configure it, or run without --no-configure as root",
                    cfg.name, cfg.name
                ),
            ));
        }
        let (handle, name) = if cfg.offload {
            let f = super::sys::tun_open_vnet(&cfg.name).map_err(|e| explain(e, cfg))?;
            (Handle::Vnet(f), cfg.name.clone())
        } else {
            let iface = Iface::without_packet_info(&cfg.name, Mode::Tun).map_err(|e| explain(e, cfg))?;
            let name = iface.name().to_string();
            (Handle::Plain(iface), name)
        };
        let fd = handle.fd();
        super::sys::set_nonblocking(fd)?;
        // Offload settings persist on a persistent device: always set them (ARCHITECTURE.md §3, tun).
        let flags = if cfg.offload { super::sys::TUN_OFFLOAD_CSUM_TSO } else { 0 };
        super::sys::tun_set_offload(fd, flags)?;
        if cfg.configure {
            configure_kernel_side(&name, cfg.mtu, cfg.txqueuelen, &cfg.host_addrs)
                .map_err(|e| configure_advice(e, &name))?;
        }
        Ok(TunDevice { handle: Arc::new(handle), name, mtu: cfg.mtu, offload: cfg.offload, medium: Medium::Ip })
    }

    /// A device on an fd opened by tun-tap without packet info (TUN or TAP), already
    /// non-blocking: the TAP device's constructor.
    pub(super) fn plain(iface: Iface, mtu: usize, medium: Medium) -> TunDevice {
        let name = iface.name().to_string();
        TunDevice { handle: Arc::new(Handle::Plain(iface)), name, mtu, offload: false, medium }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Device for TunDevice {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn medium(&self) -> Medium {
        self.medium
    }

    fn rx_trailer(&self) -> bool {
        self.offload
    }

    fn tx_trailer(&self) -> bool {
        self.offload
    }

    fn split(self: Box<Self>) -> io::Result<(Box<dyn DevRx>, Box<dyn DevTx>)> {
        let poll = Poll::new()?;
        let fd = self.handle.fd();
        poll.registry().register(&mut SourceFd(&fd), TUN_TOKEN, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE_TOKEN)?);
        let rx = TunRx {
            handle: self.handle.clone(),
            poll,
            events: Events::with_capacity(4),
            waker,
            stopped: Arc::new(AtomicBool::new(false)),
            // An Ethernet frame adds its 14-byte header (RFC 894) to the IP MTU.
            read_len: self.mtu.max(1280) + 64 + if self.medium == Medium::Ethernet { 14 } else { 0 },
            spin: Duration::ZERO,
            streaming: false,
        };
        let tx = TunTx { handle: self.handle };
        Ok((Box::new(rx), Box::new(tx)))
    }
}

struct TunRx {
    handle: Arc<Handle>,
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    stopped: Arc<AtomicBool>,
    read_len: usize,
    /// How long to keep reading an empty device before blocking in `epoll_wait`.
    spin: Duration,
    /// The last call found packets within `spin` of the device going empty: spin next time.
    streaming: bool,
}

impl TunRx {
    /// Read packets into `out` until it holds `max` or the device is empty.
    fn read_burst(&mut self, pool: &Pool, out: &mut Batch, max: usize) -> io::Result<()> {
        while out.len() < max {
            let r = match &*self.handle {
                Handle::Plain(i) => {
                    let mut b = pool.get();
                    b.reserve(self.read_len);
                    match super::sys::read_into(i.as_raw_fd(), &mut b) {
                        Ok(_) => Ok(b),
                        // The read that ends every burst (WouldBlock) keeps its buffer.
                        Err(e) => Err((e, Some(b))),
                    }
                }
                Handle::Vnet(f) => {
                    let mut b = pool.get_large();
                    let mut hdr = [0u8; super::sys::VNET_HDR_LEN];
                    match super::sys::read_vnet(f.as_raw_fd(), &mut hdr, &mut b) {
                        Ok(_) => {
                            let valid = hdr[0] & (super::sys::VNET_F_NEEDS_CSUM | super::sys::VNET_F_DATA_VALID);
                            b.push(u8::from(valid != 0));
                            Ok(b)
                        }
                        Err(e) => Err((e, Some(b))),
                    }
                }
            };
            match r {
                Ok(b) => out.push(b),
                Err((e, b)) => {
                    if let Some(b) = b {
                        pool.put(b);
                    }
                    match e.kind() {
                        io::ErrorKind::WouldBlock => break,
                        io::ErrorKind::Interrupted => continue,
                        _ => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }
}

impl DevRx for TunRx {
    fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    fn recv_batch(&mut self, pool: &Pool, out: &mut Batch, max: usize) -> io::Result<bool> {
        // Spin only while packets keep coming: the previous call found its packets within
        // `spin` of the device going empty (spinning and parking both count), or at once.
        // After an idle gap the spin would cost more than it saves: with this CPU busy
        // spinning, the thread it wakes is placed on the other, halted vCPU, which takes
        // tens of µs to wake (ICMP echo p50 36 → 54 µs). Counting only the park would keep
        // a stream slightly slower than the spin spinning for good, catching nothing.
        let mut spin = crate::actor::Spin::new(if self.streaming { self.spin } else { Duration::ZERO });
        let mut empty_since: Option<Instant> = None;
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return Ok(false);
            }
            self.read_burst(pool, out, max)?;
            if !out.is_empty() {
                self.streaming = empty_since.map_or(Duration::ZERO, |t| t.elapsed()) < self.spin;
                return Ok(true);
            }
            empty_since.get_or_insert_with(Instant::now);
            // A burst's next packet usually follows within microseconds; a parked thread
            // takes tens of them to wake (a halted vCPU).
            if spin.again() {
                continue;
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

struct TunTx {
    handle: Arc<Handle>,
}

impl DevTx for TunTx {
    fn send_batch(&mut self, batch: &mut Batch, pool: &Pool) -> usize {
        let mut dropped = 0;
        for b in batch.drain(..) {
            // A TUN write does not block; the rare EAGAIN (kernel queue full) is a drop, as on
            // a real link.
            let mut tries = 0;
            loop {
                let r = match &*self.handle {
                    Handle::Plain(i) => i.send(&b),
                    Handle::Vnet(f) => {
                        // Transmit trailer (wire::gso): marker 0, or header + marker 1.
                        const H: usize = super::sys::VNET_HDR_LEN;
                        let (body, marker) = b.split_at(b.len().saturating_sub(1));
                        let (pkt, hdr) = match marker.first() {
                            Some(&crate::wire::gso::TX_TRAILER_VNET) if body.len() > H => {
                                let (pkt, h) = body.split_at(body.len() - H);
                                let mut hdr = [0u8; H];
                                hdr.copy_from_slice(h);
                                (pkt, hdr)
                            }
                            _ => (body, [0u8; H]),
                        };
                        super::sys::write_vnet(f.as_raw_fd(), &hdr, pkt)
                    }
                };
                match r {
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
