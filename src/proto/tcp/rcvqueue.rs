//! In-order received data on its way to the application, charged in bytes held.
//!
//! A connection's receive window is `recv_buf` minus what this queue is charged (RFC 9293
//! §3.8.6.2.2 leaves the window to the receiver's buffer). The charge is the memory held,
//! as Linux's `truesize`, not the payload: a chunk handed to the socket costs its
//! allocation (`capacity`) plus [`DATA_OVERHEAD`] for the event that carries it (its slot
//! in the socket's channel and queue, the allocator's header), so tiny segments close the
//! window by what they really cost.
//!
//! Small deliveries are coalesced: data joins `pending`, which becomes one chunk for the
//! application when the socket has read (and credited) every chunk handed out before it
//! ([`RecvQueue::take`]), when it fills (its chunk size, `DATA_CHUNK` or a smaller receive
//! buffer, or one larger segment), or before an event that must follow the data (EOF, an
//! error, `Closed`). A socket that never reads therefore holds one chunk per chunk size of
//! data, whatever the peer's segment sizes.
//!
//! Invariants:
//! * `charged` = Σ over chunks handed out and not yet wholly credited (bytes not yet
//!   credited + capacity − length + `DATA_OVERHEAD`) + (`pending.len()` + `DATA_OVERHEAD`
//!   when `pending` is not empty);
//! * chunks are handed out in sequence order and credits consume them in that order (the
//!   socket reads in order); a credit beyond what was handed out is ignored;
//! * `pending`'s allocation is at most `max(chunk, one segment)`, where `chunk` is
//!   [`DATA_CHUNK`] or the receive buffer if smaller: its slack is not charged until it is
//!   handed out, and then is trimmed away first; so what is held never passes the charge
//!   by more than one chunk (a 2 KiB buffer does not pin a 64 KiB allocation).

use std::collections::VecDeque;

/// Capacity of a pending chunk: in-order segments are appended to it while it has room,
/// so the application receives few large `Data` events.
pub const DATA_CHUNK: usize = 64 * 1024;

/// Most spare chunks an endpoint keeps for reuse ([`recycle`]): 2 MiB.
pub const SPARE_CHUNKS: usize = 32;

/// Keep `c`, a chunk the application has finished with, in `spare` for a later [`RecvQueue::push`]
/// (the caller hands chunks back so that the allocator does not return their pages to the
/// kernel and fault them in again for every chunk). Only chunks worth keeping
/// ([`reusable`]) are kept, emptied, at most [`SPARE_CHUNKS`]; a reused chunk is charged by
/// its capacity as a new one is.
pub fn recycle(spare: &mut Vec<Vec<u8>>, mut c: Vec<u8>) {
    if reusable(c.capacity()) && spare.len() < SPARE_CHUNKS {
        c.clear();
        spare.push(c);
    }
}

/// Whether a chunk of this capacity is worth reusing: between half a [`DATA_CHUNK`] and a
/// whole one (a chunk handed out is trimmed to its length, usually a segment short of
/// full; smaller ones would coalesce too little, larger ones hold a jumbo segment).
pub fn reusable(capacity: usize) -> bool {
    (DATA_CHUNK / 2..=DATA_CHUNK).contains(&capacity)
}

/// Charge for one `Data` event beyond its allocation: the event's slot in the socket's
/// channel (about 80 bytes) and queue (24 bytes, doubled by growth), the allocator's header
/// and rounding. The same figure UDP charges per queued datagram (`proto::ip::udp_charge`).
pub const DATA_OVERHEAD: usize = 256;

#[derive(Debug)]
pub struct RecvQueue {
    /// Capacity of a new pending chunk: `DATA_CHUNK`, or the receive buffer if smaller.
    chunk: usize,
    /// In-order data not yet handed to the application.
    pending: Vec<u8>,
    /// Per chunk handed out, in order: (bytes not yet credited, the rest of its charge).
    out: VecDeque<(usize, usize)>,
    charged: usize,
}

