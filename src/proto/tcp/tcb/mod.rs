//! One connection: the RFC 9293 state machine with its send and receive sides.
//!
//! Sequence-space invariants (all comparisons modulo 2^32, see [`seq`]):
//! * `ISS <= SND.UNA <= SND.MAX`. `SND.MAX` is the highest sequence number ever sent and
//!   is RFC 9293's SND.NXT too: retransmission never rewinds it, it resends the records of
//!   the retransmission queue marked lost (by RACK, duplicate ACKs, a timeout or a PMTU
//!   drop). A zero-window probe byte lies beyond it (`probe_end`).
//! * Byte 0 of the send buffer is sequence number `SND.UNA` (or `ISS+1` while the SYN is
//!   unacknowledged); the FIN, once queued, sits right after the last buffered byte.
//! * `RCV.NXT <= RCV.ADV`: `RCV.ADV` is the right edge of the window we advertised and it
//!   never moves left (we never shrink the window, RFC 9293 §3.8.6.2.2). When it moves it
//!   exceeds `RCV.NXT + recv_buf - charged` by less than 2^shift (the scaled field is
//!   rounded up, as Linux's), or, when only that rounding moves it (an ACK that does not
//!   open the window), by less than `recv_buf / 8 + 2^shift`; past that the field is
//!   rounded down, a retraction of less than 2^shift on the wire (RFC 7323 §2.4) that
//!   `RCV.ADV` still honours. `charged` is what the receive queue holds for the
//!   application in bytes of memory (`rcvqueue`: allocation + per-event overhead, as
//!   Linux's truesize), so data held for the application never takes more than the buffer,
//!   an eighth of it and that rounding, however small the segments ACKed one by one.
//! * The retransmission timer runs iff `SND.MAX != SND.UNA` (something in flight); the
//!   persist timer runs iff data or a FIN is waiting while nothing is in flight (zero window
//!   probing, M-35/M-36, and the sender SWS override timer, M-38). The RACK reordering
//!   timer and the tail-loss probe timer run only while something is in flight; a probe due
//!   with the retransmission timer goes first and restarts it (`tcb/recovery.rs`).
//! * Events for the application are queued in `events`; `Closed` is the last one and is only
//!   produced for connections the application knows (`announced`).

mod info;
mod input;
mod output;
mod recovery;

use self::info::ConnCounters;
pub use self::info::TcpInfo;
use super::congestion::CongestionControl;
use super::pacing::Pacer;
use super::prr::Prr;
use super::rack::{Rack, Tlp};
use super::rate::RateState;
use super::rcvbuf::RcvSpace;
use super::rcvqueue::RecvQueue;
use super::reassembly::Reassembly;
use super::rtt::RttEstimator;
use super::rtx::RtxQueue;
use super::sack::RecentBlocks;
use super::sendbuf::SendBuffer;
use super::{seq, AppCommand, ConnId, IcmpErrorKind, ListenerId, SocketEvent, TcpConfig, TcpStats};
use crate::wire::tcp::{TcpFlags, TcpOptions, TcpRepr};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The eleven states of RFC 9293 §3.3.2. `Listen` is represented by listeners in the
/// endpoint; a TCB is never in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    /// States in which our side may still send data.
    fn can_send_data(self) -> bool {
        matches!(self, State::Established | State::CloseWait | State::FinWait1 | State::LastAck | State::Closing)
    }
    /// States in which new data from the peer is accepted (RFC 9293 §3.10.7.4 seventh).
    fn can_recv_data(self) -> bool {
        matches!(self, State::Established | State::FinWait1 | State::FinWait2)
    }
}

/// RFC 9293 §3.7.1 / M-15: default send MSS without the option.
const DEFAULT_MSS_V4: usize = 536;
const DEFAULT_MSS_V6: usize = 1220;
/// RFC 8200 §5: IPv6 minimum link MTU.
const IPV6_MIN_MTU: usize = 1280;
/// RFC 791: the datagram size every IPv4 host accepts; floor for Frag Needed MTUs.
const IPV4_MIN_PMTU: usize = 576;
/// Smallest peer MSS we honour (Linux and smoltcp clamp to 48).
const MIN_PEER_MSS: usize = 48;
/// RFC 7323 §2.3: the shift is at most 14.
const MAX_WSCALE: u8 = 14;
/// RFC 7323 §3.2: timestamps option plus two NOPs.
const TS_OPT_LEN: usize = 12;
/// One challenge ACK per connection per this interval (RFC 5961 §7, Linux 500 ms).
const CHALLENGE_ACK_INTERVAL: Duration = Duration::from_millis(500);
/// Zero-window probes in a row for an orphaned connection (closed by the application)
/// before it is dropped, even when the peer answers them (Linux `tcp_orphan_retries`, whose
/// 0 default means 8). A connection the application still holds probes forever (M-37).
const ORPHAN_PROBES: u32 = 8;
/// Keep-alive probes before giving up (Linux tcp_keepalive_probes); interval between them.
const KEEPALIVE_PROBES: u32 = 9;
const KEEPALIVE_INTERVAL_MAX: Duration = Duration::from_secs(75);
/// RFC 7323 §5.5: TS.Recent is invalid after 24 days of idleness.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// ACKs queued per connection within one batch of segments (beyond it, the last ACK of the
/// batch carries the newest SACK blocks).
const MAX_QUEUED_ACKS: usize = 16;
/// RFC 5681 §3.2: fast retransmit on the third duplicate ACK.
const DUPACK_THRESHOLD: u32 = 3;

