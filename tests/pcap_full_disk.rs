//! A capture whose file fills up (`/dev/full`: every write fails with ENOSPC)
//! stops recording and the stack runs on (no root: a pair).

use netstack::{Stack, UdpSocket};
use std::time::Duration;

#[test]
fn a_full_disk_stops_the_capture_not_the_stack() {
    let (a, b) = Stack::builder().addr("10.9.6.2/24").pcap("/dev/full").pair().expect("pair with a capture");
    let ub = UdpSocket::bind(&b, "10.9.6.1:7000").expect("bind");
    let ua = UdpSocket::bind(&a, "10.9.6.2:0").expect("bind");
    ub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    for i in 0..200u32 {
        ua.send_to(&i.to_be_bytes(), "10.9.6.1:7000").expect("send");
        let (n, _) = ub.recv_from(&mut buf).unwrap_or_else(|e| panic!("datagram {i} lost after the disk filled: {e}"));
        assert_eq!(&buf[..n], &i.to_be_bytes());
    }
}
