//! Latency: ICMP echo and a 1-byte TCP request/response, p50 and p99, netstack on tun0 against
//! the Linux kernel talking to itself over a veth pair (two namespaces, MTU 1500): the
//! like-for-like reference for one hop between two hosts. A third row is the floor any TUN
//! program meets: one thread that answers echo requests on `tun1` straight from its read loop
//! (no stack, no hand-offs), so the cost of the TUN device and one wake-up is measured in the
//! same run.
//!
//! Needs root: it runs inside network namespaces it creates (nothing touches the machine's
//! own). `cargo bench --bench latency -- [--count N] [--reps N] [--csv FILE]`.
//! Prints one line per scenario (median over the repetitions of each run's p50 and p99) and the
//! ratios; writes every run's percentiles to the CSV (default
//! `target/bench-results/latency.csv`).

mod common;
use common::{arg, ip, median, write_csv, Veth, VETH_PEER};
use netstack::device::sys;
use netstack::device::tun::{TunConfig, TunDevice};
use netstack::{Stack, StackConfig, TcpListener};
use std::io::{Read, Write};
use std::net::TcpStream as KStream;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

struct Opts {
    count: usize,
    reps: usize,
    csv: String,
}

fn opts() -> Opts {
    Opts {
        count: arg("--count", 2000),
        reps: arg("--reps", 3),
        csv: arg("--csv", "target/bench-results/latency.csv".to_string()),
    }
}

/// p50 and p99 of `v` (µs).
fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    assert!(!v.is_empty(), "no samples");
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

/// `count` pings 2 ms apart (ping's own per-reply times, in µs).
fn ping(target: &str, count: usize) -> Vec<f64> {
    let out = Command::new("ping")
        .args(["-n", "-c", &count.to_string(), "-i", "0.002", "-W", "1", target])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.trim_end_matches(" ms").parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .collect();
    assert!(v.len() * 10 >= count * 9, "ping {target}: {} of {count} replies", v.len());
    v
}

/// The TUN floor: one blocking thread on `tun1` (kernel side 10.1.0.1/24) that turns every
/// IPv4 echo request to 10.1.0.2 into a reply in place (addresses swapped, type 0, checksum
/// recomputed) and writes it back. Nothing else runs on that device.
fn tun_floor_responder() {
    use tun_tap::{Iface, Mode};
    let iface = Iface::without_packet_info("tun1", Mode::Tun).expect("tun1");
    ip(&["addr", "add", "10.1.0.1/24", "dev", "tun1"]);
    ip(&["link", "set", "tun1", "up"]);
    thread::spawn(move || {
        let mut b = [0u8; 2048];
        while let Ok(n) = iface.recv(&mut b) {
            let p = &mut b[..n];
            let hl = usize::from(p[0] & 0x0f) * 4;
            let is_echo = n >= hl + 8 && p[0] >> 4 == 4 && p[9] == 1 && p[hl] == 8 && p[16..20] == [10, 1, 0, 2];
            if !is_echo {
                continue;
            }
            let (src, dst): ([u8; 4], [u8; 4]) = (p[12..16].try_into().unwrap(), p[16..20].try_into().unwrap());
            p[12..16].copy_from_slice(&dst);
            p[16..20].copy_from_slice(&src);
            p[hl] = 0;
            p[hl + 2..hl + 4].fill(0);
            let sum = checksum(&p[hl..]);
            p[hl + 2..hl + 4].copy_from_slice(&sum.to_be_bytes());
            let _ = iface.send(p);
        }
    });
}

/// The Internet checksum of `d` (RFC 1071).
fn checksum(d: &[u8]) -> u16 {
    let mut s: u32 = d.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// `count` 1-byte request/responses on one connection to `addr` (µs each).
fn tcp_rr(addr: &str, count: usize) -> Vec<f64> {
    let mut s = KStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    let mut v = Vec::with_capacity(count);
    for i in 0..count + 100 {
        let t = Instant::now();
        s.write_all(&[i as u8]).unwrap();
        s.read_exact(&mut b).expect("echo");
        assert_eq!(b[0], i as u8, "echoed byte");
        if i >= 100 {
            v.push(t.elapsed().as_secs_f64() * 1e6); // the first 100 warm up
        }
    }
    v
}

/// A 1-byte echo server for the kernel reference (one connection at a time).
fn kernel_echo(l: std::net::TcpListener) {
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.set_nodelay(true);
            let mut b = [0u8; 64];
            while let Ok(n) = s.read(&mut b) {
                if n == 0 || s.write_all(&b[..n]).is_err() {
                    break;
                }
            }
        }
    });
}

