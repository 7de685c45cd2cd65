//! What the engine tells a human about its connections, when asked: state changes and
//! retransmission timeouts for the log ([`Diag`]), and a per-event trace of the sender
//! ([`TraceRow`]: each segment sent or retransmitted and each acknowledgment that moved it)
//! for `--trace-tcp` and `scripts/plot_tcp.py`.
//!
//! Both are off unless the caller turns them on ([`super::Endpoint::set_diagnostics`],
//! [`super::Endpoint::set_trace`]), and both are bounded: what does not fit before the caller
//! drains them is dropped and counted ([`DIAG_QUEUE`], [`TRACE_ROWS`]). Pure: times are the
//! `now` the engine was given.

use super::{ConnId, State};
use std::net::SocketAddr;
use std::time::Duration;

/// Diagnostics held for the caller at most (one batch's worth is far less).
pub const DIAG_QUEUE: usize = 4096;
/// Trace rows held for the caller at most.
pub const TRACE_ROWS: usize = 1 << 16;

/// A change worth a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Diag {
    /// The connection moved from one RFC 9293 state to another.
    State { conn: ConnId, local: SocketAddr, remote: SocketAddr, from: State, to: State },
    /// The retransmission timer fired (RFC 6298 §5.4–5.6): `rto` is the backed-off timeout
    /// now armed, `retries` the consecutive timeouts so far.
    Timeout { conn: ConnId, local: SocketAddr, remote: SocketAddr, rto: Duration, retries: u32 },
}

/// What a trace row records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A segment of new data (or a FIN) was sent.
    Send,
    /// A segment was sent again.
    Rexmit,
    /// An acknowledgment moved SND.UNA or delivered SACKed data.
    Ack,
}

impl TraceEvent {
    pub fn name(self) -> &'static str {
        match self {
            TraceEvent::Send => "send",
            TraceEvent::Rexmit => "rexmit",
            TraceEvent::Ack => "ack",
        }
    }
}

/// One sender event with the sender's state after it. Sequence numbers are relative to the
/// ISS (they wrap after 4 GiB, as the header's do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceRow {
    /// Since the engine's epoch.
    pub at: Duration,
    pub conn: ConnId,
    pub event: TraceEvent,
    /// The segment's range (`Ack`: SND.UNA before and after).
    pub seq: u32,
    pub end: u32,
    pub snd_una: u32,
    pub cwnd: usize,
    pub ssthresh: usize,
    pub in_flight: usize,
    pub srtt: Option<Duration>,
    pub rto: Duration,
}

/// The CSV header of [`TraceRow::csv`].
pub const TRACE_CSV_HEADER: &str = "time_s,conn,event,seq,end,snd_una,cwnd,ssthresh,in_flight,srtt_ms,rto_ms";

impl TraceRow {
    /// The row as one CSV line (no newline), times in seconds and milliseconds.
    pub fn csv(&self, epoch_offset: Duration) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "{:.6},{},{},{},{},{},{},{},{},{:.3},{:.3}",
            (self.at + epoch_offset).as_secs_f64(),
            self.conn,
            self.event.name(),
            self.seq,
            self.end,
            self.snd_una,
            self.cwnd,
            self.ssthresh.min(u64::MAX as usize),
            self.in_flight,
            self.srtt.map_or(0.0, ms),
            ms(self.rto)
        )
    }
}
