//! Packet buffers and the pool that recycles them.
//!
//! A packet read from the device travels by ownership (`Vec<u8>`) to its consumer; the
//! consumer hands it back with [`Pool::put`]. The pool is itself a bounded channel, so any
//! thread may return a buffer and memory held by idle buffers is capped at
//! `capacity × buf_size` (plus a smaller class of 64 KiB buffers for offload reads).
//! A buffer that does not fit in the pool is simply freed.

use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;

/// A batch of whole packets: the unit every hop moves (ARCHITECTURE.md §2 rule 3).
pub type Batch = Vec<Vec<u8>>;

/// Memory held by a batch: the allocations of its packet buffers (what it pins while
/// queued, whatever the packets' lengths).
pub fn batch_bytes<'a>(bufs: impl IntoIterator<Item = &'a Vec<u8>>) -> usize {
    bufs.into_iter().map(|b| b.capacity()).sum()
}

/// A byte budget for one actor inbox: the channel bounds messages, this bounds the bytes of
/// packet buffers they carry (ARCHITECTURE.md §2 rule 1). Senders [`reserve`] before
/// sending, the receiver [`release`]s the same figure when it takes the message. A sender
/// whose message does not fit drops it (counted), as a NIC drops when its ring is full:
/// never blocking, never growing. An empty inbox takes any one message, so progress never
/// depends on the size of a batch.
///
/// [`reserve`]: ByteBudget::reserve
/// [`release`]: ByteBudget::release
#[derive(Clone, Debug)]
pub struct ByteBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    queued: AtomicUsize,
    limit: usize,
    dropped: AtomicU64,
}

impl ByteBudget {
    pub fn new(limit: usize) -> Self {
        ByteBudget { inner: Arc::new(BudgetInner { queued: AtomicUsize::new(0), limit, dropped: AtomicU64::new(0) }) }
    }

    /// Take `bytes` of the budget for a message of `packets` packets about to be sent.
    /// False (the packets counted as dropped) when the inbox is over its budget.
    pub fn reserve(&self, bytes: usize, packets: usize) -> bool {
        let before = self.inner.queued.fetch_add(bytes, Relaxed);
        if before > 0 && before + bytes > self.inner.limit {
            self.inner.queued.fetch_sub(bytes, Relaxed);
            self.inner.dropped.fetch_add(packets as u64, Relaxed);
            return false;
        }
        true
    }

    /// The receiver took a message for which `bytes` were reserved (or a sender could not
    /// send it after all).
    pub fn release(&self, bytes: usize) {
        self.inner.queued.fetch_sub(bytes, Relaxed);
    }

    /// Bytes reserved by messages still queued.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Relaxed)
    }

    /// Packets dropped because the inbox was over its budget.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.inner.limit
    }
}

/// A socket's receive queue as the actor that fills it and the socket that drains it share
/// it (Linux's `sk_rmem_alloc` and `sk_err`): the bytes charged for what waits unread, which
/// the actor checks against the socket's bound before it queues (the bound is the actor's
/// to keep: the core only names the socket, `proto::ip::Deliver`), and one pending-error
/// slot. Invariant: only the filling actor charges, only the socket (or the actor, for what
/// it could not send) gives back, so the charge never exceeds the bound.
#[derive(Debug, Default)]
pub struct RecvQueue {
    queued: AtomicU64,
    error: AtomicU8,
    /// A wake-up for the error is in the socket's inbox, not yet taken: so an application
    /// that takes errors (`take_error`) without reading cannot make the actor queue one
    /// wake-up per ICMP error a peer sends.
    woken: AtomicBool,
}

/// A [`RecvQueue`] shared by a socket and its actor.
pub type SharedQueue = Arc<RecvQueue>;

impl RecvQueue {
    /// Charge `bytes` if that keeps the queue within `limit`; false (nothing charged)
    /// otherwise: the caller drops and counts what it was about to queue.
    pub fn try_charge(&self, bytes: u64, limit: u64) -> bool {
        if self.queued.load(Relaxed) + bytes > limit {
            return false;
        }
        self.queued.fetch_add(bytes, Relaxed);
        true
    }

    /// Give back what was charged for something read (or never queued).
    pub fn uncharge(&self, bytes: u64) {
        self.queued.fetch_sub(bytes, Relaxed);
    }

    /// Bytes charged for what waits unread.
    pub fn queued(&self) -> u64 {
        self.queued.load(Relaxed)
    }

    /// Set the pending error (non-zero); true when the reader needs waking, that is when
    /// no wake-up is already waiting in its inbox (one slot, at most one wake-up queued,
    /// however many errors arrive).
    ///
    /// `SeqCst` on `error` and `woken` (here, in [`Self::wake_taken`] and
    /// [`Self::take_error`]): the actor writes `error` then reads `woken`, the socket
    /// writes `woken` then reads `error` (a store-buffering pattern). With `Relaxed` a
    /// weakly ordered CPU may let each miss the other's write: the actor sees the old
    /// wake-up still queued, the socket an empty slot, and the error waits with no
    /// wake-up in the inbox until another one comes.
    pub fn set_error(&self, e: u8) -> bool {
        self.error.store(e, SeqCst);
        !self.woken.swap(true, SeqCst)
    }

    /// The socket took the wake-up from its inbox (before it looks at the slot).
    pub fn wake_taken(&self) {
        self.woken.store(false, SeqCst);
    }

    /// Take the pending error (0: none).
    pub fn take_error(&self) -> u8 {
        self.error.swap(0, SeqCst)
    }
}

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

