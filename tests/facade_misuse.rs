//! A hostile user of the blocking socket facade: several threads on one stream, shutdown
//! while another thread is blocked, a stack that stops under blocked calls. Two stacks over
//! the in-memory pair (no root needed). Every call that can block runs under [`within`], so
//! a hang fails the test instead of wedging the run.

mod common;
use common::*;
use netstack::device::pair::FaultConfig;
use netstack::{Stack, StackConfig, TcpListener, TcpStream, UdpSocket};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Run `f` on its own thread; its result, or a failed test if it takes longer than `secs`
/// (the thread is left blocked; the test binary exits anyway).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(t) => t,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still blocked after {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// A connected pair: `c` on B dialled `s` on A.
fn connected(a: &Stack, b: &Stack, port: u16) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(a, ("10.0.0.2", port)).unwrap();
    let c = TcpStream::connect(b, ("10.0.0.2", port)).unwrap();
    let (s, _) = l.accept_timeout(Duration::from_secs(5)).unwrap();
    (s, c)
}

/// Linux: `shutdown(SHUT_RD)` wakes a thread blocked in `recv`, which returns 0.
#[test]
fn shutdown_read_wakes_a_blocked_reader() {
    for how in [Shutdown::Read, Shutdown::Both] {
        let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
        let (s, _c) = connected(&a, &b, 7100);
        let r = s.try_clone().unwrap();
        let (started_tx, started) = mpsc::channel();
        let reader = thread::spawn(move || {
            started_tx.send(()).unwrap();
            (&r).read(&mut [0u8; 64]).map_err(|e| e.kind())
        });
        started.recv().unwrap();
        thread::sleep(Duration::from_millis(100)); // the reader is blocked by now
        s.shutdown(how).unwrap();
        let got = within(5, "read blocked across shutdown", move || reader.join().unwrap());
        assert_eq!(got, Ok(0), "{how:?}");
    }
}

