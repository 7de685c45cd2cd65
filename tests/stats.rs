//! `StackHandle::stats()` (nstat-named counters) and `sockets()` (the `ss -tin` table) move
//! as the traffic says, over an in-memory pair (no root needed).

mod common;
use common::*;
use netstack::device::pair::FaultConfig;
use netstack::proto::tcp::State;
use netstack::{TcpListener, TcpStream, UdpSocket};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[test]
fn counters_follow_drops_and_losses() {
    let lossy = FaultConfig { seed: 5, loss: 0.05, ..FaultConfig::default() };
    let (a, b) = stack_pair(lossy, FaultConfig::default());
    // A datagram to a port nobody listens on: UdpNoPorts on the receiver.
    let u = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    let before = b.stats().get("UdpNoPorts").unwrap();
    u.send_to(b"x", "10.0.0.1:9999").unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while b.stats().get("UdpNoPorts").unwrap() == before {
        assert!(Instant::now() < deadline, "UdpNoPorts never moved");
        std::thread::sleep(Duration::from_millis(5));
    }
    // 2 MiB over a link that drops 5 % of A's packets: A retransmits.
    pair_upload(&a, &b, 5000, 2 << 20);
    let (sa, sb) = (a.stats(), b.stats());
    println!("A:\n{sa}");
    assert!(sa.get("TcpRetransSegs").unwrap() > 0, "losses force retransmissions");
    assert_eq!(sa.get("TcpActiveOpens"), Some(1));
    assert_eq!(sb.get("TcpPassiveOpens"), Some(1));
    assert!(sb.get("IpInReceives").unwrap() >= (2 << 20) / 1460);
    assert!(sa.get("TcpOutSegs").unwrap() >= sb.get("TcpInSegs").unwrap());
}

