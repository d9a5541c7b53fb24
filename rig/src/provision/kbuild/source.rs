//! Kernel sources: their identity (for cache keys), the pristine tree, and rig's working copy.
//!
//! rig never patches or builds inside a pristine source. Each source gets a working area
//! `<cache>/kbuild-work/<source-key>/` holding
//!   `src/`             a copy synced from the pristine tree (rsync: only what changed is copied),
//!                      with the flavor's patches applied on top;
//!   `build-<arch>-<flavor>/`  the persistent `O=` build directory (incremental rebuilds);
//!   `logs/`, `state.json` (files the applied patches touched), and `lock`.
//! The area is locked (flock) for the whole build, so two rigs never share it at once.

use super::series;
use super::{KbuildError, Source};
use crate::host::cache::{sha256_file_memo, Cache, CacheKey};
use crate::host::events::{Event, Events};
use crate::host::process::run_logged;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A stable identity for the source's content.
///
/// debian-6.12: the host tarball's SHA-256 (`host_612_tarball`). debian-7.3 (fetched): the
/// pinned SHA-256 from the manifest below `repo`, checked when the tarball is fetched. A git tree: `git rev-parse HEAD` plus a hash of what the
/// build would read beyond HEAD: `git diff HEAD` (tracked changes) and every untracked file git
/// does not ignore (`git ls-files --others --exclude-standard`), path and content — a new source
/// file is part of the build (rig copies the whole tree), so it must change the identity. A
/// clean tree, or one with tracked changes only, keeps the identity it always had (the hash of
/// the diff alone). Any other tree: a hash of every file.
pub fn identity(
    source: &Source,
    host_612_tarball: &Path,
    repo: &Path,
) -> Result<String, KbuildError> {
    match source {
        Source::Debian(s) => match series::pin(*s, repo)? {
            Some(pin) => Ok(format!("{}:{}", s.source_name(), pin.tarball_sha256)),
            None => {
                if !host_612_tarball.is_file() {
                    return Err(KbuildError::MissingSource {
                        path: host_612_tarball.to_path_buf(),
                        hint: "apt-get install linux-source-6.12",
                    });
                }
                Ok(format!(
                    "{}:{}",
                    s.source_name(),
                    sha256_file_memo(host_612_tarball)?
                ))
            }
        },
        Source::Tree(path) => tree_identity(path),
    }
}

/// [`identity`] of a kernel tree.
pub fn tree_identity(path: &Path) -> Result<String, KbuildError> {
    if !path.join("Makefile").is_file() || !path.join("Kconfig").is_file() {
        return Err(KbuildError::MissingSource {
            path: path.to_path_buf(),
            hint: "not a kernel source tree (no Makefile/Kconfig)",
        });
    }
    match git_identity(path)? {
        Some(id) => Ok(id),
        None => {
            let mut k = CacheKey::new("tree");
            k.tree("tree", path)?;
            Ok(format!("tree:{}", k.hex()))
        }
    }
}

/// Runs `git -C path ARGS`: its output, or the error naming the command.
fn git_output(path: &Path, args: &[&str]) -> Result<Vec<u8>, KbuildError> {
    let out = super::run::captured(Command::new("git").arg("-C").arg(path).args(args), |_| true)?;
    Ok(out.stdout)
}

