//! Review 10 attack tests on the control socket (`netstack::ctl`), served for a stack on
//! an in-memory pair (no root, no device). Each test its own directory under the temp dir.

use netstack::ctl::{request_in, serve_in};
use netstack::Stack;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("netstack-r10-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Every test here serves a control socket (a thread named "ctl"): they run one at a time,
/// so that `dropping_the_server_ends_its_thread` counts only its own server's thread.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static M: std::sync::Mutex<()> = std::sync::Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

/// Threads of this process whose name is `name` (`/proc/self/task/*/comm`).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .count()
}

/// REVIEW10 finding 2 (medium): the server answered one client at a time, each allowed 2 s
/// to send its line, and `request` waits 5 s for its answer: three clients that connect and
/// say nothing (a stuck script, a stopped `netstack ctl`) made every other request fail.
#[test]
fn silent_clients_do_not_starve_a_request() {
    let _serial = serial();
    let (a, _b) = Stack::builder().addr("10.9.1.2/24").pair().expect("pair");
    let dir = tmp("silent");
    let srv = serve_in(&dir, a.handle(), "pair0").expect("serve");
    let idle: Vec<UnixStream> = (0..4).map(|_| UnixStream::connect(srv.path()).expect("connect")).collect();
    let t = Instant::now();
    let out = request_in(&dir, Some("pair0"), "stats -a");
    let took = t.elapsed();
    drop(idle);
    let _ = std::fs::remove_dir_all(&dir);
    let text = out.unwrap_or_else(|e| panic!("request failed after {took:?} behind 4 silent clients: {e}"));
    assert!(text.contains("TcpActiveOpens"), "{text}");
    assert!(took < Duration::from_secs(1), "the request waited {took:?} behind silent clients");
}

/// REVIEW10 finding 3 (medium): the answer was written with no timeout, so a client that
/// asks `ss` and never reads held the one server thread forever once the answer outgrew the
/// socket's buffer (~200 KiB: some 1000 connections): the control socket was dead for the
/// rest of the bin's life. 1500 connections on the pair, one such client, then a request.
#[test]
fn a_client_that_never_reads_does_not_wedge_the_server() {
    let _serial = serial();
    use netstack::{TcpListener, TcpStream};
    let (a, b) = Stack::builder().addr("10.9.2.2/24").pair().expect("pair");
    let l = TcpListener::bind(&b, "10.9.2.1:7000").expect("bind");
    let acc = std::thread::spawn(move || (0..1500).map(|_| l.accept().expect("accept").0).collect::<Vec<_>>());
    let conns: Vec<TcpStream> = (0..1500).map(|_| TcpStream::connect(&a, "10.9.2.1:7000").expect("connect")).collect();
    let accepted = acc.join().unwrap();
    let dir = tmp("noread");
    let srv = serve_in(&dir, a.handle(), "pair0").expect("serve");
    let mut c = UnixStream::connect(srv.path()).expect("connect");
    c.write_all(b"ss\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let out = request_in(&dir, Some("pair0"), "stats");
    let took = t.elapsed();
    drop(c);
    drop((conns, accepted));
    let _ = std::fs::remove_dir_all(&dir);
    out.unwrap_or_else(|e| panic!("request failed after {took:?} behind a client that never reads: {e}"));
}

/// REVIEW10 finding 4 (low): dropping the `ControlServer` removed the socket file but left
/// its thread in `accept` for the life of the process, holding a `StackHandle` (a library
/// user who serves and drops per stack leaks a thread and a stack's handle each time).
#[test]
fn dropping_the_server_ends_its_thread() {
    let _serial = serial();
    let (a, _b) = Stack::builder().addr("10.9.3.2/24").pair().expect("pair");
    let dir = tmp("drop");
    // The other tests' servers and client threads end within their timeouts: wait for them
    // (bounded), so that the count below is this server's alone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads_named("ctl") > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = threads_named("ctl");
    let srv = serve_in(&dir, a.handle(), "pair0").expect("serve");
    // A new thread takes its name as it starts: wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(3);
    while threads_named("ctl") < before + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(threads_named("ctl"), before + 1);
    drop(srv);
    let deadline = Instant::now() + Duration::from_secs(3);
    while threads_named("ctl") > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(threads_named("ctl"), before, "the ctl thread outlived its server");
}

/// REVIEW10 finding 5 (medium): the module promises a 0700 directory ("only its owner may
/// ask"), but an existing directory was taken as it was: one left 0777 (or made by another
/// user in /tmp, where the non-root fallback lives) lets others replace the socket with
/// their own and feed `netstack ctl` its answers, or delete it.
#[test]
fn an_open_runtime_directory_is_not_trusted_as_is() {
    let _serial = serial();
    let (a, _b) = Stack::builder().addr("10.9.4.2/24").pair().expect("pair");
    let dir = tmp("perm");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = serve_in(&dir, a.handle(), "pair0");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    drop(r);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(mode & 0o077, 0, "served in a directory of mode {mode:o}");
}

/// A symlink where the directory should be is refused: it may point anywhere.
#[test]
fn a_symlinked_runtime_directory_is_refused() {
    let _serial = serial();
    let (a, _b) = Stack::builder().addr("10.9.5.2/24").pair().expect("pair");
    let base = tmp("link");
    let target = base.join("elsewhere");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = base.join("netstack");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let r = serve_in(&link, a.handle(), "pair0");
    let ok = r.is_ok();
    drop(r);
    let _ = std::fs::remove_dir_all(&base);
    assert!(!ok, "served through a symlink");
}
