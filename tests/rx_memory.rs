//! Issue 7, crafted test 1: a peer that sends 100,000 one-byte segments, each in its own
//! packet, to a socket that never reads must not grow the process by more than 8 MiB
//! (receive memory is charged in bytes held, and small in-order segments are coalesced).
//!
//! The peer is this test itself, on the far side of the in-memory pair device: it completes
//! the handshake by hand, then sends one byte at a time, waiting for the stack to process
//! each packet before the next (so no batching in the stack can join them), and follows the
//! window from the stack's ACKs (a closed window is probed with one byte at the edge, as a
//! hostile peer would keep sending). Afterwards every byte the stack acknowledged must be
//! readable from the socket, exactly. Its own test binary, so the RSS it measures is this
//! test's alone.

use netstack::buf::{Batch, Pool};
use netstack::device::pair::{pair, FaultConfig};
use netstack::device::{DevRx, DevTx, Device};
use netstack::wire::tcp::{TcpFlags, TcpOptions, TcpRepr};
use netstack::wire::{self, IpProtocol, Ipv4Header};
use netstack::{Stack, StackConfig, TcpListener};
use parking_lot::{Condvar, Mutex};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const US4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PORT: u16 = 7019;
const PEER_PORT: u16 = 40_000;
const N: usize = 100_000;
const RSS_BOUND: u64 = 8 << 20;

/// What the peer learned from the stack's segments.
#[derive(Default)]
struct View {
    /// The stack's SYN-ACK: (ISS, window scale).
    synack: Option<(u32, u8)>,
    /// Latest acknowledgment number and window (scaled), once synchronized.
    ack: Option<u32>,
    wnd: usize,
    wscale: u8,
    rst: bool,
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("statm resident");
    pages * 4096
}

fn byte_at(k: usize) -> u8 {
    (k.wrapping_mul(7) ^ (k >> 8)) as u8
}

fn segment(seq: u32, ack: u32, flags: TcpFlags, options: TcpOptions, payload: &[u8]) -> Vec<u8> {
    let r = TcpRepr { src_port: PEER_PORT, dst_port: PORT, seq, ack, flags, window: 65535, urgent: 0, options };
    let tlen = r.header_len() + payload.len();
    let mut b = vec![0u8; 20 + tlen];
    let h = Ipv4Header {
        src: PEER4,
        dst: US4,
        proto: IpProtocol::Tcp,
        ident: 1,
        frag_offset: 0,
        more_frags: false,
        dont_frag: true,
        ttl: 64,
    };
    wire::emit_ipv4_header(&mut b, &h, tlen);
    r.emit(&mut b[20..], payload, IpAddr::V4(PEER4), IpAddr::V4(US4));
    b
}

/// Read the stack's packets and keep the latest ACK and window in `view`.
fn reader(mut rx: Box<dyn DevRx>, view: Arc<(Mutex<View>, Condvar)>) {
    let pool = Pool::default();
    loop {
        let mut b: Batch = Vec::new();
        match rx.recv_batch(&pool, &mut b, 64) {
            Ok(true) => {}
            _ => return,
        }
        for p in &b {
            if p.len() < 40 || p[0] >> 4 != 4 || p[9] != 6 {
                continue;
            }
            let ihl = (p[0] & 0x0f) as usize * 4;
            let total = u16::from_be_bytes([p[2], p[3]]) as usize;
            let Some(seg) = p.get(ihl..total) else { continue };
            let Ok((r, _)) = TcpRepr::parse(seg, IpAddr::V4(US4), IpAddr::V4(PEER4)) else { continue };
            if r.dst_port != PEER_PORT {
                continue;
            }
            let mut v = view.0.lock();
            if r.flags.rst {
                v.rst = true;
            } else if r.flags.syn && r.flags.ack {
                v.synack = Some((r.seq, r.options.window_scale.unwrap_or(0)));
                v.wscale = r.options.window_scale.unwrap_or(0);
                v.ack = Some(r.ack);
                v.wnd = r.window as usize; // never scaled on a SYN (RFC 7323 §2.2)
            } else if r.flags.ack {
                v.ack = Some(r.ack);
                v.wnd = (r.window as usize) << v.wscale;
            }
            view.1.notify_all();
        }
    }
}

fn wait_for<T>(view: &(Mutex<View>, Condvar), what: &str, mut f: impl FnMut(&View) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut v = view.0.lock();
    loop {
        assert!(!v.rst, "the stack reset the connection while waiting for {what}");
        if let Some(t) = f(&v) {
            return t;
        }
        assert!(!view.1.wait_until(&mut v, deadline).timed_out(), "timed out waiting for {what}");
    }
}

/// Wait until the engine has processed `n` segments in all (its counters are published
/// after each flush, so the previous segment's events have left the engine).
fn wait_processed(stack: &Stack, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.tcp_stats().segments_in < n {
        assert!(Instant::now() < deadline, "the engine stopped consuming segments");
        std::thread::yield_now();
    }
}

/// Both runs in one test, one after the other: the RSS measured is the process's.
#[test]
fn hundred_thousand_one_byte_segments_to_a_non_reading_socket() {
    // The default 1 MiB buffer: every byte fits in the window.
    let accepted = run(StackConfig::default());
    assert_eq!(accepted, N, "every in-window byte was accepted");
    // A 32 KiB buffer: the window closes once the 32 KiB first advertised are in (a window
    // never shrinks, so the overhead charged on top stays the receiver's), and the peer
    // keeps probing it for the rest of its 100,000 segments.
    // No auto-tuning ceiling above it: the window scale is then 0 and the bound exact (a
    // larger shift lets the window's rounding pass the buffer, by at most an eighth of it
    // and 2^shift when each ACK covers fewer bytes than 2^shift).
    let mut cfg = StackConfig::default();
    cfg.tcp.recv_buf = 32 * 1024;
    cfg.tcp.recv_buf_max = 32 * 1024;
    let accepted = run(cfg);
    assert!(accepted <= 32 * 1024, "no more than the buffer: {accepted}");
    assert!(accepted > 30 * 1024, "the window closed early: {accepted}");
}

