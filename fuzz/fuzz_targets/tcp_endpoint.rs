//! The TCP endpoint fed arbitrary segments (valid checksums) and timeouts never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netstack::proto::tcp::{Endpoint, ListenAddr, TcpConfig};
use netstack::wire::tcp::TcpRepr;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let src: IpAddr = "10.0.0.1".parse().unwrap();
    let dst: IpAddr = "10.0.0.2".parse().unwrap();
    let t0 = Instant::now();
    let mut ep = Endpoint::new(TcpConfig::default(), [7; 16], t0);
    let _ = ep.listen(ListenAddr::Addr("10.0.0.2:80".parse().unwrap()), 8);
    let _ = ep.connect(t0, dst, "10.0.0.1:3000".parse().unwrap());
    let mut now = t0;
    let mut rest = data;
    while rest.len() >= 3 {
        let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let mut seg = rest[2..2 + n].to_vec();
        rest = &rest[2 + n..];
        now += Duration::from_millis(seg.first().copied().unwrap_or(0) as u64);
        if seg.len() >= 20 {
            seg[16] = 0;
            seg[17] = 0;
            let c = netstack::wire::transport_checksum(src, dst, netstack::wire::IpProtocol::Tcp, &seg);
            seg[16..18].copy_from_slice(&c.to_be_bytes());
        }
        if let Ok((repr, hlen)) = TcpRepr::parse(&seg, src, dst) {
            ep.handle_segment(now, src, dst, &repr, &seg[hlen..]);
        }
        let mut due = Vec::new();
        while let Some((conn, at)) = ep.poll_timer_update() {
            if at.is_some_and(|t| t <= now) {
                due.push(conn);
            }
        }
        for conn in due {
            ep.handle_timeout(now, conn);
        }
        ep.poll_transmit(now, &mut |_, _, _, _| {});
        while ep.poll_event().is_some() {}
    }
});
