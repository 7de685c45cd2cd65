//! Raw ICMP sockets and the `ping` bin against the Linux kernel through tun0 (and tap0),
//! each test in its own network namespace. Needs root; skipped with a message elsewhere, a
//! failure under CI=true.

mod common;
use common::*;
use netstack::{IcmpSocket, IpVersion, StackHandle, UdpSocket};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// An echo request (RFC 792 / RFC 4443 §4.1) with sequence `seq` and `payload`; identifier
/// and checksum are left to the stack.
fn echo_request(v6: bool, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![if v6 { 128 } else { 8 }, 0, 0, 0, 0, 0];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    m
}

/// Send `count` echo requests to `to` and return each reply's round-trip time, checking
/// the reply's type, identifier, sequence number, payload and hop limit. The first request
/// after the device comes up may be lost or late (IPv6 address still settling, ARP/NDP on
/// TAP): requests are retried, bounded, until one is answered in time.
fn ping_with_socket(stack: &StackHandle, to: IpAddr, count: u16) -> Vec<Duration> {
    let v6 = to.is_ipv6();
    let sock = IcmpSocket::bind(stack, if v6 { IpVersion::V6 } else { IpVersion::V4 }).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut rtts = Vec::new();
    let mut buf = [0u8; 2048];
    let mut seq = 0u16;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rtts.len() < count as usize {
        assert!(
            Instant::now() < deadline,
            "{to}: only {} replies in 10 s; ip {:?}; inbox drops {}",
            rtts.len(),
            stack.stats.ip.snapshot(),
            stack.stats.ip_inbox.dropped()
        );
        seq += 1;
        let payload = pattern(56, seq as u8);
        let sent = Instant::now();
        sock.send_to(&echo_request(v6, seq, &payload), to).unwrap();
        let reply = loop {
            match sock.recv_with_hop_limit(&mut buf) {
                // A late reply to an earlier warm-up request (on TAP they wait for ARP/NDP).
                Ok(_) if rtts.is_empty() && u16::from_be_bytes([buf[6], buf[7]]) != seq => continue,
                Ok(r) => break Some(r),
                Err(e) if e.kind() == ErrorKind::WouldBlock && rtts.is_empty() => break None,
                Err(e) => panic!("{to}: seq {seq}: {e}; ip {:?}", stack.stats.ip.snapshot()),
            }
        };
        let Some((n, from, hop)) = reply else { continue };
        let rtt = sent.elapsed();
        let m = &buf[..n];
        assert_eq!(from, to, "reply from the pinged address");
        assert_eq!(m[0], if v6 { 129 } else { 0 }, "an echo reply: {m:?}");
        assert_eq!(u16::from_be_bytes([m[4], m[5]]), sock.ident(), "our identifier");
        assert_eq!(u16::from_be_bytes([m[6], m[7]]), seq, "the sequence just sent");
        assert_eq!(&m[8..], &payload[..], "payload echoed");
        assert_eq!(hop, 64, "the kernel's default TTL / hop limit, one hop away");
        assert!(rtt > Duration::ZERO);
        rtts.push(rtt);
    }
    rtts
}

#[test]
fn icmp_socket_pings_the_kernel() {
    in_netns("icmp_socket_pings_the_kernel", || {
        let stack = tun_stack();
        for to in ["10.0.0.1", "fd00::1", "fe80::1"] {
            let rtts = ping_with_socket(&stack, to.parse().unwrap(), 5);
            assert_eq!(rtts.len(), 5);
            assert!(rtts.iter().all(|r| *r < Duration::from_secs(1)), "{to}: {rtts:?}");
        }
        let snap = stack.stats.ip.snapshot();
        let get = |k: &str| snap.iter().find(|(n, _)| *n == k).unwrap().1;
        assert!(get("rx_raw") >= 15, "{snap:?}");
        assert_eq!(get("rx_raw_queue_full"), 0);
    });
}

