//! Shared test helpers: network namespaces, stacks on TUN and on an in-memory pair.
#![allow(dead_code)]

use netstack::device::pair::{pair, FaultConfig, PairDevice};
use netstack::device::sys;
use netstack::device::tun::{TunConfig, TunDevice};
use netstack::{Stack, StackConfig};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Run `f` on a fresh thread inside a new, private network namespace with `lo` up.
/// Returns false (after printing why) when that is impossible here; under CI=true that is a
/// failure instead. Threads and processes `f` starts inherit the namespace; nothing touches
/// the machine's own.
pub fn in_netns<F: FnOnce() + Send + 'static>(name: &str, f: F) -> bool {
    // One TUN test at a time per test binary: each has its own namespace and tun0, but they
    // share two CPUs and the kernel's per-CPU backlog, and timing-sensitive checks (ping with
    // 0 % loss) should not depend on what a neighbouring 64 MiB transfer is doing.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let name = name.to_string();
    let t = std::thread::spawn(move || {
        if !sys::is_root() {
            return Err("not root (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)".to_string());
        }
        sys::unshare_net().map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
        if !std::path::Path::new("/dev/net/tun").exists() {
            return Err("/dev/net/tun is missing".into());
        }
        let ok = Command::new("ip").args(["link", "set", "lo", "up"]).status().map_err(|e| format!("ip: {e}"))?;
        if !ok.success() {
            return Err("`ip link set lo up` failed".into());
        }
        f();
        Ok(())
    });
    match t.join() {
        Ok(Ok(())) => true,
        Ok(Err(why)) => {
            if under_ci() {
                panic!("{name}: TUN test cannot run under CI: {why}");
            }
            // Straight to stderr, past libtest's capture, so the skip is seen.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED {name}: {why} (run as root for the TUN tests)");
            false
        }
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// A stack on `tun0` configured with the defaults (kernel side 10.0.0.1, fd00::1, fe80::1).
/// Call inside [`in_netns`].
pub fn tun_stack() -> Stack {
    tun_stack_with(StackConfig::default())
}

pub fn tun_stack_with(cfg: StackConfig) -> Stack {
    let dev = TunDevice::open(&TunConfig::default()).expect("open tun0");
    Stack::new(Box::new(dev), cfg, netstack::log::discard()).expect("start stack")
}

/// A stack on `tun0` with offload: 64 KiB super-segments both ways (`IFF_VNET_HDR`).
pub fn tun_stack_offload() -> Stack {
    let dev = TunDevice::open(&TunConfig { offload: true, ..TunConfig::default() }).expect("open tun0");
    Stack::new(Box::new(dev), StackConfig::default(), netstack::log::discard()).expect("start stack")
}

/// Config for the second stack of a pair: the "host" addresses.
pub fn peer_config() -> StackConfig {
    let mut c = StackConfig::default();
    c.ip.v4 = vec![Ipv4Addr::new(10, 0, 0, 1)];
    c.ip.v6 = vec!["fe80::1".parse::<Ipv6Addr>().unwrap(), "fd00::1".parse().unwrap()];
    c
}

/// Two stacks back to back: A is 10.0.0.2/fd00::2, B is 10.0.0.1/fd00::1.
pub fn stack_pair(ab: FaultConfig, ba: FaultConfig) -> (Stack, Stack) {
    let (da, db): (PairDevice, PairDevice) = pair(1500, ab, ba);
    let a = Stack::new(Box::new(da), StackConfig::default(), netstack::log::discard()).unwrap();
    let b = Stack::new(Box::new(db), peer_config(), netstack::log::discard()).unwrap();
    (a, b)
}

/// Run a command to completion, returning (success, stdout+stderr).
pub fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    match Command::new(cmd).args(args).output() {
        Ok(o) => {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.success(), s)
        }
        Err(e) => (false, format!("cannot run {cmd}: {e}")),
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed).wrapping_add((i >> 8) as u8)).collect()
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ping until one reply arrives (the first packet after attach is sometimes lost).
pub fn warm_up(target: &str, v6: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut args = vec!["-c", "1", "-W", "1", target];
        if v6 {
            args.insert(0, "-6");
        }
        if run("ping", &args).0 {
            return;
        }
    }
    panic!("no ping reply from {target} within 10 s");
}

/// Send `len` bytes of a pattern from stack `a` to a listener on stack `b` (the pair's
/// 10.0.0.1) at `port`, and check they arrive exact (SHA-256).
#[allow(dead_code)] // not every test file uses it
pub fn pair_upload(a: &Stack, b: &Stack, port: u16, len: usize) {
    use std::io::{Read, Write};
    let l = netstack::TcpListener::bind(b, ("0.0.0.0", port)).unwrap();
    let data = pattern(len, 5);
    let sent = data.clone();
    let ha = a.handle();
    let t = std::thread::spawn(move || {
        let mut s = netstack::TcpStream::connect(&ha, ("10.0.0.1", port)).unwrap();
        s.write_all(&sent).unwrap();
    });
    let (mut s, _) = l.accept().unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    t.join().unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&data), "{} of {len} bytes", got.len());
}

/// The `netstack` host bin with `extra` flags, its control socket under `dir`
/// (`XDG_RUNTIME_DIR`), quiet on every stream.
pub fn start_host(dir: &std::path::Path, extra: &[&str]) -> std::process::Child {
    use std::process::Stdio;
    Command::new(env!("CARGO_BIN_EXE_netstack"))
        .args(["--log", "warn"])
        .args(extra)
        .env("XDG_RUNTIME_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start netstack")
}
