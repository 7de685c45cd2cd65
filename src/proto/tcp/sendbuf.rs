//! The send buffer: bytes the application wrote that are not yet acknowledged.
//!
//! A queue of chunks. A large write arrives as the `Vec` the socket made and is kept as it
//! is ([`SendBuffer::push_vec`]: moved, not copied — the engine's one copy of a byte is then
//! into the packet) when its allocation is at most twice the bytes taken; small writes, and
//! large ones in a much larger allocation, are copied into the tail chunk, which grows by
//! [`TAIL_CHUNK`] steps. Acknowledged bytes leave by moving the head; a chunk whose bytes
//! are all acknowledged leaves the buffer (an idle connection holds nothing): emptied, to
//! the caller's `spent` list when it is worth reusing (between [`MIN_OWNED_CHUNK`] and
//! [`SPENT_MAX_CAP`], at most [`SPENT_KEEP`] there), for the socket's next large write to
//! fill instead of a fresh allocation; otherwise freed.
//!
//! Invariants: `len <= cap` always (the facade is given credit for `cap` bytes; a write
//! beyond it is truncated and reported); the held bytes are `chunks[0][head..]` followed by
//! the other chunks whole, `len` in all, no chunk empty. Byte 0 of the buffer is the byte at
//! sequence number `SND.UNA` (or `ISS+1` before the SYN is acked). Segments are sent as
//! slices of a chunk without copying, except one that straddles two chunks (at most one per
//! chunk), which is copied into `joined` (its allocation: at most one segment's length).
//! [`SendBuffer::allocated`] counts every allocation held.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct SendBuffer {
    chunks: VecDeque<Vec<u8>>,
    head: usize,
    len: usize,
    cap: usize,
    /// A segment that straddles two chunks, joined (see the module doc).
    joined: Vec<u8>,
}

/// Writes of at least this many bytes are kept as the chunk they came in, when that chunk's
/// allocation is at most twice the write ([`SendBuffer::push_vec`]).
pub const MIN_OWNED_CHUNK: usize = 16 * 1024;
/// Allocation step of the tail chunk that small writes are copied into.
pub const TAIL_CHUNK: usize = 64 * 1024;
/// Most spent chunks the caller's list takes ([`SendBuffer::consume`]); others are freed.
pub const SPENT_KEEP: usize = 16;
/// Largest spent chunk kept (the facade's largest write): a bigger one, which only a caller
/// of the core's own API can make, is freed, so the list holds at most 4 MiB.
pub const SPENT_MAX_CAP: usize = 256 * 1024;

