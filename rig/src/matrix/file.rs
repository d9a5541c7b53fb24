//! `scenarios/matrix.yaml`: named sets of kernels × boards × scenario globs. Parsed with the
//! scenario files' strict YAML reader (`rig-yaml`): unknown fields, wrong types, unknown
//! boards and kernels, globs that match no scenario are each one error with file, line, column
//! and field path.
//!
//! ```yaml
//! sets:
//!   smoke:
//!     description: Debian-kernel cells that pass in a few minutes
//!     cells:
//!       - kernels: [debian-6.1]
//!         boards: [x86_64-q35, arm64-virt]   # optional; default: every board
//!         scenarios: ["*"]                   # globs over scenario names
//!         exclude: [fake-warning]            # optional globs taken out again
//!         repeat: 1                          # optional; runs per cell, each on a fresh boot
//! ```

use super::MatrixError;
use crate::host::board::Board;
use crate::scenario::{Scenario, ScenarioError};
use rig_yaml::{Node, Path};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a matrix file: {sets: {NAME: …}}")]
struct RawMatrix {
    sets: BTreeMap<String, RawSet>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a set: {description, cells: [{kernels, boards, scenarios, exclude, repeat}]}"
)]
struct RawSet {
    #[serde(default)]
    description: String,
    cells: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a group of cells: {kernels: […], boards: […], scenarios: […], exclude: […], repeat: N}"
)]
struct RawGroup {
    kernels: Vec<String>,
    #[serde(default)]
    boards: Option<Vec<String>>,
    scenarios: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    repeat: Option<u32>,
}

/// A validated matrix file.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub file: String,
    pub sets: BTreeMap<String, Set>,
}

#[derive(Debug, Clone)]
pub struct Set {
    pub name: String,
    pub description: String,
    pub groups: Vec<Group>,
}

/// One `cells:` entry: every kernel × board × matching scenario.
#[derive(Debug, Clone)]
pub struct Group {
    pub kernels: Vec<String>,
    pub boards: Vec<Board>,
    /// Names of the scenarios the globs select (minus `exclude`), in name order.
    pub scenarios: Vec<String>,
    pub repeat: u32,
}

impl Group {
    /// `BOARD::KERNEL::SCENARIO` for every cell of the group, kernels outermost.
    pub fn cell_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for k in &self.kernels {
            for b in &self.boards {
                for s in &self.scenarios {
                    out.push(super::cell_name(*b, k, s));
                }
            }
        }
        out
    }
}

struct V<'a> {
    file: &'a str,
    tree: &'a Node,
    names: Vec<&'a str>,
}

