//! Loss recovery on the sender: SACK scoreboard updates (RFC 2018, D-SACK RFC 2883), loss
//! detection (RACK, RFC 8985 §6; without SACK the RFC 5681/6582 duplicate-ACK rules),
//! the Open / Recovery / Loss state machine, PRR (RFC 6937), undo of spurious
//! retransmissions (Eifel RFC 3522 with timestamps, D-SACK RFC 2883 §5), and tail-loss
//! probes (RFC 8985 §7).
//!
//! Invariants:
//! * `ca == Recovery` or `Loss` iff `recover` is set; both end when SND.UNA reaches it;
//! * in Recovery the window is `recovery_cwnd` (PRR), elsewhere the algorithm's `cwnd`;
//! * a record is retransmitted only while it is marked lost and not already retransmitted
//!   since (RFC 6675 NextSeg rule 1), so one hole is never resent twice per loss verdict;
//! * at most one tail-loss probe is outstanding (`tlp.end_seq`), and only in Open.

use super::super::rack;
use super::super::rtx::{self, Delivered};
use super::*;

impl Tcb {
    /// The congestion window in force.
    pub(super) fn cwnd(&self) -> usize {
        if self.ca == CaState::Recovery && !self.cc.owns_recovery_window() {
            self.recovery_cwnd
        } else {
            self.cc.cwnd()
        }
    }

    /// RFC 6675 `pipe`: bytes believed in the network.
    pub(super) fn pipe(&self) -> usize {
        self.rtx.pipe(seq::dist(self.snd_una, self.snd_max)).saturating_sub(self.reno_sacked)
    }

    /// Apply the SACK blocks of an ACK to the scoreboard. Returns the D-SACK block, if the
    /// first block is one (RFC 2883 §4: below the cumulative ACK, or inside the second).
    pub(super) fn apply_sack(
        &mut self,
        ack: u32,
        blocks: &[Option<(u32, u32)>; 4],
        d: &mut Delivered,
        ctx: &mut Ctx,
    ) -> Option<(u32, u32)> {
        let dsack = match (blocks[0], blocks[1]) {
            (Some((l, r)), _) if seq::lt(l, r) && seq::le(r, ack) => Some((l, r)),
            (Some((l, r)), Some((l2, r2))) if seq::lt(l, r) && seq::le(l2, l) && seq::le(r, r2) => Some((l, r)),
            _ => None,
        };
        if dsack.is_some() {
            ctx.stats.dsacks_received += 1;
        }
        let una = seq::max(ack, self.snd_una);
        for (k, &(l, r)) in blocks.iter().flatten().enumerate() {
            if k == 0 && dsack.is_some() {
                continue;
            }
            // RFC 2018: ignore blocks outside [SND.UNA, SND.MAX].
            if seq::le(una, l) && seq::lt(l, r) && seq::le(r, self.snd_max) {
                self.rtx.sack(l, r, self.smss(), d);
            }
        }
        dsack
    }

