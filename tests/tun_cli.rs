//! The bins' configuration checked before the device is touched: one-line errors that say
//! what to change (exit 2), an address clash with another interface in the namespace, and
//! the banner naming the device the kernel really made. Root, own namespace.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn netstack(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netstack")).args(args).output().expect("run netstack");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).trim().to_string())
}

#[test]
fn bad_flags_fail_before_the_device_is_made() {
    in_netns("bad_flags_fail_before_the_device_is_made", || {
        for (args, says) in [
            (&["--mtu", "1000"][..], "at least 1280"),
            (&["--host-addr", "10.0.0.1"], "needs a prefix length"),
            (&["--addr", "10.0.0.1"], "also the kernel side's"),
            (&["--addr", "192.168.0.2"], "outside the kernel side's subnet"),
            (&["--iface", "a-twenty-two-chars-nm"], "1 to 15"),
            (&["v6"], "serves IPv4 and IPv6 at once"),
        ] {
            let (code, err) = netstack(args);
            assert_eq!(code, Some(2), "{args:?}: {err}");
            assert!(err.contains(says) && err.lines().count() == 1, "{args:?}: {err}");
            assert!(!std::path::Path::new("/proc/sys/net/ipv6/conf/tun0").exists(), "{args:?} made tun0");
        }
        // Another interface already holds the kernel side's address.
        assert!(run("ip", &["link", "add", "d0", "type", "veth", "peer", "name", "d1"]).0);
        assert!(run("ip", &["addr", "add", "10.0.0.1/24", "dev", "d0"]).0);
        let (code, err) = netstack(&["--iface", "tun1"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("10.0.0.1/24 is already on d0"), "{err}");
        assert!(run("ip", &["link", "del", "d0"]).0);
    });
}

#[test]
fn banner_names_the_real_device() {
    in_netns("banner_names_the_real_device", || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netstack"))
            .args(["--iface", "tun%d", "--log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start netstack");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let pid = child.id().to_string();
        assert!(run("kill", &["-TERM", &pid]).0);
        child.wait().unwrap();
        assert!(first.starts_with("netstack is up on tun0:"), "{first}");
    });
}

/// `--no-configure` on a device whose MTU is not the stack's: refused with the fix, instead of
/// datagrams longer than the stack's MTU vanishing; `--stats` prints counters at exit.
#[test]
fn device_mtu_mismatch_and_stats_at_exit() {
    in_netns("device_mtu_mismatch_and_stats_at_exit", || {
        for a in [
            &["tuntap", "add", "dev", "tun0", "mode", "tun"][..],
            &["link", "set", "tun0", "mtu", "9000"],
            &["addr", "add", "10.0.0.1/24", "dev", "tun0"],
            &["link", "set", "tun0", "up"],
        ] {
            assert!(run("ip", a).0, "ip {a:?}");
        }
        let (code, err) = netstack(&["--no-configure"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("tun0's MTU is 9000") && err.contains("pass --mtu 9000"), "{err}");
        let out = Command::new(env!("CARGO_BIN_EXE_ping"))
            .args([
                "--no-configure",
                "--mtu",
                "9000",
                "--stats",
                "--log",
                "warn",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "2",
                "10.0.0.1",
            ])
            .output()
            .expect("run ping");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        let n = |name: &str| -> u64 {
            err.lines()
                .find_map(|l| l.strip_prefix(name).filter(|r| r.starts_with(' ')))
                .map_or(0, |r| r.trim().parse().unwrap())
        };
        assert!(n("IpInReceives") >= 2 && n("IpOutRequests") >= 2, "{err}");
        assert!(run("ip", &["link", "del", "tun0"]).0);
    });
}
