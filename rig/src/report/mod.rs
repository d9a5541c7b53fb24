//! Reports over many runs: `rig report DIR…` reads every `report.json` (one run, schema in
//! `schemas/report.schema.json`, version [`crate::run::REPORT_SCHEMA_VERSION`]) and every
//! `matrix.json` (a matrix's plan: its skipped cells and why) below the folders it is given,
//! and makes one row per cell — board, kernel, scenario, verdict, titles with "k of N" —
//! failures first, each report with its console excerpt. Rendered as text, Markdown (CI
//! summaries), one static HTML file (no external assets), JSON and JUnit.
//!
//! Several runs of the same cell (board × kernel × scenario) fold into one row: their
//! repetitions add up, the worst verdict wins.

mod html;
mod junit;
mod model;
mod render;
mod schema;

pub use html::render_html;
pub use junit::render_junit;
pub use model::RunReport;
pub use render::{render_markdown, render_text};
pub use schema::{report_schema, SCHEMA_FILE};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::host::artifacts::REPORT_FILE;
/// A matrix run's plan (`rig matrix run`, `rig matrix list --json`).
pub const MATRIX_FILE: &str = "matrix.json";
/// Left in an attempt's folder that a matrix cell retried (after an infra error): its report
/// is not the cell's.
pub const SUPERSEDED_FILE: &str = "superseded";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a rig report: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no report.json or matrix.json below {}", .dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))]
    Empty { dirs: Vec<PathBuf> },
}

/// A cell's name: `BOARD::KERNEL::SCENARIO` (the matrix's test names).
pub fn cell_name(board: &str, kernel: &str, scenario: &str) -> String {
    format!("{board}::{kernel}::{scenario}")
}

/// A cell's outcome, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Fail,
    /// Its kernel could not be provisioned.
    Error,
    Infra,
    Pass,
    Skip,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Fail,
        Outcome::Error,
        Outcome::Infra,
        Outcome::Pass,
        Outcome::Skip,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Outcome::Fail => "FAIL",
            Outcome::Error => "ERROR",
            Outcome::Infra => "INFRA",
            Outcome::Pass => "pass",
            Outcome::Skip => "skip",
        }
    }
}

/// One report title of a cell: how often it appeared and how the scenario sorts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Title {
    pub title: String,
    /// Repetitions in which it appeared, of [`Row::runs`].
    pub runs: u32,
    /// `unexpected`, `expected` or `allowed`.
    pub class: String,
    /// The first report's text.
    pub excerpt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `BOARD::KERNEL::SCENARIO`.
    pub cell: String,
    pub board: String,
    pub kernel: String,
    pub scenario: String,
    pub outcome: Outcome,
    /// Repetitions run (0 for a skipped cell).
    pub runs: u32,
    pub titles: Vec<Title>,
    /// Why it was skipped or not run; failed steps and missing expected reports.
    pub notes: Vec<String>,
    /// Run folders (absolute when they exist).
    pub dirs: Vec<PathBuf>,
    /// `rig reproduce DIR` for a failed run.
    pub reproduce: Option<String>,
}

/// What `rig report` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub rows: Vec<Row>,
    /// Failing (cell, title) pairs not in the baseline, when one was given.
    #[serde(default)]
    pub new_failures: Option<Vec<NewFailure>>,
    /// Files that could not be read (truncated, not JSON, not a rig report): named and left
    /// out, so one damaged run does not hide a whole night's.
    #[serde(default)]
    pub damaged: Vec<Damaged>,
}

/// A `report.json` or `matrix.json` that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Damaged {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NewFailure {
    pub cell: String,
    pub title: String,
}

impl Summary {
    pub fn count(&self, o: Outcome) -> usize {
        self.rows.iter().filter(|r| r.outcome == o).count()
    }

    /// `N cells: 2 fail, 1 pass, 5 skip` (outcomes with no cell left out).
    pub fn counts(&self) -> String {
        let parts: Vec<String> = Outcome::ALL
            .iter()
            .filter_map(|o| {
                let n = self.count(*o);
                (n > 0).then(|| format!("{n} {}", o.word().to_lowercase()))
            })
            .collect();
        format!("{} cells: {}", self.rows.len(), parts.join(", "))
    }