    /// Everything an acceptable ACK tells the loss-recovery machinery, after the scoreboard
    /// and SND.UNA were updated.
    pub(super) fn on_delivery(
        &mut self,
        now: Instant,
        ctx: &mut Ctx,
        r: &TcpRepr,
        prior_una: u32,
        d: &Delivered,
        dsack: Option<(u32, u32)>,
    ) {
        let advanced = seq::gt(self.snd_una, prior_una);
        let tsecr = r.options.timestamps.filter(|_| self.ts_ok).map(|t| t.1);
        if let Some(block) = dsack {
            self.rack.on_dsack(self.snd_una, self.snd_max);
            self.undo_on_dsack(ctx, block);
        }
        if advanced && self.ca != CaState::Open {
            self.try_undo_eifel(ctx, tsecr);
        }
        self.tlp_on_ack(now, ctx, advanced || d.bytes > 0, dsack);
        if let Some((xmit, tx, end, rexmit)) = d.newest {
            self.rack.update(now, xmit, tx, end, rexmit);
        }
        if d.reordered && !self.rack.reordering_seen {
            self.rack.reordering_seen = true;
            ctx.stats.reordering_seen += 1;
        }
        self.detect_losses(now, advanced);
        let was_recovering = self.ca != CaState::Open;
        match self.ca {
            CaState::Open if self.rtx.lost_bytes() > 0 => self.enter_recovery(now, ctx),
            CaState::Recovery | CaState::Loss if self.recover.is_none_or(|rc| seq::ge(self.snd_una, rc)) => {
                self.exit_recovery()
            }
            _ => {}
        }
        let acked = seq::dist(prior_una, self.snd_una);
        let rs = self.rate.on_ack(now, d.bytes as u64, d.rate_newest, self.rack.min_rtt);
        self.counters.bytes_acked += acked as u64;
        if let Some(rate) = rs.bytes_per_sec() {
            self.counters.delivery_rate = rate;
        }
        let (delivered, pipe) = (self.rate.delivered, self.pipe());
        self.cc.on_rate_sample(now, &rs, delivered, pipe);
        if self.ca == CaState::Recovery {
            let (pipe, ssthresh, smss) = (self.pipe(), self.cc.ssthresh(), self.smss());
            self.recovery_cwnd = self.prr.on_ack(d.bytes, pipe, ssthresh, smss);
        } else if acked > 0 && self.cwnd_limited && !(was_recovering && self.ca == CaState::Open) {
            // RFC 7661: an application-limited sender does not grow its window.
            self.cc.on_ack(now, acked, self.rtt.srtt);
        }
        if acked > 0 || d.bytes > 0 {
            self.trace(now, ctx, super::super::diag::TraceEvent::Ack, prior_una, self.snd_una);
        }
    }

    /// RACK (RFC 8985 §6.2 step 5) with SACK; RFC 5681 §3.2 / RFC 6582 §3.2 without.
    fn detect_losses(&mut self, now: Instant, advanced: bool) {
        if !self.sack_ok {
            let head_lost = match self.ca {
                CaState::Open => self.dupacks >= DUPACK_THRESHOLD,
                // A partial ACK: the next hole is lost too (RFC 6582 §3.2 step 5).
                CaState::Recovery => advanced && self.recover.is_some_and(|rc| seq::lt(self.snd_una, rc)),
                CaState::Loss => false,
            };
            if head_lost && !self.rtx.is_empty() {
                self.rtx.mark_lost(0);
            }
            return;
        }
        self.timers.rack = None;
        let Some((_, _, rack_end)) = self.rack.xmit else { return };
        let below = self.rtx.fack().map_or(rack_end, |f| seq::max(f, rack_end));
        let dupthresh = self.rtx.sacked_bytes() >= DUPACK_THRESHOLD as usize * self.smss();
        let reo_wnd = self.rack.reo_wnd(self.ca != CaState::Open, dupthresh, self.rtt.srtt);
        let mut wait: Option<Duration> = None;
        let mut i = 0;
        while let Some(rec) = self.rtx.get(i).copied() {
            if seq::ge(rec.start, below) {
                break;
            }
            let candidate = !rec.has(rtx::SACKED) && (!rec.has(rtx::LOST) || rec.has(rtx::RETRANS));
            if candidate {
                match self.rack.remaining(now, rec.xmit, rec.tx, reo_wnd) {
                    Some(None) => self.rtx.mark_lost(i),
                    Some(Some(left)) => wait = Some(wait.map_or(left, |w| w.min(left))),
                    None => {}
                }
            }
            i += 1;
        }
        // RFC 8985 §6.3: re-check when the earliest candidate's window expires.
        self.timers.rack = wait.map(|w| now + w);
    }

    /// The RACK reordering timer fired (RFC 8985 §6.3).
    pub(super) fn on_rack_timer(&mut self, now: Instant, ctx: &mut Ctx) {
        self.detect_losses(now, false);
        if self.ca == CaState::Open && self.rtx.lost_bytes() > 0 {
            self.enter_recovery(now, ctx);
            let (pipe, ssthresh, smss) = (self.pipe(), self.cc.ssthresh(), self.smss());
            self.recovery_cwnd = self.prr.on_ack(0, pipe, ssthresh, smss);
        }
    }

