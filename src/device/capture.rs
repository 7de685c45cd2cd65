//! Packet capture to a pcap file (the bins' `--pcap FILE`): what the stack received and sent,
//! in a file that `tcpdump -r` and Wireshark open.
//!
//! [`CaptureDevice`] wraps a [`Device`] and records each packet as it crosses the wrapper:
//! on receive after the inner device delivered it, on send before the inner device takes it.
//! To record what the stack saw *after* a fault injector ([`super::fault::FaultDevice`]) on
//! both paths, wrap twice around the injector, sharing one [`Capture`]: the outer wrapper
//! records receive only and the inner one send only ([`Capture::wrap_around`]).
//!
//! Invariants:
//! * The file's link type follows the device's medium: `LINKTYPE_RAW` (IPv4/IPv6 packets) on
//!   TUN and pair devices, `LINKTYPE_ETHERNET` on TAP.
//! * Packets are recorded without the device's trailers (the receive metadata byte, the
//!   transmit marker and `virtio_net_hdr`): a GSO super-segment is recorded whole, as
//!   `tcpdump` shows it on an offloading NIC, with the partial checksum the kernel completes.
//! * Capture never changes, delays beyond the write, or drops a packet; a write error stops
//!   the capture (counted in [`Capture::errors`]) and the stack runs on. (The bins restore
//!   SIGPIPE's default action, so in a bin a capture written into a pipe whose reader left
//!   ends the bin, as it would `tcpdump -w -`.)

use super::{DevRx, DevTx, Device, Medium, StopHandle};
use crate::buf::{Batch, Pool};
use crate::wire::gso::TX_TRAILER_VNET;
use parking_lot::Mutex;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest packet recorded whole (as tcpdump's default snap length).
const SNAPLEN: u32 = 262_144;
/// Length of a `virtio_net_hdr` before the transmit marker (`wire::gso`).
const VNET_HDR_LEN: usize = 10;

/// A pcap file shared by the receive and transmit halves (and by both wrappers of
/// [`Capture::wrap_around`]).
pub struct Capture {
    writer: Mutex<Option<PcapWriter<Sink>>>,
    /// The file under `writer`, reachable for [`Capture::flush`] (PcapWriter keeps its writer).
    file: Arc<Mutex<BufWriter<File>>>,
    /// Packets written.
    pub packets: AtomicU64,
    /// Write errors (the first one ends the capture).
    pub errors: AtomicU64,
}

impl Capture {
    /// Create (truncate) `path` and write the pcap header for `medium`.
    pub fn create(path: &std::path::Path, medium: Medium) -> io::Result<Arc<Capture>> {
        let file = File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create pcap file {}: {e}", path.display())))?;
        let datalink = match medium {
            Medium::Ip => DataLink::RAW,
            Medium::Ethernet => DataLink::ETHERNET,
        };
        let header = PcapHeader { datalink, snaplen: SNAPLEN, ..PcapHeader::default() };
        let file = Arc::new(Mutex::new(BufWriter::new(file)));
        let writer = PcapWriter::with_header(Sink(file.clone()), header).map_err(io::Error::other)?;
        Ok(Arc::new(Capture {
            writer: Mutex::new(Some(writer)),
            file,
            packets: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }))
    }

    /// `dev` with this capture around it: receive recorded outside, send recorded inside
    /// `middle` (a fault injector, say), so both paths are recorded after the injector.
    pub fn wrap_around(
        self: &Arc<Capture>,
        dev: Box<dyn Device>,
        middle: impl FnOnce(Box<dyn Device>) -> io::Result<Box<dyn Device>>,
    ) -> io::Result<Box<dyn Device>> {
        let inner = Box::new(CaptureDevice { inner: dev, capture: self.clone(), rx: false, tx: true });
        let mid = middle(inner)?;
        Ok(Box::new(CaptureDevice { inner: mid, capture: self.clone(), rx: true, tx: false }))
    }

    /// Record each packet of `pkts`, each `trim(p)` bytes long.
    fn record<'a>(&self, pkts: impl IntoIterator<Item = &'a Vec<u8>>, trim: impl Fn(&[u8]) -> usize) {
        let mut guard = self.writer.lock();
        let Some(w) = guard.as_mut() else { return };
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut n = 0;
        for p in pkts {
            let data = &p[..trim(p).min(p.len())];
            if w.write_packet(&PcapPacket::new(ts, data.len() as u32, data)).is_err() {
                self.errors.fetch_add(1, Relaxed);
                *guard = None;
                return;
            }
            n += 1;
        }
        self.packets.fetch_add(n, Relaxed);
        // Each batch reaches the file at once, so `tcpdump -r` of a running capture is current.
        if n > 0 && self.file.lock().flush().is_err() {
            self.errors.fetch_add(1, Relaxed);
            *guard = None;
        }
    }

    /// Write what is buffered to the file.
    pub fn flush(&self) -> io::Result<()> {
        self.file.lock().flush()
    }
}

