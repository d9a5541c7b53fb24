//! The matrix: board × kernel × scenario cells, from named sets in `scenarios/matrix.yaml`
//! ([`file`]). Each cell is one test of `rig/tests/matrix.rs` (named `BOARD::KERNEL::SCENARIO`),
//! one line of `rig matrix list`, one run of `rig matrix run`.
//!
//! A cell whose scenario needs what the board or kernel lacks is **skipped with its reason**
//! ([`Plan::Skip`], from [`crate::run::requirements::check_kernel`]), never left out; a kernel
//! that cannot be provisioned makes its cells [`Plan::Error`] (they fail, saying why).

pub mod bench;
mod cell;
pub mod file;
mod list;
mod runner;

pub use cell::{run_cell, CellOptions, CellOutcome};
pub use file::{parse_str, Group, Matrix, Set};
pub use list::{planned_json, render_list};
pub use runner::{run_planned, MatrixRun, MatrixRunError};

use crate::host::board::{Arch, Board};
use crate::provision::Kernel;
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The set `cargo nextest run` and `rig matrix` use unless `RIG_MATRIX` or `--set` says.
pub const DEFAULT_SET: &str = "smoke";
/// The matrix file's name inside `scenarios/` (it is not a scenario).
pub const MATRIX_FILE: &str = crate::scenario::MATRIX_FILE;

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("cannot read matrix file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A scenario file, or the matrix file itself (same strict reader, same
    /// `file:line:column: path: message` errors).
    #[error(transparent)]
    Invalid(#[from] crate::scenario::ScenarioError),
    #[error("unknown matrix set `{given}` (known: {known})")]
    UnknownSet { given: String, known: String },
}

/// `BOARD::KERNEL::SCENARIO`.
pub fn cell_name(board: Board, kernel: &str, scenario: &str) -> String {
    crate::report::cell_name(board.name(), kernel, scenario)
}

/// One board × kernel × scenario.
#[derive(Debug, Clone)]
pub struct Cell {
    pub board: Board,
    pub kernel: String,
    pub scenario: Arc<Scenario>,
    /// Runs, each on a fresh boot.
    pub repeat: u32,
}

impl Cell {
    pub fn name(&self) -> String {
        cell_name(self.board, &self.kernel, &self.scenario.name)
    }
}

/// Whether a cell runs here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Run,
    /// The board or kernel lacks what the scenario requires: the reason.
    Skip(String),
    /// The kernel could not be provisioned to find out: the error.
    Error(String),
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub cell: Cell,
    pub plan: Plan,
}

/// Loads the matrix file and the scenarios its globs select from (every other `*.yaml` in its
/// folder); overlay names resolve against `overlays_dir`.
pub fn load(path: &Path, overlays_dir: &Path) -> Result<(Matrix, Vec<Arc<Scenario>>), MatrixError> {
    let bytes = std::fs::read(path).map_err(|source| MatrixError::Read {
        path: path.into(),
        source,
    })?;
    let text = crate::scenario::utf8(&bytes, &path.display().to_string())?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let scenarios = crate::scenario::load_dir(dir, overlays_dir)?;
    let m = parse_str(text, &path.display().to_string(), &scenarios)?;
    Ok((m, scenarios.into_iter().map(Arc::new).collect()))
}

/// The matrix in use: `RIG_MATRIX_FILE`, else the project file's `matrix` ([`crate::project`]),
/// else rig's built-in one.
pub fn load_default() -> Result<(Matrix, Vec<Arc<Scenario>>), MatrixError> {
    let root = crate::repo_root();
    let path = match std::env::var_os("RIG_MATRIX_FILE") {
        Some(p) => PathBuf::from(p),
        None => crate::project::discover()
            .map_err(crate::scenario::ScenarioError::from)?
            .and_then(|p| p.matrix)
            .unwrap_or_else(|| root.join("scenarios").join(MATRIX_FILE)),
    };
    load(&path, &root.join("overlays"))
}

/// The set `RIG_MATRIX` names, else [`DEFAULT_SET`].
pub fn set_from_env() -> String {
    std::env::var("RIG_MATRIX")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SET.into())
}

