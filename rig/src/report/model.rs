//! `report.json` as read back (the type `rig run` writes; unknown fields are ignored, so newer
//! runs stay readable), and `matrix.json`.

use super::{Outcome, Row, Title};
use crate::run::Verdict;
use serde::Deserialize;
use std::path::Path;

/// A run's `report.json` as read back: the very type `rig run` writes
/// ([`crate::run::ScenarioResult`]). Its fields that older rigs did not write have defaults;
/// fields it does not know are ignored, so newer runs stay readable.
pub type RunReport = crate::run::ScenarioResult;

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

impl crate::run::ScenarioResult {
    /// One row for this run; `dir` is the folder the report.json was found in.
    pub fn row(&self, dir: &Path) -> Row {
        let outcome = match self.verdict {
            Verdict::Pass => Outcome::Pass,
            Verdict::Fail => Outcome::Fail,
            Verdict::Infra => Outcome::Infra,
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
        .then(|| crate::host::shell::shell_line(&["rig", "reproduce", &dir.display().to_string()]));
        Row {
            cell: super::cell_name(self.board.name(), &self.kernel, &self.scenario),
            board: self.board.name().to_string(),
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
