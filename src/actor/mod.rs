//! Actor shells: threads that own protocol cores and talk only through crossbeam channels.
//!
//! ```text
//!  dev-rx --Batch--> ip --segments--> tcp <--commands-- app sockets
//!                    |  \--datagrams--> UdpSocket inboxes      |
//!                    |                  tcp --events--> TcpStream inboxes
//!                    v                   |  ^
//!  dev-tx <--Batch-- ip, tcp       schedule|  |fired
//!                                        timer
//! ```
//! On an Ethernet (TAP) device the ip actor also owns the link core and tcp sends its
//! segments to ip (`IpMsg::Tx`) instead of dev-tx, see [`link`].
//!
//! Every inbox is bounded except the per-socket event inboxes, whose content is bounded in
//! bytes by the window or queue limit the socket advertised (ARCHITECTURE.md §2 rule 1).
//! The ip and tcp inboxes are bounded in bytes of packet buffers too (`buf::ByteBudget`):
//! what does not fit is dropped and counted where it would be sent, never blocked on. No actor
//! blocks on a channel that could lead back to itself: dev-tx sends nowhere; tcp never
//! blocks on a socket inbox or on the timer (the timer never blocks: a full tcp inbox makes
//! it retry later).
//!
//! A device actor that fails while the stack is not stopping (a read error, e.g. the TUN
//! device was deleted, or a panic) marks the stack's [`DeviceHealth`] failed: from then
//! on every socket call fails with `NetworkDown` ("netstack: device ... stopped: <cause>"),
//! blocked calls wake up with it (the health's alarm channel disconnects, a broadcast every
//! socket selects on), and the engine resets the connections still open.

pub mod counters;
pub mod device;
pub mod dhcp;
pub mod ip;
pub mod link;
pub mod route;
pub mod tcp;
pub mod timer;

use crate::buf::{Batch, ByteBudget, Pool, Recycler};
use crate::device::{Device, StopHandle};
use crate::proto::ip::IpConfig;
use crate::proto::tcp::{sendbuf, TcpConfig};
use counters::{IpCounters, LinkCounters, TcpCounters};
use crossbeam_channel::{bounded, Sender};
use parking_lot::Mutex;
use slog::{info, Logger};
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Most packets one message carries, and most messages an actor drains before flushing.
pub const DEFAULT_BATCH: usize = 64;
/// Default [`StackConfig::close_linger`]: covers a FIN's first retransmissions (200 ms RTO
/// backing off: 0.2 + 0.4 + 0.8 s).
pub const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_millis(1500);
/// Depth of the actors' inboxes, in messages (each carries a batch).
const INBOX_DEPTH: usize = 256;
/// Default [`StackConfig::inbox_bytes`]: packet buffers queued in the ip inbox (from
/// dev-rx) and in the tcp inbox (segments from ip), each. 16 MiB is about 65 ms at
/// 2 Gbit/s, far more than one batch per actor; 256 batches of 64 KiB offload buffers would
/// otherwise pin 1 GiB.
pub const INBOX_BYTES: usize = 16 << 20;

/// Default [`StackConfig::spin`]. Measured on 2 vCPUs (latency bench, TCP 1-byte
/// request/response p50, with sockets spinning too at the time): 0 µs → ≈ 4.2× veth,
/// 50 → ≈ 2.6–2.9×, 100 → ≈ 2.1×, 200 → ≈ 1.8–2.2×; the sockets' share of that was within
/// the noise. Bulk throughput rose with it too (fewer futex wake-ups), so 100 µs.
pub const SPIN: std::time::Duration = std::time::Duration::from_micros(100);
/// (name, type) answers the stub resolver's cache holds (`proto::dns::Cache`).
pub const DNS_CACHE_ENTRIES: usize = 256;

