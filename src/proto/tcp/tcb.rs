//! One connection: the RFC 9293 state machine with its send and receive sides.
//!
//! Sequence-space invariants (all comparisons modulo 2^32, see [`seq`]):
//! * `ISS <= SND.UNA <= SND.NXT <= SND.MAX`. `SND.MAX` is the highest sequence number ever
//!   sent; `SND.NXT` is rewound to `SND.UNA` on a retransmission timeout (go-back-N, with
//!   SACKed ranges skipped) and on PMTU shrinking.
//! * Byte 0 of the send buffer is sequence number `SND.UNA` (or `ISS+1` while the SYN is
//!   unacknowledged); the FIN, once queued, sits right after the last buffered byte.
//! * `RCV.NXT <= RCV.ADV`: `RCV.ADV` is the right edge of the window we advertised and it
//!   never moves left (we never shrink the window, RFC 9293 §3.8.6.2.2); it never exceeds
//!   `RCV.NXT + recv_buf - unconsumed`, so undelivered plus unconsumed bytes fit the buffer.
//! * The retransmission timer runs iff `SND.NXT != SND.UNA` (something in flight); the
//!   persist timer runs iff data or a FIN is waiting while nothing is in flight (zero window
//!   probing, M-35/M-36, and the sender SWS override timer, M-38).
//! * Events for the application are queued in `events`; `Closed` is the last one and is only
//!   produced for connections the application knows (`announced`).

use super::congestion::{CongestionControl, Cubic, NewReno};
use super::reassembly::Reassembly;
use super::rtt::RttEstimator;
use super::sack::{RecentBlocks, Scoreboard};
use super::sendbuf::SendBuffer;
use super::{seq, AppCommand, CongestionAlgorithm, ConnId, IcmpErrorKind, ListenerId, SocketEvent, TcpConfig, TcpStats};
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
/// Smallest peer MSS we honour (Linux and smoltcp clamp to 48).
const MIN_PEER_MSS: usize = 48;
/// RFC 7323 §2.3: the shift is at most 14.
const MAX_WSCALE: u8 = 14;
/// RFC 7323 §3.2: timestamps option plus two NOPs.
const TS_OPT_LEN: usize = 12;
/// One challenge ACK per connection per this interval (RFC 5961 §7, Linux 500 ms).
const CHALLENGE_ACK_INTERVAL: Duration = Duration::from_millis(500);
/// Keep-alive probes before giving up (Linux tcp_keepalive_probes); interval between them.
const KEEPALIVE_PROBES: u32 = 9;
const KEEPALIVE_INTERVAL_MAX: Duration = Duration::from_secs(75);
/// RFC 7323 §5.5: TS.Recent is invalid after 24 days of idleness.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// RFC 5681 §3.2: fast retransmit on the third duplicate ACK.
const DUPACK_THRESHOLD: u32 = 3;

/// Read-only endpoint context and counters handed to TCB operations.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a TcpConfig,
    pub epoch: Instant,
    pub stats: &'a mut TcpStats,
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
    pub(crate) half_open_counted: bool,
    pub(crate) tw_counted: bool,
    pub(crate) in_dirty: bool,
    pub(crate) reported_deadline: Option<Instant>,
    pub(crate) events: VecDeque<SocketEvent>,
    /// One control segment (RST) to send before anything else.
    pub(crate) rst_out: Option<TcpRepr>,

    // --- send sequence space (RFC 9293 §3.3.1)
    iss: u32,
    snd_una: u32,
    snd_nxt: u32,
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
    recv_buf: usize,
    /// Delivered to the application but not yet credited back (ReadCredit).
    rcv_unconsumed: usize,
    ooo: Reassembly,
    ooo_fin: Option<u32>,
    recent_blocks: RecentBlocks,
    read_shutdown: bool,
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
    sack_ok: bool,
    scoreboard: Scoreboard,
    ws_ok: bool,

    // --- loss recovery and congestion control
    rtt: RttEstimator,
    cc: Box<dyn CongestionControl>,
    /// Karn timing of one segment: (sequence number that must be acked, send time).
    rtt_timing: Option<(u32, Instant)>,
    dupacks: u32,
    in_recovery: bool,
    /// RFC 6582 `recover`.
    recover: u32,
    /// Highest sequence number retransmitted from a SACK hole in this recovery.
    high_rxt: u32,
    rexmit_one: Option<u32>,
    sack_rexmit: bool,
    /// End of an outstanding zero-window probe (beyond SND.MAX).
    probe_end: Option<u32>,
    /// The segment at SND.UNA was already retransmitted by the timer (ssthresh held).
    rto_repeated: bool,
    retries: u32,
    syn_retransmitted: bool,

    // --- timers
    rto_at: Option<Instant>,
    persist_at: Option<Instant>,
    persist_backoff: u32,
    persist_probes: u32,
    force_send: bool,
    delack_at: Option<Instant>,
    keepalive: Option<Duration>,
    keepalive_at: Option<Instant>,
    keepalive_probes: u32,
    send_keepalive: bool,
    last_recv: Instant,
    close_at: Option<Instant>,

    // --- ACK generation
    syn_pending: bool,
    ack_now: bool,
    unacked_bytes: usize,
    rcv_mss_est: usize,
    challenge_last: Option<Instant>,

    nodelay: bool,
    delayed_ack: Duration,
    msl: Duration,
    max_retries: u32,
    syn_retries: u32,
    pub(crate) soft_error: Option<IcmpErrorKind>,
}

