//! TCP against the Linux kernel through tun0 under loss and duplication, each test in its own
//! network namespace. nftables on tun0 (scripts/loss.sh) drops P % of the packets each way
//! and sends 2 % of those reaching the stack twice; 32 MiB go each way, checked by length and
//! SHA-256 at both ends, and the nft counters must show that packets really were dropped and
//! duplicated. Each transfer is bounded in time and prints its Gbit/s to stderr.
//!
//! The plain TUN path (no offload) with tun0's GSO limited to one segment, so that every
//! packet nft sees is one MTU-sized segment and P % is a per-packet rate both ways.

mod common;
use common::*;
use netstack::TcpStream;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

const MIB32: usize = 32 << 20;
/// Duplication towards the stack, in percent (the 2 %).
const DUP: u32 = 2;
/// A whole transfer must end within this (before the loss-recovery rewrite our 5 % upload
/// took ~100 s; Linux's sender takes seconds).
const TRANSFER_LIMIT: Duration = Duration::from_secs(240);
/// No single accept, read or write may block longer than this: a silence that long is a
/// stall, and the transfer errors out instead of hanging the test.
const OP_TIMEOUT: Duration = Duration::from_secs(60);
const CHUNK: usize = 256 * 1024;

/// The nft counters of scripts/loss.sh, in packets.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    to_kernel: u64,
    to_kernel_dropped: u64,
    to_stack: u64,
    to_stack_dropped: u64,
    to_stack_duplicated: u64,
}

fn loss_sh(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/loss.sh");
    let (ok, out) = run(script, args);
    assert!(ok, "scripts/loss.sh {args:?}: {out} (needs nft: .ci/run installs nftables)");
    out
}

/// Loss `loss` % each way and [`DUP`] % duplication on tun0 (which must exist).
fn install_faults(loss: u32) {
    loss_sh(&["on", &loss.to_string(), &DUP.to_string()]);
}

fn counters() -> Counters {
    let out = loss_sh(&["counters"]);
    let get = |name: &str| -> u64 {
        let line = out.lines().find(|l| l.split_whitespace().next() == Some(name));
        line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or_else(|| panic!("{name} in {out:?}"))
    };
    Counters {
        to_kernel: get("to_kernel"),
        to_kernel_dropped: get("to_kernel_dropped"),
        to_stack: get("to_stack"),
        to_stack_dropped: get("to_stack_dropped"),
        to_stack_duplicated: get("to_stack_duplicated"),
    }
}

/// tun0's transmit counters (packets, dropped): what the kernel handed the stack, duplicates
/// included. From /proc/thread-self: this thread's namespace, not the process's.
fn tun_tx() -> (u64, u64) {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
    let line = dev.lines().find_map(|l| l.trim_start().strip_prefix("tun0:")).expect("tun0 in /proc/net/dev");
    let f: Vec<u64> = line.split_whitespace().map(|n| n.parse().unwrap()).collect();
    // Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs drop ...
    (f[9], f[11])
}

/// The counters show the faults happened at about the configured rates (a binomial draw over
/// thousands of packets: the bounds are wide and still fail if nothing is dropped), and tun0
/// transmitted the duplicates: `tx` = (packets, dropped) that tun0 handed the stack meanwhile.
fn check_rates(c: &Counters, loss: u32, tx: (u64, u64)) {
    let near = |hits: u64, of: u64, pct: u32, what: &str| {
        let (n, p) = (of as f64, pct as f64 / 100.0);
        let (mean, sd) = (n * p, (n * p * (1.0 - p)).sqrt());
        assert!((hits as f64 - mean).abs() <= 5.0 * sd + 1.0, "{what}: {hits} of {of}, want about {pct} % ({c:?})");
        // Zero hits where ten or more are expected is e^-10 unlikely: the rule did not act.
        assert!(mean < 10.0 || hits > 0, "{what}: none of {of} ({c:?})");
    };
    near(c.to_stack_dropped, c.to_stack, loss, "dropped towards the stack");
    // Duplication is decided among the packets that were not dropped.
    near(c.to_stack_duplicated, c.to_stack - c.to_stack_dropped, DUP, "duplicated towards the stack");
    near(c.to_kernel_dropped, c.to_kernel, loss, "dropped towards the kernel");
    // Every packet that passed, plus every duplicate, reached tun0's queue (a read of the
    // counters and of tun0's at slightly different moments may differ by a stray ACK).
    let want = c.to_stack - c.to_stack_dropped + c.to_stack_duplicated;
    assert!(want.abs_diff(tx.0 + tx.1) <= 4, "tun0 sent {tx:?} (packets, dropped), nft says {want} ({c:?})");
}

fn gbit(bytes: usize, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e9
}

/// Send `data` in chunks, giving up at `deadline`.
fn send_all(mut w: impl Write, data: &[u8], deadline: Instant) -> Result<(), String> {
    for (i, c) in data.chunks(CHUNK).enumerate() {
        if Instant::now() > deadline {
            return Err(format!("deadline passed after {} bytes sent", i * CHUNK));
        }
        w.write_all(c).map_err(|e| format!("write after {} bytes: {e}", i * CHUNK))?;
    }
    Ok(())
}