#[test]
fn socket_table_shows_queues_and_counters() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let l = TcpListener::bind(&b, "0.0.0.0:5001").unwrap();
    let mut c = TcpStream::connect(&a, "10.0.0.1:5001").unwrap();
    let (mut s, peer) = l.accept().unwrap();
    c.write_all(&[7u8; 100_000]).unwrap();
    let mut buf = vec![0u8; 60_000];
    s.read_exact(&mut buf).unwrap(); // 40,000 bytes stay unread on B
    let deadline = Instant::now() + Duration::from_secs(2);
    let row = loop {
        let v = b.sockets().unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        if v[0].bytes_received == 100_000 {
            break v[0].clone();
        }
        assert!(Instant::now() < deadline, "{v:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(row.state, State::Established);
    assert_eq!((row.local, row.remote), ("10.0.0.1:5001".parse().unwrap(), peer));
    assert!(row.recv_queue >= 40_000, "unread bytes are queued: {row:?}");
    let deadline = Instant::now() + Duration::from_secs(2);
    let sender = loop {
        let v = a.sockets().unwrap();
        if v[0].bytes_acked == 100_000 {
            break v[0].clone();
        }
        assert!(Instant::now() < deadline, "the last bytes are acknowledged (delayed ACK at most): {v:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(sender.send_queue, 0);
    assert!(sender.srtt.is_some() && sender.cwnd >= sender.mss && sender.rto > Duration::ZERO, "{sender:?}");
    let text = netstack::ctl::format_ss(&a.sockets().unwrap());
    assert!(text.contains("ESTAB") && text.contains("10.0.0.1:5001") && text.contains("bytes_acked:100000"), "{text}");
}

/// `StackConfig::trace_tcp`: a CSV whose time never goes back, with retransmissions after the
/// link's losses and a congestion window that falls after one.
#[test]
fn tcp_trace_shows_losses_and_cwnd_falling() {
    let file = std::env::temp_dir().join(format!("netstack-trace-{}.csv", std::process::id()));
    let (da, db) = netstack::device::pair::pair(
        1500,
        FaultConfig { seed: 9, loss: 0.02, ..FaultConfig::default() },
        FaultConfig::default(),
    );
    let cfg = netstack::StackConfig { trace_tcp: Some(file.clone()), ..netstack::StackConfig::default() };
    let a = netstack::Stack::new(Box::new(da), cfg, netstack::log::discard()).unwrap();
    let b = netstack::Stack::new(Box::new(db), peer_config(), netstack::log::discard()).unwrap();
    pair_upload(&a, &b, 5002, 4 << 20);
    drop(a);
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name} in {header:?}"));
    let (ti, ei, ci) = (col("time_s"), col("event"), col("cwnd"));
    let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
    assert!(rows.len() > 2800, "a row per segment and ack: {}", rows.len());
    let times: Vec<f64> = rows.iter().map(|r| r[ti].parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[1] >= w[0]), "time is monotone");
    let rexmits = rows.iter().filter(|r| r[ei] == "rexmit").count();
    assert!(rexmits > 0, "2 % loss forces retransmissions");
    let first_rexmit = rows.iter().position(|r| r[ei] == "rexmit").unwrap();
    let cwnd_at =
        |i: usize| -> usize { rows[..=i].iter().rev().find(|r| r[ei] == "ack").map_or(0, |r| r[ci].parse().unwrap()) };
    let before = cwnd_at(first_rexmit);
    let after_min = rows[first_rexmit..]
        .iter()
        .filter(|r| r[ei] == "ack")
        .map(|r| r[ci].parse::<usize>().unwrap())
        .take(50)
        .min()
        .unwrap();
    println!("rows {} rexmits {rexmits} cwnd before the first loss {before}, lowest after {after_min}", rows.len());
    assert!(after_min < before, "cwnd falls after a loss: {before} -> {after_min}");
    if std::env::var_os("KEEP_TRACE").is_none() {
        let _ = std::fs::remove_file(&file);
    }
}

/// At debug level the engine logs each state change and retransmission timeout, with the
/// connection's addresses as keys.
#[test]
fn debug_log_shows_state_changes() {
    use std::sync::{Arc, Mutex};
    struct Collect(Arc<Mutex<Vec<String>>>);
    impl slog::Drain for Collect {
        type Ok = ();
        type Err = slog::Never;
        fn log(&self, r: &slog::Record, kv: &slog::OwnedKVList) -> Result<(), slog::Never> {
            struct Ser(String);
            impl slog::Serializer for Ser {
                fn emit_arguments(&mut self, k: slog::Key, v: &std::fmt::Arguments) -> slog::Result {
                    self.0.push_str(&format!(" {k}={v}"));
                    Ok(())
                }
            }
            let mut s = Ser(format!("{}", r.msg()));
            let _ = slog::KV::serialize(&r.kv(), r, &mut s);
            let _ = slog::KV::serialize(kv, r, &mut s);
            self.0.lock().unwrap().push(s.0);
            Ok(())
        }
    }
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = slog::Logger::root(slog::Drain::fuse(Collect(lines.clone())), slog::o!());
    let (da, db) = netstack::device::pair::pair(1500, FaultConfig::default(), FaultConfig::default());
    let a = netstack::Stack::new(Box::new(da), netstack::StackConfig::default(), log).unwrap();
    let b = netstack::Stack::new(Box::new(db), peer_config(), netstack::log::discard()).unwrap();
    let l = TcpListener::bind(&b, "0.0.0.0:5003").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.1:5003").unwrap();
    let (s, _) = l.accept().unwrap();
    drop(c);
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    let lines = lines.lock().unwrap().clone();
    let states: Vec<&String> = lines.iter().filter(|l| l.starts_with("tcp state")).collect();
    assert!(
        states
            .iter()
            .any(|l| l.contains("from=SynSent") && l.contains("to=Established") && l.contains("remote=10.0.0.1:5003")),
        "{lines:#?}"
    );
    assert!(states.iter().any(|l| l.contains("to=FinWait1")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("segment")), "nothing per packet at debug: {lines:#?}");
}
