//! A gateway: the stack reaches a host in a second namespace through the kernel of the
//! first, and `traceroute` lists both hops. Needs root; skipped with a message elsewhere, a
//! failure under CI=true.
//!
//! ```text
//!  stack 10.0.0.2 ──tun0/tap0── A: 10.0.0.1 (forwarding) 10.9.0.1 ──veth── B: 10.9.0.2
//!        fd00::2                   fd00::1               fd09::1            fd09::2
//! ```
//! A is the test thread's own namespace (`in_netns`); B is made with `ip netns add` and
//! deleted by [`PeerNs`]'s Drop, also when a check fails. Forwarding is switched on in A
//! only, and ICMP rate limits off in A and B so each probe gets its error.

mod common;
use common::*;
use netstack::{Stack, StackConfig, TcpStream, UdpSocket};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

/// Namespace B, named by `ip netns add` and always deleted: Drop kills the processes
/// started in it (by their pid), then deletes it.
struct PeerNs {
    name: String,
    children: Vec<Child>,
}

impl PeerNs {
    fn new(tag: &str) -> PeerNs {
        let name = format!("nstrace-{tag}-{}", std::process::id());
        let (ok, out) = run("ip", &["netns", "add", &name]);
        assert!(ok, "ip netns add {name}: {out}");
        PeerNs { name, children: Vec::new() }
    }

    /// Run `args` inside B; panics when it fails.
    fn exec(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        let (ok, out) = run("ip", &all);
        assert!(ok, "in {}: {args:?}: {out}", self.name);
    }

    /// A Python echo server in B on `addr`:`port` for one connection; returns once it listens.
    fn echo_server(&mut self, addr: &str, port: u16) {
        const ECHO: &str = "import socket,sys\n\
            a=sys.argv[1]; f=socket.AF_INET6 if ':' in a else socket.AF_INET\n\
            s=socket.socket(f); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
            s.bind((a, int(sys.argv[2]))); s.listen(1); print('ready', flush=True)\n\
            s.settimeout(30); c,_=s.accept(); c.settimeout(30)\n\
            while True:\n    d=c.recv(65536)\n    if not d: break\n    c.sendall(d)\n\
            c.shutdown(socket.SHUT_WR); c.close()\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "python3", "-c", ECHO, addr, &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 in B");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        self.children.push(child);
        assert!(read.is_ok() && line.trim() == "ready", "echo server in B did not start: {line:?}");
    }
}

impl Drop for PeerNs {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let (ok, out) = run("ip", &["netns", "del", &self.name]);
        if !ok {
            eprintln!("ip netns del {}: {out}", self.name);
        }
    }
}

/// Set `key=value` in this thread's namespace (A), after checking it is not the one the
/// test process started in (the thread unshared its own, `in_netns`).
fn sysctl_here(kv: &str) {
    let ours = std::fs::read_link("/proc/thread-self/ns/net").expect("our netns");
    let start = std::fs::read_link("/proc/self/ns/net").expect("the process's netns");
    assert_ne!(ours, start, "refusing to change sysctls outside a test namespace");
    let (ok, out) = run("sysctl", &["-w", kv]);
    assert!(ok, "sysctl -w {kv}: {out}");
}

/// A ↔ B over veth, B's default routes through A, forwarding in A; v4 and v6.
fn two_namespaces(tag: &str) -> PeerNs {
    let b = PeerNs::new(tag);
    for args in [
        vec!["link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &b.name],
        vec!["addr", "add", "10.9.0.1/24", "dev", "va"],
        vec!["-6", "addr", "add", "fd09::1/64", "dev", "va", "nodad"],
        vec!["link", "set", "va", "up"],
    ] {
        let (ok, out) = run("ip", &args);
        assert!(ok, "ip {args:?}: {out}");
    }
    for kv in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv4.icmp_ratelimit=0"] {
        sysctl_here(kv);
    }
    sysctl_here("net.ipv6.icmp.ratelimit=0");
    b.exec(&["ip", "link", "set", "lo", "up"]);
    b.exec(&["ip", "addr", "add", "10.9.0.2/24", "dev", "vb"]);
    b.exec(&["ip", "-6", "addr", "add", "fd09::2/64", "dev", "vb", "nodad"]);
    b.exec(&["ip", "link", "set", "vb", "up"]);
    b.exec(&["ip", "route", "add", "default", "via", "10.9.0.1"]);
    b.exec(&["ip", "-6", "route", "add", "default", "via", "fd09::1"]);
    b.exec(&["sysctl", "-w", "net.ipv4.icmp_ratelimit=0"]);
    b.exec(&["sysctl", "-w", "net.ipv6.icmp.ratelimit=0"]);
    b
}