/// The low-level configuration [`Stack::new`] takes; [`Stack::builder`] makes one from
/// settings checked against each other, and is the usual way to start a stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The link MTU. `None` (the default): the device's. Set, it must be the device's, or
    /// `Stack::new` fails with `InvalidInput` (a stack sending longer packets than the link
    /// carries would lose them without a word). `ip`'s and `tcp`'s MTUs are set from it.
    pub mtu: Option<usize>,
    /// The IP layer: addresses, prefixes, gateways, limits.
    pub ip: IpConfig,
    pub tcp: TcpConfig,
    /// Packets dev-rx reads before it hands a batch on (at least 1: `Stack::new` refuses 0).
    pub batch: usize,
    /// How long shutdown waits for closing connections to get their FIN acknowledged (so a
    /// program that closes its sockets and exits does not leave the peer waiting for a FIN
    /// lost on the way). Zero: stop at once.
    pub close_linger: std::time::Duration,
    /// Byte budget of packet buffers queued in the ip inbox and in the tcp inbox, each
    /// (`buf::ByteBudget`): beyond it dev-rx drops a batch, ip drops TCP segments (counted
    /// in [`StackStats::ip_inbox`] / [`StackStats::tcp_inbox`]).
    pub inbox_bytes: usize,
    /// The link layer for an Ethernet (TAP) device: MAC, gateways, limits. Its addresses
    /// and prefixes are taken from `ip`. `None` on such a device: defaults with a random
    /// locally administered MAC. Ignored on an IP device (TUN).
    pub link: Option<crate::proto::link::LinkConfig>,
    /// How long an actor (ip, tcp, dev-tx) polls its empty inbox, yielding between polls,
    /// before it parks (`spin_recv`): a message arriving meanwhile costs neither side a
    /// futex wake-up. Zero: park at once. The TUN/TAP reader (dev-rx) reads the empty device
    /// as long before it blocks, while packets keep coming (`DevRx::set_spin`). A blocked
    /// `TcpStream` spins too, but only when
    /// its previous wait ended within 4 × `spin` (application threads may be thousands,
    /// one per mostly idle connection; those park at once).
    pub spin: std::time::Duration,
    /// DNS servers the stub resolver asks, in order (`socket::dns`; `--dns ADDR`). Empty:
    /// names cannot be resolved, only IP literals are accepted.
    pub dns: Vec<std::net::IpAddr>,
    /// Get the IPv4 address, prefix, default gateway and a DNS server by DHCP (RFC 2131,
    /// `actor::dhcp`) instead of `ip.v4` (which is then ignored). Ethernet (TAP) devices only;
    /// on an IP device `Stack::new` fails with `InvalidInput`. See `StackHandle::wait_dhcp`.
    pub dhcp: bool,
    /// Write a CSV trace of every TCP sender (each segment sent or retransmitted and each
    /// acknowledgment that moved it, with cwnd, ssthresh, in flight, srtt, rto) to this file
    /// (`proto::tcp::diag`; `scripts/plot_tcp.py` draws it). A debugging aid: it costs a row
    /// per segment.
    pub trace_tcp: Option<std::path::PathBuf>,
}

impl Default for StackConfig {
    /// The TCP core's defaults, with BBR congestion control: as on the Linux peers here,
    /// a random loss is not taken as congestion (a loss-based window settles near
    /// `1.2/√p` segments; BBR keeps about two bandwidth-delay products in flight).
    fn default() -> Self {
        let tcp = TcpConfig { congestion: crate::proto::tcp::CongestionAlgorithm::Bbr, ..TcpConfig::default() };
        StackConfig {
            mtu: None,
            ip: IpConfig::default(),
            tcp,
            batch: DEFAULT_BATCH,
            close_linger: CLOSE_LINGER,
            inbox_bytes: INBOX_BYTES,
            link: None,
            spin: SPIN,
            dns: Vec::new(),
            dhcp: false,
            trace_tcp: None,
        }
    }
}

