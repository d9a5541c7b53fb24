//! One soak run's state: its folder, plan and children, and how a child is spawned and its end
//! checked (exit code, leaks, evidence). What `run` (the dispatch) and the fault handlers in
//! `evidence`, `hostile` and `tree` share, below all of them.

use super::child::{self, Child, Spec};
use super::fault::{Anchor, Plan};
use super::procs::{self, RunMarks};
use super::{ChildRecord, Ctx, SoakError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a run's processes get to disappear after rig exited.
const LEAK_GRACE: Duration = Duration::from_secs(3);

pub(super) struct Run<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) dir: PathBuf,
    pub(super) scenario: PathBuf,
    pub(super) plan: &'a Plan,
    pub(super) children: Vec<ChildRecord>,
    pub(super) problems: Vec<String>,
    pub(super) injected: bool,
    /// The kernel the child runs, when not the soak's (`tree:PATH`).
    pub(super) kernel: Option<String>,
}

/// What a child must leave behind besides its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Evidence {
    /// A run: an artifacts folder, with a console log once QEMU ran.
    Run,
    /// Input rig must refuse: no QEMU ever, and no folder needed.
    Refused,
}

impl Run<'_> {
    /// How long a child of this run may take.
    pub(super) fn deadline(&self) -> Duration {
        self.plan.fault.deadline()
    }

    /// A child `rig run` of the plan's scenario (and `--repeat`).
    pub(super) fn spawn(
        &self,
        n: usize,
        cache: &Path,
        artifacts: &Path,
        env: Vec<(String, String)>,
    ) -> Result<Child, SoakError> {
        let mut extra = Vec::new();
        if self.plan.repeat > 1 {
            extra = vec!["--repeat".to_string(), self.plan.repeat.to_string()];
        }
        let kernel = self.kernel.as_deref().unwrap_or(&self.ctx.kernel);
        let args = child::run_args(
            &self.scenario,
            &self.ctx.board,
            kernel,
            &self.ctx.accel,
            &extra,
        );
        self.spawn_args(n, cache, artifacts, args, env)
    }

    /// A child rig with these arguments.
    pub(super) fn spawn_args(
        &self,
        n: usize,
        cache: &Path,
        artifacts: &Path,
        args: Vec<std::ffi::OsString>,
        env: Vec<(String, String)>,
    ) -> Result<Child, SoakError> {
        Child::spawn(Spec {
            rig: &self.ctx.rig,
            args,
            cache,
            artifacts,
            run_id: format!("{}.{}.{n}", self.ctx.run_id, self.plan.index + 1),
            log: &self.dir.join(format!("rig-{n}.log")),
            env,
        })
    }

    /// Waits for `c` to end and checks it: exit code against `expected`, leaks, evidence.
    pub(super) fn finish(&mut self, c: Child, expected: Vec<i32>) -> &mut ChildRecord {
        self.finish_as(c, expected, Evidence::Run)
    }

    /// [`Self::finish`] with the evidence the fault calls for.
    pub(super) fn finish_as(
        &mut self,
        mut c: Child,
        expected: Vec<i32>,
        evidence: Evidence,
    ) -> &mut ChildRecord {
        let deadline = c.started + self.deadline();
        let saw_qemu = evidence == Evidence::Refused && watch_for_qemu(&mut c, deadline);
        let exit = c.wait_exit(deadline);
        let leaks = procs::reap_leaks(
            &RunMarks {
                pgid: Some(c.pid),
                run_id: c.run_id.clone(),
            },
            LEAK_GRACE,
        );
        let folder = c.run_folder();
        let mut problems = Vec::new();
        match (&folder, evidence) {
            (_, Evidence::Refused) if saw_qemu || c.reached(Anchor::QemuSpawned) => {
                problems.push("rig started QEMU for input it must refuse".into())
            }
            (Some(f), Evidence::Run) if c.reached(Anchor::QemuSpawned) && !has_console_log(f) => {
                problems.push(format!("QEMU ran but {} has no console.log", f.display()))
            }
            // Only a signal in rig's first moments may leave no folder at all.
            (None, Evidence::Run) if exit.is_some_and(|e| e < 128) => {
                problems.push("rig ended without an artifacts folder".into())
            }
            _ => {}
        }
        if exit.is_none() {
            problems.push(format!(
                "rig did not end within {}s and was killed",
                self.deadline().as_secs()
            ));
        }
        self.children.push(ChildRecord {
            run_id: c.run_id.clone(),
            exit,
            expected,
            leaks,
            artifacts: folder,
            problems,
            seconds: c.started.elapsed().as_secs_f64(),
        });
        self.children.last_mut().expect("just pushed")
    }

    /// The child's run with the warm cache and its own artifacts folder.
    pub(super) fn spawn_warm(&self, env: Vec<(String, String)>) -> Result<Child, SoakError> {
        self.spawn(0, &self.ctx.cache, &self.dir.join("artifacts"), env)
    }
}

/// A run folder's console log: its own, or its first repetition's (`run-1/`) with `--repeat`.
fn has_console_log(folder: &Path) -> bool {
    folder.join("console.log").is_file() || folder.join("run-1/console.log").is_file()
}

/// Waits for `c` to exit (or `deadline`), looking for a QEMU of its run all the while; true if
/// one was seen. A refusal takes well under a second, a QEMU lives for seconds: a QEMU started
/// at all is seen.
fn watch_for_qemu(c: &mut Child, deadline: Instant) -> bool {
    let mut seen = false;
    while !c.exited() && Instant::now() < deadline {
        seen |= procs::qemu_of(&c.run_id).is_some();
        std::thread::sleep(Duration::from_millis(10));
    }
    seen || procs::qemu_of(&c.run_id).is_some()
}

/// The exit codes that are right after the soak sent `signal` (`injected`): 128+signal, and 0
/// too when rig had already announced its last verdict (`late`: it was writing it and exiting);
/// 0 alone when the moment never came.
pub(super) fn exits_after_signal(injected: bool, signal: i32, late: bool) -> Vec<i32> {
    match (injected, late) {
        (false, _) => vec![0],
        (true, false) => vec![128 + signal],
        (true, true) => vec![128 + signal, 0],
    }
}
