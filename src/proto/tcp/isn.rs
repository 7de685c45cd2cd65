//! Initial sequence numbers (RFC 6528 §3, RFC 9293 M-8/M-9):
//! `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)` where `M` is a
//! 4-microsecond timer and `F` is SHA-256 keyed with a 16-byte secret.
//!
//! The same keyed hash also yields a per-connection timestamp offset (RFC 7323 §5.4
//! recommends randomizing the TSval start per connection).

use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct IsnGenerator {
    key: [u8; 16],
    epoch: Instant,
}

impl IsnGenerator {
    pub fn new(key: [u8; 16], epoch: Instant) -> Self {
        IsnGenerator { key, epoch }
    }

    fn hash(&self, tag: u8, local: SocketAddr, remote: SocketAddr) -> u32 {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update([tag]);
        hash_tuple(h, local, remote)
    }

    /// The ISN for a connection at `now`.
    pub fn isn(&self, now: Instant, local: SocketAddr, remote: SocketAddr) -> u32 {
        // M: 4 µs ticks since the endpoint was created (RFC 9293 §3.4.1).
        let m = (now.saturating_duration_since(self.epoch).as_micros() / 4) as u32;
        m.wrapping_add(self.hash(0, local, remote))
    }

    /// Per-connection offset added to the timestamp clock.
    pub fn ts_offset(&self, local: SocketAddr, remote: SocketAddr) -> u32 {
        self.hash(1, local, remote)
    }
}

/// Finish a keyed hash `h` over the 4-tuple (addresses and ports, local first) and return
/// its first 32 bits (shared by the ISN and SYN-cookie functions).
pub(super) fn hash_tuple(mut h: Sha256, local: SocketAddr, remote: SocketAddr) -> u32 {
    for a in [local, remote] {
        match a.ip() {
            std::net::IpAddr::V4(v) => h.update(v.octets()),
            std::net::IpAddr::V6(v) => h.update(v.octets()),
        }
        h.update(a.port().to_be_bytes());
    }
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    #[test]
    fn isn_depends_on_tuple_key_and_clock() {
        let t0 = Instant::now();
        let g = IsnGenerator::new([1; 16], t0);
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let c: SocketAddr = "10.0.0.2:81".parse().unwrap();
        let i0 = g.isn(t0, a, b);
        assert_eq!(g.isn(t0, a, b), i0);
        assert_ne!(g.isn(t0, a, c), i0);
        // 4 µs clock: 1 ms later the ISN moved by 250.
        assert_eq!(g.isn(t0 + Duration::from_millis(1), a, b), i0.wrapping_add(250));
        let g2 = IsnGenerator::new([2; 16], t0);
        assert_ne!(g2.isn(t0, a, b), i0);
    }
}
