//! The crate's only `unsafe`: thin wrappers over syscalls the standard library lacks.

use std::io;
use std::os::fd::RawFd;

/// Move the calling thread into a new, empty network namespace (`unshare(CLONE_NEWNET)`).
/// Threads and processes it spawns afterwards inherit the namespace; the rest of the
/// process stays where it was. Needs CAP_SYS_ADMIN.
pub fn unshare_net() -> io::Result<()> {
    // SAFETY: unshare takes a flags integer and touches no memory of ours.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Put `fd` in non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own read and write only kernel state.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `TUNSETOFFLOAD` with the given flags (0 turns every offload off). Offload settings survive
/// on a persistent device after its fd closes, so attach code always sets them (ARCHITECTURE.md §3, tun).
pub fn tun_set_offload(fd: RawFd, flags: libc::c_ulong) -> io::Result<()> {
    // TUNSETOFFLOAD = _IOW('T', 208, unsigned int)
    const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
    // SAFETY: the ioctl takes its argument by value; no memory is shared.
    let r = unsafe { libc::ioctl(fd, TUNSETOFFLOAD as _, flags) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Raise this process's soft limit on open descriptors to `want` (capped by the hard limit,
/// never lowered); returns the soft limit now in force. Benchmarks that hold thousands of
/// kernel sockets call it.
pub fn raise_nofile_limit(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into `lim`, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur);
    }
    lim.rlim_cur = want.min(lim.rlim_max);
    // SAFETY: setrlimit reads one rlimit from `lim`, which outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

/// Give the C allocator's free memory back to the kernel (`malloc_trim(0)`): glibc returns
/// only the top of each arena by itself, so after a burst of connections the pages freed
/// below a live allocation stay resident. Returns whether any memory was released.
pub fn trim_heap() -> bool {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe { libc::malloc_trim(0) != 0 }
}

/// Restore the default action of SIGPIPE (end the process), which Rust's runtime sets to
/// ignore: a command-line tool whose reader goes away (`netstack | head -3`) then ends
/// quietly, as `cat` or `ping` do, instead of panicking in `println!` on the broken pipe.
pub fn default_sigpipe() {
    // SAFETY: signal() with SIG_DFL installs no handler of ours; it only changes the action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// This process's effective user id (the owner of the files it creates).
pub fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// True when this process may administer the network (effective uid 0 is taken as the sign;
/// the TUN tests use it to decide whether they can run at all).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when a network interface called `name` exists in this thread's network namespace
/// (`/sys/class/net` shows the namespace sysfs was mounted in, which may differ).
pub fn interface_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else { return false };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// `read(2)` into the spare capacity of `buf` (which must be empty), without zeroing it
/// first; `buf.len()` becomes the bytes read.
pub fn read_into(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    debug_assert!(buf.is_empty());
    let spare = buf.spare_capacity_mut();
    // SAFETY: the kernel writes at most `spare.len()` bytes into memory we own for the
    // duration of the call.
    let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the first `n` bytes were initialised by `read`, and `n <= capacity`.
    unsafe { buf.set_len(n as usize) };
    Ok(n as usize)
}

/// Length of `struct virtio_net_hdr` (no mergeable buffers), the prefix of every packet on a
/// TUN fd opened with `IFF_VNET_HDR`.
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the kernel left the transport checksum partial (a locally
/// generated packet; it was never on a wire).
pub const VNET_F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified.
pub const VNET_F_DATA_VALID: u8 = 2;
/// `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`: the kernel may hand us partial checksums and TCP
/// super-segments of up to 64 KiB.
pub const TUN_OFFLOAD_CSUM_TSO: libc::c_ulong = 0x01 | 0x02 | 0x04;

/// Open `/dev/net/tun` and attach it to TUN device `name` (created if missing) with
/// `IFF_TUN | IFF_NO_PI | IFF_VNET_HDR`. tun-tap's `Iface` cannot ask for `IFF_VNET_HDR`,
/// which the offload path needs; the plain path keeps using tun-tap.
pub fn tun_open_vnet(name: &str) -> io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun")?;
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    use std::os::fd::AsRawFd;
    // SAFETY: TUNSETIFF reads and writes the ifreq we own for the duration of the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF as _, &mut req as *mut libc::ifreq) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// `readv` of one packet from a vnet-header TUN fd: the header into `hdr`, the packet into
/// the spare capacity of `buf` (which must be empty). Returns the packet length.
pub fn read_vnet(fd: RawFd, hdr: &mut [u8; VNET_HDR_LEN], buf: &mut Vec<u8>) -> io::Result<usize> {
    debug_assert!(buf.is_empty());
    let spare = buf.spare_capacity_mut();
    let iov = [
        libc::iovec { iov_base: hdr.as_mut_ptr().cast(), iov_len: VNET_HDR_LEN },
        libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: spare.len() },
    ];
    // SAFETY: both iovecs point to memory we own, valid for writes of their lengths.
    let n = unsafe { libc::readv(fd, iov.as_ptr(), 2) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = (n as usize).saturating_sub(VNET_HDR_LEN);
    // SAFETY: `readv` initialised the first `n` bytes of the spare capacity, `n <= capacity`.
    unsafe { buf.set_len(n) };
    Ok(n)
}

/// `writev` of one packet to a vnet-header TUN fd, prefixed with `hdr`.
pub fn write_vnet(fd: RawFd, hdr: &[u8; VNET_HDR_LEN], pkt: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec { iov_base: hdr.as_ptr() as *mut _, iov_len: VNET_HDR_LEN },
        libc::iovec { iov_base: pkt.as_ptr() as *mut _, iov_len: pkt.len() },
    ];
    // SAFETY: the iovecs point to memory we own; writev only reads through them.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A raw packet socket (`socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))`, like tcpdump's)
/// bound to interface `ifname`: `send` writes whole Ethernet frames out of that interface,
/// `recv` reads every frame crossing it, both directions. For tests that play a hostile
/// peer on the kernel side of a TAP device; needs CAP_NET_RAW, so call it inside a test's
/// own network namespace.
pub fn packet_socket(ifname: &str) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let c = std::ffi::CString::new(ifname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket takes integers and touches no memory of ours.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor just created and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sll` is a valid sockaddr_ll of `len` bytes that outlives the call.
    let r = unsafe { libc::bind(fd.as_raw_fd(), (&sll as *const libc::sockaddr_ll).cast(), len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}
