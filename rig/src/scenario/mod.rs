//! Scenario files: what a run does to the guest, and which kernel reports it expects or tolerates.
//!
//! A scenario is a YAML file (format: `scenarios/README.md`). [`load`] parses it strictly and
//! validates it into a [`Scenario`] the engine can trust: durations are [`Duration`]s, regexes are
//! compiled, overlay files are resolved and exist, boards are [`Board`]s and requirements are
//! [`Feature`]s. Every problem is one [`ScenarioError`] that names the file, line, column and field
//! path, e.g. `scenarios/foo.yaml:12:7: steps[3].overlay_load.file: unknown overlay ...`.
//!
//! Which kernel reports make a run fail is [`Scenario::triage`]; whether a scenario can run on a
//! given board and kernel is the engine's question ([`crate::run::requirements`]).

use crate::guest::transport::Via;
use crate::host::board::Board;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod board_devices;
mod find;
mod raw;
pub(crate) use crate::steps::compile_regex;
pub use crate::steps::*;
pub use board_devices::*;
use rig_yaml as yaml;
mod validate;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_devices;
#[cfg(test)]
mod tests_host;
#[cfg(test)]
mod tests_robust;
#[cfg(test)]
mod tests_validated;

/// Defaults for timeouts a file leaves out, at native (KVM) speed: the engine multiplies them by
/// the machine's timeout scale (3 under TCG, 4 for arm64 on x86, times `RIG_TIMEOUT_SCALE`).
/// Each step kind's default is its family's (`crate::steps`).
pub mod defaults {
    use std::time::Duration;
    /// The steps' time, from the ready guest on (the boot has its own timeout).
    pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(5 * 60);
    pub use crate::steps::defaults::*;
}

/// A report-title pattern in `expect` / `allow`: an exact title, or `/regex/` (unanchored).
#[derive(Debug, Clone)]
pub enum TitlePattern {
    Exact(String),
    Regex(regex::Regex),
}

impl TitlePattern {
    pub fn parse(s: &str) -> Result<TitlePattern, String> {
        if s.trim().is_empty() {
            return Err("empty title pattern".into());
        }
        match s.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            Some(re) if s.len() >= 2 => compile_regex(re).map(TitlePattern::Regex),
            _ => Ok(TitlePattern::Exact(s.to_string())),
        }
    }

    pub fn matches(&self, title: &str) -> bool {
        match self {
            TitlePattern::Exact(t) => t == title,
            TitlePattern::Regex(r) => r.is_match(title),
        }
    }
}

impl fmt::Display for TitlePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TitlePattern::Exact(t) => f.write_str(t),
            TitlePattern::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// The file label errors and reports use (the path as given).
    pub file: String,
    /// Boards it runs on (all of [`Board::ALL`] unless the file restricts them).
    pub boards: Vec<Board>,
    /// Where `boards` was written (the file's start when it was left out).
    pub boards_at: Location,
    pub requires: Vec<Requirement>,
    /// Extra kernel command-line parameters, one per entry.
    pub cmdline: Vec<String>,
    /// The steps' time, from the ready guest on (the boot has its own timeout).
    pub timeout: Duration,
    /// `timeout` is the default one.
    pub default_timeout: bool,
    /// The default transport for guest-side steps.
    pub transport: Via,
    /// Report titles that must appear (positive controls).
    pub expect: Vec<TitlePattern>,
    /// Report titles that are known noise.
    pub allow: Vec<TitlePattern>,
    /// Devices the board gets for this scenario.
    pub devices: Vec<BoardDevice>,
    /// Tracepoints and functions recorded while the steps run ([`crate::steps::trace`]).
    pub trace: Option<TraceBlock>,
    pub steps: Vec<Step>,
    /// Deprecation notices, one per old spelling the file uses (`via: serial`), each starting
    /// with `file:line:column: path:`; whoever loads the scenario for a user shows them.
    pub notices: Vec<String>,
}

/// A scenario's checked `trace:` block and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceBlock {
    pub spec: crate::steps::trace::Trace,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub feature: Feature,
    /// Where the `requires` entry is.
    pub at: Location,
}

/// How a run's kernel reports measure against `expect` and `allow`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Triage {
    /// Titles matching an `expect` pattern.
    pub expected: Vec<String>,
    /// Titles matching an `allow` pattern (and no `expect` one).
    pub allowed: Vec<String>,
    /// Titles matching neither: each fails the run.
    pub unexpected: Vec<String>,
    /// `expect` patterns no title matched: each fails the run.
    pub missing: Vec<String>,
}

impl Triage {
    pub fn passed(&self) -> bool {
        self.unexpected.is_empty() && self.missing.is_empty()
    }
}

