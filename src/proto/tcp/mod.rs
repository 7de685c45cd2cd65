//! Sans-I/O TCP core (RFC 9293 and friends), in the style of quinn-proto.
//!
//! [`Endpoint`] owns every TCB and every listener. The engine actor feeds it
//! `(now, input)` — validated segments, application commands, timer firings, ICMP errors —
//! and drains its outputs: segments ([`Endpoint::poll_transmit`]), events for sockets
//! ([`Endpoint::poll_event`]) and deadline changes ([`Endpoint::poll_timer_update`]).
//! Nothing here does I/O, reads a clock, draws random numbers or spawns a thread: the
//! caller passes `now`, the clock epoch and the ISN key, so the simulation (`sim`, tests only)
//! replays a seed bit for bit on a virtual clock.
//!
//! Module map (one job each):
//! * [`seq`] — sequence-number arithmetic modulo 2^32;
//! * [`isn`] — RFC 6528 initial sequence numbers;
//! * [`syncookie`] — SYN cookies (RFC 4987 §3.6) for listeners whose half-open queue is full;
//! * [`rtt`] — RFC 6298 RTO estimator (Linux's floor on the variance term);
//! * [`congestion`] — `CongestionControl` trait, NewReno (RFC 5681/6582), CUBIC (RFC 9438);
//! * [`bbr`] — BBR v1 on [`rate`]'s delivery-rate samples;
//! * [`rtx`] — retransmission queue: one record per segment in flight, the SACK
//!   scoreboard and RFC 6675's `pipe`;
//! * [`rack`] — RACK-TLP (RFC 8985) loss detection and probe timeout;
//! * [`prr`] — Proportional Rate Reduction (RFC 6937);
//! * [`sack`] — RFC 2018 block selection (receiver);
//! * [`reassembly`] — bounded out-of-order queue;
//! * [`sendbuf`] — bounded send buffer, segments are slices of it;
//! * [`tcb`] — one connection's state machine (`tcb/input.rs`: segment arrival,
//!   `tcb/output.rs`: what to send, `tcb/recovery.rs`: loss recovery);
//! * [`endpoint`] — demultiplexing, listeners, RST for closed ports, bounds.
//!
//! Invariants kept across the core:
//! * no panics on any input; sequence numbers use wrapping arithmetic;
//! * every queue is bounded in bytes or entries (send buffer, out-of-order data, half-open
//!   and accept queues per listener, half-open TCBs in total, TIME-WAIT count, pending
//!   control segments); SYNs beyond the half-open bounds get SYN cookies and no state;
//! * a `ConnId` is never reused; `Closed` is the last event of a connection.
//!
//! Deliberate choices:
//! * RTO = SRTT + max(200 ms, 4·RTTVAR) (Linux) instead of RFC 6298's 1 s floor on the
//!   whole RTO (configurable);
//! * loss recovery as Linux: RACK-TLP marks losses (no duplicate-ACK counting with SACK),
//!   PRR paces fast recovery, D-SACK and Eifel (timestamps) undo spurious recoveries and
//!   timeouts; without SACK, NewReno's three duplicate ACKs and partial ACKs;
//! * the core's default congestion control is NewReno; the stack (`StackConfig`) and the
//!   bins default to BBR, as the Linux peers on this machine do;
//! * initial window is 10 segments (RFC 6928), not RFC 5681's 4; after an idle period
//!   longer than the RTO the window restarts from it (RFC 5681 §4.1, as Linux);
//! * the FIN-WAIT-2 state of a fully closed (orphaned) connection times out after 2*MSL
//!   (Linux `tcp_fin_timeout`-like); a half-closed one waits forever;
//! * answered zero-window probes keep a connection forever (M-37) unless it is orphaned:
//!   then it is dropped after 8 probes (Linux `tcp_orphan_retries`);
//! * at most `max_orphans` orphans live at once: a close beyond it resets the connection
//!   (Linux `tcp_max_orphans`, counted in `orphans_reset`);
//! * closing with unread data, or data arriving after Close, resets the connection
//!   (RFC 2525 §2.17, as Linux), except in TIME-WAIT, which keeps its 2*MSL;
//! * unacceptable segments without data and challenge ACKs share one per-connection rate
//!   limit of one ACK per 500 ms (RFC 5961 §7, Linux's `tcp_invalid_ratelimit`);
//! * acceptability (RFC 9293 §3.10.7.4) as Linux: a zero-length segment at exactly
//!   RCV.NXT + RCV.WND and a bare FIN at RCV.NXT with a zero window are acceptable;
//! * a zero-window probe is one byte of new data (RFC 9293 §3.8.6.1); SND.MAX is not
//!   advanced by it, so pure ACKs (SEQ = SND.MAX) stay acceptable to the peer;
//! * the receive window is `recv_buf` less what the receive queue is charged (`rcvqueue`):
//!   the memory held for the application, as Linux's truesize (each chunk's allocation plus
//!   256 bytes per event), not its payload; small in-order segments are coalesced into one
//!   chunk while the application has unread data. Out-of-order data lies inside the window
//!   and is charged likewise against `max_ooo_bytes` (allocation + 64 bytes per entry);
//!   the right edge never moves left, so what is held for one connection stays below about
//!   the buffer (`recv_buf`, or what auto-tuning grew it to, at most `recv_buf_max`) +
//!   `max_ooo_bytes` plus one advertised window's worth of overhead (and at most an eighth
//!   of the buffer + 2^shift that the scaled window's rounding lets in, `tcb` invariants).
//! * receive-buffer auto-tuning (`rcvbuf`, Linux's dynamic right-sizing): `recv_buf` grows
//!   towards `recv_buf_max` while the application drains more per round trip than the
//!   window allows, never for one that does not read; our window scale is offered for
//!   `recv_buf_max`.
//! * SYN cookies only once the half-open queue is full (Linux `tcp_syncookies = 1`); a SYN
//!   for a listener whose accept queue is full is dropped, cookie or not (as Linux).
//!
//! Not implemented (TODO):
//! * urgent data (URG): the urgent pointer is ignored and the bytes delivered in line;
//! * ECN (ECE/CWR are never set);
//! * data carried on a SYN is not queued (it is not acknowledged, so the peer resends it);
//! * F-RTO (RFC 5682: spurious timeouts are detected with timestamps or D-SACK instead),
//!   D-SACK for duplicates inside the out-of-order queue (only for data below RCV.NXT);
//! * pacing for NewReno and CUBIC (as Linux without the fq qdisc: only BBR is paced).

