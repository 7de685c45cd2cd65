//! Connect to the kernel side (10.0.0.1 or fd00::1, port 3000), send an HTTP/1.0 GET line, and
//! read to EOF (or `--bytes N`, then close). Prints `bytes=N seconds=S gbit_per_s=R sha256=HEX`.
//!
//! Peers: `python3 scripts/chargen_server.py` or `python3 -m http.server 3000`.

use clap::Parser;
use netstack::bulk::{fail, maybe_wait_for_enter, Meter};
use netstack::cli::CommonArgs;
use netstack::TcpStream;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Download from a TCP server on the kernel side through the user-space stack")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Server port on the kernel side.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Stop after this many bytes (default: read to EOF).
    #[arg(long)]
    bytes: Option<u64>,
    /// Write what was received to this file.
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    /// Path in the GET line.
    #[arg(long, default_value = "/")]
    path: String,
    /// Do not wait for Enter before the transfer.
    #[arg(long)]
    no_wait: bool,
    /// Do not hash what is received (speed runs; the summary then ends `sha256=skipped`).
    #[arg(long)]
    no_hash: bool,
}

fn main() {
    let cli = Cli::parse();
    let (stack, _log) = cli.common.start();
    maybe_wait_for_enter(cli.no_wait, &cli.common.device_name());
    let peer = SocketAddr::new(cli.common.host_ip(), cli.port);
    let mut s = match TcpStream::connect_timeout(&stack, &peer, Duration::from_secs(30)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: connect to {peer}: {e}");
            std::process::exit(1);
        }
    };
    let mut out = cli.output.as_ref().map(|p| {
        std::fs::File::create(p).unwrap_or_else(|e| {
            eprintln!("error: {}: {e}", p.display());
            std::process::exit(1)
        })
    });
    if let Err(e) = s.write_all(format!("GET {} HTTP/1.0\r\n\r\n", cli.path).as_bytes()) {
        eprintln!("error: send request: {e}");
        std::process::exit(1);
    }
    let mut m = Meter::new(!cli.no_hash, cli.bytes);
    netstack::bulk::exit_on_interrupt(stack.handle(), &m);
    // No byte for this long ends the transfer with an error (every wait is bounded).
    if let Err(e) = s.set_read_timeout(Some(Duration::from_secs(60))) {
        eprintln!("error: set_read_timeout: {e}");
        std::process::exit(1);
    }
    let mut buf = vec![0u8; 256 * 1024];
    let limit = cli.bytes.unwrap_or(u64::MAX);
    while m.bytes < limit {
        let want = ((limit - m.bytes).min(buf.len() as u64)) as usize;
        match s.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                m.add(&buf[..n]);
                if let Some(f) = out.as_mut() {
                    if let Err(e) = f.write_all(&buf[..n]) {
                        eprintln!("error: write output: {e}");
                        std::process::exit(1);
                    }
                }
            }
            Err(e) => {
                fail(&format!("after {} bytes", m.bytes), e);
            }
        }
    }
    eprintln!();
    println!("{}", m.summary());
    eprintln!("{}", netstack::bulk::tcp_report(&stack.tcp_stats()));
    drop(s);
    cli.common.finish(stack);
}
