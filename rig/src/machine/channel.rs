//! The command shell's channel to QEMU: a connected socket pair whose QEMU end QEMU inherits
//! (`-chardev socket,fd=N`).
//!
//! Why not a socket QEMU listens on: QEMU's `virtconsole` drops whatever its chardev cannot
//! take at once (`hw/char/virtio-console.c`: a console port is never throttled), and a unix
//! socket takes at most its sender's send buffer (~208 KiB by default). If rig's reader falls
//! behind by that much on a loaded host, command output — or its end marker — is lost and the
//! command looks hung. Creating the pair here lets rig give QEMU's end a send buffer of
//! [`SEND_BUFFER`] (`SO_SNDBUFFORCE`, which needs CAP_NET_ADMIN; without it the kernel caps
//! `SO_SNDBUF` at `net.core.wmem_max`, and [`ShellPair::send_buffer`] says what was granted).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The send buffer asked for QEMU's end: far more than any stall of rig's reader lets a TCG
/// guest write.
pub const SEND_BUFFER: usize = 64 * 1024 * 1024;

/// rig's end and QEMU's end of the shell channel.
pub struct ShellPair {
    pub ours: UnixStream,
    pub qemu: UnixStream,
    /// The send buffer the kernel granted QEMU's end (bytes).
    pub send_buffer: usize,
}

impl ShellPair {
    pub fn new() -> io::Result<ShellPair> {
        use rustix::net::sockopt;
        let (ours, qemu) = UnixStream::pair()?;
        if sockopt::set_socket_send_buffer_size_force(&qemu, SEND_BUFFER).is_err() {
            sockopt::set_socket_send_buffer_size(&qemu, SEND_BUFFER)?;
        }
        let send_buffer = sockopt::socket_send_buffer_size(&qemu)?;
        Ok(ShellPair {
            ours,
            qemu,
            send_buffer,
        })
    }

    /// QEMU's end as the child sees it (the same number: only its close-on-exec flag is
    /// cleared, in the child).
    pub fn qemu_fd(&self) -> RawFd {
        self.qemu.as_raw_fd()
    }

    /// Makes `cmd`'s child inherit QEMU's end.
    #[allow(unsafe_code)]
    pub fn pass_to(&self, cmd: &mut Command) {
        let fd = self.qemu_fd();
        // rig's only unsafe blocks (each says why): host/process.rs `die_with_rig`,
        // machine/channel.rs `ShellPair::pass_to`, host/cache_manifest.rs `seal`.
        // SAFETY: kept unsafe: `pre_exec` is unsafe by definition, and std has no safe way to
        // let a child inherit one descriptor under its own number. The closure makes one
        // fcntl(2) system call (async-signal-safe, no allocation). `fd` stays open in the
        // child until exec: the caller keeps `self.qemu` open until `spawn` returned.
        unsafe {
            cmd.pre_exec(move || {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The pair carries bytes both ways, and QEMU's end gets at least the default buffer (as
    /// root, the whole [`SEND_BUFFER`]): a writer can queue that much with nobody reading.
    #[test]
    fn the_pair_is_connected_and_queues_its_send_buffer() {
        let mut p = ShellPair::new().unwrap();
        assert!(p.send_buffer >= 64 * 1024, "{}", p.send_buffer);
        if rustix::process::geteuid().is_root() {
            assert!(p.send_buffer >= SEND_BUFFER, "{}", p.send_buffer);
        }
        p.qemu.set_nonblocking(true).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut queued = 0;
        while let Ok(n) = p.qemu.write(&chunk) {
            queued += n;
            if queued > 2 * SEND_BUFFER {
                break;
            }
        }
        // The kernel charges each queued chunk's overhead: at least half the buffer is data.
        assert!(queued >= p.send_buffer / 2, "{queued} of {}", p.send_buffer);
        let mut buf = [0u8; 16];
        p.ours.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"xxxxxxxxxxxxxxxx");
        p.ours.write_all(b"hi").unwrap();
        let mut two = [0u8; 2];
        p.qemu.set_nonblocking(false).unwrap();
        p.qemu.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"hi");
    }
}