/// A `sched_yield` that took this long ran another thread: the CPU is contended, and
/// [`spin_recv`] parks instead of spinning on. Measured on 2 vCPUs (latency bench, builds
/// with and without the rule interleaved, 15 runs each): the TCP 1-byte request/response
/// fell into its slow mode (≈ 35 µs instead of ≈ 21) in 12 runs without it and in 5 with
/// it, p50 median 34.8 → 22.9 µs; bulk throughput did not move beyond the noise.
pub const YIELD_CONTENDED: std::time::Duration = std::time::Duration::from_micros(20);

/// Wait up to `spin` for a message on `rx` without parking: poll it, yielding the CPU
/// between polls (on 2 CPUs a pure busy-wait would keep the thread we just woke off the
/// CPU). `None` when nothing came (or the channel is disconnected): the caller then
/// blocks as usual. Waking a parked thread costs a futex call for the sender and tens of
/// µs for the sleeper (ARCHITECTURE.md §7); a thread still spinning costs neither.
pub(crate) fn spin_recv<T>(rx: &crossbeam_channel::Receiver<T>, spin: std::time::Duration) -> Option<T> {
    if spin.is_zero() {
        return None;
    }
    let mut s = Spin::new(spin);
    loop {
        match rx.try_recv() {
            Ok(m) => return Some(m),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        if !s.again() {
            return None;
        }
    }
}

/// A bounded spin before a thread parks (in [`spin_recv`], and in the TUN device's read
/// before it blocks in `epoll_wait`): the caller polls, and [`Spin::again`] yields the CPU
/// once and says whether to poll once more. It says no once `limit` has passed since its
/// first call, or when the yield let another thread run ([`YIELD_CONTENDED`]): on a busy
/// CPU each round of spinning takes a time slice from a thread with work to do (two
/// spinners on one CPU took turns in 2 µs slices while the threads of a request's path
/// queued on the other).
pub(crate) struct Spin {
    limit: std::time::Duration,
    start: Option<std::time::Instant>,
}

impl Spin {
    pub(crate) fn new(limit: std::time::Duration) -> Spin {
        Spin { limit, start: None }
    }

    pub(crate) fn again(&mut self) -> bool {
        if self.limit.is_zero() {
            return false;
        }
        let before = std::time::Instant::now();
        if before.duration_since(*self.start.get_or_insert(before)) >= self.limit {
            return false;
        }
        std::thread::yield_now();
        before.elapsed() < YIELD_CONTENDED
    }
}

/// Empty batch vectors going back to the threads that fill them (`buf::Recycler`): `rx`
/// from ip to dev-rx, `segs` from tcp to ip, `tx` from dev-tx to ip and tcp; `chunks`:
/// received-data chunks a `TcpStream` has read, from the app threads to the tcp engine
/// (`Endpoint::recycle_rx_chunk`), so that their pages are not given back to the kernel
/// and faulted in again for every 64 KiB received; `tx_chunks`: acknowledged send chunks,
/// from the tcp engine (`Endpoint::take_spent_tx`) to the app threads, whose next large
/// write fills one (every 256 KiB write allocated afresh and was freed on the tcp thread:
/// 90,000–200,000 page faults per 4 GiB uploaded).
#[derive(Clone)]
pub struct Recyclers {
    pub rx: Recycler<Vec<u8>>,
    pub segs: Recycler<tcp::SegmentIn>,
    pub tx: Recycler<Vec<u8>>,
    pub chunks: Recycler<u8>,
    pub tx_chunks: Recycler<u8>,
}

impl Recyclers {
    /// Room for `batch` packets per message; a flush may join up to `DRAIN` messages, so the
    /// segment and transmit vectors kept may be that much larger (at most 64 of each kept:
    /// a few hundred KiB).
    fn new(batch: usize) -> Self {
        let max = batch * tcp::DRAIN;
        Recyclers {
            rx: Recycler::new(64, batch, batch),
            segs: Recycler::new(64, batch, max),
            tx: Recycler::new(64, batch, max),
            chunks: Recycler::new(32, 1, crate::proto::tcp::rcvqueue::DATA_CHUNK),
            tx_chunks: Recycler::new(sendbuf::SPENT_KEEP, 1, sendbuf::SPENT_MAX_CAP),
        }
    }
}

/// Counters shared by the actors (relaxed atomics, never protocol state).
pub struct StackStats {
    pub ip: Arc<IpCounters>,
    pub tcp: TcpCounters,
    pub dev_tx_dropped: std::sync::atomic::AtomicU64,
    /// The ip inbox's byte budget: `dropped()` counts packets dev-rx dropped because the
    /// ip actor was that far behind.
    pub ip_inbox: ByteBudget,
    /// The tcp inbox's byte budget (segments from ip): `dropped()` counts segments the ip
    /// actor dropped because the engine was that far behind.
    pub tcp_inbox: ByteBudget,
    /// Live TCBs (including TIME-WAIT), as of the engine's last flush.
    pub tcp_conns: std::sync::atomic::AtomicU64,
    /// The link layer's counters (TAP only).
    pub link: Option<Arc<LinkCounters>>,
    /// DNS queries the stub resolver sent (each try counts).
    pub dns_queries: std::sync::atomic::AtomicU64,
}

impl StackStats {
    /// Zeroed counters, inbox budgets of `inbox_bytes`, and the link layer's counters.
    fn new(inbox_bytes: usize, link: Option<Arc<LinkCounters>>) -> StackStats {
        StackStats {
            ip: Default::default(),
            tcp: TcpCounters::default(),
            dev_tx_dropped: Default::default(),
            ip_inbox: ByteBudget::new(inbox_bytes),
            tcp_inbox: ByteBudget::new(inbox_bytes),
            tcp_conns: Default::default(),
            link,
            dns_queries: Default::default(),
        }
    }
}

/// Whether the device actors are alive. Set once, by the first device thread that fails
/// while the stack is not stopping.
pub struct DeviceHealth {
    cause: std::sync::OnceLock<String>,
    /// Set by `Stack::stop` before it stops the device: an actor ending then is no failure.
    stopping: std::sync::atomic::AtomicBool,
    /// Dropped when the device fails: every clone of `watch` then reports disconnection,
    /// which wakes every blocked socket at once.
    alarm: Mutex<Option<Sender<()>>>,
    watch: crossbeam_channel::Receiver<()>,
}

impl Default for DeviceHealth {
    fn default() -> Self {
        let (alarm, watch) = bounded(0);
        DeviceHealth { cause: Default::default(), stopping: Default::default(), alarm: Mutex::new(Some(alarm)), watch }
    }
}

impl DeviceHealth {
    /// Record that the device's `half` (rx or tx) stopped because of `cause` (ignored when
    /// the stack is stopping, or after the first failure). True if this was the failure.
    pub(crate) fn fail(&self, half: &str, cause: &str) -> bool {
        if self.stopping.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        let first = self.cause.set(format!("netstack: device {half} stopped: {cause}")).is_ok();
        self.alarm.lock().take();
        first
    }

    /// The error every socket reports once the device failed. `NetworkDown` (ENETDOWN,
    /// "Network is down") is what Linux reports for I/O through an interface that is gone
    /// or down; `BrokenPipe` would say the peer or a shutdown ended the stream, `Other` could
    /// not be matched on.
    pub fn error(&self) -> Option<io::Error> {
        self.cause.get().map(|m| io::Error::new(io::ErrorKind::NetworkDown, m.clone()))
    }

    /// A receiver that reports disconnection once the device failed (select on it).
    pub(crate) fn watch(&self) -> &crossbeam_channel::Receiver<()> {
        &self.watch
    }
}

/// What a socket needs to reach the stack: the actors' inboxes, the buffer pool, counters.
#[derive(Clone)]
pub struct StackHandle {
    pub(crate) ip: Sender<ip::IpMsg>,
    pub(crate) tcp: Sender<tcp::TcpMsg>,
    pub(crate) pool: Pool,
    pub(crate) cfg: Arc<StackConfig>,
    pub stats: Arc<StackStats>,
    pub(crate) any_tcp: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) device: Arc<DeviceHealth>,
    /// Where a stream returns the receive chunks it has read (`Recyclers::chunks`).
    pub(crate) rx_chunks: Recycler<u8>,
    /// Where a stream takes a buffer for a large write (`Recyclers::tx_chunks`).
    pub(crate) tx_chunks: Recycler<u8>,
    /// The stub resolver's answers (`socket::dns`), shared by every handle.
    pub(crate) dns_cache: Arc<Mutex<crate::proto::dns::Cache>>,
    /// The routing table `connect` and `send_to` consult ([`route`]).
    pub(crate) routes: Arc<route::RouteView>,
    /// The DHCP lease and counters the ip actor publishes (`None`: DHCP is off).
    pub(crate) dhcp: Option<Arc<dhcp::DhcpShared>>,
}

