//! Issue 10: our sockets against std's. One table of operations (non-blocking reads,
//! accepts and receives with nothing ready, a write into a full window, reads after FIN,
//! writes after `shutdown(Write)`, connect falling back over a list of addresses, …) runs
//! against std's sockets on 127.0.0.1 (kernel loopback in a network namespace the test
//! creates: no TUN, nothing in the machine's own namespace) and against ours over the
//! in-memory pair; each row must give the same outcome (`Ok(value)` or the same
//! `io::ErrorKind`) on both. Then the new API pieces
//! (`TcpListener::try_clone`, port 0, connect fallback, TTL bounds) on our stack alone.

mod common;
use common::*;
use netstack::device::pair::FaultConfig;
use netstack::Stack;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// A connected TCP stream, std's or ours.
trait Stream: Send {
    fn read(&self, b: &mut [u8]) -> io::Result<usize>;
    fn write(&self, b: &[u8]) -> io::Result<usize>;
    fn peek(&self, b: &mut [u8]) -> io::Result<usize>;
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    fn set_nonblocking(&self, nb: bool) -> io::Result<()>;
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    fn take_error(&self) -> io::Result<Option<io::Error>>;
}

trait Listener: Send {
    fn accept(&self) -> io::Result<Box<dyn Stream>>;
    fn set_nonblocking(&self, nb: bool) -> io::Result<()>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
    fn try_clone(&self) -> io::Result<Box<dyn Listener>>;
}

trait Udp: Send {
    fn send_to(&self, b: &[u8], to: SocketAddr) -> io::Result<usize>;
    fn send(&self, b: &[u8]) -> io::Result<usize>;
    fn recv_from(&self, b: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    fn peek_from(&self, b: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    fn connect(&self, to: &[SocketAddr]) -> io::Result<()>;
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
    fn set_nonblocking(&self, nb: bool) -> io::Result<()>;
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

/// The same calls on std's types and ours: their names and signatures agree.
macro_rules! impl_sockets {
    ($stream:ty, $listener:ty, $udp:ty) => {
        impl Stream for $stream {
            fn read(&self, b: &mut [u8]) -> io::Result<usize> {
                Read::read(&mut &*self, b)
            }
            fn write(&self, b: &[u8]) -> io::Result<usize> {
                Write::write(&mut &*self, b)
            }
            fn peek(&self, b: &mut [u8]) -> io::Result<usize> {
                <$stream>::peek(self, b)
            }
            fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                <$stream>::shutdown(self, how)
            }
            fn set_nonblocking(&self, nb: bool) -> io::Result<()> {
                <$stream>::set_nonblocking(self, nb)
            }
            fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                <$stream>::set_read_timeout(self, t)
            }
            fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                <$stream>::set_write_timeout(self, t)
            }
            fn take_error(&self) -> io::Result<Option<io::Error>> {
                <$stream>::take_error(self)
            }
        }
        impl Listener for $listener {
            fn accept(&self) -> io::Result<Box<dyn Stream>> {
                <$listener>::accept(self).map(|(s, _)| Box::new(s) as Box<dyn Stream>)
            }
            fn set_nonblocking(&self, nb: bool) -> io::Result<()> {
                <$listener>::set_nonblocking(self, nb)
            }
            fn local_addr(&self) -> io::Result<SocketAddr> {
                <$listener>::local_addr(self)
            }
            fn try_clone(&self) -> io::Result<Box<dyn Listener>> {
                <$listener>::try_clone(self).map(|l| Box::new(l) as Box<dyn Listener>)
            }
        }
        impl Udp for $udp {
            fn send_to(&self, b: &[u8], to: SocketAddr) -> io::Result<usize> {
                <$udp>::send_to(self, b, to)
            }
            fn send(&self, b: &[u8]) -> io::Result<usize> {
                <$udp>::send(self, b)
            }
            fn recv_from(&self, b: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
                <$udp>::recv_from(self, b)
            }
            fn peek_from(&self, b: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
                <$udp>::peek_from(self, b)
            }
            fn connect(&self, to: &[SocketAddr]) -> io::Result<()> {
                <$udp>::connect(self, to)
            }
            fn peer_addr(&self) -> io::Result<SocketAddr> {
                <$udp>::peer_addr(self)
            }
            fn local_addr(&self) -> io::Result<SocketAddr> {
                <$udp>::local_addr(self)
            }
            fn set_nonblocking(&self, nb: bool) -> io::Result<()> {
                <$udp>::set_nonblocking(self, nb)
            }
            fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                <$udp>::set_read_timeout(self, t)
            }
        }
    };
}
impl_sockets!(std::net::TcpStream, std::net::TcpListener, std::net::UdpSocket);
impl_sockets!(netstack::TcpStream, netstack::TcpListener, netstack::UdpSocket);

