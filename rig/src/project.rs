//! The user's project file: `rig.yaml`, found in the working directory or the nearest folder
//! above it (as nextest finds `.config/nextest.toml`). It names the user's scenario folders,
//! matrix file and extra kernel inputs, relative to itself:
//!
//! ```yaml
//! scenarios: [scenarios, team/scenarios]   # where `rig run NAME` looks, before rig's own
//! matrix: scenarios/matrix.yaml            # what `rig matrix` runs instead of rig's own
//! kernel:
//!   fragments: [kconfig/mine.config]       # merged after the flavor's fragments
//!   patches: [patches/0001-fix.patch]      # `patch -p1`, after the flavor's patch sets
//! ```
//!
//! Everything is optional; unknown fields are errors (file:line:column), and so is a fragment
//! or patch that is not a file (at its entry's position). `kernel:` applies to every kernel rig
//! builds (`rig-<SERIES>[-FLAVOR]`, `tree:PATH[#FLAVOR]`): their fragments are checked in the
//! final `.config` like rig's own, and their content is part of the build's cache key. A kernel
//! rig does not build (`debian-6.1`) is refused while the project names any (see
//! `crate::provision::resolve_kernel`). Without a project file rig uses its built-in scenarios
//! and matrix and builds its kernels exactly as without `kernel:`.

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
    #[serde(default)]
    kernel: RawKernel,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    #[serde(default)]
    fragments: Vec<PathBuf>,
    #[serde(default)]
    patches: Vec<PathBuf>,
}

/// The project's own kernel inputs (`kernel:`), paths joined onto the project file's folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelInputs {
    /// Config fragments, merged after the flavor's (in this order).
    pub fragments: Vec<PathBuf>,
    /// Unified diffs applied with `patch -p1` after the flavor's patch sets (in this order).
    pub patches: Vec<PathBuf>,
}

impl KernelInputs {
    /// No fragments and no patches: a kernel is built exactly as without a project.
    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty() && self.patches.is_empty()
    }
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
    /// Extra kernel config fragments and patches for every kernel rig builds.
    pub kernel: KernelInputs,
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
            kernel: KernelInputs::default(),
        });
    }
    let tree = yaml::parse(&text).map_err(|e| invalid(e.mark, &e.path, e.message))?;
    let raw: Raw = yaml::from_node(&tree).map_err(|e| {
        let (mark, at) = e.at.clone().unwrap_or((tree.mark(), yaml::Path::root()));
        invalid(mark, &at, e.message)
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    // A kernel input must be a file now: a typo is found before any build, at its entry.
    let files = |field: &str, list: &[PathBuf]| -> Result<Vec<PathBuf>, ProjectError> {
        let mut out = Vec::new();
        for (i, p) in list.iter().enumerate() {
            let full = base.join(p);
            if !full.is_file() {
                let at = yaml::Path::root().key("kernel").key(field).index(i);
                let what = if field == "fragments" {
                    "config fragment"
                } else {
                    "patch"
                };
                return Err(invalid(
                    tree.locate(&at),
                    &at,
                    format!("{what} {} is not a file", full.display()),
                ));
            }
            out.push(full);
        }
        Ok(out)
    };
    let kernel = KernelInputs {
        fragments: files("fragments", &raw.kernel.fragments)?,
        patches: files("patches", &raw.kernel.patches)?,
    };
    Ok(Project {
        file: path.to_path_buf(),
        scenarios: raw.scenarios.iter().map(|p| base.join(p)).collect(),
        matrix: raw.matrix.map(|p| base.join(p)),
        kernel,
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

    #[test]
    fn kernel_fragments_and_patches_relative_to_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("k")).unwrap();
        std::fs::write(d.path().join("k/mine.config"), "CONFIG_X=y\n").unwrap();
        std::fs::write(d.path().join("k/0001.patch"), "--- a/x\n+++ b/x\n").unwrap();
        let f = d.path().join(FILE);
        std::fs::write(
            &f,
            "kernel:\n  fragments: [k/mine.config]\n  patches:\n    - k/0001.patch\n",
        )
        .unwrap();
        let p = load(&f).unwrap();
        assert_eq!(p.kernel.fragments, [d.path().join("k/mine.config")]);
        assert_eq!(p.kernel.patches, [d.path().join("k/0001.patch")]);
        assert!(!p.kernel.is_empty());
        std::fs::write(&f, "scenarios: [s]\n").unwrap();
        assert!(load(&f).unwrap().kernel.is_empty());
        std::fs::write(&f, "kernel: {}\n").unwrap();
        assert!(load(&f).unwrap().kernel.is_empty());
    }

    #[test]
    fn unknown_kernel_fields_are_errors_with_a_position() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join(FILE);
        std::fs::write(&f, "kernel:\n  fragments: []\n  patchez: [p]\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:3:3: ", f.display())), "{e}");
        assert!(e.contains("patchez"), "{e}");
    }

    #[test]
    fn a_missing_kernel_input_is_an_error_at_its_entry() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ok.config"), "CONFIG_X=y\n").unwrap();
        let f = d.path().join(FILE);
        std::fs::write(
            &f,
            "kernel:\n  fragments: [ok.config]\n  patches:\n    - gone.patch\n",
        )
        .unwrap();
        let e = load(&f).unwrap_err();
        assert!(matches!(e, ProjectError::Invalid { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.starts_with(&format!("{}:4:7: ", f.display())), "{e}");
        assert!(e.contains("kernel.patches[0]"), "{e}");
        assert!(
            e.contains("gone.patch") && e.contains("is not a file"),
            "{e}"
        );
        std::fs::write(&f, "kernel:\n  fragments: [ok.config, nope.config]\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2:26: ", f.display())), "{e}");
        assert!(
            e.contains("config fragment") && e.contains("nope.config"),
            "{e}"
        );
        // A folder is not a fragment.
        std::fs::write(&f, "kernel:\n  fragments: [.]\n").unwrap();
        assert!(load(&f).is_err());
    }
}