impl StackHandle {
    /// The error sockets fail with because the device stopped (None while it runs).
    pub fn device_error(&self) -> Option<io::Error> {
        self.device.error()
    }

    /// `Err(device error)` once the device stopped: the first check of every socket call.
    pub(crate) fn check_device(&self) -> io::Result<()> {
        self.device.error().map_or(Ok(()), Err)
    }

    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// Every TCP connection now, with the fields of `ss -tin` (a round trip to the tcp
    /// engine, which answers between batches).
    pub fn sockets(&self) -> io::Result<Vec<crate::proto::tcp::TcpInfo>> {
        self.check_device()?;
        let t = std::time::Duration::from_secs(1);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let gone = |_| io::Error::new(io::ErrorKind::NotConnected, "netstack: the tcp engine is not running");
        self.tcp.send_timeout(tcp::TcpMsg::Sockets(tx), t).map_err(|_| gone(()))?;
        rx.recv_timeout(t)
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "netstack: the tcp engine did not answer"))
    }

    /// Reset every connection the application holds open and wait (bounded) until the
    /// engine has handed the RSTs to the device: for a program about to exit abruptly
    /// (Ctrl-C), so its peers do not wait for it.
    pub fn abort_all(&self) {
        let t = std::time::Duration::from_millis(300);
        if self.tcp.send_timeout(tcp::TcpMsg::AbortAll, t).is_err() {
            return;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.tcp.send_timeout(tcp::TcpMsg::Closing(tx), t).is_ok() && rx.recv_timeout(t).is_ok() {
            // The engine flushed its batch to dev-tx; give dev-tx a moment to write it.
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The next hop for a packet to `dst`, or `NetworkUnreachable` when no route matches
    /// (`proto::routing`): what `connect` and `send_to` check first.
    pub fn route(&self, dst: std::net::IpAddr) -> io::Result<std::net::IpAddr> {
        self.routes.check(dst)
    }

    /// TCP counters as of the engine's last flush.
    pub fn tcp_stats(&self) -> crate::proto::tcp::TcpStats {
        self.stats.tcp.load()
    }

    /// Live TCP connections (including TIME-WAIT).
    pub fn tcp_conn_count(&self) -> usize {
        self.stats.tcp_conns.load(std::sync::atomic::Ordering::Relaxed) as usize
    }
}

/// A running stack: its threads and the handle sockets use. Dropping it (or calling
/// [`Stack::shutdown`]) stops every actor and joins every thread.
pub struct Stack {
    handle: StackHandle,
    threads: Vec<JoinHandle<()>>,
    stop_dev: StopHandle,
    timer: Sender<timer::TimerMsg>,
    log: Logger,
    linger: std::time::Duration,
    /// The device's name when the builder opened it (the kernel's, for `tun%d`).
    name: Option<String>,
}

impl std::ops::Deref for Stack {
    type Target = StackHandle;
    fn deref(&self) -> &StackHandle {
        &self.handle
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.to_string()).spawn(f)
}

/// Take what the device decides into the configuration (its MTU unless `cfg.mtu` is set,
/// when the two must agree; its trailers) and, on an Ethernet device, make the link layer:
/// the configured `LinkConfig` (or one with a random locally administered MAC) completed
/// with the IP configuration's addresses.
fn adopt_device(cfg: &mut StackConfig, dev: &dyn Device, log: &Logger) -> io::Result<Option<link::LinkShell>> {
    let mtu = match cfg.mtu {
        None => dev.mtu(),
        Some(m) if m == dev.mtu() => m,
        Some(m) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "StackConfig::mtu is {m} but the device's MTU is {}: leave it None to take the \
                     device's, or give the device that MTU",
                    dev.mtu()
                ),
            ))
        }
    };
    cfg.mtu = Some(mtu);
    cfg.ip.mtu = mtu;
    cfg.ip.rx_trailer = dev.rx_trailer();
    cfg.ip.tx_trailer = dev.tx_trailer();
    cfg.tcp.mtu = mtu;
    if dev.medium() != crate::device::Medium::Ethernet {
        return Ok(None);
    }
    let base = cfg.link.clone().unwrap_or_else(|| crate::proto::link::LinkConfig {
        mac: crate::proto::link::ethernet::local_mac(rand::random()),
        ..Default::default()
    });
    let lc = link::link_config(&base, &cfg.ip);
    cfg.link = Some(lc.clone());
    Ok(Some(link::LinkShell::new(lc, std::time::Instant::now(), log.clone())))
}

