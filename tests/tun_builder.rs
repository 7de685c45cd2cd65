//! `Stack::builder()` on a real TUN device, in a private network namespace: the kernel side
//! gets the subnet's first host and the MTU asked for, 1 MiB goes each way with a kernel
//! peer (checked by SHA-256); with `.no_configure()` an existing device's MTU is taken, or a
//! different `.mtu()` is refused before the device is opened.

mod common;
use common::*;
use netstack::{Stack, TcpStream};
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn builder_stack_moves_a_mebibyte_each_way_with_the_kernel() {
    in_netns("builder_stack_moves_a_mebibyte_each_way_with_the_kernel", || {
        let stack = Stack::builder().tun("tun%d").addr("10.7.0.2/24").mtu(1400).build().expect("build");
        assert_eq!(stack.device_name(), Some("tun0"));
        let (ok, out) = run("ip", &["-o", "addr", "show", "dev", "tun0"]);
        assert!(ok && out.contains("10.7.0.1/24") && out.contains("fd00::1/64"), "{out}");
        let (ok, out) = run("ip", &["-o", "link", "show", "dev", "tun0"]);
        assert!(ok && out.contains("mtu 1400"), "{out}");
        assert_eq!(stack.config().ip.mtu(), 1400);

        let l = std::net::TcpListener::bind("10.7.0.1:5001").expect("kernel listener");
        let up = pattern(1 << 20, 3);
        let down = pattern(1 << 20, 9);
        let (up_sent, down_sent) = (up.clone(), down.clone());
        let kernel = std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut got = vec![0u8; 1 << 20];
            c.read_exact(&mut got).expect("kernel read");
            c.write_all(&down_sent).expect("kernel write");
            sha256_hex(&got)
        });
        let mut s = TcpStream::connect(&stack, "10.7.0.1:5001").expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&up_sent).expect("write");
        let mut got = vec![0u8; 1 << 20];
        s.read_exact(&mut got).expect("read");
        assert_eq!(kernel.join().expect("kernel"), sha256_hex(&up));
        assert_eq!(sha256_hex(&got), sha256_hex(&down));
    });
}

#[test]
fn no_configure_takes_the_devices_mtu_or_refuses_another() {
    in_netns("no_configure_takes_the_devices_mtu_or_refuses_another", || {
        for a in [
            &["tuntap", "add", "dev", "tun5", "mode", "tun"][..],
            &["link", "set", "tun5", "mtu", "9000"],
            &["addr", "add", "10.0.0.1/24", "dev", "tun5"],
            &["link", "set", "tun5", "up"],
        ] {
            assert!(run("ip", a).0, "ip {a:?}");
        }
        let e = Stack::builder().tun("tun5").no_configure().mtu(1500).build().err().expect("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("tun5's MTU is 9000") && e.to_string().contains(".mtu(9000)"), "{e}");
        let stack = Stack::builder().tun("tun5").no_configure().build().expect("build");
        assert_eq!((stack.config().ip.mtu(), stack.config().tcp.mtu), (9000, 9000));
        warm_up("10.0.0.2", false);
        drop(stack);
        assert!(run("ip", &["link", "del", "tun5"]).0);
    });
}
