//! `Stack::builder().pair()`: two stacks back to back in memory, no root; the peer gets the
//! host addresses (the subnet's first host by default) and the link MTU asked for.

mod common;
use common::*;
use netstack::{Stack, TcpListener, TcpStream, UdpSocket};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[test]
fn pair_moves_data_between_the_stack_and_its_peer() {
    let (a, b) = Stack::builder().addr("10.9.0.2/24").addr6("fd09::2/64").mtu(1400).pair().expect("pair");
    assert_eq!(b.config().ip.v4, ["10.9.0.1".parse::<std::net::Ipv4Addr>().unwrap()]);
    assert_eq!((a.config().ip.mtu(), b.config().ip.mtu(), a.config().tcp.mtu), (1400, 1400, 1400));
    assert_eq!(a.device_name(), None);

    // TCP, IPv4: 256 KiB from the stack to the peer's listener, checked by SHA-256.
    let l = TcpListener::bind(&b, "10.9.0.1:7000").expect("bind");
    let data = pattern(256 << 10, 7);
    let sent = data.clone();
    let t = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&a, "10.9.0.1:7000").expect("connect");
        s.write_all(&sent).expect("write");
        drop(s);
        a
    });
    let (mut c, from) = l.accept().expect("accept");
    assert_eq!(from.ip(), "10.9.0.2".parse::<IpAddr>().unwrap());
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("read");
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
    let a = t.join().expect("sender");

    // UDP, IPv6: the peer has fd09::1 (the subnet's first host).
    let ub = UdpSocket::bind(&b, "[fd09::1]:7001").expect("bind v6");
    let ua = UdpSocket::bind(&a, "[fd09::2]:0").expect("bind v6");
    ua.send_to(b"over v6", "[fd09::1]:7001").expect("send");
    ub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let (n, src) = ub.recv_from(&mut buf).expect("recv");
    assert_eq!(
        (&buf[..n], src),
        (&b"over v6"[..], SocketAddr::new("fd09::2".parse().unwrap(), ua.local_addr().unwrap().port()))
    );
}

#[test]
fn pair_refuses_conflicting_settings_before_making_anything() {
    let e = Stack::builder().addr("10.9.0.1/24").pair().err().expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("also the kernel side's"), "{e}");
    let e = Stack::builder().offload().pair().err().expect("refused");
    assert!(e.to_string().contains("offload is for TUN devices"), "{e}");
}

/// A TCP trace file that cannot be created fails the build, as a pcap file does (it used
/// to be a warning from the engine once the stack ran, and no trace).
#[test]
fn unwritable_trace_file_fails_the_build() {
    let e = netstack::Stack::builder()
        .addr("10.9.7.2/24")
        .trace_tcp("/nonexistent-dir/trace.csv")
        .pair()
        .err()
        .expect("an error");
    assert!(e.to_string().contains("cannot create TCP trace file"), "{e}");
}
