//! A `dig`-like lookup through the user-space stack's own stub resolver (RFC 1035 over UDP).
//!
//! `sudo resolve web.test --dns 10.0.0.1 [--type a|aaaa]`: without `--type`, A then AAAA.
//! Prints the answer records (CNAMEs included) with their TTLs, the server and the time.
//! Exits 1 with a one-line reason on NXDOMAIN, a silent server or any other error.

use clap::{Parser, ValueEnum};
use netstack::cli::CommonArgs;
use netstack::proto::dns::{RecordData, RecordType};
use std::time::Instant;

#[derive(ValueEnum, Debug, Clone, Copy)]
enum QType {
    A,
    Aaaa,
}

#[derive(Parser)]
#[command(about = "Resolve a name through the user-space stack's DNS stub resolver (needs --dns ADDR)")]
struct Cli {
    /// The name to look up.
    name: String,
    /// Record type (default: both A and AAAA).
    #[arg(long = "type", value_enum)]
    qtype: Option<QType>,
    #[command(flatten)]
    common: CommonArgs,
}

fn main() {
    let cli = Cli::parse();
    if cli.common.dns.is_empty() && !cli.common.dhcp {
        eprintln!("error: no DNS server: pass --dns ADDR or --tap --dhcp (e.g. --dns 10.0.0.1 for a server on the kernel side)");
        std::process::exit(2);
    }
    let (stack, _log) = cli.common.start();
    let types = match cli.qtype {
        Some(QType::A) => vec![RecordType::A],
        Some(QType::Aaaa) => vec![RecordType::Aaaa],
        None => vec![RecordType::A, RecordType::Aaaa],
    };
    println!("; <<>> netstack resolve <<>> {}", cli.name);
    let start = Instant::now();
    let mut status = 0;
    for t in types {
        println!(";; QUESTION: {}. IN {t}", cli.name.trim_end_matches('.'));
        match stack.lookup(&cli.name, t) {
            Ok(a) if a.records.is_empty() => println!(";; no {t} records (NODATA)"),
            Ok(a) => {
                println!(";; ANSWER SECTION:");
                for r in &a.records {
                    let (ty, data) = match &r.data {
                        RecordData::Addr(ip) => (t.to_string(), ip.to_string()),
                        RecordData::Cname(n) => ("CNAME".to_string(), format!("{n}.")),
                    };
                    println!("{}.\t{}\tIN\t{ty}\t{data}", r.name, r.ttl);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                status = 1;
                break;
            }
        }
        println!();
    }
    let servers: Vec<String> = stack.dns_servers().iter().map(|s| format!("{s}#53")).collect();
    let (queries, _, _) = stack.dns_stats();
    println!(";; Query time: {} msec", start.elapsed().as_millis());
    println!(";; SERVER: {} (UDP), queries sent: {queries}", servers.join(", "));
    cli.common.finish(stack);
    std::process::exit(status);
}