impl Default for RecvQueue {
    fn default() -> Self {
        RecvQueue::new(DATA_CHUNK)
    }
}

impl RecvQueue {
    /// A queue for a receive buffer of `recv_buf` bytes: its pending chunks are allocated
    /// at most that large (and at least one segment).
    pub fn new(recv_buf: usize) -> Self {
        RecvQueue { chunk: recv_buf.clamp(1, DATA_CHUNK), pending: Vec::new(), out: VecDeque::new(), charged: 0 }
    }

    /// Bytes of memory charged: handed out and not credited, plus pending.
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// Bytes of memory held: what is charged plus the slack of the pending allocation.
    pub fn held(&self) -> usize {
        self.charged + self.pending.capacity() - self.pending.len()
    }

    /// True when data is held back for the application.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Chunks handed out and not yet wholly credited.
    pub fn outstanding(&self) -> usize {
        self.out.len()
    }

    /// Append in-order data. Returns a chunk to hand out at once when `pending` had no room
    /// left for `d` (it is full: the application gets it even if it is behind). A new chunk
    /// is taken from `spare` ([`recycle`]) when there is one.
    pub fn push(&mut self, d: &[u8], spare: &mut Vec<Vec<u8>>) -> Option<Vec<u8>> {
        if d.is_empty() {
            return None;
        }
        let full = if self.pending.capacity() - self.pending.len() < d.len() && !self.pending.is_empty() {
            Some(self.hand_out())
        } else {
            None
        };
        if self.pending.is_empty() {
            if self.pending.capacity() < d.len() {
                // A spare chunk only where it is no larger than this queue's chunks: a
                // small receive buffer must not pin a 64 KiB allocation.
                let want = d.len().max(self.chunk);
                self.pending = match spare.pop() {
                    Some(c) if d.len() <= c.capacity() && c.capacity() <= want => c,
                    Some(c) => {
                        spare.push(c);
                        Vec::with_capacity(want)
                    }
                    None => Vec::with_capacity(want),
                };
            }
            self.charged += DATA_OVERHEAD;
        }
        self.pending.extend_from_slice(d);
        self.charged += d.len();
        full
    }

    /// The pending data as one chunk for the application, if any. Unless `force`, it is
    /// held back while a chunk handed out earlier is not yet wholly credited (the socket
    /// has unread data, so later segments keep coalescing into `pending`).
    pub fn take(&mut self, force: bool) -> Option<Vec<u8>> {
        if self.pending.is_empty() || (!force && !self.out.is_empty()) {
            return None;
        }
        Some(self.hand_out())
    }

    fn hand_out(&mut self) -> Vec<u8> {
        let mut c = std::mem::take(&mut self.pending);
        // Give back the slack (a shrinking realloc, in place with the usual allocators).
        c.shrink_to_fit();
        let rest = c.capacity() - c.len() + DATA_OVERHEAD;
        self.charged += c.capacity() - c.len();
        self.out.push_back((c.len(), rest));
        c
    }

