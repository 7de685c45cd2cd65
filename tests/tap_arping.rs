//! Packet sockets and ARP on TAP: iputils-arping against the stack, the stack's `arping`
//! bin against the kernel, neighbour expiry and re-resolution (each in its own network
//! namespace, root), and packet sockets between two stacks on an in-memory Ethernet pair
//! (no root).

mod common;
use common::*;
use netstack::device::pair::{pair, FaultConfig, PairDevice};
use netstack::device::tap::{TapConfig, TapDevice};
use netstack::device::{DevRx, DevTx, Device, Medium};
use netstack::proto::link::neigh::NeighConfig;
use netstack::proto::link::{arp, packet, LinkConfig};
use netstack::wire::{ArpOperation, ArpRepr, EthernetAddress as Mac};
use netstack::{PacketSocket, Stack, StackConfig, UdpSocket};
use std::io::{self, ErrorKind};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

const ARP: u16 = 0x0806;
const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const STACK: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn tap_stack_with(cfg: StackConfig) -> Stack {
    let dev = TapDevice::open(&TapConfig::default()).expect("open tap0");
    Stack::new(Box::new(dev), cfg, netstack::log::discard()).expect("start stack")
}

fn link_stat(stack: &Stack, name: &str) -> u64 {
    let l = stack.stats.link.as_ref().expect("an Ethernet stack has link counters");
    l.snapshot().iter().find(|(k, _)| *k == name).unwrap().1
}

/// Upper-case, as iputils prints MACs.
fn mac_upper(m: Mac) -> String {
    m.0.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The kernel side's MAC of `dev`, from `ip -j link show` (upper-case).
fn kernel_mac(dev: &str) -> String {
    let (ok, out) = run("ip", &["-j", "link", "show", dev]);
    assert!(ok, "ip -j link show {dev}: {out}");
    let at = out.find("\"address\":\"").unwrap_or_else(|| panic!("no address in {out}")) + 11;
    out[at..at + 17].to_uppercase()
}

/// ARP frames received on `sock` until it has been quiet for `quiet`: (operation, sender
/// MAC, sender IP, target IP).
fn arp_seen(sock: &PacketSocket, quiet: Duration) -> Vec<(ArpOperation, Mac, Ipv4Addr, Ipv4Addr)> {
    sock.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 1600];
    let mut seen = Vec::new();
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                assert_eq!(u16::from_be_bytes([buf[12], buf[13]]), ARP, "an ARP socket got {:?}", &buf[..n]);
                let (op, sha, spa, _, tpa) = arp::parse(&buf[14..n]).expect("a well-formed ARP packet");
                seen.push((op, sha, spa, tpa));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return seen,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// iputils-arping asks the kernel side's tap0 for 10.0.0.2: three replies carrying the
/// stack's MAC; the stack's ARP packet socket sees the requests its link core answered.
#[test]
fn kernel_arping_gets_the_stack_mac() {
    in_netns("kernel_arping_gets_the_stack_mac", || {
        if !run("arping", &["-V"]).0 {
            assert!(!under_ci(), "iputils-arping is missing (.ci/run installs it)");
            eprintln!("SKIPPED kernel_arping_gets_the_stack_mac: no arping (apt-get install iputils-arping)");
            return;
        }
        let stack = tap_stack_with(StackConfig::default());
        let watch = PacketSocket::bind(&stack, Some(ARP)).unwrap();
        let mac = stack.mac().expect("a TAP stack has a MAC");
        assert_eq!(watch.local_mac(), mac);
        let (ok, out) = run("arping", &["-c", "3", "-I", "tap0", "10.0.0.2"]);
        assert!(ok, "arping exit status:\n{out}");
        let want = format!("Unicast reply from 10.0.0.2 [{}]", mac_upper(mac));
        assert_eq!(out.lines().filter(|l| l.starts_with(&want)).count(), 3, "{want}:\n{out}");
        assert!(out.contains("Received 3 response(s)"), "{out}");
        assert!(link_stat(&stack, "tx_arp_replies") >= 3);
        let kmac = kernel_mac("tap0");
        let requests = arp_seen(&watch, Duration::from_millis(300))
            .into_iter()
            .filter(|(op, sha, spa, tpa)| {
                *op == ArpOperation::Request && mac_upper(*sha) == kmac && *spa == KERNEL && *tpa == STACK
            })
            .count();
        assert_eq!(requests, 3, "the kernel's requests, copied although the link core consumed them");
    });
}

/// Run the arping bin with `args`; (exit code, stdout + stderr).
fn arping_bin(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_arping"))
        .args(["--log", "warn"])
        .args(args)
        .output()
        .expect("run the arping bin");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), s)
}

