//! A SYN flood against a listening port of the stack on tun0 (issue 7, item 7), in its own
//! test binary so RSS is this process's alone.
//!
//! 100,000 SYNs from spoofed sources inside the namespace's own subnet (10.0.0.3–254,
//! random ports), crafted with a raw socket (IPPROTO_RAW, so IP_HDRINCL) on the kernel side
//! and sent at the stack's echo listener. Their SYN-ACKs go nowhere (the kernel does not
//! own those addresses and does not forward), so every one would stay half-open. While
//! they arrive a real client, a kernel `std::net::TcpStream`, connects and echoes 1 MiB
//! through the stack, checked by length and SHA-256. The stack's half-open TCBs stay within
//! the listener's cap and RSS grows little. Without SYN cookies the client's SYNs are all
//! dropped and it times out.

mod common;
use common::*;
use netstack::{StackConfig, TcpListener};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const SYNS: u64 = 100_000;
/// The flood stops after this long even if not all SYNs went out.
const FLOOD_LIMIT: Duration = Duration::from_secs(30);
const PORT: u16 = 7;
const ECHO_BYTES: usize = 1 << 20;
/// The real client gives up after this long (connect, and each read or write).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// RSS may grow this much over the run (1,024 half-open TCBs, the echoed MiB in flight).
const RSS_GROWTH_MAX: u64 = 16 << 20;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// A tiny xorshift generator: ports and sequence numbers of the spoofed SYNs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One IPv4 SYN from `src` to 10.0.0.2:PORT with an MSS option, checksums filled in.
fn spoofed_syn(src: Ipv4Addr, sport: u16, seq: u32) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ipv4(src.octets(), [10, 0, 0, 2], 64)
        .tcp(sport, PORT, seq, 64240)
        .syn()
        .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
        .unwrap();
    let mut out = Vec::with_capacity(b.size(0));
    b.write(&mut out, &[]).unwrap();
    out
}

/// SYNs sent but not yet answered by the stack, at most. Sent faster, they pile up in
/// tun0's queue (500 packets, dropped beyond) and in the actors' inboxes (bounded in
/// messages), which are not what this test measures; so the flood runs as fast as the
/// stack answers, and SYNs it never answers (none while it sends cookies) are written off
/// after 5 ms without progress.
const IN_FLIGHT: u64 = 256;

/// Packets the stack wrote to tun0 (the kernel's receive counter of the interface).
fn tun_rx_packets() -> u64 {
    let s = std::fs::read_to_string("/sys/class/net/tun0/statistics/rx_packets").unwrap_or_default();
    s.trim().parse().unwrap_or(0)
}

/// Send up to SYNS spoofed SYNs (bounded by FLOOD_LIMIT); returns how many the kernel took.
fn flood(sent: &AtomicU64, stop: &AtomicBool) -> u64 {
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW))).expect("raw socket");
    let to = SockAddr::from(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 0));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let answered0 = tun_rx_packets();
    let (mut ok, mut written_off) = (0u64, 0u64);
    for i in 0..SYNS {
        if start.elapsed() > FLOOD_LIMIT || stop.load(Ordering::Relaxed) {
            break;
        }
        if i % 32 == 0 {
            let mut answered = tun_rx_packets() - answered0;
            let mut progress = Instant::now();
            while ok.saturating_sub(answered + written_off) > IN_FLIGHT && start.elapsed() < FLOOD_LIMIT {
                thread::sleep(Duration::from_micros(50));
                let a = tun_rx_packets() - answered0;
                if a != answered {
                    (answered, progress) = (a, Instant::now());
                } else if progress.elapsed() > Duration::from_millis(5) {
                    written_off = ok - answered;
                }
            }
        }
        let r = rng.next();
        let src = Ipv4Addr::new(10, 0, 0, 3 + (r % 252) as u8);
        let sport = 1024 + ((r >> 8) % 64000) as u16;
        let pkt = spoofed_syn(src, sport, (r >> 32) as u32);
        match raw.send_to(&pkt, &to) {
            Ok(_) => {
                ok += 1;
                sent.store(ok, Ordering::Relaxed);
            }
            Err(_) => thread::sleep(Duration::from_micros(200)),
        }
    }
    ok
}

/// The stack's echo server: the first connection accepted is echoed until EOF. The
/// listener is handed back, so it keeps listening (and its half-open queue stays full)
/// until the test ends.
fn echo_server(stack: &netstack::Stack) -> thread::JoinHandle<(usize, TcpListener)> {
    let l = TcpListener::bind(stack, ("10.0.0.2", PORT)).unwrap();
    thread::spawn(move || {
        let (mut s, _) = l.accept_timeout(Duration::from_secs(60)).expect("the real client is accepted");
        let mut buf = vec![0u8; 64 << 10];
        let mut n = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    if s.write_all(&buf[..k]).is_err() {
                        break;
                    }
                    n += k;
                }
            }
        }
        drop(s);
        (n, l)
    })
}