impl SendBuffer {
    pub fn new(cap: usize) -> Self {
        SendBuffer { chunks: VecDeque::new(), head: 0, len: 0, cap, joined: Vec::new() }
    }
    /// Bytes allocated (at least what it holds).
    pub fn allocated(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>() + self.joined.capacity()
    }
    /// The most it holds (the socket's send buffer size).
    pub fn capacity_limit(&self) -> usize {
        self.cap
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn free(&self) -> usize {
        self.cap.saturating_sub(self.len)
    }
    /// Append as much of `data` as fits, by copying; returns the number of bytes taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        let mut data = &data[..n];
        while !data.is_empty() {
            let room = self.chunks.back().map_or(0, |c| c.capacity() - c.len());
            if room == 0 {
                let size = TAIL_CHUNK.max(data.len().min(self.cap)).min(self.cap.max(1));
                self.chunks.push_back(Vec::with_capacity(size));
                continue;
            }
            let k = room.min(data.len());
            self.chunks.back_mut().expect("a tail chunk").extend_from_slice(&data[..k]);
            data = &data[k..];
        }
        self.len += n;
        n
    }
    /// Append as much of `data` as fits: a large write is kept as the chunk it is (no
    /// copy), a small one (or one in an allocation over twice its size) copied into the
    /// tail chunk. Returns the number of bytes taken.
    pub fn push_vec(&mut self, mut data: Vec<u8>) -> usize {
        let n = data.len().min(self.free());
        // Kept whole only while its allocation is at most twice what it carries: a small
        // write in a big chunk, or a huge `Vec` cut to the credit, is copied (n bytes at most).
        if n < MIN_OWNED_CHUNK || data.capacity() > 2 * n {
            return self.push(&data[..n]);
        }
        data.truncate(n);
        self.chunks.push_back(data);
        self.len += n;
        n
    }
    /// Drop `n` acknowledged bytes from the front; chunks left empty go to `spent` (see
    /// the module doc) or are freed.
    pub fn consume(&mut self, n: usize, spent: &mut Vec<Vec<u8>>) {
        let mut n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let first = self.chunks.front().map_or(0, Vec::len) - self.head;
            if n < first {
                self.head += n;
                return;
            }
            n -= first;
            self.retire_front(spent);
        }
        if self.chunks.front().is_some_and(|c| c.len() == self.head) {
            self.retire_front(spent);
        }
    }
    fn retire_front(&mut self, spent: &mut Vec<Vec<u8>>) {
        if let Some(mut c) = self.chunks.pop_front() {
            if (MIN_OWNED_CHUNK..=SPENT_MAX_CAP).contains(&c.capacity()) && spent.len() < SPENT_KEEP {
                c.clear();
                spent.push(c);
            }
        }
        self.head = 0;
    }
    /// Bytes `[off, off+len)` counted from the front, clipped to what is buffered.
    pub fn slice(&mut self, off: usize, len: usize) -> &[u8] {
        let off = off.min(self.len);
        let len = len.min(self.len - off);
        if len == 0 {
            return &[];
        }
        // The chunk holding byte `off`, and where in it.
        let mut at = off + self.head;
        let mut i = 0;
        while at >= self.chunks[i].len() {
            at -= self.chunks[i].len();
            i += 1;
        }
        if at + len <= self.chunks[i].len() {
            return &self.chunks[i][at..at + len];
        }
        self.joined.clear();
        let mut left = len;
        for c in self.chunks.iter().skip(i) {
            let take = left.min(c.len() - at);
            self.joined.extend_from_slice(&c[at..at + take]);
            left -= take;
            at = 0;
            if left == 0 {
                break;
            }
        }
        &self.joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn bounded_push_consume_slice() {
        let mut b = SendBuffer::new(10);
        assert_eq!(b.push(b"hello world"), 10);
        assert_eq!(b.free(), 0);
        assert_eq!(b.slice(6, 100), b"worl");
        b.consume(6, &mut Vec::new());
        assert_eq!(b.slice(0, 2), b"wo");
        assert_eq!(b.push(b"xyz"), 3);
        assert_eq!(b.slice(0, 100), b"worlxyz");
        b.consume(100, &mut Vec::new());
        assert!(b.is_empty());
        assert_eq!(b.slice(5, 5), b"");
    }

    #[test]
    fn large_writes_are_kept_as_chunks_and_small_ones_copied() {
        let mut b = SendBuffer::new(1 << 20);
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut model = big.clone();
        model.extend_from_slice(&[7u8; 10]);
        model.extend_from_slice(&big);
        let last = big.clone();
        let last_ptr = last.as_ptr();
        assert_eq!(b.push_vec(big), 100_000);
        assert_eq!(b.push_vec(vec![7u8; 10]), 10, "a small write is copied");
        assert_eq!(b.push_vec(last), 100_000);
        assert_eq!(b.chunks.len(), 3);
        assert_eq!(b.slice(99_995, 20), &model[99_995..100_015], "straddles three chunks");
        assert_eq!(b.slice(150_000, 1460), &model[150_000..151_460]);
        let mut spent = Vec::new();
        b.consume(100_005, &mut spent);
        assert_eq!(b.chunks.len(), 2, "an acknowledged chunk leaves");
        assert_eq!(spent.len(), 1, "and is handed back for reuse");
        assert!(spent[0].is_empty() && spent[0].capacity() >= 100_000);
        assert_eq!(b.slice(0, 5), &[7u8; 5]);
        assert_eq!(b.slice(5, 3), &model[100_010..100_013]);
        assert!(std::ptr::eq(b.slice(5, 3).as_ptr(), last_ptr), "the write's own buffer, not a copy");
        b.consume(1 << 20, &mut Vec::new());
        assert!(b.is_empty() && b.chunks.is_empty());
    }

    #[test]
    fn wraps_without_moving_bytes_and_joins_a_straddling_segment() {
        let mut b = SendBuffer::new(8192);
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut sent = 0; // bytes of `data` consumed
        let mut pushed = b.push(&data);
        assert_eq!(pushed, 8192, "filled to the limit, no further");
        while sent < data.len() {
            // Every byte is where the model says, whichever way the ring is cut.
            for (off, len) in [(0, 1460), (1000, 3000), (b.len().saturating_sub(700), 1460)] {
                let want = &data[sent + off.min(b.len())..sent + (off + len).min(b.len())];
                assert_eq!(b.slice(off, len), want, "off {off} len {len} at {sent}");
            }
            let k = 3000.min(b.len());
            b.consume(k, &mut Vec::new());
            sent += k;
            pushed += b.push(&data[pushed..]);
            assert!(b.len() <= 8192);
        }
        assert!(b.is_empty());
        assert!(b.allocated() <= 8192 + 2 * super::TAIL_CHUNK + 3000, "the chunks and at most one joined segment");
    }

    /// Spent chunks go back (emptied) only when worth reusing, and at most `SPENT_KEEP`.
    #[test]
    fn spent_chunks_are_bounded_and_only_large_ones_kept() {
        let mut b = SendBuffer::new(64 << 20);
        for _ in 0..SPENT_KEEP + 4 {
            assert_eq!(b.push_vec(vec![1u8; MIN_OWNED_CHUNK]), MIN_OWNED_CHUNK);
        }
        let mut spent = Vec::new();
        b.consume(b.len(), &mut spent);
        assert_eq!(spent.len(), SPENT_KEEP, "bounded");
        assert!(b.is_empty() && b.chunks.is_empty());
        let mut small = SendBuffer::new(1000);
        small.push(&[2u8; 1000]);
        let mut spent = Vec::new();
        small.consume(1000, &mut spent);
        assert!(spent.is_empty(), "a 1,000-byte tail chunk is not worth a slot");
        let mut huge = SendBuffer::new(8 << 20);
        huge.push_vec(vec![3u8; 4 << 20]);
        huge.consume(4 << 20, &mut spent);
        assert!(spent.is_empty(), "a 4 MiB chunk (core API) is freed, not held");
    }

    /// What a send buffer allocates is bounded by what it holds, whatever capacity the
    /// written `Vec`s came with: a 256 KiB chunk carrying a 16 KiB write, or a core-API
    /// caller's huge `Vec` cut to the credit (it held 64 MiB for 64 KiB before).
    #[test]
    fn allocation_is_bounded_by_the_bytes_held() {
        let bound = |b: &SendBuffer| 2 * b.len() + TAIL_CHUNK + MIN_OWNED_CHUNK;
        let mut b = SendBuffer::new(1 << 20);
        while b.free() >= MIN_OWNED_CHUNK {
            let mut c = Vec::with_capacity(SPENT_MAX_CAP); // a recycled chunk
            c.extend_from_slice(&[9u8; MIN_OWNED_CHUNK]);
            assert_eq!(b.push_vec(c), MIN_OWNED_CHUNK);
        }
        assert!(b.allocated() <= bound(&b), "{} bytes allocated for {} held", b.allocated(), b.len());
        let mut b = SendBuffer::new(64 * 1024);
        assert_eq!(b.push_vec(vec![5u8; 64 << 20]), 64 * 1024, "cut to the limit");
        assert!(b.allocated() <= bound(&b), "{} bytes allocated for {} held", b.allocated(), b.len());
        assert_eq!(b.slice(0, 1 << 20), &[5u8; 64 * 1024][..]);
    }

    /// Random pushes (copied, owned, in recycled chunks with spare room), acknowledgements
    /// and slices against a plain byte model; spent chunks are reused for later writes
    /// like the socket does, and always come back empty.
    #[test]
    fn matches_a_byte_model_with_recycled_chunks() {
        use rand::{Rng, SeedableRng};
        for seed in 0..40u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let cap = rng.gen_range(1..=600_000);
            let mut b = SendBuffer::new(cap);
            let mut model = std::collections::VecDeque::new();
            let (mut spent, mut next) = (Vec::new(), 0u8);
            for step in 0..400 {
                let len = [1, 700, 16_383, 16_384, 16_385, 70_000, 262_144][rng.gen_range(0..7)];
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        next = next.wrapping_add(7);
                        next
                    })
                    .collect();
                let took = match rng.gen_range(0..3) {
                    0 => b.push(&data),
                    1 => b.push_vec(data.clone()),
                    _ => {
                        let mut c: Vec<u8> = spent.pop().unwrap_or_default();
                        assert!(c.is_empty(), "a spent chunk comes back empty");
                        c.extend_from_slice(&data);
                        b.push_vec(c)
                    }
                };
                assert_eq!(took, len.min(cap - model.len()), "seed {seed} step {step}");
                model.extend(&data[..took]);
                let k = rng.gen_range(0..=model.len());
                b.consume(k, &mut spent);
                model.drain(..k);
                assert!(spent.len() <= SPENT_KEEP);
                assert_eq!(b.len(), model.len());
                for _ in 0..3 {
                    let off = rng.gen_range(0..=model.len());
                    let n = rng.gen_range(0..=70_000);
                    let want: Vec<u8> = model.iter().skip(off).take(n).copied().collect();
                    assert!(b.slice(off, n) == &want[..], "seed {seed} step {step} off {off} n {n}");
                }
            }
        }
    }

    #[test]
    fn grows_on_demand_keeping_order() {
        let mut b = SendBuffer::new(1 << 20);
        assert_eq!(b.allocated(), 0, "idle: nothing held");
        b.push(&[1u8; 3000]);
        b.consume(2500, &mut Vec::new());
        b.push(&[2u8; 3000]);
        b.push(&[3u8; 3000]);
        let all = b.slice(0, 1 << 20).to_vec();
        assert_eq!(all.len(), 6500);
        assert!(all[..500].iter().all(|&x| x == 1) && all[500..3500].iter().all(|&x| x == 2));
        assert!(all[3500..].iter().all(|&x| x == 3));
    }
}
