//! Segment arrival (RFC 9293 §3.10.7): SYN-SENT processing, the acceptability test,
//! RST/SYN/ACK checks, loss detection on ACKs, segment text and FIN.

use super::super::rtx::Delivered;
use super::*;

impl Tcb {
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
            // Only an RST that acknowledges our SYN is acceptable (RFC 9293 §3.10.7.3).
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
            // SYN-ACK: our SYN is acked. Its round trip as timed when the SYN went once
            // (Karn), else from the timestamp echo: Linux's `tcp_ack_update_rtt` prefers
            // the timing, which is in µs and which a peer cannot forge as it can TSecr.
            match (self.rtt_timing, self.syn_retransmitted, self.ts_ok, r.options.timestamps) {
                (Some((_, t)), false, ..) => self.rtt.sample(now.saturating_duration_since(t)),
                (_, _, true, Some((_, tsecr))) => self.rtt_sample_ts(now, ctx.epoch, tsecr),
                _ => {}
            }
            self.rtt_timing = None;
            if self.syn_retransmitted {
                self.rtt.syn_was_retransmitted();
            }
            if let Some(srtt) = self.rtt.srtt {
                self.cc.on_handshake_rtt(srtt);
            }
            self.soft_error = None; // the peer answered: a soft error is stale
            self.snd_una = r.ack;
            self.syn_acked = true;
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

