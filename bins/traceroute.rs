//! `traceroute ADDR [v6]`: the path from the user-space stack to ADDR, as Linux's
//! `traceroute -n` prints it.
//!
//! UDP probes (RFC 768) to ports 33434 and up, one port per probe, with rising hop limits
//! (`UdpSocket::set_ttl`). Each router where a probe's TTL runs out answers with ICMP Time
//! Exceeded (RFC 792, RFC 4443 §3.3), the destination with Port Unreachable (RFC 1122
//! §3.2.2.1); an [`IcmpSocket`] of the family receives copies of those errors (they quote
//! our UDP packets, `proto::raw`), and each is matched to its probe by the quoted UDP
//! header: our source port and the probe's destination port. Other unreachables end the
//! trace with Linux's annotations (!N, !H, !P, !X, ...).
//!
//! `sudo traceroute 10.9.0.2 --gateway 10.0.0.1` (the stack creates tun0, whose kernel side
//! forwards). Exit status 0 when the trace ran (reached or not), 1 when it could not start,
//! 2 for bad arguments.

use clap::Parser;
use netstack::cli::CommonArgs;
use netstack::{IcmpSocket, IpVersion, UdpSocket};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "traceroute", about = "traceroute from the user-space stack (UDP probes)")]
struct Cli {
    /// Address to trace; an IPv6 one implies `v6`.
    #[arg(value_name = "ADDR")]
    target: String,
    /// Probes per hop.
    #[arg(short = 'q', value_name = "NQUERIES", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    queries: u32,
    /// Largest TTL (hop limit) tried.
    #[arg(short = 'm', value_name = "MAX_TTL", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=255))]
    max_ttl: u32,
    /// TTL of the first hop tried.
    #[arg(short = 'f', value_name = "FIRST_TTL", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=255))]
    first_ttl: u32,
    /// Seconds to wait for a probe's answer.
    #[arg(short = 'w', value_name = "WAIT", default_value_t = 5.0, value_parser = netstack::cli::seconds)]
    wait: f64,
    /// Destination port of the first probe; each probe uses the next one.
    #[arg(short = 'p', value_name = "PORT", default_value_t = 33434)]
    port: u16,
    #[command(flatten)]
    common: CommonArgs,
}

/// Bytes of UDP payload: 60-byte IPv4 packets, 80-byte IPv6 ones, as Linux's traceroute.
const DATA_LEN: usize = 32;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// What an ICMP error says about a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Time Exceeded: a router on the way.
    Hop,
    /// Port Unreachable: the destination (or whoever answered for it).
    Reached,
    /// Another Destination Unreachable, with Linux traceroute's annotation: ends the trace.
    Unreachable(String),
}

/// Linux traceroute's annotation of Destination Unreachable code `code` (ICMPv4 type 3,
/// RFC 792 / RFC 1812 §5.2.7.1; ICMPv6 type 1, RFC 4443 §3.1); `None` for port
/// unreachable, which means the destination answered.
fn annotation(v6: bool, code: u8) -> Option<String> {
    let s = match (v6, code) {
        (false, 3) | (true, 4) => return None,
        (false, 0 | 6 | 8 | 11) | (true, 0) => "!N",
        (false, 1 | 7 | 12) | (true, 3) => "!H",
        (false, 2) => "!P",
        (false, 4) => "!F",
        (false, 5) | (true, 2) => "!S",
        (false, 9 | 10 | 13) | (true, 1 | 5 | 6) => "!X",
        (false, 14) => "!V",
        (false, 15) => "!C",
        _ => return Some(format!("!<{code}>")),
    };
    Some(s.to_string())
}

/// Each probe takes the next destination port from `-p` on: they must all be real ports
/// (1..=65535), or probes past 65535 would go to port 0 and then repeat earlier ports.
fn probe_ports(first: u16, first_ttl: u32, max_ttl: u32, queries: u32) -> Result<(), String> {
    let probes = u64::from(max_ttl.saturating_sub(first_ttl) + 1) * u64::from(queries);
    let last = u64::from(first) + probes.saturating_sub(1);
    if first == 0 || last > 65_535 {
        return Err(format!(
            "-p {first}: {probes} probes need ports {first}..={last}, past 65535 (or port 0): use a lower -p, or fewer hops (-m) or queries (-q)"
        ));
    }
    Ok(())
}

/// The probe ICMP error `m` (from its type byte on) answers: the destination port of the
/// quoted UDP datagram, if it is one we sent from `local_port` to `target`, and what the
/// error says. Anything else (echo replies, errors about other packets, short quotes) is
/// `None`.
fn classify(v6: bool, m: &[u8], local_port: u16, target: IpAddr) -> Option<(u16, Answer)> {
    let (t, code) = (*m.first()?, *m.get(1)?);
    let answer = match (v6, t) {
        (false, 11) | (true, 3) => Answer::Hop,
        (false, 3) | (true, 1) => annotation(v6, code).map_or(Answer::Reached, Answer::Unreachable),
        _ => return None,
    };
    let q = m.get(8..)?;
    let (dst, proto, udp) = if v6 {
        let dst: [u8; 16] = q.get(24..40)?.try_into().ok()?;
        (IpAddr::from(dst), *q.get(6)?, q.get(40..48)?)
    } else {
        let ihl = (*q.first()? as usize & 0x0f) * 4;
        let dst: [u8; 4] = q.get(16..20)?.try_into().ok()?;
        (IpAddr::from(dst), *q.get(9)?, q.get(ihl..ihl + 8)?)
    };
    let (sport, dport) = (u16::from_be_bytes([udp[0], udp[1]]), u16::from_be_bytes([udp[2], udp[3]]));
    (proto == 17 && dst == target && sport == local_port).then_some((dport, answer))
}