/// DHCP needs Ethernet; with it, the configured IPv4 addresses give way to the lease's, and
/// an IPv4 gateway is refused as the builder refuses it (the lease brings its router).
fn check_dhcp(cfg: &mut StackConfig, dev: &dyn Device) -> io::Result<()> {
    if cfg.dhcp {
        if dev.medium() != crate::device::Medium::Ethernet {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "DHCP needs an Ethernet (TAP) device: its messages are link-level broadcasts (use --tap)",
            ));
        }
        if cfg.ip.gateway4.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "DHCP gives the IPv4 gateway: drop the IPv4 gateway or DHCP",
            ));
        }
        cfg.ip.v4.clear(); // the address comes with the lease
    }
    Ok(())
}

/// The DHCP client the ip actor runs, and the lease it publishes (both `None` without DHCP).
fn dhcp_shell(
    cfg: &StackConfig,
    ip_core: &mut crate::proto::ip::IpCore,
    log: &Logger,
) -> io::Result<(Option<dhcp::DhcpShell>, Option<Arc<dhcp::DhcpShared>>)> {
    let (Some(l), true) = (&cfg.link, cfg.dhcp) else { return Ok((None, None)) };
    let shared = Arc::new(dhcp::DhcpShared::default());
    let shell = dhcp::DhcpShell::new(l.mac.0, rand::random(), ip_core, shared.clone(), log.clone())?;
    Ok((Some(shell), Some(shared)))
}

