//! dev-rx and dev-tx: the only readers and writers of the device.

use super::ip::IpMsg;
use super::StackStats;
use crate::buf::{batch_bytes, Batch, ByteBudget, Pool};
use crate::device::{DevRx, DevTx};
use crossbeam_channel::{Receiver, Sender};
use slog::{error, Logger};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Read batches from the device and hand them to the ip actor until stopped. A batch that
/// would take the ip inbox over its byte budget is dropped and counted (a full NIC ring).
pub fn run_rx(mut dev: Box<dyn DevRx>, pool: Pool, ip: (Sender<IpMsg>, ByteBudget), batch: usize, log: Logger) {
    let (ip, budget) = ip;
    loop {
        let mut b: Batch = Vec::with_capacity(batch);
        match dev.recv_batch(&pool, &mut b, batch) {
            Ok(true) => {
                let bytes = batch_bytes(&b);
                if !budget.reserve(bytes, b.len()) {
                    pool.put_batch(&mut b);
                    continue;
                }
                if ip.send(IpMsg::Rx(b)).is_err() {
                    return;
                }
            }
            Ok(false) => return,
            Err(e) => {
                error!(log, "device read failed; dev-rx stops"; "error" => %e);
                return;
            }
        }
    }
}

/// Write batches to the device until every sender is gone.
pub fn run_tx(mut dev: Box<dyn DevTx>, inbox: Receiver<Batch>, pool: Pool, stats: Arc<StackStats>) {
    while let Ok(mut b) = inbox.recv() {
        let dropped = dev.send_batch(&mut b, &pool);
        // Coalesce: whatever else is queued goes out before we block again.
        let mut extra = 0;
        while let Ok(mut more) = inbox.try_recv() {
            extra += dev.send_batch(&mut more, &pool);
        }
        if dropped + extra > 0 {
            stats.dev_tx_dropped.fetch_add((dropped + extra) as u64, Relaxed);
        }
    }
}
