//! Whether QEMU is running the guest right now: the question that decides whether something the
//! guest did not do is the kernel's failure or rig's. Asked in an order that cannot hang on a
//! QEMU that is stopped: has it exited, is its process stopped (SIGSTOP, a debugger, a frozen
//! cgroup: it would never answer QMP), and only then QMP's `query-status`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

/// What QEMU is doing with the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineState {
    /// QEMU runs the guest: what the guest does not do is the kernel's doing.
    Running,
    /// QEMU exited; why.
    Gone(String),
    /// QEMU's process is stopped on the host (state `T`): the host holds it, not the guest.
    ProcessStopped,
    /// QEMU answers, but the guest is not running (paused, migrating, …): its status.
    NotRunning(String),
    /// QEMU's process runs but QMP does not answer: QEMU itself is stuck.
    Unresponsive(String),
}

impl MachineState {
    /// QEMU can run nothing more for this run (stopped, not answering, or gone).
    pub fn is_stuck(&self) -> bool {
        !matches!(self, MachineState::Running)
    }
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MachineState::Running => write!(f, "QEMU runs the guest"),
            MachineState::Gone(why) => write!(f, "{why}"),
            MachineState::ProcessStopped => write!(
                f,
                "QEMU's process is stopped on the host (SIGSTOP or a debugger): the host held the \
                 guest, not the kernel"
            ),
            MachineState::NotRunning(status) => {
                write!(f, "QEMU is not running the guest: status {status}")
            }
            MachineState::Unresponsive(why) => {
                write!(f, "QEMU does not answer QMP: QEMU itself is stuck ({why})")
            }
        }
    }
}

/// Whether process `pid` is stopped (`T`, stopped by a signal, or `t`, by a tracer), from
/// `/proc/<pid>/stat`.
pub fn process_stopped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S …`: comm may hold anything; the state follows the last `)`.
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .is_some_and(|st| st == "T" || st == "t")
}

/// How a boot that never reached rig's ready marker (with QEMU still there) ended: what tells
/// a kernel that hangs at boot (the kernel's failure) from a host too slow for the deadline or
/// a QEMU the host held (rig's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootStall {
    /// The console showed nothing at all: the kernel never ran (firmware, QEMU, the image).
    NoOutput,
    /// The kernel printed, then nothing more for this long before the deadline.
    Silent(Duration),
    /// The console was still printing near the deadline: the boot was progressing.
    Progressing,
}

pub(super) fn never_ready_message(
    stall: &BootStall,
    waited: &Duration,
    state: &MachineState,
    console: &str,
    artifacts: &Path,
) -> String {
    let what = match (stall, state) {
        (_, s) if *s != MachineState::Running => format!("{s}"),
        (BootStall::NoOutput, _) => {
            "the console showed nothing from the kernel at all (it never started: QEMU, the \
             firmware or the image)"
                .to_string()
        }
        (BootStall::Silent(d), _) => format!(
            "the kernel hung at boot: it printed nothing for the last {:.0}s while QEMU ran it",
            d.as_secs_f64()
        ),
        (BootStall::Progressing, _) => "the boot was still progressing (the console kept \
             printing): the host is too slow for the deadline; raise RIG_TIMEOUT_SCALE"
            .to_string(),
    };
    format!(
        "the guest never reached rig's ready marker within {waited:?}: {what}\nconsole showed \
         last:\n{console}\nartifacts: {}",
        artifacts.display()
    )
}

/// A console silent this share of the boot timeout before the deadline means the kernel hung.
pub(super) const STALL_SHARE: f64 = 1.0 / 3.0;

/// ...and silent at least this long: under a deadline scaled down to a fraction of a second a
/// pause between two console lines is no hang (and a boot cut that short is rig's deadline's
/// doing, not the kernel's).
pub(super) const STALL_MIN: Duration = Duration::from_secs(5);

/// How a boot that timed out ended, from when the console last printed (`None`: never).
pub(super) fn boot_stall(last_output: Option<Duration>, boot_timeout: Duration) -> BootStall {
    match last_output {
        None => BootStall::NoOutput,
        Some(quiet) if quiet >= boot_timeout.mul_f64(STALL_SHARE).max(STALL_MIN) => {
            BootStall::Silent(quiet)
        }
        Some(_) => BootStall::Progressing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_is_hung_only_after_a_long_real_silence() {
        let boot = Duration::from_secs(120);
        assert_eq!(boot_stall(None, boot), BootStall::NoOutput);
        assert_eq!(
            boot_stall(Some(Duration::from_secs(41)), boot),
            BootStall::Silent(Duration::from_secs(41))
        );
        assert_eq!(
            boot_stall(Some(Duration::from_secs(39)), boot),
            BootStall::Progressing
        );
        // A deadline scaled to a fraction of a second: a short pause is no hang.
        let tiny = Duration::from_millis(120);
        assert_eq!(
            boot_stall(Some(Duration::from_millis(100)), tiny),
            BootStall::Progressing
        );
        assert_eq!(
            boot_stall(Some(Duration::from_secs(6)), Duration::from_secs(18)),
            BootStall::Silent(Duration::from_secs(6))
        );
    }

    #[test]
    fn a_stopped_process_is_seen_as_stopped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(!process_stopped(pid));
        let kill = |sig: &str| {
            let st = std::process::Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap();
            assert!(st.success());
        };
        kill("-STOP");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !process_stopped(pid) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(process_stopped(pid));
        kill("-CONT");
        let _ = child.kill();
        let _ = child.wait();
        assert!(!process_stopped(pid));
    }
}