    /// Fast retransmit: enter Recovery (RFC 6675 §5 / RFC 5681 §3.2, PRR RFC 6937 §3).
    fn enter_recovery(&mut self, now: Instant, ctx: &mut Ctx) {
        let flight = seq::dist(self.snd_una, self.snd_max);
        self.start_undo_episode();
        self.cc.on_enter_recovery(now, flight);
        self.prr = Prr::start(flight);
        self.ca = CaState::Recovery;
        self.recover = Some(self.snd_max);
        self.rtt_timing = None;
        self.tlp = Tlp::default();
        self.timers.pto = None;
        ctx.stats.fast_retransmits += 1;
    }

    /// SND.UNA reached `recover`: back to Open with cwnd = ssthresh (RFC 6937 §3).
    /// The undo state stays until the next episode: a D-SACK arriving after the full ACK
    /// can still show the recovery was spurious (Linux keeps `undo_marker` likewise).
    fn exit_recovery(&mut self) {
        if self.ca == CaState::Recovery {
            self.cc.on_exit_recovery();
        }
        self.ca = CaState::Open;
        self.recover = None;
        self.dupacks = 0;
        self.reno_sacked = 0;
        self.rack.on_recovery_exit();
    }

    /// Retransmission timeout (RFC 6298 §5.4-5.6, RFC 5681 §3.1): everything not SACKed
    /// is lost; cwnd restarts from one segment. A second timeout in a row also forgets
    /// the SACK information (RFC 2018 §8: the receiver may have reneged).
    pub(super) fn enter_loss(&mut self, now: Instant) {
        let flight = seq::dist(self.snd_una, self.snd_max);
        if !self.rto_repeated {
            self.start_undo_episode();
        }
        self.cc.on_rto(now, flight, !self.rto_repeated);
        self.rto_repeated = true;
        self.rtx.mark_all_lost(self.retries > 1);
        self.ca = CaState::Loss;
        self.recover = Some(self.snd_max);
        self.dupacks = 0;
        self.reno_sacked = 0;
        self.tlp = Tlp::default();
        self.timers.rack = None;
        self.timers.pto = None;
    }

    /// Remember the window to restore if this episode proves spurious. A timeout inside
    /// a recovery keeps the recovery's (older, larger) prior window.
    fn start_undo_episode(&mut self) {
        if self.ca != CaState::Open && self.undo.is_some() {
            return;
        }
        self.undo = Some(Undo {
            prior_cwnd: self.cwnd(),
            prior_ssthresh: self.cc.ssthresh(),
            rexmits: Vec::new(),
            overflow: false,
            first_rexmit: None,
        });
    }

    /// Put the window back and forget the loss verdicts: the retransmissions were not
    /// needed (Linux `tcp_undo_cwnd_reduction`).
    fn undo_recovery(&mut self, ctx: &mut Ctx) {
        let Some(u) = self.undo.take() else { return };
        self.cc.undo(u.prior_cwnd, u.prior_ssthresh);
        self.rtx.clear_lost();
        self.ca = CaState::Open;
        self.recover = None;
        self.dupacks = 0;
        self.reno_sacked = 0;
        self.rtt.undo_backoff();
        ctx.stats.spurious_undone += 1;
    }

    /// RFC 3522 (Eifel): an ACK beyond the first retransmission echoing a timestamp older
    /// than it was caused by the original transmission.
    fn try_undo_eifel(&mut self, ctx: &mut Ctx, tsecr: Option<u32>) {
        let (Some(Some((rx_seq, rx_ts))), Some(ecr)) = (self.undo.as_ref().map(|u| u.first_rexmit), tsecr) else {
            return;
        };
        if ecr != 0 && seq::gt(self.snd_una, rx_seq) && seq::lt(ecr, rx_ts) {
            self.undo_recovery(ctx);
        }
    }

