//! Helpers shared by the benches: `ip`, medians, the kernel-over-veth reference and CSV files.
#![allow(dead_code)]

use netstack::device::sys;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The value after `--name` on the command line, parsed (cargo bench adds flags of its own,
/// which are ignored); `default` when absent. Panics with the flag's name on a bad value.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} needs a value")),
        None => default,
    }
}

/// Run `ip` with `args`; panics when it fails.
pub fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().expect("ip").success();
    assert!(ok, "ip {args:?}");
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Address of this namespace's end of the veth pair, and of the peer's.
pub const VETH_LOCAL: &str = "10.9.0.1";
pub const VETH_PEER: &str = "10.9.0.2";

type Job = Box<dyn FnOnce() + Send>;

/// The kernel on both ends of a veth pair at MTU 1500: the like-for-like reference for one hop
/// between two hosts. The peer end lives in a second namespace, held by a thread that unshared
/// again; [`Veth::spawn_in_peer`] runs code there (threads it starts stay in that namespace).
/// Create it inside the bench's own namespace.
pub struct Veth {
    jobs: mpsc::Sender<Job>,
}

impl Veth {
    pub fn new() -> Veth {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (jobs, job_rx) = mpsc::channel::<Job>();
        thread::spawn(move || {
            sys::unshare_net().expect("unshare(CLONE_NEWNET) for the veth peer");
            ip(&["link", "set", "lo", "up"]);
            // The thread's id names its namespace for `ip link set ... netns`.
            let tid = std::fs::read_link("/proc/thread-self").expect("thread-self");
            tid_tx.send(tid.file_name().unwrap().to_string_lossy().to_string()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !sys::interface_exists("vb") {
                assert!(Instant::now() < deadline, "veth end never arrived");
                thread::sleep(Duration::from_millis(10));
            }
            ip(&["addr", "add", &format!("{VETH_PEER}/24"), "dev", "vb"]);
            ip(&["link", "set", "vb", "up"]);
            for job in job_rx {
                thread::spawn(job);
            }
        });
        let tid = tid_rx.recv().unwrap();
        ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &tid]);
        ip(&["addr", "add", &format!("{VETH_LOCAL}/24"), "dev", "va"]);
        ip(&["link", "set", "va", "up"]);
        let veth = Veth { jobs };
        // Until the peer answers: a listener there, connected to from here.
        let (up_tx, up_rx) = mpsc::channel();
        veth.spawn_in_peer(move || {
            let l = std::net::TcpListener::bind((VETH_PEER, 1)).expect("bind on the veth peer");
            up_tx.send(()).unwrap();
            drop(l.accept());
        });
        up_rx.recv_timeout(Duration::from_secs(5)).expect("veth peer never came up");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect((VETH_PEER, 1)).is_err() {
            assert!(Instant::now() < deadline, "veth path never came up");
            thread::sleep(Duration::from_millis(20));
        }
        veth
    }

    /// Run `f` on a new thread in the peer's namespace.
    pub fn spawn_in_peer(&self, f: impl FnOnce() + Send + 'static) {
        self.jobs.send(Box::new(f)).expect("veth peer thread");
    }
}

/// Write `text` to `path` (creating its directory) and say where it went.
pub fn write_csv(path: &str, text: &str) {
    if let Some(dir) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(path, text) {
        Ok(()) => println!("wrote {path}"),
        Err(e) => println!("could not write {path}: {e}"),
    }
}
