//! On a clean link nothing is lost and nothing retransmitted: a 64 MiB transfer each way
//! between the kernel and the stack over tun0 shows no drops on tun0 and no retransmission on
//! either side. With the TUN's default transmit queue (500 packets) a download overflowed it
//! about a thousand times (each drop repaired by a kernel fast retransmit), which a user
//! watching tcpdump sees as loss on a link that loses nothing.

mod common;
use common::*;
use netstack::TcpStream;
use std::io::{Read, Write};
use std::net::Shutdown;

const BYTES: usize = 64 << 20;

/// tun0's transmit drops (the kernel's queue towards the stack), from `ip -s link`.
fn tun_tx_dropped() -> u64 {
    let (ok, out) = run("ip", &["-s", "link", "show", "tun0"]);
    assert!(ok, "ip -s link: {out}");
    // The line after "TX: bytes packets errors dropped ..." holds the numbers.
    let mut lines = out.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with("TX:") {
            let nums: Vec<u64> = lines.next().unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect();
            return nums[3];
        }
    }
    panic!("no TX line in {out}");
}

/// A kernel counter (`file` "snmp" or "netstat", line prefix "Tcp:" or "TcpExt:") in this
/// thread's namespace.
fn kernel_counter(file: &str, prefix: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/thread-self/net/{file}")).expect("proc net");
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let i = names.split_whitespace().position(|n| n == name).expect(name);
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

fn kernel_retrans_segs() -> u64 {
    kernel_counter("snmp", "Tcp:", "RetransSegs")
}

fn kernel_loss_probes() -> u64 {
    kernel_counter("netstat", "TcpExt:", "TCPLossProbes")
}

fn transfer(download: bool) {
    let stack = tun_stack();
    warm_up("10.0.0.2", false);
    let l = std::net::TcpListener::bind("10.0.0.1:3000").unwrap();
    let data = pattern(BYTES, 7);
    let want = sha256_hex(&data);
    let kernel = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        if download {
            c.write_all(&data).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            String::new()
        } else {
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            assert_eq!(got.len(), BYTES, "bytes at the kernel");
            sha256_hex(&got)
        }
    });
    let (drops0, retrans0, probes0) = (tun_tx_dropped(), kernel_retrans_segs(), kernel_loss_probes());
    let mut s = TcpStream::connect(&stack, "10.0.0.1:3000").unwrap();
    if download {
        let mut got = Vec::with_capacity(BYTES);
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), BYTES, "bytes at the stack");
        assert_eq!(sha256_hex(&got), want, "download hash");
        drop(s);
        kernel.join().unwrap();
    } else {
        s.write_all(&pattern(BYTES, 7)).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(kernel.join().unwrap(), want, "upload hash");
    }
    let drops = tun_tx_dropped() - drops0;
    let kernel_rtx = kernel_retrans_segs() - retrans0;
    let probes = kernel_loss_probes() - probes0;
    let ours = stack.tcp_stats().retransmits;
    eprintln!(
        "download={download}: tun0 tx drops {drops}, kernel retransmits {kernel_rtx} (loss probes {probes}), ours {ours}; \
         inbox drops ip {} tcp {}; tcp {:?}",
        stack.stats.ip_inbox.dropped(),
        stack.stats.tcp_inbox.dropped(),
        stack.tcp_stats()
    );
    assert_eq!(drops, 0, "tun0 dropped packets on a clean link");
    // A tail-loss probe is the kernel re-sending its last segment, or sending a new one
    // when it has one (RFC 8985 §7.3; then it is no retransmission at all), when an ACK is
    // more than its probe timeout late (2·SRTT + 2 ms: about 2 ms on tun0). It is a timing
    // event, not a loss repair, and a 2-CPU machine running other tests sometimes delays an
    // ACK that long (about one 64 MiB download in 15, before and after the inbox rework
    // alike); it is allowed once. Every other retransmission means something was lost.
    assert!(probes <= 1, "{probes} tail-loss probes: ACKs were repeatedly late");
    assert_eq!(kernel_rtx.saturating_sub(probes), 0, "the kernel retransmitted on a clean link");
    assert_eq!(ours, 0, "the stack retransmitted on a clean link");
}

#[test]
fn clean_download_loses_nothing() {
    in_netns("clean_download_loses_nothing", || transfer(true));
}

#[test]
fn clean_upload_loses_nothing() {
    in_netns("clean_upload_loses_nothing", || transfer(false));
}
