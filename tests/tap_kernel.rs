//! The stack on a TAP device (Ethernet, ARP, NDP) against the Linux kernel, each test in its
//! own network namespace. Kernel side tap0: 10.0.0.1/24, fe80::1, fd00::1; the stack
//! 10.0.0.2, fe80::2, fd00::2 with a random locally administered MAC.

mod common;
use common::*;
use netstack::device::tap::{TapConfig, TapDevice};
use netstack::{Stack, StackConfig, TcpListener, TcpStream, UdpSocket};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

const MIB4: usize = 4 << 20;

fn tap_stack() -> Stack {
    let dev = TapDevice::open(&TapConfig::default()).expect("open tap0");
    Stack::new(Box::new(dev), StackConfig::default(), netstack::log::discard()).expect("start stack")
}

fn link_stat(stack: &Stack, name: &str) -> u64 {
    let l = stack.stats.link.as_ref().expect("a TAP stack has link counters");
    l.snapshot().iter().find(|(k, _)| *k == name).unwrap().1
}

/// The stack's MAC as `ip neigh` prints it.
fn mac_text(stack: &Stack) -> String {
    let m = stack.config().link.as_ref().expect("link config filled in by Stack::new").mac;
    m.0.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[test]
fn tap_kernel_ping_and_neighbour() {
    in_netns("tap_kernel_ping_and_neighbour", || {
        let stack = tap_stack();
        // IPv4 needs nothing but ARP: the first ping must already be answered.
        let (ok, out) = run("ping", &["-c", "3", "-i", "0.2", "-W", "2", "10.0.0.2"]);
        assert!(ok && out.contains(" 0% packet loss"), "ping 10.0.0.2 over TAP:\n{out}");
        // IPv6: our addresses are tentative for the second of DAD (RFC 4862 §5.4); wait
        // for a first reply, then require three out of three.
        warm_up("fd00::2", true);
        let (ok, out) = run("ping", &["-6", "-c", "3", "-i", "0.2", "-W", "2", "fd00::2"]);
        assert!(ok && out.contains(" 0% packet loss"), "ping -6 fd00::2 over TAP:\n{out}");
        let (ok, out) = run("ping", &["-6", "-c", "2", "-i", "0.2", "-W", "2", "fe80::2%tap0"]);
        assert!(ok && out.contains(" 0% packet loss"), "ping -6 fe80::2%tap0:\n{out}");
        let (_, neigh) = run("ip", &["neigh", "show", "dev", "tap0"]);
        let mac = mac_text(&stack);
        for ip in ["10.0.0.2 ", "fd00::2 "] {
            let line = neigh.lines().find(|l| l.starts_with(ip)).unwrap_or_else(|| panic!("no {ip}in:\n{neigh}"));
            assert!(line.contains(&format!("lladdr {mac}")), "kernel's entry for {ip}is not our MAC {mac}:\n{neigh}");
        }
        assert!(link_stat(&stack, "tx_arp_replies") >= 1);
        assert!(link_stat(&stack, "tx_na") >= 1);
    });
}

/// 4 MiB each way on one connection the stack opens to the kernel: resolving 10.0.0.1
/// (ARP from our side) comes first.
#[test]
fn tap_kernel_tcp_4mib_each_way() {
    in_netns("tap_kernel_tcp_4mib_each_way", || {
        let stack = tap_stack();
        let l = std::net::TcpListener::bind("10.0.0.1:3000").unwrap();
        let down = pattern(MIB4, 7);
        let up = pattern(MIB4, 8);
        let (want_down, want_up) = (sha256_hex(&down), sha256_hex(&up));
        let kernel = thread::spawn(move || {
            let (mut k, _) = l.accept().unwrap();
            let mut w = k.try_clone().unwrap();
            let writer = thread::spawn(move || {
                w.write_all(&down).unwrap();
                w.shutdown(Shutdown::Write).unwrap();
            });
            let mut got = Vec::with_capacity(MIB4);
            k.read_to_end(&mut got).unwrap();
            writer.join().unwrap();
            (got.len(), sha256_hex(&got))
        });
        let t0 = Instant::now();
        let s = TcpStream::connect(&stack, "10.0.0.1:3000").expect("connect over TAP (ARP for 10.0.0.1)");
        assert!(link_stat(&stack, "tx_arp_requests") >= 1, "we resolved the kernel's MAC ourselves");
        let mut w = s.try_clone().unwrap();
        let writer = thread::spawn(move || {
            w.write_all(&up).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut r = s;
        let mut got = Vec::with_capacity(MIB4);
        r.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        let (n, h) = kernel.join().unwrap();
        assert_eq!((got.len(), sha256_hex(&got)), (MIB4, want_down), "kernel → stack");
        assert_eq!((n, h), (MIB4, want_up), "stack → kernel");
        eprintln!("tap 4 MiB each way in {:?}", t0.elapsed());
    });
}

/// The kernel connects over IPv6 (NDP both ways) and uploads 4 MiB; the stack echoes its
/// SHA-256 back.
#[test]
fn tap_kernel_tcp_v6_upload() {
    in_netns("tap_kernel_tcp_v6_upload", || {
        let stack = tap_stack();
        warm_up("fd00::2", true);
        let l = TcpListener::bind(&stack, "[::]:4000").unwrap();
        let server = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::with_capacity(MIB4);
            s.read_to_end(&mut got).unwrap();
            s.write_all(sha256_hex(&got).as_bytes()).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            got.len()
        });
        let data = pattern(MIB4, 9);
        let mut k = std::net::TcpStream::connect("[fd00::2]:4000").unwrap();
        k.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        k.write_all(&data).unwrap();
        k.shutdown(Shutdown::Write).unwrap();
        let mut answer = String::new();
        k.read_to_string(&mut answer).unwrap();
        assert_eq!(server.join().unwrap(), MIB4);
        assert_eq!(answer, sha256_hex(&data));
    });
}

#[test]
fn tap_kernel_udp_echo() {
    in_netns("tap_kernel_udp_echo", || {
        let stack = tap_stack();
        warm_up("fd00::2", true);
        for (bind, to, from) in [("0.0.0.0:7", "10.0.0.2:7", "10.0.0.1:0"), ("[::]:7", "[fd00::2]:7", "[fd00::1]:0")] {
            let s = UdpSocket::bind(&stack, bind).unwrap();
            let echo = thread::spawn(move || {
                let mut buf = [0u8; 2048];
                for _ in 0..20 {
                    let (n, peer) = s.recv_from(&mut buf).unwrap();
                    s.send_to(&buf[..n], peer).unwrap();
                }
            });
            let k = std::net::UdpSocket::bind(from).unwrap();
            k.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 2048];
            for i in 0..20u8 {
                let msg = pattern(100 + 50 * i as usize, i);
                k.send_to(&msg, to).unwrap();
                let (n, peer) = k.recv_from(&mut buf).unwrap_or_else(|e| panic!("echo {i} to {to}: {e}"));
                assert_eq!(peer, to.parse::<SocketAddr>().unwrap());
                assert_eq!(&buf[..n], &msg[..]);
            }
            echo.join().unwrap();
        }
    });
}

/// Nobody answers ARP for 10.0.0.77: connect fails with HostUnreachable once resolution
/// gives up (3 requests 1 s apart), not with a timeout.
#[test]
fn tap_connect_unused_address_host_unreachable() {
    in_netns("tap_connect_unused_address_host_unreachable", || {
        let stack = tap_stack();
        let t0 = Instant::now();
        let addr: SocketAddr = "10.0.0.77:80".parse().unwrap();
        let e = TcpStream::connect_timeout(&stack, &addr, Duration::from_secs(20)).expect_err("nobody is at 10.0.0.77");
        let took = t0.elapsed();
        assert_eq!(e.kind(), ErrorKind::HostUnreachable, "{e}");
        assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(6), "failed after {took:?}");
        assert!(link_stat(&stack, "neigh_resolve_failed") >= 1);
    });
}