/// Where the sockets of a row live: a server side and a client side.
trait Net {
    /// The server side's IPv4 and IPv6 addresses.
    fn server_ip(&self) -> IpAddr;
    fn server_ip6(&self) -> IpAddr;
    fn listen(&self, port: u16) -> io::Result<Box<dyn Listener>>;
    /// Connect from the client side, trying each address in turn.
    fn connect(&self, to: &[SocketAddr]) -> io::Result<Box<dyn Stream>>;
    /// A UDP socket on the server side (`true`) or the client side, port 0.
    fn udp(&self, server: bool) -> io::Result<Box<dyn Udp>>;
}

struct StdNet;

impl Net for StdNet {
    fn server_ip(&self) -> IpAddr {
        [127, 0, 0, 1].into()
    }
    fn server_ip6(&self) -> IpAddr {
        std::net::Ipv6Addr::LOCALHOST.into()
    }
    fn listen(&self, port: u16) -> io::Result<Box<dyn Listener>> {
        Ok(Box::new(std::net::TcpListener::bind((self.server_ip(), port))?))
    }
    fn connect(&self, to: &[SocketAddr]) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(std::net::TcpStream::connect(to)?))
    }
    fn udp(&self, _server: bool) -> io::Result<Box<dyn Udp>> {
        Ok(Box::new(std::net::UdpSocket::bind((self.server_ip(), 0))?))
    }
}

/// Server: stack A (10.0.0.2, fd00::2); client: stack B (10.0.0.1), over the pair.
struct OurNet {
    a: Stack,
    b: Stack,
}

impl Net for OurNet {
    fn server_ip(&self) -> IpAddr {
        [10, 0, 0, 2].into()
    }
    fn server_ip6(&self) -> IpAddr {
        "fd00::2".parse().unwrap()
    }
    fn listen(&self, port: u16) -> io::Result<Box<dyn Listener>> {
        Ok(Box::new(netstack::TcpListener::bind(&self.a, (self.server_ip(), port))?))
    }
    fn connect(&self, to: &[SocketAddr]) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(netstack::TcpStream::connect(&self.b, to)?))
    }
    fn udp(&self, server: bool) -> io::Result<Box<dyn Udp>> {
        let (stack, ip): (&Stack, IpAddr) =
            if server { (&self.a, self.server_ip()) } else { (&self.b, [10, 0, 0, 1].into()) };
        Ok(Box::new(netstack::UdpSocket::bind(stack, (ip, 0))?))
    }
}

/// A row's outcome: a value both implementations must agree on, or an error kind.
type Outcome = Result<usize, ErrorKind>;

fn kind<T>(r: io::Result<T>) -> Result<T, ErrorKind> {
    r.map_err(|e| e.kind())
}

/// An established pair: (server side, client side).
fn tcp_pair(net: &dyn Net) -> (Box<dyn Stream>, Box<dyn Stream>) {
    let l = net.listen(0).unwrap();
    let c = net.connect(&[l.local_addr().unwrap()]).unwrap();
    (l.accept().unwrap(), c)
}

/// Retry `f` while it says `WouldBlock`, for at most 5 s: what a non-blocking caller does
/// while the other side's bytes are on their way.
fn poll<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match f() {
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(2))
            }
            r => return r,
        }
    }
}

/// A port nothing listens on: one a listener had, closed again.
fn closed_port(net: &dyn Net) -> u16 {
    let l = net.listen(0).unwrap();
    l.local_addr().unwrap().port()
}