pub mod bbr;
pub mod congestion;
pub mod diag;
pub mod endpoint;
pub mod isn;
pub mod pacing;
mod packets;
pub mod prr;
pub mod rack;
pub mod rate;
pub mod rcvbuf;
pub mod rcvqueue;
pub mod reassembly;
pub mod rtt;
pub mod rtx;
pub mod sack;
pub mod sendbuf;
pub mod seq;
pub mod syncookie;
pub mod tcb;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use bbr::Bbr;
pub use congestion::{CongestionControl, Cubic, NewReno};
pub use endpoint::Endpoint;
pub use tcb::{State, TcpInfo};

use std::net::SocketAddr;
use std::time::Duration;

/// Identifies one connection for its whole life; never reused.
pub type ConnId = u64;
/// Identifies one listener.
pub type ListenerId = u64;

/// Which congestion-control algorithm new connections use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CongestionAlgorithm {
    /// RFC 5681 / RFC 6582 (the core's default: predictable for tests and the RFCs).
    #[default]
    NewReno,
    /// RFC 9438.
    Cubic,
    /// BBR v1 (model-based; the stack's default, as on the Linux peers here).
    Bbr,
}

impl CongestionAlgorithm {
    /// A controller of this kind for a sender MSS of `smss`.
    pub(crate) fn controller(self, smss: usize) -> Box<dyn congestion::CongestionControl> {
        match self {
            CongestionAlgorithm::NewReno => Box::new(congestion::NewReno::new(smss)),
            CongestionAlgorithm::Cubic => Box::new(congestion::Cubic::new(smss)),
            CongestionAlgorithm::Bbr => Box::new(bbr::Bbr::new(smss)),
        }
    }
}

