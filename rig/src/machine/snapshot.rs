//! A booted guest's state saved to a file and restored into fresh QEMUs: repetitions that start
//! at the guest's ready shell without booting (QEMU migration to a file, then `-incoming`).
//!
//! [`Vm::save_snapshot`] stops the guest at its ready shell and migrates it to a file through a
//! unix socket rig serves (QEMU 7.2 has no `file:` migration, and under `-sandbox` it may not run
//! `exec:cat`). A spec restored from it ([`MachineSpec::restore_from`](super::spec::MachineSpec::restore_from)) makes
//! [`Vm::boot`] start QEMU with the same argv plus `-incoming defer`, load the file, and continue
//! the guest; the kernel console log of the original boot is copied to the new run's
//! `console.log` first, so the analyzer sees a whole boot either way.
//!
//! What a restored run shares with every other run from the same file: the kernel's memory as it
//! was at the ready shell (KASLR offset, hash seeds, the CRNG's state until it reseeds). What it
//! does not share: anything the scenario did (each run starts from the saved state, never from
//! another run's), QEMU, the sockets, the host-side seed and, once the run starts, the guest's
//! random numbers. Writing to `/dev/urandom` only mixes into the input pool: a restored CRNG
//! keeps producing the saved guest's bytes until it reseeds (measured: two restored runs read
//! the same 16 bytes right after their writes). Userspace has no way to force a reseed without
//! an `ioctl` (`RNDRESEEDCRNG`), which no program in rig's rootfs can issue, so the guest layer
//! writes fresh host bytes and then waits out the kernel's reseed schedule, [`reseed_wait`]:
//! during the first two minutes of uptime the CRNG reseeds from the input pool at least every
//! `max(1, whole seconds of uptime / 2)` seconds (`crng_reseed_interval` and the timer
//! `crng_reseed` re-arms, drivers/char/random.c in 6.12; debian-6.1's copy is not checked). ssh is not
//! offered on restored guests (a host key in saved memory would be shared by every run).

use super::vm::{Vm, VmError};
use serde_json::json;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Margin on top of the kernel's reseed interval for its timer and worker to run on a loaded
/// TCG host.
const RESEED_SLACK: Duration = Duration::from_millis(300);

/// The CRNG's reseed interval at guest uptime `uptime_s` (drivers/char/random.c,
/// `crng_reseed_interval`): `max(1, ⌊uptime⌋ / 2)` seconds for two minutes, then 60 s.
fn reseed_interval(uptime_s: f64) -> Duration {
    let whole = uptime_s.max(0.0) as u64;
    Duration::from_secs(if whole >= 120 { 60 } else { (whole / 2).max(1) })
}

/// How long to wait after mixing fresh bytes into the input pool at guest uptime `uptime_s`
/// until the CRNG has certainly reseeded from that pool: `crng_reseed` re-arms its own timer for
/// one interval each time it runs, so the reseed before the write was at most one interval (at
/// most the interval now: it only grows) earlier, and the one it armed falls inside the wait.
pub fn reseed_wait(uptime_s: f64) -> Duration {
    reseed_interval(uptime_s) + RESEED_SLACK
}

/// A saved post-boot state.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// QEMU's migration stream.
    pub state: PathBuf,
    /// The kernel console log of the boot that was saved.
    pub boot_log: PathBuf,
    pub kernel_release: String,
    /// Keeps `state` on the signal path's list (host::cleanup) while the snapshot is in use.
    _cleanup: std::sync::Arc<crate::host::cleanup::Registration>,
}

/// The migration stream between QEMU and a file, through a unix socket in the VM's private
/// sockets folder: QEMU runs under `-sandbox … spawn=deny`, so it cannot start `cat` for an
/// `exec:` URI (and QEMU 7.2 has no `file:` one); rig moves the bytes itself.
struct Transfer {
    uri: String,
    copier: std::thread::JoinHandle<std::io::Result<u64>>,
    /// Where the copier's accept can be woken when QEMU never connects.
    socket: PathBuf,
}

impl Transfer {
    /// Serves the socket QEMU's `migrate` connects to and writes what it sends to `path`
    /// (fsynced: the saved state outlives this process).
    fn save_to(vm: &Vm, path: &Path) -> Result<Transfer, VmError> {
        let socket = vm.socket_path("migrate");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).map_err(artifact(&socket))?;
        let mut out = std::fs::File::create(path).map_err(artifact(path))?;
        let copier = std::thread::Builder::new()
            .name("rig-migrate-save".into())
            .spawn(move || {
                let (mut stream, _) = listener.accept()?;
                let n = std::io::copy(&mut stream, &mut out)?;
                out.sync_all()?;
                Ok(n)
            })
            .map_err(artifact(path))?;
        Ok(Transfer {
            uri: format!("unix:{}", socket.display()),
            copier,
            socket,
        })
    }

    /// The socket QEMU's `migrate-incoming` is to listen on, and its URI.
    fn incoming(vm: &Vm) -> (String, PathBuf) {
        let socket = vm.socket_path("incoming");
        let _ = std::fs::remove_file(&socket);
        (format!("unix:{}", socket.display()), socket)
    }

    /// Connects to the socket QEMU listens on and sends it `path`.
    fn send(socket: &Path, path: &Path) -> Result<Transfer, VmError> {
        let mut stream = UnixStream::connect(socket).map_err(artifact(socket))?;
        let mut file = std::fs::File::open(path).map_err(artifact(path))?;
        let copier = std::thread::Builder::new()
            .name("rig-migrate-load".into())
            .spawn(move || {
                let n = std::io::copy(&mut file, &mut stream)?;
                stream.shutdown(std::net::Shutdown::Write)?;
                Ok(n)
            })
            .map_err(artifact(path))?;
        Ok(Transfer {
            uri: String::new(),
            copier,
            socket: socket.to_path_buf(),
        })
    }

    /// Waits for the copier (once QEMU's side is over: the migration ended or failed), and
    /// wakes a copier still waiting for a connection that will never come.
    fn finish(self, what: &str) -> Result<u64, VmError> {
        if !self.copier.is_finished() {
            // A save whose `migrate` failed before QEMU connected: end the accept.
            let _ = UnixStream::connect(&self.socket);
        }
        let r = self
            .copier
            .join()
            .map_err(|_| VmError::Snapshot(format!("{what}: the copying thread panicked")))?;
        let _ = std::fs::remove_file(&self.socket);
        r.map_err(|e| VmError::Snapshot(format!("{what}: {e}")))
    }
}

