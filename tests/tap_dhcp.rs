//! The DHCP client against a real server: `dnsmasq` on the kernel side of tap0 (10.0.0.1/24),
//! in the test's own network namespace (root; skipped with a reason elsewhere, a failure
//! under CI=true, where .ci/run installs dnsmasq). dnsmasq's lease file shows each step:
//! the lease, its renewal at T1, its release when the stack stops.

mod common;
use common::*;
use netstack::device::pair::{pair, FaultConfig};
use netstack::device::tap::{TapConfig, TapDevice};
use netstack::{Stack, StackConfig, TcpStream};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// T1 dnsmasq hands out (its shortest lease is 2 minutes; T1 may be shorter).
const T1_SECS: u64 = 5;

/// dnsmasq serving DHCP (10.0.0.50–99, 2 min leases, T1 5 s, router and DNS 10.0.0.1) and
/// DNS (gw.test → 10.0.0.1) on tap0, with its lease file and log in temporary files; killed
/// by its PID when dropped.
struct Dnsmasq {
    child: Child,
    leases: std::path::PathBuf,
    log: std::path::PathBuf,
}

fn have_dnsmasq(test: &str) -> bool {
    if run("dnsmasq", &["--version"]).0 {
        return true;
    }
    assert!(!under_ci(), "{test}: dnsmasq is not installed (.ci/run installs it)");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: dnsmasq is not installed (apt-get install dnsmasq)");
    false
}