/// One run; returns the bytes the stack accepted.
fn run(cfg: StackConfig) -> usize {
    let (da, db) = pair(1500, FaultConfig::default(), FaultConfig::default());
    let stack = Stack::new(Box::new(da), cfg, netstack::log::discard()).unwrap();
    let recv_buf = stack.config().tcp.recv_buf;
    let (rx, mut tx): (Box<dyn DevRx>, Box<dyn DevTx>) = Box::new(db).split().expect("split the pair");
    let stop = rx.stop_handle();
    let view = Arc::new((Mutex::new(View::default()), Condvar::new()));
    let rd = {
        let view = view.clone();
        std::thread::spawn(move || reader(rx, view))
    };
    let pool = Pool::default();
    let mut send = |p: Vec<u8>| assert_eq!(tx.send_batch(&mut vec![p], &pool), 0, "pair link full");

    let listener = TcpListener::bind(&stack, (US4, PORT)).unwrap();
    // Handshake by hand: SYN with MSS and window scale (so the stack may open its whole
    // receive buffer), no timestamps or SACK.
    let iss: u32 = 0xfff0_0000; // the sequence space wraps during the run
    let syn_opts = TcpOptions { mss: Some(1460), window_scale: Some(7), ..TcpOptions::default() };
    send(segment(iss, 0, TcpFlags { syn: true, ..TcpFlags::default() }, syn_opts, &[]));
    let (their_iss, _) = wait_for(&view, "the SYN-ACK", |v| v.synack);
    let ack_flags = TcpFlags { ack: true, ..TcpFlags::default() };
    let our_ack = their_iss.wrapping_add(1);
    let base = iss.wrapping_add(1);
    send(segment(base, our_ack, ack_flags, TcpOptions::default(), &[]));
    let (stream, _) = listener.accept().unwrap();
    wait_processed(&stack, 2);
    let mut processed = 2u64;

    let before = rss_bytes();
    let mut peak = before;
    let mut nxt = base; // next sequence number to send
    let mut probes = 0usize;
    let data_flags = TcpFlags { ack: true, psh: true, ..TcpFlags::default() };
    for i in 0..N {
        let (ack, wnd) = {
            let v = view.0.lock();
            assert!(!v.rst, "the stack reset the connection");
            (v.ack.unwrap_or(base), v.wnd)
        };
        if wire_lt(nxt, ack) {
            nxt = ack; // (never: the peer only sends what the window allows)
        }
        // The right edge of any window the stack advertised stays valid: it never shrinks
        // its window (RFC 9293 §3.8.6.2.2), so a stale (delayed) ACK is a safe guide.
        let in_window = (nxt.wrapping_sub(ack) as usize) < wnd;
        let k = nxt.wrapping_sub(base) as usize;
        send(segment(nxt, our_ack, data_flags, TcpOptions::default(), &[byte_at(k)]));
        processed += 1;
        wait_processed(&stack, processed);
        if in_window {
            nxt = nxt.wrapping_add(1);
        } else {
            // A closed window: the byte was a probe (answered by an ACK at once).
            probes += 1;
        }
        if i % 1000 == 0 {
            peak = peak.max(rss_bytes());
        }
    }
    // The last ACK (possibly delayed) covers every byte sent in the window.
    let want = nxt;
    wait_for(&view, "the final ACK", |v| v.ack.filter(|a| !wire_lt(*a, want)));
    peak = peak.max(rss_bytes());
    let growth = peak.saturating_sub(before);
    let accepted = nxt.wrapping_sub(base) as usize;
    let st = stack.tcp_stats();
    println!(
        "rx_memory: {N} one-byte segments, {accepted} accepted, {probes} probes of a closed window, \
         recv_buf {recv_buf}, RSS {} KiB -> peak {} KiB (growth {} KiB), tcp stats {st:?}",
        before / 1024,
        peak / 1024,
        growth / 1024
    );
    assert!(accepted > 0, "nothing was accepted");
    assert!(growth < RSS_BOUND, "RSS grew by {growth} bytes (bound {RSS_BOUND}) for {accepted} bytes accepted");

    // Everything acknowledged is readable, exactly.
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = vec![0u8; accepted];
    (&stream).read_exact(&mut got).expect("read back every acknowledged byte");
    let bad = (0..accepted).find(|&k| got[k] != byte_at(k));
    assert_eq!(bad, None, "byte {bad:?} differs from what was sent");
    let mut more = [0u8; 1];
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!((&stream).read(&mut more).is_err(), "more bytes than were acknowledged");

    // The inboxes' byte budgets balance (every byte reserved was given back), and nothing
    // was dropped on the way.
    assert_eq!((stack.stats.ip_inbox.queued(), stack.stats.tcp_inbox.queued()), (0, 0));
    assert_eq!((stack.stats.ip_inbox.dropped(), stack.stats.tcp_inbox.dropped()), (0, 0));
    drop(stream);
    drop(listener);
    stop();
    rd.join().unwrap();
    stack.shutdown();
    accepted
}

fn wire_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
