//! The per-run artifacts folder: console log, QMP transcript, QEMU argv, timings, report.
//! Kept on success and failure alike; errors name it. Also the run's id, which every QEMU of the
//! run carries in its argv (`-name rig-<run id>`) so that leak checks find exactly this run's.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
#[error("cannot create artifacts folder {path}")]
pub struct ArtifactsError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The longest run id kept (longer ones are cut).
/// A run folder's report, written by `run` and read by `report` (its format:
/// `schemas/report.schema.json`). Here, below both, so neither imports the other for it.
pub const REPORT_FILE: &str = "report.json";
/// The file name of the record in a run folder (`run` writes it; `report` and `reproduce` look
/// for it).
pub const RECORD_FILE: &str = "run.json";

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

/// Writes `bytes` to `path` so that a reader (or a kill, a crash, a power loss at any moment)
/// sees either the old file or the whole new one, never a part: a temp file in the same folder
/// (`.<name>.<pid>.<n>.tmp`), written, fsynced, renamed over `path`, then the folder fsynced so
/// the rename itself is on disk. The temp file is removed when any step fails. The new file has
/// the mode `fs::write` would give it (0666 less the umask).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (tmp, mut f) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".{}.{}.{n}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let written = f.write_all(bytes).and_then(|_| f.sync_all()).and_then(|_| {
        drop(f);
        fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(dir)
}

/// fsyncs a folder, so that the names created, renamed or removed in it are on disk.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Where run folders go: `RIG_ARTIFACTS`, else `./rig-runs`.
    pub fn base() -> PathBuf {
        std::env::var_os("RIG_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("rig-runs"))
    }

    /// `<base>/<UTC timestamp>-<label>-<pid>` in [`RunDir::base`].
    pub fn create(label: &str) -> Result<Self, ArtifactsError> {
        Self::create_in(&Self::base(), label)
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
    fn write_atomic_replaces_the_whole_file_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("report.json");
        write_atomic(&p, b"{\"first\": 1, \"long\": \"xxxxxxxxxxxxxxxx\"}").unwrap();
        write_atomic(&p, b"{}").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{}");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("report.json")]);
        // The mode is what `fs::write` gives, not a private temp file's 0600.
        let q = d.path().join("plain");
        fs::write(&q, b"x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&p), mode(&q));
    }

    #[test]
    fn write_atomic_fails_cleanly_into_a_missing_folder_or_onto_a_folder() {
        let d = tempfile::tempdir().unwrap();
        assert!(write_atomic(&d.path().join("no/such/file"), b"x").is_err());
        let sub = d.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("keep"), b"k").unwrap();
        // Renaming a file over a non-empty folder fails; the temp file must not stay behind.
        assert!(write_atomic(&sub, b"x").is_err());
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sub")]);
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