/// One probe's outcome: who answered, after how long, and what.
struct Reply {
    from: IpAddr,
    rtt: Duration,
    answer: Answer,
}

/// One hop's line as `traceroute -n` prints it: ` 1  10.0.0.1  0.123 ms  0.101 ms  0.099 ms`,
/// an address again only when it changes, `*` for a probe without an answer.
fn hop_line(ttl: u32, probes: &[Option<Reply>]) -> String {
    let mut line = format!("{ttl:2} ");
    let mut last = None;
    for p in probes {
        match p {
            None => line.push_str(" *"),
            Some(r) => {
                if last != Some(r.from) {
                    line.push_str(&format!(" {}", r.from));
                    last = Some(r.from);
                }
                line.push_str(&format!("  {:.3} ms", r.rtt.as_secs_f64() * 1000.0));
                if let Answer::Unreachable(a) = &r.answer {
                    line.push_str(&format!(" {a}"));
                }
            }
        }
    }
    line
}

fn main() {
    let cli = Cli::parse();
    let target: IpAddr = match cli.target.split('%').next().unwrap_or_default().parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("traceroute: {}: not an IP address", cli.target);
            std::process::exit(2);
        }
    };
    let v6 = target.is_ipv6();
    if cli.common.ipv6() && !v6 {
        eprintln!("traceroute: {target}: v6 asked for an IPv4 address");
        std::process::exit(2);
    }
    if cli.first_ttl > cli.max_ttl {
        eprintln!("traceroute: first hop {} is beyond the max TTL {}", cli.first_ttl, cli.max_ttl);
        std::process::exit(2);
    }
    if let Err(e) = probe_ports(cli.port, cli.first_ttl, cli.max_ttl, cli.queries) {
        eprintln!("traceroute: {e}");
        std::process::exit(2);
    }
    let (stack, _log) = cli.common.start();
    let fail = |what: &str, e: std::io::Error| -> ! {
        eprintln!("traceroute: {what}: {e}");
        std::process::exit(1)
    };
    let any: SocketAddr = if v6 { "[::]:0".parse().unwrap() } else { "0.0.0.0:0".parse().unwrap() };
    let udp = UdpSocket::bind(&stack, any).unwrap_or_else(|e| fail("udp socket", e));
    let icmp = IcmpSocket::bind(&stack, if v6 { IpVersion::V6 } else { IpVersion::V4 })
        .unwrap_or_else(|e| fail("icmp socket", e));
    // As Linux's traceroute, which connects its probe socket first: no route, no trace.
    if let Err(e) = stack.route(target) {
        fail("connect", e);
    }
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    let packet = DATA_LEN + 8 + if v6 { 40 } else { 20 };
    println!("traceroute to {target} ({target}), {} hops max, {packet} byte packets", cli.max_ttl);
    let mut port = cli.port;
    for ttl in cli.first_ttl..=cli.max_ttl {
        let probes = probe_hop(&cli, &udp, &icmp, target, ttl, &mut port).unwrap_or_else(|e| fail("send", e));
        println!("{}", hop_line(ttl, &probes));
        let done = probes.iter().flatten().any(|r| r.answer != Answer::Hop || r.from == target);
        if done || INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
    }
    drop((udp, icmp));
    cli.common.finish(stack);
}

