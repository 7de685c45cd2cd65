//! The send buffer: bytes the application wrote that are not yet acknowledged.
//!
//! A ring: acknowledged bytes are dropped by moving the head, so no byte is moved once it
//! is in (a `Vec` drained at the front moved up to one more copy of every byte sent). The
//! ring's allocation grows on demand, doubling, up to `cap` (an idle connection holds
//! nothing); growing lays the held bytes out from index 0 again.
//!
//! Invariants: `len <= cap` always (the facade is given credit for `cap` bytes; a write
//! beyond it is truncated and reported); `len <= ring.len()`; the held bytes are
//! `ring[head..]` followed by `ring[..]` from the start, `len` in all. Byte 0 of the buffer
//! is the byte at sequence number `SND.UNA` (or `ISS+1` before the SYN is acked). Segments
//! are sent as slices of the ring without copying, except one that straddles the ring's end
//! (at most one per lap), which is copied into `joined` (its allocation: at most one
//! segment's length, counted in [`SendBuffer::allocated`]).

#[derive(Debug)]
pub struct SendBuffer {
    ring: Vec<u8>,
    head: usize,
    len: usize,
    cap: usize,
    /// A segment that wraps around the ring's end, joined (see the module doc).
    joined: Vec<u8>,
}

/// First allocation of a ring that receives data.
const MIN_RING: usize = 4096;

impl SendBuffer {
    pub fn new(cap: usize) -> Self {
        SendBuffer { ring: Vec::new(), head: 0, len: 0, cap, joined: Vec::new() }
    }
    /// Bytes allocated (at least what it holds).
    pub fn allocated(&self) -> usize {
        self.ring.capacity() + self.joined.capacity()
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
    /// Append as much of `data` as fits; returns the number of bytes taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        if self.len + n > self.ring.len() {
            self.grow(self.len + n);
        }
        let size = self.ring.len();
        let tail = (self.head + self.len) % size;
        let first = n.min(size - tail);
        self.ring[tail..tail + first].copy_from_slice(&data[..first]);
        self.ring[..n - first].copy_from_slice(&data[first..n]);
        self.len += n;
        n
    }
    /// A ring of at least `need` bytes (doubling, at most `cap`), the held bytes first.
    fn grow(&mut self, need: usize) {
        let size = need.max(self.ring.len() * 2).max(MIN_RING).min(self.cap.max(need));
        let mut ring = vec![0u8; size];
        let (a, b) = self.held(0, self.len);
        ring[..a.len()].copy_from_slice(a);
        ring[a.len()..a.len() + b.len()].copy_from_slice(b);
        self.ring = ring;
        self.head = 0;
    }
    /// Drop `n` acknowledged bytes from the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        self.head = if self.len == 0 { 0 } else { (self.head + n) % self.ring.len() };
    }
    /// Where bytes `[off, off+len)` counted from the front (clipped to what is buffered)
    /// lie: `ring[start..start + first]`, then `ring[..second]` when the range wraps.
    fn locate(&self, off: usize, len: usize) -> (usize, usize, usize) {
        let off = off.min(self.len);
        let len = len.min(self.len - off);
        if len == 0 {
            return (0, 0, 0);
        }
        let size = self.ring.len();
        let start = (self.head + off) % size;
        let first = len.min(size - start);
        (start, first, len - first)
    }
    /// The two pieces of `[off, off+len)` (the second empty unless the range wraps).
    fn held(&self, off: usize, len: usize) -> (&[u8], &[u8]) {
        let (start, first, second) = self.locate(off, len);
        (&self.ring[start..start + first], &self.ring[..second])
    }
    /// Bytes `[off, off+len)` counted from the front, clipped to what is buffered.
    pub fn slice(&mut self, off: usize, len: usize) -> &[u8] {
        let (start, first, second) = self.locate(off, len);
        if second == 0 {
            return &self.ring[start..start + first];
        }
        self.joined.clear();
        self.joined.extend_from_slice(&self.ring[start..start + first]);
        self.joined.extend_from_slice(&self.ring[..second]);
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
        b.consume(6);
        assert_eq!(b.slice(0, 2), b"wo");
        assert_eq!(b.push(b"xyz"), 3);
        assert_eq!(b.slice(0, 100), b"worlxyz");
        b.consume(100);
        assert!(b.is_empty());
        assert_eq!(b.slice(5, 5), b"");
    }

    #[test]
    fn wraps_without_moving_bytes_and_joins_a_straddling_segment() {
        let mut b = SendBuffer::new(8192);
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut sent = 0; // bytes of `data` consumed
        let mut pushed = b.push(&data);
        assert_eq!((pushed, b.allocated()), (8192, 8192), "grew to the limit, no further");
        while sent < data.len() {
            // Every byte is where the model says, whichever way the ring is cut.
            for (off, len) in [(0, 1460), (1000, 3000), (b.len().saturating_sub(700), 1460)] {
                let want = &data[sent + off.min(b.len())..sent + (off + len).min(b.len())];
                assert_eq!(b.slice(off, len), want, "off {off} len {len} at {sent}");
            }
            let k = 3000.min(b.len());
            b.consume(k);
            sent += k;
            pushed += b.push(&data[pushed..]);
            assert!(b.len() <= 8192);
        }
        assert!(b.is_empty());
        assert!(b.allocated() <= 8192 + 3000, "the ring and at most one joined segment");
    }

    #[test]
    fn grows_on_demand_keeping_order() {
        let mut b = SendBuffer::new(1 << 20);
        assert_eq!(b.allocated(), 0, "idle: nothing held");
        b.push(&[1u8; 3000]);
        b.consume(2500);
        b.push(&[2u8; 3000]); // wraps in the 4 KiB ring
        b.push(&[3u8; 3000]); // grows: laid out again from index 0
        let all = b.slice(0, 1 << 20).to_vec();
        assert_eq!(all.len(), 6500);
        assert!(all[..500].iter().all(|&x| x == 1) && all[500..3500].iter().all(|&x| x == 2));
        assert!(all[3500..].iter().all(|&x| x == 3));
    }
}
