//! A connection's state as `ss -tin` shows it ([`TcpInfo`]), read from the TCB without
//! changing it, and the per-connection counters behind it ([`ConnCounters`]).

use super::{State, Tcb};
use std::net::SocketAddr;
use std::time::Duration;

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
    /// The congestion control algorithm's name.
    pub congestion: &'static str,
}

impl Tcb {
    /// The connection as `ss -tin` would show it.
    pub fn info(&self) -> TcpInfo {
        TcpInfo {
            local: self.local,
            remote: self.remote,
            state: self.state,
            send_queue: self.sndbuf.len(),
            recv_queue: self.rcvq.charged(),
            cwnd: self.cc.cwnd(),
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
            congestion: self.cc.name(),
        }
    }
}