fn gateway_config() -> StackConfig {
    let mut cfg = StackConfig::default();
    cfg.ip.gateway4 = Some(Ipv4Addr::new(10, 0, 0, 1));
    cfg.ip.gateway6 = Some("fd00::1".parse().unwrap());
    cfg
}

fn tap_stack_with(cfg: StackConfig) -> Stack {
    use netstack::device::tap::{TapConfig, TapDevice};
    let dev = TapDevice::open(&TapConfig::default()).expect("open tap0");
    Stack::new(Box::new(dev), cfg, netstack::log::discard()).expect("start stack")
}

/// 1 MiB from the stack to B's echo server through the gateway and back; SHA-256 equal.
/// The first SYN may meet a link still settling (IPv6 DAD on the kernel side of the
/// device, ARP on TAP): connect is retried, bounded.
fn echo_through_gateway(stack: &Stack, b: &mut PeerNs, addr: &str) {
    b.echo_server(addr, 5001);
    let ip: IpAddr = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        match TcpStream::connect_timeout(stack, &(ip, 5001).into(), Duration::from_secs(3)) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline && e.kind() == ErrorKind::TimedOut => continue,
            Err(e) => panic!("connect to {addr} through the gateway: {e}"),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let data = pattern(MIB, 9);
    let want = sha256_hex(&data);
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::with_capacity(MIB);
    (&s).read_to_end(&mut got).expect("read the echo");
    writer.join().unwrap();
    assert_eq!(got.len(), MIB, "{addr}: echoed length");
    assert_eq!(sha256_hex(&got), want, "{addr}: echoed bytes");
}

/// Run the traceroute bin (its own device in this namespace); (exit code, stdout+stderr).
fn traceroute_bin(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_traceroute"))
        .args(["--log", "warn", "-w", "2", "-m", "6"])
        .args(args)
        .output()
        .expect("run the traceroute bin");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), s)
}

/// Hop lines `" 1  10.0.0.1  0.1 ms ..."` -> (hop, addresses, answered probes).
fn hops(out: &str) -> Vec<(u32, Vec<String>, usize)> {
    out.lines()
        .filter(|l| l.len() > 3 && l[..2].trim().parse::<u32>().is_ok() && &l[2..3] == " ")
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let addrs = words.iter().filter(|w| w.parse::<IpAddr>().is_ok()).map(|w| w.to_string()).collect();
            (words[0].parse().unwrap(), addrs, words.iter().filter(|w| **w == "ms").count())
        })
        .collect()
}

/// The trace lists the gateway, then the destination, and stops there.
fn check_trace(out: &str, header: &str, gateway: &str, dest: &str) {
    assert!(out.starts_with(header), "{out}");
    let h = hops(out);
    assert_eq!(h.len(), 2, "two hops, then stop:\n{out}");
    assert_eq!((h[0].0, h[1].0), (1, 2), "{out}");
    assert_eq!(h[0].1, [gateway], "hop 1 is the gateway:\n{out}");
    assert_eq!(h[1].1, [dest], "hop 2 is the destination:\n{out}");
    // The first probe after the device comes up may be lost; the rest are answered.
    assert!(h[0].2 >= 2 && h[1].2 == 3, "answers per hop:\n{out}");
}

#[test]
fn tun_gateway_tcp_and_traceroute() {
    in_netns("tun_gateway_tcp_and_traceroute", || {
        let mut b = two_namespaces("tun");
        {
            let stack = tun_stack_with(gateway_config());
            echo_through_gateway(&stack, &mut b, "10.9.0.2");
            echo_through_gateway(&stack, &mut b, "fd09::2");
            stack.shutdown();
        }
        let (code, out) = traceroute_bin(&["10.9.0.2", "--gateway", "10.0.0.1"]);
        assert_eq!(code, Some(0), "{out}");
        check_trace(&out, "traceroute to 10.9.0.2 (10.9.0.2), 6 hops max, 60 byte packets\n", "10.0.0.1", "10.9.0.2");
        let (code, out) = traceroute_bin(&["fd09::2", "v6", "--gateway", "fd00::1"]);
        assert_eq!(code, Some(0), "{out}");
        check_trace(&out, "traceroute to fd09::2 (fd09::2), 6 hops max, 80 byte packets\n", "fd00::1", "fd09::2");
    });
}

