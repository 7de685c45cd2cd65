//! Crafted packets against a live connection (issue 7, item 7), no root needed.
//!
//! Two stacks talk through a relay in the middle of two in-memory pairs
//! (`A <-pair-> relay <-pair-> B`). The relay forwards every packet, watches the TCP
//! segments go by (so it knows sequence numbers, windows and ports, as an on-path observer
//! would) and injects forged packets into A: an ICMP echo flood, blind RFC 5961 injection
//! (in-window RST and SYN, data with an unacceptable ACK), forged ICMP errors (RFC 5927).
//! Each test runs a transfer both ways at the same time and checks it completes exact.

mod common;
use common::*;
use netstack::buf::{Batch, Pool};
use netstack::device::pair::{pair, FaultConfig};
use netstack::device::{DevRx, DevTx, Device, StopHandle};
use netstack::wire::tcp::{TcpFlags, TcpOptions, TcpRepr};
use netstack::wire::{self, IpProtocol, Ipv4Header};
use netstack::{Stack, StackConfig, TcpListener, TcpStream};
use parking_lot::Mutex;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PORT: u16 = 7000;
/// Writers send 64 KiB per PACE: 8 MiB take about a second.
const PACE: Duration = Duration::from_millis(7);

/// What the relay has seen of the connection, as an on-path observer.
#[derive(Default, Debug, Clone, Copy)]
struct Seen {
    b_port: u16,
    /// Highest sequence end A sent (A's SND.MAX) and the last ACK / window A sent.
    a_snd_max: u32,
    a_ack: u32,
    a_wnd: u32,
    a_ws: u8,
    /// Highest sequence end B sent and the last ACK B sent (≈ A's SND.UNA).
    b_snd_max: u32,
    b_ack: u32,
    /// A's last data segment's first bytes (IP header + 8 bytes of TCP), to quote.
    a_quote: [u8; 28],
    a_data_segs: u64,
    /// Largest IP packet A sent since the last reset of this field.
    a_max_packet: usize,
    /// ICMP echo replies A sent (swallowed by the relay).
    echo_replies: u64,
}

struct Relay {
    to_a: Arc<Mutex<Box<dyn DevTx>>>,
    seen: Arc<Mutex<Seen>>,
    stops: Vec<StopHandle>,
    threads: Vec<JoinHandle<()>>,
    pool: Pool,
}

fn observe(seen: &Mutex<Seen>, from_a: bool, p: &[u8]) -> bool {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return true;
    }
    let ihl = ((p[0] & 0xf) as usize) * 4;
    let mut s = seen.lock();
    if from_a {
        s.a_max_packet = s.a_max_packet.max(p.len());
    }
    if p[9] == 1 && from_a && p.get(ihl) == Some(&0) {
        s.echo_replies += 1;
        return false; // B has no use for them
    }
    if p[9] != 6 {
        return true;
    }
    let (src, dst) = (IpAddr::from([p[12], p[13], p[14], p[15]]), IpAddr::from([p[16], p[17], p[18], p[19]]));
    let Ok((r, hlen)) = TcpRepr::parse(&p[ihl..], src, dst) else { return true };
    let len = (p.len() - ihl - hlen) as u32;
    let end = r.seq.wrapping_add(len + r.flags.syn as u32 + r.flags.fin as u32);
    let after = |a: u32, b: u32| (a.wrapping_sub(b) as i32) > 0;
    if from_a {
        if r.flags.syn {
            s.a_ws = r.options.window_scale.unwrap_or(0);
            s.b_port = r.dst_port;
        }
        if s.a_snd_max == 0 || after(end, s.a_snd_max) {
            s.a_snd_max = end;
        }
        s.a_ack = r.ack;
        s.a_wnd = (r.window as u32) << if r.flags.syn { 0 } else { s.a_ws };
        if len > 0 {
            s.a_quote.copy_from_slice(&p[..28]);
            s.a_data_segs += 1;
        }
    } else {
        if s.b_snd_max == 0 || after(end, s.b_snd_max) {
            s.b_snd_max = end;
        }
        if r.flags.ack {
            s.b_ack = r.ack;
        }
    }
    true
}

fn forward(
    mut rx: Box<dyn DevRx>,
    tx: Arc<Mutex<Box<dyn DevTx>>>,
    seen: Arc<Mutex<Seen>>,
    from_a: bool,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let pool = Pool::default();
        loop {
            let mut b: Batch = Vec::new();
            match rx.recv_batch(&pool, &mut b, 64) {
                Ok(true) => {
                    b.retain(|p| observe(&seen, from_a, p));
                    tx.lock().send_batch(&mut b, &pool);
                }
                _ => return,
            }
        }
    })
}

