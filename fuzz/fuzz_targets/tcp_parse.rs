//! TcpRepr::parse never panics; what parses re-emits to something that parses the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netstack::wire::tcp::TcpRepr;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let src: IpAddr = "10.0.0.1".parse().unwrap();
    let dst: IpAddr = "10.0.0.2".parse().unwrap();
    // Fix the checksum so parsing goes past it.
    let mut seg = data.to_vec();
    if seg.len() >= 20 {
        seg[16] = 0;
        seg[17] = 0;
        let c = netstack::wire::transport_checksum(src, dst, netstack::wire::IpProtocol::Tcp, &seg);
        seg[16..18].copy_from_slice(&c.to_be_bytes());
    }
    if let Ok((repr, hlen)) = TcpRepr::parse(&seg, src, dst) {
        let payload = &seg[hlen..];
        let mut out = vec![0u8; repr.header_len() + payload.len()];
        repr.emit(&mut out, payload, src, dst);
        let (again, h2) = TcpRepr::parse(&out, src, dst).expect("emitted segment parses");
        assert_eq!(&out[h2..], payload);
        assert_eq!(
            (again.seq, again.ack, again.window, again.src_port),
            (repr.seq, repr.ack, repr.window, repr.src_port)
        );
    }
});
