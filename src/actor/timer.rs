//! The timer actor: a hashed wheel that turns deadlines into messages for the tcp engine.
//!
//! It never blocks on the engine's inbox: firings that do not fit are kept and retried a
//! millisecond later (this breaks the tcp → timer → tcp cycle, ARCHITECTURE.md §2 rule 2).

use super::tcp::TcpMsg;
use crate::proto::timer::TimerWheel;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::time::{Duration, Instant};

pub enum TimerMsg {
    /// Fire `(key, at)` pairs at their times.
    Schedule(Vec<(u64, Instant)>),
    Shutdown,
}

/// Wheel granularity: 1 ms ticks, 4096 slots (a rotation of about 4 s).
const TICK: Duration = Duration::from_millis(1);
const SLOTS: usize = 4096;

pub fn run(inbox: Receiver<TimerMsg>, tcp: Sender<TcpMsg>) {
    let mut wheel = TimerWheel::new(Instant::now(), TICK, SLOTS);
    let mut pending: Vec<(u64, Instant)> = Vec::new();
    loop {
        let now = Instant::now();
        let wait = if !pending.is_empty() {
            Some(TICK)
        } else {
            wheel.next_deadline().map(|d| d.saturating_duration_since(now))
        };
        let msg = match wait {
            Some(d) => inbox.recv_timeout(d),
            None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(TimerMsg::Schedule(v)) => {
                for (k, at) in v {
                    wheel.schedule(k, at);
                }
                while let Ok(m) = inbox.try_recv() {
                    match m {
                        TimerMsg::Schedule(v) => v.into_iter().for_each(|(k, at)| wheel.schedule(k, at)),
                        TimerMsg::Shutdown => return,
                    }
                }
            }
            Ok(TimerMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        wheel.advance(Instant::now(), &mut pending);
        if !pending.is_empty() {
            match tcp.try_send(TcpMsg::Timer(std::mem::take(&mut pending))) {
                Ok(()) => {}
                Err(TrySendError::Full(TcpMsg::Timer(v))) => pending = v,
                Err(_) => return,
            }
        }
    }
}