/// Write 64 KiB chunks into a stream whose peer does not read until a write says
/// `WouldBlock` (bounded: 256 MiB). Returns that write's outcome and the bytes written.
fn fill(s: &dyn Stream) -> (Outcome, usize) {
    let chunk = vec![7u8; 64 * 1024];
    let mut total = 0;
    while total < 256 << 20 {
        match s.write(&chunk) {
            Ok(n) => total += n,
            Err(e) => return (Err(e.kind()), total),
        }
    }
    (Ok(total), total)
}

/// The client side of a pair whose server side closed with unread data (an RST, as
/// Linux sends), once that RST had time to arrive. Reads time out after 5 s.
fn reset_by_peer(net: &dyn Net) -> Box<dyn Stream> {
    let (s, c) = tcp_pair(net);
    c.write(b"unread").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(s);
    std::thread::sleep(Duration::from_millis(50));
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

type Row = (&'static str, fn(&dyn Net) -> Outcome);

const ROWS: &[Row] = &[
    ("read, non-blocking, idle stream", |net| {
        let (_s, c) = tcp_pair(net);
        c.set_nonblocking(true).unwrap();
        kind(c.read(&mut [0; 16]))
    }),
    ("peek, non-blocking, idle stream", |net| {
        let (_s, c) = tcp_pair(net);
        c.set_nonblocking(true).unwrap();
        kind(c.peek(&mut [0; 16]))
    }),
    ("read, read timeout expires", |net| {
        let (_s, c) = tcp_pair(net);
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        kind(c.read(&mut [0; 16]))
    }),
    ("read, non-blocking wins over a long timeout", |net| {
        let (_s, c) = tcp_pair(net);
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.set_nonblocking(true).unwrap();
        let t = Instant::now();
        let r = kind(c.read(&mut [0; 16]));
        assert!(t.elapsed() < Duration::from_secs(1), "non-blocking read waited");
        r
    }),
    ("read, blocking again after set_nonblocking(false)", |net| {
        let (s, c) = tcp_pair(net);
        c.set_nonblocking(true).unwrap();
        c.set_nonblocking(false).unwrap();
        s.write(b"four").unwrap();
        kind(c.read(&mut [0; 16]))
    }),
    ("read with an empty buffer", |net| {
        let (_s, c) = tcp_pair(net);
        c.set_nonblocking(true).unwrap();
        kind(c.read(&mut []))
    }),
    ("read with an empty buffer, read timeout expires", |net| {
        let (_s, c) = tcp_pair(net);
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let t = Instant::now();
        let r = kind(c.read(&mut []));
        assert!(t.elapsed() >= Duration::from_millis(25), "an empty read did not wait");
        r
    }),
    ("read with an empty buffer, data queued", |net| {
        let (s, c) = tcp_pair(net);
        s.write(b"data").unwrap();
        c.set_nonblocking(true).unwrap();
        poll(|| c.peek(&mut [0; 1])).unwrap();
        let r = kind(c.read(&mut []));
        assert_eq!(c.read(&mut [0; 8]).unwrap(), 4, "the empty read consumed bytes");
        r
    }),
    ("write with an empty buffer, non-blocking, full window", |net| {
        let (_s, c) = tcp_pair(net);
        c.set_nonblocking(true).unwrap();
        assert_eq!(fill(&*c).0, Err(ErrorKind::WouldBlock));
        kind(c.write(&[]))
    }),
    ("peek, then read the same bytes", |net| {
        let (s, c) = tcp_pair(net);
        s.write(b"peekaboo").unwrap();
        c.set_nonblocking(true).unwrap();
        let mut p = [0; 8];
        let n = poll(|| c.peek(&mut p)).unwrap();
        let mut r = [0; 8];
        let m = c.read(&mut r[..n]).unwrap();
        assert_eq!(p[..n], r[..m]);
        Ok(m)
    }),
    ("read after peer's FIN, blocking", |net| {
        let (s, c) = tcp_pair(net);
        s.shutdown(Shutdown::Write).unwrap();
        kind(c.read(&mut [0; 16]))
    }),
    ("read after peer's FIN, non-blocking", |net| {
        let (s, c) = tcp_pair(net);
        c.set_nonblocking(true).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        kind(poll(|| c.read(&mut [0; 16])))
    }),
    ("read after own shutdown(Read)", |net| {
        let (_s, c) = tcp_pair(net);
        c.shutdown(Shutdown::Read).unwrap();
        kind(c.read(&mut [0; 16]))
    }),
    // Linux's SHUT_RD only ends reading once nothing is queued: data already received, and
    // data that arrives after it, are still read.
    ("read after own shutdown(Read), data queued before", |net| {
        let (s, c) = tcp_pair(net);
        s.write(b"data").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        c.shutdown(Shutdown::Read).unwrap();
        kind(c.read(&mut [0; 16]))
    }),
    ("read after own shutdown(Read), data arriving after", |net| {
        let (s, c) = tcp_pair(net);
        c.shutdown(Shutdown::Read).unwrap();
        s.write(b"data").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        kind(c.read(&mut [0; 16]))
    }),
    ("write with an empty buffer after own shutdown(Write)", |net| {
        let (_s, c) = tcp_pair(net);
        c.shutdown(Shutdown::Write).unwrap();
        kind(c.write(&[]))
    }),
    ("shutdown(Write) twice", |net| {
        let (_s, c) = tcp_pair(net);
        c.shutdown(Shutdown::Write).unwrap();
        kind(c.shutdown(Shutdown::Write)).map(|_| 0)
    }),
    ("peek after the peer's FIN", |net| {
        let (s, c) = tcp_pair(net);
        s.shutdown(Shutdown::Write).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        kind(c.peek(&mut [0; 4]))
    }),
    ("write after own shutdown(Write)", |net| {
        let (_s, c) = tcp_pair(net);
        c.shutdown(Shutdown::Write).unwrap();
        kind(c.write(b"late"))
    }),
    ("write, non-blocking, room in the window", |net| {
        let (_s, c) = tcp_pair(net);
        c.set_nonblocking(true).unwrap();
        kind(c.write(b"fits"))
    }),
    ("write, non-blocking, full window", |net| {
        let (_s, c) = tcp_pair(net);
        c.set_nonblocking(true).unwrap();
        let (r, total) = fill(&*c);
        assert!(total > 0, "nothing fit before WouldBlock");
        r
    }),
    ("write, write timeout expires on a full window", |net| {
        let (_s, c) = tcp_pair(net);
        c.set_write_timeout(Some(Duration::from_millis(50))).unwrap();
        fill(&*c).0
    }),
    ("write, non-blocking, room again after the peer reads", |net| {
        let (s, c) = tcp_pair(net);
        c.set_nonblocking(true).unwrap();
        let (_, total) = fill(&*c);
        let mut buf = vec![0; 256 * 1024];
        let mut got = 0;
        while got < total {
            got += s.read(&mut buf).unwrap();
        }
        kind(poll(|| c.write(b"again")))
    }),
    ("set_read_timeout(Some(0))", |net| {
        let (_s, c) = tcp_pair(net);
        kind(c.set_read_timeout(Some(Duration::ZERO))).map(|_| 0)
    }),
    ("accept, non-blocking, none pending", |net| {
        let l = net.listen(0).unwrap();
        l.set_nonblocking(true).unwrap();
        kind(l.accept()).map(|_| 0)
    }),
    ("accept, non-blocking, one pending", |net| {
        let l = net.listen(0).unwrap();
        l.set_nonblocking(true).unwrap();
        let _c = net.connect(&[l.local_addr().unwrap()]).unwrap();
        let s = poll(|| l.accept()).unwrap();
        // The accepted stream is blocking: its read waits for the timeout.
        s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let t = Instant::now();
        let r = kind(s.read(&mut [0; 4]));
        assert!(t.elapsed() >= Duration::from_millis(25), "accepted stream is non-blocking");
        r
    }),
    ("accept on a try_clone, non-blocking shared", |net| {
        let l = net.listen(0).unwrap();
        let l2 = l.try_clone().unwrap();
        l.set_nonblocking(true).unwrap();
        let first = kind(l2.accept()).map(|_| 0);
        assert_eq!(first, Err(ErrorKind::WouldBlock), "the clone did not share non-blocking");
        let _c = net.connect(&[l.local_addr().unwrap()]).unwrap();
        kind(poll(|| l2.accept())).map(|_| 0)
    }),
    ("bind a listener on a taken port", |net| {
        let l = net.listen(0).unwrap();
        kind(net.listen(l.local_addr().unwrap().port())).map(|_| 0)
    }),
    ("listener on port 0 gets a port", |net| {
        let l = net.listen(0).unwrap();
        Ok(usize::from(l.local_addr().unwrap().port() != 0))
    }),
    ("connect to a closed port", |net| {
        let p = closed_port(net);
        kind(net.connect(&[SocketAddr::new(net.server_ip(), p)])).map(|_| 0)
    }),
    ("connect: refused first address, then a listening one", |net| {
        let l = net.listen(0).unwrap();
        let refused = SocketAddr::new(net.server_ip(), closed_port(net));
        kind(net.connect(&[refused, l.local_addr().unwrap()])).map(|_| 0)
    }),
    ("connect: every address refused gives the last error", |net| {
        let p = closed_port(net);
        let a = SocketAddr::new(net.server_ip(), p);
        kind(net.connect(&[a, a])).map(|_| 0)
    }),
    ("connect: an empty address list", |net| kind(net.connect(&[])).map(|_| 0)),
    ("recv_from, non-blocking, empty UDP socket", |net| {
        let u = net.udp(true).unwrap();
        u.set_nonblocking(true).unwrap();
        kind(u.recv_from(&mut [0; 16])).map(|(n, _)| n)
    }),
    ("peek_from, non-blocking, empty UDP socket", |net| {
        let u = net.udp(true).unwrap();
        u.set_nonblocking(true).unwrap();
        kind(u.peek_from(&mut [0; 16])).map(|(n, _)| n)
    }),
    ("recv_from, read timeout expires", |net| {
        let u = net.udp(true).unwrap();
        u.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        kind(u.recv_from(&mut [0; 16])).map(|(n, _)| n)
    }),
    ("recv_from, non-blocking, a datagram arrives", |net| {
        let u = net.udp(true).unwrap();
        let c = net.udp(false).unwrap();
        u.set_nonblocking(true).unwrap();
        c.send_to(b"datagram", u.local_addr().unwrap()).unwrap();
        kind(poll(|| u.peek_from(&mut [0; 16]))).unwrap();
        kind(u.recv_from(&mut [0; 16])).map(|(n, _)| n)
    }),
    ("send_to, non-blocking, queue empty", |net| {
        let u = net.udp(true).unwrap();
        let c = net.udp(false).unwrap();
        c.set_nonblocking(true).unwrap();
        kind(c.send_to(b"x", u.local_addr().unwrap()))
    }),
    ("send_to port 0", |net| {
        let c = net.udp(false).unwrap();
        kind(c.send_to(b"x", SocketAddr::new(net.server_ip(), 0)))
    }),
    ("send on an unconnected UDP socket", |net| {
        let c = net.udp(false).unwrap();
        kind(c.send(b"x"))
    }),
    ("send on a connected UDP socket, non-blocking", |net| {
        let u = net.udp(true).unwrap();
        let c = net.udp(false).unwrap();
        c.connect(&[u.local_addr().unwrap()]).unwrap();
        c.set_nonblocking(true).unwrap();
        kind(c.send(b"abc"))
    }),
    ("read after the peer's RST", |net| {
        let c = reset_by_peer(net);
        kind(c.read(&mut [0; 16]))
    }),
    ("read again after the peer's RST was reported", |net| {
        let c = reset_by_peer(net);
        let _ = c.read(&mut [0; 16]);
        kind(c.read(&mut [0; 16]))
    }),
    ("write after the peer's RST was reported", |net| {
        let c = reset_by_peer(net);
        let _ = c.read(&mut [0; 16]);
        kind(c.write(b"late"))
    }),
    ("shutdown after the peer's RST was reported", |net| {
        let c = reset_by_peer(net);
        let _ = c.read(&mut [0; 16]);
        kind(c.shutdown(Shutdown::Write)).map(|_| 0)
    }),
    ("take_error after the peer's RST was reported by a read", |net| {
        let c = reset_by_peer(net);
        let _ = c.read(&mut [0; 16]);
        // 0: nothing pending; 1: the reset again; 2: something else.
        kind(c.take_error()).map(|e| e.map_or(0, |e| if e.kind() == ErrorKind::ConnectionReset { 1 } else { 2 }))
    }),
    ("read after take_error took the peer's RST", |net| {
        let c = reset_by_peer(net);
        let e = c.take_error().unwrap().map(|e| e.kind());
        assert_eq!(e, Some(ErrorKind::ConnectionReset), "take_error did not see the RST");
        kind(c.read(&mut [0; 16]))
    }),
    ("send_to 65,508 bytes (over the IPv4 maximum)", |net| {
        let u = net.udp(true).unwrap();
        let c = net.udp(false).unwrap();
        kind(c.send_to(&[0; 65_508], u.local_addr().unwrap()))
    }),
    ("recv_from with a short buffer: truncated, the rest discarded", |net| {
        let u = net.udp(true).unwrap();
        let c = net.udp(false).unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(b"0123456789", u.local_addr().unwrap()).unwrap();
        c.send_to(b"ab", u.local_addr().unwrap()).unwrap();
        let first = kind(u.recv_from(&mut [0; 4]))?.0;
        let second = kind(u.recv_from(&mut [0; 16]))?.0;
        Ok(first * 100 + second)
    }),
    ("send_to another address on a connected UDP socket", |net| {
        let u1 = net.udp(true).unwrap();
        let u2 = net.udp(true).unwrap();
        let c = net.udp(false).unwrap();
        c.connect(&[u1.local_addr().unwrap()]).unwrap();
        u2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        kind(c.send_to(b"elsewhere", u2.local_addr().unwrap()))?;
        kind(u2.recv_from(&mut [0; 16])).map(|(n, _)| n)
    }),
    ("peer_addr of an unconnected UDP socket", |net| {
        let c = net.udp(false).unwrap();
        kind(c.peer_addr()).map(|_| 0)
    }),
    ("UDP connect: wrong family first, then the right one", |net| {
        let u = net.udp(true).unwrap();
        let c = net.udp(false).unwrap();
        let to = u.local_addr().unwrap();
        kind(c.connect(&[SocketAddr::new(net.server_ip6(), to.port()), to])).unwrap();
        Ok(usize::from(c.peer_addr().unwrap() == to))
    }),
];

/// std's side talks over loopback, so the table runs in a network namespace of its own
/// (root; under CI it must run, elsewhere it skips with the reason), never in the machine's.
#[test]
fn table_ours_equals_std() {
    in_netns("table_ours_equals_std", || {
        let std_net = StdNet;
        let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
        let ours = OurNet { a, b };
        let mut report = String::new();
        let mut bad = 0;
        for (name, row) in ROWS {
            let want = row(&std_net);
            let got = row(&ours);
            let mark = if want == got { "ok  " } else { "DIFF" };
            bad += usize::from(want != got);
            report.push_str(&format!("{mark} {name:<55} std {want:?}, ours {got:?}\n"));
        }
        eprint!("{report}");
        assert_eq!(bad, 0, "rows where our sockets differ from std's:\n{report}");
    });
}

/// A pair whose stack A records what it sends and receives into a pcap file.
fn captured_pair(path: &std::path::Path) -> (Stack, Stack, std::sync::Arc<netstack::device::capture::Capture>) {
    use netstack::device::capture::{Capture, CaptureDevice};
    let (da, db) = netstack::device::pair::pair(1500, FaultConfig::default(), FaultConfig::default());
    let cap = Capture::create(path, netstack::device::Medium::Ip).unwrap();
    let dev = CaptureDevice::new(Box::new(da), cap.clone());
    let a = Stack::new(Box::new(dev), netstack::StackConfig::default(), netstack::log::discard()).unwrap();
    let b = Stack::new(Box::new(db), peer_config(), netstack::log::discard()).unwrap();
    (a, b, cap)
}

/// TTLs of the IPv4 TCP segments from `port` carrying payload, in capture order.
fn data_ttls(path: &std::path::Path, port: u16) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(f).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        let d = &p.unwrap().data;
        if d.len() < 40 || d[0] >> 4 != 4 || d[9] != 6 {
            continue;
        }
        let ihl = usize::from(d[0] & 0xf) * 4;
        let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
        let doff = usize::from(d[ihl + 12] >> 4) * 4;
        let sport = u16::from_be_bytes([d[ihl], d[ihl + 1]]);
        if sport == port && total > ihl + doff {
            v.push(d[8]);
        }
    }
    v
}

