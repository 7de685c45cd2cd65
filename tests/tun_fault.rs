//! The fault-injecting wrapper on a real TUN device against the kernel: a transfer each way
//! through drops, duplicates, reordering and corruption arrives exact (length and SHA-256 at
//! both ends), and the wrapper's counters show every kind of fault happened.

mod common;
use common::*;
use netstack::device::fault::{FaultCounters, FaultDevice, FaultSpec};
use netstack::device::tun::{TunConfig, TunDevice};
use netstack::{Stack, StackConfig, TcpStream};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::{Duration, Instant};

/// Bytes each way: small enough for today's loss recovery to finish in seconds.
const BYTES: usize = 4 << 20;

fn faulty_stack(spec: FaultSpec) -> (Stack, FaultCounters) {
    let tun = TunDevice::open(&TunConfig::default()).expect("open tun0");
    let out = FaultSpec { seed: spec.seed + 1, ..spec };
    let dev = FaultDevice::new(Box::new(tun), Some(spec), Some(out), netstack::log::discard()).unwrap();
    let counters = dev.counters();
    (Stack::new(Box::new(dev), StackConfig::default(), netstack::log::discard()).unwrap(), counters)
}

/// Upload then download `BYTES` through the stack; returns (sent hash, received hash) pairs.
fn both_ways(stack: &Stack) {
    let l = std::net::TcpListener::bind("10.0.0.1:3000").unwrap();
    let up = pattern(BYTES, 5);
    let down = pattern(BYTES, 6);
    let (up_hash, down_hash) = (sha256_hex(&up), sha256_hex(&down));
    let server = thread::spawn(move || {
        // Kernel side: read the upload, then send the download on a second connection.
        let (mut k, _) = l.accept().unwrap();
        let mut got = Vec::with_capacity(BYTES);
        k.read_to_end(&mut got).unwrap();
        drop(k);
        let (mut k, _) = l.accept().unwrap();
        k.write_all(&down).unwrap();
        k.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        k.read_to_end(&mut rest).unwrap();
        (got.len(), sha256_hex(&got))
    });
    let t = Instant::now();
    let mut s = TcpStream::connect(stack, "10.0.0.1:3000").unwrap();
    s.write_all(&up).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    drop(s);
    let t_up = t.elapsed();
    let mut s = TcpStream::connect(stack, "10.0.0.1:3000").unwrap();
    let mut got = Vec::with_capacity(BYTES);
    s.read_to_end(&mut got).unwrap();
    drop(s);
    let (n, h) = server.join().unwrap();
    eprintln!("tun_fault: {} MiB up in {t_up:?}, down in {:?}", BYTES >> 20, t.elapsed() - t_up);
    assert_eq!((n, h), (BYTES, up_hash), "upload arrived at the kernel changed");
    assert_eq!((got.len(), sha256_hex(&got)), (BYTES, down_hash), "download arrived changed");
}

#[test]
fn kernel_transfer_through_injected_faults_is_exact() {
    in_netns("kernel_transfer_through_injected_faults_is_exact", || {
        let spec = FaultSpec { seed: 11, drop: 0.02, dup: 0.01, reorder: 0.01, corrupt: 0.005, ..FaultSpec::default() };
        let (stack, c) = faulty_stack(spec);
        warm_up("10.0.0.2", false);
        both_ways(&stack);
        stack.shutdown();
        for (dir, st) in [("rx", &c.rx), ("tx", &c.tx)] {
            eprintln!("tun_fault {dir}: {:?}", st.snapshot());
            let p = st.packets.load(Relaxed);
            assert!(p > 2_000, "{dir}: only {p} packets");
            for (what, n) in [
                ("dropped", &st.dropped),
                ("duplicated", &st.duplicated),
                ("reordered", &st.reordered),
                ("corrupted", &st.corrupted),
            ] {
                assert!(n.load(Relaxed) > 0, "{dir}: nothing {what} in {p} packets");
            }
            assert_eq!(st.queue_full.load(Relaxed), 0, "{dir}: queue overflow");
        }
    });
}

#[test]
fn delay_is_applied_each_way() {
    in_netns("delay_is_applied_each_way", || {
        let delay = Duration::from_millis(30);
        let (stack, c) = faulty_stack(FaultSpec { seed: 1, delay, ..FaultSpec::default() });
        warm_up("10.0.0.2", false);
        // A round trip crosses both lines: at least twice the one-way delay.
        let (ok, out) = run("ping", &["-c", "3", "-i", "0.2", "-W", "2", "10.0.0.2"]);
        assert!(ok, "{out}");
        let rtts: Vec<f64> =
            out.split("time=").skip(1).filter_map(|s| s.split_whitespace().next()?.parse().ok()).collect();
        assert_eq!(rtts.len(), 3, "{out}");
        assert!(rtts.iter().all(|r| *r >= 60.0 && *r < 1000.0), "rtts {rtts:?}");
        stack.shutdown();
        assert!(c.rx.delayed.load(Relaxed) >= 3 && c.tx.delayed.load(Relaxed) >= 3);
    });
}
