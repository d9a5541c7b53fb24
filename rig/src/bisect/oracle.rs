//! The real [`Oracle`]: builds the worktree's commit as `tree:WORKTREE[#FLAVOR]` (incremental in
//! its persistent build directory) and runs the scenario on it, one boot per run.

use super::{Built, Oracle, RunOutcome};
use crate::host::artifacts::RunDir;
use crate::host::board::Board;
use crate::host::cache::{sha256_file, Cache};
use crate::host::events::Events;
use crate::machine::spec::AccelChoice;
use crate::provision::kbuild::KbuildError;
use crate::provision::{KernelSpec, ProvisionError};
use crate::run::{error_chain as chain, run_scenario, RunError, RunOptions, Verdict};
use crate::scenario::Scenario;
use std::path::PathBuf;

pub struct KernelOracle<'a> {
    pub worktree: PathBuf,
    pub flavor: String,
    pub board: Board,
    pub accel: AccelChoice,
    pub scenario: &'a Scenario,
    pub cache: &'a Cache,
    pub events: &'a Events,
    /// Where each run's artifacts go (`<commit>-run-N/`).
    pub runs_dir: RunDir,
}

impl KernelOracle<'_> {
    fn kernel_name(&self) -> String {
        KernelSpec::tree_name(&self.worktree, &self.flavor)
    }
}

/// Whether a provisioning failure is the commit not building (skip), not rig failing: a build
/// error in the source, a config that lost rig's options, a flavor patch that does not apply.
/// A make that failed because of the host (killed, disk full, out of memory — see
/// [`KbuildError::is_host_failure`]) or while rig was being stopped by a signal is rig's
/// failure: the bisect stops (exit 125) and records nothing for the commit.
pub(super) fn does_not_build(e: &ProvisionError) -> bool {
    if crate::host::process::caught_signal().is_some() {
        return false;
    }
    match e {
        ProvisionError::Build(k @ KbuildError::Make { .. }) => !k.is_host_failure(),
        ProvisionError::Build(KbuildError::DroppedOptions { .. } | KbuildError::Patch { .. }) => {
            true
        }
        _ => false,
    }
}

impl Oracle for KernelOracle<'_> {
    fn build(&mut self, _commit: &str) -> Result<Result<Built, String>, String> {
        let start = std::time::Instant::now();
        match crate::provision::resolve_kernel(
            &self.kernel_name(),
            self.board.arch(),
            self.cache,
            self.events,
        ) {
            Ok(k) => {
                let sha = sha256_file(&k.image).map_err(|e| chain(&e))?;
                Ok(Ok(Built {
                    seconds: start.elapsed().as_secs_f64(),
                    image_sha256: sha,
                }))
            }
            Err(e) if does_not_build(&e) => {
                let text = chain(&e);
                Ok(Err(text.lines().take(12).collect::<Vec<_>>().join("\n")))
            }
            Err(e) => Err(chain(&e)),
        }
    }

    fn run(&mut self, commit: &str, index: u32) -> Result<RunOutcome, String> {
        let short = &commit[..12.min(commit.len())];
        let dir = self
            .runs_dir
            .child(&format!("{short}-run-{index}"))
            .map_err(|e| chain(&e))?;
        let mut opts = RunOptions::new(self.board, &self.kernel_name());
        opts.machine.accel = self.accel;
        opts.auto_setup = false;
        match run_scenario(self.scenario, &opts, self.cache, &dir, self.events) {
            Ok(r) if r.verdict == Verdict::Infra => Ok(RunOutcome::Infra { why: r.render() }),
            Ok(r) => Ok(RunOutcome::Ran {
                titles: r.reproduced.keys().cloned().collect(),
                dir: dir.path().to_path_buf(),
            }),
            // The kernel at this commit lacks what the scenario needs: like not building.
            Err(RunError::Unsupported(u)) => Ok(RunOutcome::Infra { why: u.to_string() }),
            Err(e) => Err(chain(&e)),
        }
    }
}