/// `set_ttl` on a listener reaches the streams it accepts, `set_ttl` on a stream changes
/// the TTL of its later segments on the wire; the client keeps 64.
#[test]
fn ttl_on_the_wire() {
    let dir = std::env::temp_dir().join(format!("std_table_ttl_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.pcap");
    let (a, b, cap) = captured_pair(&path);
    let l = netstack::TcpListener::bind(&a, "10.0.0.2:0").unwrap();
    l.set_ttl(7).unwrap();
    assert_eq!(l.ttl().unwrap(), 7);
    let port = l.local_addr().unwrap().port();
    let c = netstack::TcpStream::connect(&b, ("10.0.0.2", port)).unwrap();
    let (s, _) = l.accept().unwrap();
    assert_eq!((s.ttl().unwrap(), c.ttl().unwrap()), (7, 64));
    let mut buf = [0u8; 16];
    (&s).write_all(b"first").unwrap();
    (&c).read_exact(&mut buf[..5]).unwrap();
    s.set_ttl(200).unwrap();
    assert_eq!(s.ttl().unwrap(), 200);
    (&s).write_all(b"second").unwrap();
    (&c).read_exact(&mut buf[..6]).unwrap();
    drop((s, c, l));
    drop(a);
    cap.flush().unwrap();
    let ttls = data_ttls(&path, port);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ttls, vec![7, 200], "TTLs of the two data segments");
    drop(b);
}

