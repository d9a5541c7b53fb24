//! A booted guest's state saved to a file and restored into fresh QEMUs: repetitions that start
//! at the guest's ready shell without booting (QEMU migration to a file, then `-incoming`).
//!
//! [`Vm::save_snapshot`] stops the guest at its ready shell and migrates it to a file (`exec:cat`:
//! QEMU 7.2 has no `file:` migration). [`VmConfig::restore`](super::vm::VmConfig::restore) makes
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

/// The `exec:` migration URI that writes to or reads from `path` (QEMU runs it with `sh -c`).
pub fn exec_uri(write: bool, path: &Path) -> String {
    let quoted = format!("'{}'", path.display().to_string().replace('\'', "'\\''"));
    if write {
        format!("exec:cat > {quoted}")
    } else {
        format!("exec:cat {quoted}")
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

impl Vm {
    /// Stops the guest and saves its state to `path`. The VM stays stopped; shut it down after.
    pub fn save_snapshot(&mut self, path: &Path) -> Result<Snapshot, VmError> {
        self.qmp_raw("stop", None)?;
        migration_events(self)?;
        let cleanup = crate::host::cleanup::Registration::new(
            crate::host::cleanup::Action::RemoveFile(path.to_path_buf()),
        );
        self.qmp_raw("migrate", Some(json!({"uri": exec_uri(true, path)})))?;
        wait_migration(self, "saving the guest's state", self.timeouts.boot)?;
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
        self.qmp_raw(
            "migrate-incoming",
            Some(json!({"uri": exec_uri(false, &snap.state)})),
        )?;
        wait_migration(self, "restoring the guest's state", self.timeouts.boot)?;
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

    #[test]
    fn exec_uris_quote_the_path() {
        let p = Path::new("/tmp/rig run/it's/state");
        assert_eq!(
            exec_uri(true, p),
            "exec:cat > '/tmp/rig run/it'\\''s/state'"
        );
        assert_eq!(exec_uri(false, p), "exec:cat '/tmp/rig run/it'\\''s/state'");
    }
}
