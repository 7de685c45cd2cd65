//! Helpers for the bulk-transfer bins: the fixed payload pattern, progress and summary lines,
//! and the "press Enter to start" pause.

use sha2::{Digest, Sha256};
use std::io::{BufRead, IsTerminal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Byte `i` of the fixed upload pattern (the chargen alphabet, so captures are readable).
pub fn pattern_byte(i: u64) -> u8 {
    b' ' + (i % 95) as u8
}

/// Fill `buf` with the pattern starting at stream offset `off`.
pub fn fill_pattern(buf: &mut [u8], off: u64) {
    for (j, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(off + j as u64);
    }
}

/// If stdin is a terminal and `no_wait` is false, wait for Enter (so `tcpdump -i tun0` can be
/// started once the device exists). A non-terminal stdin never waits.
pub fn maybe_wait_for_enter(no_wait: bool, iface: &str) {
    if no_wait || !std::io::stdin().is_terminal() {
        return;
    }
    eprintln!("{iface} is up (watch it with `sudo tcpdump -i {iface} -n`). Press Enter to start the transfer.");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// Counts bytes and hashes them, printing a progress line on stderr about once a second.
pub struct Meter {
    pub bytes: u64,
    hash: Sha256,
    start: Instant,
    last: Instant,
    /// `bytes`, readable from a signal handler.
    shared: Arc<AtomicU64>,
}

impl Default for Meter {
    fn default() -> Self {
        Meter::new()
    }
}

impl Meter {
    pub fn new() -> Meter {
        let now = Instant::now();
        Meter { bytes: 0, hash: Sha256::new(), start: now, last: now, shared: Arc::default() }
    }

    pub fn add(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        self.shared.store(self.bytes, Ordering::Relaxed);
        self.hash.update(data);
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            let s = self.start.elapsed().as_secs_f64();
            eprint!("\r{} bytes, {:.1} s, {:.3} Gbit/s   ", self.bytes, s, self.bytes as f64 * 8.0 / s / 1e9);
        }
    }

    /// `bytes=N seconds=S gbit_per_s=R sha256=HEX`
    pub fn summary(self) -> String {
        let s = self.start.elapsed().as_secs_f64();
        let hex: String = self.hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "bytes={} seconds={:.3} gbit_per_s={:.3} sha256={}",
            self.bytes,
            s,
            self.bytes as f64 * 8.0 / s.max(1e-9) / 1e9,
            hex
        )
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once Ctrl-C or SIGTERM arrived: an error the transfer then sees is the interrupt's
/// doing, and the handler is about to report and exit.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Report an error and exit 1 — unless an interrupt caused it: then wait for the interrupt
/// handler, which reports and exits 130.
pub fn fail(what: &str, e: std::io::Error) -> ! {
    if interrupted() {
        loop {
            std::thread::park();
        }
    }
    eprintln!("\nerror: {what}: {e}");
    std::process::exit(1)
}

/// On Ctrl-C or SIGTERM during a transfer: reset the connections (so the peer does not wait
/// for a program that is gone), print what was moved, and exit with status 130.
pub fn exit_on_interrupt(stack: crate::StackHandle, meter: &Meter) {
    let moved = meter.shared.clone();
    let start = meter.start;
    let _ = ctrlc::set_handler(move || {
        INTERRUPTED.store(true, Ordering::SeqCst);
        stack.abort_all();
        let n = moved.load(Ordering::Relaxed);
        let s = start.elapsed().as_secs_f64();
        eprintln!();
        println!("interrupted: bytes={n} seconds={s:.3} gbit_per_s={:.3}", n as f64 * 8.0 / s.max(1e-9) / 1e9);
        std::process::exit(130);
    });
}

/// One line of the TCP counters that show how recovery went (stderr, after the summary).
pub fn tcp_report(s: &crate::proto::tcp::TcpStats) -> String {
    format!(
        "tcp: segments_out={} retransmits={} fast_recoveries={} timeouts={} tlp_probes={} \
         dsacks_in={} spurious_undone={} segments_in={} dropped_in={} malformed_in={}",
        s.segments_out,
        s.retransmits,
        s.fast_retransmits,
        s.timeouts,
        s.tlp_probes,
        s.dsacks_received,
        s.spurious_undone,
        s.segments_in,
        s.dropped,
        s.malformed
    )
}
