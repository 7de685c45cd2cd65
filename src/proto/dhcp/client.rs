//! The DHCPv4 client state machine (RFC 2131 §4.4, Figure 5), fed `(now, input)`.
//!
//! INIT → SELECTING (DISCOVER, broadcast) → REQUESTING (REQUEST with the offer's server id
//! and address, broadcast) → BOUND → RENEWING at T1 (REQUEST unicast to the server) →
//! REBINDING at T2 (REQUEST broadcast) → lease expiry → INIT; a NAK → INIT (NAKs in a row:
//! after a back-off); [`Client::release`] sends a RELEASE and stops. Invariants:
//! * every message from the network is either taken or counted in [`DhcpStats`] under the
//!   reason it was not (malformed, not ours, not expected in this state, an unusable ACK);
//! * a message is taken only with the current transaction's `xid` and our `chaddr`, and an
//!   ACK or NAK in REQUESTING or RENEWING only from the server asked;
//! * [`Event::Configured`] is emitted on every ACK (a renewal refreshes the lease), and
//!   [`Event::Deconfigured`] exactly when a lease we announced ends (expiry, NAK, release);
//! * the transmit and event queues are bounded ([`MAX_QUEUE`]); the core holds no clock and
//!   no randomness beyond a generator seeded by the caller.

use super::wire::{self, DhcpRepr, MessageType};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// RFC 2131 §4.1: the first retransmission after 4 s, doubling up to 64 s, each randomised
/// by a uniform ±1 s.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(4);
pub const BACKOFF_MAX: Duration = Duration::from_secs(64);
pub const BACKOFF_JITTER_MS: u64 = 1000;
/// RFC 2131 §4.4.5: in RENEWING and REBINDING, retransmit after half the time left (until
/// T2, or until expiry), but not sooner than 60 s.
pub const RENEW_MIN_RETRANSMIT: Duration = Duration::from_secs(60);
/// REQUESTs sent in REQUESTING before going back to INIT (RFC 2131 §3.1 step 5 leaves the
/// count to the retransmission algorithm; this is 4 + 8 + 16 + 32 s ≈ one minute).
pub const REQUEST_TRIES: u32 = 5;
/// Bound on queued messages to send and events to read.
pub const MAX_QUEUE: usize = 8;
/// RFC 2132 §9.8: what we ask for.
pub const PARAMETER_LIST: [u8; 7] = [
    wire::opt::SUBNET_MASK,
    wire::opt::ROUTER,
    wire::opt::DNS_SERVER,
    wire::opt::LEASE_TIME,
    wire::opt::SERVER_ID,
    wire::opt::RENEWAL_TIME,
    wire::opt::REBINDING_TIME,
];
/// RFC 2132 §9.2: a lease time of all ones is infinite.
pub const INFINITE_LEASE: u32 = u32::MAX;
/// Shorter leases are taken as this long, as dhcpcd does (`DHCP_MIN_LEASE`): RFC 2131 sets
/// no floor, and a lease of 0 s would expire as it is granted and restart the exchange at
/// once, over and over (a broadcast storm and the address installed and removed each time).
pub const MIN_LEASE_SECS: u32 = 20;

/// DNS servers a lease keeps: the first three usable ones of option 6, as glibc's resolver
/// uses three (`MAXNS`).
pub const LEASE_DNS: usize = 3;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub mac: [u8; 6],
    /// Option 12, sent when set (dnsmasq records it in its lease file).
    pub host_name: Option<String>,
    /// Seeds the transaction ids and the retransmission jitter.
    pub seed: u64,
}

/// RFC 2131 Figure 5's states (INIT-REBOOT and REBOOTING are not used: no address is
/// remembered across runs), plus `Stopped` after a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Init,
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
    Stopped,
}

/// What an ACK configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    /// Option 6's first [`LEASE_DNS`] unicast addresses.
    pub dns: Vec<Ipv4Addr>,
    pub server: Ipv4Addr,
    /// `None`: infinite.
    pub lease: Option<Duration>,
    pub t1: Option<Duration>,
    pub t2: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Configured(Lease),
    Deconfigured,
}

/// A message to send from `src`:68 to `dst`:67 (src 0.0.0.0 before we have an address; dst
/// 255.255.255.255 for a broadcast, sent to the broadcast MAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub payload: Vec<u8>,
}

