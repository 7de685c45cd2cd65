//! Send-chunk recycling (`Recyclers::tx_chunks`) under attack, over the in-memory pair (no
//! root needed): many streams written at once by many threads, with write sizes around the
//! 16 KiB and 256 KiB edges, partial and non-blocking writes, `try_clone` writers, loss,
//! duplication and reordering; every stream's bytes checked by SHA-256.

mod common;
use common::*;
use netstack::device::pair::FaultConfig;
use netstack::{Stack, TcpListener, TcpStream};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Write sizes around the recycling edges (MIN_OWNED_CHUNK, MAX_WRITE_CHUNK).
const SIZES: [usize; 9] = [1, 1000, 16_383, 16_384, 16_385, 100_000, 262_143, 262_144, 300_000];

/// Write all of `data` in writes of the sizes above (chosen by `seed`); a non-blocking
/// stream retries WouldBlock (bounded in time), and a short write continues where it ended.
fn write_sized(s: &TcpStream, data: &[u8], seed: usize, nonblocking: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut at, mut i) = (0, seed);
    while at < data.len() {
        let len = SIZES[i % SIZES.len()].min(data.len() - at);
        i = i.wrapping_mul(31).wrapping_add(7);
        let mut part = &data[at..at + len];
        while !part.is_empty() {
            match (&*s).write(part) {
                Ok(n) => {
                    assert!(n > 0 && n <= part.len());
                    part = &part[n..];
                    at += n;
                }
                Err(e) if nonblocking && e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "non-blocking writer stuck at {at}");
                    thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("write at {at}: {e}"),
            }
        }
    }
}

fn faults(seed: u64) -> FaultConfig {
    FaultConfig { seed, loss: 0.03, duplicate: 0.01, delay: Duration::from_millis(1), jitter: Duration::from_millis(2) }
}

/// `streams` connections from B to A, each written by its own thread (odd ones
/// non-blocking) while A writes back on the same connection; returns mismatches.
fn many_streams(a: &Stack, b: &Stack, port: u16, streams: usize, size: usize) -> Vec<String> {
    let l = TcpListener::bind(a, ("0.0.0.0", port)).unwrap();
    let server = thread::spawn(move || {
        let mut hs = Vec::new();
        for k in 0..streams {
            let (s, _) = l.accept().unwrap();
            hs.push(thread::spawn(move || {
                let mut first = [0u8; 1];
                (&s).read_exact(&mut first).unwrap();
                let id = first[0] as usize;
                let w = s.try_clone().unwrap();
                let back = thread::spawn(move || {
                    write_sized(&w, &pattern(size, 100 + id as u8), id + k, false);
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut got = Vec::new();
                (&s).read_to_end(&mut got).unwrap();
                back.join().unwrap();
                (id, sha256_hex(&got), got.len())
            }));
        }
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    let clients: Vec<_> = (0..streams)
        .map(|id| {
            let s = TcpStream::connect(b, ("10.0.0.2", port)).unwrap();
            thread::spawn(move || {
                let nonblocking = id % 2 == 1;
                (&s).write_all(&[id as u8]).unwrap();
                s.set_nonblocking(nonblocking).unwrap();
                let data = pattern(size, id as u8);
                write_sized(&s, &data, id, nonblocking);
                s.shutdown(Shutdown::Write).unwrap();
                let e = (&s).write(&[0u8; 20_000]).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::BrokenPipe, "a write after shutdown");
                s.set_nonblocking(false).unwrap();
                let mut got = Vec::new();
                (&s).read_to_end(&mut got).unwrap();
                (id, sha256_hex(&got), got.len())
            })
        })
        .collect();
    let mut bad = Vec::new();
    for c in clients {
        let (id, h, n) = c.join().unwrap();
        if h != sha256_hex(&pattern(size, 100 + id as u8)) {
            bad.push(format!("A->B stream {id}: {n} bytes, digest differs"));
        }
    }
    for (id, h, n) in server.join().unwrap() {
        if h != sha256_hex(&pattern(size, id as u8)) {
            bad.push(format!("B->A stream {id}: {n} bytes, digest differs"));
        }
    }
    bad
}

/// Eight streams both ways at once on a clean link, then on a lossy one. The clients write
/// everything before they read, so each side's receive window closes while the other side
/// retransmits into it: before the window-update fix (`tcb::input::process_ack`) a sender
/// took a retransmission's ACK without its window and wrote past the peer's right edge, and
/// a non-blocking writer saw WouldBlock for a minute in about one run of four.
#[test]
fn many_streams_many_writers_exact() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let bad = many_streams(&a, &b, 7000, 8, 6 << 20);
    assert!(bad.is_empty(), "{bad:?}");
    let (a, b) = stack_pair(faults(11), faults(12));
    let bad = many_streams(&a, &b, 7001, 8, 3 << 20);
    assert!(bad.is_empty(), "lossy: {bad:?}");
}

/// Two `try_clone` writers on one stream take turns (a lock per record, so the records
/// stay whole); the reader sees every record intact and in the order the lock gave.
#[test]
fn try_clone_writers_take_turns() {
    let (a, b) = stack_pair(faults(21), faults(22));
    let l = TcpListener::bind(&a, "0.0.0.0:7002").unwrap();
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        got
    });
    let s = TcpStream::connect(&b, "10.0.0.2:7002").unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let s = s.try_clone().unwrap();
            let order = order.clone();
            thread::spawn(move || {
                for r in 0..40usize {
                    let len = SIZES[(r + w as usize) % SIZES.len()];
                    let rec = pattern(len, w.wrapping_mul(50).wrapping_add(r as u8));
                    let mut o = order.lock().unwrap();
                    (&s).write_all(&rec).unwrap();
                    o.push(rec);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    s.shutdown(Shutdown::Write).unwrap();
    let got = server.join().unwrap();
    let want: Vec<u8> = order.lock().unwrap().concat();
    assert_eq!(got.len(), want.len());
    assert!(sha256_hex(&got) == sha256_hex(&want), "records corrupted or reordered");
}
