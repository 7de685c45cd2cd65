//! The stack's counters as one snapshot, named as Linux's `nstat` names them where Linux has
//! the counter (`IpInReceives`, `UdpNoPorts`, `TcpRetransSegs`, `TcpExtTCPSackRecovery`, …),
//! and `Netstack…` / `Link…` where it has none (drops by reason, queue gauges).
//!
//! [`StackHandle::stats`] reads the live counters (relaxed atomics, and the tcp engine's
//! copy published at each flush) without stopping anything; a snapshot is consistent per
//! counter, not across counters. [`Counters`] prints like `nstat -az` (name, value).

use crate::actor::StackHandle;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;

/// One counter: its name and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub name: &'static str,
    pub value: u64,
}

/// A snapshot of every counter of a stack, in a fixed order (IP, ICMP, UDP, TCP, the
/// stack's own, then the link layer's on TAP).
#[derive(Debug, Clone, Default)]
pub struct Counters(pub Vec<Counter>);

impl Counters {
    /// The value of counter `name`, if the stack has it.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|c| c.name == name).map(|c| c.value)
    }

    /// The counters that are not zero (what `nstat` shows without `-z`).
    pub fn nonzero(&self) -> impl Iterator<Item = &Counter> {
        self.0.iter().filter(|c| c.value != 0)
    }
}

impl fmt::Display for Counters {
    /// `nstat -az`'s layout: the name padded to 32 columns, the value right-aligned.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.0 {
            writeln!(f, "{:<32}{:>16}", c.name, c.value)?;
        }
        Ok(())
    }
}

