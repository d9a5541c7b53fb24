//! `rig matrix run`: the set's cells one after another without nextest, into one folder with
//! the plan (`matrix.json`), a folder per cell, and the summary (`summary.md`, `report.html`,
//! `junit.xml`).

use super::{run_cell, CellOptions, CellOutcome, Plan, Planned};
use crate::host::artifacts::{ArtifactsError, RunDir};
use crate::host::cache::Cache;
use crate::host::events::Events;
use crate::report::{self, Summary};
use crate::run::Verdict;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MatrixRunError {
    #[error(transparent)]
    Artifacts(#[from] ArtifactsError),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Report(#[from] report::ReportError),
    #[error("cannot provision the set: {0}")]
    Provision(String),
}

pub struct MatrixRun {
    pub dir: PathBuf,
    pub outcomes: Vec<CellOutcome>,
    pub summary: Summary,
}

impl MatrixRun {
    /// 1 when a cell failed or could not be provisioned, else 125 when one hit an infra
    /// error, else 0.
    pub fn exit_code(&self) -> i32 {
        let errors = self.summary.count(report::Outcome::Error) > 0;
        if errors || self.outcomes.iter().any(|o| o.verdict == Verdict::Fail) {
            crate::host::exit::KERNEL_FAILURE
        } else if self.outcomes.iter().any(|o| o.verdict == Verdict::Infra) {
            crate::host::exit::INFRA
        } else {
            crate::host::exit::PASS
        }
    }
}

fn write(path: PathBuf, text: &str) -> Result<(), MatrixRunError> {
    std::fs::write(&path, text).map_err(|source| MatrixRunError::Write { path, source })
}

/// Runs every runnable cell of `planned` (`set` names it) in a new folder under
/// `opts.artifacts`; `each` sees every outcome as it happens.
pub fn run_planned(
    set: &str,
    planned: &[Planned],
    opts: &CellOptions,
    cache: &Cache,
    events: &Events,
    each: &mut dyn FnMut(&CellOutcome),
) -> Result<MatrixRun, MatrixRunError> {
    let dir = RunDir::create_in(&opts.artifacts, &format!("matrix-{set}"))?;
    let plan = super::planned_json(set, planned);
    write(
        dir.file(report::MATRIX_FILE),
        &(serde_json::to_string_pretty(&plan).unwrap_or_default() + "\n"),
    )?;
    let cells = dir.child("cells")?;
    let cell_opts = CellOptions {
        artifacts: cells.path().to_path_buf(),
        ..opts.clone()
    };
    let mut outcomes = Vec::new();
    for p in planned.iter().filter(|p| p.plan == Plan::Run) {
        let o = run_cell(&p.cell, &cell_opts, cache, events);
        each(&o);
        outcomes.push(o);
    }
    let summary = report::collect(&[dir.path().to_path_buf()])?;
    write(dir.file("summary.md"), &report::render_markdown(&summary))?;
    write(
        dir.file("report.html"),
        &report::render_html(&summary, &format!("rig matrix {set}")),
    )?;
    write(
        dir.file("junit.xml"),
        &report::render_junit(&summary, &format!("rig-matrix-{set}")),
    )?;
    Ok(MatrixRun {
        dir: dir.path().to_path_buf(),
        outcomes,
        summary,
    })
}