macro_rules! stats {
    ($($name:ident),* $(,)?) => {
        /// The client's counters (plain integers: the owner publishes copies).
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct DhcpStats { $(pub $name: u64,)* }
        impl DhcpStats {
            /// Name/value pairs, for printing.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

stats!(
    tx_discover,
    tx_request,
    tx_release,
    retransmissions,
    rx_offer,
    rx_ack,
    rx_nak,
    rx_malformed,
    rx_not_ours,
    rx_unexpected,
    rx_bad_ack,
    leases,
    renewals,
    rebinds,
    expiries,
    restarts,
    queue_full,
);

/// The lease timers, as instants (`None`: infinite).
#[derive(Debug, Clone)]
struct Timers {
    t1: Option<Instant>,
    t2: Option<Instant>,
    expiry: Option<Instant>,
}

pub struct Client {
    cfg: ClientConfig,
    rng: u64,
    state: State,
    xid: u32,
    /// When the current acquisition or renewal began (RFC 2131 §2 `secs`).
    began: Instant,
    /// Sends of the current message so far, and when the next is due.
    tries: u32,
    next_tx: Option<Instant>,
    /// The offer taken in SELECTING: (address, server).
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    /// When the REQUEST that led to the lease went out (RFC 2131 §4.4.1: the lease runs
    /// from there).
    requested_at: Instant,
    /// NAKs taken since the last ACK: from the second on, the restart waits a back-off.
    naks: u32,
    lease: Option<(Lease, Timers)>,
    tx: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pub stats: DhcpStats,
}

/// splitmix64: a small, well-mixed generator for xids and jitter (not for secrets).
fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The prefix length of a contiguous mask (RFC 950 §2.1 allows only those in practice,
/// RFC 4632); `None` for a non-contiguous one.
pub fn mask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    (m.leading_ones() + m.trailing_zeros() == 32).then_some(m.leading_ones() as u8)
}

/// The classful prefix of `a` (RFC 791 §3.2 classes), for an ACK without a subnet mask.
fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

impl Client {
    /// A client in INIT; its first DISCOVER goes out at the first [`Self::handle_timeout`]
    /// (due at `now`). RFC 2131 §4.4.1's random 1–10 s wait before it is not done: one
    /// stack starting alone does not cause the synchronised start-up storm it prevents.
    pub fn new(cfg: ClientConfig, now: Instant) -> Client {
        let mut rng = cfg.seed;
        let xid = splitmix(&mut rng) as u32;
        Client {
            cfg,
            rng,
            state: State::Init,
            xid,
            began: now,
            tries: 0,
            next_tx: Some(now),
            offer: None,
            requested_at: now,
            naks: 0,
            lease: None,
            tx: VecDeque::new(),
            events: VecDeque::new(),
            stats: DhcpStats::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// The lease held (BOUND, RENEWING, REBINDING).
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref().map(|(l, _)| l)
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.lease.as_ref().map(|(_, t)| t);
        let lease_timer = match self.state {
            State::Bound => t.and_then(|t| t.t1),
            State::Renewing => t.and_then(|t| t.t2.or(t.expiry)),
            State::Rebinding => t.and_then(|t| t.expiry),
            _ => None,
        };
        [self.next_tx, lease_timer].into_iter().flatten().min()
    }

    /// RFC 2131 §4.1: 4 s · 2^k capped at 64 s, ±1 s.
    fn backoff(&mut self, k: u32) -> Duration {
        let base = BACKOFF_FIRST.saturating_mul(1 << k.min(6)).min(BACKOFF_MAX);
        let j = splitmix(&mut self.rng) % (2 * BACKOFF_JITTER_MS + 1);
        (base + Duration::from_millis(j)).saturating_sub(Duration::from_millis(BACKOFF_JITTER_MS))
    }

    fn new_xid(&mut self) {
        self.xid = splitmix(&mut self.rng) as u32;
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= MAX_QUEUE {
            self.stats.queue_full += 1;
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// A message from us with the fields every client message has (RFC 2131 Table 5).
    fn message(&self, now: Instant, t: MessageType) -> DhcpRepr<'static> {
        let mut r = DhcpRepr::new(t, self.xid, self.cfg.mac);
        r.secs = now.saturating_duration_since(self.began).as_secs().min(u16::MAX as u64) as u16;
        r
    }

    /// Queue `r` with the options every message of ours carries: the client id, and but for
    /// a RELEASE the parameter list and host name.
    fn send(&mut self, src: Ipv4Addr, dst: Ipv4Addr, r: DhcpRepr<'static>) {
        let mut id = [1u8; 7]; // RFC 2132 §9.14: type 1 (Ethernet) then the MAC
        id[1..].copy_from_slice(&self.cfg.mac);
        let name = self.cfg.host_name.clone();
        let mut r: DhcpRepr<'_> = r;
        r.client_id = Some(&id);
        if r.message_type != MessageType::Release {
            r.parameter_list = Some(&PARAMETER_LIST);
            r.host_name = name.as_deref().map(str::as_bytes);
        }
        if self.tx.len() >= MAX_QUEUE {
            self.stats.queue_full += 1;
            return;
        }
        self.tx.push_back(Transmit { src, dst, payload: r.to_bytes() });
    }

    /// SELECTING: broadcast a DISCOVER (RFC 2131 §4.4.1) with the BROADCAST flag (§4.1: we
    /// cannot take a unicast before we have the address).
    fn send_discover(&mut self, now: Instant) {
        let mut r = self.message(now, MessageType::Discover);
        r.broadcast = true;
        self.stats.tx_discover += 1;
        self.send(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, r);
        self.next_tx = Some(now + self.backoff(self.tries));
        self.tries += 1;
    }

    /// A REQUEST for the state we are in (RFC 2131 Table 5, §4.3.2): SELECTING's carries the
    /// server id and the requested address and is broadcast; RENEWING's fills `ciaddr` and
    /// is unicast to the server; REBINDING's fills `ciaddr` and is broadcast.
    fn send_request(&mut self, now: Instant) {
        let mut r = self.message(now, MessageType::Request);
        self.stats.tx_request += 1;
        if self.tries == 0 {
            self.requested_at = now;
        }
        let held = self.lease.as_ref().map(|(l, _)| (l.addr, l.server));
        match (self.state, held) {
            (State::Renewing, Some((addr, server))) => {
                r.ciaddr = addr;
                self.send(addr, server, r);
                self.next_tx = Some(now + self.renew_retransmit(now));
            }
            (State::Rebinding, Some((addr, _))) => {
                r.ciaddr = addr;
                self.send(addr, Ipv4Addr::BROADCAST, r);
                self.next_tx = Some(now + self.renew_retransmit(now));
            }
            _ => {
                let (addr, server) = self.offer.unwrap_or((Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED));
                r.broadcast = true;
                r.requested_ip = Some(addr);
                r.server_id = Some(server);
                self.send(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, r);
                self.next_tx = Some(now + self.backoff(self.tries));
            }
        }
        self.tries += 1;
    }

    /// RFC 2131 §4.4.5: half the time left until T2 (RENEWING) or expiry (REBINDING), at
    /// least 60 s (the T2 or expiry timer comes first when it is sooner).
    fn renew_retransmit(&self, now: Instant) -> Duration {
        let t = self.lease.as_ref().map(|(_, t)| t);
        let until = match self.state {
            State::Renewing => t.and_then(|t| t.t2),
            _ => t.and_then(|t| t.expiry),
        };
        until.map_or(RENEW_MIN_RETRANSMIT, |u| (u.saturating_duration_since(now) / 2).max(RENEW_MIN_RETRANSMIT))
    }

    /// Start over from INIT: a new transaction, a DISCOVER now.
    fn restart(&mut self, now: Instant) {
        self.restart_after(now, Duration::ZERO);
    }

    /// Start over from INIT with the DISCOVER after `wait` (at once when zero).
    fn restart_after(&mut self, now: Instant, wait: Duration) {
        if self.lease.take().is_some() {
            self.push_event(Event::Deconfigured);
        }
        self.stats.restarts += 1;
        self.state = State::Init;
        self.offer = None;
        if wait.is_zero() {
            self.discover(now);
        } else {
            self.next_tx = Some(now + wait);
        }
    }

    /// A NAK (RFC 2131 §3.1 step 5, §4.4.4): restart, at once the first time (a stale
    /// address is the usual cause), after the §4.1 back-off (4 s doubling to 64 s) when
    /// NAKs come in a row, as systemd-networkd delays its restart after a NAK: a server that
    /// offers and then NAKs every REQUEST would otherwise make us storm without pause.
    fn restart_after_nak(&mut self, now: Instant) {
        self.stats.rx_nak += 1;
        self.naks = self.naks.saturating_add(1);
        let wait = if self.naks == 1 { Duration::ZERO } else { self.backoff(self.naks - 2) };
        self.restart_after(now, wait);
    }

    fn discover(&mut self, now: Instant) {
        self.new_xid();
        self.began = now;
        self.tries = 0;
        self.state = State::Selecting;
        self.send_discover(now);
    }

    /// Timers: the first DISCOVER, retransmissions, T1, T2 and expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let timers = self.lease.as_ref().map(|(_, t)| t.clone());
        let (t1, t2, expiry) = timers.map_or((None, None, None), |t| (t.t1, t.t2, t.expiry));
        match self.state {
            State::Init if due(self.next_tx) => self.discover(now),
            State::Selecting if due(self.next_tx) => {
                self.stats.retransmissions += 1;
                self.send_discover(now);
            }
            State::Requesting if due(self.next_tx) => {
                if self.tries >= REQUEST_TRIES {
                    self.restart(now);
                } else {
                    self.stats.retransmissions += 1;
                    self.send_request(now);
                }
            }
            State::Bound | State::Renewing | State::Rebinding if due(expiry) => {
                self.stats.expiries += 1;
                self.restart(now);
            }
            State::Bound | State::Renewing if due(t2) => self.enter(now, State::Rebinding),
            State::Bound if due(t1) => self.enter(now, State::Renewing),
            State::Renewing | State::Rebinding if due(self.next_tx) => {
                self.stats.retransmissions += 1;
                self.send_request(now);
            }
            _ => {}
        }
    }

    /// RENEWING or REBINDING: a new transaction and its first REQUEST.
    fn enter(&mut self, now: Instant, s: State) {
        self.state = s;
        self.new_xid();
        self.began = now;
        self.tries = 0;
        self.send_request(now);
    }

    /// A DHCP message received on port 68 (the UDP payload).
    pub fn handle_packet(&mut self, now: Instant, payload: &[u8]) {
        let r = match wire::parse(payload) {
            Ok(r) => r,
            Err(_) => {
                self.stats.rx_malformed += 1;
                return;
            }
        };
        if r.xid != self.xid || r.chaddr != self.cfg.mac {
            self.stats.rx_not_ours += 1;
            return;
        }
        use MessageType::*;
        match (self.state, r.message_type) {
            (State::Selecting, Offer) => self.take_offer(now, &r),
            (State::Requesting | State::Renewing | State::Rebinding, Ack | Nak) => {
                // In REQUESTING and RENEWING only the server we asked may answer (RFC 2131
                // §4.3.2: the REQUEST names it, or went to it alone); in REBINDING any may.
                // A NAK must name its server (Table 3: MUST); an ACK without one is taken
                // as our server's (lenient, as the lease falls back to it).
                let asked = match self.state {
                    State::Requesting => self.offer.map(|(_, s)| s),
                    State::Renewing => self.lease.as_ref().map(|(l, _)| l.server),
                    _ => None,
                };
                let unnamed_ack = r.message_type == Ack && r.server_id.is_none();
                if asked.is_some() && r.server_id != asked && !unnamed_ack {
                    self.stats.rx_unexpected += 1;
                } else if r.message_type == Ack {
                    self.take_ack(&r);
                } else {
                    self.restart_after_nak(now);
                }
            }
            _ => self.stats.rx_unexpected += 1,
        }
    }

    /// SELECTING: the first usable offer is taken (RFC 2131 §4.4.1 lets the client choose).
    fn take_offer(&mut self, now: Instant, r: &DhcpRepr<'_>) {
        let (Some(server), a) = (r.server_id, r.yiaddr) else {
            self.stats.rx_unexpected += 1;
            return;
        };
        // The server id is where renewals and the RELEASE go: it must be a host's address.
        if !usable_addr(a) || !usable_addr(server) {
            self.stats.rx_unexpected += 1;
            return;
        }
        self.stats.rx_offer += 1;
        self.offer = Some((a, server));
        self.state = State::Requesting;
        self.tries = 0;
        self.send_request(now);
    }

    fn take_ack(&mut self, r: &DhcpRepr<'_>) {
        let Some(lease) = self.lease_from(r) else {
            self.stats.rx_bad_ack += 1;
            return;
        };
        self.stats.rx_ack += 1;
        self.naks = 0;
        if self.state == State::Requesting {
            self.stats.leases += 1;
        } else {
            self.stats.renewals += 1;
            if self.state == State::Rebinding {
                self.stats.rebinds += 1;
            }
        }
        let start = self.requested_at;
        let at = |d: Option<Duration>| d.and_then(|d| start.checked_add(d));
        let timers = Timers { t1: at(lease.t1), t2: at(lease.t2), expiry: at(lease.lease) };
        self.lease = Some((lease.clone(), timers));
        self.state = State::Bound;
        self.next_tx = None;
        self.tries = 0;
        self.push_event(Event::Configured(lease));
    }

    /// The lease an ACK grants, or `None` when it is unusable: no usable address, no lease
    /// time (RFC 2131 Table 3: MUST in an ACK to a REQUEST), a non-contiguous mask or one of
    /// /0, /31 or /32, an address that is its subnet's network or broadcast address, or no
    /// server id where we do not know one, or one that is no host's address.
    fn lease_from(&self, r: &DhcpRepr<'_>) -> Option<Lease> {
        if !usable_addr(r.yiaddr) {
            return None;
        }
        let secs = r.lease_time?;
        // /0 would make every address on-link (its connected route beats the gateway's
        // default route). The address must be a host of its subnet: the IP core takes the
        // subnet's broadcast address as a broadcast, not as ours (/31 and /32 stay refused).
        let prefix = match r.subnet_mask {
            Some(m) => mask_prefix(m).filter(|p| (1..=30).contains(p))?,
            None => classful_prefix(r.yiaddr),
        };
        if !host_of_subnet(r.yiaddr, r.yiaddr, prefix) {
            return None;
        }
        let held = self.lease.as_ref().map(|(l, _)| l.server).or(self.offer.map(|(_, s)| s));
        let server = r.server_id.or(held).filter(|s| usable_addr(*s))?;
        let (lease, t1, t2) = lease_times(secs, r.renewal_time, r.rebinding_time);
        // A router that is the leased address itself would make us our own gateway; one
        // outside the subnet is never resolved (ARP from off-subnet senders is not learnt),
        // and a subnet's network or broadcast address is no host. None is taken (the lease
        // is), as `ip route add` refuses an unreachable gateway under dhclient-script.
        let gateway = r.router.filter(|g| *g != r.yiaddr && usable_addr(*g) && host_of_subnet(*g, r.yiaddr, prefix));
        // Queries to 0.0.0.0, a broadcast, a multicast group or loopback go nowhere useful, or
        // to the whole link: only unicast servers are kept (systemd-networkd keeps non-local).
        let dns = r.dns().filter(|a| usable_addr(*a)).take(LEASE_DNS).collect();
        Some(Lease { addr: r.yiaddr, prefix, gateway, dns, server, lease, t1, t2 })
    }

    /// Give the lease back (RFC 2131 §4.4.6: a RELEASE unicast to the server, `ciaddr` our
    /// address) and stop. True when a RELEASE was queued (we held a lease).
    pub fn release(&mut self, now: Instant) -> bool {
        let held = self.lease.take();
        self.state = State::Stopped;
        self.next_tx = None;
        let Some((lease, _)) = held else { return false };
        self.new_xid();
        self.began = now;
        let mut r = self.message(now, MessageType::Release);
        r.secs = 0;
        r.ciaddr = lease.addr;
        r.server_id = Some(lease.server);
        self.stats.tx_release += 1;
        self.send(lease.addr, lease.server, r);
        self.push_event(Event::Deconfigured);
        true
    }
}

/// A unicast address a server may hand out.
fn usable_addr(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() || a.octets()[0] >= 240)
}

/// Whether `a` is a host of `ours`'s subnet of `prefix` bits: inside it, and neither its
/// network nor its broadcast address (host part all zeros or all ones, RFC 950 §2.1).
fn host_of_subnet(a: Ipv4Addr, ours: Ipv4Addr, prefix: u8) -> bool {
    let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    let (a, o) = (u32::from(a), u32::from(ours));
    a & !host == o & !host && a & host != 0 && a & host != host
}

/// (lease, T1, T2) from the options (`None`: infinite). RFC 2131 §4.4.5: T1 defaults to
/// 0.5 and T2 to 0.875 of the lease; values out of order (T1 ≤ T2 ≤ lease) fall back to them,
/// and so does a T1 or T2 of 0 (renewing as the lease is granted would loop the same way a
/// lease of 0 would); the lease is at least [`MIN_LEASE_SECS`].
pub fn lease_times(
    lease: u32,
    t1: Option<u32>,
    t2: Option<u32>,
) -> (Option<Duration>, Option<Duration>, Option<Duration>) {
    if lease == INFINITE_LEASE {
        return (None, None, None);
    }
    let l = lease.max(MIN_LEASE_SECS) as u64 * 1000;
    let given = |t: Option<u32>| t.filter(|t| *t > 0).map(|t| t as u64 * 1000);
    let t2 = given(t2).filter(|t| *t <= l).unwrap_or(l * 7 / 8);
    let t1 = given(t1).filter(|t| *t <= t2).unwrap_or((l / 2).min(t2));
    let ms = Duration::from_millis;
    (Some(ms(l)), Some(ms(t1)), Some(ms(t2)))
}
