//! The Linux kernel as the peer, through tun0, each test in its own network namespace.
//! Needs root; skipped with a message elsewhere, a failure under CI=true.

mod common;
use common::*;
use netstack::UdpSocket;
use std::io::ErrorKind;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ping_no_loss(target: &str, v6: bool) {
    warm_up(target, v6);
    let mut args = vec!["-c", "10", "-i", "0.05", "-W", "2", target];
    if v6 {
        args.insert(0, "-6");
    }
    let (ok, out) = run("ping", &args);
    assert!(ok, "ping {target} failed:\n{out}");
    assert!(out.contains(" 0% packet loss"), "ping {target} lost packets:\n{out}");
    assert!(out.contains("10 received"), "{out}");
}

#[test]
fn kernel_ping_v4_and_v6() {
    in_netns("kernel_ping_v4_and_v6", || {
        let stack = tun_stack();
        ping_no_loss("10.0.0.2", false);
        ping_no_loss("fd00::2", true);
        ping_no_loss("fe80::2%tun0", true);
        // Large pings are fragmented by the kernel and reassembled by us; our reply is
        // fragmented by us and reassembled by the kernel.
        let (ok, out) = run("ping", &["-c", "3", "-i", "0.1", "-W", "2", "-s", "4000", "10.0.0.2"]);
        assert!(ok && out.contains(" 0% packet loss"), "{out}");
        let (ok, out) = run("ping", &["-6", "-c", "3", "-i", "0.1", "-W", "2", "-s", "4000", "fd00::2"]);
        assert!(ok && out.contains(" 0% packet loss"), "{out}");
        let snap = stack.stats.ip.snapshot();
        let get = |k: &str| snap.iter().find(|(n, _)| *n == k).unwrap().1;
        assert!(get("tx_echo_replies") >= 36);
        assert!(get("rx_reassembled") >= 6);
        assert_eq!(get("rx_bad_checksum"), 0);
    });
}

/// Unwrap `r`, or fail with the stack's counters (a lost datagram is rare and needs them).
fn or_stats<T>(r: std::io::Result<T>, stack: &netstack::Stack, what: &str) -> T {
    r.unwrap_or_else(|e| {
        panic!(
            "{what}: {e}; ip {:?}; dev_tx_dropped {}; inbox drops ip {} tcp {}",
            stack.stats.ip.snapshot(),
            stack.stats.dev_tx_dropped.load(std::sync::atomic::Ordering::Relaxed),
            stack.stats.ip_inbox.dropped(),
            stack.stats.tcp_inbox.dropped()
        )
    })
}

fn kernel_udp_exchange(ours: &str, kernel: &str, dest: &str) {
    let stack = tun_stack();
    let us = UdpSocket::bind(&stack, ours).unwrap();
    us.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let k = std::net::UdpSocket::bind(kernel).unwrap();
    k.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 70_000];
    let mut kbuf = vec![0u8; 70_000];
    // First datagram after attach may be lost: retry the first exchange.
    let mut first_ok = false;
    for _ in 0..5 {
        k.send_to(b"hello", dest).unwrap();
        us.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        if let Ok((n, _)) = us.recv_from(&mut buf) {
            first_ok = n == 5;
            break;
        }
    }
    assert!(first_ok, "no datagram from the kernel");
    us.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for (i, size) in [1usize, 2, 100, 1000, 1472, 1473, 2000, 4000, 8000].into_iter().enumerate() {
        // kernel -> us
        let data = pattern(size, i as u8);
        k.send_to(&data, dest).unwrap();
        let (n, from) = or_stats(us.recv_from(&mut buf), &stack, &format!("kernel->us size {size}"));
        assert_eq!(&buf[..n], &data[..], "kernel->us size {size}");
        assert_eq!(from, k.local_addr().unwrap());
        // us -> kernel
        let back = pattern(size, 100 + i as u8);
        us.send_to(&back, from).unwrap();
        let (n, kfrom) = or_stats(k.recv_from(&mut kbuf), &stack, &format!("us->kernel size {size}"));
        assert_eq!(&kbuf[..n], &back[..], "us->kernel size {size}");
        assert_eq!(kfrom.port(), us.local_addr().unwrap().port());
    }
}

#[test]
fn kernel_udp_v4_both_ways() {
    in_netns("kernel_udp_v4_both_ways", || kernel_udp_exchange("0.0.0.0:9000", "10.0.0.1:0", "10.0.0.2:9000"));
}

#[test]
fn kernel_udp_v6_both_ways() {
    in_netns("kernel_udp_v6_both_ways", || kernel_udp_exchange("[::]:9000", "[fd00::1]:0", "[fd00::2]:9000"));
}

