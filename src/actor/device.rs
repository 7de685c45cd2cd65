//! dev-rx and dev-tx: the only readers and writers of the device.
//!
//! Each runs under a [`Watch`]: when it ends with an error (a failed read, e.g. the TUN
//! device was deleted) or a panic while the stack is not stopping, the stack's [`DeviceHealth`] is marked failed with the cause and the engine
//! resets every open connection, so no socket waits on a device that will never deliver.

use super::ip::IpMsg;
use super::tcp::TcpMsg;
use super::{DeviceHealth, StackStats};
use crate::buf::{batch_bytes, Batch, ByteBudget, Pool, Recycler};
use crate::device::{DevRx, DevTx};
use crossbeam_channel::{Receiver, Sender};
use slog::{error, Logger};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Runs one device actor and reports its end.
pub struct Watch {
    pub health: Arc<DeviceHealth>,
    pub tcp: Sender<TcpMsg>,
    pub log: Logger,
}

impl Watch {
    /// Run `f` (a device actor, `Err(cause)` when it failed); if it fails or panics while
    /// the stack is not stopping, fail the device and reset the engine's connections. A
    /// clean end (stopped, or the device reports it is gone, as a pair whose other end was
    /// dropped) is no failure: the connections then time out as after a pulled cable.
    pub fn run(self, half: &str, f: impl FnOnce() -> Result<(), String>) {
        let cause = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(Ok(())) => return,
            Ok(Err(why)) => why,
            Err(_) => "the thread panicked".to_string(),
        };
        if self.health.fail(half, &cause) {
            error!(self.log, "device stopped; every socket fails"; "half" => half, "cause" => %cause);
            // RSTs for the peers (they still go out if only the other half died); the
            // sockets are woken by the health's alarm whatever happens here.
            let _ = self.tcp.send_timeout(TcpMsg::AbortAll, std::time::Duration::from_secs(1));
        }
    }
}

/// Read batches from the device and hand them to the ip actor until stopped; `Err` with the
/// cause when a read fails. A batch that would take the ip inbox over its byte budget is
/// dropped and counted (a full NIC ring). Batch vectors come from `batches`, to which the
/// ip actor hands them back empty. `batch` packets at most per batch; the device may spin
/// up to `spin` on an empty device before it blocks (`DevRx::set_spin`).
pub fn run_rx(
    mut dev: Box<dyn DevRx>,
    (pool, batches): (Pool, Recycler<Vec<u8>>),
    ip: (Sender<IpMsg>, ByteBudget),
    (batch, spin): (usize, std::time::Duration),
    log: Logger,
) -> Result<(), String> {
    let (ip, budget) = ip;
    dev.set_spin(spin);
    let mut b: Batch = batches.get();
    loop {
        match dev.recv_batch(&pool, &mut b, batch) {
            Ok(true) => {
                let bytes = batch_bytes(&b);
                if !budget.reserve(bytes, b.len()) {
                    pool.put_batch(&mut b);
                    continue;
                }
                let b = std::mem::replace(&mut b, batches.get());
                if ip.send(IpMsg::Rx(b)).is_err() {
                    return Ok(()); // the stack is stopping
                }
            }
            Ok(false) => return Ok(()),
            Err(e) => {
                error!(log, "device read failed; dev-rx stops"; "error" => %e);
                return Err(format!("read failed: {e}"));
            }
        }
    }
}

/// Write batches to the device until every sender is gone (the stack stopped). Never fails:
/// a write error is a counted drop (`DevTx::send_batch`); only a panic ends it early.
/// Emptied batch vectors go back to the ip and tcp actors through `batches`.
pub fn run_tx(
    mut dev: Box<dyn DevTx>,
    (inbox, batches): (Receiver<Batch>, Recycler<Vec<u8>>),
    pool: Pool,
    stats: Arc<StackStats>,
    spin: std::time::Duration,
) -> Result<(), String> {
    while let Some(mut b) = super::spin_recv(&inbox, spin).or_else(|| inbox.recv().ok()) {
        let dropped = dev.send_batch(&mut b, &pool);
        batches.put(b);
        // Coalesce: whatever else is queued goes out before we block again.
        let mut extra = 0;
        while let Ok(mut more) = inbox.try_recv() {
            extra += dev.send_batch(&mut more, &pool);
            batches.put(more);
        }
        if dropped + extra > 0 {
            stats.dev_tx_dropped.fetch_add((dropped + extra) as u64, Relaxed);
        }
    }
    Ok(())
}
