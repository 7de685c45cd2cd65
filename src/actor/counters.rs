//! The cores' counters as their actors last published them, for any thread to read.
//!
//! A core keeps plain `u64` counters (`proto::Counters`: no atomics inside `proto/`); the
//! actor that runs it stores them here, one relaxed atomic per field, after each batch, and
//! `StackHandle::stats`, the tests and the benches read them. A reader may see one batch's
//! value of one counter beside the next batch's of another, as with Linux's per-CPU SNMP
//! counters. Invariant: `load` after `store(s)` gives back `s` (no field is lost).

use crate::proto::ip::IpStats;
use crate::proto::Counters;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One `AtomicU64` per field of `T`, in declaration order.
pub struct Published<T> {
    cells: Box<[AtomicU64]>,
    _of: PhantomData<fn() -> T>,
}

impl<T: Counters> Default for Published<T> {
    fn default() -> Self {
        Published { cells: T::NAMES.iter().map(|_| AtomicU64::new(0)).collect(), _of: PhantomData }
    }
}

impl<T: Counters> Published<T> {
    /// Publish the core's counters (its actor, after each batch).
    pub fn store(&self, s: &T) {
        let mut cells = self.cells.iter();
        s.each(&mut |v| cells.next().expect("one cell per field").store(v, Relaxed));
    }

    /// The counters as last published.
    pub fn load(&self) -> T {
        let mut cells = self.cells.iter();
        T::from_fn(&mut || cells.next().expect("one cell per field").load(Relaxed))
    }

    /// Name/value pairs, for printing.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.load().snapshot()
    }
}

/// The TCP engine's counters.
pub type TcpCounters = Published<crate::proto::tcp::TcpStats>;
/// The link layer's counters (TAP only).
pub type LinkCounters = Published<crate::proto::link::LinkStats>;

/// The IP layer's counters: the ip core's, plus `tx_no_route`, which socket calls count as
/// they consult the routing table in their own threads (`route::RouteView`).
#[derive(Default)]
pub struct IpCounters {
    core: Published<IpStats>,
    pub tx_no_route: AtomicU64,
}

impl IpCounters {
    /// Publish the ip core's counters (the ip actor, after each batch).
    pub fn store(&self, s: &IpStats) {
        self.core.store(s);
    }

    pub fn load(&self) -> IpStats {
        IpStats { tx_no_route: self.tx_no_route.load(Relaxed), ..self.core.load() }
    }

    /// Name/value pairs, for printing.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.load().snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct values in every field, stored and loaded back.
    fn round_trip<T: Counters + PartialEq + std::fmt::Debug>() {
        let c = Published::<T>::default();
        assert_eq!(c.load(), T::default());
        let mut i = 0;
        let s = T::from_fn(&mut || {
            i += 1;
            i
        });
        c.store(&s);
        assert_eq!(c.load(), s);
        let snap = c.snapshot();
        assert_eq!(snap.len(), T::NAMES.len());
        assert!(snap.iter().enumerate().all(|(k, (n, v))| *n == T::NAMES[k] && *v == k as u64 + 1));
    }

    #[test]
    fn every_field_published_is_given_back() {
        round_trip::<crate::proto::tcp::TcpStats>();
        round_trip::<IpStats>();
        round_trip::<crate::proto::link::LinkStats>();
    }

    #[test]
    fn ip_counters_add_the_sockets_no_route_count() {
        let c = IpCounters::default();
        c.tx_no_route.fetch_add(2, Relaxed);
        c.store(&IpStats { rx_packets: 5, tx_no_route: 9, ..IpStats::default() });
        let s = c.load();
        assert_eq!((s.rx_packets, s.tx_no_route), (5, 2), "the core never counts a missing route");
    }
}
