//! Review 22: ephemeral port selection for active opens (`ports`) against the listeners
//! that hold ports.

use super::*;
use crate::proto::tcp::ports::{EPHEMERAL_LO, EPHEMERAL_N};

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