/// `git:<HEAD>:<hash>`, or `None` when `path` is not a git work tree. The hash covers
/// `git diff HEAD` and, when there are any, the untracked files git does not ignore.
fn git_identity(path: &Path) -> Result<Option<String>, KbuildError> {
    let head = Command::new("git")
        .arg("-C")
        .arg(path)
        .args(["rev-parse", "--verify", "HEAD"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let head = match head {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        // No git, or not a repository: hash the tree instead.
        _ => return Ok(None),
    };
    let diff = git_output(path, &["diff", "HEAD", "--binary"])?;
    let untracked = git_output(path, &["ls-files", "--others", "--exclude-standard", "-z"])?;
    let mut key = CacheKey::new("diff");
    key.bytes("diff", &diff);
    let mut names: Vec<&[u8]> = untracked
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    for name in names {
        let rel = Path::new(std::ffi::OsStr::from_bytes(name));
        let file = path.join(rel);
        key.bytes("untracked", name);
        let meta = fs::symlink_metadata(&file).map_err(|source| KbuildError::Io {
            what: "cannot read untracked file".into(),
            path: file.clone(),
            source,
        })?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&file).map_err(|source| KbuildError::Io {
                what: "cannot read untracked link".into(),
                path: file.clone(),
                source,
            })?;
            key.bytes("link", target.as_os_str().as_bytes());
        } else if meta.is_file() {
            key.file("content", &file)?;
        } else {
            // A nested repository git lists as `dir/`: its name is all this tree knows of it.
            key.str("kind", "not a file");
        }
    }
    Ok(Some(format!("git:{head}:{}", key.hex())))
}

/// The pristine tree to copy from: the unpacked Debian tarball (cached; a pinned one fetched
/// first), or the user's tree.
pub fn pristine(
    source: &Source,
    host_612_tarball: &Path,
    repo: &Path,
    identity: &str,
    cache: &Cache,
    events: &Events,
) -> Result<PathBuf, KbuildError> {
    match source {
        Source::Tree(p) => Ok(p.clone()),
        Source::Debian(s) => {
            let tarball = match series::pin(*s, repo)? {
                Some(pin) => series::fetched_tarball(*s, &pin, cache, events)?,
                None => host_612_tarball.to_path_buf(),
            };
            let tarball = tarball.as_path();
            let mut key = CacheKey::new("kernel-src");
            key.str("identity", identity);
            let entry = cache.get_or_build("kernel-src", &key, |dir| {
                events.emit(Event::StepProgress {
                    step: "kernel source".into(),
                    message: format!("unpacking {}", tarball.display()),
                    fraction: None,
                });
                let mut cmd = Command::new("tar");
                cmd.arg("-xJf").arg(tarball).arg("-C").arg(dir);
                Ok::<_, KbuildError>(run_logged(cmd, &dir.join("unpack.log"))?)
            })?;
            Ok(entry.join(s.tarball_dir()))
        }
    }
}

/// The working area for a source: each Debian series has one; a tree gets one per path (not
/// per revision), so a bisect's builds stay incremental.
pub fn work_area(source: &Source, cache: &Cache) -> PathBuf {
    let name = match source {
        Source::Debian(s) => s.source_name(),
        Source::Tree(p) => {
            let canon = p.canonicalize().unwrap_or_else(|_| p.clone());
            let k = CacheKey::new("tree-path")
                .str("path", &canon.to_string_lossy())
                .short();
            format!("tree-{k}")
        }
    };
    cache.root().join("kbuild-work").join(name)
}

/// An exclusive lock on a working area, released on drop.
pub struct AreaLock {
    _file: fs::File,
}

impl AreaLock {
    pub fn acquire(area: &Path, events: &Events, step: &str) -> Result<Self, KbuildError> {
        fs::create_dir_all(area).map_err(|source| KbuildError::Io {
            what: "cannot create build area".into(),
            path: area.to_path_buf(),
            source,
        })?;
        let path = area.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| KbuildError::Io {
                what: "cannot open lock".into(),
                path: path.clone(),
                source,
            })?;
        if file.try_lock().is_err() {
            events.emit(Event::StepProgress {
                step: step.to_string(),
                message: format!("waiting for another kernel build ({})", area.display()),
                fraction: None,
            });
            // Blocks until the other holder closes its descriptor.
            file.lock().map_err(|source| KbuildError::Io {
                what: "cannot lock build area".into(),
                path,
                source,
            })?;
        }
        Ok(AreaLock { _file: file })
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    /// Files the currently applied patches touched (relative to `src/`).
    patched: Vec<String>,
}

