//! Ethernet frames from a TAP link are hostile input: `LinkCore::handle_frame` never panics
//! on any sequence of them, and the neighbour cache, the routing table and the queues stay
//! within their configured bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netstack::proto::link::{LinkConfig, LinkCore};
use netstack::wire::EthernetAddress;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut cfg = LinkConfig::default();
    cfg.mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
    cfg.v4 = vec!["10.0.0.2".parse().unwrap()];
    cfg.v4_prefix = 24;
    cfg.v6 = vec!["fd00::2".parse().unwrap()];
    cfg.v6_prefix = 64;
    cfg.accept_ra = true;
    cfg.neigh.max_entries = 8;
    cfg.max_routes = 8;
    cfg.tx_queue_frames = 16;
    cfg.event_queue = 16;
    let (max_neigh, max_routes) = (cfg.neigh.max_entries, cfg.max_routes);
    let (max_tx, max_ev) = (cfg.tx_queue_frames, cfg.event_queue);
    let t0 = Instant::now();
    let mut core = LinkCore::new(cfg, t0);
    let mut now = t0;
    // A sequence of frames, each prefixed by a 2-byte length and a byte of clock steps.
    let mut rest = data;
    while rest.len() >= 3 {
        let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 3);
        now += Duration::from_millis(u64::from(rest[2]) * 100);
        let frame = &rest[3..3 + n];
        rest = &rest[3 + n..];
        while let Some(t) = core.poll_timeout() {
            if t > now {
                break;
            }
            core.handle_timeout(t);
        }
        let _ = core.handle_frame(now, frame);
        assert!(core.neighbours().len() <= max_neigh);
        assert!(core.routes().routes().len() <= max_routes);
        let mut tx = 0;
        while core.poll_transmit().is_some() {
            tx += 1;
        }
        assert!(tx <= max_tx);
        let mut ev = 0;
        while core.poll_event().is_some() {
            ev += 1;
        }
        assert!(ev <= max_ev);
    }
});
