//! The user's project file: `rig.yaml`, found in the working directory or the nearest folder
//! above it (as nextest finds `.config/nextest.toml`). It names the user's scenario folders and
//! matrix file, relative to itself:
//!
//! ```yaml
//! scenarios: [scenarios, team/scenarios]   # where `rig run NAME` looks, before rig's own
//! matrix: scenarios/matrix.yaml            # what `rig matrix` runs instead of rig's own
//! ```
//!
//! Both are optional; unknown fields are errors (file:line:column). Without a project file rig
//! uses its built-in scenarios and matrix.

use rig_yaml as yaml;
use std::path::{Path, PathBuf};

/// The project file's name.
pub const FILE: &str = "rig.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot read the project file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    scenarios: Vec<PathBuf>,
    matrix: Option<PathBuf>,
}

/// A project file, its paths made relative to the working directory's view (joined onto the
/// file's folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The project file itself.
    pub file: PathBuf,
    /// Folders of the user's scenarios, in the file's order.
    pub scenarios: Vec<PathBuf>,
    /// The user's matrix file.
    pub matrix: Option<PathBuf>,
}

/// The nearest project file at or above `start`, if any.
pub fn find_from(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(FILE))
        .find(|f| f.is_file())
}

/// The project of the working directory (the nearest `rig.yaml` at or above it), if any.
pub fn discover() -> Result<Option<Project>, ProjectError> {
    let Ok(cwd) = std::env::current_dir() else {
        return Ok(None);
    };
    find_from(&cwd).map(|f| load(&f)).transpose()
}

/// Reads and checks the project file `path`.
pub fn load(path: &Path) -> Result<Project, ProjectError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ProjectError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |mark: yaml::Mark, at: &yaml::Path, message: String| ProjectError::Invalid {
        file: label.clone(),
        line: mark.line,
        column: mark.column,
        message: if at.to_string().is_empty() {
            message
        } else {
            format!("{at}: {message}")
        },
    };
    if text.trim().is_empty() {
        return Ok(Project {
            file: path.to_path_buf(),
            scenarios: Vec::new(),
            matrix: None,
        });
    }
    let tree = yaml::parse(&text).map_err(|e| invalid(e.mark, &e.path, e.message))?;
    let raw: Raw = yaml::from_node(&tree).map_err(|e| {
        let (mark, at) = e.at.clone().unwrap_or((tree.mark(), yaml::Path::root()));
        invalid(mark, &at, e.message)
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    Ok(Project {
        file: path.to_path_buf(),
        scenarios: raw.scenarios.iter().map(|p| base.join(p)).collect(),
        matrix: raw.matrix.map(|p| base.join(p)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_upward_and_paths_relative_to_the_file() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_from(&deep), None);
        std::fs::write(
            d.path().join(FILE),
            "scenarios: [mine, ../theirs]\nmatrix: mine/matrix.yaml\n",
        )
        .unwrap();
        let f = find_from(&deep).unwrap();
        assert_eq!(f, d.path().join(FILE));
        let p = load(&f).unwrap();
        assert_eq!(
            p.scenarios,
            [d.path().join("mine"), d.path().join("../theirs")]
        );
        assert_eq!(p.matrix, Some(d.path().join("mine/matrix.yaml")));
        std::fs::write(d.path().join(FILE), "").unwrap();
        let empty = load(&f).unwrap();
        assert!(empty.scenarios.is_empty() && empty.matrix.is_none());
    }

    #[test]
    fn unknown_fields_are_errors_with_a_position() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join(FILE);
        std::fs::write(&f, "scenarios: [s]\nfragments: [k]\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2:1: ", f.display())), "{e}");
        assert!(e.contains("fragments"), "{e}");
    }
}
