//! Throughput across connection (thread) counts, both directions, netstack's plain path and
//! its offload path, against references in the same run: smoltcp on the same TUN device, the
//! Linux kernel talking to itself over a veth pair at MTU 1500 (the like-for-like reference:
//! two hosts, one hop) and over loopback at MTU 1500 (a ceiling).
//!
//! Needs root: it runs inside network namespaces it creates (nothing touches the machine's
//! own). `cargo bench --bench throughput -- [--mib N] [--reps N] [--conns 1,2,4,8,16]
//! [--only TEXT] [--csv FILE] [--peer-cc NAME]`. The payload (`--mib`, per run) is split over
//! the connections. The kernel senders (netstack's and smoltcp's download peers, veth,
//! loopback) use the machine's default congestion control unless `--peer-cc` names one
//! (`cubic`, Linux's default; `bbr`): a BBR peer paces itself by what it measures of the path.
//! Prints one line per scenario (median of the repetitions, with the process's CPU time per
//! MiB moved), a table and the ratios; writes every run to the CSV (default
//! `target/bench-results/throughput.csv`). `NETSTACK_BENCH_SPIN_US` overrides the stack's
//! spin, `NETSTACK_BENCH_BUF_KIB` its socket buffers, `NETSTACK_BENCH_STATS` prints counters.

mod common;
use common::{ip, median, write_csv, Veth, VETH_PEER};
use netstack::device::sys;
use netstack::device::tun::{TunConfig, TunDevice};
use netstack::{Stack, StackConfig, TcpStream};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener as KListener, TcpStream as KStream};
use std::thread;
use std::time::{Duration, Instant};

struct Opts {
    /// Run only scenarios whose name contains this.
    only: Option<String>,
    mib: usize,
    reps: usize,
    conns: Vec<usize>,
    csv: String,
    /// Congestion control of the kernel senders (None: the machine's default).
    peer_cc: Option<String>,
}

/// `--peer-cc`, for `kernel_server`'s sockets.
static PEER_CC: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

fn opts() -> Opts {
    let mut o = Opts {
        only: None,
        mib: 256,
        reps: 3,
        conns: vec![1, 2, 4, 8, 16],
        csv: "target/bench-results/throughput.csv".into(),
        peer_cc: None,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--mib" => {
                o.mib = args[i + 1].parse().expect("--mib N");
                i += 1;
            }
            "--reps" => {
                o.reps = args[i + 1].parse().expect("--reps N");
                i += 1;
            }
            "--only" => {
                o.only = Some(args[i + 1].clone());
                i += 1;
            }
            "--csv" => {
                o.csv = args[i + 1].clone();
                i += 1;
            }
            "--peer-cc" => {
                o.peer_cc = Some(args[i + 1].clone());
                i += 1;
            }
            "--conns" => {
                o.conns = args[i + 1].split(',').map(|c| c.parse().expect("--conns 1,2,4")).collect();
                i += 1;
            }
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    o
}

