//! TCP under loss: our sender against Linux's, over the same faults, in one run.
//!
//! For each loss rate the faults come, in turn, from two places (`--faults nft|wrapper|both`,
//! default both, one table each):
//! - scripts/loss.sh: nftables on tun0 drops that share of the packets each way and sends
//!   `--dup` % of those reaching the stack twice. Per segment, tun0 must carry no GSO
//!   bundles (gso_max_segs 1), which costs Linux's sender its fast path;
//! - the bins' fault wrapper (`--drop --dup --seed`, src/device/fault.rs): every packet in
//!   both directions, after the kernel has segmented its bundles, so Linux's sender keeps
//!   GSO and still meets every loss. This is the like-for-like comparison.
//!
//! Then, over IPv4:
//! - our sender: the release bin `tcp_bulk_upload` sends to a kernel socket that reads to EOF;
//! - Linux's sender: a kernel socket sends to the release bin `tcp_bulk_download`.
//!
//! The bins are measured because they are what users run; each reports its own Gbit/s (from
//! connect, or the request, to the end of the transfer). Both ends' SHA-256 must agree. Every run is bounded by
//! `--timeout` and kills only the child it started.
//!
//! Needs root: it runs inside a network namespace it creates (nothing touches the machine's
//! own). `cargo bench --bench loss -- [--mib 32] [--reps 3] [--loss 0,1,5,10] [--dup 2]
//! [--timeout 120] [--cc cubic] [--gso-bundles] [--faults both]`. Prints a table of medians: loss | our
//! upload | Linux sender | ratio. A run that fails (timeout, wrong bytes) is left out of the
//! median and noted in its cell. `--gso-bundles` keeps the kernel's 64 KiB GSO bundles on
//! tun0, so each loss decision towards the stack drops a whole burst (see scripts/loss.sh).

use netstack::bulk::fill_pattern;
use netstack::device::sys;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const UPLOAD_BIN: &str = env!("CARGO_BIN_EXE_tcp_bulk_upload");
const DOWNLOAD_BIN: &str = env!("CARGO_BIN_EXE_tcp_bulk_download");
const LOSS_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/loss.sh");
const CHUNK: usize = 256 * 1024;

struct Opts {
    mib: usize,
    reps: usize,
    loss: Vec<u32>,
    dup: u32,
    timeout: Duration,
    /// Congestion control for Linux's sender (default: the namespace's).
    cc: Option<String>,
    /// Keep the kernel's GSO bundles on tun0 (scripts/loss.sh then drops whole bursts).
    gso_bundles: bool,
    /// Where the faults are made: nftables on tun0, the bins' fault wrapper, or both in turn.
    modes: Vec<Faults>,
}

/// Where a run's faults come from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Faults {
    /// scripts/loss.sh: nftables on tun0 (per segment unless `--gso-bundles`).
    Nft,
    /// The bins' `--drop --dup --seed` (src/device/fault.rs): every packet in both
    /// directions, after the kernel segmented its GSO bundles, so Linux's sender keeps its
    /// fast path and still meets every loss.
    Wrapper,
}

fn opts() -> Opts {
    let mut o = Opts {
        mib: 32,
        reps: 3,
        loss: vec![0, 1, 5, 10],
        dup: 2,
        timeout: Duration::from_secs(120),
        cc: None,
        gso_bundles: false,
        modes: vec![Faults::Nft, Faults::Wrapper],
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let val = || args.get(i + 1).unwrap_or_else(|| panic!("{} needs a value", args[i])).clone();
        match args[i].as_str() {
            "--mib" => o.mib = val().parse().expect("--mib N"),
            "--reps" => o.reps = val().parse().expect("--reps N"),
            "--loss" => o.loss = val().split(',').map(|p| p.parse().expect("--loss 0,1,5")).collect(),
            "--dup" => o.dup = val().parse().expect("--dup P"),
            "--timeout" => o.timeout = Duration::from_secs(val().parse().expect("--timeout SECONDS")),
            "--cc" => o.cc = Some(val()),
            "--faults" => {
                o.modes = match val().as_str() {
                    "nft" => vec![Faults::Nft],
                    "wrapper" => vec![Faults::Wrapper],
                    "both" => vec![Faults::Nft, Faults::Wrapper],
                    m => panic!("--faults nft|wrapper|both, not {m}"),
                }
            }
            "--gso-bundles" => {
                o.gso_bundles = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1; // cargo bench passes --bench
                continue;
            }
        }
        i += 2;
    }
    o
}

fn cmd(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| panic!("{prog}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{prog} {args:?}: {text}");
    text
}

/// A persistent tun0 with the kernel side at 10.0.0.1/24; the bins attach with --no-configure,
/// so the nft chains bound to it stay in place from run to run.
fn make_tun() {
    cmd("ip", &["tuntap", "add", "dev", "tun0", "mode", "tun"]);
    cmd("ip", &["link", "set", "dev", "tun0", "addrgenmode", "none", "mtu", "1500"]);
    cmd("ip", &["addr", "add", "10.0.0.1/24", "dev", "tun0"]);
    cmd("ip", &["link", "set", "dev", "tun0", "up"]);
}