#[test]
fn ttl_bounds_as_linux() {
    let (a, _b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let l = netstack::TcpListener::bind(&a, "10.0.0.2:0").unwrap();
    let u = netstack::UdpSocket::bind(&a, "10.0.0.2:0").unwrap();
    let c = netstack::TcpStream::connect(&_b, l.local_addr().unwrap()).unwrap();
    // std's own: IP_TTL takes 1..=255 on Linux.
    let sl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    for ttl in [0u32, 256, 1 << 31] {
        assert_eq!(sl.set_ttl(ttl).unwrap_err().kind(), ErrorKind::InvalidInput, "std, ttl {ttl}");
        assert_eq!(l.set_ttl(ttl).unwrap_err().kind(), ErrorKind::InvalidInput, "listener, ttl {ttl}");
        assert_eq!(c.set_ttl(ttl).unwrap_err().kind(), ErrorKind::InvalidInput, "stream, ttl {ttl}");
        assert_eq!(u.set_ttl(ttl).unwrap_err().kind(), ErrorKind::InvalidInput, "udp, ttl {ttl}");
    }
    assert_eq!((l.ttl().unwrap(), c.ttl().unwrap(), sl.ttl().unwrap()), (64, 64, 64));
    for ttl in [1u32, 255] {
        l.set_ttl(ttl).unwrap();
        c.set_ttl(ttl).unwrap();
        u.set_ttl(ttl).unwrap();
        assert_eq!((l.ttl().unwrap(), c.ttl().unwrap(), u.ttl().unwrap()), (ttl, ttl, ttl));
    }
    // -1 (as a C int) restores the default, on Linux and here.
    sl.set_ttl(9).unwrap();
    sl.set_ttl(u32::MAX).unwrap();
    l.set_ttl(u32::MAX).unwrap();
    c.set_ttl(u32::MAX).unwrap();
    u.set_ttl(u32::MAX).unwrap();
    assert_eq!((sl.ttl().unwrap(), l.ttl().unwrap(), c.ttl().unwrap(), u.ttl().unwrap()), (64, 64, 64, 64));
}

/// Both handles of a cloned listener take from one queue, each connection once; the
/// listener closes (connects are refused) only when the last handle drops.
#[test]
fn listener_try_clone_shares_the_queue() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let l1 = netstack::TcpListener::bind(&a, "10.0.0.2:0").unwrap();
    let l2 = l1.try_clone().unwrap();
    let addr = l1.local_addr().unwrap();
    assert_eq!(l2.local_addr().unwrap(), addr);
    let c1 = netstack::TcpStream::connect(&b, addr).unwrap();
    let c2 = netstack::TcpStream::connect(&b, addr).unwrap();
    let (s1, p1) = l2.accept().unwrap();
    let (s2, p2) = l1.accept().unwrap();
    assert_eq!((p1, p2), (c1.local_addr().unwrap(), c2.local_addr().unwrap()));
    l1.set_nonblocking(true).unwrap();
    assert_eq!(l2.accept().unwrap_err().kind(), ErrorKind::WouldBlock, "a connection was taken twice");
    drop(l1);
    l2.set_nonblocking(false).unwrap();
    let _c3 = netstack::TcpStream::connect(&b, addr).expect("the clone still listens");
    assert!(l2.accept().is_ok());
    drop(l2);
    let e = netstack::TcpStream::connect(&b, addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    drop((s1, s2));
}

/// Port 0 gives each listener its own ephemeral port (RFC 6335 §6 range), v4 and v6.
#[test]
fn listener_port_zero() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let ls: Vec<_> = ["10.0.0.2:0", "0.0.0.0:0", "[fd00::2]:0", "10.0.0.2:0"]
        .iter()
        .map(|s| netstack::TcpListener::bind(&a, *s).unwrap())
        .collect();
    let ports: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
    assert!(ports.iter().all(|&p| p >= 49152), "{ports:?}");
    let mut uniq = ports.clone();
    uniq.sort_unstable();
    uniq.dedup();
    assert_eq!(uniq.len(), ports.len(), "a port was given twice: {ports:?}");
    assert_eq!(ls[2].local_addr().unwrap().ip(), "fd00::2".parse::<IpAddr>().unwrap());
    let c = netstack::TcpStream::connect(&b, ("fd00::2", ports[2])).unwrap();
    assert_eq!(ls[2].accept().unwrap().1, c.local_addr().unwrap());
}

