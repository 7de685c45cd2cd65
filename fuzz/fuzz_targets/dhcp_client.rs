//! DHCP messages from the link are hostile input: the client never panics on any sequence of
//! them, whatever its state, and a lease it takes is one the stack can install.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netstack::proto::dhcp::client::{Client, ClientConfig, Event, Lease, LEASE_DNS};
use netstack::proto::dhcp::wire;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// What `Client::lease_from` documents of every lease it grants: a prefix of 1 to 30
/// bits, an address and a gateway that are hosts of that subnet (RFC 950 §2.1), unicast
/// server and DNS servers, and times T1 ≤ T2 ≤ lease, all given or all infinite
/// (RFC 2131 §4.4.5).
fn check_lease(l: &Lease) {
    let unicast = |a: Ipv4Addr| {
        !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() || a.octets()[0] >= 240)
    };
    assert!((1..=30).contains(&l.prefix), "{l:?}");
    let host_part = u32::MAX >> l.prefix;
    let host = |a: Ipv4Addr| {
        let (a, ours) = (u32::from(a), u32::from(l.addr));
        a & !host_part == ours & !host_part && a & host_part != 0 && a & host_part != host_part
    };
    assert!(unicast(l.addr) && host(l.addr), "{l:?}");
    assert!(unicast(l.server), "{l:?}");
    assert!(l.gateway.is_none_or(|g| g != l.addr && unicast(g) && host(g)), "{l:?}");
    assert!(l.dns.len() <= LEASE_DNS && l.dns.iter().all(|a| unicast(*a)), "{l:?}");
    match (l.t1, l.t2, l.lease) {
        (Some(t1), Some(t2), Some(lease)) => assert!(!t1.is_zero() && t1 <= t2 && t2 <= lease, "{l:?}"),
        (None, None, None) => {}
        _ => panic!("some lease times infinite, some not: {l:?}"),
    }
}

/// How many messages the client queued since the last call.
fn drain(client: &mut Client) -> usize {
    std::iter::from_fn(|| client.poll_transmit()).count()
}

fuzz_target!(|data: &[u8]| {
    let _ = wire::parse(data);
    let t0 = Instant::now();
    let cfg = ClientConfig { mac: MAC, host_name: Some("fuzz".into()), seed: 7 };
    let mut client = Client::new(cfg, t0);
    let mut now = t0;
    // A sequence of messages, each prefixed by a 2-byte length and a byte of clock steps;
    // the transaction id and hardware address are set to the client's, so that most
    // messages reach the state machine.
    let mut rest = data;
    while rest.len() >= 3 {
        let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 3);
        now += Duration::from_millis(u64::from(rest[2]) * 250);
        let mut msg = rest[3..3 + n].to_vec();
        if msg.len() >= 34 {
            msg[4..8].copy_from_slice(&client.xid().to_be_bytes());
            msg[28..34].copy_from_slice(&MAC);
        }
        rest = &rest[3 + n..];
        while let Some(t) = client.poll_timeout() {
            if t > now {
                break;
            }
            client.handle_timeout(t);
            assert!(drain(&mut client) <= 2, "one timeout made the client send a burst");
        }
        client.handle_packet(now, &msg);
        assert!(drain(&mut client) <= 2, "one message made the client send a burst");
        while let Some(ev) = client.poll_event() {
            if let Event::Configured(lease) = ev {
                check_lease(&lease);
            }
        }
    }
    let _ = client.release(now);
});
