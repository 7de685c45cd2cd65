//! The stub resolver between two stacks over the in-memory pair (no root needed): stack B
//! runs a small hand-made DNS responder on its own UdpSocket; stack A resolves through it.

mod common;
use common::*;
use netstack::device::pair::{pair, FaultConfig};
use netstack::{Stack, StackConfig, TcpListener, TcpStream, UdpSocket};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The question name of a query (uncompressed labels from offset 12), and its type.
fn question(q: &[u8]) -> Option<(String, u16)> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(pos)? as usize;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(pos + 1..pos + 1 + len)?).into_owned());
        pos += 1 + len;
    }
    let t = q.get(pos + 1..pos + 3)?;
    Some((labels.join("."), u16::from_be_bytes([t[0], t[1]])))
}

/// Answers web.test A with 10.0.0.1 (TTL 30), NODATA for its other types, NXDOMAIN for
/// other names; counts the queries per (name, type).
fn responder(b: &Stack, stop: Arc<AtomicBool>, a_queries: Arc<AtomicUsize>) -> std::thread::JoinHandle<()> {
    let sock = UdpSocket::bind(b, "10.0.0.1:53").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            let q = &buf[..n];
            let Some((name, qtype)) = question(q) else { continue };
            let mut r = q.to_vec();
            r[2] |= 0x80; // QR
            r[3] = 0x80; // RA, RCODE 0
            if name != "web.test" {
                r[3] |= 3; // NXDOMAIN
            } else if qtype == 1 {
                a_queries.fetch_add(1, Relaxed);
                r[7] = 1;
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1]);
            }
            let _ = sock.send_to(&r, from);
        }
    })
}

#[test]
fn resolve_and_connect_by_name_over_the_pair() {
    let (da, db) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let cfg = StackConfig { dns: vec!["10.0.0.1".parse().unwrap()], ..StackConfig::default() };
    let a = Stack::new(Box::new(da), cfg, netstack::log::discard()).unwrap();
    let b = Stack::new(Box::new(db), peer_config(), netstack::log::discard()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let a_queries = Arc::new(AtomicUsize::new(0));
    let server = responder(&b, stop.clone(), a_queries.clone());

    assert_eq!(a.resolve("web.test").unwrap(), vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(a_queries.load(Relaxed), 1);
    let e = a.resolve("nope.test").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // A name in connect: resolved (the A record from the cache), then connected.
    let l = TcpListener::bind(&b, "10.0.0.1:7000").unwrap();
    let acceptor = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    let mut c = TcpStream::connect(&a, "WEB.test.:7000").unwrap();
    c.write_all(b"echo").unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"echo");
    acceptor.join().unwrap();
    assert_eq!(a_queries.load(Relaxed), 1, "the A answer came from the cache");
    let (_, hits, _) = a.dns_stats();
    assert!(hits >= 1);

    // No server configured: names are refused with a clear error, literals still work.
    let e = TcpStream::connect(&b, "web.test:7000").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("no DNS server"), "{e}");
    stop.store(true, Relaxed);
    server.join().unwrap();
}

/// REVIEW21 FINDING (fails on main 5f16cad): each query's socket took the UDP table's next
/// ephemeral port, and those are handed out in sequence, so an off-path spoofer who saw
/// (or provoked) one query knew the next one's port and had only the 16-bit ID to guess
/// (RFC 5452 §9.2, §10: the source port must be unpredictable; the module doc already
/// said it was "random per try").
#[test]
fn query_source_ports_are_unpredictable() {
    const QUERIES: usize = 8;
    let (da, db) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let cfg = StackConfig { dns: vec!["10.0.0.1".parse().unwrap()], ..StackConfig::default() };
    let a = Stack::new(Box::new(da), cfg, netstack::log::discard()).unwrap();
    let b = Stack::new(Box::new(db), peer_config(), netstack::log::discard()).unwrap();
    let sock = UdpSocket::bind(&b, "10.0.0.1:53").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // NXDOMAIN to every query (not cached, so each name is one query), its source port kept.
    let server = std::thread::spawn(move || {
        let mut ports = Vec::new();
        let mut buf = [0u8; 512];
        while ports.len() < QUERIES {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { break };
            let mut r = buf[..n].to_vec();
            (r[2], r[3]) = (r[2] | 0x80, 0x83);
            ports.push(from.port());
            let _ = sock.send_to(&r, from);
        }
        ports
    });
    for i in 0..QUERIES {
        let e = a.resolve(&format!("n{i}.test")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
    let ports = server.join().unwrap();
    assert_eq!(ports.len(), QUERIES);
    assert!(ports.iter().all(|p| *p >= 49152), "{ports:?}: outside the dynamic range");
    // Random ports in 49152–65535: two in a row within 16 of each other has odds ~1/1000.
    let close = ports.windows(2).filter(|w| w[1].wrapping_sub(w[0]) < 16).count();
    assert!(close <= 1, "{ports:?}: each port follows from the one before");
}
