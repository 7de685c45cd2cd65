//! The user-space host: answers ping on IPv4 and IPv6, serves UDP echo on port 7 and the TCP
//! services echo (7), discard (9), chargen (19) and a small HTTP server (80).
//!
//! `sudo netstack`, then `ping 10.0.0.2`, `ping fd00::2`, `ping fe80::2%tun0`,
//! `curl http://10.0.0.2/`, `curl http://10.0.0.2/bytes/1000000 | wc -c`,
//! `nc 10.0.0.2 7`, and `sudo tcpdump -i tun0 -n` to watch. Ctrl-C exits cleanly.
//!
//! `netstack ctl stats` / `netstack ctl ss` ask a running bin (this one or any other) for its
//! counters (like `nstat`) or its connections (like `ss -tin`) over its control socket.

use clap::Parser;
use netstack::bulk::Pattern;
use netstack::cli::CommonArgs;
use netstack::{StackHandle, TcpListener, TcpStream, UdpSocket};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::OnceLock;

#[derive(Parser)]
#[command(about = "A user-space TCP/IP host on a TUN device")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Accept backlog of each TCP service (Linux's SOMAXCONN): with a short queue, clients of
    /// a busy service wait out their SYN retransmission timer.
    #[arg(long, default_value_t = 4096)]
    backlog: usize,
}

/// `netstack ctl`: talk to a running bin's control socket.
#[derive(Parser)]
#[command(name = "netstack ctl", about = "Ask a running netstack bin for its counters or connections")]
struct Ctl {
    /// The bin's device, when several are running.
    #[arg(long)]
    iface: Option<String>,
    /// Show zero counters too (`stats`).
    #[arg(short = 'a', long)]
    all: bool,
    /// `stats` (counters, like nstat) or `ss` (connections, like ss -tin).
    #[arg(value_parser = ["stats", "ss"])]
    what: String,
}

fn ctl(args: impl Iterator<Item = String>) -> ! {
    let c = Ctl::parse_from(args);
    let req = if c.what == "stats" && c.all { "stats -a".to_string() } else { c.what };
    match netstack::ctl::request(c.iface.as_deref(), &req) {
        Ok(text) => {
            print!("{text}");
            std::process::exit(if text.starts_with("error:") { 1 } else { 0 })
        }
        Err(e) => {
            eprintln!("netstack ctl: {e}");
            std::process::exit(1)
        }
    }
}

fn udp_echo(sock: UdpSocket) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    });
}

/// Stack size of a service thread: its buffers are on the heap, so a small stack suffices and
/// 10,000 idle connections reserve 320 MiB of address space rather than 80 GiB.
const SERVICE_STACK: usize = 32 * 1024;

/// I/O buffer of the echo and discard services, allocated once the first bytes arrive.
const IO_BUF: usize = 64 * 1024;

/// The first read of a connection: into a small buffer on the stack, so a connection that
/// stays idle never allocates (or touches) its I/O buffer. Returns the bytes read and the
/// buffer for the rest (holding them at the front), or `None` at EOF or on an error.
fn first_read(s: &mut TcpStream) -> Option<(usize, Vec<u8>)> {
    let mut first = [0u8; 512];
    match s.read(&mut first) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            let mut buf = vec![0u8; IO_BUF];
            buf[..n].copy_from_slice(&first[..n]);
            Some((n, buf))
        }
    }
}

/// Accept on `port` (v4 and v6) and run `serve` on a (small) thread per connection.
fn tcp_service(stack: &StackHandle, port: u16, backlog: usize, serve: fn(TcpStream)) {
    for a in [format!("0.0.0.0:{port}"), format!("[::]:{port}")] {
        match TcpListener::bind_with_backlog(stack, a.as_str(), backlog) {
            Ok(l) => {
                std::thread::spawn(move || {
                    for s in l.incoming().flatten() {
                        let spawned = std::thread::Builder::new().stack_size(SERVICE_STACK).spawn(move || serve(s));
                        if let Err(e) = spawned {
                            // Out of threads: the connection is dropped (reset), the service goes on.
                            eprintln!("warning: no thread for a connection on port {port}: {e}");
                        }
                    }
                });
            }
            Err(e) => eprintln!("warning: TCP {a}: {e}"),
        }
    }
}

/// Memory back after a burst of connections: glibc keeps the pages freed below a live
/// allocation, so once the connection count has fallen under half its peak since the last
/// trim (and by at least 256), hand the allocator's free pages back to the kernel.
fn trim_after_bursts(stack: StackHandle) {
    let spawned = std::thread::Builder::new().name("trim".into()).stack_size(SERVICE_STACK).spawn(move || {
        let mut peak = 0;
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let n = stack.tcp_conn_count();
            peak = peak.max(n);
            if peak >= 2 * n + 256 {
                netstack::device::sys::trim_heap();
                peak = n;
            }
        }
    });
    if let Err(e) = spawned {
        eprintln!("warning: no memory-trim thread: {e}");
    }
}

