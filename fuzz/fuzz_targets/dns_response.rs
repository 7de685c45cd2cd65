//! A DNS response is hostile input: `parse_response` never panics, an accepted answer
//! carries at most as many addresses as the message could hold, and the cache takes any
//! TTL without overflowing its clock arithmetic and stays within its capacity.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netstack::proto::dns::{parse_response, Cache, RecordType};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // The first byte picks the question; the message's own ID is used as the query's, so
    // that most inputs get past the ID check into the records.
    let qtype = if data[0] & 1 == 0 { RecordType::A } else { RecordType::Aaaa };
    let name = ["example.com", "a.b", "x"][usize::from(data[0] >> 1) % 3];
    let msg = &data[1..];
    let id = if msg.len() >= 2 { u16::from_be_bytes([msg[0], msg[1]]) } else { 0 };
    if let Ok(answer) = parse_response(msg, id, name, qtype) {
        // An A record takes at least 16 bytes of the message (a 2-byte pointer name,
        // type, class, TTL, length, 4 bytes of address).
        assert!(answer.addrs().len() <= msg.len() / 14);
        let mut cache = Cache::new(4);
        let t0 = Instant::now();
        cache.insert(t0, name, qtype, answer.clone());
        assert!(cache.len() <= 4);
        let _ = cache.get(t0 + Duration::from_secs(u64::from(answer.min_ttl())), name, qtype);
        let _ = cache.get(t0 + Duration::from_secs(1 << 40), name, qtype);
    }
});
