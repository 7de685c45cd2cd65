//! Review 22: ephemeral port selection for active opens (`ports`): the ports listeners
//! hold, and what the ports' steps tell a site that makes us connect to its destinations.

use super::*;
use crate::proto::ports::{EPHEMERAL_LO, EPHEMERAL_N};

/// A listener bound to the unspecified address (`TcpListener::bind("0.0.0.0:p")`, the usual
/// server, and what a port-0 listener gets) holds its port on every local address: an
/// active open must not pick that port, as it does not pick a port a listener holds on its
/// own address (Linux's `__inet_hash_connect` skips every port a `bind` holds). Before, only
/// a listener on the connection's own address was seen, so with every other port taken by
/// wildcard listeners the connect took one of theirs.
#[test]
fn connect_skips_ports_wildcard_listeners_hold() {
    let mut h = H::new(plain());
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let last = EPHEMERAL_LO + (EPHEMERAL_N - 1) as u16;
    for p in EPHEMERAL_LO..=last {
        if p != 60000 {
            h.ep.listen(ListenAddr::Addr(SocketAddr::new(any, p)), 1).unwrap();
        }
    }
    h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap();
    let syn = h.out()[0].0;
    assert!(syn.flags.syn);
    assert_eq!(syn.src_port, 60000, "the one port no listener holds");
    // The range is now full for this destination: the next connect has no port.
    let e = h.ep.connect(h.now, US, SocketAddr::new(PEER, PEER_PORT)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable);
}

/// Klein and Pinkas's device tracking (USENIX Security 2022, CVE-2022-32296, fixed in
/// Linux 5.18 by growing `__inet_hash_connect`'s perturbation table from 256 to 65,536
/// entries): a site makes us connect twice, in the same order, to destinations it owns.
/// Between a destination's two connections every other one was connected once, so its
/// port moved by one plus the number of its bucket-mates: the site reads which of its
/// destinations share a bucket, a function of our key alone, i.e. an identifier that
/// follows us across networks for as long as the key lives. With 256 buckets, 100
/// destinations give ~19 colliding pairs; with Linux's 65,536, ~0.08.
#[test]
fn port_steps_do_not_reveal_which_destinations_share_a_bucket() {
    const N: usize = 100;
    let mut h = H::new(plain());
    let dests: Vec<SocketAddr> = (0..N)
        .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, (i / 200) as u8, 1 + (i % 200) as u8)), 443))
        .collect();
    let port = |h: &mut H, d: SocketAddr| {
        h.ep.connect(h.now, US, d).unwrap();
        h.out().iter().find(|(r, _)| r.flags.syn).expect("a SYN").0.src_port
    };
    let first: Vec<u16> = dests.iter().map(|d| port(&mut h, *d)).collect();
    let second: Vec<u16> = dests.iter().map(|d| port(&mut h, *d)).collect();
    // The step within the range (65535 is followed by 49152).
    let step = |a: u16, b: u16| (u32::from(b) + EPHEMERAL_N - u32::from(a)) % EPHEMERAL_N;
    let revealing = first.iter().zip(&second).filter(|(a, b)| step(**a, **b) != 1).count();
    assert!(revealing <= 2, "{revealing} of {N} destinations show their bucket-mates in their port step");
}