    /// Failing (cell, title) pairs: unexpected titles, or the verdict itself for a failed
    /// cell without one (a step that did not happen, a missing expected report).
    pub fn failures(&self) -> Vec<NewFailure> {
        let mut out = Vec::new();
        for r in &self.rows {
            if r.outcome != Outcome::Fail {
                continue;
            }
            let titles: Vec<&Title> = r
                .titles
                .iter()
                .filter(|t| t.class == "unexpected")
                .collect();
            if titles.is_empty() {
                out.push(NewFailure {
                    cell: r.cell.clone(),
                    title: r.notes.first().cloned().unwrap_or_else(|| "failed".into()),
                });
            }
            for t in titles {
                out.push(NewFailure {
                    cell: r.cell.clone(),
                    title: t.title.clone(),
                });
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Sets [`Summary::new_failures`]: this summary's failures that `baseline` (a previous
    /// `rig report --json`) did not have.
    pub fn compare(&mut self, baseline: &Summary) {
        let old = baseline.failures();
        self.new_failures = Some(
            self.failures()
                .into_iter()
                .filter(|f| !old.contains(f))
                .collect(),
        );
    }
}

/// Every `report.json` and `matrix.json` below `dirs` (a folder may also be one of those files).
fn find(dirs: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), ReportError> {
    let (mut reports, mut plans) = (Vec::new(), Vec::new());
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).map_err(|source| ReportError::Read {
            path: p.clone(),
            source,
        })?;
        if meta.is_file() {
            match p.file_name().and_then(|n| n.to_str()) {
                Some(MATRIX_FILE) => plans.push(p),
                _ => reports.push(p),
            }
            continue;
        }
        if p.join(SUPERSEDED_FILE).exists() {
            continue;
        }
        let entries = std::fs::read_dir(&p).map_err(|source| ReportError::Read {
            path: p.clone(),
            source,
        })?;
        for e in entries.flatten() {
            let path = e.path();
            match e.file_name().to_str() {
                Some(REPORT_FILE) => reports.push(path),
                Some(MATRIX_FILE) => plans.push(path),
                _ if path.is_dir() => stack.push(path),
                _ => {}
            }
        }
    }
    reports.sort();
    plans.sort();
    Ok((reports, plans))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.into(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

/// Reads a baseline: a previous `rig report --json`.
pub fn read_baseline(path: &Path) -> Result<Summary, ReportError> {
    read_json(path)
}

/// Reads everything below `dirs` into one summary.
pub fn collect(dirs: &[PathBuf]) -> Result<Summary, ReportError> {
    let (reports, plans) = find(dirs)?;
    if reports.is_empty() && plans.is_empty() {
        return Err(ReportError::Empty {
            dirs: dirs.to_vec(),
        });
    }
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut damaged = Vec::new();
    let mut note = |e: ReportError| {
        let (path, message) = match e {
            ReportError::Read { path, source } => (path, source.to_string()),
            ReportError::Parse { path, message } => (path, message),
            ReportError::Empty { .. } => return,
        };
        damaged.push(Damaged { path, message });
    };
    for path in &reports {
        let r: RunReport = match read_json(path) {
            Ok(r) => r,
            Err(e) => {
                note(e);
                continue;
            }
        };
        let row = r.row(path.parent().unwrap_or(Path::new(".")));
        match rows.get_mut(&row.cell) {
            Some(existing) => existing.merge(row),
            None => {
                rows.insert(row.cell.clone(), row);
            }
        }
    }
    for path in &plans {
        let plan: model::MatrixPlan = match read_json(path) {
            Ok(p) => p,
            Err(e) => {
                note(e);
                continue;
            }
        };
        for c in plan.cells {
            let outcome = match c.plan.as_str() {
                "skip" => Outcome::Skip,
                "error" => Outcome::Error,
                _ => continue,
            };
            rows.entry(c.name.clone()).or_insert(Row {
                cell: c.name,
                board: c.board,
                kernel: c.kernel,
                scenario: c.scenario,
                outcome,
                runs: 0,
                titles: Vec::new(),
                notes: c.reason.into_iter().collect(),
                dirs: Vec::new(),
                reproduce: None,
            });
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    rows.sort_by(|a, b| (a.outcome, &a.cell).cmp(&(b.outcome, &b.cell)));
    Ok(Summary {
        rows,
        new_failures: None,
        damaged,
    })
}

impl Row {
    fn merge(&mut self, other: Row) {
        self.outcome = self.outcome.min(other.outcome);
        self.runs += other.runs;
        for t in other.titles {
            match self.titles.iter_mut().find(|x| x.title == t.title) {
                Some(x) => x.runs += t.runs,
                None => self.titles.push(t),
            }
        }
        for note in other.notes {
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
        self.dirs.extend(other.dirs);
        if self.reproduce.is_none() {
            self.reproduce = other.reproduce;
        }
    }
}

#[cfg(test)]
mod tests;
