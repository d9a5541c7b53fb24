//! Unpacking a bundle: input from elsewhere, so an allow-list within bounds. Only regular files
//! and folders, at relative plain paths (no `/…`, no `..`), each file at most once, at most
//! [`MAX_ENTRIES`] entries and [`MAX_UNPACKED_BYTES`] bytes of files in all — checked against
//! each entry's header before a byte of it is written, so a gzip bomb is refused at its first
//! large entry. Symbolic and hard links, devices, FIFOs and sparse files are refused; modes are
//! rig's (0644 files, 0755 folders), not the archive's. A refused bundle leaves nothing behind.

use super::ReproduceError;
use flate2::read::GzDecoder;
use std::io::{BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The most bytes a bundle may unpack to. A bundle holds a scenario, its overlays, a kernel
/// `.config`, patches, fragments, one console log and the report: a few MiB, tens with a long
/// console log.
pub const MAX_UNPACKED_BYTES: u64 = 256 << 20;
/// The most entries (files and folders) a bundle may hold.
pub const MAX_ENTRIES: usize = 1000;

/// Bounds for [`unpack_within`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub bytes: u64,
    pub entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bytes: MAX_UNPACKED_BYTES,
            entries: MAX_ENTRIES,
        }
    }
}

fn refuse(path: &Path, message: impl std::fmt::Display) -> ReproduceError {
    ReproduceError::Bundle {
        path: path.into(),
        message: message.to_string(),
    }
}

/// Unpacks bundle `path` into a new folder under `into`; returns it.
pub fn unpack(path: &Path, into: &Path) -> Result<PathBuf, ReproduceError> {
    unpack_within(path, into, Limits::default())
}

pub(super) fn unpack_within(
    path: &Path,
    into: &Path,
    limits: Limits,
) -> Result<PathBuf, ReproduceError> {
    let file = std::fs::File::open(path).map_err(|source| ReproduceError::Read {
        path: path.into(),
        source,
    })?;
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".tar.gz").to_string())
        .unwrap_or_else(|| "bundle".into());
    let dir = crate::host::artifacts::RunDir::create_in(into, &format!("bundle-{stem}"))
        .map_err(|e| refuse(path, e))?;
    let dir = dir.path().to_path_buf();
    match entries(path, file, &dir, limits) {
        Ok(()) => Ok(dir),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// An entry's path, checked: relative, plain components (a `./` as `tar -C dir .` writes is
/// dropped); `None` for the archive's root folder itself (`./`).
fn entry_path(bundle: &Path, raw: &[u8]) -> Result<Option<PathBuf>, ReproduceError> {
    let shown = String::from_utf8_lossy(raw).escape_default().to_string();
    let text = std::str::from_utf8(raw)
        .map_err(|_| refuse(bundle, format!("entry `{shown}`: the name is not UTF-8")))?;
    let p = Path::new(text);
    if p.is_absolute() {
        return Err(refuse(
            bundle,
            format!("entry `{shown}` has an absolute path: bundles hold relative paths only"),
        ));
    }
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(refuse(
            bundle,
            format!("entry `{shown}` is not a plain relative path (`..`)"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(refuse(
            bundle,
            format!("entry `{shown}` has control characters in its name"),
        ));
    }
    let plain: PathBuf = p
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    Ok((!plain.as_os_str().is_empty()).then_some(plain))
}

fn entries(
    bundle: &Path,
    file: std::fs::File,
    dir: &Path,
    limits: Limits,
) -> Result<(), ReproduceError> {
    let not_a_bundle =
        |e: std::io::Error| refuse(bundle, format!("not a rig bundle (.tar.gz): {e}"));
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReproduceError::Read { path, source }
    };
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let (mut count, mut total) = (0usize, 0u64);
    for entry in archive.entries().map_err(not_a_bundle)? {
        let mut entry = entry.map_err(not_a_bundle)?;
        count += 1;
        if count > limits.entries {
            return Err(refuse(
                bundle,
                format!(
                    "more than {} entries: not a bundle rig writes",
                    limits.entries
                ),
            ));
        }
        let kind = entry.header().entry_type();
        let Some(rel) = entry_path(bundle, &entry.path_bytes())? else {
            if kind == tar::EntryType::Directory {
                continue;
            }
            return Err(refuse(bundle, "an entry without a name"));
        };
        let dst = dir.join(&rel);
        if let Some(parent) = dst.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(write_err(parent))?;
        }
        match kind {
            tar::EntryType::Directory => {
                match std::fs::DirBuilder::new().mode(0o755).create(&dst) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dst.is_dir() => {}
                    Err(e) => return Err(write_err(&dst)(e)),
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(not_a_bundle)?;
                if total.saturating_add(size) > limits.bytes {
                    return Err(refuse(
                        bundle,
                        format!(
                            "entry `{}` ({size} bytes) would take it past {} bytes unpacked: \
                             not a bundle rig writes (a compression bomb?)",
                            rel.display(),
                            limits.bytes
                        ),
                    ));
                }
                total += size;
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&dst)
                    .map_err(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            refuse(bundle, format!("entry `{}` twice", rel.display()))
                        } else {
                            write_err(&dst)(e)
                        }
                    })?;
                let copied =
                    std::io::copy(&mut (&mut entry).take(size), &mut out).map_err(not_a_bundle)?;
                if copied != size {
                    return Err(refuse(
                        bundle,
                        format!("entry `{}` is cut short", rel.display()),
                    ));
                }
            }
            other => {
                return Err(refuse(
                    bundle,
                    format!(
                        "entry `{}` is a {}: bundles hold only files and folders",
                        rel.display(),
                        kind_name(other)
                    ),
                ))
            }
        }
    }
    if count == 0 {
        return Err(refuse(bundle, "not a rig bundle (.tar.gz): no entries"));
    }
    Ok(())
}

fn kind_name(k: tar::EntryType) -> String {
    match k {
        tar::EntryType::Symlink => "symbolic link".into(),
        tar::EntryType::Link => "hard link".into(),
        tar::EntryType::Char => "character device".into(),
        tar::EntryType::Block => "block device".into(),
        tar::EntryType::Fifo => "FIFO".into(),
        tar::EntryType::GNUSparse => "sparse file".into(),
        other => format!("{other:?} entry"),
    }
}
