//! Many connections: open N idle connections from kernel clients to netstack and report the
//! memory each costs and how fast they were accepted.
//!
//! Two scenarios, one after the other, each on its own tun0:
//! * **library**: a `Stack` in this process, a listener whose accepted streams are kept (no
//!   thread per connection): the stack's own cost per connection (app threads excluded).
//! * **host bin**: the `netstack` bin, connections to its discard service (port 9), which runs
//!   a thread per connection: the cost a user of the bin sees, threads included; then every
//!   connection closes and the bin's RSS is read again.
//!
//! Needs root: it runs inside a network namespace it creates (nothing touches the machine's
//! own). `cargo bench --bench connections -- [--conns N] [--clients N] [--csv FILE]`.

mod common;
use common::{arg, ip, write_csv};
use netstack::device::sys;
use netstack::device::tun::{TunConfig, TunDevice};
use netstack::{Stack, StackConfig, TcpListener};
use std::net::TcpStream as KStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

struct Opts {
    conns: usize,
    clients: usize,
    csv: String,
}

fn opts() -> Opts {
    Opts {
        conns: arg("--conns", 10_000),
        clients: arg("--clients", 4),
        csv: arg("--csv", "target/bench-results/connections.csv".to_string()),
    }
}

/// Resident set size of process `pid` ("self" for this one), in KiB.
fn rss_kib(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The mappings of process `pid` holding the most resident memory (diagnostics for where a
/// process's memory stays: set NETSTACK_BENCH_SMAPS).
fn print_top_mappings(pid: &str) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut maps: Vec<(u64, String)> = Vec::new();
    let mut name = String::new();
    let mut count = std::collections::HashMap::<String, (u64, usize)>::new();
    for l in smaps.lines() {
        if l.starts_with("Rss:") {
            let kib: u64 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
            maps.push((kib, name.clone()));
            let e = count.entry(name.clone()).or_default();
            e.0 += kib;
            e.1 += 1;
        } else if !l.contains(':') || l.split_whitespace().next().is_some_and(|f| f.contains('-')) {
            let f: Vec<&str> = l.split_whitespace().collect();
            name = if f.len() >= 6 { f[5..].join(" ") } else { format!("[anon {}]", f.first().copied().unwrap_or("")) };
            if name.starts_with("[anon") {
                name = "[anon]".into();
            }
        }
    }
    maps.sort_by_key(|m| std::cmp::Reverse(m.0));
    println!("largest mappings (RSS KiB): {:?}", &maps[..maps.len().min(8)]);
    let mut by: Vec<_> = count.into_iter().collect();
    by.sort_by_key(|b| std::cmp::Reverse(b.1 .0));
    println!("by name (RSS KiB, mappings): {:?}", &by[..by.len().min(5)]);
}

/// The kernel's `TcpExt: TCPSynRetrans` in this thread's namespace (SYNs its clients had to
/// send again: each costs a client 1 s or more).
fn kernel_syn_retrans() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat").expect("netstat");
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let i = names.split_whitespace().position(|n| n == "TCPSynRetrans").expect("TCPSynRetrans");
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// Open `n` connections to `addr` from `clients` threads; returns them and the time taken.
fn open_many(addr: &str, n: usize, clients: usize) -> (Vec<KStream>, Duration) {
    let start = Instant::now();
    let hs: Vec<_> = (0..clients)
        .map(|c| {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            let k = n / clients + usize::from(c < n % clients);
            thread::spawn(move || {
                (0..k)
                    .map(|i| {
                        KStream::connect_timeout(&addr, Duration::from_secs(10))
                            .unwrap_or_else(|e| panic!("connection {i} of client {c}: {e}"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<KStream> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
    (all, start.elapsed())
}

struct Row {
    name: String,
    conns: usize,
    per_sec: f64,
    kib_per_conn: f64,
    rss_after_close_kib: Option<u64>,
}

/// The library: the stack's own memory per connection.
fn library(n: usize, clients: usize) -> Row {
    let dev = TunDevice::open(&TunConfig::default()).expect("tun0");
    let stack = Stack::new(Box::new(dev), StackConfig::default(), netstack::log::discard()).unwrap();
    let l = TcpListener::bind(&stack, "0.0.0.0:9").expect("bind 9");
    // Warm up (first packets after attach, allocator arenas) before the baseline.
    drop(open_many("10.0.0.2:9", 64, 1));
    for _ in 0..64 {
        drop(l.accept().expect("warm accept"));
    }
    thread::sleep(Duration::from_millis(200));
    let before = rss_kib("self");
    let acceptor = thread::spawn(move || {
        let held: Vec<_> = (0..n).map(|_| l.accept().expect("accept").0).collect();
        (held, l)
    });
    let (clients_held, took) = open_many("10.0.0.2:9", n, clients);
    let (held, l) = acceptor.join().unwrap();
    let after = rss_kib("self");
    let row = Row {
        name: "library (streams held, no threads)".into(),
        conns: n,
        per_sec: n as f64 / took.as_secs_f64(),
        kib_per_conn: after.saturating_sub(before) as f64 / n as f64,
        rss_after_close_kib: None,
    };
    drop(clients_held);
    drop(held);
    drop(l);
    drop(stack);
    row
}

/// The host bin's discard service (a thread per connection), then every connection closed.
fn host_bin(n: usize, clients: usize) -> Row {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netstack"))
        .args(["--log", "warn"])
        .args(std::env::var("NETSTACK_BENCH_HOST_ARGS").unwrap_or_default().split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the netstack bin");
    let pid = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while KStream::connect_timeout(&"10.0.0.2:9".parse().unwrap(), Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "the host never answered on port 9");
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(200));
    let before = rss_kib(&pid);
    println!("host bin RSS before: {:.1} MiB", before as f64 / 1024.0);
    let syn_rtx0 = kernel_syn_retrans();
    let (held, took) = open_many("10.0.0.2:9", n, clients);
    println!("host bin: the clients' kernel retransmitted {} SYNs", kernel_syn_retrans() - syn_rtx0);
    thread::sleep(Duration::from_millis(500)); // the service threads start
    let after = rss_kib(&pid);
    drop(held);
    thread::sleep(Duration::from_secs(3)); // closes and service threads end
    let closed = rss_kib(&pid);
    if std::env::var("NETSTACK_BENCH_SMAPS").is_ok() {
        print_top_mappings(&pid);
    }
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    Row {
        name: "host bin discard (thread each)".into(),
        conns: n,
        per_sec: n as f64 / took.as_secs_f64(),
        kib_per_conn: after.saturating_sub(before) as f64 / n as f64,
        rss_after_close_kib: Some(closed),
    }
}

fn main() {
    let o = opts();
    if !sys::is_root() {
        println!("connections bench SKIPPED: needs root (it creates a network namespace and tun0)");
        return;
    }
    let fds = sys::raise_nofile_limit(2 * o.conns as u64 + 1024).expect("RLIMIT_NOFILE");
    assert!(fds as usize > o.conns + 256, "open-file limit {fds} is too low for {} connections", o.conns);
    let t = thread::spawn(move || {
        sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        ip(&["link", "set", "lo", "up"]);
        println!(
            "{} idle connections from {} kernel client threads, {} CPUs",
            o.conns,
            o.clients,
            thread::available_parallelism().map_or(0, |n| n.get())
        );
        let rows = [library(o.conns, o.clients), host_bin(o.conns, o.clients)];
        let mut csv = String::from("scenario,conns,conns_per_s,kib_per_conn,rss_after_close_kib\n");
        for r in &rows {
            let closed = r.rss_after_close_kib.map_or(String::new(), |k| k.to_string());
            println!(
                "{:<36} {:>6} conns  {:>7.0} conns/s  {:>6.1} KiB/conn{}",
                r.name,
                r.conns,
                r.per_sec,
                r.kib_per_conn,
                r.rss_after_close_kib
                    .map_or(String::new(), |k| format!("  RSS after close {:.1} MiB", k as f64 / 1024.0))
            );
            // Quoted: the scenario names contain commas (RFC 4180 §2.6).
            csv.push_str(&format!("\"{}\",{},{:.0},{:.2},{}\n", r.name, r.conns, r.per_sec, r.kib_per_conn, closed));
        }
        write_csv(&o.csv, &csv);
    });
    t.join().unwrap();
}
