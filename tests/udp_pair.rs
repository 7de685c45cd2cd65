//! UDP between two stacks over the in-memory pair (no root needed).

mod common;
use common::*;
use netstack::device::pair::FaultConfig;
use netstack::UdpSocket;
use std::io::ErrorKind;
use std::time::Duration;

fn exchange(a_addr: &str, b_addr: &str, b_bind: &str) {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let sa = UdpSocket::bind(&a, a_addr).unwrap();
    let sb = UdpSocket::bind(&b, b_bind).unwrap();
    sa.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sb.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 70_000];
    for (i, size) in [0usize, 1, 100, 1472, 1473, 3000, 8000, 20_000, 65_000].into_iter().enumerate() {
        let data = pattern(size, i as u8);
        sa.send_to(&data, b_addr).unwrap();
        let (n, from) = sb.recv_from(&mut buf).unwrap();
        assert_eq!(n, size, "size {size}");
        assert_eq!(&buf[..n], &data[..], "content, size {size}");
        assert_eq!(from, sa.local_addr().unwrap());
        // and back
        sb.send_to(&buf[..n], from).unwrap();
        let (n2, from2) = sa.recv_from(&mut buf).unwrap();
        assert_eq!(n2, size);
        assert_eq!(&buf[..n2], &data[..]);
        assert_eq!(from2.port(), sb.local_addr().unwrap().port());
    }
    let st = a.stats.ip.snapshot();
    let frags = st.iter().find(|(k, _)| *k == "tx_fragments").unwrap().1;
    assert!(frags > 0, "large datagrams were fragmented");
}

#[test]
fn udp_v4_both_ways_with_fragmentation() {
    exchange("10.0.0.2:0", "10.0.0.1:9000", "0.0.0.0:9000");
}

#[test]
fn udp_v6_both_ways_with_fragmentation() {
    exchange("[fd00::2]:0", "[fd00::1]:9000", "[::]:9000");
}

#[test]
fn udp_api_shape() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let sa = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    assert!(sa.local_addr().unwrap().port() >= 49152);
    assert_eq!(UdpSocket::bind(&a, sa.local_addr().unwrap()).unwrap_err().kind(), ErrorKind::AddrInUse);
    assert_eq!(sa.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
    // As std on Linux: EDESTADDRREQ (kind Uncategorized), not NotConnected.
    assert_eq!(sa.send(b"x").unwrap_err().raw_os_error(), Some(libc::EDESTADDRREQ));
    assert_eq!(sa.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(), ErrorKind::InvalidInput);
    // Over the IPv4 maximum (65,507): EMSGSIZE, as std on Linux (kind Uncategorized).
    assert_eq!(sa.send_to(&vec![0u8; 65_508], "10.0.0.1:9").unwrap_err().raw_os_error(), Some(libc::EMSGSIZE));
    let s6 = UdpSocket::bind(&a, "[fd00::2]:0").unwrap();
    assert_eq!(s6.send_to(&vec![0u8; 65_528], "[fd00::1]:9").unwrap_err().raw_os_error(), Some(libc::EMSGSIZE));
    // read timeout -> WouldBlock, like std on Unix
    sa.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(sa.recv_from(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);

    // connect + send/recv, peek, try_clone
    let sb = UdpSocket::bind(&b, "10.0.0.1:7000").unwrap();
    sa.connect("10.0.0.1:7000").unwrap();
    assert_eq!(sa.peer_addr().unwrap(), "10.0.0.1:7000".parse().unwrap());
    sa.send(b"hello").unwrap();
    sb.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, from) = sb.peek_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    let (n, from2) = sb.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from2), (&b"hello"[..], from));
    let sb2 = sb.try_clone().unwrap();
    sb2.send_to(b"back", from).unwrap();
    sa.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(sa.recv(&mut buf).unwrap(), 4);
    // truncation, as std: the rest of the datagram is discarded
    sb.send_to(b"0123456789", from).unwrap();
    let mut small = [0u8; 4];
    assert_eq!(sa.recv(&mut small).unwrap(), 4);
    assert_eq!(&small, b"0123");

    // a connected socket learns of an unbound port through ICMP: ConnectionRefused
    let sc = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    sc.connect("10.0.0.1:7999").unwrap();
    sc.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sc.send(b"anyone?").unwrap();
    assert_eq!(sc.recv(&mut buf).unwrap_err().kind(), ErrorKind::ConnectionRefused);
    let st = b.stats.ip.snapshot();
    assert!(st.iter().any(|(k, v)| *k == "tx_icmp_errors" && *v >= 1));
}