/// Read-only endpoint context and counters handed to TCB operations.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a TcpConfig,
    pub epoch: Instant,
    pub stats: &'a mut TcpStats,
    /// Receive chunks the application finished with, for reuse (`rcvqueue::recycle`).
    pub spare_chunks: &'a mut Vec<Vec<u8>>,
    /// Send chunks whose bytes are all acknowledged, for the caller to hand back to the
    /// sockets (`sendbuf`; [`super::Endpoint::take_spent_tx`]).
    pub spent_tx: &'a mut Vec<Vec<u8>>,
    /// Where trace rows go while tracing is on ([`super::diag`]).
    pub trace: Option<&'a mut Vec<super::diag::TraceRow>>,
}

pub(crate) type Emit<'a> = dyn FnMut(&TcpRepr, &[u8]) + 'a;

#[derive(Debug)]
pub struct Tcb {
    pub id: ConnId,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: State,
    /// The listener of a passive open.
    pub listener: Option<ListenerId>,
    /// The application knows this connection (active open, or Accepted was emitted).
    pub(crate) announced: bool,
    /// A passive open just completed its handshake (the endpoint emits Accepted).
    pub(crate) just_established: bool,
    /// Set by the endpoint before each segment: the listener's accept queue has room.
    pub(crate) accept_room: bool,
    /// What the endpoint keeps about this connection in its own lists and counts.
    pub(crate) marks: super::endpoint::Marks,
    pub(crate) events: VecDeque<SocketEvent>,
    /// One control segment (RST) to send before anything else.
    pub(crate) rst_out: Option<TcpRepr>,

    // --- send sequence space (RFC 9293 §3.3.1)
    iss: u32,
    /// Our SYN has been acknowledged (byte 0 of the send buffer is then SND.UNA).
    syn_acked: bool,
    snd_una: u32,
    snd_max: u32,
    /// Peer window in bytes (already scaled).
    snd_wnd: usize,
    snd_wl1: u32,
    snd_wl2: u32,
    max_snd_wnd: usize,
    snd_wscale: u8,
    sndbuf: SendBuffer,
    /// The application shut down writing: a FIN follows the buffered data.
    fin_queued: bool,
    /// Sequence number of our FIN once it was first sent.
    fin_seq: Option<u32>,

    // --- receive sequence space
    irs: u32,
    rcv_nxt: u32,
    rcv_adv: u32,
    rcv_wscale: u8,
    /// Shift we offer in our SYN (used if the peer offers one too).
    rcv_wscale_offer: u8,
    /// The receive buffer: the window is this less what `rcvq` is charged. Grows (never
    /// shrinks) by `rcv_space` up to `TcpConfig::recv_buf_max`.
    recv_buf: usize,
    rcv_space: RcvSpace,
    /// In-order data for the application: held back while it coalesces, or handed out and
    /// not yet credited back (ReadCredit), charged in bytes of memory.
    rcvq: RecvQueue,
    ooo: Reassembly,
    /// [`ooo_cap`]: the out-of-order queue's bound is this or `recv_buf`, the smaller.
    ooo_cap: usize,
    ooo_fin: Option<u32>,
    recent_blocks: RecentBlocks,
    /// The application dropped its handle (Close): new data is answered with RST.
    orphaned: bool,

    // --- options
    our_mss: usize,
    /// Peer MSS (from its option or the default), clamped, and lowered by PMTU.
    peer_mss: usize,
    ts_ok: bool,
    ts_offset: u32,
    ts_recent: u32,
    ts_recent_at: Option<Instant>,
    last_ack_sent: u32,
    /// The right edge our last non-SYN segment announced (RCV.NXT + its field << shift): below
    /// RCV.ADV after a retraction by the rounding (RFC 7323 §2.4). None before the first.
    wnd_edge_sent: Option<u32>,
    sack_ok: bool,
    /// A D-SACK block (RFC 2883) to report first in the next ACK: duplicate data received.
    dsack_out: Option<(u32, u32)>,
    ws_ok: bool,

    // --- loss recovery and congestion control
    rtt: RttEstimator,
    cc: Box<dyn CongestionControl>,
    /// Karn timing of one segment: (sequence number that must be acked, send time).
    rtt_timing: Option<(u32, Instant)>,
    /// Segments sent and not cumulatively acknowledged, with the SACK scoreboard.
    rtx: RtxQueue,
    /// Loss-recovery state (Linux's Open / Recovery / Loss).
    ca: CaState,
    /// RFC 6582 `recover`: SND.MAX when Recovery or Loss began; None in Open, so it can
    /// never fall 2^31 behind SND.UNA.
    recover: Option<u32>,
    /// Without SACK: duplicate ACKs in a row (RFC 5681 §2), each standing for one
    /// delivered segment in `reno_sacked` (Linux's Reno emulation). With SACK, unused.
    dupacks: u32,
    reno_sacked: usize,
    rack: Rack,
    tlp: Tlp,
    /// The probe timer fired: poll_transmit sends one probe.
    tlp_fire: bool,
    prr: Prr,
    /// The congestion window PRR computed for this ACK (used instead of the
    /// algorithm's while in Recovery).
    recovery_cwnd: usize,
    /// State to undo a spurious recovery or timeout (Eifel, RFC 3522; D-SACK, RFC 2883 §5).
    undo: Option<Undo>,
    /// The last transmission was limited by cwnd (RFC 7661: only then may cwnd grow).
    cwnd_limited: bool,
    /// Delivery-rate counters (rate samples for BBR).
    rate: RateState,
    /// End of an outstanding zero-window probe (beyond SND.MAX).
    probe_end: Option<u32>,
    /// The segment at SND.UNA was already retransmitted by the timer (ssthresh held).
    rto_repeated: bool,
    retries: u32,
    syn_retransmitted: bool,
    /// When we last sent a data segment (RFC 5681 §4.1 idle restart).
    last_data_sent: Option<Instant>,