/// RFC 862.
fn echo(mut s: TcpStream) {
    let Some((mut n, mut buf)) = first_read(&mut s) else { return };
    while n > 0 && s.write_all(&buf[..n]).is_ok() {
        n = s.read(&mut buf).unwrap_or(0);
    }
}

/// RFC 863.
fn discard(mut s: TcpStream) {
    let Some((_, mut buf)) = first_read(&mut s) else { return };
    while s.read(&mut buf).is_ok_and(|n| n > 0) {}
}

/// RFC 864: 72-character lines, each starting one character later in the 95-character set.
fn chargen(mut s: TcpStream) {
    static BLOCK: OnceLock<Vec<u8>> = OnceLock::new();
    let block = BLOCK.get_or_init(|| {
        let mut block = Vec::with_capacity(95 * 74);
        for line in 0..95u8 {
            for i in 0..72u8 {
                block.push(b' ' + (line + i) % 95);
            }
            block.extend_from_slice(b"\r\n");
        }
        block
    });
    while s.write_all(block).is_ok() {}
}

const PAGE: &str = "<!doctype html><title>netstack</title>\n<h1>netstack</h1>\n\
<p>This page was served by a user-space TCP/IP stack written in Rust, running on a TUN device.\n\
Its TCP keeps RFC 9293 with RFC 6298 retransmission, NewReno congestion control, window\n\
scaling, timestamps and SACK.</p>\n<p>Try <a href=\"/bytes/1000000\">/bytes/1000000</a>.</p>\n";

/// A tiny HTTP/1.0 server: `/` is a page about the stack, `/bytes/N` is N bytes.
fn http(mut s: TcpStream) {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
        if req.len() > 64 * 1024 {
            let _ = s.write_all(b"HTTP/1.0 431 Request Header Fields Too Large\r\n\r\n");
            return;
        }
    }
    let text = String::from_utf8_lossy(&req);
    let mut parts = text.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        let _ = s.write_all(b"HTTP/1.0 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let head = method == "HEAD";
    if path == "/" {
        let hdr = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            PAGE.len()
        );
        let _ = s.write_all(hdr.as_bytes());
        if !head {
            let _ = s.write_all(PAGE.as_bytes());
        }
    } else if let Some(n) = path.strip_prefix("/bytes/").and_then(|n| n.parse::<u64>().ok()) {
        let hdr = format!("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n");
        if s.write_all(hdr.as_bytes()).is_err() || head {
            return;
        }
        static PATTERN: OnceLock<Pattern> = OnceLock::new();
        let pattern = PATTERN.get_or_init(|| Pattern::new(256 * 1024));
        let mut sent = 0u64;
        while sent < n {
            let chunk = pattern.at(sent, (n - sent).min(256 * 1024) as usize);
            if s.write_all(chunk).is_err() {
                return;
            }
            sent += chunk.len() as u64;
        }
    } else {
        let _ = s.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n");
    }
    // Close after the data: the close handshake follows the last byte.
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("ctl") {
        netstack::device::sys::default_sigpipe();
        ctl(std::env::args().skip(1));
    }
    let cli = Cli::parse();
    if cli.common.ipv6() {
        eprintln!(
            "error: the host serves IPv4 and IPv6 at once; `v6` is for the client bins (ping, tcp_bulk_*, udp_echo)"
        );
        std::process::exit(2);
    }
    let (stack, _log) = cli.common.start();
    for a in ["0.0.0.0:7", "[::]:7"] {
        let addr: SocketAddr = a.parse().unwrap();
        match UdpSocket::bind(&stack, addr) {
            Ok(s) => udp_echo(s),
            Err(e) => eprintln!("warning: UDP echo on {addr}: {e}"),
        }
    }
    tcp_service(&stack, 7, cli.backlog, echo);
    tcp_service(&stack, 9, cli.backlog, discard);
    tcp_service(&stack, 19, cli.backlog, chargen);
    tcp_service(&stack, 80, cli.backlog, http);
    trim_after_bursts(stack.handle());
    let c = &cli.common;
    let dev = c.device_name();
    let a4 = c.local_v4();
    println!("netstack is up on {dev}: {a4} and fe80::2, {}", c.addr6);
    if let Some(l) = &stack.config().link {
        println!("  MAC {}", l.mac);
    }
    println!("  ping {}        ping {}        ping fe80::2%{dev}", a4, c.addr6);
    println!("  curl http://{}/            curl http://{}/bytes/1000000 | wc -c", a4, a4);
    println!("  nc {} 7 (TCP echo)   nc {} 19 (chargen)   echo hi | nc -u -w1 {} 7 (UDP echo)", a4, a4, a4);
    let e = if c.tap { "-e " } else { "" };
    println!("  sudo tcpdump {e}-i {dev} -n          (watch the wire)");
    println!("Ctrl-C to stop.");
    netstack::cli::wait_for_ctrl_c();
    println!("netstack: shutting down");
    cli.common.finish(stack);
}
