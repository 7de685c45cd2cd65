//! Regression tests for the defects found by the RFC review (issue 6, part 2). Each test is
//! named `review_N_…` after the item of the review list it covers and failed before its fix.

use super::*;

/// The endpoint's current deadline for `h.conn`, as a lazy wheel would learn it: firing the
/// connection's timer early only re-reports the deadline. `None` if the TCB did real work
/// instead (its deadline was already due).
fn reported_deadline(h: &mut H) -> Option<Instant> {
    h.sync_timers();
    h.ep.handle_timeout(h.now, h.conn);
    let mut d = None;
    while let Some((c, t)) = h.ep.poll_timer_update() {
        if c == h.conn {
            d = t;
        }
    }
    d
}

// ----------------------------------------------------------------------------------------
// 1. Keep-alive timer on a busy connection
// ----------------------------------------------------------------------------------------

#[test]
fn review_1_keepalive_rearms_in_the_future_when_busy() {
    let cfg = TcpConfig { keepalive: Some(Duration::from_secs(10)), max_retries: 30, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1000), ..Default::default() });
    h.app(AppCommand::Write(vec![1; 100]));
    h.out();
    // Nothing is ever acknowledged: retransmissions at 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 25.4,
    // 51.0 s. The keep-alive timer fires at 10 s on a connection that is not idle.
    let mut rexmits = 0;
    let start = h.now;
    while h.now - start < Duration::from_secs(60) {
        let waited = h.run_timer(Duration::from_secs(60));
        if waited.is_zero() {
            break;
        }
        rexmits += h.out().iter().filter(|s| s.1.len() == 100).count();
        // Whatever fired, the connection's next deadline lies in the future (Linux re-arms
        // the keep-alive timer at now + idle): a due deadline would make the timer and
        // tcp threads ping-pong.
        let d = reported_deadline(&mut h);
        assert!(d.is_some_and(|d| d > h.now), "deadline {d:?} not after now at {:?}", h.now - start);
    }
    assert_eq!(rexmits, 8, "the retransmission timer keeps running");
}
