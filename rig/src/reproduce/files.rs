//! Reading a run folder or an unpacked bundle as data: every file is named by a relative, plain
//! path and reached without a symbolic link on the way, so what is read is inside the folder;
//! files are read up to a size bound.

use super::ReproduceError;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The largest `run.json` rig reads (the ones it writes are a few KiB).
pub const MAX_RECORD_BYTES: u64 = 1 << 20;
/// The largest `report.json` rig reads back (every report's text of many repetitions).
pub const MAX_REPORT_BYTES: u64 = 64 << 20;

fn outside(path: &Path, why: impl std::fmt::Display) -> ReproduceError {
    ReproduceError::Outside {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// `dir/rel`, checked: `rel` is relative with plain components, and no component on the way
/// (`dir` itself excepted: the user named it) is a symbolic link. `Ok(None)`: it does not exist.
fn walk(dir: &Path, rel: &Path) -> Result<Option<(PathBuf, std::fs::Metadata)>, ReproduceError> {
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(outside(rel, "not a plain relative path"));
    }
    let mut at = dir.to_path_buf();
    let mut meta = None;
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(outside(
                    &at,
                    "a symbolic link (it could lead out of the folder)",
                ))
            }
            Ok(m) => meta = Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ReproduceError::Read { path: at, source }),
        }
    }
    Ok(meta.map(|m| (at, m)))
}

/// The regular file `dir/rel` ([`walk`]'s checks); `Ok(None)` when it does not exist.
pub fn file_inside(dir: &Path, rel: &Path) -> Result<Option<PathBuf>, ReproduceError> {
    match walk(dir, rel)? {
        None => Ok(None),
        Some((p, m)) if m.is_file() => Ok(Some(p)),
        Some((p, _)) => Err(outside(&p, "not a regular file")),
    }
}

/// The folder `dir/rel`, which may not exist yet ([`walk`]'s checks).
pub fn folder_inside(dir: &Path, rel: &Path) -> Result<PathBuf, ReproduceError> {
    match walk(dir, rel)? {
        None => Ok(dir.join(rel)),
        Some((p, m)) if m.is_dir() => Ok(p),
        Some((p, _)) => Err(outside(&p, "not a folder")),
    }
}

/// The text of `dir/rel`, at most `max` bytes; `Ok(None)` when it does not exist.
pub fn read_inside(dir: &Path, rel: &Path, max: u64) -> Result<Option<String>, ReproduceError> {
    let Some(path) = file_inside(dir, rel)? else {
        return Ok(None);
    };
    let read_err = |source| ReproduceError::Read {
        path: path.clone(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > max {
        return Err(ReproduceError::BadRecord {
            path,
            message: format!("larger than {max} bytes"),
        });
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| ReproduceError::BadRecord {
            path,
            message: format!("not UTF-8 text: {e}"),
        })
}