/// The bin against the kernel: the kernel's tap0 MAC in each reply, exit 0; an unused
/// address gets no reply, exit 1; without --tap, a clear error.
#[test]
fn arping_bin_to_the_kernel() {
    in_netns("arping_bin_to_the_kernel", || {
        // A persistent tap0 made here, so its MAC can be read before and after the bin.
        for args in [
            &["tuntap", "add", "dev", "tap0", "mode", "tap"][..],
            &["addr", "add", "10.0.0.1/24", "dev", "tap0"],
            &["link", "set", "tap0", "up"],
        ] {
            let (ok, out) = run("ip", args);
            assert!(ok, "ip {args:?}: {out}");
        }
        let kmac = kernel_mac("tap0");
        let t0 = Instant::now();
        let (code, out) = arping_bin(&["--tap", "--no-configure", "-c", "3", "-i", "0.2", "10.0.0.1"]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.starts_with("ARPING 10.0.0.1 from 10.0.0.2 tap0\n"), "{out}");
        let replies: Vec<&str> = out.lines().filter(|l| l.starts_with("Unicast reply from 10.0.0.1 [")).collect();
        assert_eq!(replies.len(), 3, "{out}");
        for l in &replies {
            assert!(l.contains(&format!("[{kmac}]  ")), "not the kernel's MAC {kmac}: {l}");
            let ms: f64 = l.rsplit("  ").next().unwrap().trim_end_matches("ms").parse().expect("an RTT");
            assert!(ms > 0.0 && ms < 1000.0, "{l}");
        }
        assert!(out.contains("Sent 3 probes (1 broadcast(s))\nReceived 3 response(s)\n"), "{out}");
        assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
        // Nobody at 10.0.0.99: every request broadcast, none answered, exit 1 (bounded).
        let t0 = Instant::now();
        let (code, out) = arping_bin(&["--tap", "--no-configure", "-c", "2", "-i", "0.2", "10.0.0.99"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("Sent 2 probes (2 broadcast(s))\nReceived 0 response(s)\n"), "{out}");
        assert!(!out.contains("reply from"), "{out}");
        assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
        // A deadline with a count waits for COUNT replies (iputils -w semantics).
        let (code, out) = arping_bin(&["--tap", "--no-configure", "-w", "3", "-c", "2", "-i", "0.2", "10.0.0.1"]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("Received 2 response(s)"), "{out}");
        // On TUN there is no ARP.
        let (code, out) = arping_bin(&["-c", "1", "10.0.0.1"]);
        assert_eq!(code, Some(2), "{out}");
        assert!(out.contains("--tap"), "{out}");
    });
}

/// Ctrl-C (SIGINT) stops an endless arping with the summary; exit 0 as replies came.
#[test]
fn arping_bin_interrupt_prints_summary() {
    in_netns("arping_bin_interrupt_prints_summary", || {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_arping"))
            .args(["--log", "warn", "--tap", "-i", "0.1", "10.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start arping");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut replies = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while replies < 3 && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("Unicast reply from 10.0.0.1 [") => replies += 1,
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
        let sent = rest.iter().find(|l| l.starts_with("Sent ")).expect("summary");
        let n: u32 = sent.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a count");
        assert!(n >= 3 && sent.ends_with(" probes (1 broadcast(s))"), "{sent}");
        let got = rest.iter().find(|l| l.starts_with("Received ")).expect("summary");
        let m: u32 = got.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a count");
        assert!(m >= 3 && m <= n, "{got} after {sent}");
    });
}

/// A UDP datagram to the kernel, read back on a kernel socket.
fn udp_to_kernel(sock: &UdpSocket, k: &std::net::UdpSocket, msg: &[u8]) {
    sock.send_to(msg, (KERNEL, 5000)).unwrap();
    let mut buf = [0u8; 256];
    let (n, from) = k.recv_from(&mut buf).expect("the datagram reaches the kernel");
    assert_eq!(&buf[..n], msg);
    assert_eq!(from.ip(), STACK);
}

/// Short neighbour timers: the kernel's entry goes STALE, then a send probes it (DELAY →
/// PROBE: a unicast request, answered); left unused it is collected, and the next send
/// resolves it again with a broadcast request. Every datagram arrives; a packet socket
/// sees the kernel's replies.
#[test]
fn arp_cache_expiry_and_re_resolution() {
    in_netns("arp_cache_expiry_and_re_resolution", || {
        let neigh = NeighConfig {
            reachable_time: Duration::from_millis(300),
            delay_first_probe: Duration::from_millis(200),
            gc_stale_time: Duration::from_millis(1500),
            ..NeighConfig::default()
        };
        let link = LinkConfig { mac: Mac([0x02, 0, 0, 0, 0, 0x02]), neigh, ..LinkConfig::default() };
        let stack = tap_stack_with(StackConfig { link: Some(link), ..StackConfig::default() });
        let watch = PacketSocket::bind(&stack, Some(ARP)).unwrap();
        let k = std::net::UdpSocket::bind("10.0.0.1:5000").unwrap();
        k.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let sock = UdpSocket::bind(&stack, "0.0.0.0:0").unwrap();
        let kmac = kernel_mac("tap0");
        let replies = |seen: Vec<(ArpOperation, Mac, Ipv4Addr, Ipv4Addr)>| {
            seen.iter()
                .filter(|(op, sha, spa, tpa)| {
                    *op == ArpOperation::Reply && mac_upper(*sha) == kmac && *spa == KERNEL && *tpa == STACK
                })
                .count()
        };
        let requests = || link_stat(&stack, "tx_arp_requests");
        let r0 = requests(); // the gratuitous ARP of start-up
        udp_to_kernel(&sock, &k, b"first: resolves");
        assert_eq!(requests(), r0 + 1, "one broadcast request");
        assert_eq!(replies(arp_seen(&watch, Duration::from_millis(100))), 1);
        // STALE after 300 ms; a send then goes out at once and probes 200 ms later.
        std::thread::sleep(Duration::from_millis(600));
        udp_to_kernel(&sock, &k, b"second: stale entry, probed");
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(requests(), r0 + 2, "one unicast probe");
        assert_eq!(replies(arp_seen(&watch, Duration::from_millis(100))), 1, "the probe answered");
        assert_eq!(link_stat(&stack, "neigh_probe_failed"), 0);
        // Unused: STALE after 300 ms, collected 1.5 s later; the next send resolves anew.
        let gc0 = link_stat(&stack, "neigh_gc");
        std::thread::sleep(Duration::from_millis(2500));
        assert!(link_stat(&stack, "neigh_gc") > gc0, "the stale entry was collected");
        udp_to_kernel(&sock, &k, b"third: re-resolved");
        assert_eq!(requests(), r0 + 3, "a new broadcast request");
        assert_eq!(replies(arp_seen(&watch, Duration::from_millis(100))), 1);
        assert_eq!(link_stat(&stack, "neigh_resolve_failed"), 0);
        assert_eq!(link_stat(&stack, "neigh_unresolved_dropped"), 0);
    });
}

// ------------------------------------------------------------ two stacks, no root

/// A pair device that says it carries Ethernet frames: two stacks with link layers.
struct EthPair(PairDevice);

impl Device for EthPair {
    fn mtu(&self) -> usize {
        self.0.mtu()
    }
    fn medium(&self) -> Medium {
        Medium::Ethernet
    }
    fn split(self: Box<Self>) -> io::Result<(Box<dyn DevRx>, Box<dyn DevTx>)> {
        Box::new(self.0).split()
    }
}

const MAC_A: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
const MAC_B: Mac = Mac([0x02, 0, 0, 0, 0, 0x0b]);

/// A (10.0.0.2, MAC_A) and B (10.0.0.1, MAC_B) on an Ethernet pair.
fn eth_pair(packet_queue_bytes: usize) -> (Stack, Stack) {
    let (da, db) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let link = |mac| Some(LinkConfig { mac, packet_queue_bytes, ..LinkConfig::default() });
    let a = Stack::new(
        Box::new(EthPair(da)),
        StackConfig { link: link(MAC_A), ..StackConfig::default() },
        netstack::log::discard(),
    );
    let b =
        Stack::new(Box::new(EthPair(db)), StackConfig { link: link(MAC_B), ..peer_config() }, netstack::log::discard());
    (a.unwrap(), b.unwrap())
}

/// An ARP request from `mac`/`spa` for `tpa`, broadcast.
fn who_has(mac: Mac, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let req = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: spa,
        target_hardware_addr: Mac([0; 6]),
        target_protocol_addr: tpa,
    };
    arp::arp_frame(Mac([0xff; 6]), mac, &req)
}

/// A request sent through A's packet socket is answered by B's link core; B's packet
/// socket sees the request too. Argument errors are InvalidInput; TUN is Unsupported.
#[test]
fn packet_sockets_between_two_stacks() {
    let (a, b) = eth_pair(256 << 10);
    assert_eq!((a.mac(), b.mac()), (Some(MAC_A), Some(MAC_B)));
    let sa = PacketSocket::bind(&a, Some(ARP)).unwrap();
    let sb = PacketSocket::bind(&b, Some(ARP)).unwrap();
    // Start-up noise (gratuitous ARP) first.
    arp_seen(&sa, Duration::from_millis(200));
    arp_seen(&sb, Duration::from_millis(50));
    let req = who_has(MAC_A, STACK, KERNEL);
    assert_eq!(sa.send(&req).unwrap(), req.len());
    sa.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1600];
    let (n, from) = sa.recv_from(&mut buf).expect("B answers");
    assert_eq!(from, MAC_B);
    assert_eq!(&buf[..6], &MAC_A.0, "unicast to A");
    assert_eq!(arp::parse(&buf[14..n]), Some((ArpOperation::Reply, MAC_B, KERNEL, MAC_A, STACK)));
    let at_b = arp_seen(&sb, Duration::from_millis(200));
    assert_eq!(at_b, vec![(ArpOperation::Request, MAC_A, STACK, KERNEL)], "B's socket sees what B's core answered");
    // Bad frames: clear errors, nothing sent.
    assert_eq!(sa.send(&req[..13]).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(sa.send(&vec![0u8; 1515]).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(sa.send(&vec![0u8; 1514]).is_ok(), "MTU + 14 is allowed");
    assert_eq!(PacketSocket::bind(&a, Some(0x05dc)).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(sa.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(), ErrorKind::InvalidInput);
    // TUN (a plain pair): no frames, a clear error.
    let (t, _u) = stack_pair(FaultConfig::default(), FaultConfig::default());
    assert_eq!(t.mac(), None);
    let e = PacketSocket::bind(&t, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(e.to_string(), "netstack: packet sockets need an Ethernet (TAP) device");
}

/// B floods A with 3000 full-size frames of an EtherType A's core does not speak; A's
/// socket for it never reads during the flood: its queue stays within the bound, the rest
/// is counted, and what was queued is all there afterwards.
#[test]
fn packet_socket_flood_is_bounded() {
    const LIMIT: usize = 64 << 10;
    const ET: u16 = 0x88b5; // IEEE 802 local experimental
    let (a, b) = eth_pair(LIMIT);
    let sink = PacketSocket::bind(&a, Some(ET)).unwrap();
    let src = PacketSocket::bind(&b, None).unwrap();
    let mut frame = vec![0u8; 1514];
    frame[..6].copy_from_slice(&MAC_A.0);
    frame[6..12].copy_from_slice(&MAC_B.0);
    frame[12..14].copy_from_slice(&ET.to_be_bytes());
    let mut max_seen = 0;
    for i in 0..3000u32 {
        frame[14..18].copy_from_slice(&i.to_be_bytes());
        src.send(&frame).unwrap();
        max_seen = max_seen.max(sink.queued_bytes());
        if i % 256 == 0 {
            std::thread::sleep(Duration::from_millis(2)); // let the link drain now and then
        }
    }
    // Wait for the flood to settle (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    let total = || link_stat(&a, "rx_unknown_ethertype");
    let mut last = (total(), Instant::now());
    while Instant::now() < deadline && last.1.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(20));
        if total() != last.0 {
            last = (total(), Instant::now());
        }
    }
    let (copies, full) = (link_stat(&a, "rx_packet_copies"), link_stat(&a, "rx_packet_queue_full"));
    let arrived = total();
    eprintln!(
        "flood: {arrived} frames reached A, {copies} queued (bound {LIMIT} B), {full} dropped, peak {max_seen} B"
    );
    assert!(arrived > 100, "the flood reached A: {arrived}");
    assert_eq!(copies + full, arrived, "each flood frame copied or counted");
    let fits = LIMIT as u64 / packet::charge(1514);
    assert_eq!(copies, fits, "exactly what the bound holds");
    assert!(max_seen <= LIMIT as u64 && sink.queued_bytes() <= LIMIT as u64);
    sink.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 2048];
    let mut read = 0;
    while let Ok(n) = sink.recv(&mut buf) {
        assert_eq!((n, &buf[12..14]), (1514, &ET.to_be_bytes()[..]));
        read += 1;
    }
    assert_eq!(read, copies);
    assert_eq!(sink.queued_bytes(), 0, "reading gave every byte back");
    // Room again: the next frame is delivered.
    src.send(&frame).unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(sink.recv(&mut buf).unwrap(), 1514);
}

/// A frame a packet socket has read is already counted in `rx_packet_copies`, as the ip
/// layer's counters are published before anything a batch produced leaves the actor.
/// B sends bursts (one batch each at A); A's reader spins on its queue, so it reads a
/// frame the moment it is queued and checks the counter at once.
#[test]
fn a_frame_read_from_a_packet_socket_is_already_counted() {
    const ET: u16 = 0x88b5; // IEEE 802 local experimental
    const BURSTS: u32 = 20;
    const BURST: u32 = 48;
    let (a, b) = eth_pair(4 << 20);
    let sink = PacketSocket::bind(&a, Some(ET)).unwrap();
    let src = PacketSocket::bind(&b, None).unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut frame = vec![0u8; 1514];
    frame[..6].copy_from_slice(&MAC_A.0);
    frame[6..12].copy_from_slice(&MAC_B.0);
    frame[12..14].copy_from_slice(&ET.to_be_bytes());
    let mut buf = [0u8; 2048];
    let (mut read, mut early) = (0u64, Vec::new());
    for burst in 0..BURSTS {
        for i in 0..BURST {
            frame[14..18].copy_from_slice(&(burst * BURST + i).to_be_bytes());
            src.send(&frame).unwrap();
        }
        for _ in 0..BURST {
            let deadline = Instant::now() + Duration::from_secs(2);
            while sink.queued_bytes() == 0 && Instant::now() < deadline {
                std::hint::spin_loop();
            }
            assert_eq!(sink.recv(&mut buf).expect("every frame arrives"), 1514);
            read += 1;
            let counted = link_stat(&a, "rx_packet_copies");
            if counted < read {
                early.push((read, counted));
            }
        }
    }
    assert_eq!(link_stat(&a, "rx_packet_queue_full"), 0);
    assert!(early.is_empty(), "frames read before they were counted (read, counted): {early:?}");
}
