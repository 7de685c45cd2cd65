//! Helpers for the bulk-transfer bins: the fixed payload pattern, progress (a bar on a
//! terminal) and summary lines,
//! and the "press Enter to start" pause.

use crossbeam_channel::{bounded, Receiver, Sender};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use sha2::{Digest, Sha256};
use std::io::{BufRead, IsTerminal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The pattern repeats every this many bytes: the 95 printable ASCII characters (chargen's
/// alphabet, so captures are readable).
pub const PATTERN_PERIOD: usize = 95;

/// Byte `i` of the fixed upload pattern.
pub fn pattern_byte(i: u64) -> u8 {
    b' ' + (i % PATTERN_PERIOD as u64) as u8
}

/// Fill `buf` with the pattern starting at stream offset `off`, a period at a time.
pub fn fill_pattern(buf: &mut [u8], off: u64) {
    let period: [u8; PATTERN_PERIOD] = std::array::from_fn(|i| pattern_byte(i as u64));
    let mut phase = (off % PATTERN_PERIOD as u64) as usize;
    for chunk in buf.chunks_mut(PATTERN_PERIOD) {
        let len = chunk.len();
        let first = (PATTERN_PERIOD - phase).min(len);
        chunk[..first].copy_from_slice(&period[phase..phase + first]);
        chunk[first..].copy_from_slice(&period[..len - first]);
        phase = (phase + len) % PATTERN_PERIOD;
    }
}

/// The pattern computed once: [`Pattern::at`] borrows any run of up to `max_len` bytes at any
/// stream offset, so a sender spends nothing per byte on making its data.
pub struct Pattern {
    buf: Vec<u8>,
    max_len: usize,
}

impl Pattern {
    pub fn new(max_len: usize) -> Pattern {
        let mut buf = vec![0u8; max_len + PATTERN_PERIOD];
        fill_pattern(&mut buf, 0);
        Pattern { buf, max_len }
    }

    /// The `min(n, max_len)` pattern bytes starting at stream offset `off`.
    pub fn at(&self, off: u64, n: usize) -> &[u8] {
        let phase = (off % PATTERN_PERIOD as u64) as usize;
        &self.buf[phase..phase + n.min(self.max_len)]
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

/// Buffers in flight to the hashing thread (each at most one `add`'s worth), which bounds
/// the memory the hashing costs and makes a hasher that falls behind slow the transfer down
/// rather than queue it.
const HASH_QUEUE: usize = 8;

/// SHA-256 on its own thread, fed copies through a bounded channel, so the transfer's thread
/// (on a small machine, sharing CPUs with the stack's actors) does not hash.
struct Hasher {
    tx: Sender<Vec<u8>>,
    /// Buffers the hasher is done with, for reuse.
    back: Receiver<Vec<u8>>,
    thread: std::thread::JoinHandle<[u8; 32]>,
}

impl Hasher {
    fn spawn() -> Hasher {
        let (tx, rx) = bounded::<Vec<u8>>(HASH_QUEUE);
        let (back_tx, back) = bounded::<Vec<u8>>(HASH_QUEUE + 1);
        let thread = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let mut h = Sha256::new();
                for buf in rx {
                    h.update(&buf);
                    let _ = back_tx.try_send(buf);
                }
                h.finalize().into()
            })
            .expect("spawn the hashing thread");
        Hasher { tx, back, thread }
    }

    fn update(&self, data: &[u8]) {
        let mut buf = self.back.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        // The hasher only ends when `tx` is dropped, so this cannot fail.
        let _ = self.tx.send(buf);
    }

    fn finish(self) -> [u8; 32] {
        drop(self.tx);
        self.thread.join().expect("the hashing thread panicked")
    }
}

/// Counts bytes and (unless made with `hash: false`) hashes them, showing progress on
/// stderr: a bar (bytes, Gbit/s, and ETA when the size is known) on a terminal, else a plain
/// line about once a second.
pub struct Meter {
    pub bytes: u64,
    hasher: Option<Hasher>,
    start: Instant,
    last: Instant,
    /// `bytes`, readable from a signal handler.
    shared: Arc<AtomicU64>,
    /// The terminal's bar (`None`: plain lines).
    bar: Option<ProgressBar>,
}

/// The rate of a bar's transfer so far, in Gbit/s.
fn gbit_per_s(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let s = state.elapsed().as_secs_f64().max(1e-9);
    let _ = write!(w, "{:.3} Gbit/s", state.pos() as f64 * 8.0 / s / 1e9);
}

impl Meter {
    /// A meter for a transfer of `total` bytes, when known (for the ETA).
    pub fn new(hash: bool, total: Option<u64>) -> Meter {
        let now = Instant::now();
        let hasher = hash.then(Hasher::spawn);
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match total {
                Some(n) => (ProgressBar::new(n), "{wide_bar} {bytes}/{total_bytes} {gbps} {elapsed} ETA {eta}"),
                None => (ProgressBar::no_length(), "{spinner} {bytes} {gbps} {elapsed}"),
            };
            let style = ProgressStyle::with_template(template).expect("a valid template").with_key("gbps", gbit_per_s);
            bar.with_style(style)
        });
        Meter { bytes: 0, hasher, start: now, last: now, shared: Arc::default(), bar }
    }

    pub fn add(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        self.shared.store(self.bytes, Ordering::Relaxed);
        if let Some(h) = &self.hasher {
            h.update(data);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.bytes); // an atomic store; indicatif redraws at most 20 times a second
        } else if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            let s = self.start.elapsed().as_secs_f64();
            eprintln!("{} bytes, {:.1} s, {:.3} Gbit/s", self.bytes, s, self.bytes as f64 * 8.0 / s / 1e9);
        }
    }

    /// `bytes=N seconds=S gbit_per_s=R sha256=HEX` (`sha256=skipped` without hashing). The
    /// time is the transfer's: it stops before the hasher's backlog is waited for.
    pub fn summary(self) -> String {
        let s = self.start.elapsed().as_secs_f64();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let hex = match self.hasher {
            Some(h) => h.finish().iter().map(|b| format!("{b:02x}")).collect(),
            None => "skipped".to_string(),
        };
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
    let bar = meter.bar.clone();
    let _ = ctrlc::set_handler(move || {
        INTERRUPTED.store(true, Ordering::SeqCst);
        if let Some(bar) = &bar {
            bar.abandon();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_pattern_agree_with_the_byte_rule() {
        let p = Pattern::new(1000);
        for off in [0u64, 1, 94, 95, 96, 1234567, u64::MAX - 2000] {
            let mut want = vec![0u8; 1000];
            for (j, b) in want.iter_mut().enumerate() {
                *b = pattern_byte(off + j as u64);
            }
            let mut got = vec![0u8; 1000];
            fill_pattern(&mut got, off);
            assert_eq!(got, want, "fill_pattern at {off}");
            assert_eq!(p.at(off, 1000), &want[..], "Pattern::at {off}");
            assert_eq!(p.at(off, 5000).len(), 1000, "clamped to max_len");
        }
    }

    #[test]
    fn threaded_hash_equals_a_direct_one() {
        let mut m = Meter::new(true, None);
        let mut direct = Sha256::new();
        let p = Pattern::new(70_000);
        for i in 0..50u64 {
            let d = p.at(i * 7919, (i as usize * 1337) % 70_000);
            m.add(d);
            direct.update(d);
        }
        let hex: String = direct.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let line = m.summary();
        assert!(line.ends_with(&format!("sha256={hex}")), "{line}");
        assert!(Meter::new(false, None).summary().ends_with("sha256=skipped"));
    }
}
