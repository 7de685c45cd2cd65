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