    // --- timers
    timers: Timers,
    persist_backoff: u32,
    persist_probes: u32,
    force_send: bool,
    /// Spends the congestion controller's pacing rate (`pacing`); `timers.pace`: when the
    /// credit it ran out of is back (new data or retransmissions are waiting for it).
    pacer: Pacer,
    /// The rate `poll_transmit` paces at this time (bytes/s, floored), if any.
    pace_rate: Option<f64>,
    keepalive: Option<Duration>,
    keepalive_probes: u32,
    send_keepalive: bool,
    last_recv: Instant,

    // --- ACK generation
    syn_pending: bool,
    ack_now: bool,
    /// The pending ACK answers an out-of-order or hole-filling segment.
    ooo_ack_pending: bool,
    /// ACKs built earlier in this batch, one per out-of-order segment (RFC 5681 §4.2),
    /// sent before anything else; at most [`MAX_QUEUED_ACKS`].
    acks_out: Vec<TcpRepr>,
    /// Left edge of the SACK block the last queued ACK led with (None: no ACK queued, or it
    /// carried a D-SACK or no SACK): the next one may replace it ([`Tcb::snapshot_pending_ack`]).
    acks_out_lead: Option<u32>,
    unacked_bytes: usize,
    rcv_mss_est: usize,
    challenge_last: Option<Instant>,

    nodelay: bool,
    delayed_ack: Duration,
    msl: Duration,
    max_retries: u32,
    /// R2 for the handshake: `syn_retries` (active open) or `synack_retries` (passive).
    syn_retries: u32,
    pub(crate) soft_error: Option<IcmpErrorKind>,
    /// IPv4 TTL / IPv6 hop limit of this connection's segments (`TcpStream::set_ttl`, or
    /// the listener's).
    pub(crate) ttl: u8,
    /// IPv4 identification of this connection's last segment. Each connection counts on its
    /// own from a start derived from its ISN (as Linux's per-socket `inet_id`): one counter
    /// shared by every packet told an observer how many packets the stack sent to anyone
    /// (the idle scan, `nmap -sI`).
    pub(crate) ip_ident: u16,
    /// What [`Tcb::info`] reports beyond the state above.
    counters: ConnCounters,
    /// The state and timeout count last reported as diagnostics ([`Tcb::take_diag`]).
    logged: (State, u64),
}

/// Loss-recovery state of the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CaState {
    /// No loss being repaired.
    Open,
    /// Fast recovery (RFC 6675 / RFC 6582) with PRR (RFC 6937).
    Recovery,
    /// After a retransmission timeout: everything outstanding was marked lost.
    Loss,
}

/// Retransmissions remembered per recovery episode for D-SACK undo; beyond it the episode
/// can only be undone by timestamps.
const UNDO_REXMITS: usize = 64;

/// What a recovery episode changed, to put back if it proves spurious.
#[derive(Clone, Debug)]
pub(crate) struct Undo {
    prior_cwnd: usize,
    prior_ssthresh: usize,
    /// Retransmitted ranges not yet shown spurious by a D-SACK (Linux `undo_retrans`, with
    /// the ranges kept so each D-SACK is matched to one retransmission).
    rexmits: Vec<(u32, u32)>,
    /// More retransmissions than [`UNDO_REXMITS`]: D-SACKs cannot prove them all.
    overflow: bool,
    /// Sequence number and TSval of the first retransmission (RFC 3522 Eifel).
    first_rexmit: Option<(u32, u32)>,
}

/// Smallest window-scale shift that makes `buf` representable (RFC 7323 §2.3).
pub(crate) fn wscale_for(buf: usize) -> u8 {
    let mut s = 0u8;
    while s < MAX_WSCALE && (buf >> s) > 0xffff {
        s += 1;
    }
    s
}

/// The window-scale shift we offer: room for the receive buffer's auto-tuning ceiling.
pub(crate) fn rcv_wscale_for(cfg: &TcpConfig) -> u8 {
    wscale_for(cfg.recv_buf.max(cfg.recv_buf_max))
}

/// The MSS we advertise: M-67, the link MTU minus IP and TCP headers.
pub(crate) fn our_mss_for(cfg: &TcpConfig, v6: bool) -> usize {
    cfg.mtu.saturating_sub(if v6 { 60 } else { 40 }).clamp(MIN_PEER_MSS, 0xffff)
}

/// The cap on the out-of-order queue: `max_ooo_bytes`, but room for two full segments at
/// least. A bound below one segment's charge held only sub-segment pieces, whose SACK
/// blocks no sender acts on (the scoreboard counts segments: RFC 6675 §4, Linux's
/// `tcp_match_skb_to_sack` rounds to whole MSSes), so under reordering every overtaking
/// segment cost a retransmission timeout. The queue's bound is this cap or the receive
/// buffer as it is now, whichever is smaller (`Tcb::ooo_cap`): it grows with
/// auto-tuning, since the window it covers does.
pub(crate) fn ooo_cap(cfg: &TcpConfig, our_mss: usize) -> usize {
    cfg.max_ooo_bytes.max(2 * (our_mss + super::reassembly::ENTRY_OVERHEAD))
}