/// Two sockets of one family get only the replies to their own identifier.
#[test]
fn echo_replies_matched_by_identifier() {
    in_netns("echo_replies_matched_by_identifier", || {
        let stack = tun_stack();
        let to: IpAddr = "10.0.0.1".parse().unwrap();
        ping_with_socket(&stack, to, 1); // the link is up
        let a = IcmpSocket::bind(&stack, IpVersion::V4).unwrap();
        let b = IcmpSocket::bind(&stack, IpVersion::V4).unwrap();
        assert_ne!(a.ident(), b.ident());
        let taken = IcmpSocket::bind_ident(&stack, IpVersion::V4, a.ident()).unwrap_err();
        assert_eq!(taken.kind(), ErrorKind::AddrInUse);
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        }
        for seq in 1..=3 {
            a.send_to(&echo_request(false, seq, b"to a"), to).unwrap();
        }
        let mut buf = [0u8; 256];
        for seq in 1..=3u16 {
            let (n, _) = a.recv_from(&mut buf).unwrap();
            assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), seq);
            assert_eq!(&buf[8..n], b"to a");
        }
        assert_eq!(b.recv_from(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock, "b got a's reply");
        // std-like argument errors.
        let e = a.send_to(&[8, 0, 0], to).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "short message");
        let e = a.send_to(&echo_request(false, 1, b""), "fd00::1".parse().unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "wrong family");
        assert_eq!(a.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(), ErrorKind::InvalidInput);
    });
}

/// A UDP probe to a closed kernel port comes back as Port Unreachable (ICMPv4 3/3, ICMPv6
/// 1/4) on the raw socket, quoting the probe — what traceroute reads.
#[test]
fn udp_probe_port_unreachable_reaches_raw_socket() {
    in_netns("udp_probe_port_unreachable_reaches_raw_socket", || {
        let stack = tun_stack();
        for (to, v6) in [("10.0.0.1", false), ("fd00::1", true)] {
            let to_ip: IpAddr = to.parse().unwrap();
            ping_with_socket(&stack, to_ip, 1); // the link (and DAD) is settled
            let raw = IcmpSocket::bind(&stack, if v6 { IpVersion::V6 } else { IpVersion::V4 }).unwrap();
            raw.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let any = if v6 { "[::]:0" } else { "0.0.0.0:0" };
            let udp = UdpSocket::bind(&stack, any).unwrap();
            let port = udp.local_addr().unwrap().port();
            udp.send_to(b"probe", (to_ip, 33434)).unwrap();
            let mut buf = [0u8; 1500];
            let (n, from) = raw.recv_from(&mut buf).unwrap();
            assert_eq!(from, to_ip);
            let m = &buf[..n];
            let want = if v6 { [1, 4] } else { [3, 3] };
            assert_eq!([m[0], m[1]], want, "port unreachable: {m:?}");
            // The quote: our IP header, then our UDP header with the probe's ports.
            let udp_at = 8 + if v6 { 40 } else { (m[8] & 0x0f) as usize * 4 };
            let q = &m[udp_at..];
            assert_eq!(u16::from_be_bytes([q[0], q[1]]), port, "source port");
            assert_eq!(u16::from_be_bytes([q[2], q[3]]), 33434, "destination port");
        }
    });
}

/// Run the ping bin with `args` (its own tun0 in this namespace); (exit code, stdout).
fn ping_bin(args: &[&str]) -> (Option<i32>, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_ping")).args(["--log", "warn"]).args(args).output().expect("run the ping bin");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), s)
}

