//! Issue 7: receive memory charged in bytes held (`rcvqueue`), not in payload.

use super::*;
use crate::proto::tcp::rcvqueue::DATA_OVERHEAD;

fn data_of(evs: Vec<SocketEvent>) -> Vec<Vec<u8>> {
    evs.into_iter().filter_map(|e| if let SocketEvent::Data(d) = e { Some(d) } else { None }).collect()
}

/// A run of one-byte segments, each in its own batch, to an application that is behind:
/// they coalesce into one chunk, and the window the receiver advertises is closed by what
/// that costs (payload plus one event's overhead), and reopens fully once it is read.
#[test]
fn tiny_segments_close_the_window_by_their_charged_size() {
    let buf = 8192;
    let cfg = TcpConfig { recv_buf: buf, ..plain() };
    let (mut h, _) = active(cfg, TcpOptions { mss: Some(1460), ..Default::default() });
    h.send("A", &[9; 4096]);
    h.out();
    assert_eq!(data_of(h.conn_evs()), vec![vec![9; 4096]], "the reader was caught up: handed out at once");
    for i in 0..2000u32 {
        h.send("A", &[i as u8]);
        h.out();
        assert!(data_of(h.conn_evs()).is_empty(), "held back while the first chunk is unread");
    }
    h.advance(ms(200));
    let o = h.out();
    assert_eq!(o.last().map(|s| s.0.window as usize), Some(buf - 4096 - 2000), "the right edge never moves left");
    // The application reads the first chunk: the window update shows what the 2,000 tiny
    // segments held back cost: their bytes and one event, not 2,000 events.
    h.app(AppCommand::ReadCredit(4096));
    let o = h.out();
    assert_eq!(o.len(), 1, "a window update");
    assert_eq!(o[0].0.window as usize, buf - 2000 - DATA_OVERHEAD);
    let got = data_of(h.conn_evs());
    assert_eq!(got, vec![(0..2000u32).map(|i| i as u8).collect::<Vec<u8>>()], "one chunk, exact");
    assert_eq!(got[0].capacity(), 2000, "trimmed to what it holds");
    h.app(AppCommand::ReadCredit(2000));
    assert!(h.out().is_empty(), "the window was open: no update needed (M-39)");
    // Everything read: the next ACK offers the whole buffer less the new byte's charge.
    h.send("A", b"z");
    h.advance(ms(200));
    let o = h.out();
    assert_eq!(o.last().map(|s| s.0.window as usize), Some(buf - 1 - DATA_OVERHEAD));
    assert_eq!(data_of(h.conn_evs()), vec![b"z".to_vec()]);
}

/// Data held back reaches the application before the EOF, even when it has not read
/// what it was given before (nothing acknowledged is lost).
#[test]
fn held_back_data_precedes_eof() {
    let (mut h, _) = active(plain(), TcpOptions { mss: Some(1460), ..Default::default() });
    h.send("A", b"first");
    h.out();
    assert_eq!(data_of(h.conn_evs()), vec![b"first".to_vec()]);
    h.send("A", b"sec");
    h.out();
    h.send("AF", b"ond");
    h.out();
    assert_eq!(h.conn_evs(), vec![SocketEvent::Data(b"second".to_vec()), SocketEvent::Eof]);
}

/// Receive-buffer auto-tuning (`rcvbuf`) opens the window past the initial buffer only for
/// an application that reads: a peer streaming at one that does not never sees more than
/// the initial buffer (the memory bound holds), one that reads gets a larger window (at
/// most the ceiling).
#[test]
fn autotuning_grows_the_window_only_for_a_reader() {
    let buf = 64 * 1024;
    let max = 4 << 20;
    let cfg = TcpConfig { recv_buf: buf, recv_buf_max: max, window_scale: true, ..plain() };
    let opts = TcpOptions { mss: Some(1460), window_scale: Some(0), ..Default::default() };
    let shift = crate::proto::tcp::tcb::rcv_wscale_for(&cfg);
    let mut largest = [0usize; 2];
    for reads in [false, true] {
        let (mut h, _) = active(cfg.clone(), opts);
        for _ in 0..3000 {
            h.send("A", &[7; 1460]);
            h.advance(ms(1));
            for (s, _) in h.out() {
                largest[usize::from(reads)] = largest[usize::from(reads)].max((s.window as usize) << shift);
            }
            let n: usize = data_of(h.conn_evs()).iter().map(Vec::len).sum();
            if reads && n > 0 {
                h.app(AppCommand::ReadCredit(n));
            }
        }
        let (charged, _) = h.ep.rx_memory(h.conn).expect("open");
        assert!(reads || charged <= buf + buf / 8, "not reading: charged {charged} (the initial bound)");
    }
    assert!(largest[0] <= buf + (1 << shift), "never reading: window {} past the buffer {buf}", largest[0]);
    assert!(largest[1] >= 2 * buf && largest[1] <= max, "reading: window {} did not grow", largest[1]);
}
