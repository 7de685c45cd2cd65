//! Every conflict the builder refuses, checked without a device (no root): `validate` never
//! opens one.

use super::*;
use crate::device::fault::FaultSpec;
use std::net::Ipv4Addr;

fn err(b: StackBuilder) -> String {
    let e = b.validate().expect_err("refused");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    e.to_string()
}

fn tun() -> StackBuilder {
    Stack::builder().tun("tun0")
}

fn half() -> Box<dyn Device> {
    Box::new(pair(1500, FaultConfig::default(), FaultConfig::default()).0)
}

#[test]
fn defaults_are_valid_and_the_kernel_side_is_the_subnets_first_host() {
    tun().validate().unwrap();
    Stack::builder().tap("tap0").validate().unwrap();
    Stack::builder().device(half()).validate().unwrap();
    let p = tun().addr("10.1.0.2/16").addr6("fd09::2/64").plan().unwrap();
    let want: Vec<(IpAddr, u8)> =
        [("10.1.0.1", 16), ("fe80::1", 64), ("fd09::1", 64)].iter().map(|(a, l)| (a.parse().unwrap(), *l)).collect();
    assert_eq!(p.host, want);
    assert_eq!((p.cfg.ip.v4.clone(), p.cfg.ip.v4_prefix), (vec![Ipv4Addr::new(10, 1, 0, 2)], 16));
    assert_eq!(p.cfg.ip.v6, [LINK_LOCAL, "fd09::2".parse::<Ipv6Addr>().unwrap()]);
    assert_eq!((p.mtu, p.cfg.mtu), (DEFAULT_MTU, Some(DEFAULT_MTU)));
    // A host address without a prefix takes the stack's; a family not given keeps its defaults.
    let p = tun().addr("10.2.0.2/24").host_addr("10.2.0.9").plan().unwrap();
    assert_eq!(p.host[0], ("10.2.0.9".parse().unwrap(), 24));
    assert_eq!(p.host.len(), 3);
}

#[test]
fn device_choice_conflicts() {
    assert!(err(Stack::builder()).contains("no device"));
    assert!(err(tun().tap("tap0")).contains(".tap() after another device"));
    assert!(err(Stack::builder().tun("")).contains("1 to 15"));
    assert!(err(Stack::builder().tun("a-twenty-two-chars-nm")).contains("1 to 15"));
    assert!(err(Stack::builder().tap("a/b")).contains("without '/'"));
    assert!(err(Stack::builder().device(half()).no_configure()).contains(".no_configure() is for"));
    assert!(err(Stack::builder().device(half()).host_addr("10.0.0.1")).contains(".host_addr() is for"));
    let e = Stack::builder().tun("tun0").pair().err().expect("refused");
    assert!(e.to_string().contains(".pair() makes its own devices"), "{e}");
}

#[test]
fn mtu_conflicts() {
    assert!(err(tun().mtu(1000)).contains(".mtu(1000): the stack always runs IPv6"));
    assert!(err(tun().mtu(70_000)).contains("the largest is 65535"));
    tun().mtu(1280).validate().unwrap();
    // A given device's MTU wins unless another one is asked for: then it is an error.
    assert!(err(Stack::builder().device(half()).mtu(9000)).contains("the device's MTU is 1500"));
    Stack::builder().device(half()).mtu(1500).validate().unwrap();
    let m = |dev, ours| check::existing_mtu("tun7", dev, ours, Spelling::Api);
    assert!(m(9000, 1500)
        .unwrap_err()
        .contains("tun7's MTU is 9000 but the stack's is 1500 (.mtu()): pass .mtu(9000)"));
    assert!(check::existing_mtu("tun7", 9000, 1500, Spelling::Flags).unwrap_err().contains("pass --mtu 9000"));
    assert_eq!(m(1500, 1500), Ok(()));
}