#[test]
fn ping_bin_to_the_kernel() {
    in_netns("ping_bin_to_the_kernel", || {
        let (code, out) = ping_bin(&["-c", "3", "-i", "0.2", "-W", "2", "10.0.0.1"]);
        assert_eq!(code, Some(0), "{out}");
        let replies = out.lines().filter(|l| l.starts_with("64 bytes from 10.0.0.1: icmp_seq=")).count();
        assert_eq!(replies, 3, "{out}");
        assert!(out.contains("ttl=64 time="), "{out}");
        assert!(out.contains("3 packets transmitted, 3 received, 0% packet loss"), "{out}");
        assert!(out.contains("rtt min/avg/max/mdev = "), "{out}");
        // IPv6, with a larger message.
        let (code, out) = ping_bin(&["-c", "3", "-i", "0.2", "-W", "2", "-s", "1000", "fd00::1", "v6"]);
        assert_eq!(code, Some(0), "{out}");
        let replies = out.lines().filter(|l| l.starts_with("1008 bytes from fd00::1: icmp_seq=")).count();
        assert_eq!(replies, 3, "{out}");
        assert!(out.contains(" 0% packet loss"), "{out}");
        // Link-local, with the scope iputils would need.
        let (code, out) = ping_bin(&["-c", "2", "-i", "0.2", "-W", "2", "fe80::1%tun0"]);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(out.lines().filter(|l| l.starts_with("64 bytes from fe80::1: icmp_seq=")).count(), 2, "{out}");
    });
}

/// No one answers 10.0.0.99: every request is lost, and, as iputils, the exit status is 1.
#[test]
fn ping_bin_unanswered() {
    in_netns("ping_bin_unanswered", || {
        let started = Instant::now();
        let (code, out) = ping_bin(&["-c", "2", "-W", "1", "10.0.0.99"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("2 packets transmitted, 0 received, 100% packet loss"), "{out}");
        assert!(!out.contains("bytes from"), "{out}");
        assert!(started.elapsed() < Duration::from_secs(10), "bounded wait");
    });
}

/// Ctrl-C (SIGINT) stops an endless ping with the summary, exit 0 as replies came back.
#[test]
fn ping_bin_interrupt_prints_summary() {
    in_netns("ping_bin_interrupt_prints_summary", || {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ping"))
            .args(["--log", "warn", "-i", "0.1", "10.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ping");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut replies = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while replies < 3 && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("64 bytes from 10.0.0.1") => replies += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        assert_eq!(replies, 3, "three replies before the interrupt");
        let signalled = Instant::now();
        assert!(run("kill", &["-INT", &child.id().to_string()]).0, "kill -INT");
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let status = child.wait().expect("wait");
        assert!(signalled.elapsed() < Duration::from_secs(2), "exit {:?} after the signal", signalled.elapsed());
        assert_eq!(status.code(), Some(0), "{rest:?}");
        assert!(rest.iter().any(|l| l == "--- 10.0.0.1 ping statistics ---"), "{rest:?}");
        let summary = rest.iter().find(|l| l.contains("packets transmitted")).expect("summary line");
        let received: u32 = summary.split(", ").nth(1).and_then(|s| s.split(' ').next()?.parse().ok()).unwrap();
        assert!(received >= 3, "{summary}");
        assert!(rest.iter().any(|l| l.starts_with("rtt min/avg/max/mdev = ")), "{rest:?}");
    });
}

/// The same over a TAP device: ARP / NDP resolve the kernel first.
#[test]
fn tap_icmp_socket_and_ping_bin() {
    in_netns("tap_icmp_socket_and_ping_bin", || {
        use netstack::device::tap::{TapConfig, TapDevice};
        {
            let dev = TapDevice::open(&TapConfig::default()).expect("open tap0");
            let stack = netstack::Stack::new(Box::new(dev), netstack::StackConfig::default(), netstack::log::discard())
                .expect("start stack");
            for to in ["10.0.0.1", "fd00::1", "fe80::1"] {
                let rtts = ping_with_socket(&stack, to.parse().unwrap(), 3);
                assert_eq!(rtts.len(), 3, "{to}");
            }
            stack.shutdown();
        }
        let (code, out) = ping_bin(&["--tap", "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.1"]);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(out.lines().filter(|l| l.starts_with("64 bytes from 10.0.0.1: icmp_seq=")).count(), 3, "{out}");
        assert!(out.contains(" 0% packet loss"), "{out}");
    });
}