impl Relay {
    /// Stacks A (10.0.0.2) and B (10.0.0.1) with the relay between them.
    fn new() -> (Stack, Stack, Relay) {
        let (da, ma) = pair(1500, FaultConfig::default(), FaultConfig::default());
        let (mb, db) = pair(1500, FaultConfig::default(), FaultConfig::default());
        let a = Stack::new(Box::new(da), StackConfig::default(), netstack::log::discard()).unwrap();
        let b = Stack::new(Box::new(db), peer_config(), netstack::log::discard()).unwrap();
        let (ma_rx, ma_tx) = Box::new(ma).split().unwrap();
        let (mb_rx, mb_tx) = Box::new(mb).split().unwrap();
        let to_a = Arc::new(Mutex::new(ma_tx));
        let to_b = Arc::new(Mutex::new(mb_tx));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stops = vec![ma_rx.stop_handle(), mb_rx.stop_handle()];
        let threads = vec![forward(ma_rx, to_b, seen.clone(), true), forward(mb_rx, to_a.clone(), seen.clone(), false)];
        (a, b, Relay { to_a, seen, stops, threads, pool: Pool::default() })
    }

    fn seen(&self) -> Seen {
        *self.seen.lock()
    }

    /// Inject packets into A; returns how many the link dropped (full).
    fn inject(&self, pkts: Vec<Vec<u8>>) -> usize {
        let mut b: Batch = pkts;
        self.to_a.lock().send_batch(&mut b, &self.pool)
    }

    fn stop(self) {
        for s in &self.stops {
            s();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// `size` bytes each way between A (listening on 7000) and B, each writer pacing itself to
/// 64 KiB per `PACE` so the transfer lasts about a second; the result says whether both
/// sides received the other's bytes exact, and how long it took.
fn transfer(a: &Stack, b: &Stack, size: usize) -> JoinHandle<Result<Duration, String>> {
    let l = TcpListener::bind(a, (A, PORT)).unwrap();
    let b = b.handle();
    thread::spawn(move || {
        let t0 = Instant::now();
        let server = thread::spawn(move || -> Result<Vec<u8>, String> {
            let (s, _) = l.accept().map_err(|e| e.to_string())?;
            duplex(s, pattern(size, 1))
        });
        let c = TcpStream::connect(&b, (A, PORT)).map_err(|e| e.to_string())?;
        let got_b = duplex(c, pattern(size, 2))?;
        let got_a = server.join().map_err(|_| "server panicked".to_string())??;
        if sha256_hex(&got_a) != sha256_hex(&pattern(size, 2)) || got_a.len() != size {
            return Err(format!("A received {} bytes, not B's exact {size}", got_a.len()));
        }
        if sha256_hex(&got_b) != sha256_hex(&pattern(size, 1)) || got_b.len() != size {
            return Err(format!("B received {} bytes, not A's exact {size}", got_b.len()));
        }
        Ok(t0.elapsed())
    })
}

fn duplex(s: TcpStream, data: Vec<u8>) -> Result<Vec<u8>, String> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let w = s.try_clone().unwrap();
    let writer = thread::spawn(move || -> Result<(), String> {
        let mut w = w;
        for chunk in data.chunks(64 << 10) {
            w.write_all(chunk).map_err(|e| format!("write: {e}"))?;
            thread::sleep(PACE);
        }
        w.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))
    });
    let mut got = Vec::new();
    (&s).read_to_end(&mut got).map_err(|e| format!("read after {} bytes: {e}", got.len()))?;
    writer.join().map_err(|_| "writer panicked".to_string())??;
    Ok(got)
}

fn ip4(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 20 + payload.len()];
    let h = Ipv4Header { src, dst, proto, ident: 1, frag_offset: 0, more_frags: false, dont_frag: false, ttl: 64 };
    wire::emit_ipv4_header(&mut b, &h, payload.len());
    b[20..].copy_from_slice(payload);
    b
}

fn echo_request(seq: u16) -> Vec<u8> {
    let mut m = vec![8u8, 0, 0, 0, 0x42, 0x42, (seq >> 8) as u8, seq as u8];
    m.extend_from_slice(&[0x55; 56]);
    let c = !wire::ones_sum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ip4(B, A, IpProtocol::Icmp, &m)
}

/// A segment from B's address and port to A's listener port.
fn forged(s: &Seen, seq: u32, ack: u32, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
    let r = TcpRepr {
        src_port: s.b_port,
        dst_port: PORT,
        seq,
        ack,
        flags,
        window: 1000,
        urgent: 0,
        options: TcpOptions::default(),
    };
    let mut b = Vec::new();
    wire::gso::build_packet_into(&mut b, 1, B.into(), A.into(), &r, payload);
    b
}

