//! `arping ADDR --tap`: ARP requests (RFC 826) from the user-space stack through a
//! [`PacketSocket`], printed as iputils' arping prints them: a line per reply with the
//! replier's MAC and the time since the last request, a summary at the end or on Ctrl-C.
//!
//! `sudo arping --tap 10.0.0.1 -c 3` (the stack creates tap0, whose kernel side has
//! 10.0.0.1). Semantics of iputils-arping: the first request is broadcast; after a reply
//! the next ones go unicast to the replier (`-b`: always broadcast). Without `-w` it sends
//! COUNT requests (default: until Ctrl-C), then waits up to `-W` seconds (default: one
//! interval) for the replies still due. With `-w DEADLINE` it sends until the deadline,
//! or until COUNT replies came. Exit status as iputils: 0 when a reply came (with `-w`
//! and `-c`: when COUNT replies came), 1 otherwise, 2 on a usage error.

use clap::Parser;
use netstack::cli::CommonArgs;
use netstack::proto::link::arp;
use netstack::wire::{ArpOperation, ArpRepr, EthernetAddress as Mac, EthernetFrame, EthernetProtocol};
use netstack::PacketSocket;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// RFC 826 / IEEE 802: the broadcast hardware address a first request goes to.
const BROADCAST: Mac = Mac([0xff; 6]);
/// The EtherType of ARP (RFC 826 "ether_type$ADDRESS_RESOLUTION").
const ETHERTYPE_ARP: u16 = 0x0806;