impl std::str::FromStr for CongestionAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "newreno" | "reno" => Ok(CongestionAlgorithm::NewReno),
            "cubic" => Ok(CongestionAlgorithm::Cubic),
            "bbr" => Ok(CongestionAlgorithm::Bbr),
            _ => Err(format!("unknown congestion control {s:?} (newreno, cubic, bbr)")),
        }
    }
}

/// The smallest send buffer a connection gets, whatever `TcpConfig::send_buf` says (as
/// Linux raises `SO_SNDBUF` to `SOCK_MIN_SNDBUF`, about 4.5 KiB on x86-64). A buffer of a
/// few bytes sent one tiny segment per round trip, each waiting for a delayed ACK, so a
/// transfer of 300 kB under loss did not finish in two hours of simulated time.
pub const MIN_SEND_BUF: usize = 4608;

/// The smallest receive buffer a connection gets, whatever `TcpConfig::recv_buf` says (as
/// Linux raises `SO_RCVBUF` to `SOCK_MIN_RCVBUF`, 2,048 bytes and one `sk_buff`, 2,304 on
/// x86-64). A buffer of one byte advertised a one-byte window that auto-tuning never grew
/// (the application drained exactly the window each round trip): simulation seed
/// 1,334,867 moved 300 kB one byte per round trip and did not finish in two hours.
pub const MIN_RECV_BUF: usize = 2304;