fn artifact(path: &Path) -> impl Fn(std::io::Error) -> VmError + '_ {
    move |source| VmError::Artifact {
        path: path.to_path_buf(),
        source,
    }
}

fn migration_events(vm: &mut Vm) -> Result<(), VmError> {
    vm.qmp_raw(
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "events", "state": true}]})),
    )
    .map(drop)
}

/// Waits for the migration to end; an end other than `completed` is an error.
fn wait_migration(vm: &mut Vm, what: &str, timeout: Duration) -> Result<(), VmError> {
    let done = |e: &serde_json::Value| {
        matches!(
            e.pointer("/data/status").and_then(|s| s.as_str()),
            Some("completed" | "failed" | "cancelled")
        )
    };
    let ev = vm.wait_qmp_event_matching("MIGRATION", &done, timeout)?;
    match ev.pointer("/data/status").and_then(|s| s.as_str()) {
        Some("completed") => Ok(()),
        other => Err(VmError::Snapshot(format!(
            "{what}: migration ended `{}`",
            other.unwrap_or("?")
        ))),
    }
}

#[cfg(test)]
impl Snapshot {
    /// A snapshot at `state` that nothing saved, for tests of what holds one.
    pub(crate) fn unsaved(state: &Path) -> Snapshot {
        Snapshot {
            state: state.to_path_buf(),
            boot_log: state.with_extension("log"),
            kernel_release: "6.1.0-test".into(),
            _cleanup: std::sync::Arc::new(crate::host::cleanup::Registration::new(
                crate::host::cleanup::Action::RemoveFile(state.to_path_buf()),
            )),
        }
    }
}

impl Vm {
    /// Stops the guest and saves its state to `path`. The VM stays stopped; shut it down after.
    pub fn save_snapshot(&mut self, path: &Path) -> Result<Snapshot, VmError> {
        self.qmp_raw("stop", None)?;
        migration_events(self)?;
        let cleanup = crate::host::cleanup::Registration::new(
            crate::host::cleanup::Action::RemoveFile(path.to_path_buf()),
        );
        let what = "saving the guest's state";
        let transfer = Transfer::save_to(self, path)?;
        let migrated = self
            .qmp_raw("migrate", Some(json!({"uri": transfer.uri})))
            .and_then(|_| wait_migration(self, what, self.timeouts.boot));
        let copied = transfer.finish(what);
        if let Err(e) = migrated.and(copied.map(drop)) {
            // Half a state is no state: nothing may restore from it.
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(Snapshot {
            state: path.to_path_buf(),
            boot_log: self.run_dir().console_log(),
            kernel_release: self.timings().kernel_release.clone(),
            _cleanup: std::sync::Arc::new(cleanup),
        })
    }

    /// Loads `snap` into this (`-incoming defer`) QEMU and lets the guest run.
    pub(super) fn load_snapshot(&mut self, snap: &Snapshot) -> Result<(), VmError> {
        migration_events(self)?;
        let what = "restoring the guest's state";
        let (uri, socket) = Transfer::incoming(self);
        // QEMU listens once `migrate-incoming` returns.
        self.qmp_raw("migrate-incoming", Some(json!({ "uri": uri })))?;
        let transfer = Transfer::send(&socket, &snap.state)?;
        let migrated = wait_migration(self, what, self.timeouts.boot);
        let copied = transfer.finish(what);
        migrated?;
        copied?;
        self.qmp_raw("cont", None).map(drop)
    }
}

/// Starts a restored run's `console.log` with the saved boot's log and a line saying so.
pub(super) fn seed_console_log(snap: &Snapshot, log: &Path) -> std::io::Result<()> {
    let mut text = std::fs::read(&snap.boot_log)?;
    if !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(
        format!(
            "rig: restored from the saved state {} (the boot above is that of the saved guest)\n",
            snap.state.display()
        )
        .as_bytes(),
    );
    std::fs::write(log, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reseed_wait_is_one_interval_and_the_slack() {
        let ms = |s: f64| reseed_wait(s).as_millis();
        assert_eq!(ms(0.5), 1300);
        assert_eq!(ms(3.9), 1300);
        assert_eq!(ms(4.0), 2300);
        assert_eq!(ms(31.2), 15300);
        assert_eq!(ms(119.0), 59300);
        assert_eq!(ms(500.0), 60300);
    }
}