/// Kernel-side server on `port`: for each of `n` connections, send `bytes` (download) or read
/// to EOF and check the count (upload).
fn kernel_server(port: u16, n: usize, bytes: usize, download: bool) -> thread::JoinHandle<()> {
    let l = KListener::bind(("0.0.0.0", port)).expect("bind kernel server");
    thread::spawn(move || {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let (mut s, _) = l.accept().unwrap();
                if let Some(cc) = PEER_CC.get().cloned().flatten() {
                    socket2::SockRef::from(&s).set_tcp_congestion(cc.as_bytes()).expect("--peer-cc: TCP_CONGESTION");
                }
                thread::spawn(move || {
                    let mut buf = vec![0x5au8; 256 * 1024];
                    if download {
                        let mut left = bytes;
                        while left > 0 {
                            let k = left.min(buf.len());
                            s.write_all(&buf[..k]).unwrap();
                            left -= k;
                        }
                        s.shutdown(Shutdown::Write).unwrap();
                        while s.read(&mut buf).unwrap_or(0) > 0 {}
                    } else {
                        let mut got = 0;
                        loop {
                            let k = s.read(&mut buf).unwrap();
                            if k == 0 {
                                break;
                            }
                            got += k;
                        }
                        assert_eq!(got, bytes, "upload byte count");
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    })
}

fn gbit(bytes: usize, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e9
}

/// netstack: `conns` connections in parallel, one app thread each; `offload`: the TUN fd
/// passes 64 KiB super-segments (IFF_VNET_HDR), as by default.
fn netstack_run(conns: usize, bytes: usize, download: bool, port: u16, offload: bool) -> f64 {
    let dev = TunDevice::open(&TunConfig { offload, ..TunConfig::default() }).expect("tun0");
    let mut cfg = StackConfig::default();
    if let Some(kib) = std::env::var("NETSTACK_BENCH_BUF_KIB").ok().and_then(|v| v.parse::<usize>().ok()) {
        cfg.tcp.recv_buf = kib * 1024;
        cfg.tcp.recv_buf_max = kib * 1024;
        cfg.tcp.send_buf = kib * 1024;
    }
    if let Some(us) = std::env::var("NETSTACK_BENCH_SPIN_US").ok().and_then(|v| v.parse::<u64>().ok()) {
        cfg.spin = Duration::from_micros(us);
    }
    let stack = Stack::new(Box::new(dev), cfg, netstack::log::discard()).unwrap();
    warm(&stack);
    let server = kernel_server(port, conns, bytes, download);
    let start = Instant::now();
    let hs: Vec<_> = (0..conns)
        .map(|_| {
            let h = stack.handle();
            thread::spawn(move || {
                let mut s = TcpStream::connect(&h, ("10.0.0.1", port)).unwrap();
                let mut buf = vec![0xa5u8; 256 * 1024];
                if download {
                    let mut got = 0;
                    loop {
                        let k = s.read(&mut buf).unwrap();
                        if k == 0 {
                            break;
                        }
                        got += k;
                    }
                    assert_eq!(got, bytes, "download byte count");
                } else {
                    let mut left = bytes;
                    while left > 0 {
                        let k = left.min(buf.len());
                        s.write_all(&buf[..k]).unwrap();
                        left -= k;
                    }
                    s.shutdown(Shutdown::Write).unwrap();
                    while s.read(&mut buf).unwrap_or(0) > 0 {}
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    let d = start.elapsed();
    server.join().unwrap();
    if std::env::var("NETSTACK_BENCH_STATS").is_ok() {
        eprintln!(
            "tcp {:?}\nip {:?}\ndev_tx_dropped {}",
            stack.tcp_stats(),
            stack.stats.ip.snapshot(),
            stack.stats.dev_tx_dropped.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    drop(stack);
    gbit(bytes * conns, d)
}

/// Make sure the path works before timing (the first packet after attach may be lost).
fn warm(stack: &Stack) {
    let l = KListener::bind("10.0.0.1:2999").unwrap();
    let t = thread::spawn(move || drop(l.accept()));
    drop(TcpStream::connect(stack, "10.0.0.1:2999").unwrap());
    t.join().unwrap();
}

/// The kernel against itself: `conns` connections reading what a server at `server_ip` sends
/// (the server runs in this namespace for loopback, on the veth peer for veth).
fn kernel_run(veth: Option<&Veth>, conns: usize, bytes: usize, port: u16) -> f64 {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (done_tx, done) = std::sync::mpsc::channel();
    let serve = move || {
        let h = kernel_server(port, conns, bytes, true);
        ready_tx.send(()).unwrap();
        h.join().unwrap();
        done_tx.send(()).unwrap();
    };
    let server_ip = match veth {
        Some(v) => {
            v.spawn_in_peer(serve);
            VETH_PEER
        }
        None => {
            thread::spawn(serve);
            "127.0.0.1"
        }
    };
    ready.recv().expect("kernel server");
    let start = Instant::now();
    let hs: Vec<_> = (0..conns)
        .map(|_| {
            thread::spawn(move || {
                let mut s = KStream::connect((server_ip, port)).unwrap();
                let mut buf = vec![0u8; 256 * 1024];
                let mut got = 0;
                loop {
                    let k = s.read(&mut buf).unwrap();
                    if k == 0 {
                        break;
                    }
                    got += k;
                }
                assert_eq!(got, bytes);
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    let d = start.elapsed();
    done.recv().expect("kernel server end");
    gbit(bytes * conns, d)
}

/// smoltcp 0.14 on the same kind of TUN device, one connection, 1 MiB socket buffers, its
/// usual single-threaded poll loop.
fn smoltcp_run(bytes: usize, download: bool, port: u16) -> f64 {
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::phy::{wait as phy_wait, Medium, TunTapInterface};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant as SInstant;
    use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};
    use std::os::fd::AsRawFd;

    ip(&["tuntap", "add", "dev", "tun0", "mode", "tun"]);
    ip(&["addr", "add", "10.0.0.1/24", "dev", "tun0"]);
    // The same transmit queue as netstack's devices (TunConfig::txqueuelen).
    ip(&["link", "set", "dev", "tun0", "txqueuelen", &netstack::device::tun::TXQUEUELEN.to_string()]);
    ip(&["link", "set", "dev", "tun0", "mtu", "1500", "up"]);
    let mut dev = TunTapInterface::new("tun0", Medium::Ip).expect("smoltcp tun0");
    let fd = dev.as_raw_fd();
    let _ = sys::tun_set_offload(fd, 0);
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, SInstant::now());
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 2), 24)).unwrap();
    });
    iface.routes_mut().add_default_ipv4_route(Ipv4Address::new(10, 0, 0, 1)).unwrap();
    let mut sockets = SocketSet::new(vec![]);
    let sock = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 1 << 20]), tcp::SocketBuffer::new(vec![0; 1 << 20]));
    let h = sockets.add(sock);
    let server = kernel_server(port, 1, bytes, download);
    let start = Instant::now();
    sockets.get_mut::<tcp::Socket>(h).connect(iface.context(), (IpAddress::v4(10, 0, 0, 1), port), 49_999).unwrap();
    let mut moved = 0usize;
    let mut closed_write = false;
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        let ts = SInstant::now();
        iface.poll(ts, &mut dev, &mut sockets);
        let s = sockets.get_mut::<tcp::Socket>(h);
        if download {
            while s.can_recv() {
                moved += s.recv(|b| (b.len(), b.len())).unwrap();
            }
            if !s.may_recv() && moved > 0 {
                s.close();
                break;
            }
        } else {
            while moved < bytes && s.can_send() {
                let k = (bytes - moved).min(chunk.len());
                moved += s.send_slice(&chunk[..k]).unwrap();
            }
            if moved == bytes && !closed_write {
                s.close();
                closed_write = true;
            }
            if closed_write && !s.is_open() {
                break;
            }
            if closed_write && !s.may_recv() && s.send_queue() == 0 {
                break;
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            panic!("smoltcp run stalled at {moved} bytes");
        }
        let d = iface.poll_delay(ts, &sockets);
        phy_wait(fd, d).unwrap();
    }
    let d = start.elapsed();
    // Let the close finish so the kernel side ends.
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end && sockets.get::<tcp::Socket>(h).state() != tcp::State::Closed {
        iface.poll(SInstant::now(), &mut dev, &mut sockets);
        phy_wait(fd, Some(smoltcp::time::Duration::from_millis(5))).unwrap();
    }
    server.join().unwrap();
    drop(dev);
    ip(&["tuntap", "del", "dev", "tun0", "mode", "tun"]);
    assert_eq!(moved, bytes);
    gbit(bytes, d)
}

/// Every run's figure, for the CSV: scenario, connections, direction, path, run, Gbit/s.
struct Results {
    csv: String,
    only: Option<String>,
    reps: usize,
    /// Payload of one run (all connections together), for the CPU cost per MiB.
    bytes: usize,
}

/// CPU time (user + system) this process has used so far: every thread's, the kernel peers'
/// included (they run in this process), so it is the whole cost of a transfer on this host.
/// From `/proc/self/stat` (utime, stime: fields 14 and 15, in 100 Hz clock ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it start past its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

impl Results {
    /// Run `run` `reps` times unless `--only` excludes `name`; print and record; the median.
    fn report(&mut self, name: &str, conns: usize, dir: &str, path: &str, run: impl FnMut() -> f64) -> f64 {
        if self.only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            return f64::NAN;
        }
        let mut run = run;
        let mut cpu = Vec::new();
        let runs: Vec<f64> = std::iter::repeat_with(|| {
            let c0 = cpu_time();
            let g = run();
            cpu.push((cpu_time() - c0).as_secs_f64() * 1e3 / (self.bytes as f64 / (1 << 20) as f64));
            g
        })
        .take(self.reps)
        .collect();
        let m = median(runs.clone());
        let all: Vec<String> = runs.iter().map(|r| format!("{r:.2}")).collect();
        let cpu_m = median(cpu);
        println!("{name:<40} {m:>7.2} Gbit/s  {cpu_m:>6.3} CPU ms/MiB   runs: {}", all.join(" "));
        for (i, r) in runs.iter().enumerate() {
            let who = name.split(' ').next().unwrap_or(name);
            self.csv.push_str(&format!("{who},{conns},{dir},{path},{i},{r:.3}\n"));
        }
        m
    }
}

/// Medians of one connection count.
struct Row {
    conns: usize,
    plain_dl: f64,
    plain_ul: f64,
    off_dl: f64,
    off_ul: f64,
    veth: f64,
}

fn main() {
    let o = opts();
    PEER_CC.set(o.peer_cc.clone()).expect("set once");
    if !sys::is_root() {
        println!("throughput bench SKIPPED: needs root (it creates network namespaces and tun0)");
        return;
    }
    let t = thread::spawn(move || {
        sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        ip(&["link", "set", "lo", "up"]);
        ip(&["link", "set", "lo", "mtu", "1500"]);
        let veth = Veth::new();
        let bytes = o.mib << 20;
        let default_cc = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap_or_default();
        println!(
            "payload {} MiB per run (split over the connections), median of {} runs, MTU 1500, {} CPUs, \
             kernel senders' congestion control {}",
            o.mib,
            o.reps,
            thread::available_parallelism().map_or(0, |n| n.get()),
            o.peer_cc.clone().unwrap_or_else(|| format!("{} (the default)", default_cc.trim()))
        );
        let mut port = 3100;
        let mut next = || {
            port += 1;
            port
        };
        let mut r = Results {
            csv: String::from("stack,conns,direction,path,run,gbit_per_s\n"),
            only: o.only.clone(),
            reps: o.reps,
            bytes,
        };
        let lo = r.report("kernel loopback, 1 conn", 1, "one-way", "loopback", || kernel_run(None, 1, bytes, next()));
        let s_dl = r.report("smoltcp download, 1 conn", 1, "download", "plain", || smoltcp_run(bytes, true, next()));
        let s_ul = r.report("smoltcp upload, 1 conn", 1, "upload", "plain", || smoltcp_run(bytes, false, next()));
        let mut rows = Vec::new();
        for &c in &o.conns {
            let per = bytes / c;
            let mut run = |dl: bool, off: bool| {
                let (dir, path) = (if dl { "download" } else { "upload" }, if off { "offload" } else { "plain" });
                r.report(&format!("netstack {dir}, {c} conn, {path}"), c, dir, path, || {
                    netstack_run(c, per, dl, next(), off)
                })
            };
            let (plain_dl, plain_ul, off_dl, off_ul) =
                (run(true, false), run(false, false), run(true, true), run(false, true));
            let veth = r.report(&format!("kernel veth, {c} conn"), c, "one-way", "veth", || {
                kernel_run(Some(&veth), c, per, next())
            });
            rows.push(Row { conns: c, plain_dl, plain_ul, off_dl, off_ul, veth });
        }
        println!("\nGbit/s (medians)   plain dl  plain ul  offload dl  offload ul  kernel veth");
        for w in &rows {
            println!(
                "{:>2} conn            {:>8.2}  {:>8.2}  {:>10.2}  {:>10.2}  {:>11.2}",
                w.conns, w.plain_dl, w.plain_ul, w.off_dl, w.off_ul, w.veth
            );
        }
        if let Some(one) = rows.iter().find(|w| w.conns == 1) {
            println!(
                "ratios (1 conn): plain/smoltcp download {:.2}, upload {:.2}; plain/veth download {:.2}, upload {:.2}; offload/veth download {:.2}, upload {:.2}; loopback ceiling {:.2}",
                one.plain_dl / s_dl,
                one.plain_ul / s_ul,
                one.plain_dl / one.veth,
                one.plain_ul / one.veth,
                one.off_dl / one.veth,
                one.off_ul / one.veth,
                lo
            );
        }
        write_csv(&o.csv, &r.csv);
    });
    t.join().unwrap();
}
