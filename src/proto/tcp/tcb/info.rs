//! A connection's state as `ss -tin` shows it ([`TcpInfo`]), read from the TCB without
//! changing it, and the per-connection counters behind it ([`ConnCounters`]).

use super::super::diag::{Diag, TraceEvent, TraceRow, TRACE_ROWS};
use super::{Ctx, State, Tcb};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Counters one connection keeps for [`TcpInfo`] (Linux's `tcp_info` has the same ones).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnCounters {
    /// Segments retransmitted (`tcpi_total_retrans`).
    pub retransmits: u64,
    /// Bytes cumulatively acknowledged by the peer (`tcpi_bytes_acked`).
    pub bytes_acked: u64,
    /// In-order payload bytes received (`tcpi_bytes_received`).
    pub bytes_received: u64,
    /// The last usable delivery-rate sample, bytes per second (`tcpi_delivery_rate`).
    pub delivery_rate: u64,
    /// Retransmission timeouts (`tcpi_retransmits` counts consecutive ones; this all).
    pub timeouts: u64,
}

/// One connection, with the fields of `ss -tin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: State,
    /// Bytes written by the application and not yet acknowledged (ss's Send-Q).
    pub send_queue: usize,
    /// Bytes the receive queue holds against the window, not yet read by the application
    /// (charged as Linux's truesize: payload plus per-chunk overhead; ss's Recv-Q).
    pub recv_queue: usize,
    /// Congestion window and slow-start threshold in bytes.
    pub cwnd: usize,
    pub ssthresh: usize,
    /// Sender MSS in use.
    pub mss: usize,
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    pub rto: Duration,
    /// Bytes in flight (RFC 6675 pipe).
    pub in_flight: usize,
    /// The peer's window and ours, in bytes.
    pub snd_wnd: usize,
    pub rcv_wnd: usize,
    pub retransmits: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    /// Bytes per second, from the last rate sample (0: none yet).
    pub delivery_rate: u64,
    /// Retransmission timeouts so far.
    pub timeouts: u64,
    /// The congestion control algorithm's name.
    pub congestion: &'static str,
}

impl Tcb {
    /// The state change and the retransmission timeout since the last call, as diagnostics.
    pub(crate) fn take_diag(&mut self, out: &mut impl FnMut(Diag)) {
        let (conn, local, remote) = (self.id, self.local, self.remote);
        if self.logged.0 != self.state {
            out(Diag::State { conn, local, remote, from: self.logged.0, to: self.state });
            self.logged.0 = self.state;
        }
        if self.logged.1 != self.counters.timeouts {
            self.logged.1 = self.counters.timeouts;
            out(Diag::Timeout { conn, local, remote, rto: self.rtt.rto(), retries: self.retries });
        }
    }

    /// Record `event` for `[seq, end)` with the sender's state, when tracing.
    pub(super) fn trace(&self, now: Instant, ctx: &mut Ctx, event: TraceEvent, seq: u32, end: u32) {
        let Some(rows) = ctx.trace.as_deref_mut() else { return };
        if rows.len() >= TRACE_ROWS {
            return; // the caller drains every batch; a full buffer drops (the row count shows it)
        }
        let base = self.iss.wrapping_add(1);
        rows.push(TraceRow {
            at: now.saturating_duration_since(ctx.epoch),
            conn: self.id,
            event,
            seq: seq.wrapping_sub(base),
            end: end.wrapping_sub(base),
            snd_una: self.snd_una.wrapping_sub(base),
            cwnd: self.cwnd(),
            ssthresh: self.cc.ssthresh(),
            in_flight: self.pipe(),
            srtt: self.rtt.srtt,
            rto: self.rtt.rto(),
        });
    }

    /// The connection as `ss -tin` would show it.
    pub fn info(&self) -> TcpInfo {
        TcpInfo {
            local: self.local,
            remote: self.remote,
            state: self.state,
            send_queue: self.sndbuf.len(),
            recv_queue: self.rcvq.charged(),
            cwnd: self.cwnd(),
            ssthresh: self.cc.ssthresh(),
            mss: self.smss(),
            srtt: self.rtt.srtt,
            rttvar: self.rtt.rttvar,
            rto: self.rtt.rto(),
            in_flight: self.pipe(),
            snd_wnd: self.snd_wnd,
            rcv_wnd: super::super::seq::dist(self.rcv_nxt, self.rcv_adv),
            retransmits: self.counters.retransmits,
            bytes_acked: self.counters.bytes_acked,
            bytes_received: self.counters.bytes_received,
            delivery_rate: self.counters.delivery_rate,
            timeouts: self.counters.timeouts,
            congestion: self.cc.name(),
        }
    }
}