/// Endpoint-wide configuration.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Link MTU: we advertise MSS = mtu - 40 (IPv4) / mtu - 60 (IPv6) (M-67).
    pub mtu: usize,
    /// Receive buffer per connection at the start (bytes of memory held, `rcvqueue`); at
    /// least [`MIN_RECV_BUF`].
    pub recv_buf: usize,
    /// Ceiling of receive-buffer auto-tuning (`rcvbuf`, Linux's `tcp_rmem[2]`): the buffer
    /// grows towards it while the application drains more per round trip than the window
    /// allows; the window scale is chosen so it is usable. At most `recv_buf` turns
    /// auto-tuning off.
    pub recv_buf_max: usize,
    /// Send buffer per connection (bytes) = initial send credit; at least
    /// [`MIN_SEND_BUF`].
    pub send_buf: usize,
    /// Maximum segment lifetime; TIME-WAIT lasts 2*MSL (M-13).
    pub msl: Duration,
    /// RTO floor. 200 ms as Linux; RFC 6298 §2.4 says 1 s SHOULD.
    pub min_rto: Duration,
    /// RTO cap (RFC 6298 §2.5: at least 60 s).
    pub max_rto: Duration,
    /// RTO before any sample (RFC 6298 §2.1).
    pub initial_rto: Duration,
    /// R2 for data: timeouts in a row before the connection fails with TimedOut (M-20).
    pub max_retries: u32,
    /// R2 for our SYN (active open): retransmissions before giving up (settable,
    /// M-21/M-22). The default 7 waits 1+2+4+8+16+32+60+60 s = 183 s >= 3 minutes (M-23).
    pub syn_retries: u32,
    /// R2 for our SYN-ACK (passive open in SYN-RECEIVED). The default 5 gives up after
    /// 1+2+4+8+16+32 s = 63 s, as Linux's `tcp_synack_retries`: a half-open entry of a
    /// listener is held for a minute, not three.
    pub synack_retries: u32,
    /// Delayed-ACK timer (< 500 ms, M-40).
    pub delayed_ack: Duration,
    /// Bound on out-of-order bytes per connection (memory charged); room for two full
    /// segments at least, and at most the receive buffer as auto-tuning has grown it. The
    /// default is `recv_buf_max`'s, so the queue can hold the whole window, as Linux's
    /// (bounded by `sk_rcvbuf` alone): below the window, a lossy transfer had most of its
    /// retransmissions caused by our own out-of-order drops.
    pub max_ooo_bytes: usize,
    /// Half-open (SYN-RECEIVED) connections per listener.
    pub max_half_open: usize,
    /// Half-open connections over all listeners.
    pub max_half_open_total: usize,
    /// Answer SYNs beyond the half-open bounds with SYN cookies (RFC 4987 §3.6, Linux's
    /// `tcp_syncookies = 1`); false drops them.
    pub syncookies: bool,
    /// Global bound on TIME-WAIT TCBs; beyond it a connection closes without TIME-WAIT.
    pub max_time_wait: usize,
    /// Global bound on orphaned connections (closed by the application, still finishing:
    /// FIN-WAIT-1/2, CLOSING, LAST-ACK). A close that would pass it resets that connection
    /// instead (RST to the peer), as Linux's `tcp_max_orphans`.
    pub max_orphans: usize,
    /// Nagle's algorithm on by default (M-17); `AppCommand::SetNodelay` overrides.
    pub nagle: bool,
    /// Keep-alive idle time; None = off (M-25).
    pub keepalive: Option<Duration>,
    pub timestamps: bool,
    pub sack: bool,
    pub window_scale: bool,
    /// Congestion control for new connections.
    pub congestion: CongestionAlgorithm,
    /// Pace the sender at the congestion controller's rate when it has one (BBR;
    /// `pacing`), as Linux's internal pacing. Off: up to cwnd leaves at once.
    pub pacing: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mtu: 1500,
            recv_buf: 1 << 20,
            recv_buf_max: 4 << 20,
            send_buf: 1 << 20,
            msl: Duration::from_secs(30),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            initial_rto: Duration::from_secs(1),
            max_retries: 15,
            syn_retries: 7,
            synack_retries: 5,
            delayed_ack: Duration::from_millis(40),
            max_ooo_bytes: 4 << 20,
            max_half_open: 1024,
            max_half_open_total: 4096,
            syncookies: true,
            max_time_wait: 65536,
            max_orphans: 4096,
            nagle: true,
            keepalive: None,
            timestamps: true,
            sack: true,
            window_scale: true,
            congestion: CongestionAlgorithm::NewReno,
            pacing: true,
        }
    }
}

/// Where a listener accepts connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// One address and port; the ip may be unspecified (any local ip of that family).
    Addr(SocketAddr),
    /// Every address and port routed to us; the accepted connection's local address is
    /// what the client dialled.
    Any,
}

/// Commands from the application (socket facade) to one connection.
#[derive(Debug)]
pub enum AppCommand {
    /// Application data. Never more than the send credit (initial credit = `send_buf`,
    /// then `SendCredit` events); bytes beyond the free buffer are dropped and reported
    /// with `Error(WouldBlock)`. After a shutdown of writing: `Error(BrokenPipe)`.
    Write(Vec<u8>),
    /// The application consumed this many delivered bytes (in order): reopens the receive
    /// window by their charge, and by a chunk's overhead once it is wholly consumed; data
    /// held back while the application was behind is handed out at the end of the batch
    /// (a window update is sent when the window had (nearly) closed, M-39).
    ReadCredit(usize),
    /// Send a FIN after the queued data (half-close; reading continues).
    ShutdownWrite,
    /// The application shut reading down. Nothing changes in TCP (as Linux's SHUT_RD):
    /// the socket still reads what is queued and what arrives, then end of file. The engine
    /// only nudges the socket's threads so a blocked reader sees it.
    ShutdownRead,
    /// The handle was dropped: graceful close of both directions; RST instead if
    /// delivered data was never credited (unread), as Linux.
    Close,
    /// Send RST (in synchronized states) and drop the TCB.
    Abort,
    /// Disable (true) or enable Nagle's algorithm (M-17).
    SetNodelay(bool),
    /// Keep-alive idle time, None = off (M-24, M-25).
    SetKeepalive(Option<Duration>),
}