#[derive(Parser)]
#[command(name = "arping", about = "ARP requests from the user-space stack (needs --tap)")]
struct Cli {
    /// IPv4 address to ask for.
    #[arg(value_name = "ADDR")]
    target: String,
    /// Stop after sending COUNT requests; with -w, stop after COUNT replies.
    #[arg(short = 'c', value_name = "COUNT", value_parser = clap::value_parser!(u32).range(1..))]
    count: Option<u32>,
    /// Seconds between requests.
    #[arg(short = 'i', value_name = "INTERVAL", default_value_t = 1.0, value_parser = netstack::cli::seconds)]
    interval: f64,
    /// Deadline: seconds after which arping stops, whatever was sent or received.
    #[arg(short = 'w', value_name = "DEADLINE", value_parser = netstack::cli::seconds)]
    deadline: Option<f64>,
    /// Seconds to wait for replies after the last request (default: one interval).
    #[arg(short = 'W', value_name = "TIMEOUT", value_parser = netstack::cli::seconds)]
    timeout: Option<f64>,
    /// Keep broadcasting; do not switch to unicast after a reply.
    #[arg(short = 'b')]
    broadcast_only: bool,
    /// Stop after the first reply.
    #[arg(short = 'f')]
    first: bool,
    #[command(flatten)]
    common: CommonArgs,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A MAC as iputils prints it: upper-case hex octets joined by colons.
fn fmt_mac(m: Mac) -> String {
    m.0.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// What was sent and received.
#[derive(Default)]
struct Outcome {
    sent: u32,
    broadcasts: u32,
    received: u32,
    broadcast_replies: u32,
}

/// A reply to our request for `target`: a frame carrying an ARP reply (RFC 826) whose
/// sender is `target` and whose target protocol address is ours. The replier's MAC and
/// whether the frame was link-level broadcast.
fn parse_reply(frame: &[u8], target: Ipv4Addr, ours: Ipv4Addr) -> Option<(Mac, bool)> {
    let f = EthernetFrame::new_checked(frame).ok()?;
    if f.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let (op, sha, spa, _tha, tpa) = arp::parse(f.payload())?;
    (op == ArpOperation::Reply && spa == target && tpa == ours).then_some((sha, f.dst_addr() == BROADCAST))
}

fn main() {
    let cli = Cli::parse();
    let usage = |m: String| -> ! {
        eprintln!("arping: {m}");
        std::process::exit(2)
    };
    let target: Ipv4Addr = cli.target.parse().unwrap_or_else(|_| usage(format!("{}: not an IPv4 address", cli.target)));
    if cli.common.ipv6() {
        usage("ARP is IPv4 only (for IPv6 neighbours, see ndisc6)".into());
    }
    if !cli.common.tap {
        usage("ARP needs an Ethernet device: run with --tap (a TUN device carries bare IP packets)".into());
    }
    let (stack, _log) = cli.common.start();
    let sock = PacketSocket::bind(&stack, Some(ETHERTYPE_ARP)).unwrap_or_else(|e| {
        eprintln!("arping: socket: {e}");
        std::process::exit(2)
    });
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    let ours = cli.common.local_v4();
    println!("ARPING {target} from {ours} {}", cli.common.device_name());
    let r = run(&cli, &sock, target, ours);
    println!("Sent {} probes ({} broadcast(s))", r.sent, r.broadcasts);
    if r.broadcast_replies > 0 {
        println!("Received {} response(s) ({} broadcast(s))", r.received, r.broadcast_replies);
    } else {
        println!("Received {} response(s)", r.received);
    }
    drop(sock);
    cli.common.finish(stack);
    let ok = match (cli.deadline, cli.count) {
        (Some(_), Some(c)) => r.received >= c,
        _ => r.received > 0,
    };
    std::process::exit(if ok { 0 } else { 1 });
}

/// The ARP request for `target` from `ours` (RFC 826), to `dst` (broadcast, or the MAC a
/// reply came from).
fn request(mac: Mac, ours: Ipv4Addr, target: Ipv4Addr, dst: Mac) -> Vec<u8> {
    let req = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: ours,
        target_hardware_addr: if dst == BROADCAST { Mac([0; 6]) } else { dst },
        target_protocol_addr: target,
    };
    arp::arp_frame(dst, mac, &req)
}

/// Send and receive until a stop condition of the module docs, or Ctrl-C. Waits are
/// sliced (100 ms at most) so an interrupt is seen promptly.
fn run(cli: &Cli, sock: &PacketSocket, target: Ipv4Addr, ours: Ipv4Addr) -> Outcome {
    let interval = Duration::from_secs_f64(cli.interval);
    let linger = cli.timeout.map_or(interval, Duration::from_secs_f64);
    let start = Instant::now();
    let deadline = cli.deadline.map(|d| start + Duration::from_secs_f64(d));
    let mut out = Outcome::default();
    let mut peer: Option<Mac> = None;
    let mut last_sent = start;
    let mut next_send = start;
    let mut buf = [0u8; 1600];
    while !INTERRUPTED.load(Ordering::SeqCst) {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        // With a deadline, COUNT counts replies (iputils); without, requests.
        let more = deadline.is_some() || cli.count.is_none_or(|c| out.sent < c);
        if !more && (now >= last_sent + linger || out.received >= out.sent) {
            break;
        }
        if more && now >= next_send {
            let dst = peer.filter(|_| !cli.broadcast_only).unwrap_or(BROADCAST);
            if let Err(e) = sock.send(&request(sock.local_mac(), ours, target, dst)) {
                eprintln!("arping: sendto: {e}");
                break;
            }
            last_sent = Instant::now();
            out.sent += 1;
            out.broadcasts += u32::from(dst == BROADCAST);
            next_send += interval;
            continue;
        }
        let wake = if more { next_send } else { last_sent + linger };
        let wake = deadline.map_or(wake, |d| wake.min(d));
        let wait = wake.saturating_duration_since(now).clamp(Duration::from_millis(1), Duration::from_millis(100));
        let _ = sock.set_read_timeout(Some(wait));
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => {
                eprintln!("arping: recvfrom: {e}");
                break;
            }
        };
        let Some((mac, broadcast)) = parse_reply(&buf[..n], target, ours) else { continue };
        let ms = last_sent.elapsed().as_secs_f64() * 1000.0;
        let kind = if broadcast { "Broadcast" } else { "Unicast" };
        println!("{kind} reply from {target} [{}]  {ms:.3}ms", fmt_mac(mac));
        out.received += 1;
        out.broadcast_replies += u32::from(broadcast);
        peer = Some(mac);
        let enough = match (deadline, cli.count) {
            (Some(_), Some(c)) => out.received >= c,
            _ => false,
        };
        if cli.first || enough {
            break;
        }
    }
    out
}