#[test]
fn udp_survives_lossy_link_and_shutdown_joins() {
    let fault = FaultConfig {
        seed: 7,
        loss: 0.0,
        duplicate: 0.1,
        delay: Duration::from_millis(1),
        jitter: Duration::from_millis(3),
    };
    let (a, b) = stack_pair(fault, fault);
    let sa = UdpSocket::bind(&a, "10.0.0.2:5000").unwrap();
    let sb = UdpSocket::bind(&b, "10.0.0.1:5000").unwrap();
    sb.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..50u8 {
        sa.send_to(&pattern(3000, i), "10.0.0.1:5000").unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    let mut buf = [0u8; 4000];
    while seen.len() < 50 {
        let (n, _) = sb.recv_from(&mut buf).unwrap();
        assert_eq!(n, 3000);
        let i = (0..50u8).find(|i| buf[..n] == pattern(3000, *i)[..]).expect("payload is one we sent");
        seen.insert(i);
    }
    drop(sa);
    a.shutdown();
    // After shutdown, B still works, A's sockets would report an error.
    drop(sb);
    b.shutdown();
}

#[test]
fn udp_bounds_errors_and_addresses() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    // As std: an address this host does not have.
    assert_eq!(UdpSocket::bind(&a, "10.0.0.99:5000").unwrap_err().kind(), ErrorKind::AddrNotAvailable);
    assert_eq!(UdpSocket::bind(&a, "[fd00::99]:5000").unwrap_err().kind(), ErrorKind::AddrNotAvailable);

    // take_error reports (and clears) an ICMP-reported error; recv then does not repeat it.
    let sc = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    sc.connect("10.0.0.1:7999").unwrap();
    sc.send(b"anyone?").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let err = loop {
        if let Some(e) = sc.take_error().unwrap() {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "no ICMP error arrived");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert!(sc.take_error().unwrap().is_none());
    sc.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(sc.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);

    // A flood of empty datagrams at a socket nobody reads: the queue is bounded in the
    // memory it holds (each datagram is charged its packet buffer and a fixed overhead, as
    // Linux charges truesize), the rest counted as dropped.
    let sink = UdpSocket::bind(&a, "10.0.0.2:6000").unwrap();
    let src = UdpSocket::bind(&b, "10.0.0.1:6001").unwrap();
    for _ in 0..20_000 {
        src.send_to(&[], "10.0.0.2:6000").unwrap();
    }
    let full = || a.stats.ip.snapshot().into_iter().find(|(k, _)| *k == "rx_udp_queue_full").unwrap().1;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while full() == 0 {
        assert!(std::time::Instant::now() < deadline, "queue never filled");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the flood end before reading, so that nothing refills the queue meanwhile.
    let mut last = full();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = full();
        if now == last {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the flood never ended");
        last = now;
    }
    // What was queued is still delivered, and empty; the buffers it held stayed within
    // the bound (each empty datagram sits in a pooled packet buffer: charged only 256
    // bytes, 4,096 of them held 8 MiB against a 1 MiB bound).
    sink.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(sink.recv(&mut buf).unwrap(), 0);
    sink.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut queued = 1;
    while sink.recv(&mut buf).is_ok() {
        queued += 1;
    }
    let held = queued * netstack::buf::DEFAULT_BUF_SIZE;
    let bound = netstack::proto::ip::IpConfig::default().udp_queue_bytes;
    assert!(held <= bound, "{queued} datagrams held {held} bytes of buffers, bound {bound}");
}

/// A pending ICMP-reported error comes before the datagrams already queued, as in Linux
/// (checked there with two kernel sockets: `recv` gives ECONNREFUSED, then the datagram).
#[test]
fn an_icmp_error_is_reported_before_queued_datagrams() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let sc = UdpSocket::bind(&a, "10.0.0.2:0").unwrap();
    let sb = UdpSocket::bind(&b, "10.0.0.1:7998").unwrap();
    sc.connect("10.0.0.1:7998").unwrap();
    sb.send_to(b"queued", sc.local_addr().unwrap()).unwrap();
    drop(sb); // B's port closes: the next datagram to it draws a port unreachable
    std::thread::sleep(Duration::from_millis(100));
    sc.send(b"anyone?").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sc.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(sc.recv(&mut buf).unwrap_err().kind(), ErrorKind::ConnectionRefused);
    assert_eq!(sc.recv(&mut buf).unwrap(), 6, "then the datagram queued before it");
    assert_eq!(&buf[..6], b"queued");
}

/// Review 20: one thread blocked in `recv` held the receive turn while it waited, so a
/// second thread's non-blocking or timed `recv` on a clone waited behind it, past its own
/// timeout, for as long as no datagram came. Linux answers the second at once (EAGAIN) or
/// at its timeout. Then a datagram still reaches exactly one of them.
#[test]
fn a_blocked_recv_does_not_hold_up_a_timed_or_non_blocking_one() {
    use std::sync::mpsc;
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let u = UdpSocket::bind(&a, "10.0.0.2:7997").unwrap();
    let blocked = u.try_clone().unwrap();
    let first = std::thread::spawn(move || blocked.recv(&mut [0u8; 16]).map_err(|e| e.kind()));
    std::thread::sleep(Duration::from_millis(100)); // `first` waits by now
    let (tx, rx) = mpsc::channel();
    let other = u.try_clone().unwrap();
    std::thread::spawn(move || {
        other.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let timed = other.recv(&mut [0u8; 16]).map_err(|e| e.kind());
        other.set_nonblocking(true).unwrap();
        let nonblocking = other.recv(&mut [0u8; 16]).map_err(|e| e.kind());
        other.set_nonblocking(false).unwrap();
        let _ = tx.send((timed, nonblocking));
    });
    let got = rx.recv_timeout(Duration::from_secs(5));
    // Release `first` whatever happened, so no thread stays blocked.
    let src = UdpSocket::bind(&b, "10.0.0.1:0").unwrap();
    src.send_to(b"one", "10.0.0.2:7997").unwrap();
    let (timed, nonblocking) = got.expect("a timed recv waited behind a blocked one for 5 s");
    assert_eq!(timed, Err(ErrorKind::WouldBlock));
    assert_eq!(nonblocking, Err(ErrorKind::WouldBlock));
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(first.join().unwrap());
    });
    assert_eq!(done.recv_timeout(Duration::from_secs(5)).expect("first recv never returned"), Ok(3));
}
