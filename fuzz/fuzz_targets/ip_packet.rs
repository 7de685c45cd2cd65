//! IpCore::handle_packet never panics and keeps reassembly memory within its bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netstack::buf::Pool;
use netstack::proto::ip::{IpConfig, IpCore, IpOutput};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut cfg = IpConfig::default();
    cfg.reassembly_bytes = 64 * 1024;
    let bound = cfg.reassembly_bytes;
    let mut core = IpCore::new(cfg, 1);
    let pool = Pool::new(16, 2048);
    let mut out = IpOutput::default();
    let t0 = Instant::now();
    // The input is a sequence of packets, each prefixed by a 2-byte length.
    let mut rest = data;
    let mut i = 0u64;
    while rest.len() >= 2 {
        let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        core.handle_packet(t0 + Duration::from_millis(i), rest[2..2 + n].to_vec(), &pool, &mut out);
        assert!(core.reassembly_bytes() <= bound);
        rest = &rest[2 + n..];
        i += 1;
    }
    core.handle_timeout(t0 + Duration::from_secs(120));
    assert_eq!(core.reassembly_bytes(), 0);
});
