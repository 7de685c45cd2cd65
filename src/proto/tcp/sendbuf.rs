//! The send buffer: bytes the application wrote that are not yet acknowledged.
//!
//! Invariant: `len() <= cap` always (the facade is given credit for `cap` bytes; a
//! write beyond it is truncated and reported). Byte 0 of the buffer is the byte at
//! sequence number `SND.UNA` (or `ISS+1` before the SYN is acked). Segments are sent
//! as slices of this buffer, without copying.

#[derive(Debug)]
pub struct SendBuffer {
    buf: Vec<u8>,
    head: usize,
    cap: usize,
}

impl SendBuffer {
    pub fn new(cap: usize) -> Self {
        SendBuffer { buf: Vec::new(), head: 0, cap }
    }
    /// Bytes allocated (at least what it holds).
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }
    /// The most it holds (the socket's send buffer size).
    pub fn capacity_limit(&self) -> usize {
        self.cap
    }
    pub fn len(&self) -> usize {
        self.buf.len() - self.head
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn free(&self) -> usize {
        self.cap.saturating_sub(self.len())
    }
    /// Append as much of `data` as fits; returns the number of bytes taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        self.buf.extend_from_slice(&data[..n]);
        n
    }
    /// Drop `n` acknowledged bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.head += n.min(self.len());
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head >= 64 * 1024 && self.head * 2 >= self.buf.len() {
            // Amortized O(1): at most half the bytes move.
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }
    /// Bytes `[off, off+len)` counted from the front, clipped to what is buffered.
    pub fn slice(&self, off: usize, len: usize) -> &[u8] {
        let start = (self.head + off).min(self.buf.len());
        let end = start.saturating_add(len).min(self.buf.len());
        &self.buf[start..end]
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
}