#[test]
fn address_conflicts() {
    assert!(err(tun().addr("10.0.0.2")).contains("give the prefix length too"));
    assert!(err(tun().addr("fd00::2/64")).contains("not an IPv4 address"));
    assert!(err(tun().addr6("10.0.0.2/24")).contains("not an IPv6 address"));
    assert!(err(tun().addr("10.0.0.2/33")).contains("0..=32"));
    assert!(err(tun().addr("ten/24")).contains("is not an IP address"));
    assert!(err(tun().addr("224.0.0.1/24")).contains("unicast"));
    assert!(err(tun().addr("10.0.0.1/24")).contains("also the kernel side's (.host_addr(\"10.0.0.1\"))"));
    assert!(err(tun().addr6("fd00::1/64")).contains("also the kernel side's"));
    assert!(err(tun().host_addr("10.0.1.1/24")).contains("outside the kernel side's subnet (10.0.1.1/24)"));
    assert!(err(tun().host_addr("fd01::1/64")).contains("outside"));
    assert!(err(tun().host_addr("10.0.0.1/33")).contains("0..=32"));
    assert!(err(tun().addr("10.0.0.2/16").host_addr("10.0.0.1/24")).contains("differ in prefix length"));
    assert!(err(tun().addr("10.0.0.2/32")).contains("no room for the kernel side's address"));
    // An existing device's addresses count, not the builder's.
    let elsewhere = tun().no_configure().addr("192.168.1.2/24").host_addr("10.0.0.1/24");
    elsewhere.plan_pure().unwrap();
    // The flags' words for the bins.
    let e = tun().spelled_as_flags().host_addr("10.0.1.1/24").plan_pure().err().unwrap();
    assert!(e.contains("change --addr/--addr6 or --host-addr"), "{e}");
}

#[test]
fn gateway_and_dhcp_conflicts() {
    let gw = |s: &str| s.parse::<IpAddr>().unwrap();
    tun().gateway(gw("10.0.0.1")).gateway(gw("fd00::1")).validate().unwrap();
    assert!(err(tun().gateway(gw("10.9.0.1"))).contains("not on a connected subnet"));
    assert!(err(tun().gateway(gw("10.0.0.1")).gateway(gw("10.0.0.3"))).contains("one default gateway per family"));
    assert!(err(tun().dhcp()).contains("DHCP needs an Ethernet (TAP) device"));
    assert!(err(Stack::builder().tap("tap0").dhcp().addr("10.0.0.2/24")).contains("drop .addr() or .dhcp()"));
    assert!(err(Stack::builder().tap("tap0").dhcp().gateway(gw("10.0.0.1"))).contains("DHCP gives the IPv4 gateway"));
    let p = Stack::builder().tap("tap0").dhcp().plan().unwrap();
    assert!(p.cfg.dhcp && p.cfg.ip.v4.is_empty());
}

#[test]
fn device_option_conflicts() {
    assert!(err(Stack::builder().tap("tap0").offload()).contains("offload is for TUN devices"));
    assert!(err(Stack::builder().device(half()).offload()).contains("offload is for TUN devices"));
    let mac = EthernetAddress([2, 0, 0, 0, 0, 2]);
    assert!(err(tun().mac(mac)).contains("needs an Ethernet device"));
    assert!(err(Stack::builder().tap("tap0").mac(EthernetAddress([1, 0, 0, 0, 0, 2]))).contains("unicast"));
    let p = Stack::builder().tap("tap0").mac(mac).plan().unwrap();
    assert_eq!(p.cfg.link.map(|l| l.mac), Some(mac));
    let corrupt = FaultSpec { corrupt: 0.1, ..FaultSpec::default() };
    assert!(err(tun().offload().faults(Some(corrupt), None)).contains("corruption cannot be used with offload"));
    tun().faults(Some(corrupt), None).validate().unwrap();
    let bad = FaultSpec { drop: 1.5, ..FaultSpec::default() };
    assert!(err(tun().faults(None, Some(bad))).contains("between 0 and 1"));
}

/// The low-level path: an MTU in the configuration is no longer overwritten by the device's.
#[test]
fn stack_new_refuses_an_mtu_the_device_does_not_have() {
    let cfg = StackConfig { mtu: Some(9000), ..StackConfig::default() };
    let e = Stack::new(half(), cfg, crate::log::discard()).err().expect("refused");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("StackConfig::mtu is 9000 but the device's MTU is 1500"), "{e}");
    let s = Stack::new(half(), StackConfig::default(), crate::log::discard()).unwrap();
    assert_eq!((s.config().mtu, s.config().ip.mtu(), s.config().tcp.mtu), (Some(1500), 1500, 1500));
}
