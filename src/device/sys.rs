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
/// on a persistent device after its fd closes, so attach code always sets them (DESIGN.md §7).
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