/// Send the hop's probes back to back with TTL `ttl`, then collect answers until each has
/// one or `-w` has passed since the last was sent. Waits are sliced (100 ms at most) so an
/// interrupt is seen promptly.
fn probe_hop(
    cli: &Cli,
    udp: &UdpSocket,
    icmp: &IcmpSocket,
    target: IpAddr,
    ttl: u32,
    port: &mut u16,
) -> std::io::Result<Vec<Option<Reply>>> {
    let v6 = target.is_ipv6();
    let local_port = udp.local_addr()?.port();
    udp.set_ttl(ttl)?;
    let data: Vec<u8> = (0..DATA_LEN as u8).map(|i| 0x40 + i).collect();
    // (destination port, when sent) per probe, in order.
    let mut sent = Vec::with_capacity(cli.queries as usize);
    for _ in 0..cli.queries {
        udp.send_to(&data, (target, *port))?;
        sent.push((*port, Instant::now()));
        *port = port.wrapping_add(1);
    }
    let mut replies: Vec<Option<Reply>> = (0..sent.len()).map(|_| None).collect();
    let deadline = Instant::now() + Duration::from_secs_f64(cli.wait);
    let mut buf = vec![0u8; 2048];
    while replies.iter().any(Option::is_none) && !INTERRUPTED.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        icmp.set_read_timeout(Some(left.clamp(Duration::from_millis(1), Duration::from_millis(100))))?;
        let (n, from) = match icmp.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let Some((dport, answer)) = classify(v6, &buf[..n], local_port, target) else { continue };
        // A late answer to an earlier hop's probe has a port not in this hop's list.
        if let Some(i) = sent.iter().position(|(p, _)| *p == dport) {
            if replies[i].is_none() {
                replies[i] = Some(Reply { from, rtt: sent[i].1.elapsed(), answer });
            }
        }
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {

    #[test]
    fn probe_ports_stay_real_ports() {
        assert!(probe_ports(33434, 1, 30, 3).is_ok());
        assert!(probe_ports(65535 - 89, 1, 30, 3).is_ok()); // the 90th probe on 65535
        assert!(probe_ports(65535 - 88, 1, 30, 3).unwrap_err().contains("past 65535"));
        assert!(probe_ports(0, 1, 1, 1).is_err());
    }
    use super::*;

    /// An ICMPv4 error `[t, code]` quoting a UDP datagram 10.0.0.2:sport -> dst:dport.
    fn v4_error(t: u8, code: u8, dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut m = vec![t, code, 0, 0, 0, 0, 0, 0];
        let mut ip = vec![0x45, 0, 0, 60, 0, 0, 0, 0, 1, 17, 0, 0, 10, 0, 0, 2];
        ip.extend_from_slice(&dst);
        m.extend_from_slice(&ip);
        m.extend_from_slice(&sport.to_be_bytes());
        m.extend_from_slice(&dport.to_be_bytes());
        m.extend_from_slice(&[0, 40, 0, 0]);
        m
    }

    fn v6_error(t: u8, code: u8, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
        let mut m = vec![t, code, 0, 0, 0, 0, 0, 0];
        let mut ip = vec![0x60, 0, 0, 0, 0, 40, 17, 1];
        ip.extend_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&dst.parse::<std::net::Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&ip);
        m.extend_from_slice(&sport.to_be_bytes());
        m.extend_from_slice(&dport.to_be_bytes());
        m.extend_from_slice(&[0, 40, 0, 0]);
        m
    }

    #[test]
    fn errors_match_probes_by_the_quoted_udp_header() {
        let t: IpAddr = "10.9.0.2".parse().unwrap();
        let d = [10, 9, 0, 2];
        assert_eq!(classify(false, &v4_error(11, 0, d, 5000, 33434), 5000, t), Some((33434, Answer::Hop)));
        assert_eq!(classify(false, &v4_error(3, 3, d, 5000, 33436), 5000, t), Some((33436, Answer::Reached)));
        let h = classify(false, &v4_error(3, 1, d, 5000, 33435), 5000, t);
        assert_eq!(h, Some((33435, Answer::Unreachable("!H".into()))));
        assert_eq!(classify(false, &v4_error(11, 0, d, 5001, 33434), 5000, t), None, "another socket's");
        assert_eq!(classify(false, &v4_error(11, 0, [10, 9, 0, 3], 5000, 33434), 5000, t), None, "elsewhere");
        assert_eq!(classify(false, &[0, 0, 0, 0, 0, 1, 0, 1], 5000, t), None, "an echo reply");
        assert_eq!(classify(false, &v4_error(11, 0, d, 5000, 33434)[..20], 5000, t), None, "short quote");
        let t6: IpAddr = "fd09::2".parse().unwrap();
        assert_eq!(classify(true, &v6_error(3, 0, "fd09::2", 7, 33434), 7, t6), Some((33434, Answer::Hop)));
        assert_eq!(classify(true, &v6_error(1, 4, "fd09::2", 7, 33435), 7, t6), Some((33435, Answer::Reached)));
        let n = classify(true, &v6_error(1, 0, "fd09::2", 7, 33435), 7, t6);
        assert_eq!(n, Some((33435, Answer::Unreachable("!N".into()))));
    }

    #[test]
    fn lines_look_like_linux_traceroute() {
        let r = |from: &str, us: u64, answer| {
            Some(Reply { from: from.parse().unwrap(), rtt: Duration::from_micros(us), answer })
        };
        let l = hop_line(
            1,
            &[r("10.0.0.1", 123, Answer::Hop), r("10.0.0.1", 101, Answer::Hop), r("10.0.0.1", 99, Answer::Hop)],
        );
        assert_eq!(l, " 1  10.0.0.1  0.123 ms  0.101 ms  0.099 ms");
        assert_eq!(hop_line(3, &[None, None, None]), " 3  * * *");
        let l = hop_line(
            12,
            &[r("10.0.0.1", 1500, Answer::Hop), None, r("10.0.0.5", 2000, Answer::Unreachable("!H".into()))],
        );
        assert_eq!(l, "12  10.0.0.1  1.500 ms * 10.0.0.5  2.000 ms !H");
    }
}
