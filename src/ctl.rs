//! The control socket of a running bin: `netstack ctl stats` prints its counters like
//! `nstat`, `netstack ctl ss` its connections like `ss -tin`.
//!
//! Each bin serves a Unix stream socket `<iface>.<pid>.sock` in [`runtime_dir`] (the
//! directory ours, not a symlink, mode 0700; the socket 0600: only its owner may ask). A
//! request is one line, the answer is text, then the server closes. Each client has a thread
//! of its own ([`MAX_CLIENTS`] at most) and [`CLIENT_TIMEOUT`] to send and to read, so no
//! client holds up another, and none touches the stack beyond one `stats()`/`sockets()`. A bin that ends without removing its socket leaves
//! a stale file; [`request`] removes the stale ones it meets.

use crate::actor::StackHandle;
use crate::proto::tcp::{State, TcpInfo};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the control sockets live: `$XDG_RUNTIME_DIR/netstack`, else `/run/netstack` for
/// root, else `/tmp/netstack-<uid>`.
pub fn runtime_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Path::new(&d).join("netstack");
    }
    if crate::device::sys::is_root() {
        return PathBuf::from("/run/netstack");
    }
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(0);
    PathBuf::from(format!("/tmp/netstack-{uid}"))
}

/// Clients answered at once at most; a connection beyond them is closed unanswered.
const MAX_CLIENTS: usize = 8;
/// How long a client may take to send its line, and to take its answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// A running control socket; dropping it stops its thread and removes the socket file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl ControlServer {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path); // wakes the accept, which then sees `stop`
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serve `stack`'s control socket for device `iface` on a thread of its own.
pub fn serve(stack: StackHandle, iface: &str) -> io::Result<ControlServer> {
    serve_in(&runtime_dir(), stack, iface)
}

/// Make `dir` (mode 0700) or check the one there: a real directory (not a symlink) of
/// ours, whose group and other permissions are then taken away.
fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let m = std::fs::symlink_metadata(dir)?;
    let bad = |why: &str| Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{}: {why}", dir.display())));
    if !m.file_type().is_dir() {
        return bad("not a directory (a symlink?): refusing to serve a control socket there");
    }
    if m.uid() != crate::device::sys::euid() {
        return bad("owned by another user: refusing to serve a control socket there");
    }
    if m.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// [`serve`] in directory `dir`.
pub fn serve_in(dir: &Path, stack: StackHandle, iface: &str) -> io::Result<ControlServer> {
    private_dir(dir)?;
    let path = dir.join(format!("{iface}.{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let clients = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("ctl".into()).stack_size(256 * 1024).spawn(move || {
        for conn in listener.incoming() {
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            let Ok(conn) = conn else { continue };
            // One thread per client (bounded), so a slow or silent one delays no other.
            if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                clients.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            let (stack, mine) = (stack.clone(), clients.clone());
            let spawned =
                std::thread::Builder::new().name("ctl-client".into()).stack_size(256 * 1024).spawn(move || {
                    let _ = answer(&stack, conn);
                    mine.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                // The closure (and with it the connection) is gone; give its place back.
                let _ = clients.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            }
        }
    })?;
    Ok(ControlServer { path, stop })
}

fn answer(stack: &StackHandle, conn: UnixStream) -> io::Result<()> {
    conn.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    conn.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&conn).take(256).read_line(&mut line)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let text = match words.as_slice() {
        ["stats"] => stack.stats().nonzero().map(|c| format!("{:<32}{:>16}\n", c.name, c.value)).collect(),
        ["stats", "-a"] => stack.stats().to_string(),
        ["ss"] => match stack.sockets() {
            Ok(v) => format_ss(&v),
            Err(e) => format!("error: {e}\n"),
        },
        _ => format!("error: unknown request {:?} (stats, stats -a, ss)\n", line.trim()),
    };
    (&conn).write_all(text.as_bytes())
}

use std::io::Read as _;

/// Send `req` to the control socket of the running bin on `iface` (any, when there is just
/// one) in [`runtime_dir`], and return its answer.
pub fn request(iface: Option<&str>, req: &str) -> io::Result<String> {
    request_in(&runtime_dir(), iface, req)
}

/// [`request`] in directory `dir`.
pub fn request_in(dir: &Path, iface: Option<&str>, req: &str) -> io::Result<String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("no running netstack bin ({}: {e})", dir.display())))?;
    let mut live = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".sock") else { continue };
        let dev = stem.rsplit_once('.').map_or(stem, |(d, _)| d);
        if iface.is_some_and(|i| i != dev) {
            continue;
        }
        match UnixStream::connect(e.path()) {
            Ok(s) => live.push((name, s)),
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                let _ = std::fs::remove_file(e.path()); // its bin is gone
            }
            Err(_) => {}
        }
    }
    match live.len() {
        0 => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no running netstack bin{} in {}",
                iface.map_or(String::new(), |i| format!(" on {i}")),
                dir.display()
            ),
        )),
        1 => {
            let (_, mut s) = live.pop().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(format!("{req}\n").as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        }
        _ => {
            let names: Vec<String> = live.into_iter().map(|(n, _)| n).collect();
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("several netstack bins are running ({}): choose one with --iface", names.join(", ")),
            ))
        }
    }
}

/// `ss -t`'s name of a state.
fn state_name(s: State) -> &'static str {
    match s {
        State::Closed => "CLOSED",
        State::Listen => "LISTEN",
        State::SynSent => "SYN-SENT",
        State::SynReceived => "SYN-RECV",
        State::Established => "ESTAB",
        State::FinWait1 => "FIN-WAIT-1",
        State::FinWait2 => "FIN-WAIT-2",
        State::CloseWait => "CLOSE-WAIT",
        State::Closing => "CLOSING",
        State::LastAck => "LAST-ACK",
        State::TimeWait => "TIME-WAIT",
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3).trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The connections as `ss -tin` prints them: a line of addresses and queues, then an
/// indented line of the algorithm, timers and counters (cwnd and ssthresh in segments).
pub fn format_ss(v: &[TcpInfo]) -> String {
    let mut out = format!(
        "{:<11}{:>7} {:>7} {:>28} {:>28}\n",
        "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port"
    );
    for i in v {
        let _ = writeln!(
            out,
            "{:<11}{:>7} {:>7} {:>28} {:>28}",
            state_name(i.state),
            i.recv_queue,
            i.send_queue,
            i.local.to_string(),
            i.remote.to_string()
        );
        let mss = i.mss.max(1);
        let rtt = i.srtt.map_or(String::from("-"), |s| format!("{}/{}", ms(s), ms(i.rttvar)));
        let _ = writeln!(
            out,
            "\t {} rto:{} rtt:{} mss:{} cwnd:{} ssthresh:{} bytes_acked:{} bytes_received:{} retrans:{} \
             delivery_rate:{}bps in_flight:{} snd_wnd:{} rcv_wnd:{}",
            i.congestion,
            ms(i.rto),
            rtt,
            i.mss,
            i.cwnd / mss,
            if i.ssthresh >= usize::MAX / 2 { "-".to_string() } else { (i.ssthresh / mss).to_string() },
            i.bytes_acked,
            i.bytes_received,
            i.retransmits,
            i.delivery_rate * 8,
            i.in_flight,
            i.snd_wnd,
            i.rcv_wnd
        );
    }
    out
}