/// The kernel client: connect, send ECHO_BYTES while reading the echo; (bytes, SHA-256).
fn client(data: Arc<Vec<u8>>) -> std::io::Result<(usize, String, Duration)> {
    let t0 = Instant::now();
    let to = SocketAddr::from(([10, 0, 0, 2], PORT));
    let mut k = std::net::TcpStream::connect_timeout(&to, CLIENT_TIMEOUT)?;
    let connected = t0.elapsed();
    k.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    k.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut w = k.try_clone()?;
    let writer = thread::spawn(move || {
        w.write_all(&data)?;
        w.shutdown(std::net::Shutdown::Write)
    });
    let mut got = Vec::with_capacity(ECHO_BYTES);
    k.read_to_end(&mut got)?;
    writer.join().unwrap()?;
    Ok((got.len(), sha256_hex(&got), connected))
}

fn syn_flood(cookies: bool) {
    let mut cfg = StackConfig::default();
    cfg.tcp.syncookies = cookies;
    let cap = cfg.tcp.max_half_open as u64;
    let stack = tun_stack_with(cfg);
    warm_up("10.0.0.2", false);
    let data = Arc::new(pattern(ECHO_BYTES, 11));
    let want = sha256_hex(&data);
    let server = echo_server(&stack);
    let rss0 = rss_bytes();

    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ip = stack.stats.ip.clone();
    let rx0 = ip.load().rx_tcp;
    let flooder = {
        let (sent, stop) = (sent.clone(), stop.clone());
        thread::spawn(move || {
            let t = Instant::now();
            (flood(&sent, &stop), t.elapsed())
        })
    };
    // The real client starts once the flood has filled the half-open queue.
    let t0 = Instant::now();
    while sent.load(Ordering::Relaxed) < 20_000 && t0.elapsed() < FLOOD_LIMIT {
        thread::sleep(Duration::from_millis(5));
    }
    let during = sent.load(Ordering::Relaxed);
    // Sample the half-open gauge while the client runs.
    let done = AtomicBool::new(false);
    let (result, max_half_open) = thread::scope(|sc| {
        let sampler = sc.spawn(|| {
            let mut max = 0;
            while !done.load(Ordering::Relaxed) {
                max = max.max(stack.tcp_stats().half_open);
                thread::sleep(Duration::from_millis(10));
            }
            max
        });
        let r = client(data);
        done.store(true, Ordering::Relaxed);
        (r, sampler.join().unwrap())
    });
    let after_client = sent.load(Ordering::Relaxed);
    stop.store(!cookies, Ordering::Relaxed); // without cookies there is nothing left to show
    let (total, took) = flooder.join().unwrap();
    thread::sleep(Duration::from_millis(300)); // the stack drains what was queued
    let st = stack.tcp_stats();
    let rss1 = rss_bytes();
    let seen = ip.load().rx_tcp - rx0;
    eprintln!(
        "syn flood (cookies {cookies}): {total} SYNs sent in {took:.2?}, {seen} TCP segments read by the \
         stack; client started after {during} SYNs, finished after {after_client}: {result:?}; half_open {} \
         (max seen {max_half_open}), syncookies sent {} ok {} failed {}, syn_dropped {}; RSS {} -> {} KiB",
        st.half_open,
        st.syncookies_sent,
        st.syncookies_recv_ok,
        st.syncookies_failed,
        st.syn_dropped,
        rss0 >> 10,
        rss1 >> 10
    );
    let (n, sha, _) = result.expect("the real client connects and exchanges data during the flood");
    assert_eq!(n, ECHO_BYTES);
    assert_eq!(sha, want);
    let (echoed, _listener) = server.join().unwrap();
    assert_eq!(echoed, ECHO_BYTES);
    assert!(total >= SYNS * 9 / 10, "only {total} SYNs went out");
    assert!(seen >= total * 9 / 10, "the stack read only {seen} of {total} SYNs");
    assert!(st.half_open <= cap && max_half_open <= cap, "half-open {} > cap {cap}", st.half_open);
    assert!(st.syncookies_sent + cap >= seen * 9 / 10, "{} cookies for {seen} SYNs", st.syncookies_sent);
    assert!(st.syncookies_recv_ok >= 1);
    let growth = rss1.saturating_sub(rss0);
    assert!(growth <= RSS_GROWTH_MAX, "RSS grew {} KiB", growth >> 10);
}

#[test]
fn syn_flood_of_100k_spoofed_syns_does_not_lock_out_a_real_client() {
    in_netns("syn_flood_of_100k_spoofed_syns_does_not_lock_out_a_real_client", || syn_flood(true));
}

/// The same flood with SYN cookies off (the code before them): the client times out.
/// Run by hand: `cargo test --release --test tun_syn_flood -- --ignored`.
#[test]
#[ignore = "shows the failure without SYN cookies (about 20 s)"]
fn syn_flood_without_cookies_locks_out_the_client() {
    in_netns("syn_flood_without_cookies_locks_out_the_client", || {
        let r = std::panic::catch_unwind(|| syn_flood(false));
        assert!(r.is_err(), "without SYN cookies the client was expected to fail");
    });
}