    /// RFC 2883 §5 / Linux `tcp_try_undo_dsack`: every retransmission of the episode came
    /// back as a duplicate: none was needed. A D-SACK counts only if it falls inside a
    /// retransmission of this episode not yet matched, so a network duplicate of an
    /// original segment, or the same D-SACK twice, cannot undo a real loss.
    fn undo_on_dsack(&mut self, ctx: &mut Ctx, (l, r): (u32, u32)) {
        let Some(u) = self.undo.as_mut() else { return };
        if let Some(k) = u.rexmits.iter().position(|&(a, b)| seq::le(a, l) && seq::le(r, b)) {
            u.rexmits.swap_remove(k);
        } else {
            // One block may cover several adjacent retransmissions (a receiver extends its
            // D-SACK, Linux `tcp_dsack_extend`): it counts only if they tile it exactly.
            let mut inside: Vec<(u32, u32)> =
                u.rexmits.iter().copied().filter(|&(a, b)| seq::le(l, a) && seq::le(b, r)).collect();
            inside.sort_by_key(|&(a, _)| a.wrapping_sub(l));
            let mut at = l;
            for &(a, b) in &inside {
                if a != at {
                    return;
                }
                at = b;
            }
            if at != r || inside.is_empty() {
                return;
            }
            u.rexmits.retain(|x| !inside.contains(x));
        }
        if u.rexmits.is_empty() && !u.overflow && u.first_rexmit.is_some() {
            self.undo_recovery(ctx);
        }
    }

    /// Bookkeeping for one retransmission of `[s, e)` sent now with TSval `ts`.
    pub(super) fn note_retransmission(&mut self, s: u32, e: u32, ts: u32) {
        if let Some(u) = self.undo.as_mut() {
            if u.rexmits.len() < UNDO_REXMITS {
                u.rexmits.push((s, e));
            } else {
                u.overflow = true;
            }
            if u.first_rexmit.is_none() {
                u.first_rexmit = Some((s, ts));
            }
        }
    }

    /// RFC 8985 §7.4: what the ACK says about an outstanding probe. A retransmitted probe
    /// that was needed (no D-SACK for it, and data beyond it acknowledged) repaired a
    /// loss: reduce the window as a recovery would have.
    fn tlp_on_ack(&mut self, now: Instant, ctx: &mut Ctx, progress: bool, dsack: Option<(u32, u32)>) {
        let Some(end) = self.tlp.end_seq else { return };
        let ack = self.snd_una;
        if seq::lt(ack, end) {
            return;
        }
        let dsack_probe = dsack.is_some_and(|(_, r)| r == end);
        if !self.tlp.is_retrans || dsack_probe || !progress {
            self.tlp = Tlp::default();
        } else if seq::gt(ack, end) {
            self.tlp = Tlp::default();
            // The ACK that proves the loss leaves little in flight: reduce from the window
            // (Linux `tcp_init_cwnd_reduction` halves cwnd), not from the flight.
            let cwnd = self.cwnd();
            self.cc.on_enter_recovery(now, cwnd);
            self.cc.on_exit_recovery();
            ctx.stats.tlp_recoveries += 1;
        }
    }

    /// RFC 8985 §7.2: arm the probe timer in Open with SACK when data is in flight and
    /// nothing is SACKed; a probe due after the retransmission timer is sent at its time
    /// instead (the probe, not a timeout, then repairs a single lost segment).
    pub(super) fn arm_pto(&mut self, now: Instant) {
        let eligible = self.sack_ok
            && self.ca == CaState::Open
            && self.tlp.end_seq.is_none()
            && self.snd_una != self.snd_max
            && self.rtx.sacked_bytes() == 0
            && self.state.can_send_data();
        if !eligible {
            self.timers.pto = None;
            return;
        }
        if self.timers.pto.is_some() {
            return;
        }
        let segs = seq::dist(self.snd_una, self.snd_max).div_ceil(self.smss().max(1));
        let at = now + rack::pto(self.rtt.srtt, segs);
        self.timers.pto = Some(self.timers.rto.map_or(at, |rto| at.min(rto)));
    }
}