/// connect and connect_with_timeout try each address in turn and return the last error.
#[test]
fn connect_falls_back_over_addresses() {
    let (a, b) = stack_pair(FaultConfig::default(), FaultConfig::default());
    let l = netstack::TcpListener::bind(&a, "10.0.0.2:0").unwrap();
    let good = l.local_addr().unwrap();
    let refused = SocketAddr::new(good.ip(), good.port().wrapping_add(1).max(1));
    let no_route: SocketAddr = "192.0.2.1:80".parse().unwrap();
    let t = Duration::from_secs(5);
    let s = netstack::TcpStream::connect_with_timeout(&b, &[no_route, refused, good][..], t).unwrap();
    assert_eq!(s.peer_addr().unwrap(), good);
    let e = netstack::TcpStream::connect_with_timeout(&b, &[no_route, refused][..], t).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "not the last address's error: {e}");
    let e = netstack::TcpStream::connect(&b, &[refused, no_route][..]).unwrap_err();
    let e2 = netstack::TcpStream::connect(&b, no_route).unwrap_err();
    assert_eq!(e.kind(), e2.kind(), "not the last address's error: {e}");
    // Name and port, as std's `(host, port)`, resolved by the stack: an IP literal here.
    assert!(netstack::TcpStream::connect(&b, ("10.0.0.2", good.port())).is_ok());
    // UDP: family mismatch first, then a good one.
    let u = netstack::UdpSocket::bind(&b, "0.0.0.0:0").unwrap();
    u.connect(&["[fd00::2]:53".parse().unwrap(), SocketAddr::from(([10, 0, 0, 2], 53))][..]).unwrap();
    assert_eq!(u.peer_addr().unwrap(), SocketAddr::from(([10, 0, 0, 2], 53)));
    let _ = a;
}
