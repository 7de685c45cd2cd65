//! Connect to the kernel side (port 3000), send `--bytes N` of a fixed pattern (or `--input
//! FILE`), shut down writing and wait for the peer to close. Prints
//! `bytes=N seconds=S gbit_per_s=R sha256=HEX` (of the bytes sent).
//!
//! Peer: `python3 scripts/sink_server.py 3000`, which prints the same hash.

use clap::Parser;
use netstack::bulk::{fail, maybe_wait_for_enter, Meter, Pattern};
use netstack::cli::CommonArgs;
use netstack::TcpStream;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Upload to a TCP server on the kernel side through the user-space stack")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Server port on the kernel side.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Bytes of the fixed pattern to send.
    #[arg(long, default_value_t = 64 << 20)]
    bytes: u64,
    /// Send this file instead of the pattern.
    #[arg(long)]
    input: Option<std::path::PathBuf>,
    /// Do not wait for Enter before the transfer.
    #[arg(long)]
    no_wait: bool,
    /// Do not hash what is sent (speed runs; the summary then ends `sha256=skipped`).
    #[arg(long)]
    no_hash: bool,
}

/// How long the bin waits for the peer to close after the upload.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

fn main() {
    let cli = Cli::parse();
    let mut input =
        cli.input.as_ref().map(|p| std::fs::File::open(p).unwrap_or_else(|e| fail(&p.display().to_string(), e)));
    let (stack, _log) = cli.common.start();
    maybe_wait_for_enter(cli.no_wait, &cli.common.device_name());
    let peer = SocketAddr::new(cli.common.host_ip(), cli.port);
    let mut s = TcpStream::connect_timeout(&stack, &peer, Duration::from_secs(30))
        .unwrap_or_else(|e| fail(&format!("connect to {peer}"), e));
    let total = match &input {
        Some(f) => f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len()),
        None => Some(cli.bytes),
    };
    let mut m = Meter::new(!cli.no_hash, total);
    netstack::bulk::exit_on_interrupt(stack.handle(), &m);
    const WRITE: usize = 256 * 1024;
    let pattern = Pattern::new(WRITE);
    let mut buf = vec![0u8; WRITE];
    loop {
        let data = match input.as_mut() {
            Some(f) => {
                let n = f.read(&mut buf).unwrap_or_else(|e| fail("read input", e));
                &buf[..n]
            }
            None => pattern.at(m.bytes, (cli.bytes - m.bytes).min(WRITE as u64) as usize),
        };
        if data.is_empty() {
            break;
        }
        s.write_all(data).unwrap_or_else(|e| fail(&format!("after {} bytes", m.bytes), e));
        m.add(data);
    }
    s.shutdown(Shutdown::Write).unwrap_or_else(|e| fail("shutdown", e));
    // Wait for the peer to close its side (it has then read everything), bounded.
    s.set_read_timeout(Some(CLOSE_WAIT)).unwrap_or_else(|e| fail("set_read_timeout", e));
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => fail("waiting for the peer to close", e),
        }
    }
    eprintln!();
    println!("{}", m.summary());
    eprintln!("{}", netstack::bulk::tcp_report(&stack.tcp_stats()));
    drop(s);
    cli.common.finish(stack);
}
