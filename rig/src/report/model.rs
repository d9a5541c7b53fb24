//! `report.json` as read back (the fields reports use; unknown ones are ignored, so newer
//! runs stay readable), and `matrix.json`.

use super::{Outcome, Row, Title};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
pub struct RunReport {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub seed: Option<u64>,
    pub scenario: String,
    #[serde(default)]
    pub file: String,
    pub board: String,
    pub kernel: String,
    #[serde(default)]
    pub kernel_release: String,
    #[serde(default)]
    pub kernel_provenance: BTreeMap<String, String>,
    #[serde(default)]
    pub accel: String,
    pub verdict: String,
    /// `false` while the run is under way or when it was stopped before its last repetition;
    /// reports written before the field existed were always whole.
    #[serde(default = "whole")]
    pub complete: bool,
    /// The repetitions asked for (0 in reports written before the field existed).
    #[serde(default)]
    pub repeat: u32,
    pub repetitions: Vec<RepetitionView>,
    #[serde(default)]
    pub reproduced: BTreeMap<String, u32>,
    #[serde(default)]
    pub artifacts: PathBuf,
}

fn whole() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
pub struct RepetitionView {
    pub index: u32,
    pub verdict: String,
    #[serde(default)]
    pub reports: Vec<ReportView>,
    #[serde(default)]
    pub triage: TriageView,
    #[serde(default)]
    pub step_failures: Vec<StepFailureView>,
    #[serde(default)]
    pub seconds: f64,
    #[serde(default)]
    pub boot_seconds: f64,
    #[serde(default)]
    pub steps_seconds: f64,
    #[serde(default)]
    pub analysis_seconds: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReportView {
    pub title: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TriageView {
    #[serde(default)]
    pub expected: Vec<String>,
    #[serde(default)]
    pub allowed: Vec<String>,
    #[serde(default)]
    pub unexpected: Vec<String>,
    #[serde(default)]
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StepFailureView {
    pub step: String,
    #[serde(default)]
    pub at: String,
    pub message: String,
    #[serde(default)]
    pub infra: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct MatrixPlan {
    pub cells: Vec<PlannedCell>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct PlannedCell {
    pub name: String,
    pub board: String,
    pub kernel: String,
    pub scenario: String,
    pub plan: String,
    pub reason: Option<String>,
}

/// The longest console excerpt a report keeps per title.
const EXCERPT_LINES: usize = 60;

fn excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= EXCERPT_LINES {
        return text.trim_end().to_string();
    }
    format!(
        "{}\n[… {} more lines in the run folder]",
        lines[..EXCERPT_LINES].join("\n"),
        lines.len() - EXCERPT_LINES
    )
}

impl RunReport {
    /// One row for this run; `dir` is the folder the report.json was found in.
    pub fn row(&self, dir: &Path) -> Row {
        let outcome = match self.verdict.as_str() {
            "pass" => Outcome::Pass,
            "fail" => Outcome::Fail,
            _ => Outcome::Infra,
        };
        let mut titles: Vec<Title> = Vec::new();
        for rep in &self.repetitions {
            for r in &rep.reports {
                if titles.iter().any(|t| t.title == r.title) {
                    continue;
                }
                let class = if self
                    .repetitions
                    .iter()
                    .any(|x| x.triage.unexpected.contains(&r.title))
                {
                    "unexpected"
                } else if self
                    .repetitions
                    .iter()
                    .any(|x| x.triage.expected.contains(&r.title))
                {
                    "expected"
                } else {
                    "allowed"
                };
                titles.push(Title {
                    title: r.title.clone(),
                    runs: self.reproduced.get(&r.title).copied().unwrap_or(1),
                    class: class.into(),
                    excerpt: excerpt(&r.text),
                });
            }
        }
        // Unexpected first, then by how often.
        titles.sort_by(|a, b| {
            (a.class != "unexpected", std::cmp::Reverse(a.runs), &a.title).cmp(&(
                b.class != "unexpected",
                std::cmp::Reverse(b.runs),
                &b.title,
            ))
        });
        let mut notes = Vec::new();
        if !self.complete {
            notes.push(format!(
                "incomplete: {} of {} repetitions finished (the run was stopped or is still going)",
                self.repetitions.len(),
                self.repeat
            ));
        }
        for rep in &self.repetitions {
            for m in &rep.triage.missing {
                notes.push(format!("run {}: expected report not seen: {m}", rep.index));
            }
            for f in &rep.step_failures {
                let what = if f.infra { "rig error" } else { "step failed" };
                notes.push(format!(
                    "run {}: {what}: {} ({}): {}",
                    rep.index, f.step, f.at, f.message
                ));
            }
        }
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let reproduce = (outcome != Outcome::Pass
            && dir.join(crate::host::artifacts::RECORD_FILE).is_file())
        .then(|| {
            crate::host::process::shell_line(&["rig", "reproduce", &dir.display().to_string()])
        });
        Row {
            cell: super::cell_name(&self.board, &self.kernel, &self.scenario),
            board: self.board.clone(),
            kernel: self.kernel.clone(),
            scenario: self.scenario.clone(),
            outcome,
            runs: self.repetitions.len() as u32,
            titles,
            notes,
            dirs: vec![dir],
            reproduce,
        }
    }
}