/// When each of a connection's timers is due (None: not armed). `Tcb::update_timers`
/// re-establishes their invariants after every change; the endpoint's wheel wants only the
/// earliest (`Tcb::deadline`).
#[derive(Debug, Default, Clone, Copy)]
struct Timers {
    /// Retransmission timeout (RFC 6298 §5): armed iff data or a SYN/FIN is in flight.
    rto: Option<Instant>,
    /// RACK reordering timer (RFC 8985 §6.3).
    rack: Option<Instant>,
    /// Tail-loss probe timer (RFC 8985 §7.2).
    pto: Option<Instant>,
    /// Zero-window probe / SWS override (RFC 9293 §3.8.6.1).
    persist: Option<Instant>,
    /// Delayed ACK (RFC 5681 §4.2: under 500 ms).
    delack: Option<Instant>,
    /// Pacing: when the credit the sender ran out of is back.
    pace: Option<Instant>,
    /// Keep-alive probe of an idle connection (RFC 1122 §4.2.3.6).
    keepalive: Option<Instant>,
    /// The end of TIME-WAIT, or of an orphaned connection's FIN-WAIT-2 (2·MSL each).
    close: Option<Instant>,
}

impl Timers {
    fn earliest(&self) -> Option<Instant> {
        let Timers { rto, rack, pto, persist, delack, pace, keepalive, close } = *self;
        [rto, rack, pto, persist, delack, pace, keepalive, close].into_iter().flatten().min()
    }
}