/// Events for one connection's socket.
#[derive(Debug, PartialEq, Eq)]
pub enum SocketEvent {
    /// Active open completed; a `SendCredit` with the free send buffer follows.
    Connected { local: SocketAddr, remote: SocketAddr },
    /// In-order payload, in as few chunks as the application's reading allows (`rcvqueue`).
    /// What is charged for uncredited chunks stays within the window advertised.
    Data(Vec<u8>),
    /// This many more bytes of send buffer are free (data was acknowledged).
    SendCredit(usize),
    /// The peer sent FIN (after all its data).
    Eof,
    /// ConnectionRefused (RST to our SYN, ICMP port unreachable in SYN-SENT),
    /// ConnectionReset (RST in a synchronized state), TimedOut (retransmissions, probes
    /// or keep-alive exhausted; instead the kind of a soft ICMP error received since the
    /// last acceptable ACK, e.g. HostUnreachable, as Linux); BrokenPipe / WouldBlock for
    /// misused writes (non-fatal).
    Error(std::io::ErrorKind),
    /// The TCB is gone (after TIME-WAIT, last ACK, reset, abort or timeout). Last event.
    Closed,
}

/// Events for the engine.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// 3-way handshake done for a passive open; it is in the listener's accept queue.
    /// A `Conn(conn, SendCredit(send_buf))` follows.
    Accepted {
        listener: ListenerId,
        conn: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    Conn(ConnId, SocketEvent),
}

/// ICMP errors routed to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpErrorKind {
    /// Net/host/proto unreachable, time exceeded, parameter problem: never abort (M-56).
    /// Carries the error to report if the connection later times out (Linux
    /// `sk_err_soft`): e.g. `HostUnreachable`, `NetworkUnreachable`.
    Soft(std::io::ErrorKind),
    /// Port unreachable: aborts a connection in SYN-SENT with ConnectionRefused.
    PortUnreachable,
    /// Fragmentation needed / Packet Too Big with the next-hop MTU.
    PacketTooBig(u16),
}

counters!(
    /// Counters.
    TcpStats {
        segments_in,
        /// Segments dropped for a bad checksum or header (counted in `segments_in` too).
        malformed,
        segments_out,
        retransmits,
        timeouts,
        fast_retransmits,
        /// Tail-loss probes sent (RFC 8985 §7) and losses they repaired.
        tlp_probes,
        tlp_recoveries,
        /// D-SACK blocks received (RFC 2883).
        dsacks_received,
        /// Connections that saw reordering (RACK widens its window).
        reordering_seen,
        /// Recoveries or timeouts undone as spurious (Eifel RFC 3522, D-SACK).
        spurious_undone,
        dropped,
        rst_in,
        rst_out,
        challenge_acks,
        paws_rejected,
        syn_dropped,
        /// SYN-ACKs sent with a SYN cookie, ACKs that completed one, and ACKs refused as a
        /// cookie (forged, mangled or expired; answered with RST, as Linux) while cookies
        /// were in use (Linux `SyncookiesSent` / `SyncookiesRecv` / `SyncookiesFailed`).
        syncookies_sent,
        syncookies_recv_ok,
        syncookies_failed,
        /// Half-open (SYN-RECEIVED) TCBs now, over all listeners (a gauge, not a counter).
        half_open,
        conns_opened,
        conns_accepted,
        time_wait_overflow,
        /// Connections reset when closed because `max_orphans` orphans already existed.
        orphans_reset,
        /// Out-of-order segments (wholly or partly) dropped: the queue's charged bytes or entry
        /// count were at their bound.
        ooo_dropped,
    }
);
