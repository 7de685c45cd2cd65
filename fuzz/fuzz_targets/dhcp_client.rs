//! DHCP messages from the link are hostile input: the client never panics on any sequence of
//! them, whatever its state, and a lease it takes is one the stack can install.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netstack::proto::dhcp::client::{Client, ClientConfig, Event};
use netstack::proto::dhcp::wire;
use std::time::{Duration, Instant};

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

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
                assert!(lease.prefix <= 32);
                assert!(!lease.addr.is_unspecified() && !lease.addr.is_broadcast());
            }
        }
    }
    let _ = client.release(now);
});
