//! The ip actor: runs [`IpCore`] on batches from dev-rx and commands from UDP and raw sockets,
//! and moves what it produces: packets to dev-tx, segments to the tcp engine, datagrams to
//! socket inboxes. No protocol logic lives here.

use super::tcp::{SegmentIn, TcpMsg};
use crate::buf::{batch_bytes, Batch, ByteBudget, Pool};
use crate::proto::ip::{Deliver, IpCore, IpOutput, UdpQueue};
use crate::proto::raw::{RawQueue, RawSockId};
use crate::proto::udp::UdpSockId;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use slog::{debug, Logger};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// What a UDP socket receives.
pub enum UdpEvent {
    /// Payload is `buf[start..end]` (the packet buffer itself, moved, not copied).
    Datagram { from: SocketAddr, buf: Vec<u8>, start: usize, end: usize },
    /// An ICMP-reported error is waiting in the socket's shared slot (`UdpShared::error`).
    ErrorPending,
}

pub type BindReply = Sender<io::Result<(UdpSockId, SocketAddr)>>;

/// What a raw ICMP socket receives: an ICMP message (from its type byte on) sent by `from`
/// with `hop_limit` (TTL), already charged to the socket's queue (`RawShared::queued`).
pub struct RawEvent {
    pub from: IpAddr,
    pub hop_limit: u8,
    pub msg: Vec<u8>,
}

/// The socket's id and echo identifier, or why it could not be opened.
pub type RawBindReply = Sender<io::Result<(RawSockId, u16)>>;

pub enum IpMsg {
    Rx(Batch),
    /// IP packets from the tcp engine, to be framed by the link layer (TAP only).
    Tx(Batch),
    UdpBind {
        addr: SocketAddr,
        inbox: Sender<UdpEvent>,
        queued: UdpQueue,
        reply: BindReply,
    },
    UdpConnect {
        id: UdpSockId,
        remote: Option<SocketAddr>,
    },
    UdpSend {
        from: SocketAddr,
        to: SocketAddr,
        data: Vec<u8>,
    },
    UdpClose(UdpSockId),
    /// Open a raw ICMP (`v6`: ICMPv6) socket with echo identifier `ident` (0: any free one).
    RawBind {
        v6: bool,
        ident: u16,
        inbox: Sender<RawEvent>,
        queued: RawQueue,
        reply: RawBindReply,
    },
    RawSend {
        id: RawSockId,
        to: IpAddr,
        msg: Vec<u8>,
    },
    RawClose(RawSockId),
    Shutdown,
}

/// Most messages drained before flushing outputs.
const DRAIN: usize = 64;

