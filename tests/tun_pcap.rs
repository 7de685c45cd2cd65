//! `--pcap`: a capture of a TUN stack's traffic (pings, a UDP echo, a 1 MiB TCP transfer) that
//! `tcpdump -r` reads, with exactly as many packets as the stack's own counters say crossed
//! the device; and the bin's `--pcap` flag. Root, own namespace.

mod common;
use common::*;
use netstack::device::capture::{Capture, CaptureDevice};
use netstack::device::tun::{TunConfig, TunDevice};
use netstack::device::Medium;
use netstack::{Stack, StackConfig, TcpListener, UdpSocket};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// `tcpdump -n -r file [filter]`'s packet lines.
fn tcpdump_lines(file: &std::path::Path, filter: &[&str]) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(file)
        .args(filter)
        .stderr(Stdio::piped())
        .output()
        .expect("run tcpdump");
    assert!(out.status.success(), "tcpdump -r: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn pcap_of_a_tun_stack_matches_its_counters() {
    in_netns("pcap_of_a_tun_stack_matches_its_counters", || {
        let dir = std::env::temp_dir().join(format!("netstack-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tun.pcap");
        let cap = Capture::create(&file, Medium::Ip).expect("create pcap");
        let dev = TunDevice::open(&TunConfig::default()).expect("open tun0");
        let stack = Stack::new(
            Box::new(CaptureDevice::new(Box::new(dev), cap.clone())),
            StackConfig::default(),
            netstack::log::discard(),
        )
        .expect("start stack");
        let (ok, out) = run("ping", &["-c", "3", "-i", "0.2", "-W", "2", "10.0.0.2"]);
        assert!(ok, "{out}");

        let udp = UdpSocket::bind(&stack, "0.0.0.0:7").unwrap();
        let k = std::net::UdpSocket::bind("10.0.0.1:0").unwrap();
        k.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..10u8 {
            k.send_to(&[i; 100], "10.0.0.2:7").unwrap();
            let (n, from) = udp.recv_from(&mut buf).unwrap();
            udp.send_to(&buf[..n], from).unwrap();
            let n = k.recv(&mut buf).expect("echo");
            assert_eq!(&buf[..n], &[i; 100]);
        }

        let l = TcpListener::bind(&stack, "0.0.0.0:3000").unwrap();
        let data = pattern(1 << 20, 7);
        let sent = data.clone();
        let client = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect("10.0.0.2:3000").unwrap();
            c.write_all(&sent).unwrap();
        });
        let (mut s, _) = l.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        client.join().unwrap();
        assert_eq!(sha256_hex(&got), sha256_hex(&data), "{} bytes", got.len());
        drop(s);
        std::thread::sleep(Duration::from_millis(300)); // the FIN exchange ends

        let ip = &stack.stats.ip;
        let (rx, ip_tx) = (ip.load().rx_packets, ip.load().tx_packets);
        let tcp_tx = stack.stats.tcp.load().segments_out;
        drop(stack);
        let written = cap.packets.load(Relaxed);
        assert_eq!(cap.errors.load(Relaxed), 0);
        let all = tcpdump_lines(&file, &[]);
        let to_us =
            tcpdump_lines(&file, &["dst", "host", "10.0.0.2", "or", "dst", "host", "fd00::2", "or", "dst", "fe80::2"]);
        println!("pcap: {} packets ({} to us); stack: rx {rx}, ip tx {ip_tx}, tcp tx {tcp_tx}", all.len(), to_us.len());
        assert_eq!(all.len() as u64, written, "tcpdump reads every packet written");
        assert!(all.len() > 700, "a 1 MiB transfer is hundreds of packets: {}", all.len());
        assert_eq!(all.len() as u64, rx + ip_tx + tcp_tx, "the capture holds what the counters say crossed the device");
        assert!(all.iter().filter(|l| l.contains("ICMP echo reply")).count() >= 3, "{all:?}");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// The bins' `--pcap FILE`: the `ping` bin's echo requests and the kernel's replies are in the
/// file.
#[test]
fn ping_bin_pcap_flag() {
    in_netns("ping_bin_pcap_flag", || {
        let file = std::env::temp_dir().join(format!("netstack-ping-{}.pcap", std::process::id()));
        let out = Command::new(env!("CARGO_BIN_EXE_ping"))
            .args(["-c", "3", "-i", "0.2", "-W", "2", "--log", "warn", "--pcap"])
            .arg(&file)
            .arg("10.0.0.1")
            .output()
            .expect("run ping");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        let lines = tcpdump_lines(&file, &["icmp"]);
        let requests = lines.iter().filter(|l| l.contains("10.0.0.2 > 10.0.0.1: ICMP echo request")).count();
        let replies = lines.iter().filter(|l| l.contains("10.0.0.1 > 10.0.0.2: ICMP echo reply")).count();
        assert_eq!((requests, replies), (3, 3), "{lines:?}");
        let _ = std::fs::remove_file(&file);
    });
}