impl StackHandle {
    /// Every counter of the stack now (see [`crate::stats`] for the names).
    pub fn stats(&self) -> Counters {
        let s = &self.stats;
        let ip = s.ip.load();
        let g = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
        let tcp = s.tcp.load();
        let udp_errors = ip.rx_udp_bad + ip.rx_udp_queue_full;
        let udp_in = ip.rx_udp.saturating_sub(udp_errors + ip.rx_udp_no_port);
        let mut v = vec![
            // IP-MIB (RFC 4293) as Linux counts it.
            ("IpInReceives", ip.rx_packets),
            ("IpInHdrErrors", ip.rx_bad_header + ip.rx_bad_checksum + ip.rx_bad_ext_header),
            ("IpInAddrErrors", ip.rx_not_ours + ip.rx_bad_source),
            ("IpInUnknownProtos", ip.rx_unknown_protocol),
            ("IpOutRequests", ip.tx_packets + tcp.segments_out),
            ("IpReasmOKs", ip.rx_reassembled),
            ("IpReasmFails", ip.rx_frag_dropped + ip.rx_frag_too_far),
            ("IpFragCreates", ip.tx_fragments),
            // ICMP (both families).
            ("IcmpInErrors", ip.rx_icmp_bad),
            ("IcmpInDestUnreachs", ip.rx_icmp_errors),
            ("IcmpOutEchoReps", ip.tx_echo_replies),
            ("IcmpOutErrors", ip.tx_icmp_errors),
            ("IcmpOutRateLimitHost", ip.icmp_rate_limited + ip.echo_rate_limited),
            // UDP-MIB (RFC 4113).
            ("UdpInDatagrams", udp_in),
            ("UdpNoPorts", ip.rx_udp_no_port),
            ("UdpInErrors", udp_errors),
            ("UdpRcvbufErrors", ip.rx_udp_queue_full),
            // TCP-MIB (RFC 4022) and Linux's TcpExt.
            ("TcpActiveOpens", tcp.conns_opened),
            ("TcpPassiveOpens", tcp.conns_accepted),
            ("TcpCurrEstab", g(&s.tcp_conns)),
            ("TcpInSegs", tcp.segments_in),
            ("TcpOutSegs", tcp.segments_out),
            ("TcpRetransSegs", tcp.retransmits),
            ("TcpInErrs", tcp.malformed),
            ("TcpInRsts", tcp.rst_in),
            ("TcpOutRsts", tcp.rst_out),
            ("TcpExtTCPTimeouts", tcp.timeouts),
            ("TcpExtTCPSackRecovery", tcp.fast_retransmits),
            ("TcpExtTCPLossProbes", tcp.tlp_probes),
            ("TcpExtTCPLossProbeRecovery", tcp.tlp_recoveries),
            ("TcpExtTCPDSACKRecv", tcp.dsacks_received),
            ("TcpExtTCPSACKReorder", tcp.reordering_seen),
            ("TcpExtTCPFullUndo", tcp.spurious_undone),
            ("TcpExtTCPChallengeACK", tcp.challenge_acks),
            ("TcpExtPAWSEstabRejected", tcp.paws_rejected),
            ("TcpExtListenDrops", tcp.syn_dropped),
            ("TcpExtSyncookiesSent", tcp.syncookies_sent),
            ("TcpExtSyncookiesRecv", tcp.syncookies_recv_ok),
            ("TcpExtSyncookiesFailed", tcp.syncookies_failed),
            ("TcpExtTCPOFODrop", tcp.ooo_dropped),
            ("TcpExtTCPAbortOnMemory", tcp.orphans_reset),
            ("TcpExtTCPTimeWaitOverflow", tcp.time_wait_overflow),
            // Ours: drops by reason that Linux does not name, and gauges.
            ("NetstackTcpInDropped", tcp.dropped),
            ("NetstackTcpHalfOpen", tcp.half_open),
            ("NetstackIpInboxDrops", s.ip_inbox.dropped()),
            ("NetstackTcpInboxDrops", s.tcp_inbox.dropped()),
            ("NetstackDevTxDrops", g(&s.dev_tx_dropped)),
            ("NetstackIpFragPending", ip.rx_frag_pending),
            ("NetstackIpReasmHeldBytes", ip.reassembly_held_bytes),
            ("NetstackIcmpIgnored", ip.rx_icmp_ignored),
            ("NetstackRawInDelivers", ip.rx_raw),
            ("NetstackRawQueueFull", ip.rx_raw_queue_full),
            ("NetstackDnsQueries", g(&s.dns_queries)),
        ];
        let mut out: Vec<Counter> = v.drain(..).map(|(name, value)| Counter { name, value }).collect();
        if let Some(link) = &s.link {
            out.extend(link.snapshot().into_iter().map(|(name, value)| Counter { name: link_name(name), value }));
        }
        Counters(out)
    }
}

/// `Link` + the link core's counter name in CamelCase (`rx_not_for_us` → `LinkRxNotForUs`),
/// leaked once per distinct name (a fixed, small set).
fn link_name(snake: &'static str) -> &'static str {
    use parking_lot::Mutex;
    use std::collections::HashMap;
    static NAMES: Mutex<Option<HashMap<&'static str, &'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock();
    names.get_or_insert_with(HashMap::new).entry(snake).or_insert_with(|| {
        let mut s = String::from("Link");
        for part in snake.split('_') {
            let mut cs = part.chars();
            if let Some(c) = cs.next() {
                s.extend(c.to_uppercase());
                s.push_str(cs.as_str());
            }
        }
        Box::leak(s.into_boxed_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_are_camel_case_and_stable() {
        assert_eq!(link_name("rx_not_for_us"), "LinkRxNotForUs");
        assert!(std::ptr::eq(link_name("tx_arp_requests"), link_name("tx_arp_requests")));
    }

    #[test]
    fn display_is_nstat_like_and_get_finds_by_name() {
        let c = Counters(vec![Counter { name: "IpInReceives", value: 7 }, Counter { name: "UdpNoPorts", value: 0 }]);
        assert_eq!(c.get("IpInReceives"), Some(7));
        assert_eq!(c.get("Nope"), None);
        assert_eq!(c.nonzero().count(), 1);
        assert!(c.to_string().starts_with("IpInReceives                                   7\n"));
    }
}
