//! The per-run artifacts folder: console log, QMP transcript, QEMU argv, timings, report.
//! Kept on success and failure alike; errors name it. Also the run's id, which every QEMU of the
//! run carries in its argv (`-name rig-<run id>`) so that leak checks find exactly this run's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot create artifacts folder {path}")]
pub struct ArtifactsError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The longest run id kept (longer ones are cut).
const RUN_ID_MAX: usize = 64;

/// This process's run id: `RIG_RUN_ID` when set (reduced to letters, digits, `.`, `_` and `-`,
/// at most 64 of them, so it is safe on any command line), else `p<pid>`.
pub fn run_id() -> String {
    match std::env::var("RIG_RUN_ID") {
        Ok(v) if !v.is_empty() => safe_name(&v).chars().take(RUN_ID_MAX).collect(),
        _ => format!("p{}", std::process::id()),
    }
}

/// The name every QEMU of run `run_id` gets (`-name`): `rig-<run id>`. A leak check looks for
/// the argument pair `-name rig-<run id>`, exactly, in a process's argv.
pub fn qemu_name(run_id: &str) -> String {
    format!("rig-{run_id}")
}

fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// `<base>/<UTC timestamp>-<label>-<pid>`; `base` is `RIG_ARTIFACTS` or `./rig-runs`.
    pub fn create(label: &str) -> Result<Self, ArtifactsError> {
        let base = std::env::var_os("RIG_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("rig-runs"));
        Self::create_in(&base, label)
    }

    pub fn create_in(base: &Path, label: &str) -> Result<Self, ArtifactsError> {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace([':', '-'], "");
        let safe = safe_name(label);
        // A counter keeps two runs started in the same second (tests) apart.
        for n in 0..1000 {
            let name = format!("{stamp}-{safe}-{}-{n}", std::process::id());
            let path = base.join(name);
            match fs::create_dir_all(base).and_then(|_| fs::create_dir(&path)) {
                Ok(()) => return Ok(RunDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(ArtifactsError { path, source }),
            }
        }
        Err(ArtifactsError {
            path: base.to_path_buf(),
            source: io::Error::other("too many runs with the same name"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn console_log(&self) -> PathBuf {
        self.file("console.log")
    }

    pub fn qmp_transcript(&self) -> PathBuf {
        self.file("qmp.jsonl")
    }

    /// A sub-folder for one repetition or one matrix cell.
    pub fn child(&self, name: &str) -> Result<RunDir, ArtifactsError> {
        let path = self.path.join(name);
        fs::create_dir_all(&path).map_err(|source| ArtifactsError {
            path: path.clone(),
            source,
        })?;
        Ok(RunDir { path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_safe_on_a_command_line() {
        assert_eq!(safe_name("ci-1.a_b"), "ci-1.a_b");
        assert_eq!(safe_name("a b,c=d;$(x)"), "a_b_c_d___x_");
        assert_eq!(qemu_name("ci-7"), "rig-ci-7");
        assert!(run_id().len() <= RUN_ID_MAX + 1);
    }

    #[test]
    fn run_folders_are_distinct_and_labels_sanitized() {
        let d = tempfile::tempdir().unwrap();
        let a = RunDir::create_in(d.path(), "run x/../y").unwrap();
        let b = RunDir::create_in(d.path(), "run x/../y").unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(a.path().parent(), Some(d.path()));
        assert!(!a.path().to_string_lossy().contains(' '));
    }
}
