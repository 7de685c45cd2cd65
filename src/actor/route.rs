//! The routing table that socket calls consult, published by its owner.
//!
//! `connect` and `send_to` must fail at once with `NetworkUnreachable` when no route
//! matches (as Linux's do), so the decision ([`crate::proto::routing::next_hop`]) runs in
//! the caller's thread on a snapshot of the table. The snapshot is written only by the
//! table's owner: on TUN it is made once from the configuration and never changes; on TAP
//! the ip actor's link layer publishes the link core's table whenever it changed (routes
//! from router advertisements come and expire), see `link::LinkShell::publish_routes`.
//! Readers take the current `Arc` under a read lock held for a pointer copy.

use super::counters::IpCounters;
use crate::proto::link::route::RouteTable;
use crate::proto::routing;
use parking_lot::RwLock;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

pub struct RouteView {
    table: RwLock<Arc<RouteTable>>,
    /// The version of the table last published (written only by its owner).
    published: std::sync::atomic::AtomicU64,
    /// `tx_no_route` counts the socket calls refused for want of a route.
    stats: Arc<IpCounters>,
}

impl RouteView {
    pub fn new(table: RouteTable, stats: Arc<IpCounters>) -> Arc<RouteView> {
        let published = std::sync::atomic::AtomicU64::new(table.version());
        Arc::new(RouteView { table: RwLock::new(Arc::new(table)), published, stats })
    }

    /// The current table.
    pub fn snapshot(&self) -> Arc<RouteTable> {
        self.table.read().clone()
    }

    /// Replace the table by `t` if it changed since the last call (a version compare; a
    /// copy of a few dozen routes when it did).
    pub fn publish(&self, t: &RouteTable) {
        if self.published.swap(t.version(), Relaxed) != t.version() {
            *self.table.write() = Arc::new(t.clone());
        }
    }

    /// The next hop for a packet to `dst`, or `NetworkUnreachable` (counted in the IP
    /// layer's `tx_no_route`).
    pub fn check(&self, dst: IpAddr) -> io::Result<IpAddr> {
        let r = routing::next_hop(&self.snapshot(), Instant::now(), dst);
        if r.is_err() {
            self.stats.tx_no_route.fetch_add(1, Relaxed);
        }
        r
    }
}