    /// Segment processing for SYN-RECEIVED and the synchronized states (RFC 9293
    /// §3.10.7.4), one helper per step of the RFC.
    fn on_segment(&mut self, now: Instant, ctx: &mut Ctx, r: &TcpRepr, payload: &[u8]) {
        let seg_len = r.segment_len(payload.len()) as usize;
        if self.syn_received_repeat(ctx, r) || self.paws_rejects(now, ctx, r, seg_len) {
            return;
        }
        // First: sequence number; second: RST.
        let acceptable = self.acceptable(r, payload.len(), seg_len);
        if r.flags.rst {
            self.on_rst(now, ctx, r);
            return;
        }
        if !acceptable {
            self.on_unacceptable(now, ctx, r, payload, seg_len);
            return;
        }
        self.last_recv = now;
        self.keepalive_probes = 0;
        self.timers.keepalive = None;
        // Fourth: SYN in a synchronized state -> challenge ACK (RFC 5961 §4.2).
        if r.flags.syn {
            self.challenge_ack(now, ctx.stats);
            return;
        }
        let (s, data, fin) = self.trim_to_window(now, ctx, r, payload);
        // Fifth: ACK.
        if !self.check_ack(now, ctx, r, seg_len) {
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

    /// SYN-RECEIVED special cases. Returns true when the segment was fully handled.
    fn syn_received_repeat(&mut self, ctx: &mut Ctx, r: &TcpRepr) -> bool {
        let f = r.flags;
        if self.state != State::SynReceived || !f.syn || f.rst || r.seq != self.irs {
            return false;
        }
        if !f.ack {
            // A retransmitted SYN: resend the SYN-ACK.
            self.syn_pending = true;
            return true;
        }
        // Simultaneous open (RFC 9293 §3.5 figure 8): the peer's SYN-ACK repeats its SYN
        // (SEQ = IRS) and acknowledges ours. Its SYN is old, but its ACK completes the
        // handshake (as Linux, which accepts a segment ending at RCV.NXT).
        if seq::gt(r.ack, self.snd_una) && seq::le(r.ack, self.snd_max) {
            if self.establish_from_syn_received(ctx, r) {
                self.snd_una = r.ack;
                self.syn_acked = true;
                self.retries = 0;
                self.ack_now = true;
            }
        } else {
            self.queue_rst_for_ack(r.ack);
        }
        true
    }

    /// RFC 7323 §5.3 PAWS (before the sequence check; never for RST). Returns true when
    /// the segment was rejected (ACKed and dropped).
    fn paws_rejects(&mut self, now: Instant, ctx: &mut Ctx, r: &TcpRepr, seg_len: usize) -> bool {
        if !self.ts_ok || r.flags.rst {
            return false;
        }
        let (Some((tsval, _)), Some(at)) = (r.options.timestamps, self.ts_recent_at) else { return false };
        let stale = now.saturating_duration_since(at) > PAWS_IDLE;
        if stale || !seq::lt(tsval, self.ts_recent) {
            return false;
        }
        ctx.stats.paws_rejected += 1;
        ctx.stats.dropped += 1;
        // ACK and drop; for segments without data the ACK is rate limited.
        if seg_len == 0 {
            self.challenge_ack(now, ctx.stats);
        } else {
            self.ack_now = true;
        }
        true
    }

    /// RFC 9293 §3.10.7.4 first: acceptability (four cases), with two deliberate
    /// deviations that follow Linux (tcp_sequence, tcp_data_queue):
    /// * a zero-length segment may sit exactly at RCV.NXT + RCV.WND (the RFC says
    ///   `< RCV.NXT+RCV.WND`): a peer that filled our window sends its pure ACKs there;
    /// * a bare FIN at RCV.NXT is accepted with a zero window (the RFC refuses any
    ///   segment of length > 0): it needs no buffer, and refusing it stalls the close.
    fn acceptable(&self, r: &TcpRepr, payload_len: usize, seg_len: usize) -> bool {
        let wnd = self.rcv_wnd() as u32;
        let rcv_end = self.rcv_nxt.wrapping_add(wnd);
        let bare_fin = r.flags.fin && !r.flags.syn && payload_len == 0;
        match (seg_len, wnd) {
            (0, _) => seq::le(self.rcv_nxt, r.seq) && seq::le(r.seq, rcv_end),
            (_, 0) => bare_fin && r.seq == self.rcv_nxt,
            (n, _) => {
                seq::in_range(r.seq, self.rcv_nxt, rcv_end)
                    || seq::in_range(r.seq.wrapping_add(n as u32 - 1), self.rcv_nxt, rcv_end)
            }
        }
    }

    /// Second: RST (RFC 5961 §3.2): exact reset, challenge ACK in the window, else drop.
    fn on_rst(&mut self, now: Instant, ctx: &mut Ctx, r: &TcpRepr) {
        let wnd = self.rcv_wnd() as u32;
        if r.seq == self.rcv_nxt {
            ctx.stats.rst_in += 1;
            self.on_reset();
        } else if seq::in_range(r.seq, self.rcv_nxt, self.rcv_nxt.wrapping_add(wnd.max(1))) {
            self.challenge_ack(now, ctx.stats);
        } else {
            ctx.stats.dropped += 1;
        }
    }

    /// An unacceptable segment: `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>` and drop (with the
    /// M-66 zero-window ACK processing and a D-SACK for old data).
    fn on_unacceptable(&mut self, now: Instant, ctx: &mut Ctx, r: &TcpRepr, payload: &[u8], seg_len: usize) {
        let f = r.flags;
        ctx.stats.dropped += 1;
        // M-66: with a zero window, still process a valid ACK at RCV.NXT.
        if self.rcv_wnd() == 0 && r.seq == self.rcv_nxt && f.ack && !f.syn && self.state != State::SynReceived {
            self.last_recv = now;
            // The segment's own length: data here is not a duplicate ACK (RFC 5681 §2).
            self.process_ack(now, ctx, r, seg_len);
            self.after_ack_transitions(now);
        }
        if self.state == State::TimeWait && f.fin {
            // §3.10.7.4: a retransmitted FIN restarts the 2*MSL timer.
            self.timers.close = Some(now + self.msl * 2);
        }
        // RFC 2883 §4: data entirely below RCV.NXT was received twice: report it.
        let data_end = r.seq.wrapping_add(payload.len() as u32);
        if !payload.is_empty() && seq::le(data_end, self.rcv_nxt) {
            self.report_duplicate(now, ctx.epoch, r.seq, data_end);
        }
        // For segments without data (old pure ACKs, SYNs) the answer is rate limited like a
        // challenge ACK (as Linux's tcp_invalid_ratelimit): duplicated old ACKs must not
        // turn into duplicate ACKs.
        if seg_len == 0 || f.syn {
            self.challenge_ack(now, ctx.stats);
        } else {
            self.ack_now = true;
        }
    }

    /// Trim an acceptable segment to the window: only the new bytes (left edge, the rest is
    /// reported with a D-SACK) and what fits (right edge). Returns `(seq, data, fin)`.
    fn trim_to_window<'p>(
        &mut self,
        now: Instant,
        ctx: &mut Ctx,
        r: &TcpRepr,
        payload: &'p [u8],
    ) -> (u32, &'p [u8], bool) {
        let rcv_end = self.rcv_nxt.wrapping_add(self.rcv_wnd() as u32);
        let mut s = r.seq;
        let mut data = payload;
        let mut fin = r.flags.fin;
        if seq::lt(s, self.rcv_nxt) {
            let skip = (self.rcv_nxt.wrapping_sub(s) as usize).min(data.len());
            if skip > 0 {
                // RFC 2883 §4: the part below RCV.NXT is a duplicate: report it.
                self.report_duplicate(now, ctx.epoch, s, s.wrapping_add(skip as u32));
            }
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
        (s, data, fin)
    }

    /// Fifth: the ACK field (SYN-RECEIVED completion, RFC 5961 checks, recovery), then
    /// TS.Recent and the FIN-acknowledged transitions. Returns false to stop processing.
    fn check_ack(&mut self, now: Instant, ctx: &mut Ctx, r: &TcpRepr, seg_len: usize) -> bool {
        if !r.flags.ack {
            ctx.stats.dropped += 1;
            return false;
        }
        let handshake = self.state == State::SynReceived;
        if handshake {
            if !(seq::gt(r.ack, self.snd_una) && seq::le(r.ack, self.snd_max)) {
                self.queue_rst_for_ack(r.ack);
                return false;
            }
            if !self.establish_from_syn_received(ctx, r) {
                return false;
            }
        }
        if !self.process_ack(now, ctx, r, seg_len) {
            return false;
        }
        if let (true, Some(srtt)) = (handshake, self.rtt.srtt) {
            self.cc.on_handshake_rtt(srtt); // the SYN-ACK's round trip
        }
        // Something worked: forget the soft ICMP error (Linux clears sk_err_soft in tcp_ack).
        self.soft_error = None;
        // RFC 7323 §4.3: TS.Recent only from a segment covering Last.ACK.sent, and only
        // once it passed the ACK checks (as Linux's tcp_ack): a blind in-window segment
        // with a bogus ACK must not push it ahead and wedge the connection under PAWS.
        if let (true, Some((tsval, _))) = (self.ts_ok, r.options.timestamps) {
            if seq::le(r.seq, self.last_ack_sent) {
                self.ts_recent = tsval;
                self.ts_recent_at = Some(now);
            }
        }
        !self.after_ack_transitions(now)
    }

    /// SYN-RECEIVED -> ESTABLISHED (or FIN-WAIT-1 if the application already shut down
    /// writing) on an acceptable ACK of our SYN. Returns false if the accept queue is full.
    fn establish_from_syn_received(&mut self, ctx: &mut Ctx, r: &TcpRepr) -> bool {
        if self.listener.is_some() && !self.accept_room {
            // Accept queue full: stay half-open, the SYN-ACK will be retransmitted.
            ctx.stats.dropped += 1;
            return false;
        }
        self.state = if self.fin_queued { State::FinWait1 } else { State::Established };
        // The window of a segment with SYN is never scaled (RFC 7323 §2.2).
        self.snd_wnd = if r.flags.syn { r.window as usize } else { (r.window as usize) << self.snd_wscale };
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
        true
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
                    self.timers.close = Some(now + self.msl * 2);
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
        let prior_una = self.snd_una;
        let mut d = Delivered::new(&self.rtx);
        let dsack = if self.sack_ok { self.apply_sack(ack, &r.options.sack_blocks, &mut d, ctx) } else { None };
        if seq::gt(ack, self.snd_una) {
            self.on_ack_advance(now, ctx, r, &mut d);
        } else if ack == self.snd_una {
            // RFC 5681 §2 duplicate ACK (zero-window probe answers are not).
            let dup = self.snd_max != self.snd_una
                && self.snd_wnd > 0
                && seg_len == 0
                && new_wnd == self.snd_wnd
                && !r.flags.syn
                && !r.flags.fin;
            // With SACK, RACK detects losses from the SACK blocks; without it a duplicate
            // ACK stands for one delivered segment (Linux's Reno emulation).
            if dup && !self.sack_ok {
                self.dupacks = self.dupacks.saturating_add(1);
                let flight = seq::dist(self.snd_una, self.snd_max);
                let add = self.smss().min(flight.saturating_sub(self.reno_sacked));
                self.reno_sacked += add;
                d.bytes += add;
            }
        }
        // Nothing was outstanding and this ACK tells nothing new (the pure receiver's case:
        // every data segment of a download carries one): no delivery, no rate sample, no
        // loss to look for; Linux's `tcp_ack` skips congestion control likewise
        // (`no_queue`), so BBR's time-driven steps (gain cycle, PROBE_RTT entry) wait for the
        // next ACK of data, as there. The window update below still applies. An open
        // tail-loss-probe episode takes the full path: such an ACK ends it (`tlp_on_ack`).
        let idle = prior_una == self.snd_max
            && ack == prior_una
            && self.probe_end.is_none()
            && self.tlp.end_seq.is_none()
            && dsack.is_none()
            && d.bytes == 0
            && self.ca == CaState::Open
            && self.rtx.is_empty();
        if !idle {
            self.on_delivery(now, ctx, r, prior_una, &d, dsack);
        }
        // RFC 9293 §3.10.7.4 fifth: update the window only if SND.UNA <= SEG.ACK and the
        // segment is newer than the one that last did. An ACK that advances SND.UNA is newer
        // whatever its SEG.SEQ (a retransmission from the peer has an older one), as in Linux's
        // `tcp_may_update_window`: the window is taken from SND.UNA on, so keeping the old one
        // would move the peer's right edge right by the bytes just acknowledged.
        let newer = seq::gt(ack, prior_una)
            || seq::lt(self.snd_wl1, r.seq)
            || (self.snd_wl1 == r.seq && seq::le(self.snd_wl2, ack));
        if seq::le(prior_una, ack) && newer {
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

    /// SND.UNA advances to `r.ack`: free acknowledged data, take an RTT sample, restart
    /// the retransmission timer (RFC 6298 §5.3).
    fn on_ack_advance(&mut self, now: Instant, ctx: &mut Ctx, r: &TcpRepr, d: &mut Delivered) {
        let ack = r.ack;
        let mut acked = seq::dist(self.snd_una, ack);
        if !self.syn_acked {
            self.syn_acked = true;
            acked -= 1; // our SYN
        }
        if let Some(fs) = self.fin_seq {
            if seq::gt(ack, fs) && seq::le(self.snd_una, fs) {
                acked = acked.saturating_sub(1); // our FIN
            }
        }
        let data_acked = acked.min(self.sndbuf.len());
        self.sndbuf.consume(data_acked, ctx.spent_tx);
        // RTT sample (RFC 6298 §3 / RFC 7323 §4.1; Karn's rule for timed segments). The
        // first, the handshake's, comes from the timed SYN-ACK when it went once, as on
        // the active side (Linux's `tcp_synack_rtt_meas`); later ones from the echo.
        let first_timed = self.rtt.srtt.is_none() && self.rtt_timing.is_some_and(|(end, _)| seq::ge(ack, end));
        match (self.ts_ok, r.options.timestamps) {
            (true, Some((_, tsecr))) if !first_timed => self.rtt_sample_ts(now, ctx.epoch, tsecr),
            _ => {
                if let Some((end, t)) = self.rtt_timing {
                    if seq::ge(ack, end) {
                        self.rtt.sample(now.saturating_duration_since(t));
                        self.rtt_timing = None;
                    }
                }
            }
        }
        self.rtx.ack(ack, d);
        if !self.sack_ok {
            self.reno_sacked = self.reno_sacked.saturating_sub(seq::dist(self.snd_una, ack));
            self.dupacks = 0;
        }
        self.snd_una = ack;
        if seq::lt(self.snd_max, ack) {
            self.snd_max = ack; // an accepted zero-window probe
        }
        if self.probe_end.is_some_and(|p| seq::le(p, self.snd_max)) {
            self.probe_end = None;
        }
        self.retries = 0;
        self.rto_repeated = false;
        // RFC 6298 §5.3: restart the timer for the remaining data; RFC 8985 §7.2: re-arm
        // the probe timer likewise.
        self.timers.rto = None;
        self.timers.pto = None;
        if data_acked > 0 {
            self.push_event(SocketEvent::SendCredit(data_acked));
        }
    }

    /// In-window data at `s` (already trimmed to `[RCV.NXT, RCV.ADV)`).
    fn process_text(&mut self, now: Instant, ctx: &mut Ctx, s: u32, data: &[u8]) {
        if s == self.rcv_nxt {
            let had_ooo = !self.ooo.is_empty();
            if !had_ooo {
                self.rcv_nxt = self.rcv_nxt.wrapping_add(data.len() as u32);
                self.deliver(ctx, data);
            } else {
                self.snapshot_pending_ack(now, ctx.epoch);
                self.ooo.insert(self.rcv_nxt, s, data, false);
                while let Some(d) = self.ooo.pop(self.rcv_nxt) {
                    self.rcv_nxt = self.rcv_nxt.wrapping_add(d.len() as u32);
                    self.deliver(ctx, &d);
                }
                // RFC 5681 §4.2: ACK a hole-filling segment at once.
                self.ack_now = true;
                self.ooo_ack_pending = true;
            }
            if self.ooo.is_empty() {
                self.recent_blocks.clear();
            }
            // The mark is a whole advertised window ahead (Linux's `rcv_nxt + rcv_wnd`), not the
            // current right edge, which data already in flight reaches back to back.
            self.rcv_space.on_data(now, self.rcv_nxt, seq::dist(self.last_ack_sent, self.rcv_adv));
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
            } else if self.timers.delack.is_none() {
                self.timers.delack = Some(now + self.delayed_ack);
            }
        } else {
            self.snapshot_pending_ack(now, ctx.epoch);
            // RFC 2883 §4.2: data already held out of order is reported with a D-SACK.
            if let Some((_, held_end)) = self.ooo.range_containing(s) {
                let end = s.wrapping_add(data.len() as u32);
                self.dsack_out = Some((s, seq::min(end, held_end)));
            }
            // Out of order: keep (bounded in bytes charged; what does not fit is dropped and
            // counted), ACK at once with SACK blocks (RFC 5681 §4.2).
            let (_, refused) = self.ooo.insert(self.rcv_nxt, s, data, true);
            if refused > 0 {
                ctx.stats.ooo_dropped += 1;
            }
            self.recent_blocks.note(s);
            self.ack_now = true;
            self.ooo_ack_pending = true;
        }
    }

    /// In-order data for the application: coalesced in the receive queue, which hands it
    /// out at the end of the batch (`Endpoint::poll_event`), or at once when its chunk is
    /// full; charged in bytes of memory, which closes the window (`rcvqueue`).
    fn deliver(&mut self, ctx: &mut Ctx, d: &[u8]) {
        self.counters.bytes_received += d.len() as u64;
        if d.is_empty() {
            return;
        }
        if let Some(full) = self.rcvq.push(d, ctx.spare_chunks) {
            self.push_event(SocketEvent::Data(full));
        }
    }

    /// Bytes allocated on the send side (send buffer and retransmission records).
    pub(crate) fn tx_memory(&self) -> usize {
        self.sndbuf.allocated() + self.rtx.allocated()
    }

    /// Bytes of memory the receive queue is charged, and holds (diagnostics and tests).
    pub(crate) fn rx_memory(&self) -> (usize, usize) {
        (self.rcvq.charged(), self.rcvq.held())
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
            State::TimeWait => self.timers.close = Some(now + self.msl * 2),
            _ => {}
        }
    }
}