/// Several readers on the same pair: the first blocked one polls the channel, the others
/// wait on the condition variable; shutdown must wake both kinds.
#[test]
fn shutdown_read_wakes_every_blocked_reader() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let (s, _c) = connected(&a, &b, 7101);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let r = s.try_clone().unwrap();
            thread::spawn(move || (&r).read(&mut [0u8; 64]).map_err(|e| e.kind()))
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    s.shutdown(Shutdown::Read).unwrap();
    let got = within(5, "readers blocked across shutdown", move || {
        readers.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(got, vec![Ok(0); 3]);
}

/// A stack whose peer advertises a small window, so a writer blocks soon.
fn small_window_pair() -> (Stack, Stack) {
    let mut cfg = StackConfig::default();
    cfg.tcp.recv_buf = 16 * 1024;
    cfg.tcp.send_buf = 16 * 1024;
    let (da, db) = netstack::device::pair::pair(1500, FaultConfig::default(), FaultConfig::default());
    let a = Stack::new(Box::new(da), cfg, netstack::log::discard()).unwrap();
    let mut pcfg = peer_config();
    pcfg.tcp.send_buf = 16 * 1024;
    pcfg.tcp.recv_buf = 16 * 1024;
    let b = Stack::new(Box::new(db), pcfg, netstack::log::discard()).unwrap();
    (a, b)
}

/// Fill the send buffer and the peer's window (nobody reads), non-blocking: write until
/// nothing has fit for 300 ms (credit comes back as the peer ACKs), within 10 s.
fn fill(c: &TcpStream) -> usize {
    c.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut total = 0;
    let end = Instant::now() + Duration::from_secs(10);
    let mut full_since = None;
    while Instant::now() < end {
        match (&*c).write(&chunk) {
            Ok(n) => {
                total += n;
                full_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *full_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("fill: {e}"),
        }
    }
    c.set_nonblocking(false).unwrap();
    total
}

/// Linux: `shutdown(SHUT_WR)` wakes a thread blocked in `send` on a full buffer, which
/// fails with EPIPE (`BrokenPipe`).
#[test]
fn shutdown_write_wakes_a_blocked_writer() {
    let (a, b) = small_window_pair();
    let (_s, c) = connected(&a, &b, 7102);
    assert!(fill(&c) > 0);
    let w = c.try_clone().unwrap();
    let writer = thread::spawn(move || (&w).write(&[1u8; 1000]).map_err(|e| e.kind()));
    thread::sleep(Duration::from_millis(100));
    c.shutdown(Shutdown::Write).unwrap();
    let got = within(5, "write blocked across shutdown", move || writer.join().unwrap());
    assert_eq!(got, Err(ErrorKind::BrokenPipe));
}

/// Every blocked call returns once the stack stops: read, write, accept, recv.
#[test]
fn stopping_the_stack_releases_every_blocked_call() {
    let (a, b) = small_window_pair();
    let (_s, c) = connected(&a, &b, 7103);
    let l = TcpListener::bind(&b, "10.0.0.1:7104").unwrap();
    let u = UdpSocket::bind(&b, "10.0.0.1:7105").unwrap();
    assert!(fill(&c) > 0);
    let w = c.try_clone().unwrap();
    let r = c.try_clone().unwrap();
    let l2 = l.try_clone().unwrap();
    let u2 = u.try_clone().unwrap();
    let calls = vec![
        thread::spawn(move || (&w).write(&[1u8; 1000]).map(|_| ()).map_err(|e| e.kind())),
        thread::spawn(move || (&r).read(&mut [0u8; 10]).map(|_| ()).map_err(|e| e.kind())),
        thread::spawn(move || l2.accept().map(|_| ()).map_err(|e| e.kind())),
        thread::spawn(move || u2.recv(&mut [0u8; 10]).map(|_| ()).map_err(|e| e.kind())),
    ];
    thread::sleep(Duration::from_millis(100));
    within(10, "stack shutdown", move || b.shutdown());
    let got = within(5, "calls blocked across the stack's stop", move || {
        calls.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
    });
    for (i, r) in got.iter().enumerate() {
        assert!(r.is_err(), "call {i} returned {r:?} after the stack stopped");
    }
    // And afterwards: errors at once, no panic, no hang.
    let after = within(5, "calls after the stack stopped", move || {
        let mut buf = [0u8; 4];
        [
            (&c).read(&mut buf).map(|_| ()).map_err(|e| e.kind()),
            (&c).write(b"x").map(|_| ()).map_err(|e| e.kind()),
            l.accept().map(|_| ()).map_err(|e| e.kind()),
            u.recv(&mut buf).map(|_| ()).map_err(|e| e.kind()),
            u.send_to(b"x", "10.0.0.2:9").map(|_| ()).map_err(|e| e.kind()),
        ]
    });
    for (i, r) in after.iter().enumerate() {
        assert!(r.is_err(), "call {i} after the stop returned {r:?}");
    }
    drop(a);
}

/// Two threads read one stream through clones while the peer writes: every byte arrives
/// once (none lost, none seen by both readers).
#[test]
fn clones_reading_concurrently_see_each_byte_once() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let (s, c) = connected(&a, &b, 7106);
    const LEN: usize = 4 << 20;
    let data = pattern(LEN, 9);
    let sent = data.clone();
    let writers: Vec<_> = (0..2)
        .map(|i| {
            let w = c.try_clone().unwrap();
            let half = sent[i * LEN / 2..(i + 1) * LEN / 2].to_vec();
            thread::spawn(move || (&w).write_all(&half).unwrap())
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let r = s.try_clone().unwrap();
            thread::spawn(move || {
                let mut hist = [0u64; 256];
                let mut total = 0;
                let mut buf = [0u8; 3000];
                loop {
                    match (&r).read(&mut buf) {
                        Ok(0) => return (total, hist),
                        Ok(n) => {
                            total += n;
                            buf[..n].iter().for_each(|&b| hist[b as usize] += 1);
                        }
                        Err(e) => panic!("read: {e}"),
                    }
                }
            })
        })
        .collect();
    let results = within(30, "concurrent transfer", move || {
        writers.into_iter().for_each(|t| t.join().unwrap());
        c.shutdown(Shutdown::Write).unwrap();
        readers.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
    });
    let total: usize = results.iter().map(|r| r.0).sum();
    assert_eq!(total, LEN, "bytes lost or duplicated");
    let mut want = [0u64; 256];
    data.iter().for_each(|&b| want[b as usize] += 1);
    let mut got = [0u64; 256];
    for (_, h) in &results {
        (0..256).for_each(|i| got[i] += h[i]);
    }
    assert_eq!(got, want, "byte counts differ");
}

/// After EOF every read returns 0 at once; dropping a clone does not close the stream.
#[test]
fn eof_repeats_and_a_dropped_clone_leaves_the_stream_open() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let (s, c) = connected(&a, &b, 7107);
    let extra = c.try_clone().unwrap();
    drop(extra);
    (&c).write_all(b"after the clone").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let got = within(5, "read to EOF", move || {
        let mut v = Vec::new();
        (&s).read_to_end(&mut v).unwrap();
        let again: Vec<usize> = (0..3).map(|_| (&s).read(&mut [0u8; 8]).unwrap()).collect();
        (v, again, s)
    });
    assert_eq!(got.0, b"after the clone");
    assert_eq!(got.1, vec![0, 0, 0]);
    // A second shutdown of the same half is harmless, as on Linux.
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!((&c).write(b"late").unwrap_err().kind(), ErrorKind::BrokenPipe);
}

