//! Where a scenario file and its overlays are: a path as given, or a bare name looked up in the
//! project's scenario folders ([`crate::project`]) and then rig's built-in scenarios; overlays
//! beside the scenario file first, then the folder the caller names (rig's built-in overlays).

use super::ScenarioError;
use crate::project::{Project, ProjectError};
use std::path::{Path, PathBuf};

impl From<ProjectError> for ScenarioError {
    fn from(e: ProjectError) -> Self {
        match e {
            ProjectError::Read { path, source } => ScenarioError::Read { path, source },
            ProjectError::Invalid {
                file,
                line,
                column,
                message,
            } => ScenarioError::Invalid {
                file,
                line,
                column,
                path: String::new(),
                message: format!("project file: {message}"),
            },
        }
    }
}

/// The file `given` names: itself when it exists or is more than a bare name; else the first
/// `NAME` or `NAME.yaml` in the project's scenario folders, then in rig's built-in scenarios.
pub(super) fn resolve(given: &Path) -> Result<PathBuf, ScenarioError> {
    let bare = given.components().count() == 1 && given.parent() == Some(Path::new(""));
    if given.exists() || !bare {
        return Ok(given.to_path_buf());
    }
    let project = crate::project::discover()?;
    let dirs = search_dirs(project.as_ref());
    let mut names = vec![given.to_path_buf()];
    if given.extension().is_none_or(|x| x != "yaml" && x != "yml") {
        names.push(given.with_extension("yaml"));
    }
    let found = dirs
        .iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|f| f.is_file());
    found.ok_or_else(|| {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        ScenarioError::Read {
            path: given.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no such file, nor a scenario of that name in {}",
                    shown.join(", ")
                ),
            ),
        }
    })
}

/// The project's scenario folders, then rig's built-in ones.
fn search_dirs(project: Option<&Project>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = project.map(|p| p.scenarios.clone()).unwrap_or_default();
    dirs.push(crate::repo_root().join("scenarios"));
    dirs
}

/// Where the overlays of the scenario at `file` are looked up: its own folder, then `fallback`.
pub(super) fn overlay_dirs(file: &Path, fallback: &Path) -> Vec<PathBuf> {
    let own = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    vec![own, fallback.to_path_buf()]
}
