//! Review 10 attack tests against a running `netstack` host bin (its control socket and
//! its files). Root, own network namespace; each test its own runtime directory.

mod common;
use common::*;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The control socket of the one bin in `dir`, once it is there (10 s at most).
fn wait_socket(dir: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = std::fs::read_dir(dir.join("netstack"))
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "sock")));
        if let Some(p) = found {
            return p;
        }
        assert!(Instant::now() < deadline, "no control socket in {}", dir.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ctl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netstack"))
        .arg("ctl")
        .args(args)
        .env("XDG_RUNTIME_DIR", dir)
        .output()
        .expect("run ctl")
}

fn stop(mut host: Child) {
    let _ = Command::new("kill").args(["-TERM", &host.id().to_string()]).status();
    let _ = host.wait();
}

/// REVIEW10 finding 1 (high): the bins restore SIGPIPE's default action (for `| head`), and
/// the control server answered with a plain write(2): a client that hangs up before the
/// answer (Ctrl-C on `netstack ctl`, or `netstack ctl` itself when two bins run: it connects
/// to both, then drops both) killed the whole bin with SIGPIPE.
#[test]
fn ctl_client_that_hangs_up_does_not_kill_the_bin() {
    in_netns("ctl_client_that_hangs_up_does_not_kill_the_bin", || {
        let dir = std::env::temp_dir().join(format!("netstack-r10-hup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut host = start_host(&dir, &[]);
        let sock = wait_socket(&dir);
        for _ in 0..3 {
            drop(UnixStream::connect(&sock).expect("connect"));
        }
        std::thread::sleep(Duration::from_millis(500));
        let status = host.try_wait().unwrap();
        if let Some(s) = status {
            let _ = std::fs::remove_dir_all(&dir);
            panic!("the bin died after a control client hung up: {s:?}");
        }
        let out = ctl(&dir, &["stats", "-a"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        stop(host);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