/// Smallest window-scale shift that makes `buf` representable (RFC 7323 §2.3).
fn wscale_for(buf: usize) -> u8 {
    let mut s = 0u8;
    while s < MAX_WSCALE && (buf >> s) > 0xffff {
        s += 1;
    }
    s
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
        // M-67: advertise MTU minus IP and TCP headers.
        let our_mss = cfg.mtu.saturating_sub(if v6 { 60 } else { 40 }).clamp(MIN_PEER_MSS, 0xffff);
        let peer_mss = if v6 { DEFAULT_MSS_V6 } else { DEFAULT_MSS_V4 }.min(our_mss);
        let cc: Box<dyn CongestionControl> = match cfg.congestion {
            CongestionAlgorithm::NewReno => Box::new(NewReno::new(peer_mss)),
            CongestionAlgorithm::Cubic => Box::new(Cubic::new(peer_mss)),
        };
        Tcb {
            id,
            local,
            remote,
            state,
            listener: None,
            announced: false,
            just_established: false,
            accept_room: true,
            half_open_counted: false,
            tw_counted: false,
            in_dirty: false,
            reported_deadline: None,
            events: VecDeque::new(),
            rst_out: None,
            iss,
            snd_una: iss,
            snd_nxt: iss,
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
            rcv_wscale_offer: wscale_for(cfg.recv_buf),
            recv_buf: cfg.recv_buf,
            rcv_unconsumed: 0,
            ooo: Reassembly::new(cfg.max_ooo_bytes.min(cfg.recv_buf)),
            ooo_fin: None,
            recent_blocks: RecentBlocks::default(),
            read_shutdown: false,
            orphaned: false,
            our_mss,
            peer_mss,
            ts_ok: false,
            ts_offset,
            ts_recent: 0,
            ts_recent_at: None,
            last_ack_sent: 0,
            sack_ok: false,
            scoreboard: Scoreboard::default(),
            ws_ok: false,
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            cc,
            rtt_timing: None,
            dupacks: 0,
            in_recovery: false,
            recover: iss,
            high_rxt: iss,
            rexmit_one: None,
            sack_rexmit: false,
            probe_end: None,
            rto_repeated: false,
            retries: 0,
            syn_retransmitted: false,
            rto_at: None,
            persist_at: None,
            persist_backoff: 0,
            persist_probes: 0,
            force_send: false,
            delack_at: None,
            keepalive: cfg.keepalive.map(|d| d.clamp(Duration::from_secs(1), Duration::from_secs(365 * 24 * 3600))),
            keepalive_at: None,
            keepalive_probes: 0,
            send_keepalive: false,
            last_recv: now,
            close_at: None,
            syn_pending: true,
            ack_now: false,
            unacked_bytes: 0,
            rcv_mss_est: our_mss.min(DEFAULT_MSS_V4),
            challenge_last: None,
            nodelay: !cfg.nagle,
            delayed_ack: cfg.delayed_ack,
            msl: cfg.msl,
            max_retries: cfg.max_retries,
            syn_retries: cfg.syn_retries,
            soft_error: None,
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
        t.irs = syn.seq;
        t.rcv_nxt = syn.seq.wrapping_add(1);
        t.snd_wnd = syn.window as usize; // never scaled in a SYN (RFC 7323 §2.2)
        t.max_snd_wnd = t.snd_wnd;
        t.snd_wl1 = syn.seq;
        t.negotiate(cfg, syn);
        t.rcv_adv = t.rcv_nxt.wrapping_add(t.syn_window() as u32);
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
        if self.snd_una == self.iss {
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
        if self.announced {
            self.events.push_back(e);
        }
    }

    /// Leave the connection: state CLOSED, optional error, then Closed.
    fn close_with(&mut self, err: Option<ErrorKind>) {
        if let Some(e) = err {
            self.push_event(SocketEvent::Error(e));
        }
        self.push_event(SocketEvent::Closed);
        self.state = State::Closed;
        self.rto_at = None;
        self.persist_at = None;
        self.delack_at = None;
        self.keepalive_at = None;
        self.close_at = None;
        self.ooo.clear();
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
        // M-13: 2*MSL.
        self.close_at = Some(now + self.msl * 2);
        self.rto_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
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
        [self.rto_at, self.persist_at, self.delack_at, self.keepalive_at, self.close_at].into_iter().flatten().min()
    }

    /// Re-establish the timer invariants after any change.
    fn update_timers(&mut self, now: Instant) {
        if matches!(self.state, State::Closed | State::TimeWait | State::Listen) {
            self.rto_at = None;
            self.persist_at = None;
            self.keepalive_at = None;
            if self.state == State::Closed {
                self.delack_at = None;
                self.close_at = None;
            }
            return;
        }
        // Retransmission timer: runs iff something is in flight (RFC 6298 §5.1, §5.2).
        if self.snd_nxt != self.snd_una {
            if self.rto_at.is_none() {
                self.rto_at = Some(now + self.rtt.rto());
            }
        } else {
            self.rto_at = None;
        }
        // Persist / SWS override timer.
        let synced = self.state.can_send_data();
        let unsent = seq::dist(self.snd_nxt, self.data_end()) > 0;
        let fin_unsent = self.fin_queued && self.fin_seq.is_none_or(|f| seq::le(self.snd_nxt, f));
        if synced && (unsent || fin_unsent) && self.snd_nxt == self.snd_una {
            if self.persist_at.is_none() {
                let mut d = self.rtt.rto();
                for _ in 0..self.persist_backoff.min(16) {
                    d = d.saturating_mul(2);
                }
                self.persist_at = Some(now + d.min(self.rtt_max()));
            }
        } else {
            self.persist_at = None;
        }
        // Keep-alive: only for idle synchronized connections (M-26).
        match self.keepalive {
            Some(idle) if matches!(self.state, State::Established | State::CloseWait) => {
                if self.keepalive_probes == 0 {
                    self.keepalive_at = Some(self.last_recv + idle);
                } else if self.keepalive_at.is_none() {
                    self.keepalive_at = Some(now + idle.min(KEEPALIVE_INTERVAL_MAX));
                }
            }
            _ => self.keepalive_at = None,
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
        if self.close_at.is_some_and(|t| t <= now) {
            self.close_at = None;
            if matches!(self.state, State::TimeWait | State::FinWait2) {
                self.close_with(None);
                return;
            }
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            self.on_rto(now, ctx);
            if self.state == State::Closed {
                return;
            }
        }
        if self.persist_at.is_some_and(|t| t <= now) {
            self.persist_at = None;
            self.persist_probes += 1;
            if self.persist_probes > self.max_retries {
                self.close_with(Some(ErrorKind::TimedOut));
                return;
            }
            self.persist_backoff = self.persist_backoff.saturating_add(1);
            self.force_send = true;
        }
        if self.delack_at.is_some_and(|t| t <= now) {
            self.delack_at = None;
            self.ack_now = true;
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            self.keepalive_at = None;
            let idle = self.snd_una == self.snd_max && self.sndbuf.is_empty();
            if idle {
                self.keepalive_probes += 1;
                if self.keepalive_probes > KEEPALIVE_PROBES {
                    self.close_with(Some(ErrorKind::TimedOut));
                    return;
                }
                self.send_keepalive = true;
            }
        }
        self.update_timers(now);
    }

    fn on_rto(&mut self, now: Instant, ctx: &mut Ctx) {
        ctx.stats.timeouts += 1;
        self.retries += 1;
        let syn_state = matches!(self.state, State::SynSent | State::SynReceived);
        let limit = if syn_state { self.syn_retries } else { self.max_retries };
        if self.retries > limit {
            // R2 exceeded (M-20): report TimedOut (a half-open passive TCB is silent).
            self.close_with(Some(ErrorKind::TimedOut));
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
        // RFC 5681 §3.1 eq. 4 / RFC 6582 §3.2 step 4 after a timeout.
        let flight = seq::dist(self.snd_una, self.snd_max);
        self.cc.on_rto(now, flight, !self.rto_repeated);
        self.rto_repeated = true;
        self.recover = self.snd_max;
        self.in_recovery = false;
        self.dupacks = 0;
        self.rexmit_one = None;
        // RFC 2018 §8: after a timeout, SACK information is not trusted.
        self.scoreboard.clear();
        self.snd_nxt = self.snd_una;
    }

    // ------------------------------------------------------------------------------------
    // Application commands
    // ------------------------------------------------------------------------------------

    pub(crate) fn handle_app(&mut self, now: Instant, _ctx: &mut Ctx, cmd: AppCommand) {
        match cmd {
            AppCommand::Write(data) => {
                let writable = matches!(self.state, State::SynSent | State::SynReceived | State::Established | State::CloseWait)
                    && !self.fin_queued;
                if !writable {
                    self.push_event(SocketEvent::Error(ErrorKind::BrokenPipe));
                    return;
                }
                let n = self.sndbuf.push(&data);
                if n < data.len() {
                    // The facade exceeded its credit: keep what fits, report the rest.
                    self.push_event(SocketEvent::Error(ErrorKind::WouldBlock));
                }
            }
            AppCommand::ReadCredit(n) => {
                self.rcv_unconsumed = self.rcv_unconsumed.saturating_sub(n);
                if self.window_update_due() {
                    self.ack_now = true;
                }
            }
            AppCommand::ShutdownWrite => self.shutdown_write(now),
            AppCommand::ShutdownRead => {
                self.read_shutdown = true;
                self.rcv_unconsumed = 0;
                if self.window_update_due() {
                    self.ack_now = true;
                }
            }
            AppCommand::Close => {
                if self.rcv_unconsumed > 0 && self.state != State::SynSent {
                    // Unread data: abort like Linux (RFC 2525 §2.17).
                    if !matches!(self.state, State::TimeWait | State::Closed) {
                        self.queue_abort_rst();
                    }
                    self.close_with(None);
                    return;
                }
                self.orphaned = true;
                self.read_shutdown = true;
                if self.state == State::SynSent {
                    self.close_with(None);
                    return;
                }
                self.shutdown_write(now);
                if self.state == State::FinWait2 && self.close_at.is_none() {
                    self.close_at = Some(now + self.msl * 2);
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
                self.keepalive_at = None;
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
    /// the advertised window at most half the buffer and the new one at least double.
    fn window_update_due(&self) -> bool {
        if !matches!(self.state, State::Established | State::FinWait1 | State::FinWait2) {
            return false;
        }
        let free = self.recv_buf.saturating_sub(self.rcv_unconsumed);
        let max_wnd = free.min(0xffff << self.rcv_wscale);
        let cur = self.rcv_wnd();
        let threshold = (self.recv_buf / 2).min(self.our_mss);
        max_wnd >= cur + threshold && cur * 2 <= self.recv_buf && max_wnd >= 2 * cur
    }

    // ------------------------------------------------------------------------------------
    // ICMP
    // ------------------------------------------------------------------------------------

    pub(crate) fn on_icmp(&mut self, _now: Instant, ctx: &mut Ctx, quoted_seq: u32, kind: IcmpErrorKind) {
        // RFC 5927 §4.1: the quoted sequence number must be in [SND.UNA, SND.MAX].
        if !(seq::le(self.snd_una, quoted_seq) && seq::le(quoted_seq, self.snd_max)) {
            ctx.stats.dropped += 1;
            return;
        }
        match kind {
            IcmpErrorKind::Soft => self.soft_error = Some(kind), // M-56: never abort
            IcmpErrorKind::PortUnreachable => {
                if self.state == State::SynSent {
                    self.close_with(Some(ErrorKind::ConnectionRefused));
                } else {
                    self.soft_error = Some(kind);
                }
            }
            IcmpErrorKind::PacketTooBig(mtu) => {
                let v6 = self.local.is_ipv6();
                // RFC 8201 §4: ignore PTB below the IPv6 minimum MTU; RFC 1191/791 576 for v4.
                let floor = if v6 { 1280 } else { 576 };
                let mtu = mtu as usize;
                if mtu < floor {
                    return;
                }
                let new_mss = mtu - if v6 { 60 } else { 40 };
                // Never grow the MSS from ICMP (RFC 1191 §3, RFC 8201 §4).
                if new_mss < self.peer_mss {
                    self.peer_mss = new_mss;
                    self.cc.set_mss(self.smss());
                    // Resend what is in flight in smaller segments; not a congestion signal.
                    if self.state.can_send_data() || self.state == State::FinWait2 {
                        self.snd_nxt = self.snd_una;
                        self.rtt_timing = None;
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Segment arrival (RFC 9293 §3.10.7)
    // ------------------------------------------------------------------------------------

    pub(crate) fn handle_segment(&mut self, now: Instant, ctx: &mut Ctx, r: &TcpRepr, payload: &[u8]) {
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.on_syn_sent(now, ctx, r, payload),
            _ => self.on_segment(now, ctx, r, payload),
        }
        self.update_timers(now);
    }

    /// RFC 9293 §3.10.7.3.
    fn on_syn_sent(&mut self, now: Instant, ctx: &mut Ctx, r: &TcpRepr, payload: &[u8]) {
        let f = r.flags;
        // First: the ACK must acknowledge our SYN.
        if f.ack && !(seq::gt(r.ack, self.iss) && seq::le(r.ack, self.snd_max)) {
            if !f.rst {
                self.queue_rst_for_ack(r.ack);
            }
            ctx.stats.dropped += 1;
            return;
        }
        if f.rst {
            // Only an RST that acknowledges our SYN is acceptable (RFC 5961 §3 / M-?).
            if f.ack {
                ctx.stats.rst_in += 1;
                self.close_with(Some(ErrorKind::ConnectionRefused));
            }
            return;
        }
        if !f.syn {
            return;
        }
        self.irs = r.seq;
        self.rcv_nxt = r.seq.wrapping_add(1);
        self.last_recv = now;
        let cfg = ctx.cfg;
        self.negotiate(cfg, r);
        self.rcv_adv = self.rcv_nxt.wrapping_add(self.syn_window() as u32);
        self.snd_wnd = r.window as usize; // SYN windows are never scaled
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = r.seq;
        self.snd_wl2 = r.ack;
        if f.ack {
            // SYN-ACK: our SYN is acked.
            if let Some((tsval, tsecr)) = r.options.timestamps {
                let _ = tsval;
                self.rtt_sample_ts(now, ctx.epoch, tsecr);
            } else if !self.syn_retransmitted {
                if let Some((_, t)) = self.rtt_timing {
                    self.rtt.sample(now.saturating_duration_since(t));
                }
            }
            self.rtt_timing = None;
            if self.syn_retransmitted {
                self.rtt.syn_was_retransmitted();
            }
            self.snd_una = r.ack;
            if seq::lt(self.snd_nxt, self.snd_una) {
                self.snd_nxt = self.snd_una;
            }
            self.retries = 0;
            self.state = if self.fin_queued { State::FinWait1 } else { State::Established };
            self.push_event(SocketEvent::Connected { local: self.local, remote: self.remote });
            self.push_event(SocketEvent::SendCredit(self.sndbuf.free()));
            self.ack_now = true;
            // Data or FIN on the SYN-ACK (rare).
            let seq1 = r.seq.wrapping_add(1);
            if !payload.is_empty() {
                self.process_text(now, ctx, seq1, payload);
            }
            if r.flags.fin && seq1.wrapping_add(payload.len() as u32) == self.rcv_nxt {
                self.process_fin(now);
            }
        } else {
            // Simultaneous open (M-10): SYN-RECEIVED, send SYN,ACK with our ISS.
            self.state = State::SynReceived;
            self.syn_pending = true;
        }
    }

    /// Segment processing for SYN-RECEIVED and the synchronized states (§3.10.7.4).
    fn on_segment(&mut self, now: Instant, ctx: &mut Ctx, r: &TcpRepr, payload: &[u8]) {
        let f = r.flags;
        let seg_len = r.segment_len(payload.len()) as usize;

        // A retransmitted SYN in SYN-RECEIVED: resend the SYN-ACK.
        if self.state == State::SynReceived && f.syn && !f.ack && !f.rst && r.seq == self.irs {
            self.syn_pending = true;
            return;
        }

        // RFC 7323 §5.3 PAWS (before the sequence check; never for RST).
        if self.ts_ok && !f.rst {
            if let (Some((tsval, _)), Some(at)) = (r.options.timestamps, self.ts_recent_at) {
                let stale = now.saturating_duration_since(at) > PAWS_IDLE;
                if !stale && seq::lt(tsval, self.ts_recent) {
                    ctx.stats.paws_rejected += 1;
                    ctx.stats.dropped += 1;
                    self.ack_now = true;
                    return;
                }
            }
        }

        // RFC 9293 §3.10.7.4 first: acceptability (four cases).
        let wnd = self.rcv_wnd() as u32;
        let rcv_end = self.rcv_nxt.wrapping_add(wnd);
        let acceptable = match (seg_len, wnd) {
            (0, 0) => r.seq == self.rcv_nxt,
            (0, _) => seq::in_range(r.seq, self.rcv_nxt, rcv_end),
            (_, 0) => false,
            (n, _) => {
                seq::in_range(r.seq, self.rcv_nxt, rcv_end)
                    || seq::in_range(r.seq.wrapping_add(n as u32 - 1), self.rcv_nxt, rcv_end)
            }
        };

        // Second: RST (RFC 5961 §3.2).
        if f.rst {
            if r.seq == self.rcv_nxt {
                ctx.stats.rst_in += 1;
                self.on_reset();
            } else if seq::in_range(r.seq, self.rcv_nxt, self.rcv_nxt.wrapping_add(wnd.max(1))) {
                self.challenge_ack(now, ctx.stats);
            } else {
                ctx.stats.dropped += 1;
            }
            return;
        }

        if !acceptable {
            ctx.stats.dropped += 1;
            // M-66: with a zero window, still process a valid ACK at RCV.NXT.
            if wnd == 0 && r.seq == self.rcv_nxt && f.ack && !f.syn && self.state != State::SynReceived {
                self.last_recv = now;
                self.process_ack(now, ctx, r, 0);
                self.after_ack_transitions(now);
            }
            if self.state == State::TimeWait && f.fin {
                // §3.10.7.4: a retransmitted FIN restarts the 2*MSL timer.
                self.close_at = Some(now + self.msl * 2);
            }
            // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. For segments without data (old pure
            // ACKs, SYNs) the answer is rate limited like a challenge ACK (as Linux's
            // tcp_invalid_ratelimit): duplicated old ACKs must not turn into duplicate ACKs.
            if seg_len == 0 || f.syn {
                self.challenge_ack(now, ctx.stats);
            } else {
                self.ack_now = true;
            }
            return;
        }
        self.last_recv = now;
        self.keepalive_probes = 0;
        self.keepalive_at = None;

        // RFC 7323 §4.3: TS.Recent only from a segment covering Last.ACK.sent.
        if let (true, Some((tsval, _))) = (self.ts_ok, r.options.timestamps) {
            if seq::le(r.seq, self.last_ack_sent) {
                self.ts_recent = tsval;
                self.ts_recent_at = Some(now);
            }
        }

        // Fourth: SYN in a synchronized state -> challenge ACK (RFC 5961 §4.2).
        if f.syn {
            self.challenge_ack(now, ctx.stats);
            return;
        }

        // Trim to the window: use only the new bytes (left edge) and what fits (right).
        let mut s = r.seq;
        let mut data = payload;
        let mut fin = f.fin;
        if seq::lt(s, self.rcv_nxt) {
            let skip = (self.rcv_nxt.wrapping_sub(s) as usize).min(data.len());
            data = &data[skip..];
            s = s.wrapping_add(skip as u32);
            if fin && seq::lt(s, self.rcv_nxt) {
                fin = false; // an old FIN (cannot be: RCV.NXT would be past it)
            }
        }
        let room = seq::dist(s, rcv_end);
        if data.len() > room {
            data = &data[..room];
            fin = false;
        }

        // Fifth: ACK.
        if !f.ack {
            ctx.stats.dropped += 1;
            return;
        }
        if self.state == State::SynReceived {
            if seq::gt(r.ack, self.snd_una) && seq::le(r.ack, self.snd_max) {
                if self.listener.is_some() && !self.accept_room {
                    // Accept queue full: stay half-open, the SYN-ACK will be retransmitted.
                    ctx.stats.dropped += 1;
                    return;
                }
                self.state = if self.fin_queued { State::FinWait1 } else { State::Established };
                self.snd_wnd = (r.window as usize) << self.snd_wscale;
                self.max_snd_wnd = self.snd_wnd;
                self.snd_wl1 = r.seq;
                self.snd_wl2 = r.ack;
                if self.syn_retransmitted {
                    self.rtt.syn_was_retransmitted();
                }
                if self.listener.is_some() {
                    // The endpoint emits Accepted (+ SendCredit) before our queued events.
                    self.just_established = true;
                    self.announced = true;
                } else {
                    self.push_event(SocketEvent::Connected { local: self.local, remote: self.remote });
                    self.push_event(SocketEvent::SendCredit(self.sndbuf.free()));
                }
            } else {
                self.queue_rst_for_ack(r.ack);
                return;
            }
        }
        if !self.process_ack(now, ctx, r, seg_len) {
            return;
        }
        if self.after_ack_transitions(now) {
            return;
        }

        // Seventh: segment text.
        if !data.is_empty() {
            if self.state.can_recv_data() {
                if self.orphaned {
                    // Data for a closed socket: reset (Linux, RFC 2525 §2.17).
                    self.queue_abort_rst();
                    self.close_with(None);
                    return;
                }
                self.process_text(now, ctx, s, data);
            } else {
                self.ack_now = true;
            }
        }

        // Eighth: FIN.
        if fin {
            let fin_at = s.wrapping_add(data.len() as u32);
            if fin_at == self.rcv_nxt {
                self.process_fin(now);
            } else if self.state.can_recv_data() {
                self.ooo_fin = Some(fin_at);
                self.ack_now = true;
            }
        }
    }

    /// State changes caused by our FIN being acknowledged. Returns true if the TCB closed.
    fn after_ack_transitions(&mut self, now: Instant) -> bool {
        if !self.fin_acked() {
            return false;
        }
        match self.state {
            State::FinWait1 => {
                self.state = State::FinWait2;
                if self.orphaned {
                    self.close_at = Some(now + self.msl * 2);
                }
            }
            State::Closing => self.enter_time_wait(now),
            State::LastAck => {
                self.close_with(None);
                return true;
            }
            _ => {}
        }
        false
    }

    fn on_reset(&mut self) {
        match self.state {
            State::SynReceived if self.listener.is_some() && !self.announced => {
                // M-11: back to LISTEN (the listener is untouched; the TCB goes away).
                self.state = State::Closed;
            }
            State::SynReceived => self.close_with(Some(ErrorKind::ConnectionRefused)),
            State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                // M-12: reset is distinguishable from a close.
                self.close_with(Some(ErrorKind::ConnectionReset))
            }
            _ => self.close_with(None),
        }
    }

    fn rtt_sample_ts(&mut self, now: Instant, epoch: Instant, tsecr: u32) {
        if tsecr == 0 {
            return;
        }
        let ms = self.ts_now(now, epoch).wrapping_sub(tsecr);
        // Ignore echoes that are not ours (e.g. garbage) — more than the RTO cap.
        if ms < 120_000 {
            self.rtt.sample(Duration::from_millis(ms as u64));
        }
    }

    /// Fifth step for synchronized states: returns false if the segment must be dropped.
    fn process_ack(&mut self, now: Instant, ctx: &mut Ctx, r: &TcpRepr, seg_len: usize) -> bool {
        let ack = r.ack;
        // RFC 5961 §5.2: SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT (we use SND.MAX, or
        // the end of an outstanding zero-window probe).
        let limit = self.probe_end.map_or(self.snd_max, |p| seq::max(p, self.snd_max));
        if seq::gt(ack, limit) {
            ctx.stats.dropped += 1;
            self.challenge_ack(now, ctx.stats);
            return false;
        }
        let lower = self.snd_una.wrapping_sub(self.max_snd_wnd.min(1 << 30) as u32);
        if seq::lt(ack, lower) {
            ctx.stats.dropped += 1;
            self.challenge_ack(now, ctx.stats);
            return false;
        }
        self.persist_probes = 0; // M-37: an answered probe keeps the connection
        let new_wnd = (r.window as usize) << self.snd_wscale;
        let new_sack =
            self.sack_ok && self.scoreboard.update(seq::max(ack, self.snd_una), self.snd_max, &r.options.sack_blocks);
        if seq::gt(ack, self.snd_una) {
            let mut acked = seq::dist(self.snd_una, ack);
            let total_acked = acked;
            if self.snd_una == self.iss {
                acked -= 1; // our SYN
            }
            if let Some(fs) = self.fin_seq {
                if seq::gt(ack, fs) && seq::le(self.snd_una, fs) {
                    acked = acked.saturating_sub(1); // our FIN
                }
            }
            let data_acked = acked.min(self.sndbuf.len());
            self.sndbuf.consume(data_acked);
            // RTT sample (RFC 6298 §3 / RFC 7323 §4.1; Karn's rule for timed segments).
            match (self.ts_ok, r.options.timestamps) {
                (true, Some((_, tsecr))) => self.rtt_sample_ts(now, ctx.epoch, tsecr),
                _ => {
                    if let Some((end, t)) = self.rtt_timing {
                        if seq::ge(ack, end) {
                            self.rtt.sample(now.saturating_duration_since(t));
                            self.rtt_timing = None;
                        }
                    }
                }
            }
            self.snd_una = ack;
            if seq::lt(self.snd_nxt, ack) {
                self.snd_nxt = ack;
            }
            if seq::lt(self.snd_max, ack) {
                self.snd_max = ack; // an accepted zero-window probe
            }
            if self.probe_end.is_some_and(|p| seq::le(p, self.snd_max)) {
                self.probe_end = None;
            }
            self.retries = 0;
            self.rto_repeated = false;
            if seq::lt(self.high_rxt, ack) {
                self.high_rxt = ack;
            }
            // Congestion control.
            if self.in_recovery {
                if seq::ge(ack, self.recover) {
                    // Full ACK (RFC 6582 §3.2 step 6).
                    let flight = seq::dist(self.snd_una, self.snd_max);
                    self.cc.on_exit_recovery(flight);
                    self.in_recovery = false;
                    self.dupacks = 0;
                } else {
                    // Partial ACK: retransmit the next hole (step 5).
                    self.cc.on_partial_ack(total_acked);
                    self.rexmit_one = Some(self.snd_una);
                    self.sack_rexmit = self.sack_ok;
                    self.rto_at = None; // restarted below (first partial ACK resets timer)
                }
            } else {
                self.dupacks = 0;
                self.cc.on_ack(now, total_acked, self.rtt.srtt);
            }
            // RFC 6298 §5.3: restart the timer for the remaining data.
            self.rto_at = None;
            if data_acked > 0 {
                self.push_event(SocketEvent::SendCredit(data_acked));
            }
        } else if ack == self.snd_una {
            // RFC 5681 §2 duplicate ACK.
            // Zero-window probe answers are not duplicate ACKs.
            let dup = self.snd_max != self.snd_una
                && self.snd_wnd > 0
                && seg_len == 0
                && new_wnd == self.snd_wnd
                && !r.flags.syn
                && !r.flags.fin;
            if dup {
                self.dupacks += 1;
                if self.in_recovery {
                    self.cc.on_dup_ack_in_recovery();
                    self.sack_rexmit = self.sack_ok;
                } else if self.dupacks == DUPACK_THRESHOLD && seq::gt(ack, self.recover) {
                    // RFC 6582 §3.2 step 2 / RFC 5681 §3.2 step 2-3.
                    self.enter_recovery(now, ctx);
                }
            }
        }
        if self.sack_ok && self.snd_una != self.snd_max {
            if !self.in_recovery
                && seq::gt(self.snd_una, self.recover)
                && self.scoreboard.sacked_bytes() >= DUPACK_THRESHOLD as usize * self.smss()
            {
                // RFC 6675 §5 (IsLost): DupThresh segments SACKed above SND.UNA mean loss,
                // even when the ACKs ride on data segments (no pure duplicate ACKs).
                self.enter_recovery(now, ctx);
            } else if self.in_recovery && new_sack {
                self.sack_rexmit = true;
            }
        }
        // RFC 9293 §3.10.7.4 fifth: window update when the segment is newer.
        if seq::lt(self.snd_wl1, r.seq) || (self.snd_wl1 == r.seq && seq::le(self.snd_wl2, ack)) {
            self.snd_wnd = new_wnd;
            self.snd_wl1 = r.seq;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(new_wnd);
            if new_wnd > 0 {
                self.persist_backoff = 0;
            }
        }
        true
    }

    /// Fast retransmit and enter fast recovery (RFC 5681 §3.2 steps 2-3, RFC 6582 §3.2).
    fn enter_recovery(&mut self, now: Instant, ctx: &mut Ctx) {
        let flight = seq::dist(self.snd_una, self.snd_max);
        self.cc.on_enter_recovery(now, flight);
        self.in_recovery = true;
        self.recover = self.snd_max;
        self.high_rxt = self.snd_una;
        self.rexmit_one = Some(self.snd_una);
        self.rtt_timing = None;
        ctx.stats.fast_retransmits += 1;
    }

    /// In-window data at `s` (already trimmed to `[RCV.NXT, RCV.ADV)`).
    fn process_text(&mut self, now: Instant, _ctx: &mut Ctx, s: u32, data: &[u8]) {
        if s == self.rcv_nxt {
            let had_ooo = !self.ooo.is_empty();
            if !had_ooo {
                self.rcv_nxt = self.rcv_nxt.wrapping_add(data.len() as u32);
                self.deliver(data.to_vec());
            } else {
                self.ooo.insert(self.rcv_nxt, s, data, false);
                while let Some(d) = self.ooo.pop(self.rcv_nxt) {
                    self.rcv_nxt = self.rcv_nxt.wrapping_add(d.len() as u32);
                    self.deliver(d);
                }
                // RFC 5681 §4.2: ACK a hole-filling segment at once.
                self.ack_now = true;
            }
            if self.ooo.is_empty() {
                self.recent_blocks.clear();
            }
            if self.ooo_fin == Some(self.rcv_nxt) {
                self.ooo_fin = None;
                self.process_fin(now);
            }
            // Delayed ACK (RFC 5681 §4.2, M-40): at least every second full segment.
            // "Full-sized" is estimated from the largest segment seen (as Linux does).
            self.rcv_mss_est = self.rcv_mss_est.max(data.len()).min(self.our_mss);
            self.unacked_bytes += data.len();
            if self.unacked_bytes >= 2 * self.rcv_mss_est {
                self.ack_now = true;
            } else if self.delack_at.is_none() {
                self.delack_at = Some(now + self.delayed_ack);
            }
        } else {
            // Out of order: keep (bounded), ACK at once with SACK blocks (RFC 5681 §4.2).
            self.ooo.insert(self.rcv_nxt, s, data, true);
            self.recent_blocks.note(s);
            self.ack_now = true;
        }
    }

    fn deliver(&mut self, d: Vec<u8>) {
        if d.is_empty() || self.read_shutdown {
            return; // discarded after ShutdownRead (still ACKed)
        }
        self.rcv_unconsumed += d.len();
        self.push_event(SocketEvent::Data(d));
    }

    fn process_fin(&mut self, now: Instant) {
        self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
        self.ack_now = true;
        self.ooo.clear();
        self.push_event(SocketEvent::Eof);
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 => {
                if self.fin_acked() {
                    self.enter_time_wait(now);
                } else {
                    self.state = State::Closing; // simultaneous close
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            State::TimeWait => self.close_at = Some(now + self.msl * 2),
            _ => {}
        }
    }

    // ------------------------------------------------------------------------------------
    // Output
    // ------------------------------------------------------------------------------------

    /// True when poll_transmit has something it must send regardless of windows.
    pub(crate) fn wants_transmit(&self) -> bool {
        self.rst_out.is_some()
            || self.syn_pending
            || self.ack_now
            || self.rexmit_one.is_some()
            || self.force_send
            || self.send_keepalive
            || self.state.can_send_data()
    }

    /// The window field for a non-SYN segment, advancing RCV.ADV (receiver SWS, M-39).
    fn window_field(&mut self) -> u16 {
        let s = self.rcv_wscale;
        let free = self.recv_buf.saturating_sub(self.rcv_unconsumed);
        let max_wnd = free.min(0xffff << s);
        if seq::lt(self.rcv_adv, self.rcv_nxt) {
            self.rcv_adv = self.rcv_nxt;
        }
        let edge = self.rcv_nxt.wrapping_add(max_wnd as u32);
        let threshold = (self.recv_buf / 2).min(self.our_mss).max(1);
        let target = if seq::dist(self.rcv_adv, edge) >= threshold || self.read_shutdown {
            edge
        } else {
            self.rcv_adv
        };
        let wnd = seq::dist(self.rcv_nxt, target);
        let mut field = (wnd >> s).min(0xffff);
        // Rounding down must not look like shrinking if rounding up still fits the buffer.
        if (field << s) < self.rcv_wnd() && field < 0xffff && ((field + 1) << s) <= free {
            field += 1;
        }
        let adv = self.rcv_nxt.wrapping_add((field << s) as u32);
        self.rcv_adv = seq::max(self.rcv_adv, adv);
        field as u16
    }

    fn options(&self, now: Instant, epoch: Instant, syn: bool) -> TcpOptions {
        let mut o = TcpOptions::default();
        let active_syn = syn && self.state == State::SynSent;
        if syn {
            o.mss = Some(self.our_mss.min(0xffff) as u16);
            if self.ws_ok {
                o.window_scale = Some(self.rcv_wscale_offer);
            }
            o.sack_permitted = self.sack_ok;
        }
        if self.ts_ok {
            let ecr = if active_syn { 0 } else { self.ts_recent };
            o.timestamps = Some((self.ts_now(now, epoch), ecr));
        }
        if !syn && self.sack_ok && !self.ooo.is_empty() {
            let max = if self.ts_ok { 3 } else { 4 };
            o.sack_blocks =
                self.recent_blocks.blocks(max, |x| self.ooo.range_containing(x), self.ooo.ranges());
        }
        o
    }

    fn make_repr(&mut self, seq_no: u32, flags: TcpFlags, opts: TcpOptions) -> TcpRepr {
        let window = if flags.syn { self.syn_window() as u16 } else { self.window_field() };
        if flags.ack {
            self.last_ack_sent = self.rcv_nxt;
            self.ack_now = false;
            self.delack_at = None;
            self.unacked_bytes = 0;
        }
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq_no,
            ack: if flags.ack { self.rcv_nxt } else { 0 },
            flags,
            window,
            urgent: 0,
            options: opts,
        }
    }

    /// Emit one data/FIN segment `[s, s+len)` (+FIN) from the send buffer.
    #[allow(clippy::too_many_arguments)]
    fn send_segment(
        &mut self,
        now: Instant,
        ctx: &mut Ctx,
        opts: TcpOptions,
        s: u32,
        len: usize,
        fin: bool,
        emit: &mut Emit,
    ) {
        let unsent_after = seq::dist(s.wrapping_add(len as u32), self.data_end());
        let flags = TcpFlags { ack: true, psh: len > 0 && unsent_after == 0, fin, ..Default::default() };
        let repr = self.make_repr(s, flags, opts);
        let off = seq::dist(self.buf_seq(), s);
        emit(&repr, self.sndbuf.slice(off, len));
        ctx.stats.segments_out += 1;
        let end = s.wrapping_add(len as u32).wrapping_add(fin as u32);
        if seq::lt(s, self.snd_max) {
            ctx.stats.retransmits += 1;
            // Karn (RFC 6298 §3): no sample from a retransmitted segment.
            if !self.ts_ok {
                self.rtt_timing = None;
            }
        } else if !self.ts_ok && self.rtt_timing.is_none() {
            self.rtt_timing = Some((end, now));
        }
        if fin && self.fin_seq.is_none() {
            self.fin_seq = Some(s.wrapping_add(len as u32));
        }
        if seq::gt(end, self.snd_max) {
            self.snd_max = end;
        }
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
    }

    pub(crate) fn poll_transmit(&mut self, now: Instant, ctx: &mut Ctx, emit: &mut Emit) {
        if let Some(rst) = self.rst_out.take() {
            emit(&rst, &[]);
            ctx.stats.segments_out += 1;
            ctx.stats.rst_out += 1;
        }
        match self.state {
            State::Closed | State::Listen => return,
            State::SynSent | State::SynReceived => {
                if self.syn_pending || (self.state == State::SynReceived && self.ack_now) {
                    self.syn_pending = false;
                    let ack = self.state == State::SynReceived;
                    let flags = TcpFlags { syn: true, ack, ..Default::default() };
                    let opts = self.options(now, ctx.epoch, true);
                    let repr = self.make_repr(self.iss, flags, opts);
                    emit(&repr, &[]);
                    ctx.stats.segments_out += 1;
                    if self.snd_max == self.iss {
                        self.snd_nxt = self.iss.wrapping_add(1);
                        self.snd_max = self.snd_nxt;
                        if !self.ts_ok {
                            self.rtt_timing = Some((self.snd_nxt, now));
                        }
                    } else {
                        ctx.stats.retransmits += 1;
                    }
                    if self.rto_at.is_none() {
                        self.rto_at = Some(now + self.rtt.rto());
                    }
                }
                self.update_timers(now);
                return;
            }
            _ => {}
        }
        let opts = self.options(now, ctx.epoch, false);
        let max_payload = self.peer_mss.saturating_sub(opts.emitted_len()).max(1);
        let mut sent = false;

        if self.state.can_send_data() || self.state == State::FinWait2 {
            // 1. Fast retransmit / NewReno partial ACK: the segment at `s`.
            if let Some(s) = self.rexmit_one.take() {
                if seq::lt(s, self.snd_max) && seq::ge(s, self.snd_una) {
                    let mut len = seq::dist(s, self.data_end()).min(max_payload);
                    if let Some((_, he)) = self.scoreboard.next_hole(s).filter(|h| h.0 == s) {
                        len = len.min(seq::dist(s, he));
                    }
                    len = len.min(seq::dist(s, self.snd_max));
                    let fin = self.fin_seq == Some(s.wrapping_add(len as u32)) && seq::gt(self.snd_max, s.wrapping_add(len as u32));
                    if len > 0 || fin {
                        self.send_segment(now, ctx, opts, s, len, fin, emit);
                        self.high_rxt = seq::max(self.high_rxt, s.wrapping_add(len as u32));
                        sent = true;
                    }
                }
            }
            // 2. SACK: retransmit the next hole the peer reported around (RFC 6675 NextSeg rule 1).
            if self.sack_rexmit {
                self.sack_rexmit = false;
                if self.in_recovery {
                    let from = seq::max(self.high_rxt, self.snd_una);
                    if let Some((hs, he)) = self.scoreboard.next_hole(from) {
                        let len = seq::dist(hs, he).min(max_payload).min(seq::dist(hs, self.data_end()));
                        if len > 0 && seq::lt(hs, self.snd_max) {
                            self.send_segment(now, ctx, opts, hs, len, false, emit);
                            self.high_rxt = hs.wrapping_add(len as u32);
                            sent = true;
                        }
                    }
                }
            }
            // 3. Zero-window probe (M-35/M-36): one byte (or the FIN) beyond the window.
            // SND.MAX is not advanced past the window (pure ACKs carry SEQ=SND.MAX);
            // `probe_end` lets the peer acknowledge the probe.
            if self.force_send && self.snd_wnd == 0 && self.snd_nxt == self.snd_una {
                self.force_send = false;
                let unsent = seq::dist(self.snd_una, self.data_end());
                let s = self.snd_una;
                let old_max = self.snd_max;
                if unsent > 0 {
                    self.send_segment(now, ctx, opts, s, 1, false, emit);
                    sent = true;
                } else if self.fin_queued && self.state.can_send_data() {
                    self.send_segment(now, ctx, opts, s, 0, true, emit);
                    sent = true;
                }
                if seq::gt(self.snd_max, old_max) {
                    self.probe_end = Some(self.snd_max);
                    self.snd_max = old_max;
                }
                // The probe is not "in flight" for the RTO; the persist timer covers it.
                self.rto_at = None;
                self.update_timers(now);
            }
            // 4. New data and go-back-N retransmission from SND.NXT.
            if self.state.can_send_data() {
                sent |= self.send_data(now, ctx, opts, max_payload, emit);
            }
        }
        // 5. Keep-alive probe: <SEQ=SND.NXT-1> with no data (RFC 9293 §3.8.4).
        if self.send_keepalive {
            self.send_keepalive = false;
            if !sent {
                let flags = TcpFlags { ack: true, ..Default::default() };
                let repr = self.make_repr(self.snd_una.wrapping_sub(1), flags, opts);
                emit(&repr, &[]);
                ctx.stats.segments_out += 1;
                sent = true;
            }
        }
        // 6. A pure ACK if one is due and nothing carried it.
        if self.ack_now && !sent {
            let flags = TcpFlags { ack: true, ..Default::default() };
            // SEQ = SND.MAX, not the (possibly rewound) send pointer: a sequence number
            // below the peer's RCV.NXT would make the ACK unacceptable there.
            let repr = self.make_repr(self.snd_max, flags, opts);
            emit(&repr, &[]);
            ctx.stats.segments_out += 1;
        }
        self.update_timers(now);
    }

    fn send_data(&mut self, now: Instant, ctx: &mut Ctx, opts: TcpOptions, max_payload: usize, emit: &mut Emit) -> bool {
        let mut sent = false;
        let smss = self.smss().min(max_payload).max(1);
        // A bound on iterations: each one sends or advances SND.NXT over a SACKed range.
        for _ in 0..100_000 {
            let data_end = self.data_end();
            if self.sack_ok && seq::lt(self.snd_nxt, self.snd_max) {
                if let Some(e) = self.scoreboard.sacked_end(self.snd_nxt) {
                    self.snd_nxt = seq::min(e, self.snd_max);
                    continue;
                }
            }
            let in_flight = seq::dist(self.snd_una, self.snd_nxt);
            let wnd = self.snd_wnd.min(self.cc.cwnd());
            let usable = wnd.saturating_sub(in_flight);
            let unsent = seq::dist(self.snd_nxt, data_end);
            let fin_pending = self.fin_queued && self.fin_seq.is_none_or(|f| seq::le(self.snd_nxt, f));
            if unsent == 0 && !fin_pending {
                break;
            }
            let mut len = unsent.min(max_payload).min(usable);
            let retransmit = seq::lt(self.snd_nxt, self.snd_max);
            if retransmit && self.sack_ok {
                if let Some((hs, he)) = self.scoreboard.next_hole(self.snd_nxt) {
                    if hs == self.snd_nxt {
                        len = len.min(seq::dist(hs, he));
                    }
                }
            }
            let fin = fin_pending && len == unsent && (len > 0 || usable > 0);
            if len == 0 && !fin {
                break;
            }
            if !retransmit && len > 0 && len < smss && !self.force_send {
                if len < unsent {
                    // Sender SWS (M-38): a partial segment only if it is >= half the
                    // largest window the peer ever offered (else wait for an ACK or the
                    // override timer).
                    if len < self.max_snd_wnd / 2 {
                        break;
                    }
                } else if !self.nodelay && in_flight > 0 && !fin {
                    // Nagle (RFC 896, M-17): one small segment outstanding at a time.
                    break;
                }
            }
            self.force_send = false;
            let s = self.snd_nxt;
            self.send_segment(now, ctx, opts, s, len, fin, emit);
            self.snd_nxt = s.wrapping_add(len as u32).wrapping_add(fin as u32);
            sent = true;
        }
        sent
    }
}
