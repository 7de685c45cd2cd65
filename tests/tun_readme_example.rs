//! The README's "Using the crate" example, run as written against a kernel listener, five
//! times: the bytes it writes must arrive every time, although the program ends right after
//! `write_all` (dropping the stream closes it; dropping the stack lingers for the FIN).

mod common;
use common::*;
use std::io::Read;
use std::time::Duration;

/// The README's example, verbatim but for `?` → `expect`.
fn readme_example() {
    use netstack::{Stack, TcpStream};
    use std::io::Write;

    // tun0 (root): the stack is 10.0.0.2/24, the kernel side the subnet's first host, 10.0.0.1
    let stack = Stack::builder().tun("tun0").addr("10.0.0.2/24").build().expect("stack");
    let mut s = TcpStream::connect(&stack, "10.0.0.1:3000").expect("connect"); // as std, plus the stack
    s.write_all(b"hello").expect("write");
}

#[test]
fn readme_example_delivers_every_time() {
    in_netns("readme_example_delivers_every_time", || {
        let l = std::net::TcpListener::bind("0.0.0.0:3000").expect("kernel listener");
        for run in 0..5 {
            let t = std::thread::spawn(readme_example);
            let (mut c, _) = l.accept().expect("accept");
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap_or_else(|e| panic!("run {run}: {e} after {got:?}"));
            assert_eq!(got, b"hello", "run {run}");
            t.join().expect("example");
        }
    });
}