/// Without a gateway an off-subnet destination has no route: connect, send_to and the
/// traceroute bin fail at once with NetworkUnreachable (ENETUNREACH), counted; on-link
/// traffic is untouched. Also the TTL setter's bounds (Linux's IP_TTL: 1..=255).
#[test]
fn no_gateway_is_network_unreachable() {
    in_netns("no_gateway_is_network_unreachable", || {
        let _b = two_namespaces("nogw");
        let stack = tun_stack();
        let t0 = Instant::now();
        let e = TcpStream::connect(&stack, "10.9.0.2:5001").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NetworkUnreachable, "{e}");
        assert!(e.to_string().contains("no route to 10.9.0.2"), "a clear message: {e}");
        let e = TcpStream::connect(&stack, "[fd09::2]:5001").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NetworkUnreachable, "{e}");
        let udp = UdpSocket::bind(&stack, "0.0.0.0:0").unwrap();
        assert_eq!(udp.send_to(b"x", "10.9.0.2:9").unwrap_err().kind(), ErrorKind::NetworkUnreachable);
        assert_eq!(udp.connect("10.9.0.2:9").unwrap_err().kind(), ErrorKind::NetworkUnreachable);
        assert!(t0.elapsed() < Duration::from_millis(500), "fails fast: {:?}", t0.elapsed());
        let snap = stack.stats.ip.snapshot();
        assert_eq!(snap.iter().find(|(k, _)| *k == "tx_no_route").unwrap().1, 4, "{snap:?}");
        udp.send_to(b"x", "10.0.0.1:9").expect("on-link needs no gateway");
        assert_eq!(udp.ttl().unwrap(), 64);
        assert_eq!(udp.set_ttl(0).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(udp.set_ttl(256).unwrap_err().kind(), ErrorKind::InvalidInput);
        udp.set_ttl(255).unwrap();
        assert_eq!(udp.ttl().unwrap(), 255);
        drop(udp);
        stack.shutdown();
        let (code, out) = traceroute_bin(&["10.9.0.2"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("network unreachable") && !out.contains(" ms"), "{out}");
        // A gateway off every connected subnet is refused at start, as a bad flag (exit 2).
        let (code, out) = traceroute_bin(&["10.9.0.2", "--gateway", "10.9.0.1"]);
        assert_eq!(code, Some(2), "{out}");
        assert!(out.contains("not on a connected subnet"), "{out}");
    });
}

/// Over TAP the stack's frames for 10.9.0.2 go to the kernel's tap0 MAC (the gateway's);
/// a gateway nobody answers ARP for fails the connection with HostUnreachable, not a
/// timeout.
#[test]
fn tap_gateway_tcp_traceroute_and_dead_gateway() {
    in_netns("tap_gateway_tcp_traceroute_and_dead_gateway", || {
        let mut b = two_namespaces("tap");
        {
            let stack = tap_stack_with(gateway_config());
            echo_through_gateway(&stack, &mut b, "10.9.0.2");
            stack.shutdown();
        }
        let (code, out) = traceroute_bin(&["--tap", "10.9.0.2", "--gateway", "10.0.0.1"]);
        assert_eq!(code, Some(0), "{out}");
        check_trace(&out, "traceroute to 10.9.0.2 (10.9.0.2), 6 hops max, 60 byte packets\n", "10.0.0.1", "10.9.0.2");
        let mut cfg = StackConfig::default();
        cfg.ip.gateway4 = Some(Ipv4Addr::new(10, 0, 0, 99));
        let stack = tap_stack_with(cfg);
        let t0 = Instant::now();
        let e = TcpStream::connect(&stack, "10.9.0.2:5001").unwrap_err();
        let took = t0.elapsed();
        assert_eq!(e.kind(), ErrorKind::HostUnreachable, "{e} after {took:?}");
        // Three ARP requests a second apart, then failure (RFC 4861 §7.3.3's MAX_MULTICAST_SOLICIT).
        assert!(took < Duration::from_secs(6), "{took:?}");
        stack.shutdown();
    });
}
