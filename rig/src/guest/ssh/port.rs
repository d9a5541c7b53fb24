//! Host ports for QEMU's `hostfwd=tcp:127.0.0.1:PORT-:22`, reserved so that concurrent rigs never
//! pick the same one.
//!
//! Binding a port and closing it again is racy on its own: two rigs can both see the port free.
//! So each candidate port also has a lock file (`<runtime dir>/ports/<port>`, in the user's
//! private 0700 directory: [`crate::host::userdir`]) that the owning rig holds with
//! `flock(LOCK_EX)` for as long as its [`PortReservation`] lives (the VM's lifetime); another rig
//! of the same user skips locked ports. Lock files are opened with `O_NOFOLLOW` and mode 0600.
//! The bind test then filters out ports that something other than a rig (or another user's rig)
//! is using. The lock dies with the rig's process, so a crashed rig leaks nothing. The range lies
//! below Linux's ephemeral range (32768+), so outgoing connections do not take the port between
//! the check and QEMU's bind; `RIG_SSH_PORTS=FIRST-LAST` picks another range.
//!
//! Only loopback is ever used: the bind test binds 127.0.0.1 and QEMU's forward is
//! `hostfwd=tcp:127.0.0.1:PORT-:22`, so the guest's ssh is never reachable from other hosts.

use super::SshError;
use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Candidate ports when `RIG_SSH_PORTS` is not set.
pub const DEFAULT_RANGE: RangeInclusive<u16> = 20022..=20999;

/// Where this user's per-port lock files live: `<runtime dir>/ports`, private to the user.
pub fn lock_dir() -> Result<PathBuf, SshError> {
    crate::host::userdir::private_subdir("ports").map_err(|e| SshError::PortDir {
        message: e.to_string(),
    })
}

/// The candidate ports: `RIG_SSH_PORTS` (`FIRST-LAST`, or one port) or [`DEFAULT_RANGE`].
pub fn port_range() -> Result<RangeInclusive<u16>, SshError> {
    match std::env::var("RIG_SSH_PORTS") {
        Err(_) => Ok(DEFAULT_RANGE),
        Ok(v) => parse_range(&v).ok_or(SshError::BadPortRange { value: v }),
    }
}

fn parse_range(v: &str) -> Option<RangeInclusive<u16>> {
    let (a, b) = v.trim().split_once('-').unwrap_or((v.trim(), v.trim()));
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a >= 1024 && a <= b).then_some(a..=b)
}

/// A host port on 127.0.0.1 that no other rig will use while this value lives.
#[derive(Debug)]
pub struct PortReservation {
    port: u16,
    lock_path: PathBuf,
    _lock: File,
}

impl PortReservation {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The lock file held for this port.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// The QEMU `-netdev user` option forwarding this port to the guest's ssh:
    /// `hostfwd=tcp:127.0.0.1:PORT-:22`.
    pub fn hostfwd(&self) -> String {
        format!("hostfwd=tcp:127.0.0.1:{}-:22", self.port)
    }
}

/// Reserves a free port in [`port_range`] with locks in [`lock_dir`].
pub fn reserve_port() -> Result<PortReservation, SshError> {
    reserve_port_in(&lock_dir()?, port_range()?)
}

/// Reserves a free port in `range`, holding a lock file in `lock_dir` (created 0700 if missing;
/// an existing one must be private to this user).
pub fn reserve_port_in(
    lock_dir: &Path,
    range: RangeInclusive<u16>,
) -> Result<PortReservation, SshError> {
    crate::host::userdir::ensure_private(lock_dir).map_err(|e| SshError::PortDir {
        message: e.to_string(),
    })?;
    let (first, last) = (*range.start(), *range.end());
    if last < first {
        return Err(SshError::NoFreePort {
            first,
            last,
            lock_dir: lock_dir.to_path_buf(),
            locked: 0,
            in_use: 0,
        });
    }
    let len = u32::from(last - first) + 1;
    // Start at a per-process offset so concurrent rigs rarely contend for the same lock.
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let start = seed % len;
    let (mut locked, mut in_use) = (0u32, 0u32);
    for i in 0..len {
        let port = first + ((start + i) % len) as u16;
        let path = lock_dir.join(port.to_string());
        let file = open_lock(&path).map_err(|source| SshError::PortLock {
            path: path.clone(),
            source,
        })?;
        if !try_lock(&file).map_err(|source| SshError::PortLock {
            path: path.clone(),
            source,
        })? {
            locked += 1;
            continue;
        }
        // Locked by us; is something outside rig listening there?
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(listener) => drop(listener),
            Err(_) => {
                in_use += 1;
                continue; // dropping `file` releases the lock
            }
        }
        return Ok(PortReservation {
            port,
            lock_path: path,
            _lock: file,
        });
    }
    Err(SshError::NoFreePort {
        first,
        last,
        lock_dir: lock_dir.to_path_buf(),
        locked,
        in_use,
    })
}