/// The routing table socket calls consult: the link core's on TAP (which then publishes its
/// changes into it), else one made from the IP configuration.
fn route_view(
    cfg: &StackConfig,
    ip_counters: &Arc<IpCounters>,
    link: Option<&mut link::LinkShell>,
) -> Arc<route::RouteView> {
    let table = link.as_ref().map_or_else(|| crate::proto::routing::table_for(&cfg.ip), |l| l.routes().clone());
    let routes = route::RouteView::new(table, ip_counters.clone());
    if let Some(l) = link {
        l.set_route_view(routes.clone());
    }
    routes
}

impl Stack {
    /// Start the actors on `dev`, which the caller opened and configured: the low-level
    /// path ([`Stack::builder`] opens the device and checks the settings first). Fails with
    /// `InvalidInput` when `cfg.mtu` is set and differs from the device's, on DHCP on an IP
    /// device or with a static IPv4 gateway, on a gateway off the connected subnets, and on
    /// a `batch` of 0 (dev-rx would never read).
    pub fn new(dev: Box<dyn Device>, mut cfg: StackConfig, log: Logger) -> io::Result<Stack> {
        if cfg.batch == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "StackConfig::batch must be at least 1"));
        }
        check_dhcp(&mut cfg, dev.as_ref())?;
        crate::proto::routing::check_gateways(&cfg.ip)?;
        let mut link = adopt_device(&mut cfg, dev.as_ref(), &log)?;
        let ethernet = link.is_some();
        let cfg = Arc::new(cfg);
        let pool = Pool::default();
        let (rx_dev, tx_dev) = dev.split()?;
        let stop_dev = rx_dev.stop_handle();
        let (ip_tx, ip_rx) = bounded::<ip::IpMsg>(INBOX_DEPTH);
        let (tcp_tx, tcp_rx) = bounded::<tcp::TcpMsg>(INBOX_DEPTH);
        let (devtx_tx, devtx_rx) = bounded::<Batch>(INBOX_DEPTH);
        let (timer_tx, timer_rx) = bounded::<timer::TimerMsg>(INBOX_DEPTH);
        let mut ip_core = crate::proto::ip::IpCore::new(cfg.ip.clone(), rand::random());
        let (dhcp, dhcp_shared) = dhcp_shell(&cfg, &mut ip_core, &log)?;
        let stats = Arc::new(StackStats::new(cfg.inbox_bytes, link.as_ref().map(|l| l.counters())));
        let routes = route_view(&cfg, &stats.ip, link.as_mut());
        let any_tcp: Arc<std::sync::atomic::AtomicBool> = Default::default();
        let recycle = Recyclers::new(cfg.batch);
        let handle = StackHandle {
            ip: ip_tx.clone(),
            tcp: tcp_tx.clone(),
            pool: pool.clone(),
            cfg: cfg.clone(),
            stats: stats.clone(),
            any_tcp,
            device: Arc::new(DeviceHealth::default()),
            rx_chunks: recycle.chunks.clone(),
            tx_chunks: recycle.tx_chunks.clone(),
            dns_cache: Arc::new(Mutex::new(crate::proto::dns::Cache::new(DNS_CACHE_ENTRIES))),
            routes,
            dhcp: dhcp_shared,
        };
        let mut threads = Vec::new();
        {
            let (pool, ip_tx, log, batch, budget, spin) =
                (pool.clone(), ip_tx.clone(), log.clone(), cfg.batch, stats.ip_inbox.clone(), cfg.spin);
            let batches = recycle.rx.clone();
            let watch = device::Watch { health: handle.device.clone(), tcp: tcp_tx.clone(), log: log.clone() };
            threads.push(spawn("dev-rx", move || {
                watch.run("rx", || device::run_rx(rx_dev, (pool, batches), (ip_tx, budget), (batch, spin), log))
            })?);
        }
        {
            let (pool, stats, batches, spin) = (pool.clone(), stats.clone(), recycle.tx.clone(), cfg.spin);
            let watch = device::Watch { health: handle.device.clone(), tcp: tcp_tx.clone(), log: log.clone() };
            threads.push(spawn("dev-tx", move || {
                watch.run("tx", || device::run_tx(tx_dev, (devtx_rx, batches), pool, stats, spin))
            })?);
        }
        {
            let (pool, devtx, log) = (pool.clone(), devtx_tx.clone(), log.clone());
            let inbox = (ip_rx, stats.ip_inbox.clone());
            let tcp = (tcp_tx.clone(), stats.tcp_inbox.clone());
            let recycle = recycle.clone();
            let spin = cfg.spin;
            let shared = ip::Shared { counters: stats.ip.clone(), any_tcp: handle.any_tcp.clone() };
            threads.push(spawn("ip", move || {
                ip::run(ip_core, inbox, devtx, tcp, (pool, recycle), spin, log, link, dhcp, shared)
            })?);
        }
        {
            let tcp_tx = tcp_tx.clone();
            threads.push(spawn("timer", move || timer::run(timer_rx, tcp_tx))?);
        }
        {
            let (pool, cfg, stats, timer_tx, log) =
                (pool.clone(), cfg.clone(), stats.clone(), timer_tx.clone(), log.clone());
            // TAP: segments go through the ip actor's link layer (actor::link).
            let devtx_tx = if ethernet { link::TxPath::Ip(ip_tx.clone()) } else { link::TxPath::Dev(devtx_tx) };
            let recycle = recycle.clone();
            threads.push(spawn("tcp", move || tcp::run(cfg, tcp_rx, devtx_tx, timer_tx, (pool, recycle), stats, log))?);
        }
        info!(log, "stack started"; "mtu" => cfg.ip.mtu, "v4" => ?cfg.ip.v4, "v6" => ?cfg.ip.v6);
        Ok(Stack { handle, threads, stop_dev, timer: timer_tx, log, linger: cfg.close_linger, name: None })
    }

    /// The name of the TUN/TAP device [`Stack::builder`] opened (the one the kernel chose
    /// for `tun%d`); `None` for a device the caller gave.
    pub fn device_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn set_device_name(&mut self, name: Option<String>) {
        self.name = name;
    }

    pub fn handle(&self) -> StackHandle {
        self.handle.clone()
    }

    /// Stop every actor and join its thread, after waiting up to `close_linger` for
    /// connections whose FIN is not yet acknowledged.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Wait (bounded) until no connection has an unacknowledged FIN.
    fn linger(&self) {
        let end = std::time::Instant::now() + self.linger;
        while std::time::Instant::now() < end {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let left = end.saturating_duration_since(std::time::Instant::now());
            if self.handle.tcp.send_timeout(tcp::TcpMsg::Closing(tx), left).is_err() {
                return;
            }
            match rx.recv_timeout(std::time::Duration::from_millis(200)) {
                Ok(0) | Err(_) => return,
                Ok(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }

    /// Give the DHCP lease back (RFC 2131 §4.4.6) while the device still runs: wait
    /// (bounded) until the ip actor says the RELEASE left.
    fn release_dhcp(&self) {
        if self.handle.dhcp.is_none() {
            return;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let t = std::time::Duration::from_millis(200);
        if self.handle.ip.send_timeout(ip::IpMsg::DhcpRelease(tx), t).is_ok()
            && rx.recv_timeout(dhcp::RELEASE_WAIT + t) == Ok(true)
        {
            std::thread::sleep(dhcp::RELEASE_GRACE);
        }
    }

    fn stop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.linger();
        // Whatever is still open is reset (sent with the engine's last flush).
        let _ = self.handle.tcp.send_timeout(tcp::TcpMsg::AbortAll, std::time::Duration::from_millis(200));
        self.release_dhcp();
        self.handle.device.stopping.store(true, std::sync::atomic::Ordering::Release);
        (self.stop_dev)();
        let _ = self.handle.ip.send(ip::IpMsg::Shutdown);
        let _ = self.handle.tcp.send(tcp::TcpMsg::Shutdown);
        let _ = self.timer.send(timer::TimerMsg::Shutdown);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        info!(self.log, "stack stopped");
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The error a socket reports once the stack it belongs to has stopped.
pub(crate) fn stack_gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the network stack has stopped")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A zero spin never polls again; a spin ends once its limit has passed (or early on a
    /// contended CPU), so a thread never spins past it by more than one yield.
    #[test]
    fn spin_is_bounded() {
        assert!(!Spin::new(Duration::ZERO).again());
        let limit = Duration::from_millis(2);
        let t0 = Instant::now();
        let mut s = Spin::new(limit);
        while s.again() {}
        assert!(t0.elapsed() < limit + Duration::from_millis(500), "spun {:?}", t0.elapsed());
        // spin_recv takes a message already queued without spinning, and gives up on an
        // empty channel within its limit.
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(7).unwrap();
        assert_eq!(spin_recv(&rx, limit), Some(7));
        let t0 = Instant::now();
        assert_eq!(spin_recv(&rx, limit), None);
        assert!(t0.elapsed() < limit + Duration::from_millis(500));
    }
}
