//! The bulk bins on Ctrl-C: the kernel peer is reset at once (not left waiting), the bin
//! prints what it moved and exits 130. Runs the release bin inside the test's namespace.

mod common;
use common::*;
use std::io::{ErrorKind, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn upload_interrupted_resets_the_peer_and_reports() {
    in_netns("upload_interrupted_resets_the_peer_and_reports", || {
        let l = std::net::TcpListener::bind("0.0.0.0:3000").expect("kernel listener");
        let child = Command::new(env!("CARGO_BIN_EXE_tcp_bulk_upload"))
            .args(["--no-wait", "--log", "warn", "--bytes", "100000000000", "--host-addr", "10.0.0.1/24"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tcp_bulk_upload");
        let (mut c, _) = l.accept().expect("accept");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0usize;
        let mut signalled: Option<Instant> = None;
        let ended = loop {
            match c.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => got += n,
                Err(e) => break Err(e),
            }
            if signalled.is_none() && got >= 8 << 20 {
                let pid = child.id().to_string();
                assert!(run("kill", &["-INT", &pid]).0, "kill -INT");
                signalled = Some(Instant::now());
            }
        };
        let since = signalled.expect("the upload was moving").elapsed();
        let e = ended.expect_err("the peer is reset, not closed");
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
        assert!(since < Duration::from_secs(2), "reset {since:?} after the signal");
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(130), "exit status");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("interrupted: bytes="), "{stdout}");
    });
}