impl Scenario {
    /// Sorts report titles into expected, allowed and unexpected, and lists the expected
    /// patterns nothing matched. Duplicate titles count once.
    pub fn triage<'a>(&self, titles: impl IntoIterator<Item = &'a str>) -> Triage {
        let mut t = Triage::default();
        let mut seen: Vec<&str> = Vec::new();
        for title in titles {
            if seen.contains(&title) {
                continue;
            }
            seen.push(title);
            if self.expect.iter().any(|p| p.matches(title)) {
                t.expected.push(title.to_string());
            } else if self.allow.iter().any(|p| p.matches(title)) {
                t.allowed.push(title.to_string());
            } else {
                t.unexpected.push(title.to_string());
            }
        }
        for p in &self.expect {
            if !seen.iter().any(|title| p.matches(title)) {
                t.missing.push(p.to_string());
            }
        }
        t
    }

    /// A copy in which every timeout the file left to its default (the run's and the steps')
    /// is multiplied by `factor`; timeouts the file gave, deadlines, sleeps and durations stay.
    pub fn with_default_timeouts_scaled(&self, factor: f64) -> Scenario {
        fn scale(steps: &mut [Step], factor: f64) {
            for s in steps {
                if s.default_timeout {
                    if let Some(t) = s.kind.timeout_mut() {
                        *t = t.mul_f64(factor);
                    }
                }
                scale(s.kind.children_mut(), factor);
            }
        }
        let mut out = self.clone();
        if out.default_timeout {
            out.timeout = out.timeout.mul_f64(factor);
        }
        scale(&mut out.steps, factor);
        out
    }

    /// Every step, depth first (children of `parallel` and `repeat` after their parent).
    pub fn all_steps(&self) -> Vec<&Step> {
        fn walk<'a>(steps: &'a [Step], out: &mut Vec<&'a Step>) {
            for s in steps {
                out.push(s);
                walk(s.kind.children(), out);
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }
}

/// Reads and validates a scenario file. Overlay names resolve against the scenario's own folder,
/// then `overlays_dir` (rig's built-in overlays, for the CLI). A `path` that names no file and is
/// a bare name (`fake-warning`, `fake-warning.yaml`) is looked up in the scenario folders of the
/// project file ([`crate::project`]), then in rig's built-in scenarios.
pub fn load(path: &Path, overlays_dir: &Path) -> Result<Scenario, ScenarioError> {
    let path = find::resolve(path)?;
    let bytes = std::fs::read(&path).map_err(|source| ScenarioError::Read {
        path: path.clone(),
        source,
    })?;
    let label = path.display().to_string();
    let text = utf8(&bytes, &label)?;
    parse_str_in(text, &label, &find::overlay_dirs(&path, overlays_dir))
}

/// A file's bytes as text, or an error at the line and column of its first byte that is not
/// UTF-8 (scenario and matrix files alike).
pub fn utf8<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, ScenarioError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&good[start..]).chars().count() + 1;
        ScenarioError::Invalid {
            file: file.to_string(),
            line,
            column,
            path: String::new(),
            message: format!("not UTF-8 text (byte 0x{:02x})", bytes[e.valid_up_to()]),
        }
    })
}

/// Validates scenario text; `file_label` is the file name errors show (and the default name's
/// source: its stem).
pub fn parse_str(
    text: &str,
    file_label: &str,
    overlays_dir: &Path,
) -> Result<Scenario, ScenarioError> {
    parse_str_in(text, file_label, &[overlays_dir.to_path_buf()])
}

/// [`parse_str`] with overlay names looked up in each of `overlay_dirs` in turn.
pub fn parse_str_in(
    text: &str,
    file_label: &str,
    overlay_dirs: &[PathBuf],
) -> Result<Scenario, ScenarioError> {
    let invalid = |mark: yaml::Mark, path: &yaml::Path, message: String| ScenarioError::Invalid {
        file: file_label.to_string(),
        line: mark.line,
        column: mark.column,
        path: path.to_string(),
        message,
    };
    let tree = yaml::parse(text).map_err(|e| invalid(e.mark, &e.path, e.message))?;
    let raw: raw::RawScenario = yaml::from_node(&tree).map_err(|e| {
        let (mark, path) = e.at.clone().unwrap_or((tree.mark(), yaml::Path::root()));
        invalid(mark, &path, e.message)
    })?;
    validate::validate(raw, &tree, file_label, overlay_dirs)
}

/// The test matrix's file in `scenarios/` (`rig::matrix`): not a scenario, so [`load_dir`]
/// leaves it out.
pub const MATRIX_FILE: &str = "matrix.yaml";

/// Loads every `*.yaml` in `dir` (but [`MATRIX_FILE`] and the project file), sorted by file name; the first error
/// stops it.
pub fn load_dir(dir: &Path, overlays_dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ScenarioError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n != MATRIX_FILE && n != crate::project::FILE)
        })
        .collect();
    files.sort();
    files.iter().map(|f| load(f, overlays_dir)).collect()
}