/// `name packets` lines from scripts/loss.sh, as (to_stack, dropped, duplicated, to_kernel, dropped).
fn counters() -> [u64; 5] {
    let out = cmd(LOSS_SH, &["counters"]);
    let get = |name: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {out:?}"))
    };
    ["to_stack", "to_stack_dropped", "to_stack_duplicated", "to_kernel", "to_kernel_dropped"].map(get)
}

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Accept one connection before `deadline` (the listener polls, so a bin that never connects
/// cannot hang the bench).
fn accept_by(l: &TcpListener, deadline: Instant) -> Result<TcpStream, String> {
    l.set_nonblocking(true).unwrap();
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
                s.set_read_timeout(Some(left)).unwrap();
                s.set_write_timeout(Some(left)).unwrap();
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
}

/// The kernel's end: `send = Some(n)` sends n pattern bytes after the bin's request line;
/// `None` reads to EOF. Returns (bytes, SHA-256) of what it sent or read.
fn kernel_end(
    l: TcpListener,
    send: Option<usize>,
    cc: Option<String>,
    deadline: Instant,
) -> Result<(usize, String), String> {
    let mut s = accept_by(&l, deadline)?;
    if let Some(cc) = cc {
        socket2::SockRef::from(&s)
            .set_tcp_congestion(cc.as_bytes())
            .map_err(|e| format!("TCP_CONGESTION {cc}: {e}"))?;
    }
    let mut buf = vec![0u8; CHUNK];
    let mut h = Sha256::new();
    let mut moved = 0;
    if let Some(n) = send {
        // tcp_bulk_download's "GET / HTTP/1.0\r\n\r\n".
        let mut req = Vec::new();
        while !req.ends_with(b"\r\n\r\n") {
            let k = s.read(&mut buf).map_err(|e| format!("read request: {e}"))?;
            if k == 0 {
                return Err("closed before the request".into());
            }
            req.extend_from_slice(&buf[..k]);
        }
        while moved < n {
            let k = (n - moved).min(CHUNK);
            fill_pattern(&mut buf[..k], moved as u64);
            s.write_all(&buf[..k]).map_err(|e| format!("send after {moved} bytes: {e}"))?;
            h.update(&buf[..k]);
            moved += k;
        }
        s.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
        while s.read(&mut buf).map_err(|e| format!("wait for close: {e}"))? > 0 {}
    } else {
        loop {
            let k = s.read(&mut buf).map_err(|e| format!("read after {moved} bytes: {e}"))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            moved += k;
        }
    }
    Ok((moved, hex(h)))
}

/// Wait for `child` until `deadline`; past it, kill that child (by its PID, nothing else).
fn wait_by(mut child: Child, deadline: Instant) -> Result<String, String> {
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => {
                let mut out = String::new();
                child.stdout.take().unwrap().read_to_string(&mut out).map_err(|e| e.to_string())?;
                return if status.success() { Ok(out) } else { Err(format!("exit {status}: {out}")) };
            }
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("timed out (killed)".into());
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|f| f.strip_prefix(key))
}

/// One transfer through a bin (with `faults` added to its arguments); returns its Gbit/s,
/// or why it failed.
fn run(upload: bool, bytes: usize, port: u16, o: &Opts, faults: &[String]) -> Result<f64, String> {
    let timeout = o.timeout;
    let l = TcpListener::bind(("10.0.0.1", port)).map_err(|e| format!("bind: {e}"))?;
    let deadline = Instant::now() + timeout;
    let cc = o.cc.clone();
    let kernel = thread::spawn(move || kernel_end(l, if upload { None } else { Some(bytes) }, cc, deadline));
    let port = port.to_string();
    let size = bytes.to_string();
    let mut args = vec!["--no-configure", "--no-wait", "--log", "warn", "--port", &port];
    if upload {
        args.extend(["--bytes", &size]);
    }
    args.extend(faults.iter().map(String::as_str));
    let child = Command::new(if upload { UPLOAD_BIN } else { DOWNLOAD_BIN })
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start bin: {e}"))?;
    let ours = wait_by(child, deadline);
    let theirs = kernel.join().unwrap();
    let line = ours?;
    let line = line.lines().last().unwrap_or("");
    let (n, h) = theirs?;
    if n != bytes || field(line, "bytes=") != Some(&size) {
        return Err(format!("byte counts: kernel {n}, bin {line:?}, want {bytes}"));
    }
    if field(line, "sha256=") != Some(&h) {
        return Err(format!("SHA-256 differs: kernel {h}, bin {line:?}"));
    }
    field(line, "gbit_per_s=").and_then(|g| g.parse().ok()).ok_or_else(|| format!("no gbit_per_s in {line:?}"))
}

/// The runs of one sender at one loss rate: Gbit/s of each completed run, and how many failed.
#[derive(Default)]
struct Runs {
    gbit: Vec<f64>,
    failed: usize,
}

impl Runs {
    fn median(&self) -> Option<f64> {
        let mut v = self.gbit.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v.get(v.len() / 2).copied()
    }