/// `inbox` and `tcp` come with their byte budgets (`buf::ByteBudget`): a batch from
/// dev-rx gives its bytes back when taken; segments for the engine are dropped (counted)
/// when its inbox is over budget, so a slow engine cannot make packets pile up.
#[allow(clippy::too_many_arguments)] // the actor's channels and parts, each used once
pub fn run(
    mut core: IpCore,
    inbox: (Receiver<IpMsg>, ByteBudget),
    devtx: Sender<Batch>,
    tcp: (Sender<TcpMsg>, ByteBudget),
    (pool, recycle): (Pool, super::Recyclers),
    spin: std::time::Duration,
    log: Logger,
    mut link: Option<super::link::LinkShell>,
) {
    let (inbox, budget) = inbox;
    let mut unreachable = Vec::new();
    let (tcp, tcp_budget) = tcp;
    let mut out = IpOutput { tx: recycle.tx.get(), ..IpOutput::default() };
    let mut udp: HashMap<UdpSockId, Sender<UdpEvent>> = HashMap::new();
    let mut raw: HashMap<RawSockId, Sender<RawEvent>> = HashMap::new();
    let mut segs: Vec<SegmentIn> = recycle.segs.get();
    loop {
        let now = Instant::now();
        let wait = crate::proto::ip::idle_timeout(&core, now);
        let wait = match link.as_ref().and_then(|l| l.poll_timeout()) {
            Some(t) => Some(wait.map_or(t.saturating_duration_since(now), |w| w.min(t.saturating_duration_since(now)))),
            None => wait,
        };
        let msg = match (super::spin_recv(&inbox, spin), wait) {
            (Some(m), _) => Ok(m),
            (None, Some(d)) => inbox.recv_timeout(d),
            (None, None) => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let first = match msg {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = Instant::now();
        core.handle_timeout(now);
        if let Some(l) = link.as_mut() {
            l.handle_timeout(now);
        }
        let mut next = first;
        let mut n = 0;
        while let Some(m) = next.take() {
            match m {
                IpMsg::Rx(mut batch) => {
                    budget.release(batch_bytes(&batch));
                    for p in batch.drain(..) {
                        let p = match link.as_mut() {
                            Some(l) => match l.rx(now, p, &pool) {
                                Some(p) => p,
                                None => continue,
                            },
                            None => p,
                        };
                        core.handle_packet(now, p, &pool, &mut out);
                    }
                    recycle.rx.put(batch);
                }
                IpMsg::Tx(mut batch) => match link.as_mut() {
                    Some(l) => l.send(now, &mut batch),
                    None => {
                        let _ = devtx.send(batch);
                    }
                },
                IpMsg::UdpBind { addr, inbox, queued, reply } => {
                    let r = core.udp.bind(addr);
                    if let Ok((id, local)) = &r {
                        core.udp_register_queue(*id, queued);
                        udp.insert(*id, inbox);
                        debug!(log, "udp bind"; "local" => %local);
                    }
                    let _ = reply.try_send(r);
                }
                IpMsg::UdpConnect { id, remote } => core.udp.connect(id, remote),
                IpMsg::UdpSend { from, to, data } => {
                    let _ = core.send_udp(from, to, &data, &pool, &mut out);
                }
                IpMsg::UdpClose(id) => {
                    core.udp_close(id);
                    udp.remove(&id);
                }
                IpMsg::RawBind { v6, ident, inbox, queued, reply } => {
                    let r = core.raw.bind(v6, ident, queued);
                    if let Ok((id, ident)) = &r {
                        raw.insert(*id, inbox);
                        debug!(log, "raw icmp bind"; "v6" => v6, "ident" => ident);
                    }
                    let _ = reply.try_send(r);
                }
                IpMsg::RawSend { id, to, msg } => {
                    // The socket checked the message (`check_raw_send`); what fails here
                    // (a socket closed meanwhile) has no one left to tell.
                    let _ = core.send_raw(id, to, &msg, &pool, &mut out);
                }
                IpMsg::RawClose(id) => {
                    core.raw.close(id);
                    raw.remove(&id);
                }
                IpMsg::Shutdown => return,
            }
            n += 1;
            if n < DRAIN {
                next = inbox.try_recv().ok();
            }
        }
        // Flush: one batch per destination.
        if core.config().tx_trailer {
            for p in out.tx.iter_mut() {
                p.push(crate::wire::gso::TX_TRAILER_PLAIN);
            }
        }
        if let Some(l) = link.as_mut() {
            l.send(now, &mut out.tx);
            l.drain(&mut out.tx);
            l.unreachable(&mut unreachable);
            if !unreachable.is_empty() {
                let _ = tcp.try_send(TcpMsg::Unreachable(std::mem::take(&mut unreachable)));
            }
        }
        if !out.tx.is_empty() && devtx.send(std::mem::replace(&mut out.tx, recycle.tx.get())).is_err() {
            return;
        }
        for d in out.deliver.drain(..) {
            match d {
                Deliver::Tcp { src, dst, buf, start, end, csum_ok } => {
                    segs.push(SegmentIn { src, dst, buf, start, end, csum_ok })
                }
                Deliver::TcpIcmp { local, remote, seq, class } => {
                    let _ = tcp.send(TcpMsg::Icmp { local, remote, seq, class });
                }
                Deliver::Udp { sock, from, buf, start, end, .. } => {
                    if let Some(tx) = udp.get(&sock) {
                        if let Err(e) = tx.send(UdpEvent::Datagram { from, buf, start, end }) {
                            if let UdpEvent::Datagram { buf, .. } = e.into_inner() {
                                pool.put(buf);
                            }
                        }
                    } else {
                        pool.put(buf);
                    }
                }
                Deliver::Raw { sock, from, hop_limit, msg } => {
                    // A closed socket's inbox is gone with it (nothing to give back: a copy).
                    if let Some(tx) = raw.get(&sock) {
                        let _ = tx.send(RawEvent { from, hop_limit, msg });
                    }
                }
                Deliver::UdpError { sock } => {
                    if let Some(tx) = udp.get(&sock) {
                        let _ = tx.send(UdpEvent::ErrorPending);
                    }
                }
            }
        }
        if !segs.is_empty() {
            let bytes = batch_bytes(segs.iter().map(|s| &s.buf));
            if !tcp_budget.reserve(bytes, segs.len()) {
                for s in segs.drain(..) {
                    pool.put(s.buf);
                }
            } else if tcp.send(TcpMsg::Segments(std::mem::replace(&mut segs, recycle.segs.get()))).is_err() {
                return;
            }
        }
    }
}
