//! Guest shell commands the engine builds: checked statuses, guest-side polls, and the
//! background jobs of `parallel`.

use crate::steps::ExpectStatus;
use std::time::Duration;

/// A guest-side poll loop: waits until `cond` (a shell condition) holds, at most `timeout`.
pub(crate) fn poll_script(cond: &str, timeout: Duration) -> String {
    let tries = (timeout.as_millis() / 100).max(1);
    format!(
        "i=0; while ! ( {cond} ) >/dev/null 2>&1; do [ $i -ge {tries} ] && exit 1; i=$((i+1)); sleep 0.1; done"
    )
}

/// Wraps a command so its exit status is checked in the guest: the job exits 0 when the
/// status is acceptable, else with the status (and says so).
pub(crate) fn checked(cmd: &str, expect: &ExpectStatus, may_fail: bool) -> String {
    if may_fail {
        return format!("( {cmd} ); true");
    }
    match expect {
        ExpectStatus::Any => format!("( {cmd} ); true"),
        ExpectStatus::OneOf(v) => {
            let list: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            format!(
                "( {cmd} ); s=$?; case \" {} \" in *\" $s \"*) ;; *) echo \"rig: exit status $s\"; exit $s;; esac",
                list.join(" ")
            )
        }
    }
}

/// The guest shell line that starts child `i` of a `parallel` as a background job: its script
/// (base64) is written to `dir`, run in a session and process group of its own (whose id lands
/// in `i.pgid`), its output in `i.out`, the guest's uptime when it started and ended in
/// `i.start` and `i.end`, then its exit status in `i.st` (whose presence says the job is done).
///
/// The job's time is the guest's own clock: what rig does around the jobs (launching them,
/// polling, collecting statuses: guest commands, slow under TCG) never counts against them.
pub(crate) fn job_launch(dir: &str, i: usize, script_b64: &str) -> String {
    job_launch_with("busybox setsid", dir, i, script_b64)
}

/// [`job_launch`] with another `setsid` (the unit test runs it with the host's).
fn job_launch_with(setsid: &str, dir: &str, i: usize, script_b64: &str) -> String {
    format!(
        "echo {script_b64} | base64 -d > {dir}/{i}.sh; \
         ( read t _ </proc/uptime; echo $t > {dir}/{i}.start; {setsid} sh -c 'echo $$ > {dir}/{i}.pgid; exec sh {dir}/{i}.sh' \
         > {dir}/{i}.out 2>&1; s=$?; read t _ </proc/uptime; echo $t > {dir}/{i}.end; \
         echo $s > {dir}/{i}.st ) </dev/null >/dev/null 2>&1 & "
    )
}

/// Kills every job [`job_launch`] started in `dir`, each with its whole process group, so
/// nothing of a job outlives the `parallel` step.
pub(crate) fn kill_jobs(dir: &str) -> String {
    format!("for p in {dir}/*.pgid; do kill -9 -$(cat $p) 2>/dev/null; done; true")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::process::tests::{ends_by, pidfd};

    /// Reads the number `path` holds once it is written whole, at most until `deadline`.
    fn wait_number(path: &std::path::Path, deadline: std::time::Instant) -> i32 {
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            // Written by `echo`: whole once its line ends.
            if let Some(n) = text.strip_suffix('\n').and_then(|t| t.trim().parse().ok()) {
                return n;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never held a number",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_killed_job_takes_its_children_with_it() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().display().to_string();
        let late = d.path().join("late");
        let child = d.path().join("child");
        // A child of the job that says it runs, then outlives any wait of this test unless the
        // kill reaches it.
        let script = format!(
            "sh -c 'echo $$ > {}; sleep 60; echo late > {}' & wait",
            child.display(),
            late.display()
        );
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, script);
        // The host's util-linux setsid stands in for the guest's busybox one.
        let sh = |cmd: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .status()
                .unwrap()
        };
        sh(&job_launch_with("setsid", &dir, 0, &b64));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // The job wrote its group id before it started its child.
        let pid = wait_number(&child, deadline);
        let child_fd = pidfd(pid);
        assert!(
            !ends_by(&child_fd, std::time::Instant::now()),
            "the child never ran"
        );
        assert!(sh(&kill_jobs(&dir)).success());
        if !ends_by(&child_fd, deadline) {
            // Nothing of the job left running after the test.
            let pgid = wait_number(&d.path().join("0.pgid"), deadline);
            let kill = rustix::process::Pid::from_raw(pgid)
                .map(|g| rustix::process::kill_process_group(g, rustix::process::Signal::KILL));
            panic!("{pid}, a child of the killed job, runs on (killing group {pgid}: {kill:?})");
        }
        assert!(!late.exists(), "a child of the killed job ran on");
        // Written once the job's shell is gone.
        assert_eq!(wait_number(&d.path().join("0.st"), deadline), 137);
    }

    #[test]
    fn checked_commands_accept_listed_statuses() {
        let s = checked("false", &ExpectStatus::OneOf(vec![0, 1]), false);
        assert!(s.contains("\" 0 1 \""), "{s}");
        assert_eq!(
            checked("x", &ExpectStatus::OneOf(vec![0]), true),
            "( x ); true"
        );
        assert_eq!(checked("x", &ExpectStatus::Any, false), "( x ); true");
    }

    #[test]
    fn checked_script_semantics_in_a_real_shell() {
        let run = |s: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(s)
                .output()
                .unwrap()
                .status
                .code()
        };
        assert_eq!(
            run(&checked("exit 1", &ExpectStatus::OneOf(vec![0, 1]), false)),
            Some(0)
        );
        assert_eq!(
            run(&checked("exit 3", &ExpectStatus::OneOf(vec![0, 1]), false)),
            Some(3)
        );
        assert_eq!(
            run(&checked("exit 3", &ExpectStatus::OneOf(vec![0]), true)),
            Some(0)
        );
        let poll = poll_script("[ -e /nonexistent-rig-file ]", Duration::from_millis(300));
        assert_eq!(run(&poll), Some(1));
        let poll = poll_script("true", Duration::from_millis(300));
        assert_eq!(run(&poll), Some(0));
    }
}
