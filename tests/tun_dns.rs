//! The stub resolver against a real DNS server: `dnsmasq` on the kernel side of tun0, each
//! test in its own network namespace (root; skipped with a reason elsewhere, a failure under
//! CI=true, where .ci/run installs dnsmasq).

mod common;
use common::*;
use netstack::{StackConfig, TcpStream};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// dnsmasq on 10.0.0.1:53 with web.test (10.0.0.1, fd00::1) and alias.test → web.test,
/// logging each query to `log`; killed (by its PID) when dropped.
struct Dnsmasq {
    child: Child,
    log: std::path::PathBuf,
}

/// Whether dnsmasq can run here; if not, a printed skip (a failure under CI=true, where
/// .ci/run installs it).
fn have_dnsmasq(test: &str) -> bool {
    if run("dnsmasq", &["--version"]).0 {
        return true;
    }
    assert!(!under_ci(), "{test}: dnsmasq is not installed (.ci/run installs it)");
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: dnsmasq is not installed (apt-get install dnsmasq)");
    false
}

impl Dnsmasq {
    fn start(tag: &str, local_ttl: u32) -> Dnsmasq {
        let dir = std::env::temp_dir();
        let log = dir.join(format!("netstack-dnsmasq-{tag}-{}.log", std::process::id()));
        let pid = dir.join(format!("netstack-dnsmasq-{tag}-{}.pid", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let child = Command::new("dnsmasq")
            // --bind-dynamic: it also serves 10.0.0.1 when tun0 appears after it started.
            .args(["--no-daemon", "--port=53", "--listen-address=10.0.0.1", "--bind-dynamic"])
            .args(["--no-resolv", "--no-hosts", "--log-queries", "--user=root", "--group=root"])
            .arg("--host-record=web.test,10.0.0.1,fd00::1")
            .arg("--cname=alias.test,web.test")
            // Names under .test are answered here: an unknown one is NXDOMAIN, not REFUSED.
            .arg("--local=/test/")
            .arg(format!("--local-ttl={local_ttl}"))
            .arg(format!("--log-facility={}", log.display()))
            .arg(format!("--pid-file={}", pid.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run dnsmasq (apt-get install dnsmasq)");
        let d = Dnsmasq { child, log };
        // Ready once it logged its start-up (it binds before that).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !d.log_text().contains("started") {
            assert!(Instant::now() < deadline, "dnsmasq did not start: {}", d.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Queries dnsmasq logged for `name` (each `query[A] name from …` line).
    fn queries(&self, name: &str) -> usize {
        self.log_text().lines().filter(|l| l.contains("query[") && l.contains(&format!("] {name} from"))).count()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn dns_config() -> StackConfig {
    StackConfig { dns: vec!["10.0.0.1".parse().unwrap()], ..StackConfig::default() }
}

#[test]
fn a_and_aaaa_answers_and_nxdomain() {
    if !have_dnsmasq("a_and_aaaa_answers_and_nxdomain") {
        return;
    }
    in_netns("a_and_aaaa_answers_and_nxdomain", || {
        let stack = tun_stack_with(dns_config());
        let dns = Dnsmasq::start("answers", 60);
        let addrs = stack.resolve("web.test").unwrap_or_else(|e| panic!("resolve: {e}; log:\n{}", dns.log_text()));
        let want: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        assert_eq!(addrs, want);
        // A CNAME is followed to the address.
        let a = stack.lookup("alias.test", netstack::proto::dns::RecordType::A).unwrap();
        assert_eq!(a.addrs(), vec![want[0]], "{a:?}");
        // NXDOMAIN: a clear NotFound, at once (no retries).
        let t = Instant::now();
        let e = stack.resolve("missing.test").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("NXDOMAIN"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(1), "NXDOMAIN took {:?}", t.elapsed());
        assert_eq!(dns.queries("missing.test"), 1, "{}", dns.log_text());
        // A cached answer does not go to the wire again (TTL 60 s).
        let before = dns.queries("web.test");
        assert_eq!(stack.resolve("WEB.test.").unwrap(), want);
        assert_eq!(dns.queries("web.test"), before);
    });
}

#[test]
fn silent_server_times_out_in_bounded_time() {
    in_netns("silent_server_times_out_in_bounded_time", || {
        let stack = tun_stack_with(dns_config());
        // A kernel socket on the server's port that never answers (no ICMP refusal either).
        let silent = std::net::UdpSocket::bind("10.0.0.1:53").unwrap();
        let t = Instant::now();
        let e = stack.resolve("web.test").unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        let total: Duration = netstack::socket::DNS_TRY_TIMEOUTS.iter().sum();
        assert!(took >= total - Duration::from_millis(50) && took < total + Duration::from_secs(2), "took {took:?}");
        // Every try reached the server, each with a fresh ID.
        silent.set_nonblocking(true).unwrap();
        let mut ids = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = silent.recv(&mut buf) {
            assert!(n > 12, "a query has a header and a question");
            ids.push(u16::from_be_bytes([buf[0], buf[1]]));
        }
        assert_eq!(ids.len(), netstack::socket::DNS_TRY_TIMEOUTS.len(), "queries seen: {ids:?}");
        assert_eq!(stack.dns_stats().0, ids.len() as u64);
    });
}

#[test]
fn ttl_expiry_goes_back_to_the_wire() {
    if !have_dnsmasq("ttl_expiry_goes_back_to_the_wire") {
        return;
    }
    in_netns("ttl_expiry_goes_back_to_the_wire", || {
        let stack = tun_stack_with(dns_config());
        let dns = Dnsmasq::start("ttl", 1);
        let a = netstack::proto::dns::RecordType::A;
        let first = stack.lookup("web.test", a).unwrap_or_else(|e| panic!("{e}; log:\n{}", dns.log_text()));
        assert_eq!(first.min_ttl(), 1);
        let sent = stack.dns_stats().0;
        assert_eq!(dns.queries("web.test"), 1, "{}", dns.log_text());
        // Within the TTL: from the cache.
        assert_eq!(stack.lookup("web.test", a).unwrap().addrs(), first.addrs());
        assert_eq!(dns.queries("web.test"), 1);
        assert_eq!(stack.dns_stats().0, sent);
        // After it: asked again.
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(stack.lookup("web.test", a).unwrap().addrs(), first.addrs());
        assert_eq!(dns.queries("web.test"), 2, "{}", dns.log_text());
        assert_eq!(stack.dns_stats().0, sent + 1);
    });
}

#[test]
fn sockets_connect_by_name() {
    if !have_dnsmasq("sockets_connect_by_name") {
        return;
    }
    in_netns("sockets_connect_by_name", || {
        let stack = tun_stack_with(dns_config());
        let _dns = Dnsmasq::start("connect", 60);
        // TCP: "name:port" reaches a kernel listener through the stack's resolver.
        let listener = std::net::TcpListener::bind("10.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, from) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"world").unwrap();
            (buf, from)
        });
        let mut c = TcpStream::connect(&stack, format!("web.test:{port}")).unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"world");
        let (got, from) = server.join().unwrap();
        assert_eq!(&got, b"hello");
        assert_eq!(from.ip(), "10.0.0.2".parse::<IpAddr>().unwrap());
        // UDP: send_to a (name, port) pair.
        let k = std::net::UdpSocket::bind("10.0.0.1:0").unwrap();
        k.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let u = netstack::UdpSocket::bind(&stack, "0.0.0.0:0").unwrap();
        u.send_to(b"ping", ("web.test", k.local_addr().unwrap().port())).unwrap();
        let mut b = [0u8; 8];
        let (n, _) = k.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"ping");
        // IP literals and cached names are not looked up again; unknown names fail clearly.
        let sent = stack.dns_stats().0;
        u.send_to(b"x", format!("10.0.0.1:{}", k.local_addr().unwrap().port())).unwrap();
        assert_eq!(stack.dns_stats().0, sent);
        let e = TcpStream::connect(&stack, "missing.test:80").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let e = TcpStream::connect(&stack, "web.test:notaport").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        // Not a host name (a scoped literal std's parser does not take): refused, not queried.
        let sent = stack.dns_stats().0;
        let e = TcpStream::connect(&stack, "[fe80::1%tun0]:80").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(stack.dns_stats().0, sent);
    });
}

#[test]
fn resolve_bin_prints_answers() {
    if !have_dnsmasq("resolve_bin_prints_answers") {
        return;
    }
    in_netns("resolve_bin_prints_answers", || {
        let dns = Dnsmasq::start("bin", 60);
        let bin = env!("CARGO_BIN_EXE_resolve");
        let (ok, out) = run(bin, &["alias.test", "--dns", "10.0.0.1", "--log", "off"]);
        assert!(ok, "{out}\nlog:\n{}", dns.log_text());
        assert!(out.contains("alias.test.\t60\tIN\tCNAME\tweb.test."), "{out}");
        assert!(out.contains("web.test.\t60\tIN\tA\t10.0.0.1"), "{out}");
        assert!(out.contains("web.test.\t60\tIN\tAAAA\tfd00::1"), "{out}");
        let (ok, out) = run(bin, &["missing.test", "--dns", "10.0.0.1", "--type", "aaaa", "--log", "off"]);
        assert!(!ok && out.contains("NXDOMAIN"), "{out}");
        let (ok, out) = run(bin, &["web.test", "--log", "off"]);
        assert!(!ok && out.contains("--dns"), "{out}");
    });
}

/// A response to `query` (as received) with one A record, `id` in place of the query's.
fn forged_answer(query: &[u8], id: u16, addr: [u8; 4]) -> Vec<u8> {
    let mut r = query.to_vec();
    r[0..2].copy_from_slice(&id.to_be_bytes());
    r[2] |= 0x80; // QR
    r[7] = 1; // ANCOUNT
    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
    r.extend_from_slice(&addr);
    r
}

/// A hand-made server on `server` that, for the first query, sends garbage, an answer with the
/// wrong ID and (from another port) one with the right ID, then the real answer.
fn spoofed_then_real(server: &str) {
    let stack = tun_stack_with(StackConfig { dns: vec![server.parse().unwrap()], ..StackConfig::default() });
    let sock = std::net::UdpSocket::bind((server, 53)).unwrap();
    let other = std::net::UdpSocket::bind((server, 5353)).unwrap();
    let fake = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        let q = &buf[..n];
        let id = u16::from_be_bytes([q[0], q[1]]);
        sock.send_to(&[0xff; 40], from).unwrap();
        sock.send_to(&q[..5], from).unwrap();
        sock.send_to(&forged_answer(q, id.wrapping_add(1), [6, 6, 6, 6]), from).unwrap();
        other.send_to(&forged_answer(q, id, [6, 6, 6, 7]), from).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        sock.send_to(&forged_answer(q, id, [10, 0, 0, 7]), from).unwrap();
    });
    let a = stack.lookup("web.test", netstack::proto::dns::RecordType::A).unwrap();
    assert_eq!(a.addrs(), vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
    assert_eq!(stack.dns_stats().0, 1, "answered within the first try");
    fake.join().unwrap();
}

#[test]
fn spoofed_and_malformed_answers_are_ignored() {
    in_netns("spoofed_and_malformed_answers_are_ignored", || spoofed_then_real("10.0.0.1"));
}

#[test]
fn server_over_ipv6() {
    in_netns("server_over_ipv6", || spoofed_then_real("fd00::1"));
}
