//! Proportional Rate Reduction (RFC 6937): how much may be sent on each ACK during fast
//! recovery, so the window comes down to `ssthresh` smoothly instead of in a burst or a
//! stall.
//!
//! Invariant: `prr_out <= prr_delivered * ssthresh / recover_fs + MSS` while `pipe >
//! ssthresh` (the proportional part); below ssthresh the slow-start reduction bound
//! (PRR-SSRB) lets the sender catch up to ssthresh at most one MSS ahead of deliveries.

#[derive(Clone, Debug, Default)]
pub struct Prr {
    /// RecoverFS: FlightSize when recovery started.
    recover_fs: usize,
    /// Bytes delivered to the receiver since recovery started.
    prr_delivered: usize,
    /// Bytes sent since recovery started.
    prr_out: usize,
}

impl Prr {
    /// RFC 6937 §3 "on entering recovery".
    pub fn start(flight_size: usize) -> Self {
        Prr { recover_fs: flight_size.max(1), prr_delivered: 0, prr_out: 0 }
    }

    /// Bytes sent during recovery.
    pub fn on_sent(&mut self, bytes: usize) {
        self.prr_out += bytes;
    }

    /// RFC 6937 §3 "on every ACK during recovery": the congestion window to use
    /// (`pipe + sndcnt`), given the bytes this ACK delivered.
    pub fn on_ack(&mut self, delivered: usize, pipe: usize, ssthresh: usize, smss: usize) -> usize {
        self.prr_delivered += delivered;
        let sndcnt = if pipe > ssthresh {
            // Proportional rate reduction: CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
            let target = (self.prr_delivered as u128 * ssthresh as u128).div_ceil(self.recover_fs as u128);
            (target as usize).saturating_sub(self.prr_out)
        } else {
            // PRR-SSRB: limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS.
            let limit = self.prr_delivered.saturating_sub(self.prr_out).max(delivered) + smss;
            ssthresh.saturating_sub(pipe).min(limit)
        };
        // Linux `tcp_cwnd_reduction`: the first ACK of a recovery always lets the fast
        // retransmission out, whatever ACKs were processed in the same batch.
        let sndcnt = if self.prr_out == 0 { sndcnt.max(smss) } else { sndcnt };
        pipe + sndcnt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_then_slow_start_bound() {
        const M: usize = 1000;
        // 20 segments in flight, ssthresh 10: one segment out per two delivered.
        let mut p = Prr::start(20 * M);
        let mut sent = 0;
        let mut pipe = 19 * M; // one lost
        for _ in 0..10 {
            pipe -= M; // a SACK delivers one segment
            let cwnd = p.on_ack(M, pipe, 10 * M, M);
            let n = cwnd.saturating_sub(pipe);
            p.on_sent(n);
            sent += n;
            pipe += n;
        }
        assert_eq!(sent, 5 * M, "half of what was delivered (RFC 6937 §3, PRR)");
        // Far below ssthresh (heavy loss): catch up by at most delivered + 1 MSS per ACK.
        let mut p = Prr::start(20 * M);
        let cwnd = p.on_ack(M, 2 * M, 10 * M, M);
        assert_eq!(cwnd, 2 * M + 2 * M, "SSRB: DeliveredData + MSS");
    }
}
