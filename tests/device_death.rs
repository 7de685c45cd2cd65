//! Issue 7 item 4: a device actor that dies fails every socket with an error that says so.
//! Blocked readers, writers, accepts, connects and UDP receives wake up with it; new calls
//! fail too. On the in-memory pair (its receive half severed) and on a real TUN device
//! deleted under the stack (in a private network namespace).

mod common;
use common::*;
use netstack::device::pair::{pair, FaultConfig};
use netstack::{Stack, StackConfig, TcpListener, TcpStream, UdpSocket};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn is_device_error(e: &io::Error, half: &str) -> bool {
    e.kind() == ErrorKind::NetworkDown && e.to_string().starts_with(&format!("netstack: device {half} stopped: "))
}

/// Runs `f` on a thread; its result comes back on the returned channel.
fn blocked<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

#[test]
fn severed_pair_fails_every_socket() {
    let (da, db) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let sever = da.sever_handle();
    let a = Stack::new(Box::new(da), StackConfig::default(), netstack::log::discard()).unwrap();
    let b = Stack::new(Box::new(db), peer_config(), netstack::log::discard()).unwrap();

    // An established connection A -> B; B never reads, so A's writer blocks on credit.
    let lb = TcpListener::bind(&b, "10.0.0.1:7000").unwrap();
    let sa = TcpStream::connect(&a, "10.0.0.1:7000").unwrap();
    let (sb, _) = lb.accept().unwrap();
    (&sa).write_all(b"before").unwrap();
    let mut buf = [0u8; 6];
    (&sb).read_exact(&mut buf).unwrap();
    let reader = sa.try_clone().unwrap();
    let read = blocked(move || (&reader).read(&mut [0u8; 100]));
    let writer = sa.try_clone().unwrap();
    let write = blocked(move || (&writer).write_all(&vec![0u8; 8 << 20]));
    // A listener and a UDP socket on A with nothing coming, a connect to a silent address.
    let la = TcpListener::bind(&a, "10.0.0.2:8000").unwrap();
    let accept = blocked(move || la.accept().map(|_| ()));
    let ua = UdpSocket::bind(&a, "10.0.0.2:9000").unwrap();
    let u2 = ua.try_clone().unwrap();
    let urecv = blocked(move || u2.recv(&mut [0u8; 100]));
    let ah = a.handle();
    let connect = blocked(move || TcpStream::connect(&ah, "10.0.0.9:80").map(|_| ()));
    thread::sleep(Duration::from_millis(200));
    assert!(a.device_error().is_none());
    assert!(read.try_recv().is_err() && write.try_recv().is_err() && accept.try_recv().is_err());

    let t = Instant::now();
    sever.sever();
    let wait = Duration::from_secs(5);
    let e = read.recv_timeout(wait).expect("blocked read woke").unwrap_err();
    assert!(is_device_error(&e, "rx"), "{e:?}");
    assert!(e.to_string().contains("pair link severed"), "the cause is in the message: {e}");
    let woke = t.elapsed();
    let e = write.recv_timeout(wait).expect("blocked write woke").unwrap_err();
    assert!(is_device_error(&e, "rx"), "{e:?}");
    let e = accept.recv_timeout(wait).expect("blocked accept woke").unwrap_err();
    assert!(is_device_error(&e, "rx"), "{e:?}");
    let e = urecv.recv_timeout(wait).expect("blocked UDP recv woke").unwrap_err();
    assert!(is_device_error(&e, "rx"), "{e:?}");
    let e = connect.recv_timeout(wait).expect("blocked connect woke").unwrap_err();
    assert!(is_device_error(&e, "rx"), "{e:?}");
    println!("blocked read woke {woke:?} after the device failed: {e}");

    // New calls fail the same way.
    for e in [
        (&sa).read(&mut buf).unwrap_err(),
        (&sa).write(b"x").unwrap_err(),
        TcpStream::connect(&a, "10.0.0.1:7000").unwrap_err(),
        TcpListener::bind(&a, "10.0.0.2:8001").unwrap_err(),
        UdpSocket::bind(&a, "10.0.0.2:9001").unwrap_err(),
        ua.send_to(b"x", "10.0.0.1:9").unwrap_err(),
    ] {
        assert!(is_device_error(&e, "rx"), "{e:?}");
    }
    // A's transmit half still works: the engine reset the open connection, so B is told.
    sb.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    let e = (&sb).read_to_end(&mut sink).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "B sees the reset: {e:?}");
    drop((sa, sb, lb));
    a.shutdown();
    b.shutdown();
}

/// Stopping a stack is not a device failure.
#[test]
fn orderly_shutdown_is_not_a_device_failure() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let h = a.handle();
    a.shutdown();
    assert!(h.device_error().is_none());
    let e = TcpStream::connect(&h, "10.0.0.1:7000").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotConnected, "{e:?}");
    drop(b);
}

/// The TUN device deleted (`ip link del tun0`) while a socket is blocked reading from a
/// kernel peer: the read wakes with the device error.
#[test]
fn tun_deleted_under_a_blocked_read() {
    in_netns("tun_deleted_under_a_blocked_read", || {
        let stack = tun_stack();
        warm_up("10.0.0.2", false);
        let kl = std::net::TcpListener::bind("10.0.0.1:7100").unwrap();
        let s = TcpStream::connect(&stack, "10.0.0.1:7100").unwrap();
        let (mut k, _) = kl.accept().unwrap();
        k.write_all(b"hi").unwrap();
        let mut two = [0u8; 2];
        (&s).read_exact(&mut two).unwrap();
        let r = s.try_clone().unwrap();
        let read = blocked(move || (&r).read(&mut [0u8; 100]));
        thread::sleep(Duration::from_millis(100));
        assert!(read.try_recv().is_err(), "still blocked");
        let t = Instant::now();
        let (ok, out) = run("ip", &["link", "del", "tun0"]);
        assert!(ok, "ip link del tun0: {out}");
        let e = read.recv_timeout(Duration::from_secs(5)).expect("blocked read woke").unwrap_err();
        println!("read woke {:?} after `ip link del tun0`: {e}", t.elapsed());
        assert!(is_device_error(&e, "rx"), "{e:?}");
        assert!(is_device_error(&(&s).write(b"x").unwrap_err(), "rx"));
        let addr: SocketAddr = "10.0.0.1:7100".parse().unwrap();
        let e = TcpStream::connect_timeout(&stack, &addr, Duration::from_secs(1)).unwrap_err();
        assert!(is_device_error(&e, "rx"), "{e:?}");
        drop(s);
        stack.shutdown();
    });
}