/// The pcap writer's output: the shared buffered file (locked only under `Capture::writer`
/// or by `flush`, so never contended for long).
struct Sink(Arc<Mutex<BufWriter<File>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().flush()
    }
}

/// Length of a received packet without the one-byte metadata trailer, when there is one.
fn rx_len(trailer: bool) -> impl Fn(&[u8]) -> usize {
    move |p| if trailer { p.len().saturating_sub(1) } else { p.len() }
}

/// Length of a packet for the wire without its transmit trailer (`wire::gso`).
fn tx_len(trailer: bool) -> impl Fn(&[u8]) -> usize {
    move |p| match (trailer, p.last()) {
        (false, _) => p.len(),
        (true, Some(&TX_TRAILER_VNET)) => p.len().saturating_sub(1 + VNET_HDR_LEN),
        (true, _) => p.len().saturating_sub(1),
    }
}

/// A device whose packets are recorded to a [`Capture`] (receive, send, or both).
pub struct CaptureDevice {
    inner: Box<dyn Device>,
    capture: Arc<Capture>,
    rx: bool,
    tx: bool,
}

impl CaptureDevice {
    /// Record both directions of `inner` to `capture`.
    pub fn new(inner: Box<dyn Device>, capture: Arc<Capture>) -> CaptureDevice {
        CaptureDevice { inner, capture, rx: true, tx: true }
    }
}

impl Device for CaptureDevice {
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn rx_trailer(&self) -> bool {
        self.inner.rx_trailer()
    }
    fn tx_trailer(&self) -> bool {
        self.inner.tx_trailer()
    }
    fn medium(&self) -> Medium {
        self.inner.medium()
    }
    fn split(self: Box<Self>) -> io::Result<(Box<dyn DevRx>, Box<dyn DevTx>)> {
        let (rx_trailer, tx_trailer) = (self.inner.rx_trailer(), self.inner.tx_trailer());
        let (rx, tx) = self.inner.split()?;
        let rx: Box<dyn DevRx> =
            if self.rx { Box::new(CaptureRx { inner: rx, capture: self.capture.clone(), rx_trailer }) } else { rx };
        let tx: Box<dyn DevTx> =
            if self.tx { Box::new(CaptureTx { inner: tx, capture: self.capture, tx_trailer }) } else { tx };
        Ok((rx, tx))
    }
}

struct CaptureRx {
    inner: Box<dyn DevRx>,
    capture: Arc<Capture>,
    rx_trailer: bool,
}

impl DevRx for CaptureRx {
    fn recv_batch(&mut self, pool: &Pool, out: &mut Batch, max: usize) -> io::Result<bool> {
        let before = out.len();
        let r = self.inner.recv_batch(pool, out, max);
        self.capture.record(&out[before.min(out.len())..], rx_len(self.rx_trailer));
        r
    }
    fn stop_handle(&self) -> StopHandle {
        self.inner.stop_handle()
    }
    fn set_spin(&mut self, spin: std::time::Duration) {
        self.inner.set_spin(spin);
    }
}

struct CaptureTx {
    inner: Box<dyn DevTx>,
    capture: Arc<Capture>,
    tx_trailer: bool,
}

impl DevTx for CaptureTx {
    fn send_batch(&mut self, batch: &mut Batch, pool: &Pool) -> usize {
        self.capture.record(batch.iter(), tx_len(self.tx_trailer));
        self.inner.send_batch(batch, pool)
    }
}

impl Drop for CaptureTx {
    fn drop(&mut self) {
        let _ = self.capture.flush();
    }
}

impl Drop for CaptureRx {
    fn drop(&mut self) {
        let _ = self.capture.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_are_not_recorded() {
        assert_eq!(rx_len(true)(&[1, 2, 3, 1]), 3);
        assert_eq!(rx_len(false)(&[1, 2, 3]), 3);
        let mut vnet = vec![9u8; 20];
        vnet.extend_from_slice(&[0; VNET_HDR_LEN]);
        vnet.push(TX_TRAILER_VNET);
        assert_eq!(tx_len(true)(&vnet), 20);
        assert_eq!(tx_len(true)(&[7, 7, 0]), 2);
        assert_eq!(tx_len(true)(&[]), 0);
        assert_eq!(tx_len(false)(&[7, 7, 0]), 3);
    }
}
