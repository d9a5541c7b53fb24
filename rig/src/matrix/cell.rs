//! Running one cell: the scenario on its board and kernel, `repeat` times. A cell whose run is
//! an infra error (exit 125) is tried once more, and says so; a kernel failure is never retried.

use super::Cell;
use crate::host::artifacts::RunDir;
use crate::host::cache::Cache;
use crate::host::events::Events;
use crate::machine::spec::AccelChoice;
use crate::run::{run_scenario, RunError, RunOptions, ScenarioResult, Verdict};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct CellOptions {
    pub accel: AccelChoice,
    pub auto_setup: bool,
    /// Folder the cell's run folders go in.
    pub artifacts: PathBuf,
    /// Keep failed cells' vmcores (`rig matrix run --vmcore`; never by default).
    pub vmcore: crate::run::Vmcore,
}

/// What a cell did.
#[derive(Debug, Clone)]
pub struct CellOutcome {
    pub name: String,
    pub verdict: Verdict,
    /// The last attempt's result (`None`: rig failed before the scenario ran).
    pub result: Option<ScenarioResult>,
    /// Why there is no result.
    pub error: Option<String>,
    /// 1, or 2 after an infra retry.
    pub attempts: u32,
    /// What happened between attempts (`infra error …; retrying once`).
    pub notes: Vec<String>,
    /// The last attempt's run folder.
    pub dir: PathBuf,
    pub seconds: f64,
    /// The command that re-runs the cell.
    pub reproduce: String,
}

/// Without a run folder to reproduce from, the `rig run` line that runs the cell.
fn run_command(cell: &Cell) -> String {
    crate::host::shell::shell_line(&[
        "rig",
        "run",
        &cell.scenario.file,
        "--board",
        cell.board.name(),
        "--kernel",
        &cell.kernel,
        "--repeat",
        &cell.repeat.to_string(),
    ])
}

/// Runs the cell (see the module doc).
pub fn run_cell(cell: &Cell, opts: &CellOptions, cache: &Cache, events: &Events) -> CellOutcome {
    let start = Instant::now();
    let label = format!("{}-{}-{}", cell.board, cell.kernel, cell.scenario.name);
    let mut notes = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let label = if attempt == 1 {
            label.clone()
        } else {
            format!("{label}-retry")
        };
        let (verdict, result, error, dir) = match RunDir::create_in(&opts.artifacts, &label) {
            Err(e) => (
                Verdict::Infra,
                None,
                Some(crate::run::error_chain(&e)),
                opts.artifacts.clone(),
            ),
            Ok(dir) => {
                let mut ro = RunOptions::new(cell.board, &cell.kernel);
                ro.machine.accel = opts.accel;
                ro.auto_setup = opts.auto_setup;
                ro.repeat = cell.repeat;
                ro.vmcore = opts.vmcore;
                let path = dir.path().to_path_buf();
                match run_scenario(&cell.scenario, &ro, cache, &dir, events) {
                    Ok(r) => (r.verdict, Some(r), None, path),
                    // Classified as runnable, refused now: the kernel changed under us. Not
                    // something a retry fixes.
                    Err(e @ RunError::Unsupported(_)) => {
                        let o = outcome(cell, start, attempt, notes, Verdict::Infra, None);
                        return CellOutcome {
                            error: Some(crate::run::error_chain(&e)),
                            dir: path,
                            ..o
                        };
                    }
                    Err(e) => (
                        Verdict::Infra,
                        None,
                        Some(crate::run::error_chain(&e)),
                        path,
                    ),
                }
            }
        };
        if verdict == Verdict::Infra && attempt == 1 {
            let why = error.clone().unwrap_or_else(|| {
                result
                    .as_ref()
                    .map(infra_reason)
                    .unwrap_or_else(|| "rig could not run it".into())
            });
            let note = format!(
                "infra error (exit 125) on attempt 1 ({}): {why}; retrying once inside the cell",
                dir.display()
            );
            // Reports leave this attempt out: the retry is the cell's result.
            let _ = std::fs::write(
                dir.join(crate::report::SUPERSEDED_FILE),
                format!("{note}\n"),
            );
            notes.push(note);
            continue;
        }
        let o = outcome(cell, start, attempt, notes, verdict, result);
        return CellOutcome { error, dir, ..o };
    }
}

fn outcome(
    cell: &Cell,
    start: Instant,
    attempts: u32,
    notes: Vec<String>,
    verdict: Verdict,
    result: Option<ScenarioResult>,
) -> CellOutcome {
    let reproduce = match &result {
        Some(r) if r.artifacts.join(crate::run::record::RECORD_FILE).is_file() => {
            r.reproduce_command()
        }
        _ => run_command(cell),
    };
    CellOutcome {
        name: cell.name(),
        verdict,
        result,
        error: None,
        attempts,
        notes,
        dir: PathBuf::new(),
        seconds: start.elapsed().as_secs_f64(),
        reproduce,
    }
}

/// The first rig-side step failure of an infra result.
fn infra_reason(r: &ScenarioResult) -> String {
    r.repetitions
        .iter()
        .flat_map(|rep| rep.step_failures.iter())
        .find(|f| f.infra)
        .map(|f| format!("{}: {}", f.step, f.message))
        .unwrap_or_else(|| "rig could not run it".into())
}

impl CellOutcome {
    /// What the cell did; a cell that did not pass ends with its artifacts folder and, as the
    /// very last line, the command that reproduces it.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for n in &self.notes {
            s.push_str(&format!("{n}\n"));
        }
        match &self.result {
            Some(r) => {
                let text = r.render();
                // The run's own rendering ends with its folder and reproduce line: they come
                // last here too, once.
                for line in text.lines() {
                    let l = line.trim_start();
                    if !l.starts_with("artifacts: ") && !l.starts_with("reproduce: ") {
                        s.push_str(line);
                        s.push('\n');
                    }
                }
            }
            None => s.push_str(&format!(
                "{}: rig could not run it: {}\n",
                self.name,
                self.error.as_deref().unwrap_or("unknown error")
            )),
        }
        if self.attempts > 1 {
            s.push_str(&format!("(after {} attempts)\n", self.attempts));
        }
        s.push_str(&format!("artifacts: {}\n", absolute(&self.dir).display()));
        if self.verdict != Verdict::Pass {
            s.push_str(&format!("reproduce: {}\n", self.reproduce));
        }
        s
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