#[test]
fn kernel_connected_udp_gets_connection_refused() {
    in_netns("kernel_connected_udp_gets_connection_refused", || {
        let stack = tun_stack();
        warm_up("10.0.0.2", false);
        for (bind, dest) in [("10.0.0.1:0", "10.0.0.2:9999"), ("[fd00::1]:0", "[fd00::2]:9999")] {
            let k = std::net::UdpSocket::bind(bind).unwrap();
            k.connect(dest).unwrap();
            k.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            k.send(b"anyone there?").unwrap();
            let mut b = [0u8; 64];
            let e = k.recv(&mut b).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{dest}: {e}; ip {:?}", stack.stats.ip.snapshot());
        }
        // And the other way: our connected socket, the kernel's closed port.
        let us = UdpSocket::bind(&stack, "0.0.0.0:0").unwrap();
        us.connect("10.0.0.1:9999").unwrap();
        us.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        us.send(b"x").unwrap();
        let mut b = [0u8; 64];
        assert_eq!(us.recv(&mut b).unwrap_err().kind(), ErrorKind::ConnectionRefused);
    });
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_iface() {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if netstack::device::sys::interface_exists("tun0") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("tun0 did not appear");
}

#[test]
fn udp_test_py_against_udp_echo_bin() {
    in_netns("udp_test_py_against_udp_echo_bin", || {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/udp_test.py");
        for (args, target) in
            [(vec![], vec!["10.0.0.2"]), (vec!["v6"], vec!["fd00::2", "v6"]), (vec!["--v6"], vec!["fe80::2", "v6"])]
        {
            let child = Command::new(env!("CARGO_BIN_EXE_udp_echo"))
                .args(&args)
                .args(["--log", "warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("start udp_echo");
            let _guard = Killed(child);
            wait_for_iface();
            warm_up(if args.is_empty() { "10.0.0.2" } else { "fd00::2" }, !args.is_empty());
            let (ok, out) = run("python3", &[&[script], &target[..]].concat());
            assert!(ok, "udp_test.py {target:?} failed:\n{out}");
            assert!(out.contains("15 passed, 0 failed"), "{out}");
            drop(_guard);
            // The device goes away with the process.
            let deadline = Instant::now() + Duration::from_secs(5);
            while netstack::device::sys::interface_exists("tun0") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
}

/// Run `bin` as uid 65534 with the usual world-accessible /dev/net/tun (mode 0666 on most
/// distributions; this machine's is 0600), given to it through a private mount namespace that
/// ends with the process.
fn as_nobody(bin: &str, args: &[&str]) -> Command {
    as_nobody_with_node(bin, "666", args)
}

/// [`as_nobody`] with `/dev/net/tun` of mode `mode`.
fn as_nobody_with_node(bin: &str, mode: &str, args: &[&str]) -> Command {
    let mut c = Command::new("unshare");
    let script = format!(
        "mount -t tmpfs none /dev/net && mknod -m {mode} /dev/net/tun c 10 200 && exec setpriv --reuid=65534 \
         --regid=65534 --clear-groups \"$@\""
    );
    c.args(["-m", "sh", "-c", &script, "sh", bin]).args(args);
    c
}

#[test]
fn unprivileged_on_a_premade_device_and_clear_errors() {
    in_netns("unprivileged_on_a_premade_device_and_clear_errors", || {
        let bin = env!("CARGO_BIN_EXE_netstack");
        // Without privileges and without a device: a one-line error, exit code 1.
        let out = as_nobody(bin, &["--log", "off"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("creating tun0 needs root") && err.lines().count() == 1, "{err}");
        // Without access to /dev/net/tun (this machine's node, 0600; on others, as above).
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin, "--log", "off"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no permission to open /dev/net/tun") || err.contains("needs root"), "{err}");
        let out = as_nobody(bin, &["--no-configure", "--log", "off"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
        // A device node only root may open: the message says so, and what mode it needs.
        let out = as_nobody_with_node(bin, "600", &["--log", "off"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("mode 0600") && err.contains("chmod 0666"), "{err}");
        // A device made by root for uid 65534, configured by root, used unprivileged.
        for a in [
            &["tuntap", "add", "dev", "tun0", "mode", "tun", "user", "65534"][..],
            &["addr", "add", "10.0.0.1/24", "dev", "tun0"],
            &["link", "set", "tun0", "up"],
        ] {
            assert!(run("ip", a).0, "ip {a:?}");
        }
        // Its owner forgetting --no-configure: told to add it, not a bare RTNETLINK error.
        let out = as_nobody(bin, &["--log", "off"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("add --no-configure") && err.lines().count() == 1, "{err}");
        let child = as_nobody(bin, &["--no-configure", "--log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let guard = Killed(child);
        ping_no_loss("10.0.0.2", false);
        // Busy: a second attach to the same device fails clearly.
        let out = as_nobody(bin, &["--no-configure", "--log", "off"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("busy"), "{}", String::from_utf8_lossy(&out.stderr));
        drop(guard);
        assert!(run("ip", &["tuntap", "del", "dev", "tun0", "mode", "tun"]).0);
    });
}

/// What the stack sends for ping and UDP (large datagrams fragmented both ways) decodes in
/// tshark with good checksums and nothing malformed.
#[test]
fn capture_of_ping_and_udp_is_well_formed() {
    in_netns("capture_of_ping_and_udp_is_well_formed", || {
        let stack = tun_stack();
        warm_up("10.0.0.2", false);
        let pcap = std::env::temp_dir().join(format!("netstack-udpcap-{}.pcap", std::process::id()));
        let mut dump = Killed(
            Command::new("tcpdump")
                // A small snap length and a larger buffer give the capture ring room for a burst of
                // fragments (with the default 256 KiB snap length it holds about 8 packets).
                .args(["-i", "tun0", "-n", "-U", "--immediate-mode", "-s", "2048", "-B", "8192", "-w"])
                .arg(&pcap)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tcpdump"),
        );
        std::thread::sleep(Duration::from_millis(700));
        assert!(run("ping", &["-c", "3", "-i", "0.1", "-s", "3000", "10.0.0.2"]).0);
        assert!(run("ping", &["-6", "-c", "3", "-i", "0.1", "-s", "3000", "fd00::2"]).0);
        let us = UdpSocket::bind(&stack, "0.0.0.0:9100").unwrap();
        let us6 = UdpSocket::bind(&stack, "[::]:9100").unwrap();
        for (s, k, dst) in [(&us, "10.0.0.1:0", "10.0.0.2:9100"), (&us6, "[fd00::1]:0", "[fd00::2]:9100")] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let k = std::net::UdpSocket::bind(k).unwrap();
            k.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![0u8; 9000];
            for size in [10usize, 1472, 5000] {
                k.send_to(&pattern(size, 1), dst).unwrap();
                let (n, from) = s.recv_from(&mut buf).unwrap();
                s.send_to(&buf[..n], from).unwrap();
                assert_eq!(k.recv(&mut buf).unwrap(), size);
            }
            // and a closed port, for an ICMP error of ours in the capture
            k.send_to(b"x", dst.replace("9100", "9101")).unwrap();
        }
        let check = |filter: &str| -> usize {
            let out = Command::new("tshark")
                .args(["-n", "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-r"])
                .arg(&pcap)
                // Test bytes, not the printer protocol tshark knows port 9100 for.
                .args(["-d", "udp.port==9100,data", "-Y", filter])
                .output()
                .expect("tshark");
            assert!(out.status.success(), "tshark -Y {filter}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).lines().count()
        };
        let from_us = "(ip.src == 10.0.0.2 || ipv6.src == fd00::2)";
        let count = || {
            (
                check(&format!("{from_us} && (icmp.type == 0 || icmpv6.type == 129)")),
                check(&format!("{from_us} && udp && !icmp && !icmpv6")),
                check(&format!("{from_us} && (icmp.type == 3 || icmpv6.type == 1)")),
            )
        };
        // tcpdump writes as it goes (-U); read the live file until everything is there, so
        // stopping it cannot cut the capture short.
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut icmp_replies, mut udp, mut unreach) = count();
        while (icmp_replies < 6 || udp < 6 || unreach < 2) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            (icmp_replies, udp, unreach) = count();
        }
        let _ = Command::new("kill").args(["-INT", &dump.0.id().to_string()]).status();
        let _ = dump.0.wait();
        // Inside our ICMP errors the quoted kernel datagram may carry a partial checksum
        // (offload: it never crossed a wire), so UDP checksums and expert errors are judged on
        // our datagrams, and ICMP messages by their own checksum.
        let bad = check(&format!(
            "{from_us} && (ip.checksum.status#1 == \"Bad\" || icmp.checksum.status == \"Bad\" || \
             icmpv6.checksum.status == \"Bad\" || _ws.malformed || (!icmp && !icmpv6 && \
             (udp.checksum.status == \"Bad\" || _ws.expert.severity >= \"error\")))"
        ));
        if std::env::var("KEEP_PCAP").is_err() {
            let _ = std::fs::remove_file(&pcap);
        }
        assert!(icmp_replies >= 6, "echo replies in the capture: {icmp_replies}");
        assert!(udp >= 6, "our UDP datagrams in the capture: {udp}");
        assert!(unreach >= 2, "our port-unreachable errors in the capture: {unreach}");
        assert_eq!(bad, 0, "bad or malformed packets from us");
    });
}