/// The kernel reference: an echo server on the veth peer.
fn veth_reference() -> Veth {
    let veth = Veth::new();
    let (tx, rx) = mpsc::channel();
    veth.spawn_in_peer(move || {
        let l = std::net::TcpListener::bind((VETH_PEER, 5000)).expect("bind veth echo");
        tx.send(()).unwrap();
        kernel_echo(l);
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("veth echo never came up");
    veth
}

/// netstack on tun0 with a 1-byte echo service on 10.0.0.2:7 (app thread per connection).
fn netstack_host() -> Stack {
    let dev = TunDevice::open(&TunConfig::default()).expect("tun0");
    let stack = Stack::new(Box::new(dev), StackConfig::default(), netstack::log::discard()).unwrap();
    let l = TcpListener::bind(&stack, "0.0.0.0:7").expect("bind 7");
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut b = [0u8; 64];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 || s.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while KStream::connect_timeout(&"10.0.0.2:7".parse().unwrap(), Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "netstack echo never came up");
    }
    stack
}

struct Row {
    name: &'static str,
    p50: f64,
    p99: f64,
    /// The lowest p50 of the runs: both the kernel over veth and netstack are bimodal on a VM
    /// (a halted vCPU to wake or not), so the ratio is printed for the fast modes too.
    best_p50: f64,
}

fn measure(name: &'static str, reps: usize, csv: &mut String, mut run: impl FnMut() -> Vec<f64>) -> Row {
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for rep in 0..reps {
        let (p50, p99) = percentiles(run());
        // Quoted: the scenario names contain commas (RFC 4180 §2.6).
        csv.push_str(&format!("\"{name}\",{rep},{p50:.1},{p99:.1}\n"));
        p50s.push(p50);
        p99s.push(p99);
    }
    let best_p50 = p50s.iter().copied().fold(f64::INFINITY, f64::min);
    let row = Row { name, p50: median(p50s), p99: median(p99s), best_p50 };
    println!("{:<34} p50 {:>7.1} µs   p99 {:>7.1} µs", row.name, row.p50, row.p99);
    row
}

fn main() {
    let o = opts();
    if !sys::is_root() {
        println!("latency bench SKIPPED: needs root (it creates network namespaces and tun0)");
        return;
    }
    let t = thread::spawn(move || {
        sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        ip(&["link", "set", "lo", "up"]);
        println!(
            "{} samples per run, median of {} runs, MTU 1500, {} CPUs",
            o.count,
            o.reps,
            thread::available_parallelism().map_or(0, |n| n.get())
        );
        let _veth = veth_reference();
        let stack = netstack_host();
        tun_floor_responder();
        let mut csv = String::from("scenario,run,p50_us,p99_us\n");
        let n = o.count;
        let kp = measure("kernel over veth, ICMP echo", o.reps, &mut csv, || ping(VETH_PEER, n));
        let fp = measure("TUN floor (1 thread), ICMP echo", o.reps, &mut csv, || ping("10.1.0.2", n));
        let np = measure("netstack, ICMP echo", o.reps, &mut csv, || ping("10.0.0.2", n));
        let kt =
            measure("kernel over veth, TCP 1-byte RR", o.reps, &mut csv, || tcp_rr(&format!("{VETH_PEER}:5000"), n));
        let nt = measure("netstack, TCP 1-byte RR", o.reps, &mut csv, || tcp_rr("10.0.0.2:7", n));
        println!(
            "ratios netstack/veth: ICMP p50 {:.2} p99 {:.2} (TUN floor/veth p50 {:.2}, netstack/floor {:.2}); \
             TCP p50 {:.2} p99 {:.2}",
            np.p50 / kp.p50,
            np.p99 / kp.p99,
            fp.p50 / kp.p50,
            np.p50 / fp.p50,
            nt.p50 / kt.p50,
            nt.p99 / kt.p99
        );
        println!(
            "fast modes (lowest p50 of the runs): TCP RR netstack {:.1} µs, veth {:.1} µs, ratio {:.2}",
            nt.best_p50,
            kt.best_p50,
            nt.best_p50 / kt.best_p50
        );
        write_csv(&o.csv, &csv);
        drop(stack);
    });
    t.join().unwrap();
}