/// An ICMPv4 error `[type, code]` (with `mtu` in the next-hop field) from B quoting A's last
/// data segment with its sequence number replaced by `seq`.
fn icmp_error(s: &Seen, type_code: [u8; 2], mtu: u16, seq: u32) -> Vec<u8> {
    let mut m = vec![type_code[0], type_code[1], 0, 0, 0, 0];
    m.extend_from_slice(&mtu.to_be_bytes());
    let mut quote = s.a_quote;
    quote[24..28].copy_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&quote);
    let c = !wire::ones_sum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ip4(B, A, IpProtocol::Icmp, &m)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

fn ip_stat(s: &Stack, name: &str) -> u64 {
    s.stats.ip.snapshot().into_iter().find(|(k, _)| *k == name).unwrap().1
}

/// 20,000 echo requests in about a second while 8 MiB move each way: replies stay within
/// the echo token bucket (rate·t + burst) and the transfer completes exact.
#[test]
fn echo_flood_is_rate_limited_while_tcp_keeps_going() {
    let (a, b, relay) = Relay::new();
    let size = 8 << 20;
    let xfer = transfer(&a, &b, size);
    let rate = a.config().ip.echo_rate as f64;
    let burst = a.config().ip.echo_burst as f64;
    let t0 = Instant::now();
    let (mut sent, mut link_drops) = (0u32, 0usize);
    for ms in 0..1000u32 {
        let batch: Vec<_> = (0..20).map(|i| echo_request((ms * 20 + i) as u16)).collect();
        sent += batch.len() as u32;
        link_drops += relay.inject(batch);
        let due = t0 + Duration::from_millis(ms as u64 + 1);
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let flood_secs = t0.elapsed().as_secs_f64();
    // Every request that got through the link is either answered or counted as limited.
    wait_for("the flood to be processed", || {
        ip_stat(&a, "tx_echo_replies") + ip_stat(&a, "echo_rate_limited") >= (sent as usize - link_drops) as u64
    });
    let replies = ip_stat(&a, "tx_echo_replies");
    let t = t0.elapsed().as_secs_f64();
    let limited = ip_stat(&a, "echo_rate_limited");
    let r = xfer.join().unwrap();
    println!(
        "echo flood: {sent} requests in {flood_secs:.2} s ({link_drops} dropped by the full link), \
         {replies} replies, {limited} rate-limited, bound {:.0}; 2 x {} MiB paced transfer: {r:?}",
        rate * t + burst,
        size >> 20
    );
    let took = r.unwrap();
    assert!(took.as_secs_f64() > flood_secs * 0.8, "the transfer overlapped the flood ({took:?})");
    assert!(replies as f64 <= rate * t + burst, "{replies} replies in {t:.2} s");
    assert!(replies >= burst as u64, "the flood was answered at the rate, not starved: {replies}");
    assert!(limited > 10_000, "{limited}");
    assert!(relay.seen().echo_replies <= replies);
    relay.stop();
}

/// RFC 5961: blind in-window RST, in-window SYN and data with an unacceptable ACK, injected
/// hundreds of times into A while 8 MiB move each way: the connection survives, A answers
/// with challenge ACKs at most once per 500 ms, no injected byte reaches either application.
#[test]
fn blind_injection_rfc5961_neither_kills_nor_corrupts() {
    let (a, b, relay) = Relay::new();
    let size = 8 << 20;
    let xfer = transfer(&a, &b, size);
    wait_for("data to flow", || relay.seen().a_data_segs > 20 && relay.seen().b_snd_max != 0);
    let before = a.tcp_stats();
    let t0 = Instant::now();
    let mut rounds = 0;
    let mut kinds = [0u32; 4];
    while t0.elapsed() < Duration::from_secs(2) && !xfer.is_finished() {
        let s = relay.seen();
        // In A's receive window, never at RCV.NXT: A's RCV.NXT is at most what B sent.
        let left = if (s.b_snd_max.wrapping_sub(s.a_ack) as i32) > 0 { s.b_snd_max } else { s.a_ack };
        let right = s.a_ack.wrapping_add(s.a_wnd);
        let room = right.wrapping_sub(left) as i32;
        if room > 200 {
            let in_win = left.wrapping_add(1 + (rounds as u32 * 7919) % (room as u32 - 100));
            let rst = TcpFlags { rst: true, ..Default::default() };
            let syn = TcpFlags { syn: true, ..Default::default() };
            let ack = TcpFlags { ack: true, psh: true, ..Default::default() };
            let evil = [0xEE; 100];
            relay.inject(vec![
                forged(&s, in_win, 0, rst, &[]),
                forged(&s, in_win, 0, syn, &[]),
                // Data at A's RCV.NXT (as last acknowledged) with an ACK of data A never
                // sent, and with one far below SND.UNA (RFC 5961 §5.2).
                forged(&s, s.a_ack, s.a_snd_max.wrapping_add(0x4000_0000), ack, &evil),
                forged(&s, s.a_ack, s.b_ack.wrapping_sub(0x4000_0000), ack, &evil),
            ]);
            for k in &mut kinds {
                *k += 1;
            }
            rounds += 1;
        }
        thread::sleep(Duration::from_millis(2));
    }
    let inject_secs = t0.elapsed().as_secs_f64();
    let after_inject = a.tcp_stats();
    let r = xfer.join().unwrap();
    let after = a.tcp_stats();
    println!(
        "blind injection: {rounds} rounds x 4 forged segments in {inject_secs:.2} s; A: challenge ACKs {} -> {}, \
         rst_in {} -> {}; transfer {r:?}",
        before.challenge_acks, after.challenge_acks, before.rst_in, after.rst_in
    );
    r.unwrap();
    assert!(rounds >= 200, "injected only {rounds} rounds");
    let challenges = after_inject.challenge_acks - before.challenge_acks;
    assert!(challenges >= 1, "in-window RST/SYN draw a challenge ACK");
    // One per 500 ms per connection (RFC 5961 §7), plus one at each edge of the window.
    assert!(challenges as f64 <= inject_secs / 0.5 + 2.0, "{challenges} challenge ACKs in {inject_secs:.2} s");
    relay.stop();
}

/// RFC 5927: forged ICMP errors for A's connection — port and host unreachable quoting a
/// sequence number A has in flight or one outside SND.UNA..SND.MAX, frag-needed with an
/// absurd MTU (40, below the IPv4 minimum of 68) in and out of the window — never abort
/// it; an out-of-window frag-needed does not shrink A's segments; the transfer is exact.
#[test]
fn forged_icmp_errors_do_not_abort_an_established_connection() {
    let (a, b, relay) = Relay::new();
    let size = 8 << 20;
    let xfer = transfer(&a, &b, size);
    wait_for("data to flow", || relay.seen().a_data_segs > 20);
    let s = relay.seen();
    let outside = s.a_snd_max.wrapping_add(0x1000_0000);
    let rx_errors = ip_stat(&a, "rx_icmp_errors");
    // First the out-of-window ones: nothing changes.
    let mut forged_errors = Vec::new();
    for _ in 0..50 {
        forged_errors.push(icmp_error(&s, [3, 3], 0, outside)); // port unreachable
        forged_errors.push(icmp_error(&s, [3, 1], 0, outside)); // host unreachable
        forged_errors.push(icmp_error(&s, [3, 4], 40, outside)); // frag needed, MTU 40
        forged_errors.push(icmp_error(&s, [3, 4], 576, outside));
    }
    relay.inject(forged_errors);
    wait_for("the forged errors to arrive", || ip_stat(&a, "rx_icmp_errors") >= rx_errors + 200);
    let segs = {
        let mut g = relay.seen.lock();
        g.a_max_packet = 0;
        g.a_data_segs
    };
    wait_for("A to keep sending", || relay.seen().a_data_segs > segs + 200 || xfer.is_finished());
    let big = relay.seen().a_max_packet;
    if !xfer.is_finished() {
        assert_eq!(big, 1500, "an out-of-window frag-needed must not shrink A's segments");
    }
    // Then in-window ones (quoting a sequence number A had in flight).
    let s = relay.seen();
    let in_flight = u32::from_be_bytes([s.a_quote[24], s.a_quote[25], s.a_quote[26], s.a_quote[27]]);
    let mut forged_errors = Vec::new();
    for _ in 0..20 {
        forged_errors.push(icmp_error(&s, [3, 3], 0, in_flight));
        forged_errors.push(icmp_error(&s, [3, 1], 0, in_flight));
        forged_errors.push(icmp_error(&s, [3, 4], 40, in_flight));
    }
    relay.inject(forged_errors);
    let r = xfer.join().unwrap();
    println!(
        "forged ICMP: A received {} ICMP errors; largest A packet after the out-of-window ones {big}; transfer {r:?}",
        ip_stat(&a, "rx_icmp_errors") - rx_errors
    );
    r.unwrap();
    relay.stop();
}