impl Dnsmasq {
    fn start() -> Dnsmasq {
        let dir = std::env::temp_dir();
        let tag = format!("netstack-dhcp-{}", std::process::id());
        let leases = dir.join(format!("{tag}.leases"));
        let log = dir.join(format!("{tag}.log"));
        let pid = dir.join(format!("{tag}.pid"));
        for f in [&leases, &log] {
            let _ = std::fs::remove_file(f);
        }
        let child = Command::new("dnsmasq")
            .args(["--no-daemon", "--port=53", "--interface=tap0", "--bind-interfaces"])
            .args(["--no-resolv", "--no-hosts", "--user=root", "--group=root", "--log-dhcp", "--log-queries"])
            .arg("--dhcp-range=10.0.0.50,10.0.0.99,255.255.255.0,2m")
            .arg("--dhcp-option=option:router,10.0.0.1")
            .arg("--dhcp-option=option:dns-server,10.0.0.1")
            .arg(format!("--dhcp-option=option:T1,{T1_SECS}"))
            .arg("--host-record=gw.test,10.0.0.1")
            .arg("--local=/test/")
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .arg(format!("--log-facility={}", log.display()))
            .arg(format!("--pid-file={}", pid.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run dnsmasq (apt-get install dnsmasq)");
        let d = Dnsmasq { child, leases, log };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !d.log_text().contains("DHCP, IP range") {
            assert!(Instant::now() < deadline, "dnsmasq did not start: {}", d.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The lease file's line for `mac`: (expiry in Unix seconds, address).
    fn lease_of(&self, mac: &str) -> Option<(u64, Ipv4Addr)> {
        let text = std::fs::read_to_string(&self.leases).unwrap_or_default();
        let line = text.lines().find(|l| l.split(' ').nth(1) == Some(mac))?;
        let f: Vec<&str> = line.split(' ').collect();
        Some((f[0].parse().ok()?, f.get(2)?.parse().ok()?))
    }

    /// Wait up to `limit` for `f` to hold of the lease file's entry for `mac`.
    fn wait_lease(&self, mac: &str, limit: Duration, f: impl Fn(Option<(u64, Ipv4Addr)>) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if f(self.lease_of(mac)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for f in [&self.leases, &self.log] {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn dhcp_config() -> StackConfig {
    StackConfig { dhcp: true, ..StackConfig::default() }
}

#[test]
fn lease_renew_dns_and_release_against_dnsmasq() {
    if !have_dnsmasq("lease_renew_dns_and_release_against_dnsmasq") {
        return;
    }
    in_netns("lease_renew_dns_and_release_against_dnsmasq", || {
        // tap0 first (dnsmasq binds to its address), then the server, then the stack.
        let dev = TapDevice::open(&TapConfig::default()).expect("open tap0");
        let dns = Dnsmasq::start();
        let t0 = Instant::now();
        let stack = Stack::new(Box::new(dev), dhcp_config(), netstack::log::discard()).expect("start stack");
        let mac = stack.config().link.as_ref().unwrap().mac;
        let mac = mac.0.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        assert!(stack.lease().is_none(), "no lease before the server answered");

        // 1. A lease in the range, with the options dnsmasq was given.
        let l = stack.wait_dhcp(Duration::from_secs(10)).unwrap_or_else(|e| {
            let link = stack.stats.link.as_ref().unwrap().snapshot();
            let ip = stack.stats.ip.snapshot();
            let nz = |v: Vec<(&'static str, u64)>| v.into_iter().filter(|x| x.1 > 0).collect::<Vec<_>>();
            panic!("{e}: {:?}\nip {:?}\nlink {:?}\nlog:\n{}", stack.dhcp_stats(), nz(ip), nz(link), dns.log_text())
        });
        let took = t0.elapsed();
        eprintln!("lease {l:?} after {took:?}");
        let host = u32::from(l.addr) - u32::from(Ipv4Addr::new(10, 0, 0, 0));
        assert!((50..=99).contains(&host), "{} is not in 10.0.0.50–99", l.addr);
        assert_eq!((l.prefix, l.gateway, l.server), (24, Some(Ipv4Addr::new(10, 0, 0, 1)), Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(l.dns, vec![Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!((l.lease, l.t1), (Some(Duration::from_secs(120)), Some(Duration::from_secs(T1_SECS))));
        assert!(dns.wait_lease(&mac, Duration::from_secs(2), |e| e.is_some_and(|(_, a)| a == l.addr)), "lease file");
        let (expiry0, _) = dns.lease_of(&mac).unwrap();

        // 2. The kernel reaches the leased address (it ARPs for it; we answer for it now).
        let (ok, out) = run("ping", &["-c", "3", "-i", "0.2", "-W", "2", &l.addr.to_string()]);
        assert!(ok && out.contains(" 0% packet loss"), "ping {}:\n{out}", l.addr);

        // 3. The resolver asks the server the lease named (no --dns was given), and TCP
        //    connects from the leased address.
        assert!(stack.config().dns.is_empty());
        let addrs = stack.resolve("gw.test").unwrap_or_else(|e| panic!("resolve: {e}; log:\n{}", dns.log_text()));
        assert_eq!(addrs, vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]);
        let listener = std::net::TcpListener::bind("10.0.0.1:3000").unwrap();
        let mut s = TcpStream::connect(&stack, "gw.test:3000").expect("connect by name over the lease");
        let (mut k, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(l.addr), "the connection comes from the leased address");
        s.write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        k.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
        drop((s, k));

        // 4. At T1 the client renews (unicast to the server): the lease file's expiry moves on.
        let renewed = |st: &Stack| st.dhcp_stats().is_some_and(|s| s.renewals >= 1);
        let deadline = t0 + Duration::from_secs(T1_SECS + 5);
        while !renewed(&stack) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let stats = stack.dhcp_stats().unwrap();
        assert!(renewed(&stack), "no renewal by T1 + 5 s: {stats:?}\n{}", dns.log_text());
        assert_eq!((stats.leases, stats.rx_nak, stats.rebinds), (1, 0, 0), "{stats:?}");
        assert!(
            dns.wait_lease(&mac, Duration::from_secs(2), |e| e.is_some_and(|(x, a)| x > expiry0 && a == l.addr)),
            "expiry did not move past {expiry0}: {:?}",
            dns.lease_of(&mac)
        );
        assert_eq!(stack.lease().unwrap().addr, l.addr, "the renewal kept the address");
        eprintln!("renewed: expiry {expiry0} -> {:?}; stats {stats:?}", dns.lease_of(&mac));

        // 5. Stopping the stack releases the lease: dnsmasq forgets it.
        let t = Instant::now();
        drop(stack);
        eprintln!("stack stopped in {:?}", t.elapsed());
        assert!(
            dns.wait_lease(&mac, Duration::from_secs(2), |e| e.is_none()),
            "the lease file still lists {mac}:\n{}",
            dns.log_text()
        );
        assert!(dns.log_text().contains("DHCPRELEASE"), "{}", dns.log_text());
    });
}

/// A static IPv4 gateway with DHCP is refused by `Stack::new` as the builder refuses it, with
/// the reason (before, `Stack::new` cleared the addresses for the lease and then called the
/// gateway "not on a connected subnet").
#[test]
fn dhcp_with_a_static_ipv4_gateway_is_a_config_error() {
    let (a, _b) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let mut cfg = dhcp_config();
    cfg.ip.gateway4 = Some("10.0.0.1".parse().unwrap());
    let e = Stack::new(Box::new(EthPair(a)), cfg, netstack::log::discard()).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("DHCP gives the IPv4 gateway"), "{e}");
}

/// DHCP needs link-level broadcast: on an IP device (TUN, or the in-memory pair) the stack
/// refuses the configuration, clearly.
#[test]
fn dhcp_on_an_ip_device_is_a_config_error() {
    let (a, _b) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let e = Stack::new(Box::new(a), dhcp_config(), netstack::log::discard()).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("TAP"), "{e}");
}

// ------------------------------------------- a hand-rolled server, no root (review 24)

/// A pair device that says it carries Ethernet frames (as in tests/tap_arping.rs).
struct EthPair(netstack::device::pair::PairDevice);

impl netstack::device::Device for EthPair {
    fn mtu(&self) -> usize {
        self.0.mtu()
    }
    fn medium(&self) -> netstack::device::Medium {
        netstack::device::Medium::Ethernet
    }
    fn split(self: Box<Self>) -> std::io::Result<(Box<dyn netstack::device::DevRx>, Box<dyn netstack::device::DevTx>)> {
        Box::new(self.0).split()
    }
}

/// REVIEW24 FINDING (fails on main b1f21ad): a RELEASE to a server off the link (reached
/// through a relay; its server identifier is not on our subnet) leaves through the router,
/// but the shutdown waited for the *server's* MAC to be known before it called the RELEASE
/// gone. That never happens, so every stop waited the whole `RELEASE_WAIT` (1 s) and then
/// skipped `RELEASE_GRACE`, as if the RELEASE had not left. Here B (10.0.0.1, the router)
/// plays the relayed server on port 67; the client A must stop well inside `RELEASE_WAIT`
/// and B must see the RELEASE framed to its MAC.
#[test]
fn release_to_an_off_link_server_leaves_through_the_router_at_once() {
    use netstack::proto::dhcp::wire::{self, MessageType};
    use netstack::proto::link::LinkConfig;
    use netstack::wire::EthernetAddress as Mac;
    use netstack::{PacketSocket, UdpSocket};
    let server_id = Ipv4Addr::new(192, 0, 2, 67); // off-link: behind the router
    let (router, leased) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 57));
    let (da, db) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let (mac_a, mac_b) = (Mac([2, 0, 0, 0, 0, 0x0a]), Mac([2, 0, 0, 0, 0, 0x0b]));
    let link = |mac| Some(LinkConfig { mac, ..LinkConfig::default() });
    let mut cb = StackConfig { link: link(mac_b), ..StackConfig::default() };
    cb.ip.v4 = vec![router];
    let b = Stack::new(Box::new(EthPair(db)), cb, netstack::log::discard()).expect("router stack");
    let srv = UdpSocket::bind(&b, "0.0.0.0:67").expect("bind 67");
    srv.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let watch = PacketSocket::bind(&b, Some(0x0800)).expect("packet socket");
    let ca = StackConfig { dhcp: true, link: link(mac_a), ..StackConfig::default() };
    let a = Stack::new(Box::new(EthPair(da)), ca, netstack::log::discard()).expect("client stack");
    // DISCOVER → OFFER, REQUEST → ACK, broadcast (the client set the BROADCAST flag).
    let mut buf = [0u8; 1500];
    for (want, answer) in [(MessageType::Discover, MessageType::Offer), (MessageType::Request, MessageType::Ack)] {
        let (n, _) = srv.recv_from(&mut buf).expect("a client message");
        let m = wire::parse(&buf[..n]).expect("a DHCP message");
        assert_eq!(m.message_type, want);
        let mut r = wire::DhcpRepr::new(answer, m.xid, m.chaddr);
        r.yiaddr = leased;
        r.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
        r.router = Some(router);
        r.server_id = Some(server_id);
        r.lease_time = Some(3600);
        srv.send_to(&r.to_bytes(), "255.255.255.255:68").expect("answer");
    }
    let l = a.wait_dhcp(Duration::from_secs(5)).expect("a lease");
    assert_eq!((l.addr, l.gateway, l.server), (leased, Some(router), server_id));
    watch.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    while watch.recv(&mut buf).is_ok() {} // what came before the stop
    let t = Instant::now();
    drop(a);
    let took = t.elapsed();
    // The RELEASE, unicast to the server through the router's MAC.
    watch.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut released = false;
    while let Ok(n) = watch.recv(&mut buf) {
        let f = &buf[..n];
        let to_server = n > 14 + 20 + 8 && f[..6] == mac_b.0 && f[14 + 16..14 + 20] == server_id.octets();
        if to_server && wire::parse(&f[14 + 28..]).is_ok_and(|m| m.message_type == MessageType::Release) {
            released = true;
        }
    }
    assert!(released, "no RELEASE to {server_id} through the router");
    assert!(took < Duration::from_millis(600), "the stop took {took:?}: it waited for {server_id}'s MAC");
}