/// A write racing `shutdown(Write)` on another thread: every byte a write reported as
/// written reaches the peer before the FIN (on Linux the socket lock orders the two; a
/// write that loses the race fails with EPIPE and writes nothing).
#[test]
fn a_write_racing_shutdown_loses_no_acknowledged_byte() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    for i in 0..40u16 {
        let (s, c) = connected(&a, &b, 7200 + i);
        let w = c.try_clone().unwrap();
        let writer = thread::spawn(move || {
            let mut sent = 0usize;
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                match (&w).write(&[5u8; 100]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::BrokenPipe => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
            sent
        });
        let reader = thread::spawn(move || {
            let mut v = Vec::new();
            (&s).read_to_end(&mut v).map(|_| v.len()).map_err(|e| e.kind())
        });
        thread::sleep(Duration::from_millis(2 + u64::from(i % 5)));
        c.shutdown(Shutdown::Write).unwrap();
        let (sent, got) = within(10, "write racing shutdown", move || (writer.join().unwrap(), reader.join().unwrap()));
        assert_eq!(got, Ok(sent), "round {i}: bytes acknowledged to the writer vs received");
    }
}

/// Two threads blocked in `accept` on clones of one listener: two connections, one each
/// (neither lost nor handed out twice); then a third accept on the listener times out.
#[test]
fn two_threads_accept_from_one_listener() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let l = TcpListener::bind(&a, "10.0.0.2:7300").unwrap();
    let acceptors: Vec<_> = (0..2)
        .map(|_| {
            let l = l.try_clone().unwrap();
            thread::spawn(move || l.accept().map(|(_, peer)| peer).map_err(|e| e.kind()))
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    let c1 = TcpStream::connect(&b, "10.0.0.2:7300").unwrap();
    let c2 = TcpStream::connect(&b, "10.0.0.2:7300").unwrap();
    let mut peers =
        within(5, "two accepts", move || acceptors.into_iter().map(|t| t.join().unwrap().unwrap()).collect::<Vec<_>>());
    peers.sort();
    let mut want = vec![c1.local_addr().unwrap(), c2.local_addr().unwrap()];
    want.sort();
    assert_eq!(peers, want);
    assert_eq!(l.accept_timeout(Duration::from_millis(100)).unwrap_err().kind(), ErrorKind::WouldBlock);
}

/// `set_nonblocking(true)` from another thread does not turn a read already blocked into
/// `WouldBlock` (Linux decides the wait when the call starts); the read returns the data
/// when it comes, and the next read is non-blocking.
#[test]
fn set_nonblocking_while_a_read_is_blocked() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let (s, c) = connected(&a, &b, 7301);
    let r = s.try_clone().unwrap();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 16];
        (&r).read(&mut buf).map(|n| buf[..n].to_vec()).map_err(|e| e.kind())
    });
    thread::sleep(Duration::from_millis(100));
    s.set_nonblocking(true).unwrap();
    thread::sleep(Duration::from_millis(50));
    (&c).write_all(b"late").unwrap();
    let got = within(5, "blocked read", move || reader.join().unwrap());
    assert_eq!(got, Ok(b"late".to_vec()));
    assert_eq!((&s).read(&mut [0u8; 4]).unwrap_err().kind(), ErrorKind::WouldBlock);
}
