//! Review 10: names the kernel's `dev_valid_name` refuses are refused by `validate` (no
//! device opened, no root needed), with the setting to change named.

use netstack::Stack;

/// REVIEW10 finding 6 (low): `.`, `..` and names with whitespace other than a space (tab,
/// newline, CR, VT, FF: the kernel's isspace) passed the check and reached the kernel, which
/// refuses them with a bare EINVAL ("Invalid argument", the bins exit 1 after set-up began
/// instead of 2 for a bad flag).
#[test]
fn names_the_kernel_refuses_are_refused_by_validate() {
    for name in [".", "..", "tun\t0", "tun\n0", "tun\r0", "tun\u{b}0", "tun\u{c}0"] {
        for b in [Stack::builder().tun(name), Stack::builder().tap(name)] {
            let e = b.validate().expect_err(&format!("{name:?} accepted"));
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{name:?}: {e}");
            assert!(e.to_string().contains("device name"), "{name:?}: {e}");
        }
    }
    Stack::builder().tun("tun.0").validate().expect("a dot inside a name is fine");
    Stack::builder().tun("...").validate().expect("three dots are a name");
}
