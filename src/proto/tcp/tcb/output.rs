//! Output: the receive window we advertise, options, and building the segments that
//! `poll_transmit` emits (SYN, retransmissions, zero-window probes, new data, ACKs).

use super::super::diag::TraceEvent;
use super::super::rate::SendStamp;
use super::*;

impl Tcb {
    // ------------------------------------------------------------------------------------
    // Output
    // ------------------------------------------------------------------------------------

    /// True when poll_transmit has something it must send regardless of windows.
    pub(crate) fn wants_transmit(&self) -> bool {
        self.rst_out.is_some()
            || self.syn_pending
            || self.ack_now
            || self.tlp_fire
            || !self.acks_out.is_empty()
            || self.force_send
            || self.send_keepalive
            || self.state.can_send_data()
    }

    /// The window field for a non-SYN segment, advancing RCV.ADV (receiver SWS, M-39).
    fn window_field(&mut self) -> u16 {
        let s = self.rcv_wscale;
        let free = self.recv_buf.saturating_sub(self.rcvq.charged());
        let max_wnd = free.min(0xffff << s);
        if seq::lt(self.rcv_adv, self.rcv_nxt) {
            self.rcv_adv = self.rcv_nxt;
        }
        let edge = self.rcv_nxt.wrapping_add(max_wnd as u32);
        let threshold = (self.recv_buf / 2).min(self.our_mss).max(1);
        // An orphan reads nothing more (data is answered with RST): no reader to wait for.
        let target = if seq::dist(self.rcv_adv, edge) >= threshold || self.orphaned { edge } else { self.rcv_adv };
        let wnd = seq::dist(self.rcv_nxt, target);
        let mut field = (wnd >> s).min(0xffff);
        // Rounding down must not shrink the window the peer sees (RFC 9293 §3.8.6.2.2): round
        // up instead, past the free space by less than 2^shift bytes (Linux
        // `tcp_select_window`: "never shrink the offered window", `ALIGN(cur_win, 1 << wscale)`).
        // Each ACK that does not open the window rounds up again from the new RCV.NXT, so the
        // right edge creeps along with it: only while it stays within an eighth of the buffer
        // (and 2^shift) of the free space. Past that the field is rounded down, a window
        // retracted by less than 2^shift (RFC 7323 §2.4) that RCV.ADV still honours, or a
        // peer whose small segments are ACKed one by one fills a non-reader without bound.
        // Free space below 2^shift is rounded up likewise, or it scales to a zero window that
        // no read reopens (Linux `__tcp_select_window`: "prevent zero window announcement if
        // 1<<rcv_wscale > mss").
        let limit = (self.recv_buf + self.recv_buf / 8).saturating_add(1 << s);
        let within = ((field + 1) << s).saturating_add(self.rcvq.charged()) <= limit;
        let scaled_away = field == 0 && wnd > 0;
        if ((field << s) < self.rcv_wnd() || scaled_away) && field < 0xffff && within {
            field += 1;
        }
        let adv = self.rcv_nxt.wrapping_add((field << s) as u32);
        self.rcv_adv = seq::max(self.rcv_adv, adv);
        self.wnd_edge_sent = Some(adv);
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
        if !syn && self.sack_ok {
            let max = if self.ts_ok { 3 } else { 4 };
            let dsack = self.dsack_out.is_some() as usize;
            if !self.ooo.is_empty() {
                o.sack_blocks =
                    self.recent_blocks.blocks(max - dsack, |x| self.ooo.range_containing(x), self.ooo.ranges());
            }
            if let Some(d) = self.dsack_out {
                // RFC 2883 §4: the D-SACK block comes first.
                o.sack_blocks.rotate_right(1);
                o.sack_blocks[0] = Some(d);
            }
        }
        o
    }

    /// RFC 5681 §4.2: every out-of-order or hole-filling segment is answered by its own
    /// ACK, carrying the SACK blocks as they were then, even when a batch of segments is
    /// processed before one `poll_transmit` (M-58 coalesces in-order data only). If such an
    /// ACK is still pending when the next one is due, it is built now and queued.
    ///
    /// With SACK, an ACK whose first block is the block the previous queued ACK led with,
    /// grown, replaces that ACK: it reports everything the other did (RFC 2018 §4 asks that
    /// each block be reported, not each segment), so the queue holds one ACK per block that
    /// was newest in the batch and every block reaches the sender before the queue's bound.
    /// (With a plain per-segment bound, a batch with a long run after its first hole filled
    /// the queue, later holes' blocks were never reported, and the sender's RACK took their
    /// segments for lost: 2 % loss on a fast link cost 7x the necessary retransmissions.)
    /// Without SACK each ACK is a duplicate ACK the sender counts (RFC 5681 §3.2): no merging.
    pub(super) fn snapshot_pending_ack(&mut self, now: Instant, epoch: Instant) {
        if !(self.ack_now && self.ooo_ack_pending) {
            return;
        }
        let dsack = self.dsack_out.is_some();
        let opts = self.options(now, epoch, false);
        let lead = opts.sack_blocks[0].filter(|_| self.sack_ok && !dsack).map(|b| b.0);
        let merge = lead.is_some() && lead == self.acks_out_lead && !self.acks_out.is_empty();
        if !merge && self.acks_out.len() >= MAX_QUEUED_ACKS {
            return;
        }
        self.dsack_out = None;
        let flags = TcpFlags { ack: true, ..Default::default() };
        let repr = self.make_repr(self.snd_max, flags, opts);
        if merge {
            *self.acks_out.last_mut().expect("merge needs a queued ACK") = repr;
        } else {
            self.acks_out.push(repr);
        }
        self.acks_out_lead = lead;
    }

