//! Throughput across connection (thread) counts: netstack vs smoltcp on the same TUN device,
//! and the Linux kernel talking to itself over loopback at the same MTU, in one run.
//!
//! Needs root: it runs inside a network namespace it creates (nothing touches the machine's
//! own). `cargo bench --bench throughput -- [--mib N] [--reps N] [--conns 1,2,4,8]`.
//! Prints one line per scenario (median of the repetitions) and the ratios.

use netstack::device::sys;
use netstack::device::tun::{TunConfig, TunDevice};
use netstack::{Stack, StackConfig, TcpStream};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener as KListener, TcpStream as KStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

struct Opts {
    /// Run only scenarios whose name contains this.
    only: Option<String>,
    mib: usize,
    reps: usize,
    conns: Vec<usize>,
}

fn opts() -> Opts {
    let mut o = Opts { only: None, mib: 256, reps: 3, conns: vec![1, 2, 4, 8] };
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

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().expect("ip").success();
    assert!(ok, "ip {args:?}");
}

/// Kernel-side server on `port`: for each of `n` connections, send `bytes` (download) or read
/// to EOF and check the count (upload).
fn kernel_server(port: u16, n: usize, bytes: usize, download: bool) -> thread::JoinHandle<()> {
    let l = KListener::bind(("0.0.0.0", port)).expect("bind kernel server");
    thread::spawn(move || {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let (mut s, _) = l.accept().unwrap();
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
        cfg.tcp.send_buf = kib * 1024;
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

/// The kernel against itself over loopback with the link's MTU.
fn kernel_run(conns: usize, bytes: usize, port: u16) -> f64 {
    let server = kernel_server(port, conns, bytes, true);
    let start = Instant::now();
    let hs: Vec<_> = (0..conns)
        .map(|_| {
            thread::spawn(move || {
                let mut s = KStream::connect(("127.0.0.1", port)).unwrap();
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
    server.join().unwrap();
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn report(only: &Option<String>, name: &str, run: impl FnMut() -> f64, reps: usize) -> f64 {
    if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
        return f64::NAN;
    }
    let runs: Vec<f64> = std::iter::repeat_with(run).take(reps).collect();
    let m = median(runs.clone());
    let all: Vec<String> = runs.iter().map(|r| format!("{r:.2}")).collect();
    println!("{name:<34} {m:>7.2} Gbit/s   runs: {}", all.join(" "));
    m
}

fn main() {
    let o = opts();
    if !sys::is_root() {
        println!("throughput bench SKIPPED: needs root (it creates a network namespace and tun0)");
        return;
    }
    let t = thread::spawn(move || {
        sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        ip(&["link", "set", "lo", "up"]);
        ip(&["link", "set", "lo", "mtu", "1500"]);
        let bytes = o.mib << 20;
        println!(
            "payload {} MiB per connection, median of {} runs, MTU 1500, {} CPUs",
            o.mib,
            o.reps,
            thread::available_parallelism().map_or(0, |n| n.get())
        );
        let mut port = 3100;
        let mut next = || {
            port += 1;
            port
        };
        let k1 = report(&o.only, "kernel loopback, 1 conn", || kernel_run(1, bytes, next()), o.reps);
        let s_dl = report(&o.only, "smoltcp download, 1 conn", || smoltcp_run(bytes, true, next()), o.reps);
        let s_ul = report(&o.only, "smoltcp upload, 1 conn", || smoltcp_run(bytes, false, next()), o.reps);
        report(
            &o.only,
            "netstack download, 1 conn, no offload",
            || netstack_run(1, bytes, true, next(), false),
            o.reps,
        );
        report(&o.only, "netstack upload, 1 conn, no offload", || netstack_run(1, bytes, false, next(), false), o.reps);
        let mut n_dl1 = 0.0;
        let mut n_ul1 = 0.0;
        for &c in &o.conns {
            let per = bytes / c;
            let dl = report(
                &o.only,
                &format!("netstack download, {c} conn"),
                || netstack_run(c, per, true, next(), true),
                o.reps,
            );
            let ul = report(
                &o.only,
                &format!("netstack upload, {c} conn"),
                || netstack_run(c, per, false, next(), true),
                o.reps,
            );
            if c == 1 {
                n_dl1 = dl;
                n_ul1 = ul;
            }
        }
        println!("ratios (1 conn): netstack/smoltcp download {:.2}, upload {:.2}; netstack/kernel download {:.2}, upload {:.2}", n_dl1 / s_dl, n_ul1 / s_ul, n_dl1 / k1, n_ul1 / k1);
    });
    t.join().unwrap();
}
