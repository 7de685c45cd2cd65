//! Packet buffers and the pool that recycles them.
//!
//! A packet read from the device travels by ownership (`Vec<u8>`) to its consumer; the
//! consumer hands it back with [`Pool::put`]. The pool is itself a bounded channel, so any
//! thread may return a buffer and memory held by idle buffers is capped at
//! `capacity × buf_size` (plus a smaller class of 64 KiB buffers for offload reads).
//! A buffer that does not fit in the pool is simply freed.

use crossbeam_channel::{bounded, Receiver, Sender};

/// A batch of whole packets: the unit every hop moves (ARCHITECTURE.md §2 rule 3).
pub type Batch = Vec<Vec<u8>>;

/// Size of a pooled packet buffer: a 1500-byte MTU packet plus slack for TAP headers; larger
/// packets (jumbo MTU, reassembled datagrams) simply grow their buffer.
pub const DEFAULT_BUF_SIZE: usize = 2048;
/// Size of a large buffer: a whole 64 KiB TCP super-segment from an offloading TUN device.
pub const LARGE_BUF_SIZE: usize = 65_536 + 256;
/// How many large buffers the pool keeps (8 MiB).
const LARGE_POOL: usize = 128;

#[derive(Clone)]
pub struct Pool {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    large_tx: Sender<Vec<u8>>,
    large_rx: Receiver<Vec<u8>>,
    buf_size: usize,
}

impl Pool {
    pub fn new(capacity: usize, buf_size: usize) -> Pool {
        let (tx, rx) = bounded(capacity);
        let (large_tx, large_rx) = bounded(LARGE_POOL);
        Pool { tx, rx, large_tx, large_rx, buf_size }
    }

    /// An empty buffer with capacity for at least `buf_size` bytes.
    pub fn get(&self) -> Vec<u8> {
        match self.rx.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(self.buf_size),
        }
    }

    /// An empty buffer with room for a 64 KiB super-segment.
    pub fn get_large(&self) -> Vec<u8> {
        match self.large_rx.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(LARGE_BUF_SIZE),
        }
    }

    /// Return a buffer to its size class. Buffers of other sizes (grown past 4× the small
    /// size, or reassembled datagrams) are freed so that the pool's memory stays bounded.
    pub fn put(&self, b: Vec<u8>) {
        let c = b.capacity();
        if c >= self.buf_size && c <= self.buf_size * 4 {
            let _ = self.tx.try_send(b);
        } else if (LARGE_BUF_SIZE..=LARGE_BUF_SIZE * 2).contains(&c) {
            let _ = self.large_tx.try_send(b);
        }
    }

    /// Return every buffer of a batch, leaving it empty (its own allocation is kept).
    pub fn put_batch(&self, batch: &mut Batch) {
        for b in batch.drain(..) {
            self.put(b);
        }
    }

    pub fn buf_size(&self) -> usize {
        self.buf_size
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new(4096, DEFAULT_BUF_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycles_and_bounds() {
        let p = Pool::new(2, 64);
        let mut a = p.get();
        a.extend_from_slice(b"hello");
        let cap = a.capacity();
        p.put(a);
        let b = p.get();
        assert!(b.is_empty());
        assert_eq!(b.capacity(), cap);
        p.put(b);
        p.put(Vec::with_capacity(64));
        p.put(Vec::with_capacity(64)); // over capacity: freed, not queued
        assert_eq!(p.rx.len(), 2);
        p.put(Vec::with_capacity(10_000)); // oversized: freed
        assert_eq!(p.rx.len(), 2);
        p.put(p.get_large()); // large class
        assert_eq!((p.rx.len(), p.large_rx.len()), (2, 1));
    }
}
