//! What a run found: per repetition and overall, with the human rendering.

use crate::host::board::Board;
use crate::scenario::Triage;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Infra,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => crate::host::exit::PASS,
            Verdict::Fail => crate::host::exit::KERNEL_FAILURE,
            Verdict::Infra => crate::host::exit::INFRA,
        }
    }
}

/// A step that did not do what the scenario asked.
#[derive(Debug, Clone, Serialize)]
pub struct StepFailure {
    pub step: String,
    /// `file:line:column` of the step in the scenario.
    pub at: String,
    pub message: String,
    /// Rig could not run it (as opposed to the kernel not doing it).
    pub infra: bool,
}

/// One repetition: one boot, all steps, one verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Repetition {
    pub index: u32,
    pub verdict: Verdict,
    pub reports: Vec<super::phase::PhasedReport>,
    pub triage: TriageSummary,
    pub step_failures: Vec<StepFailure>,
    pub seconds: f64,
    /// Where `seconds` went: QEMU start to the guest's shell, the steps (and the final dmesg
    /// and shutdown), the analysis of the whole log and the verdict.
    pub boot_seconds: f64,
    pub steps_seconds: f64,
    pub analysis_seconds: f64,
    /// The part of `steps_seconds` spent after the last step: pulling `dmesg`, stopping QEMU.
    pub teardown_seconds: f64,
    /// `console.log` stopped at its size cap after this many bytes (the guest printed more);
    /// the reports the live analyzer found in the rest are in [`Self::reports`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_log_truncated_at: Option<u64>,
    pub artifacts: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TriageSummary {
    pub expected: Vec<String>,
    pub allowed: Vec<String>,
    pub unexpected: Vec<String>,
    pub missing: Vec<String>,
}

impl From<Triage> for TriageSummary {
    fn from(t: Triage) -> Self {
        TriageSummary {
            expected: t.expected,
            allowed: t.allowed,
            unexpected: t.unexpected,
            missing: t.missing,
        }
    }
}

/// The version of `report.json`'s layout (`schemas/report.schema.json`): bumped when a field
/// changes meaning or goes away; new fields keep the version.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The outcome of `rig run`: every repetition, and per report title how often it reproduced.
/// Written as the run's `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run's seed (`rig run --seed`).
    pub seed: u64,
    pub scenario: String,
    pub file: String,
    pub board: Board,
    pub kernel: String,
    pub kernel_release: String,
    /// Where the kernel came from: Debian package and version, or source identity, flavor,
    /// patches and config hash, with the image's sha256 where known.
    pub kernel_provenance: BTreeMap<String, String>,
    pub accel: String,
    pub verdict: Verdict,
    /// Whether every asked-for repetition is in [`Self::repetitions`]. `report.json` is
    /// rewritten after each repetition; a run that was killed keeps the ones it finished, with
    /// `complete: false`.
    pub complete: bool,
    /// The repetitions asked for (`rig run --repeat`).
    pub repeat: u32,
    pub repetitions: Vec<Repetition>,
    /// Title → number of repetitions in which it appeared.
    pub reproduced: BTreeMap<String, u32>,
    /// The run's artifacts folder (one `run-N` folder per repetition inside when repeating).
    pub artifacts: PathBuf,
    /// Why `report.json` could not be written (a full or failing artifacts filesystem). Never
    /// in `report.json` itself; a run that passed is then an infra error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
}

impl ScenarioResult {
    /// Human summary: verdict, titles with "reproduced in k of N runs", failed steps.
    pub fn render(&self) -> String {
        let n = self.repetitions.len();
        let mut s = format!(
            "{} on {} with {} ({}): {}\n",
            self.scenario,
            self.board,
            self.kernel,
            self.accel,
            match self.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Infra => "INFRA ERROR (rig could not run it)",
            }
        );
        for (title, k) in &self.reproduced {
            let how = if self
                .repetitions
                .iter()
                .any(|r| r.triage.unexpected.contains(title))
            {
                "unexpected"
            } else if self
                .repetitions
                .iter()
                .any(|r| r.triage.expected.contains(title))
            {
                "expected"
            } else {
                "allowed"
            };
            let at_boot = self.repetitions.iter().any(|r| {
                r.reports
                    .iter()
                    .any(|x| &x.title == title && x.phase == super::phase::Phase::Boot)
            });
            let when = if at_boot { " (at boot)" } else { "" };
            s.push_str(&format!(
                "  [{how}] {title}{when}: reproduced in {k} of {n} runs\n"
            ));
        }
        for r in &self.repetitions {
            for m in &r.triage.missing {
                s.push_str(&format!(
                    "  run {}: expected report not seen: {m}\n",
                    r.index
                ));
            }
            if let Some(at) = r.console_log_truncated_at {
                s.push_str(&format!(
                    "  run {}: console.log truncated at {at} bytes (the guest printed more; \
                     reports in the rest came from the live analyzer)\n",
                    r.index
                ));
            }
            for f in &r.step_failures {
                let what = if f.infra { "rig error" } else { "step failed" };
                s.push_str(&format!(
                    "  run {}: {what}: {} ({}): {}\n",
                    r.index, f.step, f.at, f.message
                ));
            }
        }
        if !self.complete {
            s.push_str(&format!(
                "  incomplete: {} of {} repetitions finished\n",
                self.repetitions.len(),
                self.repeat
            ));
        }
        if let Some(e) = &self.report_error {
            s.push_str(&format!("  rig error: report.json not written: {e}\n"));
        }
        s.push_str(&format!("  seed: {}\n", self.seed));
        s.push_str(&format!("  artifacts: {}\n", self.artifacts.display()));
        if self.verdict != Verdict::Pass {
            s.push_str(&format!("  reproduce: {}\n", self.reproduce_command()));
        }
        s
    }

    /// The command that re-runs this run exactly: `rig reproduce <its folder>` (absolute, so
    /// it works from anywhere).
    pub fn reproduce_command(&self) -> String {
        let dir = std::fs::canonicalize(&self.artifacts).unwrap_or_else(|_| self.artifacts.clone());
        crate::host::process::shell_line(&[
            "rig".to_string(),
            "reproduce".to_string(),
            dir.display().to_string(),
        ])
    }
}