impl V<'_> {
    fn err(&self, path: &Path, message: impl Into<String>) -> MatrixError {
        let mark = self.tree.locate(path);
        MatrixError::Invalid(ScenarioError::Invalid {
            file: self.file.into(),
            line: mark.line,
            column: mark.column,
            path: path.to_string(),
            message: message.into(),
        })
    }

    fn glob(&self, pattern: &str, path: &Path) -> Result<glob::Pattern, MatrixError> {
        let p = glob::Pattern::new(pattern)
            .map_err(|e| self.err(path, format!("invalid glob `{pattern}`: {}", e.msg)))?;
        if !self.names.iter().any(|n| p.matches(n)) {
            return Err(self.err(
                path,
                format!(
                    "`{pattern}` matches no scenario (known: {})",
                    self.names.join(", ")
                ),
            ));
        }
        Ok(p)
    }

    fn group(&self, g: RawGroup, path: &Path) -> Result<Group, MatrixError> {
        if g.kernels.is_empty() {
            return Err(self.err(&path.key("kernels"), "lists no kernel"));
        }
        for (i, k) in g.kernels.iter().enumerate() {
            crate::provision::check_kernel_name(k)
                .map_err(|e| self.err(&path.key("kernels").index(i), e.to_string()))?;
            if g.kernels[..i].contains(k) {
                return Err(self.err(
                    &path.key("kernels").index(i),
                    format!("`{k}` is listed twice"),
                ));
            }
        }
        let boards = match g.boards {
            None => Board::ALL.to_vec(),
            Some(b) if b.is_empty() => return Err(self.err(&path.key("boards"), "lists no board")),
            Some(b) => {
                let mut out = Vec::new();
                for (i, name) in b.iter().enumerate() {
                    let board: Board =
                        name.parse().map_err(|e: crate::host::board::UnknownName| {
                            self.err(&path.key("boards").index(i), e.to_string())
                        })?;
                    if out.contains(&board) {
                        return Err(self.err(
                            &path.key("boards").index(i),
                            format!("`{board}` is listed twice"),
                        ));
                    }
                    out.push(board);
                }
                out
            }
        };
        if g.scenarios.is_empty() {
            return Err(self.err(&path.key("scenarios"), "lists no scenario"));
        }
        let mut include = Vec::new();
        for (i, s) in g.scenarios.iter().enumerate() {
            include.push(self.glob(s, &path.key("scenarios").index(i))?);
        }
        let mut exclude = Vec::new();
        for (i, s) in g.exclude.iter().enumerate() {
            exclude.push(self.glob(s, &path.key("exclude").index(i))?);
        }
        let scenarios: Vec<String> = self
            .names
            .iter()
            .filter(|n| include.iter().any(|p| p.matches(n)))
            .filter(|n| !exclude.iter().any(|p| p.matches(n)))
            .map(|n| n.to_string())
            .collect();
        if scenarios.is_empty() {
            return Err(self.err(&path.key("exclude"), "excludes every scenario selected"));
        }
        let repeat = match g.repeat {
            Some(0) => return Err(self.err(&path.key("repeat"), "must be at least 1")),
            Some(n) => n,
            None => 1,
        };
        Ok(Group {
            kernels: g.kernels,
            boards,
            scenarios,
            repeat,
        })
    }
}

/// Parses and validates matrix text; `scenarios` are the ones its globs select from.
pub fn parse_str(text: &str, file: &str, scenarios: &[Scenario]) -> Result<Matrix, MatrixError> {
    let invalid = |mark: rig_yaml::Mark, path: &Path, message: String| {
        MatrixError::Invalid(ScenarioError::Invalid {
            file: file.into(),
            line: mark.line,
            column: mark.column,
            path: path.to_string(),
            message,
        })
    };
    let tree = rig_yaml::parse(text).map_err(|e| invalid(e.mark, &e.path, e.message))?;
    let raw: RawMatrix = rig_yaml::from_node(&tree).map_err(|e| {
        let (mark, path) = e.at.clone().unwrap_or((tree.mark(), Path::root()));
        invalid(mark, &path, e.message)
    })?;
    let mut names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    let v = V {
        file,
        tree: &tree,
        names,
    };
    if raw.sets.is_empty() {
        return Err(v.err(&Path::root().key("sets"), "defines no set"));
    }
    let mut sets = BTreeMap::new();
    for (name, set) in raw.sets {
        let path = Path::root().key("sets").key(&name);
        let ok_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok_name {
            return Err(v.err(
                &path,
                format!("invalid set name `{name}`: use letters, digits, `-`, `_`"),
            ));
        }
        if set.cells.is_empty() {
            return Err(v.err(&path.key("cells"), "lists no cells"));
        }
        let mut groups: Vec<Group> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, g) in set.cells.into_iter().enumerate() {
            let at = path.key("cells").index(i);
            let g = v.group(g, &at)?;
            for name in g.cell_names() {
                if !seen.insert(name.clone()) {
                    return Err(v.err(&at, format!("cell {name} is already in this set")));
                }
            }
            groups.push(g);
        }
        sets.insert(
            name.clone(),
            Set {
                name,
                description: set.description,
                groups,
            },
        );
    }
    Ok(Matrix {
        file: file.into(),
        sets,
    })
}
