//! Per-user private directories for what rig creates in shared places: the ssh port locks and
//! QEMU's console and QMP sockets.
//!
//! A fixed name under `/tmp` is an invitation: another local user can create it first (as a
//! directory they own, or as a symlink to somewhere rig should not write) and then read, hold or
//! redirect what rig puts there. So rig keeps these files in a directory only its user can use:
//! `$XDG_RUNTIME_DIR/rig` when the session has one, else `/tmp/rig-<uid>`. The directory is made
//! with mode 0700; one that already exists must be a real directory (not a symlink), owned by
//! this user and closed to everyone else, or rig refuses to use it and says why.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UserDirError {
    #[error("cannot create the private directory {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("refusing to use {path}: {why} (remove it, or point XDG_RUNTIME_DIR elsewhere)")]
    NotPrivate { path: PathBuf, why: String },
}

/// The effective user id.
pub fn uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// rig's per-user directory: `$XDG_RUNTIME_DIR/rig` when `XDG_RUNTIME_DIR` names a private
/// directory of this user, else `/tmp/rig-<uid>`; created (0700) or checked.
pub fn runtime_dir() -> Result<PathBuf, UserDirError> {
    let base = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(x) if x.is_absolute() && check_private(&x).is_ok() => x.join("rig"),
        _ => std::env::temp_dir().join(format!("rig-{}", uid())),
    };
    ensure_private(&base)?;
    Ok(base)
}

/// `<runtime_dir>/<name>`, created (0700) or checked like the runtime directory itself.
pub fn private_subdir(name: &str) -> Result<PathBuf, UserDirError> {
    let dir = runtime_dir()?.join(name);
    ensure_private(&dir)?;
    Ok(dir)
}

/// Creates `path` with mode 0700 (its parent must exist), or checks that the existing one is a
/// real directory of this user that nobody else can use. Our own directory with looser bits is
/// tightened to 0700 (only we could have made it so).
pub fn ensure_private(path: &Path) -> Result<(), UserDirError> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(UserDirError::Create {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    match check_private(path) {
        Ok(()) => Ok(()),
        Err(Loose(_)) => {
            // Ours, so we may tighten it (in a sticky /tmp nobody else can swap our entry).
            fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(|source| {
                UserDirError::Create {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
            check_private(path).map_err(|e| e.into_error(path))
        }
        Err(e) => Err(e.into_error(path)),
    }
}

/// Why a directory is not private.
#[derive(Debug)]
enum Problem {
    Missing(io::Error),
    NotADirectory,
    Symlink,
    Owner(u32),
    /// Ours, but group or others have access (the mode bits).
    Loose(u32),
}
use Problem::*;

impl Problem {
    fn into_error(self, path: &Path) -> UserDirError {
        let why = match self {
            Missing(e) => format!("cannot stat it: {e}"),
            NotADirectory => "it is not a directory".into(),
            Symlink => "it is a symlink".into(),
            Owner(o) => format!("it belongs to uid {o}, not to uid {}", uid()),
            Loose(m) => format!("its mode is {m:o}; it must be 0700"),
        };
        UserDirError::NotPrivate {
            path: path.to_path_buf(),
            why,
        }
    }
}

fn check_private(path: &Path) -> Result<(), Problem> {
    let meta = fs::symlink_metadata(path).map_err(Missing)?;
    if meta.file_type().is_symlink() {
        return Err(Symlink);
    }
    if !meta.is_dir() {
        return Err(NotADirectory);
    }
    if meta.uid() != uid() {
        return Err(Owner(meta.uid()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Loose(mode));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_directory_is_0700_and_an_existing_one_is_reused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rig-x");
        ensure_private(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
        ensure_private(&p).unwrap();
        // Our own directory left open is closed again.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o1777)).unwrap();
        ensure_private(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
    }

    #[test]
    fn a_symlink_planted_at_the_name_is_refused_and_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("victim");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        let p = d.path().join("rig-x");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let e = ensure_private(&p).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        // The target was not touched (not chmod-ed through the link).
        assert_eq!(mode(&target), 0o755);
    }

    #[test]
    fn a_file_or_a_directory_of_another_user_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("file");
        fs::write(&f, "").unwrap();
        let e = ensure_private(&f).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");

        let other = d.path().join("other");
        fs::create_dir(&other).unwrap();
        // Hand it to another user (needs root, which the test suite runs as; without root the
        // chown fails and this part cannot be shown, so fail loudly rather than pass).
        let rc = std::os::unix::fs::chown(&other, Some(65534), Some(65534));
        assert!(rc.is_ok(), "chown needs root: {}", rc.unwrap_err());
        let e = ensure_private(&other).unwrap_err();
        assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
    }

    #[test]
    fn the_runtime_dir_is_private() {
        let p = runtime_dir().unwrap();
        assert_eq!(mode(&p), 0o700);
        assert_eq!(fs::symlink_metadata(&p).unwrap().uid(), uid());
        let s = private_subdir("test-sub").unwrap();
        assert_eq!(s.parent(), Some(p.as_path()));
        assert_eq!(mode(&s), 0o700);
    }
}
