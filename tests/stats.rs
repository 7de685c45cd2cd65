//! `StackHandle::stats()` (nstat-named counters) and `sockets()` (the `ss -tin` table) move
//! as the traffic says, over an in-memory pair (no root needed).

mod common;
use common::*;
use netstack::device::pair::FaultConfig;
use netstack::proto::tcp::State;
use netstack::{TcpListener, TcpStream, UdpSocket};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[test]
fn counters_follow_drops_and_losses() {
    let lossy = FaultConfig { seed: 5, loss: 0.05, ..FaultConfig::default() };
    let (a, b) = stack_pair(lossy, FaultConfig::default());
    // A datagram to a port nobody listens on: UdpNoPorts on the receiver.
    let u = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    let before = b.stats().get("UdpNoPorts").unwrap();
    u.send_to(b"x", "10.0.0.1:9999").unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while b.stats().get("UdpNoPorts").unwrap() == before {
        assert!(Instant::now() < deadline, "UdpNoPorts never moved");
        std::thread::sleep(Duration::from_millis(5));
    }
    // 2 MiB over a link that drops 5 % of A's packets: A retransmits.
    let l = TcpListener::bind(&b, "0.0.0.0:5000").unwrap();
    let data = pattern(2 << 20, 3);
    let sent = data.clone();
    let ha = a.handle();
    let t = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&ha, "10.0.0.1:5000").unwrap();
        s.write_all(&sent).unwrap();
    });
    let (mut s, _) = l.accept().unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    t.join().unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
    let (sa, sb) = (a.stats(), b.stats());
    println!("A:\n{sa}");
    assert!(sa.get("TcpRetransSegs").unwrap() > 0, "losses force retransmissions");
    assert_eq!(sa.get("TcpActiveOpens"), Some(1));
    assert_eq!(sb.get("TcpPassiveOpens"), Some(1));
    assert!(sb.get("IpInReceives").unwrap() >= (2 << 20) / 1460);
    assert!(sa.get("TcpOutSegs").unwrap() >= sb.get("TcpInSegs").unwrap());
}

#[test]
fn socket_table_shows_queues_and_counters() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let l = TcpListener::bind(&b, "0.0.0.0:5001").unwrap();
    let mut c = TcpStream::connect(&a, "10.0.0.1:5001").unwrap();
    let (mut s, peer) = l.accept().unwrap();
    c.write_all(&[7u8; 100_000]).unwrap();
    let mut buf = vec![0u8; 60_000];
    s.read_exact(&mut buf).unwrap(); // 40,000 bytes stay unread on B
    let deadline = Instant::now() + Duration::from_secs(2);
    let row = loop {
        let v = b.sockets().unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        if v[0].bytes_received == 100_000 {
            break v[0].clone();
        }
        assert!(Instant::now() < deadline, "{v:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(row.state, State::Established);
    assert_eq!((row.local, row.remote), ("10.0.0.1:5001".parse().unwrap(), peer));
    assert!(row.recv_queue >= 40_000, "unread bytes are queued: {row:?}");
    let deadline = Instant::now() + Duration::from_secs(2);
    let sender = loop {
        let v = a.sockets().unwrap();
        if v[0].bytes_acked == 100_000 {
            break v[0].clone();
        }
        assert!(Instant::now() < deadline, "the last bytes are acknowledged (delayed ACK at most): {v:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(sender.send_queue, 0);
    assert!(sender.srtt.is_some() && sender.cwnd >= sender.mss && sender.rto > Duration::ZERO, "{sender:?}");
    let text = netstack::ctl::format_ss(&a.sockets().unwrap());
    assert!(text.contains("ESTAB") && text.contains("10.0.0.1:5001") && text.contains("bytes_acked:100000"), "{text}");
}