    /// The application consumed `n` bytes (in order): release their charge, and the rest of
    /// a chunk's charge once all of it is consumed.
    pub fn credit(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.out.front_mut() else { return };
            let t = n.min(front.0);
            front.0 -= t;
            n -= t;
            self.charged -= t;
            if front.0 == 0 {
                self.charged -= front.1;
                self.out.pop_front();
            }
        }
    }

    /// Forget everything (the application shut down reading: nothing more is delivered).
    pub fn clear(&mut self) {
        *self = RecvQueue::new(self.chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_pushes_coalesce_while_the_reader_is_behind() {
        let mut q = RecvQueue::default();
        assert_eq!(q.push(b"a", &mut Vec::new()), None);
        assert_eq!(q.charged(), 1 + DATA_OVERHEAD);
        let first = q.take(false).expect("nothing outstanding: handed out at once");
        assert_eq!((first.as_slice(), first.capacity()), (&b"a"[..], 1), "trimmed to what it holds");
        assert_eq!(q.charged(), 1 + DATA_OVERHEAD);
        for _ in 0..1000 {
            assert_eq!(q.push(b"b", &mut Vec::new()), None);
            assert_eq!(q.take(false), None, "held while the first chunk is unread");
        }
        assert_eq!(q.charged(), 1 + DATA_OVERHEAD + 1000 + DATA_OVERHEAD);
        // The reader consumes the first chunk: the rest goes out as one chunk.
        q.credit(1);
        assert_eq!(q.charged(), 1000 + DATA_OVERHEAD);
        let second = q.take(false).unwrap();
        assert_eq!(second, vec![b'b'; 1000]);
        q.credit(400);
        assert_eq!(q.charged(), 600 + DATA_OVERHEAD, "a partly read chunk keeps its overhead");
        q.credit(600 + 5);
        assert_eq!((q.charged(), q.outstanding()), (0, 0), "credits beyond what was handed out are ignored");
    }

    #[test]
    fn a_full_chunk_goes_out_even_when_the_reader_is_behind() {
        let mut q = RecvQueue::default();
        q.push(b"x", &mut Vec::new());
        let _ = q.take(false).unwrap();
        let seg = vec![7u8; 1000];
        let mut out = Vec::new();
        for _ in 0..200 {
            out.extend(q.push(&seg, &mut Vec::new()));
        }
        assert_eq!(out.len(), 3, "200,000 bytes: three full 64 KiB chunks handed out");
        assert!(out.iter().all(|c| c.len() > DATA_CHUNK - 1000 && c.len() <= DATA_CHUNK));
        let held: usize = out.iter().map(|c| c.len()).sum::<usize>() + 1;
        let pending = 200_000 + 1 - held;
        assert_eq!(q.charged(), held + pending + 5 * DATA_OVERHEAD);
        // Forced out before an EOF: everything reaches the application.
        let last = q.take(true).unwrap();
        assert_eq!(last.len(), pending);
        q.clear();
        assert_eq!(q.charged(), 0);
    }

    #[test]
    fn recycled_chunks_are_reused_and_charged_as_new() {
        let mut spare = Vec::new();
        recycle(&mut spare, vec![1u8; 10]); // too small: freed
        recycle(&mut spare, vec![1u8; 2 * DATA_CHUNK]); // too large: freed
        assert!(spare.is_empty());
        let mut c = Vec::with_capacity(DATA_CHUNK);
        c.extend_from_slice(&[9u8; 100]);
        let ptr = c.as_ptr();
        recycle(&mut spare, c);
        assert_eq!(spare.len(), 1);
        let mut q = RecvQueue::default();
        q.push(b"abc", &mut spare);
        assert!(spare.is_empty(), "the spare chunk was taken");
        let out = q.take(true).unwrap();
        assert_eq!(out, b"abc", "cleared before reuse");
        assert_eq!(out.as_ptr(), ptr, "the same allocation");
        for _ in 0..SPARE_CHUNKS + 5 {
            recycle(&mut spare, Vec::with_capacity(DATA_CHUNK));
        }
        assert_eq!(spare.len(), SPARE_CHUNKS, "bounded");
        let mut q = RecvQueue::default();
        q.push(&[0u8; 10], &mut spare);
        let out = q.push(&[0u8; DATA_CHUNK], &mut spare).expect("no room: the first chunk goes out");
        assert_eq!(out.capacity(), 10, "trimmed as a new chunk would be");
        assert_eq!(spare.len(), SPARE_CHUNKS - 2, "both chunks came from the spares");
        assert_eq!(q.charged(), 10 + DATA_OVERHEAD + DATA_CHUNK + DATA_OVERHEAD);
    }
}