/// Brings `<area>/src` to pristine + `patches`, returns its path. Must hold the area's lock.
///
/// rsync copies only what differs from the pristine tree (size/mtime). Files patched by the
/// previous flavor are restored from the pristine tree and then touched, so a build directory
/// that compiled the patched content recompiles them (rsync would give them back the old mtime).
pub fn sync_work_tree(
    area: &Path,
    pristine: &Path,
    patches: &[PathBuf],
    log: &Path,
) -> Result<PathBuf, KbuildError> {
    let src = area.join("src");
    let state_path = area.join("state.json");
    let previous: State = fs::read_to_string(&state_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut rsync = Command::new("rsync");
    rsync
        .args(["-a", "--delete", "--exclude=/.git", "--exclude=/.config"])
        .arg(format!("{}/", pristine.display()))
        .arg(format!("{}/", src.display()));
    run_logged(rsync, log)?;
    let now = filetime_now();
    for rel in &previous.patched {
        let p = src.join(rel);
        if p.exists() {
            touch(&p, now)?;
        }
    }
    // Record "nothing applied" until the patches are in, so an interrupted apply is redone.
    write_state(&state_path, &State::default())?;
    let patched = super::patches::apply(&src, patches, log)?;
    write_state(&state_path, &State { patched })?;
    Ok(src)
}

fn write_state(path: &Path, st: &State) -> Result<(), KbuildError> {
    let text = serde_json::to_string_pretty(st).unwrap_or_default();
    fs::write(path, text).map_err(|source| KbuildError::Io {
        what: "cannot write build state".into(),
        path: path.to_path_buf(),
        source,
    })
}

fn filetime_now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// Sets a file's mtime (make decides on mtimes).
pub fn touch(path: &Path, when: std::time::SystemTime) -> Result<(), KbuildError> {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| KbuildError::Io {
            what: "cannot touch".into(),
            path: path.to_path_buf(),
            source,
        })?;
    f.set_modified(when).map_err(|source| KbuildError::Io {
        what: "cannot touch".into(),
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::kbuild::Series;

    fn tree(dir: &Path) {
        fs::create_dir_all(dir.join("drivers")).unwrap();
        fs::write(dir.join("Makefile"), "all:\n").unwrap();
        fs::write(dir.join("Kconfig"), "").unwrap();
        fs::write(dir.join("drivers/x.c"), "int x;\n").unwrap();
    }

    #[test]
    fn plain_tree_identity_follows_content() {
        let d = tempfile::tempdir().unwrap();
        tree(d.path());
        let p = d.path().to_path_buf();
        let a = tree_identity(&p).unwrap();
        assert!(a.starts_with("tree:"));
        assert_eq!(a, tree_identity(&p).unwrap());
        fs::write(d.path().join("drivers/x.c"), "int y;\n").unwrap();
        assert_ne!(a, tree_identity(&p).unwrap());
    }

    #[test]
    fn git_tree_identity_includes_head_and_dirty_diff() {
        let d = tempfile::tempdir().unwrap();
        tree(d.path());
        let git = |args: &[&str]| {
            let st = Command::new("git")
                .arg("-C")
                .arg(d.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .output()
                .unwrap();
            assert!(st.status.success(), "{args:?}: {st:?}");
            String::from_utf8(st.stdout).unwrap()
        };
        git(&["init", "-q"]);
        git(&["add", "."]);
        git(&["commit", "-qm", "one"]);
        let head = git(&["rev-parse", "HEAD"]).trim().to_string();
        let p = d.path().to_path_buf();
        let clean = tree_identity(&p).unwrap();
        assert!(clean.starts_with(&format!("git:{head}:")), "{clean}");
        fs::write(d.path().join("drivers/x.c"), "int dirty;\n").unwrap();
        let dirty = tree_identity(&p).unwrap();
        assert!(dirty.starts_with(&format!("git:{head}:")));
        assert_ne!(clean, dirty);
    }

    /// A git tree for the identity tests: committed, with `.gitignore` ignoring `*.o`.
    fn git_tree(dir: &Path) {
        tree(dir);
        fs::write(dir.join(".gitignore"), "*.o\n").unwrap();
        for args in [
            &["init", "-q"][..],
            &["add", "."],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "one",
            ],
        ] {
            let st = Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .output()
                .unwrap();
            assert!(st.status.success(), "{args:?}: {st:?}");
        }
    }

    #[test]
    fn an_untracked_source_file_changes_a_git_trees_identity() {
        let d = tempfile::tempdir().unwrap();
        git_tree(d.path());
        let p = d.path().to_path_buf();
        let id = || tree_identity(&p).unwrap();
        let clean = id();
        // An ignored file (a build product) is not part of the source.
        fs::write(d.path().join("drivers/x.o"), "object").unwrap();
        assert_eq!(id(), clean);
        // A new source file the build will compile is.
        fs::write(d.path().join("drivers/new.c"), "int n;\n").unwrap();
        let with_new = id();
        assert_ne!(
            with_new, clean,
            "an untracked source file left the identity alone"
        );
        assert_eq!(id(), with_new);
        // Its content counts, not only its name.
        fs::write(d.path().join("drivers/new.c"), "int m;\n").unwrap();
        assert_ne!(id(), with_new);
        // And so does its name.
        fs::rename(
            d.path().join("drivers/new.c"),
            d.path().join("drivers/old.c"),
        )
        .unwrap();
        let renamed = id();
        fs::write(d.path().join("drivers/old.c"), "int n;\n").unwrap();
        assert_ne!(id(), with_new);
        assert_ne!(renamed, clean);
        // Removing it gives the clean identity back (the format of a clean tree's is unchanged).
        fs::remove_file(d.path().join("drivers/old.c")).unwrap();
        assert_eq!(id(), clean);
        let diff_only = CacheKey::new("diff").bytes("diff", b"").hex();
        assert!(clean.ends_with(&format!(":{diff_only}")), "{clean}");
    }

    #[test]
    fn missing_sources_say_what_to_do() {
        let e = identity(
            &Source::Debian(Series::V6_12),
            Path::new("/nonexistent/linux.tar.xz"),
            &crate::repo_root(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("apt-get install linux-source-6.12"),
            "{e}"
        );
        let d = tempfile::tempdir().unwrap();
        let e = tree_identity(d.path()).unwrap_err();
        assert!(matches!(e, KbuildError::MissingSource { .. }));
    }

    #[test]
    fn work_tree_swaps_patch_sets_and_touches_restored_files() {
        let d = tempfile::tempdir().unwrap();
        let pristine = d.path().join("pristine");
        tree(&pristine);
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        touch(&pristine.join("drivers/x.c"), old).unwrap();
        let patch = d.path().join("0001.patch");
        fs::write(
            &patch,
            "--- a/drivers/x.c\n+++ b/drivers/x.c\n@@ -1 +1 @@\n-int x;\n+int patched;\n",
        )
        .unwrap();
        let area = d.path().join("area");
        fs::create_dir_all(&area).unwrap();
        let log = d.path().join("log");
        let src = sync_work_tree(&area, &pristine, &[patch], &log).unwrap();
        assert_eq!(
            fs::read_to_string(src.join("drivers/x.c")).unwrap(),
            "int patched;\n"
        );
        // Back to no patches: pristine content, but a fresh mtime (not the pristine one).
        let src = sync_work_tree(&area, &pristine, &[], &log).unwrap();
        let x = src.join("drivers/x.c");
        assert_eq!(fs::read_to_string(&x).unwrap(), "int x;\n");
        assert!(fs::metadata(&x).unwrap().modified().unwrap() > old);
        assert_eq!(fs::read_to_string(src.join("Makefile")).unwrap(), "all:\n");
    }
}
