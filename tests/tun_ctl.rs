//! `netstack ctl stats` and `netstack ctl ss` against a running `netstack` host bin: the
//! counters move with scripted traffic, an open connection shows with its state and queues,
//! the socket is owner-only, and a stopped bin's stale socket is cleaned up. Root, own
//! namespace; each test its own runtime directory.

mod common;
use common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn ctl(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netstack"))
        .arg("ctl")
        .args(args)
        .env("XDG_RUNTIME_DIR", dir)
        .output()
        .expect("run ctl")
}

fn stat(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).filter(|r| r.starts_with(' ')).map(|r| r.trim().parse().unwrap()))
        .unwrap_or(0)
}

#[test]
fn ctl_stats_and_ss_on_a_running_host() {
    in_netns("ctl_stats_and_ss_on_a_running_host", || {
        let dir = std::env::temp_dir().join(format!("netstack-ctl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut host = start_host(&dir, &[]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = loop {
            match std::net::TcpStream::connect_timeout(&"10.0.0.2:9".parse().unwrap(), Duration::from_millis(300)) {
                Ok(s) => break s,
                Err(e) => assert!(Instant::now() < deadline, "host never came up: {e}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        conn.write_all(&vec![b'x'; 100_000]).unwrap();
        let k = std::net::UdpSocket::bind("10.0.0.1:0").unwrap();
        for _ in 0..3 {
            k.send_to(b"nobody", "10.0.0.2:9999").unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));

        let sock = std::fs::read_dir(dir.join("netstack")).unwrap().flatten().next().expect("a socket file").path();
        assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600, "{}", sock.display());
        assert_eq!(std::fs::metadata(dir.join("netstack")).unwrap().permissions().mode() & 0o777, 0o700);

        let out = ctl(&dir, &["stats"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stat(&text, "UdpNoPorts"), 3, "{text}");
        assert_eq!(stat(&text, "TcpPassiveOpens"), 1, "{text}");
        assert!(stat(&text, "TcpInSegs") >= 70, "{text}");
        assert!(!text.lines().any(|l| l.trim_end().ends_with(" 0")), "zeros only with -a: {text}");
        let all = String::from_utf8_lossy(&ctl(&dir, &["stats", "-a"]).stdout).to_string();
        assert!(stat(&all, "TcpRetransSegs") == 0 && all.contains("TcpRetransSegs"), "{all}");

        let out = ctl(&dir, &["ss"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let local = conn.local_addr().unwrap().to_string();
        let row = text.lines().find(|l| l.contains(&local)).unwrap_or_else(|| panic!("{local} not in:\n{text}"));
        assert!(row.starts_with("ESTAB") && row.contains("10.0.0.2:9"), "{text}");
        assert!(text.contains("bytes_received:100000"), "{text}");

        drop(conn);
        let pid = host.id().to_string();
        assert!(run("kill", &["-TERM", &pid]).0);
        host.wait().unwrap();
        let out = ctl(&dir, &["stats"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no running netstack bin"), "{err}");
        assert!(!sock.exists(), "the stale socket is removed: {}", sock.display());
        let _ = std::fs::remove_dir_all(&dir);
    });
}
