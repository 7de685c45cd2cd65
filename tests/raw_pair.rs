//! Raw ICMP sockets between two stacks over the in-memory pair (no root needed): a socket
//! that does not read holds at most `raw_queue_bytes` of replies; the rest are counted.

mod common;
use common::*;
use netstack::device::pair::{pair, FaultConfig, PairDevice};
use netstack::proto::ip::udp_charge;
use netstack::{IcmpSocket, IpVersion, Stack, StackConfig};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn stat(s: &Stack, name: &str) -> u64 {
    s.stats.ip.snapshot().into_iter().find(|(k, _)| *k == name).unwrap().1
}

/// An echo request with sequence `seq` and 8 bytes of payload (16 bytes in all).
fn echo(seq: u16) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0, 0, 0];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"netstack");
    m
}

#[test]
fn a_raw_socket_that_does_not_read_holds_its_bound() {
    let (da, db): (PairDevice, PairDevice) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let mut cfg = StackConfig::default();
    cfg.ip.raw_queue_bytes = 4 * udp_charge(16) as usize;
    let a = Stack::new(Box::new(da), cfg, netstack::log::discard()).unwrap();
    let _b = Stack::new(Box::new(db), peer_config(), netstack::log::discard()).unwrap();
    let sock = IcmpSocket::bind(&a, IpVersion::V4).unwrap();
    let to: IpAddr = "10.0.0.1".parse().unwrap();
    for seq in 1..=10 {
        sock.send_to(&echo(seq), to).unwrap();
    }
    // B answers all ten (its echo burst is 50); A queues four and counts six.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stat(&a, "rx_raw") + stat(&a, "rx_raw_queue_full") < 10 {
        assert!(Instant::now() < deadline, "replies missing: {:?}", a.stats.ip.snapshot());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!((stat(&a, "rx_raw"), stat(&a, "rx_raw_queue_full")), (4, 6));
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 64];
    for want in 1..=4u16 {
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        assert_eq!((n, from, buf[0], u16::from_be_bytes([buf[6], buf[7]])), (16, to, 0, want));
    }
    assert_eq!(sock.recv_from(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    // Reading gave the room back.
    sock.send_to(&echo(11), to).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!((n, u16::from_be_bytes([buf[6], buf[7]])), (16, 11));
    assert_eq!(stat(&a, "rx_raw"), 5);
}