    /// RFC 2883 §4: duplicate data `[l, r)` is reported in a D-SACK block. Each duplicate
    /// gets its own ACK (Linux `tcp_send_dupack`), so a sender that resent several segments
    /// sees each one come back; a pending D-SACK is therefore sent first.
    pub(super) fn report_duplicate(&mut self, now: Instant, epoch: Instant, l: u32, r: u32) {
        self.snapshot_pending_ack(now, epoch);
        self.dsack_out = Some((l, r));
        self.ack_now = true;
        self.ooo_ack_pending = true;
    }

    fn make_repr(&mut self, seq_no: u32, flags: TcpFlags, opts: TcpOptions) -> TcpRepr {
        let window = if flags.syn { self.syn_window() as u16 } else { self.window_field() };
        if flags.ack {
            self.last_ack_sent = self.rcv_nxt;
            self.ack_now = false;
            self.ooo_ack_pending = false;
            self.timers.delack = None;
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

    /// Emit one data/FIN segment `[s, s+len)` (+FIN) from the send buffer. Returns the
    /// delivery-rate stamp it was sent with.
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
    ) -> SendStamp {
        let unsent_after = seq::dist(s.wrapping_add(len as u32), self.data_end());
        let flags = TcpFlags { ack: true, psh: len > 0 && unsent_after == 0, fin, ..Default::default() };
        let repr = self.make_repr(s, flags, opts);
        let off = seq::dist(self.buf_seq(), s);
        emit(&repr, self.sndbuf.slice(off, len));
        ctx.stats.segments_out += 1;
        let end = s.wrapping_add(len as u32).wrapping_add(fin as u32);
        let stamp = self.rate.on_send(now, self.rtx.is_empty());
        if self.ca == CaState::Recovery {
            self.prr.on_sent(seq::dist(s, end));
        }
        let event = if seq::lt(s, self.snd_max) { TraceEvent::Rexmit } else { TraceEvent::Send };
        self.trace(now, ctx, event, s, end);
        if seq::lt(s, self.snd_max) {
            ctx.stats.retransmits += 1;
            self.counters.retransmits += 1;
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
        if len > 0 {
            self.last_data_sent = Some(now);
        }
        if seq::gt(end, self.snd_max) {
            self.rtx.push(seq::max(s, self.snd_max), end, now, stamp);
            self.snd_max = end;
            // RFC 8985 §7.2: new data re-arms the probe timer.
            self.timers.pto = None;
        }
        if self.timers.rto.is_none() {
            self.timers.rto = Some(now + self.rtt.rto());
        }
        stamp
    }

    pub(crate) fn poll_transmit(&mut self, now: Instant, ctx: &mut Ctx, emit: &mut Emit) {
        if let Some(rst) = self.rst_out.take() {
            emit(&rst, &[]);
            ctx.stats.segments_out += 1;
            ctx.stats.rst_out += 1;
        }
        self.acks_out_lead = None;
        for repr in self.acks_out.drain(..) {
            emit(&repr, &[]);
            ctx.stats.segments_out += 1;
        }
        match self.state {
            State::Closed | State::Listen => return,
            State::SynSent | State::SynReceived => {
                if self.syn_pending || (self.state == State::SynReceived && self.ack_now) {
                    self.send_syn(now, ctx, emit);
                }
                self.update_timers(now);
                return;
            }
            _ => {}
        }
        let opts = self.options(now, ctx.epoch, false);
        self.dsack_out = None;
        self.timers.pace = None; // set again if pacing stops a send below
        self.pace_rate = self
            .cc
            .pacing_rate()
            .filter(|&r| r > 0 && self.pacer.enabled())
            .map(|r| super::super::pacing::floored(r as f64, self.smss(), self.rtt.srtt));
        let max_payload = self.peer_mss.saturating_sub(opts.emitted_len()).max(1);
        let mut sent = false;

        if self.state.can_send_data() || self.state == State::FinWait2 {
            // 1. Retransmit what is marked lost, within cwnd (RFC 6675 §5 NextSeg rule 1).
            sent |= self.send_retransmissions(now, ctx, opts, max_payload, emit);
            // 2. A tail-loss probe (RFC 8985 §7.3).
            if self.tlp_fire {
                self.tlp_fire = false;
                sent |= self.send_probe(now, ctx, opts, max_payload, emit);
            }
            // 3. Zero-window probe (M-35/M-36).
            if self.force_send && self.snd_wnd == 0 && self.snd_max == self.snd_una {
                sent |= self.send_zero_window_probe(now, ctx, opts, emit);
            }
            // 4. New data from SND.MAX.
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
        // The persist/override timer grants one forced segment only.
        self.force_send = false;
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

    /// Our SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), first or again.
    fn send_syn(&mut self, now: Instant, ctx: &mut Ctx, emit: &mut Emit) {
        self.syn_pending = false;
        let ack = self.state == State::SynReceived;
        let flags = TcpFlags { syn: true, ack, ..Default::default() };
        let opts = self.options(now, ctx.epoch, true);
        let repr = self.make_repr(self.iss, flags, opts);
        emit(&repr, &[]);
        ctx.stats.segments_out += 1;
        if self.snd_max == self.iss {
            self.snd_max = self.iss.wrapping_add(1);
            // Timed even with timestamps: the handshake's RTT is taken from this timing
            // when the SYN went once, as Linux's (`on_syn_sent`, `process_ack`).
            self.rtt_timing = Some((self.snd_max, now));
        } else {
            // RFC 6298 §3 (Karn): an ACK of a resent SYN or SYN-ACK is no sample (a resend
            // for a repeated SYN, not only after our timeout; Linux `req->num_retrans`).
            self.rtt_timing = None;
            ctx.stats.retransmits += 1;
            self.counters.retransmits += 1;
        }
        if self.timers.rto.is_none() {
            self.timers.rto = Some(now + self.rtt.rto());
        }
    }

    /// One byte (or the FIN) beyond a zero window (RFC 9293 §3.8.6.1). SND.MAX is not
    /// advanced past the window (pure ACKs carry SEQ=SND.MAX) and the probe is not kept in
    /// the retransmission queue; `probe_end` lets the peer acknowledge it.
    fn send_zero_window_probe(&mut self, now: Instant, ctx: &mut Ctx, opts: TcpOptions, emit: &mut Emit) -> bool {
        self.force_send = false;
        let unsent = seq::dist(self.snd_una, self.data_end());
        let s = self.snd_una;
        let old_max = self.snd_max;
        let mut sent = false;
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
            self.rtx.truncate(old_max);
        }
        // The probe is not "in flight" for the RTO; the persist timer covers it.
        self.timers.rto = None;
        self.update_timers(now);
        sent
    }

    /// Retransmit records marked lost, oldest first, while `pipe < cwnd`.
    fn send_retransmissions(
        &mut self,
        now: Instant,
        ctx: &mut Ctx,
        opts: TcpOptions,
        max_payload: usize,
        emit: &mut Emit,
    ) -> bool {
        let mut sent = false;
        while self.pipe() < self.cwnd() {
            let Some((i, s, e)) = self.rtx.next_lost(max_payload) else { break };
            if !self.pace(now) {
                break;
            }
            self.retransmit_record(now, ctx, opts, i, s, e, emit);
            self.pacer.spend(seq::dist(s, e));
            sent = true;
        }
        sent
    }

    /// Whether pacing lets a segment leave now (always, without a pacing rate); if not,
    /// `timers.pace` is when it will (`pacing`).
    fn pace(&mut self, now: Instant) -> bool {
        let Some(rate) = self.pace_rate else { return true };
        if self.pacer.ready(now, rate, self.smss()) {
            return true;
        }
        self.timers.pace = Some(now + self.pacer.wait(rate));
        false
    }

    /// Send record `i` = `[s, e)` again (its last byte may be the FIN).
    #[allow(clippy::too_many_arguments)]
    fn retransmit_record(
        &mut self,
        now: Instant,
        ctx: &mut Ctx,
        opts: TcpOptions,
        i: usize,
        s: u32,
        e: u32,
        emit: &mut Emit,
    ) {
        let fin = self.fin_seq.is_some_and(|f| seq::le(s, f) && seq::lt(f, e));
        let len = seq::dist(s, e) - fin as usize;
        let stamp = self.send_segment(now, ctx, opts, s, len, fin, emit);
        self.rtx.retransmitted(i, now, stamp);
        let ts = self.ts_now(now, ctx.epoch);
        self.note_retransmission(s, e, ts);
    }

    /// RFC 8985 §7.3: one new segment if the peer's window allows, else the last segment
    /// sent again. The probe ignores cwnd; the retransmission timer follows it.
    fn send_probe(
        &mut self,
        now: Instant,
        ctx: &mut Ctx,
        opts: TcpOptions,
        max_payload: usize,
        emit: &mut Emit,
    ) -> bool {
        let unsent = seq::dist(self.snd_max, self.data_end());
        let rwnd_room = self.snd_wnd.saturating_sub(seq::dist(self.snd_una, self.snd_max));
        let len = unsent.min(max_payload).min(rwnd_room);
        if len > 0 {
            let s = self.snd_max;
            self.send_segment(now, ctx, opts, s, len, false, emit);
            self.tlp.is_retrans = false;
        } else if let Some(i) = self.rtx.last_unsacked() {
            let Some(&rec) = self.rtx.get(i) else { return false };
            // A probe copies the last segment; it is not a loss verdict (no undo count).
            let fin = self.fin_seq.is_some_and(|f| seq::le(rec.start, f) && seq::lt(f, rec.end));
            let len = (rec.len() - fin as usize).min(max_payload);
            let fin = fin && len == rec.len() - 1;
            let stamp = self.send_segment(now, ctx, opts, rec.start, len, fin, emit);
            if len + fin as usize == rec.len() {
                self.rtx.retransmitted(i, now, stamp);
            }
            self.tlp.is_retrans = true;
        } else {
            return false;
        }
        ctx.stats.tlp_probes += 1;
        self.tlp.end_seq = Some(self.snd_max);
        // RFC 8985 §7.3: the retransmission timer restarts after a probe.
        self.timers.rto = Some(now + self.rtt.rto());
        true
    }

    fn send_data(
        &mut self,
        now: Instant,
        ctx: &mut Ctx,
        opts: TcpOptions,
        max_payload: usize,
        emit: &mut Emit,
    ) -> bool {
        let mut sent = false;
        let smss = self.smss().min(max_payload).max(1);
        // RFC 5681 §4.1: after an idle period longer than the RTO, restart from IW.
        if self.snd_una == self.snd_max
            && self.last_data_sent.is_some_and(|t| now.saturating_duration_since(t) > self.rtt.rto())
        {
            self.cc.on_idle_restart();
            self.last_data_sent = None;
        }
        // A bound on iterations: each one sends a segment.
        let mut stopped_by_cwnd = false;
        for _ in 0..100_000 {
            let data_end = self.data_end();
            let in_flight = seq::dist(self.snd_una, self.snd_max);
            // The peer's window bounds sequence space; cwnd bounds `pipe` (RFC 6675 §5), so
            // SACKed or duplicate-ACKed segments make room for new ones (limited transmit,
            // RFC 3042).
            let rwnd_room = self.snd_wnd.saturating_sub(in_flight);
            let cwnd_room = self.cwnd().saturating_sub(self.pipe());
            let usable = rwnd_room.min(cwnd_room);
            let unsent = seq::dist(self.snd_max, data_end);
            let fin_pending = self.fin_queued && self.fin_seq.is_none_or(|f| seq::le(self.snd_max, f));
            if unsent == 0 && !fin_pending {
                // Out of data with room in the window: rate samples are app-limited.
                let pipe = self.pipe();
                if pipe < self.cwnd() {
                    self.rate.mark_app_limited(pipe);
                }
                break;
            }
            let len = unsent.min(max_payload).min(usable);
            let fin = fin_pending && len == unsent && (len > 0 || usable > 0);
            if len == 0 && !fin {
                stopped_by_cwnd = cwnd_room < rwnd_room.min(unsent.max(1));
                break;
            }
            if len > 0 && len < smss && !self.force_send {
                if len < unsent {
                    // Sender SWS (M-38): a partial segment only if it is >= half the
                    // largest window the peer ever offered (else wait for an ACK or the
                    // override timer).
                    if len < self.max_snd_wnd / 2 {
                        stopped_by_cwnd = cwnd_room < rwnd_room;
                        break;
                    }
                } else if !self.nodelay && in_flight > 0 && !fin {
                    // Nagle (RFC 896, M-17): one small segment outstanding at a time.
                    break;
                }
            }
            if !self.force_send && !self.pace(now) {
                break;
            }
            self.force_send = false;
            let s = self.snd_max;
            self.send_segment(now, ctx, opts, s, len, fin, emit);
            self.pacer.spend(len);
            sent = true;
        }
        // RFC 7661 / Linux `tcp_is_cwnd_limited`: cwnd may grow only when it was what held
        // the sender back (in slow start: when at least half of it was in use).
        let in_slow_start = self.cc.cwnd() < self.cc.ssthresh();
        self.cwnd_limited = stopped_by_cwnd || (in_slow_start && 2 * self.pipe() >= self.cc.cwnd());
        sent
    }
}