impl Matrix {
    pub fn set(&self, name: &str) -> Result<&Set, MatrixError> {
        self.sets.get(name).ok_or_else(|| MatrixError::UnknownSet {
            given: name.into(),
            known: self.sets.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

impl Set {
    /// Every cell, in the file's order (group, kernel, board, scenario).
    pub fn cells(&self, scenarios: &[Arc<Scenario>]) -> Vec<Cell> {
        let mut out = Vec::new();
        for g in &self.groups {
            for k in &g.kernels {
                for b in &g.boards {
                    for name in &g.scenarios {
                        if let Some(s) = scenarios.iter().find(|s| &s.name == name) {
                            out.push(Cell {
                                board: *b,
                                kernel: k.clone(),
                                scenario: s.clone(),
                                repeat: g.repeat,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// The (kernel, arch) pairs the set boots.
    pub fn kernels(&self) -> Vec<(String, Arch)> {
        let mut out: Vec<(String, Arch)> = Vec::new();
        for g in &self.groups {
            for k in &g.kernels {
                for b in &g.boards {
                    let pair = (k.clone(), b.arch());
                    if !out.contains(&pair) {
                        out.push(pair);
                    }
                }
            }
        }
        out
    }
}

/// Decides each cell: the scenario's `boards` first (no kernel needed), then the kernel's
/// features. `kernel` resolves a kernel name for an arch (each pair asked once).
pub fn plan(
    cells: Vec<Cell>,
    kernel: &mut dyn FnMut(&str, Arch) -> Result<Kernel, String>,
) -> Vec<Planned> {
    let mut kernels: BTreeMap<(String, &'static str), Result<Kernel, String>> = BTreeMap::new();
    cells
        .into_iter()
        .map(|cell| {
            let plan = if !cell.scenario.boards.contains(&cell.board) {
                let no_kernel = crate::run::requirements::KernelFacts {
                    config: &BTreeMap::new(),
                    version: None,
                };
                match crate::run::requirements::check_requirements(
                    &cell.scenario,
                    cell.board,
                    no_kernel,
                ) {
                    Err(u) => Plan::Skip(
                        u.unmet
                            .iter()
                            .find(|m| m.what == "boards")
                            .map(|m| format!("boards needs {}", m.missing.join(", ")))
                            .unwrap_or_else(|| u.summary()),
                    ),
                    Ok(()) => Plan::Run,
                }
            } else {
                let arch = cell.board.arch();
                let k = kernels
                    .entry((cell.kernel.clone(), arch.debian()))
                    .or_insert_with(|| kernel(&cell.kernel, arch));
                match k {
                    Err(e) => Plan::Error(format!("cannot provision {}: {e}", cell.kernel)),
                    Ok(k) => {
                        match crate::run::requirements::check_kernel(&cell.scenario, cell.board, k)
                        {
                            Ok(()) => Plan::Run,
                            Err(u) => Plan::Skip(u.summary()),
                        }
                    }
                }
            };
            Planned { cell, plan }
        })
        .collect()
}

/// [`plan`] against this host's kernels: each one the cells need is provisioned (fetched or
/// built, host tools installed first when `auto_setup`) to read its `.config`.
pub fn plan_here(
    cells: Vec<Cell>,
    cache: &crate::host::cache::Cache,
    events: &crate::host::events::Events,
    auto_setup: bool,
) -> Vec<Planned> {
    plan(cells, &mut |k, arch| {
        let needs = crate::prepare::needs_for_kernel(k);
        crate::prepare::ensure_host_tools(&needs, auto_setup, cache, events)
            .map_err(|e| crate::run::error_chain(&e))?;
        crate::provision::resolve_kernel(k, arch, cache, events)
            .map_err(|e| crate::run::error_chain(&e))
    })
}

/// Provisions everything the set's cells boot (kernels, initramfs, the accelerator verdict),
/// once, in order: what runs before any cell does.
pub fn provision(
    set: &Set,
    cache: &crate::host::cache::Cache,
    events: &crate::host::events::Events,
    auto_setup: bool,
) -> Result<(), crate::prepare::PrepareError> {
    let mut boards: Vec<(String, Board)> = Vec::new();
    for g in &set.groups {
        for k in &g.kernels {
            for b in &g.boards {
                if !boards
                    .iter()
                    .any(|(k2, b2)| k2 == k && b2.arch() == b.arch())
                {
                    boards.push((k.clone(), *b));
                }
            }
        }
    }
    for (k, b) in boards {
        let spec = crate::machine::spec::MachineSpec::new(b, &k);
        crate::prepare::prepare(spec, auto_setup, cache, events)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