impl Tcb {
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        ts_offset: u32,
        now: Instant,
        cfg: &TcpConfig,
        state: State,
    ) -> Self {
        let v6 = local.is_ipv6();
        let our_mss = our_mss_for(cfg, v6);
        let ooo_cap = ooo_cap(cfg, our_mss);
        let peer_mss = if v6 { DEFAULT_MSS_V6 } else { DEFAULT_MSS_V4 }.min(our_mss);
        Tcb {
            id,
            local,
            remote,
            state,
            listener: None,
            announced: false,
            just_established: false,
            accept_room: true,
            marks: Default::default(),
            events: VecDeque::new(),
            rst_out: None,
            iss,
            syn_acked: false,
            snd_una: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: 0,
            snd_wl2: 0,
            max_snd_wnd: 0,
            snd_wscale: 0,
            sndbuf: SendBuffer::new(cfg.send_buf),
            fin_queued: false,
            fin_seq: None,
            irs: 0,
            rcv_nxt: 0,
            rcv_adv: 0,
            rcv_wscale: 0,
            rcv_wscale_offer: rcv_wscale_for(cfg),
            recv_buf: cfg.recv_buf,
            rcv_space: RcvSpace::new(cfg.recv_buf, cfg.recv_buf_max, our_mss),
            rcvq: RecvQueue::new(cfg.recv_buf),
            ooo: Reassembly::new(ooo_cap.min(cfg.recv_buf)),
            ooo_cap,
            ooo_fin: None,
            recent_blocks: RecentBlocks::default(),
            orphaned: false,
            our_mss,
            peer_mss,
            ts_ok: false,
            ts_offset,
            ts_recent: 0,
            ts_recent_at: None,
            last_ack_sent: 0,
            wnd_edge_sent: None,
            sack_ok: false,
            dsack_out: None,
            ws_ok: false,
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            cc: cfg.congestion.controller(peer_mss),
            rtt_timing: None,
            rtx: RtxQueue::default(),
            ca: CaState::Open,
            recover: None,
            dupacks: 0,
            reno_sacked: 0,
            rack: Rack::default(),
            tlp: Tlp::default(),
            tlp_fire: false,
            prr: Prr::default(),
            recovery_cwnd: 0,
            undo: None,
            cwnd_limited: true,
            rate: RateState::default(),
            probe_end: None,
            rto_repeated: false,
            retries: 0,
            syn_retransmitted: false,
            last_data_sent: None,
            timers: Timers::default(),
            persist_backoff: 0,
            persist_probes: 0,
            force_send: false,
            pacer: Pacer::new(cfg.pacing),
            pace_rate: None,
            keepalive: cfg.keepalive.map(|d| d.clamp(Duration::from_secs(1), Duration::from_secs(365 * 24 * 3600))),
            keepalive_probes: 0,
            send_keepalive: false,
            last_recv: now,
            syn_pending: true,
            ack_now: false,
            ooo_ack_pending: false,
            acks_out: Vec::new(),
            acks_out_lead: None,
            unacked_bytes: 0,
            rcv_mss_est: our_mss.min(DEFAULT_MSS_V4),
            challenge_last: None,
            nodelay: !cfg.nagle,
            delayed_ack: cfg.delayed_ack,
            msl: cfg.msl,
            max_retries: cfg.max_retries,
            syn_retries: cfg.syn_retries,
            soft_error: None,
            ttl: crate::wire::DEFAULT_HOP_LIMIT,
            ip_ident: (iss >> 16) as u16 ^ iss as u16,
            counters: ConnCounters::default(),
            logged: (state, 0),
        }
    }

    /// Active open: a SYN is queued (RFC 9293 §3.10.1).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_active(
        id: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        ts_offset: u32,
        now: Instant,
        cfg: &TcpConfig,
    ) -> Self {
        let mut t = Tcb::new(id, local, remote, iss, ts_offset, now, cfg, State::SynSent);
        t.announced = true;
        t.ws_ok = cfg.window_scale;
        t.ts_ok = cfg.timestamps;
        t.sack_ok = cfg.sack;
        t
    }

    /// Passive open from a SYN received by a listener (RFC 9293 §3.10.7.2).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_passive(
        id: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        ts_offset: u32,
        now: Instant,
        cfg: &TcpConfig,
        listener: ListenerId,
        syn: &TcpRepr,
    ) -> Self {
        let mut t = Tcb::new(id, local, remote, iss, ts_offset, now, cfg, State::SynReceived);
        t.listener = Some(listener);
        t.syn_retries = cfg.synack_retries;
        t.irs = syn.seq;
        t.rcv_nxt = syn.seq.wrapping_add(1);
        t.snd_wnd = syn.window as usize; // never scaled in a SYN (RFC 7323 §2.2)
        t.max_snd_wnd = t.snd_wnd;
        t.snd_wl1 = syn.seq;
        t.negotiate(cfg, syn);
        t.rcv_adv = t.rcv_nxt.wrapping_add(t.syn_window() as u32);
        t
    }

    /// A passive open rebuilt from a valid SYN cookie (`syncookie.rs`): `syn` is the SYN
    /// the cookie stands for (SEQ = IRS, the decoded MSS, window-scale, SACK and
    /// timestamp options). Our SYN-ACK (ISS = the cookie) counts as sent once, so the
    /// ACK that carried the cookie completes the handshake on the ordinary SYN-RECEIVED
    /// path (RFC 9293 §3.10.7.4 fifth).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_from_cookie(
        id: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        ts_offset: u32,
        now: Instant,
        cfg: &TcpConfig,
        listener: ListenerId,
        syn: &TcpRepr,
    ) -> Self {
        let mut t = Tcb::new_passive(id, local, remote, iss, ts_offset, now, cfg, listener, syn);
        t.syn_pending = false;
        t.snd_max = iss.wrapping_add(1);
        t.last_ack_sent = t.rcv_nxt;
        t
    }

    /// Apply the options of the peer's SYN (RFC 9293 §3.7.1, RFC 7323 §2.2/§3.2, RFC 2018 §2).
    fn negotiate(&mut self, cfg: &TcpConfig, syn: &TcpRepr) {
        let o = &syn.options;
        if let Some(m) = o.mss {
            // Clamp a tiny peer MSS; never exceed what our own link can carry.
            self.peer_mss = (m as usize).max(MIN_PEER_MSS).min(self.our_mss.max(MIN_PEER_MSS));
        }
        match (cfg.window_scale, o.window_scale) {
            (true, Some(s)) => {
                self.ws_ok = true;
                self.snd_wscale = s.min(MAX_WSCALE);
                self.rcv_wscale = self.rcv_wscale_offer;
            }
            _ => {
                self.ws_ok = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.ts_ok = cfg.timestamps && o.timestamps.is_some();
        if let (true, Some((tsval, _))) = (self.ts_ok, o.timestamps) {
            self.ts_recent = tsval;
            self.ts_recent_at = Some(self.last_recv);
        }
        self.sack_ok = cfg.sack && o.sack_permitted;
        self.cc.set_mss(self.smss());
    }

    // ------------------------------------------------------------------------------------
    // Small helpers
    // ------------------------------------------------------------------------------------

    /// Sender MSS for congestion control: peer MSS minus the timestamps option (M-16).
    pub fn smss(&self) -> usize {
        let opt = if self.ts_ok { TS_OPT_LEN } else { 0 };
        self.peer_mss.saturating_sub(opt).max(1)
    }

    fn syn_window(&self) -> usize {
        self.recv_buf.min(0xffff)
    }

    /// Sequence number of byte 0 of the send buffer.
    fn buf_seq(&self) -> u32 {
        if !self.syn_acked {
            self.iss.wrapping_add(1)
        } else {
            self.snd_una
        }
    }

    fn data_end(&self) -> u32 {
        self.buf_seq().wrapping_add(self.sndbuf.len() as u32)
    }

    fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| seq::gt(self.snd_una, f))
    }

    /// The receive window we currently grant (RCV.WND = RCV.ADV - RCV.NXT).
    fn rcv_wnd(&self) -> usize {
        seq::dist(self.rcv_nxt, self.rcv_adv)
    }

    fn ts_now(&self, now: Instant, epoch: Instant) -> u32 {
        (now.saturating_duration_since(epoch).as_millis() as u32).wrapping_add(self.ts_offset)
    }

    fn push_event(&mut self, e: SocketEvent) {
        if !matches!(e, SocketEvent::Data(_) | SocketEvent::SendCredit(_)) {
            // Data held back for coalescing goes first: everything acknowledged reaches the
            // application before an EOF, an error or `Closed`.
            self.release_rx(true);
        }
        if self.announced {
            self.events.push_back(e);
        }
    }

    /// Hand the data held back for the application to it as one `Data` event: unless
    /// `force`, only once it has read every chunk handed out before (`rcvqueue`). Returns
    /// true if an event was queued.
    pub(crate) fn release_rx(&mut self, force: bool) -> bool {
        match self.rcvq.take(force) {
            Some(d) if self.announced => {
                self.events.push_back(SocketEvent::Data(d));
                true
            }
            _ => false,
        }
    }

    /// In-order data is held back for the application (see [`Tcb::release_rx`]).
    pub(crate) fn rx_pending(&self) -> bool {
        self.rcvq.has_pending()
    }

    /// Leave the connection: state CLOSED, optional error, then Closed.
    fn close_with(&mut self, err: Option<ErrorKind>) {
        if let Some(e) = err {
            self.push_event(SocketEvent::Error(e));
        }
        self.push_event(SocketEvent::Closed);
        self.state = State::Closed;
        self.timers = Timers::default();
        self.ooo.clear();
    }

    /// Give up after retransmissions, probes or keep-alives went unanswered. The error is
    /// the last soft ICMP error if one arrived since the last acceptable ACK (Linux
    /// `tcp_write_err`: `sk_err_soft ?: ETIMEDOUT`), else TimedOut.
    fn close_timed_out(&mut self) {
        let err = match self.soft_error {
            Some(IcmpErrorKind::Soft(k)) => k,
            Some(IcmpErrorKind::PortUnreachable) => ErrorKind::ConnectionRefused,
            Some(IcmpErrorKind::PacketTooBig(_)) | None => ErrorKind::TimedOut,
        };
        self.close_with(Some(err));
    }

    /// RFC 6191: a new SYN may end TIME-WAIT if its timestamp (or, without timestamps, its
    /// sequence number) is beyond anything of the old incarnation.
    pub(crate) fn time_wait_reopenable(&self, r: &TcpRepr) -> bool {
        if self.state != State::TimeWait || !r.flags.syn || r.flags.ack || r.flags.rst {
            return false;
        }
        match (self.ts_ok, r.options.timestamps) {
            (true, Some((tsval, _))) => seq::gt(tsval, self.ts_recent),
            _ => seq::gt(r.seq, self.rcv_nxt),
        }
    }

    /// The application closed its handle (Close): the connection finishes on its own.
    pub(crate) fn is_orphaned(&self) -> bool {
        self.orphaned
    }

    /// End the connection now (Closed event), e.g. TIME-WAIT ended by a new SYN.
    pub(crate) fn force_close(&mut self) {
        self.close_with(None);
    }

    /// Queue an RST|ACK for an abort (RFC 9293 §3.10.5: `<SEQ=SND.NXT><CTL=RST>`).
    fn queue_abort_rst(&mut self) {
        self.rst_out = Some(TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.snd_max,
            ack: self.rcv_nxt,
            flags: TcpFlags { rst: true, ack: true, ..Default::default() },
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        });
    }

    fn queue_rst_for_ack(&mut self, ack: u32) {
        self.rst_out = Some(TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: ack,
            ack: 0,
            flags: TcpFlags { rst: true, ..Default::default() },
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        });
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        // M-13: 2*MSL; only the delayed ACK of the peer's FIN may still be due.
        let delack = self.timers.delack;
        self.timers = Timers { delack, close: Some(now + self.msl * 2), ..Timers::default() };
        // Our FIN is acknowledged, so nothing is left to send or retransmit, and no new data
        // is accepted: give back what the send side and the out-of-order queue kept, so
        // that 2*MSL of TIME-WAIT costs little more than the TCB (a server that closes first
        // holds one per recent connection). In-order data not yet read stays in `rcvq`.
        debug_assert!(self.sndbuf.is_empty());
        self.sndbuf = SendBuffer::new(self.sndbuf.capacity_limit());
        self.rtx = RtxQueue::default();
        self.ooo.clear();
        self.ooo.shrink();
    }

    /// RFC 5961 §3.2/§4.2/§5.2 challenge ACK, rate limited per connection (§7).
    fn challenge_ack(&mut self, now: Instant, stats: &mut TcpStats) {
        let ok = self.challenge_last.is_none_or(|t| now.saturating_duration_since(t) >= CHALLENGE_ACK_INTERVAL);
        if ok {
            self.challenge_last = Some(now);
            self.ack_now = true;
            stats.challenge_acks += 1;
        }
    }

    // ------------------------------------------------------------------------------------
    // Deadlines
    // ------------------------------------------------------------------------------------

    /// The earliest deadline this connection wants.
    pub fn deadline(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    /// Re-establish the timer invariants after any change.
    fn update_timers(&mut self, now: Instant) {
        #[cfg(test)]
        if self.state != State::Closed {
            self.rtx.check(self.snd_una, self.snd_max);
        }
        if matches!(self.state, State::Closed | State::TimeWait | State::Listen) {
            // A closed connection wants nothing more; in TIME-WAIT and LISTEN only the
            // delayed ACK and the close deadline stay.
            let Timers { delack, close, .. } = self.timers;
            self.timers = if self.state == State::Closed {
                Timers::default()
            } else {
                Timers { delack, close, ..Timers::default() }
            };
            return;
        }
        // Retransmission timer: runs iff something is in flight (RFC 6298 §5.1, §5.2).
        if self.snd_max != self.snd_una {
            if self.timers.rto.is_none() {
                self.timers.rto = Some(now + self.rtt.rto());
            }
        } else {
            self.timers.rto = None;
            self.timers.rack = None;
        }
        self.arm_pto(now);
        // Persist / SWS override timer.
        let synced = self.state.can_send_data();
        let unsent = seq::dist(self.snd_max, self.data_end()) > 0;
        let fin_unsent = self.fin_queued && self.fin_seq.is_none_or(|f| seq::le(self.snd_max, f));
        if synced && (unsent || fin_unsent) && self.snd_max == self.snd_una {
            if self.timers.persist.is_none() {
                let mut d = self.rtt.rto();
                for _ in 0..self.persist_backoff.min(16) {
                    d = d.saturating_mul(2);
                }
                self.timers.persist = Some(now + d.min(self.rtt_max()));
            }
        } else {
            self.timers.persist = None;
        }
        // Keep-alive: only for idle synchronized connections (M-26).
        match self.keepalive {
            Some(idle) if matches!(self.state, State::Established | State::CloseWait) => {
                if self.keepalive_probes == 0 {
                    // Idle time counts from the last segment received; a later deadline set
                    // when the timer found the connection busy (now + idle) is kept.
                    let at = self.last_recv + idle;
                    self.timers.keepalive = Some(self.timers.keepalive.map_or(at, |t| t.max(at)));
                } else if self.timers.keepalive.is_none() {
                    self.timers.keepalive = Some(now + idle.min(KEEPALIVE_INTERVAL_MAX));
                }
            }
            _ => self.timers.keepalive = None,
        }
    }

    fn rtt_max(&self) -> Duration {
        // The persist interval uses the same cap as the RTO.
        let mut r = self.rtt.clone();
        r.backoff = 64;
        r.rto()
    }

    // ------------------------------------------------------------------------------------
    // Timers firing
    // ------------------------------------------------------------------------------------

    pub(crate) fn handle_timeout(&mut self, now: Instant, ctx: &mut Ctx) {
        if self.timers.pace.is_some_and(|t| t <= now) {
            self.timers.pace = None; // the transmit that follows spends the credit
        }
        if self.timers.close.is_some_and(|t| t <= now) {
            self.timers.close = None;
            if matches!(self.state, State::TimeWait | State::FinWait2) {
                self.close_with(None);
                return;
            }
        }
        if self.timers.pto.is_some_and(|t| t <= now) {
            // The probe goes first; the retransmission timer restarts after it (RFC 8985
            // §7.3), so a probe and a timeout due together are one probe.
            self.timers.pto = None;
            self.tlp_fire = true;
            if self.timers.rto.is_some_and(|t| t <= now) {
                self.timers.rto = Some(now + self.rtt.rto());
            }
        }
        if self.timers.rto.is_some_and(|t| t <= now) {
            self.timers.rto = None;
            self.on_rto(now, ctx);
            if self.state == State::Closed {
                return;
            }
        }
        if self.timers.rack.is_some_and(|t| t <= now) {
            self.timers.rack = None;
            self.on_rack_timer(now, ctx);
        }
        if self.timers.persist.is_some_and(|t| t <= now) {
            self.timers.persist = None;
            self.persist_probes += 1;
            // `persist_backoff` counts probes since the window closed; answers that keep it
            // closed do not reset it.
            let orphan_done = self.orphaned && self.persist_backoff >= ORPHAN_PROBES;
            if self.persist_probes > self.max_retries || orphan_done {
                self.close_timed_out();
                return;
            }
            self.persist_backoff = self.persist_backoff.saturating_add(1);
            self.force_send = true;
        }
        if self.timers.delack.is_some_and(|t| t <= now) {
            self.timers.delack = None;
            self.ack_now = true;
        }
        if self.timers.keepalive.is_some_and(|t| t <= now) {
            self.timers.keepalive = None;
            let idle = self.snd_una == self.snd_max && self.sndbuf.is_empty();
            if !idle {
                // Busy (data in flight or queued): try again a full idle time from now, as
                // Linux's tcp_keepalive_timer. `last_recv + idle` is already past.
                self.timers.keepalive = self.keepalive.map(|d| now + d);
            } else {
                self.keepalive_probes += 1;
                if self.keepalive_probes > KEEPALIVE_PROBES {
                    self.close_timed_out();
                    return;
                }
                self.send_keepalive = true;
            }
        }
        self.update_timers(now);
    }

    fn on_rto(&mut self, now: Instant, ctx: &mut Ctx) {
        ctx.stats.timeouts += 1;
        self.counters.timeouts += 1;
        self.retries += 1;
        let syn_state = matches!(self.state, State::SynSent | State::SynReceived);
        let limit = if syn_state { self.syn_retries } else { self.max_retries };
        if self.retries > limit {
            // R2 exceeded (M-20): report TimedOut (a half-open passive TCB is silent).
            self.close_timed_out();
            return;
        }
        // RFC 6298 §5.5: back off.
        self.rtt.on_timeout();
        self.rtt_timing = None;
        if syn_state {
            self.syn_pending = true;
            self.syn_retransmitted = true;
            return;
        }
        if self.snd_una == self.snd_max {
            return;
        }
        self.enter_loss(now);
    }

    // ------------------------------------------------------------------------------------
    // Application commands
    // ------------------------------------------------------------------------------------

    pub(crate) fn handle_app(&mut self, now: Instant, ctx: &mut Ctx, cmd: AppCommand) {
        self.app_command(now, ctx, cmd);
        self.update_timers(now);
    }

    fn app_command(&mut self, now: Instant, _ctx: &mut Ctx, cmd: AppCommand) {
        match cmd {
            AppCommand::Write(data) => {
                let writable =
                    matches!(self.state, State::SynSent | State::SynReceived | State::Established | State::CloseWait)
                        && !self.fin_queued;
                if !writable {
                    self.push_event(SocketEvent::Error(ErrorKind::BrokenPipe));
                    return;
                }
                let want = data.len();
                let n = self.sndbuf.push_vec(data);
                if n < want {
                    // The facade exceeded its credit: keep what fits, report the rest.
                    self.push_event(SocketEvent::Error(ErrorKind::WouldBlock));
                }
            }
            AppCommand::ReadCredit(n) => {
                self.rcvq.credit(n);
                if let Some(grown) = self.rcv_space.on_consumed(now, n, self.recv_buf, self.rcv_mss_est) {
                    self.recv_buf = grown;
                    self.ooo.set_max_bytes(self.ooo_cap.min(grown));
                }
                if self.window_update_due() {
                    self.ack_now = true;
                }
            }
            AppCommand::ShutdownWrite => self.shutdown_write(now),
            // Linux's SHUT_RD is the socket's alone: it reads what is queued and what still
            // arrives (charged and windowed as before), then end of file. Nothing changes here.
            AppCommand::ShutdownRead => {}
            AppCommand::Close => {
                // Unread data: abort like Linux (RFC 2525 §2.17). Not in TIME-WAIT: both
                // directions are closed, nothing is left to reset, and 2*MSL must run out
                // (Linux's TIME-WAIT bucket outlives the socket).
                if self.rcvq.charged() > 0 && !matches!(self.state, State::SynSent | State::TimeWait) {
                    if self.state != State::Closed {
                        self.queue_abort_rst();
                    }
                    self.close_with(None);
                    return;
                }
                self.orphaned = true;
                if self.state == State::SynSent {
                    self.close_with(None);
                    return;
                }
                self.shutdown_write(now);
                if self.state == State::FinWait2 && self.timers.close.is_none() {
                    self.timers.close = Some(now + self.msl * 2);
                }
            }
            AppCommand::Abort => {
                if !matches!(self.state, State::SynSent | State::TimeWait | State::Closed) {
                    self.queue_abort_rst();
                }
                self.close_with(None);
            }
            AppCommand::SetNodelay(b) => self.nodelay = b,
            AppCommand::SetKeepalive(k) => {
                // Clamp so deadline arithmetic can never overflow.
                self.keepalive = k.map(|d| d.clamp(Duration::from_secs(1), Duration::from_secs(365 * 24 * 3600)));
                self.keepalive_probes = 0;
                self.timers.keepalive = None;
            }
        }
    }

    fn shutdown_write(&mut self, _now: Instant) {
        if self.fin_queued {
            return;
        }
        match self.state {
            // FIN-WAIT-1 once established.
            State::SynSent | State::SynReceived => self.fin_queued = true,
            State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    /// Receiver-side SWS (M-39) + Linux's rule for a window update after the app reads:
    /// the advertised window at most half the buffer and the new one at least double. The
    /// window is the one the peer was last told: after a retraction RCV.ADV is further right,
    /// and judging by it no read would announce the window again.
    fn window_update_due(&self) -> bool {
        if !matches!(self.state, State::Established | State::FinWait1 | State::FinWait2) {
            return false;
        }
        let free = self.recv_buf.saturating_sub(self.rcvq.charged());
        let max_wnd = free.min(0xffff << self.rcv_wscale);
        // An announced edge RCV.NXT has passed (the peer used an older, wider one): closed.
        let told = |e: u32| if seq::lt(e, self.rcv_nxt) { 0 } else { seq::dist(self.rcv_nxt, e) };
        let cur = self.wnd_edge_sent.map_or(self.rcv_wnd(), told).min(self.rcv_wnd());
        let threshold = (self.recv_buf / 2).min(self.our_mss);
        max_wnd >= cur + threshold && cur * 2 <= self.recv_buf && max_wnd >= 2 * cur
    }

    // ------------------------------------------------------------------------------------
    // ICMP
    // ------------------------------------------------------------------------------------

    pub(crate) fn on_icmp(&mut self, now: Instant, ctx: &mut Ctx, quoted_seq: u32, kind: IcmpErrorKind) {
        self.icmp(ctx, quoted_seq, kind);
        self.update_timers(now);
    }

    /// Link-layer resolution of the peer failed (`Endpoint::neighbour_unreachable`).
    pub(crate) fn on_neighbour_unreachable(&mut self, now: Instant) {
        if self.state == State::SynSent {
            self.close_with(Some(ErrorKind::HostUnreachable));
        } else {
            self.soft_error = Some(IcmpErrorKind::Soft(ErrorKind::HostUnreachable));
        }
        self.update_timers(now);
    }

    fn icmp(&mut self, ctx: &mut Ctx, quoted_seq: u32, kind: IcmpErrorKind) {
        // RFC 5927 §4.1: the quoted sequence number must be in [SND.UNA, SND.MAX].
        if !(seq::le(self.snd_una, quoted_seq) && seq::le(quoted_seq, self.snd_max)) {
            ctx.stats.dropped += 1;
            return;
        }
        match kind {
            IcmpErrorKind::Soft(_) => self.soft_error = Some(kind), // M-56: never abort
            IcmpErrorKind::PortUnreachable => {
                if self.state == State::SynSent {
                    self.close_with(Some(ErrorKind::ConnectionRefused));
                } else {
                    self.soft_error = Some(kind);
                }
            }
            IcmpErrorKind::PacketTooBig(mtu) => {
                let v6 = self.local.is_ipv6();
                let mut mtu = mtu as usize;
                if v6 && mtu < IPV6_MIN_MTU {
                    // RFC 8201 §4: a PTB below the IPv6 minimum link MTU is ignored.
                    return;
                }
                if !v6 {
                    // A Frag Needed below 576 (or 0 from an old router, RFC 1191 §5) is
                    // clamped, not ignored: the path does need smaller packets. Linux
                    // clamps to its min_pmtu (552); we use RFC 791's 576.
                    mtu = mtu.max(IPV4_MIN_PMTU);
                }
                let new_mss = mtu - if v6 { 60 } else { 40 };
                // Never grow the MSS from ICMP (RFC 1191 §3, RFC 8201 §4).
                if new_mss < self.peer_mss {
                    self.peer_mss = new_mss;
                    self.cc.set_mss(self.smss());
                    // Resend what no longer fits in smaller segments; not a congestion signal
                    // (Linux `tcp_simple_retransmit`: Loss state, window kept, no undo).
                    let sending = self.state.can_send_data() || self.state == State::FinWait2;
                    if sending && self.rtx.mark_lost_longer_than(self.smss()) {
                        self.rtt_timing = None;
                        if self.ca == CaState::Open {
                            self.ca = CaState::Loss;
                            self.recover = Some(self.snd_max);
                            self.undo = None;
                        }
                    }
                }
            }
        }
    }
}