    /// The median of the completed runs, noting failures; all failed: the bound the
    /// timeout sets (`mib` in `timeout` or longer).
    fn cell(&self, mib: usize, timeout: Duration) -> String {
        let note = if self.failed > 0 {
            format!(" ({} of {} failed)", self.failed, self.failed + self.gbit.len())
        } else {
            String::new()
        };
        match self.median() {
            Some(m) => format!("{m:.3}{note}"),
            None => format!("< {:.4}{note}", (mib << 20) as f64 * 8.0 / timeout.as_secs_f64() / 1e9),
        }
    }

    fn show(&self) -> String {
        let mut s: Vec<String> = self.gbit.iter().map(|g| format!("{g:.3}")).collect();
        s.extend(std::iter::repeat_n("failed".to_string(), self.failed));
        s.join(" ")
    }
}

/// The runs at one loss rate: (our upload, Linux sender).
fn one_rate(o: &Opts, mode: Faults, loss: u32, port: &mut u16) -> (Runs, Runs) {
    let nft = mode == Faults::Nft;
    // The wrapper's runs leave tun0 with the kernel's GSO bundles and no nft rule.
    let segs = if o.gso_bundles || !nft { "65535" } else { "1" };
    let (l, d) = if nft { (loss, o.dup) } else { (0, 0) };
    let on = Command::new(LOSS_SH).args(["on", &l.to_string(), &d.to_string()]).env("GSO_SEGS", segs).status();
    assert!(on.is_ok_and(|s| s.success()), "scripts/loss.sh on {l} {d}");
    let faults: Vec<String> = if nft {
        vec![]
    } else {
        let p = |x: u32| format!("{:.2}", x as f64 / 100.0);
        ["--drop".into(), p(loss), "--dup".into(), p(o.dup), "--seed".into(), loss.to_string()].into()
    };
    let (mut ours, mut linux) = (Runs::default(), Runs::default());
    for rep in 0..o.reps {
        for upload in [true, false] {
            cmd(LOSS_SH, &["reset"]);
            *port += 1;
            let what = if upload { "our upload" } else { "Linux sender" };
            let result = run(upload, o.mib << 20, *port, o, &faults);
            let c = counters();
            let runs = if upload { &mut ours } else { &mut linux };
            let got = match result {
                Ok(g) => {
                    runs.gbit.push(g);
                    format!("{g:.3} Gbit/s")
                }
                Err(e) => {
                    runs.failed += 1;
                    format!("FAILED: {e}")
                }
            };
            eprintln!(
                "{mode:?} loss {loss}% rep {rep} {what}: {got}; nft: to stack {} dropped {} duplicated {}; to kernel {} dropped {}",
                c[0], c[1], c[2], c[3], c[4]
            );
        }
    }
    println!("  {mode:?} loss {loss:>2} %: our upload runs {}; Linux sender runs {}", ours.show(), linux.show());
    (ours, linux)
}

fn main() {
    let o = opts();
    if !sys::is_root() {
        println!("loss bench SKIPPED: needs root (it creates a network namespace and tun0)");
        return;
    }
    let t = thread::spawn(move || {
        sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        cmd("ip", &["link", "set", "lo", "up"]);
        make_tun();
        println!(
            "{} MiB per transfer, IPv4, MTU 1500, loss each way + {} % duplication, median of {} runs, \
             {} CPUs, Linux's congestion control {}",
            o.mib,
            o.dup,
            o.reps,
            thread::available_parallelism().map_or(0, |n| n.get()),
            o.cc.clone().unwrap_or_else(|| {
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap_or_default().trim().into()
            }),
        );
        let mut port = 3000;
        let mut tables = Vec::new();
        for &mode in &o.modes {
            let rows: Vec<_> = o.loss.iter().map(|&loss| (loss, one_rate(&o, mode, loss, &mut port))).collect();
            tables.push((mode, rows));
        }
        cmd(LOSS_SH, &["off"]);
        for (mode, rows) in tables {
            let how = match mode {
                Faults::Nft if o.gso_bundles => "nftables on tun0, one decision per GSO bundle towards the stack",
                Faults::Nft => {
                    "nftables on tun0, per segment (tun0 gso_max_segs 1: Linux's sender loses its GSO fast path)"
                }
                Faults::Wrapper => {
                    "the bins' fault wrapper, per packet both ways (Linux keeps GSO; duplication both ways)"
                }
            };
            println!("\nFaults: {how}\n");
            println!("| loss | our upload Gbit/s | Linux sender Gbit/s | ratio |");
            println!("|---:|---:|---:|---:|");
            for (loss, (ours, linux)) in rows {
                let ratio = match (ours.median(), linux.median()) {
                    (Some(a), Some(b)) if ours.failed == 0 && linux.failed == 0 => format!("{:.3}", a / b),
                    _ => "—".into(),
                };
                let (a, b) = (ours.cell(o.mib, o.timeout), linux.cell(o.mib, o.timeout));
                println!("| {loss} % | {a} | {b} | {ratio} |");
            }
        }
    });
    t.join().unwrap();
}