/// Where a protocol core gets the buffers it builds packets in: the caller passes its pool
/// (`proto/` and `wire/` never hold one, ARCHITECTURE.md §1).
pub trait Buffers {
    /// A buffer for one MTU-sized packet.
    fn small(&self) -> Vec<u8>;
    /// A buffer for a super-segment (up to 64 KiB).
    fn large(&self) -> Vec<u8>;
    /// A buffer the core is done with (a packet it dropped or consumed).
    fn recycle(&self, b: Vec<u8>);
}

impl Buffers for Pool {
    fn small(&self) -> Vec<u8> {
        self.get()
    }
    fn large(&self) -> Vec<u8> {
        self.get_large()
    }
    fn recycle(&self, b: Vec<u8>) {
        self.put(b)
    }
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

/// Empty `Vec`s handed back by the thread that consumed their content to the threads that
/// fill them (ARCHITECTURE.md §2 rule 3): a batch's own allocation is made once and then
/// travels in a loop (dev-rx → ip → dev-rx, ip → tcp → ip, ip and tcp → dev-tx → ip and tcp)
/// instead of being allocated by one thread and freed by another for every message.
/// Bounded like [`Pool`]: at most `keep` vectors are held, each with capacity at most
/// `max_cap` items; anything else is freed.
pub struct Recycler<T> {
    tx: Sender<Vec<T>>,
    rx: Receiver<Vec<T>>,
    cap: usize,
    max_cap: usize,
}

impl<T> Clone for Recycler<T> {
    fn clone(&self) -> Self {
        Recycler { tx: self.tx.clone(), rx: self.rx.clone(), cap: self.cap, max_cap: self.max_cap }
    }
}

impl<T> Recycler<T> {
    /// Keep up to `keep` empty vectors; new ones get capacity `cap`, returned ones with more
    /// than `max_cap` are freed.
    pub fn new(keep: usize, cap: usize, max_cap: usize) -> Self {
        let (tx, rx) = bounded(keep);
        Recycler { tx, rx, cap, max_cap: max_cap.max(cap) }
    }

    /// An empty vector (a returned one when there is any).
    pub fn get(&self) -> Vec<T> {
        self.rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(self.cap))
    }

    /// A returned vector, if any (never allocates).
    pub fn take(&self) -> Option<Vec<T>> {
        self.rx.try_recv().ok()
    }

    /// Hand back a vector whose items were taken (any left are dropped here).
    pub fn put(&self, mut v: Vec<T>) {
        if v.capacity() == 0 || v.capacity() > self.max_cap {
            return;
        }
        v.clear();
        let _ = self.tx.try_send(v);
    }

    /// Vectors waiting to be reused.
    pub fn idle(&self) -> usize {
        self.rx.len()
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

    #[test]
    fn recycler_reuses_and_bounds() {
        let r: Recycler<u32> = Recycler::new(2, 8, 64);
        let mut v = r.get();
        assert_eq!(v.capacity(), 8);
        v.extend([1, 2, 3]);
        let ptr = v.as_ptr();
        r.put(v);
        let w = r.get();
        assert!(w.is_empty());
        assert_eq!(w.as_ptr(), ptr, "the same allocation comes back");
        r.put(w);
        r.put(Vec::with_capacity(8));
        r.put(Vec::with_capacity(8)); // over `keep`: freed
        assert_eq!(r.idle(), 2);
        let _ = (r.get(), r.get());
        r.put(Vec::with_capacity(1000)); // over `max_cap`: freed
        r.put(Vec::new()); // no allocation to keep
        assert_eq!(r.idle(), 0);
    }

    #[test]
    fn byte_budget_drops_beyond_its_limit() {
        let b = ByteBudget::new(1000);
        assert!(b.reserve(5000, 3), "an empty inbox takes any one message");
        assert!(!b.reserve(1, 1), "over budget: dropped");
        assert_eq!((b.queued(), b.dropped()), (5000, 1));
        b.release(5000);
        assert!(b.reserve(600, 1));
        assert!(!b.reserve(600, 2), "600 + 600 > 1000");
        assert!(b.reserve(400, 1));
        assert_eq!((b.queued(), b.dropped()), (1000, 3));
        let batch: Batch = vec![Vec::with_capacity(2048), Vec::with_capacity(100)];
        assert_eq!(batch_bytes(&batch), 2148);
    }

    #[test]
    fn recv_queue_charges_within_its_bound_and_keeps_one_error() {
        let q = RecvQueue::default();
        assert!(q.try_charge(600, 1000));
        assert!(!q.try_charge(600, 1000), "600 + 600 > 1000: nothing charged");
        assert_eq!(q.queued(), 600);
        assert!(q.try_charge(400, 1000), "exactly the bound");
        assert!(!q.try_charge(1, 1000));
        q.uncharge(600);
        assert_eq!(q.queued(), 400);
        assert!(!RecvQueue::default().try_charge(1001, 1000), "even an empty queue refuses more than its bound");
        assert_eq!(q.take_error(), 0);
        assert!(q.set_error(1), "the first error wakes a reader");
        assert!(!q.set_error(1), "a second one finds the wake-up queued");
        assert_eq!((q.take_error(), q.take_error()), (1, 0));
        // An application taking errors without reading: no second wake-up while the
        // first is still in the inbox, however many errors come and are taken.
        for _ in 0..100 {
            assert!(!q.set_error(1));
            assert_eq!(q.take_error(), 1);
        }
        q.wake_taken();
        assert!(q.set_error(1), "once the reader took its wake-up, the next error wakes it");
    }
}
