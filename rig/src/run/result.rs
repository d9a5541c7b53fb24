//! What a run found: per repetition and overall, with the human rendering.

use super::schema_rules::require;
use crate::host::board::Board;
use crate::scenario::Triage;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// pass (exit 0), fail: the kernel failed the scenario (exit 1), infra: rig could not run it
/// (exit 125).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

    /// As written in `report.json`: `pass`, `fail`, `infra`.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Infra => "infra",
        }
    }
}

/// A step that did not do what the scenario asked.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = |s: &mut schemars::Schema| require(s, &["at", "infra"]))]
pub struct StepFailure {
    pub step: String,
    /// `file:line:column` of the step in the scenario.
    #[serde(default)]
    pub at: String,
    pub message: String,
    /// Rig could not run it (as opposed to the kernel not doing it).
    #[serde(default)]
    pub infra: bool,
}

impl From<crate::steps::Failure> for StepFailure {
    fn from(f: crate::steps::Failure) -> Self {
        StepFailure {
            step: f.step,
            at: f.at,
            message: f.message,
            infra: f.infra,
        }
    }
}

/// One repetition: one boot, all steps, one verdict.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = |s: &mut schemars::Schema| require(s, &[
    "reports", "triage", "step_failures", "seconds", "boot_seconds", "steps_seconds",
    "analysis_seconds", "artifacts",
]))]
pub struct Repetition {
    /// 1-based.
    #[schemars(range(min = 1))]
    pub index: u32,
    pub verdict: Verdict,
    #[serde(default)]
    pub reports: Vec<super::phase::PhasedReport>,
    #[serde(default)]
    pub triage: TriageSummary,
    #[serde(default)]
    pub step_failures: Vec<StepFailure>,
    /// Wall-clock seconds of the whole repetition.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub seconds: f64,
    /// QEMU start to the guest's shell.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub boot_seconds: f64,
    /// The steps, the final dmesg and the shutdown.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub steps_seconds: f64,
    /// The analysis of the whole log and the verdict.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub analysis_seconds: f64,
    /// The part of `steps_seconds` spent after the last step: pulling `dmesg`, stopping QEMU.
    /// Absent in reports of older rigs.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub teardown_seconds: f64,
    /// console.log stopped at its size cap (64 MiB, RIG_CONSOLE_LOG_MAX) after this many bytes;
    /// reports in the rest came from the live analyzer. Absent when the log is whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_log_truncated_at: Option<u64>,
    /// The repetition's folder (`run-N` when repeating).
    #[serde(default)]
    pub artifacts: PathBuf,
    /// The guest's memory, kept when the repetition failed (`--vmcore on-failure`). Absent
    /// otherwise, and in reports of older rigs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmcore: Option<VmcoreRecord>,
}

/// A failed repetition's vmcore ([`crate::machine::vmcore`]).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmcoreRecord {
    /// `vmcore.gz`, in the repetition's folder.
    pub path: PathBuf,
    /// The shell command that opens it in gdb.
    pub command: String,
    /// The moment it shows: `the guest panicked`, the first unexpected report's title, or
    /// `the run failed` (a failure without a report, dumped before the guest was stopped).
    pub taken_at: String,
    #[schemars(range(min = 0))]
    pub bytes: u64,
    /// QEMU's dump, seconds (the guest paused meanwhile).
    #[schemars(range(min = 0.0))]
    pub dump_seconds: f64,
    /// Mapping and compressing it, seconds.
    #[schemars(range(min = 0.0))]
    pub write_seconds: f64,
    /// What the core lacks for gdb, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The repetition's reports sorted by the scenario's `expect`/`allow` rules.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = |s: &mut schemars::Schema| require(s, &[
    "expected", "allowed", "unexpected", "missing",
]))]
pub struct TriageSummary {
    #[serde(default)]
    pub expected: Vec<String>,
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Titles that fail the run.
    #[serde(default)]
    pub unexpected: Vec<String>,
    /// `expect` patterns nothing matched.
    #[serde(default)]
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

fn whole() -> bool {
    true
}

/// The result of one `rig run` (one matrix cell): written as report.json in the run folder,
/// and read back by `rig report`, `rig reproduce` and the matrix. Version 1. A change that
/// removes a field or changes its meaning bumps schema_version; new fields keep it (readers
/// ignore fields they do not know).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "rig report.json",
    extend("$id" = "urn:rig:report.schema.json:1"),
    transform = |s: &mut schemars::Schema| require(s, &[
        "schema_version", "seed", "file", "kernel_release", "kernel_provenance", "accel",
        "reproduced", "artifacts",
    ]),
)]
pub struct ScenarioResult {
    /// The layout's version (0 in reports of rigs before versions).
    #[serde(default)]
    #[schemars(extend("const" = REPORT_SCHEMA_VERSION))]
    pub schema_version: u32,
    /// The run's seed: `rig run --seed` replays it.
    #[serde(default)]
    pub seed: u64,
    #[schemars(length(min = 1))]
    pub scenario: String,
    /// The scenario file as named to the run.
    #[serde(default)]
    pub file: String,
    pub board: Board,
    /// The kernel name asked for: debian-6.1, rig-6.12[-FLAVOR], tree:PATH[#FLAVOR].
    #[schemars(length(min = 1))]
    pub kernel: String,
    #[serde(default)]
    pub kernel_release: String,
    /// Where the kernel came from: Debian package and version and image sha256, or source
    /// identity, flavor, fragments, patches, config hash.
    #[serde(default)]
    pub kernel_provenance: BTreeMap<String, String>,
    #[serde(default)]
    #[schemars(extend("enum" = ["kvm", "tcg"]))]
    pub accel: String,
    pub verdict: Verdict,
    /// Whether every asked-for repetition is in `repetitions`: report.json is rewritten
    /// (atomically) after each repetition, so a run that was stopped keeps the ones it
    /// finished with `complete: false`. Absent in reports of older rigs, which were always
    /// whole.
    #[serde(default = "whole")]
    pub complete: bool,
    /// The repetitions asked for (`rig run --repeat`; 0 in reports of older rigs, which do not
    /// have the field).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub repeat: u32,
    #[schemars(length(min = 1))]
    pub repetitions: Vec<Repetition>,
    /// Report title → number of repetitions in which it appeared.
    #[serde(default)]
    #[schemars(extend("additionalProperties" = {"type": "integer", "minimum": 1}))]
    pub reproduced: BTreeMap<String, u32>,
    /// The run folder (one `run-N` folder per repetition inside when repeating).
    #[serde(default)]
    pub artifacts: PathBuf,
    /// Why `report.json` could not be written (a full or failing artifacts filesystem). Never
    /// in `report.json` itself; a run that passed is then an infra error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
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
            if let Some(v) = &r.vmcore {
                s.push_str(&format!(
                    "  run {}: vmcore ({}, {} MiB): {}\n  run {}: (in gdb, `rig-interrupted` \
                     shows the code an exception interrupted)\n",
                    r.index,
                    v.taken_at,
                    v.bytes >> 20,
                    v.command,
                    r.index
                ));
                if let Some(note) = &v.note {
                    s.push_str(&format!("  run {}: vmcore note: {note}\n", r.index));
                }
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
        crate::host::shell::shell_line(&[
            "rig".to_string(),
            "reproduce".to_string(),
            dir.display().to_string(),
        ])
    }
}
