//! The per-run artifacts folder: console log, QMP transcript, QEMU argv, timings, report.
//! Kept on success and failure alike; errors name it.

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
        let safe: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
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