/// Read to EOF, giving up at `deadline`; returns the length and SHA-256 of what came.
fn recv_all(mut r: impl Read, expect: usize, deadline: Instant) -> Result<(usize, String), String> {
    let mut got = Vec::with_capacity(expect);
    let mut buf = vec![0u8; CHUNK];
    loop {
        if Instant::now() > deadline {
            return Err(format!("deadline passed after {} of {expect} bytes received", got.len()));
        }
        match r.read(&mut buf) {
            Ok(0) => return Ok((got.len(), sha256_hex(&got))),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read after {} of {expect} bytes: {e}", got.len())),
        }
    }
}

/// Accept one connection before `deadline` (polling, so a connect that never comes cannot
/// hang the test).
fn accept_by(l: &std::net::TcpListener, deadline: Instant) -> Result<std::net::TcpStream, String> {
    l.set_nonblocking(true).unwrap();
    loop {
        match l.accept() {
            Ok((k, _)) => {
                k.set_nonblocking(false).unwrap();
                return Ok(k);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
}

fn host(v6: bool) -> &'static str {
    if v6 {
        "[fd00::1]"
    } else {
        "10.0.0.1"
    }
}

/// One transfer of 32 MiB under `loss` % (+ [`DUP`] %): `download` = the kernel sends to the
/// stack, else the stack sends to a kernel socket.
fn transfer(loss: u32, v6: bool, download: bool) {
    let name =
        format!("{} loss {loss}% dup {DUP}% v{}", if download { "download" } else { "upload" }, if v6 { 6 } else { 4 });
    let stack = tun_stack();
    warm_up(if v6 { "fd00::2" } else { "10.0.0.2" }, v6);
    install_faults(loss);
    let l = std::net::TcpListener::bind(format!("{}:3000", host(v6))).unwrap();
    let data = pattern(MIB32, if download { 21 } else { 22 });
    let want = sha256_hex(&data);
    let tx_before = tun_tx();
    let start = Instant::now();
    let deadline = start + TRANSFER_LIMIT;
    // The kernel's end: sends `data` (download) or reads to EOF (upload).
    let kdata = if download { Some(data.clone()) } else { None };
    let kernel = thread::spawn(move || -> Result<(usize, String), String> {
        let k = accept_by(&l, Instant::now() + OP_TIMEOUT)?;
        k.set_read_timeout(Some(OP_TIMEOUT)).unwrap();
        k.set_write_timeout(Some(OP_TIMEOUT)).unwrap();
        match kdata {
            Some(d) => {
                send_all(&k, &d, deadline)?;
                k.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
                recv_all(&k, 0, deadline)
            }
            None => {
                let got = recv_all(&k, MIB32, deadline)?;
                k.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
                Ok(got)
            }
        }
    });
    // Our end.
    let ours = (|| -> Result<(usize, String), String> {
        let s = TcpStream::connect(&stack, format!("{}:3000", host(v6))).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(OP_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(OP_TIMEOUT)).unwrap();
        if download {
            let got = recv_all(&s, MIB32, deadline)?;
            s.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
            Ok(got)
        } else {
            send_all(&s, &data, deadline)?;
            s.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
            // The kernel closes after it has read everything.
            recv_all(&s, 0, deadline)
        }
    })();
    let kernel = kernel.join().unwrap();
    let elapsed = start.elapsed();
    let c = counters();
    let tx_after = tun_tx();
    let tx = (tx_after.0 - tx_before.0, tx_after.1 - tx_before.1);
    // Past libtest's capture, so the figures show in every run.
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "{name}: {:.3} Gbit/s ({:.1} s); nft {c:?}; tun0 tx (packets, dropped) {tx:?}; ours {:?}",
        gbit(MIB32, elapsed),
        elapsed.as_secs_f64(),
        stack.tcp_stats()
    );
    let (received, sent) = if download { (ours, kernel) } else { (kernel, ours) };
    let (n, h) = received.unwrap_or_else(|e| panic!("{name}: receiver: {e}"));
    let (_, _) = sent.unwrap_or_else(|e| panic!("{name}: sender: {e}"));
    assert_eq!(n, MIB32, "{name}: bytes received");
    assert_eq!(h, want, "{name}: SHA-256");
    check_rates(&c, loss, tx);
}

macro_rules! loss_tests {
    ($($name:ident: $loss:expr, $v6:expr, $download:expr;)*) => {$(
        #[test]
        fn $name() {
            in_netns(stringify!($name), || transfer($loss, $v6, $download));
        }
    )*};
}

loss_tests! {
    kernel_download_loss1_v4: 1, false, true;
    kernel_upload_loss1_v4: 1, false, false;
    kernel_download_loss5_v4: 5, false, true;
    kernel_upload_loss5_v4: 5, false, false;
    kernel_download_loss10_v4: 10, false, true;
    kernel_upload_loss10_v4: 10, false, false;
    kernel_download_loss1_v6: 1, true, true;
    kernel_upload_loss1_v6: 1, true, false;
    kernel_download_loss5_v6: 5, true, true;
    kernel_upload_loss5_v6: 5, true, false;
    kernel_download_loss10_v6: 10, true, true;
    kernel_upload_loss10_v6: 10, true, false;
}
