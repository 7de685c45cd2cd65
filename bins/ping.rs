//! `ping ADDR [v6]`: ICMP echo requests from the user-space stack (an [`IcmpSocket`]),
//! printed as iputils' ping prints them: a line per reply, a summary at the end or on Ctrl-C.
//!
//! `sudo ping 10.0.0.1 -c 3` or `sudo ping fd00::1 v6` (the stack creates tun0, whose kernel
//! side has 10.0.0.1, fd00::1 and fe80::1). Exit status as iputils: 0 when any reply came
//! back, 1 when none did.

use clap::Parser;
use netstack::cli::CommonArgs;
use netstack::{IcmpSocket, IpVersion};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "ping", about = "ping from the user-space stack (ICMP / ICMPv6 echo)")]
struct Cli {
    /// Address to ping; an IPv6 one implies `v6`. A `%iface` suffix is accepted and ignored
    /// (the stack has one interface).
    #[arg(value_name = "ADDR")]
    target: String,
    /// Stop after sending COUNT requests (default: until Ctrl-C).
    #[arg(short = 'c', value_name = "COUNT", value_parser = clap::value_parser!(u32).range(1..))]
    count: Option<u32>,
    /// Seconds between requests.
    #[arg(short = 'i', value_name = "INTERVAL", default_value_t = 1.0, value_parser = netstack::cli::seconds)]
    interval: f64,
    /// Bytes of data after the 8-byte ICMP header.
    #[arg(short = 's', value_name = "SIZE", default_value_t = 56)]
    size: usize,
    /// Seconds to wait for each reply.
    #[arg(short = 'W', value_name = "TIMEOUT", default_value_t = 10.0, value_parser = netstack::cli::seconds)]
    timeout: f64,
    #[command(flatten)]
    common: CommonArgs,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// RTT statistics in milliseconds, kept as sums (memory does not grow with the count).
#[derive(Default)]
struct Rtt {
    n: u64,
    min: f64,
    max: f64,
    sum: f64,
    sum2: f64,
}

impl Rtt {
    fn add(&mut self, ms: f64) {
        if self.n == 0 || ms < self.min {
            self.min = ms;
        }
        self.max = self.max.max(ms);
        self.n += 1;
        self.sum += ms;
        self.sum2 += ms * ms;
    }
}

/// iputils' rounding of one RTT: three significant digits, at least 3 decimals below 1 ms.
fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// A percentage as C's `%g` prints it for these values: "0", "100", "33.3333".
fn fmt_pct(p: f64) -> String {
    let s = format!("{p:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// What an ICMP error says, in iputils' words.
fn describe_error(v6: bool, t: u8, code: u8) -> String {
    let s = match (v6, t, code) {
        (false, 3, 0) => "Destination Net Unreachable",
        (false, 3, 1) => "Destination Host Unreachable",
        (false, 3, 2) => "Destination Protocol Unreachable",
        (false, 3, 3) => "Destination Port Unreachable",
        (false, 3, 4) => "Frag needed",
        (false, 3, _) => "Destination Unreachable",
        (false, 11, _) => "Time to live exceeded",
        (false, 12, _) => "Parameter problem",
        (true, 1, 0) => "Destination unreachable: No route",
        (true, 1, 1) => "Destination unreachable: Administratively prohibited",
        (true, 1, 3) => "Destination unreachable: Address unreachable",
        (true, 1, 4) => "Destination unreachable: Port unreachable",
        (true, 1, _) => "Destination unreachable",
        (true, 2, _) => "Packet too big",
        (true, 3, _) => "Time exceeded: Hop limit",
        (true, 4, _) => "Parameter problem",
        _ => return format!("ICMP type {t} code {code}"),
    };
    s.to_string()
}

/// The sequence number of our echo request quoted in ICMP error `m`, if it quotes one.
fn quoted_seq(v6: bool, m: &[u8]) -> Option<u16> {
    let q = m.get(8..)?;
    let hlen = if v6 { 40 } else { (*q.first()? as usize & 0x0f) * 4 };
    let icmp = q.get(hlen..hlen + 8)?;
    let echo = if v6 { 128 } else { 8 };
    (icmp[0] == echo).then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

fn main() {
    let cli = Cli::parse();
    let target = cli.target.split('%').next().unwrap_or_default();
    let to: IpAddr = match target.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("ping: {}: not an IP address", cli.target);
            std::process::exit(2);
        }
    };
    let v6 = to.is_ipv6();
    if cli.common.ipv6() && !v6 {
        eprintln!("ping: {to}: v6 asked for an IPv4 address");
        std::process::exit(2);
    }
    let max = if v6 { 65_535 - 8 } else { 65_535 - 20 - 8 };
    if cli.size > max {
        eprintln!("ping: -s {}: at most {max} bytes of data", cli.size);
        std::process::exit(2);
    }
    let (stack, _log) = cli.common.start();
    let sock = IcmpSocket::bind(&stack, if v6 { IpVersion::V6 } else { IpVersion::V4 }).unwrap_or_else(|e| {
        eprintln!("ping: socket: {e}");
        std::process::exit(2)
    });
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    if v6 {
        println!("PING {to} ({to}) {} data bytes", cli.size);
    } else {
        println!("PING {to} ({to}) {}({}) bytes of data.", cli.size, cli.size + 28);
    }
    let r = run(&cli, &sock, to);
    println!("\n--- {to} ping statistics ---");
    let errors = if r.errors > 0 { format!(", +{} errors", r.errors) } else { String::new() };
    let loss = if r.sent == 0 { 0.0 } else { (r.sent - r.rtt.n) as f64 * 100.0 / r.sent as f64 };
    println!(
        "{} packets transmitted, {} received{errors}, {}% packet loss, time {}ms",
        r.sent,
        r.rtt.n,
        fmt_pct(loss),
        r.elapsed.as_millis()
    );
    if r.rtt.n > 0 {
        let n = r.rtt.n as f64;
        let avg = r.rtt.sum / n;
        let mdev = (r.rtt.sum2 / n - avg * avg).max(0.0).sqrt();
        println!("rtt min/avg/max/mdev = {:.3}/{avg:.3}/{:.3}/{mdev:.3} ms", r.rtt.min, r.rtt.max);
    }
    drop(sock);
    cli.common.finish(stack);
    std::process::exit(if r.rtt.n > 0 { 0 } else { 1 });
}

struct Outcome {
    sent: u64,
    errors: u64,
    rtt: Rtt,
    elapsed: Duration,
}

/// Send and receive until the count is sent and every request is answered or timed out, or
/// until Ctrl-C. Waits are sliced (100 ms at most) so an interrupt is seen promptly.
fn run(cli: &Cli, sock: &IcmpSocket, to: IpAddr) -> Outcome {
    let v6 = to.is_ipv6();
    let interval = Duration::from_secs_f64(cli.interval);
    let timeout = Duration::from_secs_f64(cli.timeout);
    let data: Vec<u8> = (0..cli.size).map(|i| (i % 256) as u8).collect();
    let start = Instant::now();
    let mut out = Outcome { sent: 0, errors: 0, rtt: Rtt::default(), elapsed: Duration::ZERO };
    // Requests in flight: sequence -> when sent (bounded: each leaves after `timeout`).
    let mut pending: HashMap<u16, Instant> = HashMap::new();
    let mut next_send = start;
    let mut buf = vec![0u8; 65_536];
    while !INTERRUPTED.load(Ordering::SeqCst) {
        let now = Instant::now();
        let more = cli.count.is_none_or(|c| out.sent < c as u64);
        if more && now >= next_send {
            let seq = (out.sent + 1) as u16;
            let mut m = vec![if v6 { 128 } else { 8 }, 0, 0, 0, 0, 0];
            m.extend_from_slice(&seq.to_be_bytes());
            m.extend_from_slice(&data);
            if let Err(e) = sock.send_to(&m, to) {
                eprintln!("ping: sendmsg: {e}");
                break;
            }
            pending.insert(seq, Instant::now());
            out.sent += 1;
            next_send += interval;
            continue;
        }
        pending.retain(|_, t| now.duration_since(*t) < timeout);
        if !more && pending.is_empty() {
            break;
        }
        let oldest = pending.values().min().map(|t| *t + timeout);
        let wake = match (more, oldest) {
            (true, Some(o)) => next_send.min(o),
            (true, None) => next_send,
            (false, o) => o.unwrap_or(now),
        };
        let wait = wake.saturating_duration_since(now).clamp(Duration::from_millis(1), Duration::from_millis(100));
        let _ = sock.set_read_timeout(Some(wait));
        let (n, from, ttl) = match sock.recv_with_hop_limit(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => {
                eprintln!("ping: recvmsg: {e}");
                break;
            }
        };
        let m = &buf[..n];
        let reply = if v6 { 129 } else { 0 };
        if m[0] == reply {
            let seq = u16::from_be_bytes([m[6], m[7]]);
            // A reply to nothing in flight (late or duplicated) is not counted.
            if let Some(sent) = pending.remove(&seq) {
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                out.rtt.add(ms);
                println!("{n} bytes from {from}: icmp_seq={seq} ttl={ttl} time={} ms", fmt_ms(ms));
            }
        } else if let Some(seq) = quoted_seq(v6, m) {
            if pending.remove(&seq).is_some() {
                out.errors += 1;
                println!("From {from} icmp_seq={seq} {}", describe_error(v6, m[0], m[1]));
            }
        }
    }
    out.elapsed = start.elapsed();
    out
}