/// Opens (creating if needed, mode 0600) a lock file; never through a symlink.
fn open_lock(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another open file description holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small range of ports that are free right now (found by the OS), for isolated tests.
    fn free_port() -> u16 {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn two_reservations_never_share_a_port() {
        let dir = tempfile::tempdir().unwrap();
        let p = free_port();
        // Two candidate ports; whichever two reservations we get must differ, a third fails.
        let range = p.saturating_sub(1)..=p;
        let a = reserve_port_in(dir.path(), range.clone());
        let b = reserve_port_in(dir.path(), range.clone());
        let (a, b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            // p-1 may be taken by something else on this host; then only one is free.
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => {
                assert!(matches!(e, SshError::NoFreePort { .. }), "{e}");
                return;
            }
            (Err(e), Err(_)) => panic!("{e}"),
        };
        assert_ne!(a.port(), b.port());
        assert!(range.contains(&a.port()) && range.contains(&b.port()));
        let c = reserve_port_in(dir.path(), range).unwrap_err();
        match c {
            SshError::NoFreePort { locked, .. } => assert_eq!(locked, 2),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_released_port_can_be_reserved_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = free_port();
        let a = reserve_port_in(dir.path(), p..=p).unwrap();
        assert_eq!(a.port(), p);
        assert_eq!(a.hostfwd(), format!("hostfwd=tcp:127.0.0.1:{p}-:22"));
        assert!(a.lock_path().exists());
        let busy = reserve_port_in(dir.path(), p..=p).unwrap_err();
        assert!(busy.to_string().contains("locked"), "{busy}");
        drop(a);
        let again = reserve_port_in(dir.path(), p..=p).unwrap();
        assert_eq!(again.port(), p);
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn locks_live_in_a_private_directory_as_0600_files() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("ports");
        let p = free_port();
        let r = reserve_port_in(&locks, p..=p).unwrap();
        assert_eq!(mode(&locks), 0o700);
        assert_eq!(mode(r.lock_path()), 0o600);
        // An existing lock file is reused.
        drop(r);
        assert_eq!(reserve_port_in(&locks, p..=p).unwrap().port(), p);
        // The default directory is the user's private one.
        let d = lock_dir().unwrap();
        assert_eq!(mode(&d), 0o700);
        assert!(d.ends_with("ports"), "{}", d.display());
    }

    #[test]
    fn a_symlink_planted_as_a_lock_file_or_directory_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("ports");
        std::fs::create_dir(&locks).unwrap();
        std::fs::set_permissions(&locks, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let victim = dir.path().join("victim");
        let p = free_port();
        std::os::unix::fs::symlink(&victim, locks.join(p.to_string())).unwrap();
        let e = reserve_port_in(&locks, p..=p).unwrap_err();
        assert!(matches!(e, SshError::PortLock { .. }), "{e}");
        assert!(!victim.exists(), "created a file through the symlink");

        let linked = dir.path().join("linked-ports");
        std::os::unix::fs::symlink(&locks, &linked).unwrap();
        let e = reserve_port_in(&linked, p..=p).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        // A directory others can write to is not used for locks of ours either... unless it
        // is our own, which is tightened.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            .unwrap();
        reserve_port_in(&open, p..=p).unwrap();
        assert_eq!(mode(&open), 0o700);
    }

    #[test]
    fn rig_ssh_ports_ranges_parse_strictly() {
        assert_eq!(parse_range("30000-30010"), Some(30000..=30010));
        assert_eq!(parse_range(" 30005 "), Some(30005..=30005));
        assert_eq!(parse_range("30010-30000"), None);
        assert_eq!(parse_range("22-30"), None, "privileged ports are refused");
        assert_eq!(parse_range("x-y"), None);
        assert_eq!(parse_range("70000"), None);
    }

    #[test]
    fn a_port_someone_listens_on_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let p = listener.local_addr().unwrap().port();
        match reserve_port_in(dir.path(), p..=p).unwrap_err() {
            SshError::NoFreePort { in_use, locked, .. } => assert_eq!((in_use, locked), (1, 0)),
            other => panic!("{other}"),
        }
        drop(listener);
        assert_eq!(reserve_port_in(dir.path(), p..=p).unwrap().port(), p);
    }

    #[test]
    fn another_process_holding_the_lock_is_respected() {
        // flock is per open file description, so a second open in this process is "another rig";
        // check with a real second process too.
        let dir = tempfile::tempdir().unwrap();
        let p = free_port();
        let res = reserve_port_in(dir.path(), p..=p).unwrap();
        let out = std::process::Command::new("flock")
            .args(["-n", "-E", "42"])
            .arg(res.lock_path())
            .arg("true")
            .status()
            .unwrap();
        assert_eq!(out.code(), Some(42), "another process got the lock");
    }
}
