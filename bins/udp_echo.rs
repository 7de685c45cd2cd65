//! UDP echo server on port 8000 (the seeds' port): every datagram goes back to its sender.
//!
//! `sudo udp_echo` (IPv4) or `sudo udp_echo v6`, then from the host:
//! `python3 scripts/udp_test.py 10.0.0.2` / `python3 scripts/udp_test.py fd00::2 v6`.

use clap::Parser;
use netstack::cli::CommonArgs;
use netstack::UdpSocket;
use slog::{debug, info};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Parser)]
#[command(about = "UDP echo server on the user-space stack")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// UDP port to echo on.
    #[arg(long, default_value_t = 8000)]
    port: u16,
}

fn main() {
    let cli = Cli::parse();
    let (stack, log) = cli.common.start();
    let any: IpAddr = if cli.common.ipv6() { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
    let sock = match UdpSocket::bind(&stack, SocketAddr::new(any, cli.port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot bind UDP port {}: {e}", cli.port);
            std::process::exit(1);
        }
    };
    info!(log, "udp echo listening"; "addr" => %SocketAddr::new(cli.common.local_ip(), cli.port));
    println!(
        "udp_echo: listening on {} port {}; try `python3 scripts/udp_test.py {}{}`",
        cli.common.local_ip(),
        cli.port,
        cli.common.local_ip(),
        if cli.common.ipv6() { " v6" } else { "" }
    );
    let echo = sock.try_clone().expect("clone");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        loop {
            match echo.recv_from(&mut buf) {
                Ok((n, from)) => {
                    debug!(log, "echo"; "bytes" => n, "from" => %from);
                    let _ = echo.send_to(&buf[..n], from);
                }
                Err(_) => return,
            }
        }
    });
    netstack::cli::wait_for_ctrl_c();
    println!("udp_echo: shutting down");
    drop(sock);
    cli.common.finish(stack);
}
