//! Content-addressed cache for everything rig provisions: kernels, rootfs trees, initramfs images,
//! built kernels, the acceleration verdict.
//!
//! Layout: `<root>/<kind>/<key>/` where `key` is a hex SHA-256 over everything that determines the
//! content ([`CacheKey`]). An entry is built in a temporary sibling directory
//! (`.tmp-<key>-XXXXXX`) and renamed into place only when complete ([`Cache::get_or_build`]), so
//! a build that is interrupted — even by SIGKILL — never leaves a half entry under the entry's
//! name: a directory at `<kind>/<key>` is complete by construction.
//!
//! Builds of one entry are serialized across processes by `flock` on `<kind>/.lock-<key>`: two
//! rigs that need the same missing entry at once build it once (the second waits, then finds
//! it). The lock holder also removes temporary directories that earlier, killed builds of the
//! same key left behind (nobody else can be building that key while it holds the lock).
//!
//! A finished build is given a manifest and made durable (`syncfs`) before it is renamed into
//! place, and the rename is fsynced; every hit is checked against the manifest ([`manifest`]):
//! after a power loss or any other damage the entry is discarded and built again, with a
//! message, and never used.

#[path = "cache_manifest.rs"]
pub mod manifest;

use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot create cache directory {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot publish cache entry {path}")]
    Publish {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot make cache entry {path} durable")]
    Seal {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot discard the damaged cache entry {path}")]
    Discard {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot hash {path}")]
    Hash {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Builds a cache key from labelled parts. Labels keep keys from colliding when two parts
/// happen to concatenate to the same bytes.
#[derive(Clone, Default)]
pub struct CacheKey {
    hasher: Sha256,
}

impl CacheKey {
    pub fn new(kind: &str) -> Self {
        let mut k = CacheKey::default();
        k.str("kind", kind);
        k
    }

    pub fn str(&mut self, label: &str, value: &str) -> &mut Self {
        self.bytes(label, value.as_bytes())
    }

    pub fn bytes(&mut self, label: &str, value: &[u8]) -> &mut Self {
        self.hasher.update((label.len() as u64).to_le_bytes());
        self.hasher.update(label.as_bytes());
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value);
        self
    }

    /// Adds a file's content (not its path or mtime).
    pub fn file(&mut self, label: &str, path: &Path) -> Result<&mut Self, CacheError> {
        let data = fs::read(path).map_err(|source| CacheError::Hash {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(self.bytes(label, &data))
    }

    /// Adds every regular file below `dir`, in sorted order, by relative path and content.
    pub fn tree(&mut self, label: &str, dir: &Path) -> Result<&mut Self, CacheError> {
        let mut files = Vec::new();
        collect_files(dir, dir, &mut files).map_err(|source| CacheError::Hash {
            path: dir.to_path_buf(),
            source,
        })?;
        files.sort();
        for rel in files {
            let tag = format!("{label}/{}", rel.display());
            self.file(&tag, &dir.join(&rel))?;
        }
        Ok(self)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// A short form for directory names and log lines (16 hex digits).
    pub fn short(&self) -> String {
        self.hex()[..16].to_string()
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            collect_files(root, &path, out)?;
        } else if ft.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, CacheError> {
    let wrap = |source| CacheError::Hash {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::File::open(path).map_err(wrap)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h).map_err(wrap)?;
    Ok(hex::encode(h.finalize()))
}

/// [`sha256_file`] for big files that rarely change (the kernel source tarball): the digest is
/// remembered under the default cache's `digests/`, keyed by path, size, mtime and inode, so it is
/// computed once per file version rather than on every kernel lookup.
pub fn sha256_file_memo(path: &Path) -> Result<String, CacheError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(|source| CacheError::Hash {
        path: path.to_path_buf(),
        source,
    })?;
    let mut key = CacheKey::new("digest-memo");
    key.str("path", &path.display().to_string())
        .str("len", &meta.len().to_string())
        .str("mtime", &format!("{}.{}", meta.mtime(), meta.mtime_nsec()))
        .str("ino", &meta.ino().to_string());
    let memo = Cache::from_env().root().join("digests").join(key.hex());
    if let Ok(d) = fs::read_to_string(&memo) {
        if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(d);
        }
    }
    let digest = sha256_file(path)?;
    // Best effort: a memo that cannot be written only costs time. A uniquely named temporary
    // file renamed into place: concurrent rigs never write into each other's file.
    if let Some(dir) = memo.parent() {
        if fs::create_dir_all(dir).is_ok() {
            if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
                use std::io::Write;
                if tmp.write_all(digest.as_bytes()).is_ok() {
                    let _ = tmp.persist(&memo);
                }
            }
        }
    }
    Ok(digest)
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// `RIG_CACHE_DIR`, else `$XDG_CACHE_HOME/rig`, else `~/.cache/rig`.
    pub fn from_env() -> Self {
        let root = std::env::var_os("RIG_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("rig")))
            .unwrap_or_else(|| PathBuf::from(".rig-cache"));
        Cache { root }
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the entry for `kind`/`key` lives (it may not exist yet).
    pub fn entry(&self, kind: &str, key: &CacheKey) -> PathBuf {
        self.root.join(kind).join(key.hex())
    }

    /// [`Cache::get_or_build`] as a provisioning step: on a miss it emits `StepStarted` with
    /// `detail()` (when that gives one) and builds; either way it ends with `StepFinished`, marked
    /// `cached` when nothing had to be built. Waiting for another rig's build of the same entry is
    /// a `StepProgress`.
    pub fn provision<E>(
        &self,
        kind: &str,
        key: &CacheKey,
        events: &crate::host::events::Events,
        step: &str,
        detail: impl FnOnce() -> Option<String>,
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<PathBuf, E>
    where
        E: From<CacheError>,
    {
        use crate::host::events::Event;
        let started = std::time::Instant::now();
        let mut built = false;
        let entry = self.get_or_build_with(
            kind,
            key,
            &mut || {
                events.emit(Event::StepProgress {
                    step: step.to_string(),
                    message: "waiting for another rig building the same entry".into(),
                    fraction: None,
                })
            },
            &mut |entry: &Path, why: &str| {
                events.emit(Event::Warning {
                    message: damaged_message(step, entry, why),
                })
            },
            |dir| {
                built = true;
                if let Some(detail) = detail() {
                    events.emit(Event::StepStarted {
                        step: step.to_string(),
                        detail,
                    });
                }
                build(dir)
            },
        )?;
        events.emit(Event::StepFinished {
            step: step.to_string(),
            elapsed: started.elapsed(),
            cached: !built,
        });
        Ok(entry)
    }

    /// Returns the entry's directory, running `build` into a fresh temporary directory first
    /// when the entry does not exist. `build` gets the directory to fill; on success it is renamed
    /// into place atomically; on failure the temporary directory is removed and the error returned.
    /// Concurrent calls for the same entry, in this process or others, build it once.
    pub fn get_or_build<E>(
        &self,
        kind: &str,
        key: &CacheKey,
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<PathBuf, E>
    where
        E: From<CacheError>,
    {
        let mut warn = |entry: &Path, why: &str| {
            let _ = writeln!(
                io::stderr(),
                "rig: warning: {}",
                damaged_message(kind, entry, why)
            );
        };
        self.get_or_build_with(kind, key, &mut || {}, &mut warn, build)
    }

    /// Checks the entry for `kind`/`key` against its manifest ([`manifest::check`]): `Ok(None)`
    /// when there is no such entry, `Ok(Some(Err(why)))` when it is damaged.
    pub fn verify(
        &self,
        kind: &str,
        key: &CacheKey,
        depth: manifest::Depth,
    ) -> Option<Result<(), String>> {
        let dir = self.entry(kind, key);
        dir.is_dir().then(|| manifest::check(&dir, depth))
    }

    /// [`Cache::get_or_build`], calling `on_wait` once if another builder holds the entry's lock
    /// and `on_damaged` when an entry fails its check (it is then discarded and rebuilt).
    fn get_or_build_with<E>(
        &self,
        kind: &str,
        key: &CacheKey,
        on_wait: &mut dyn FnMut(),
        on_damaged: &mut dyn FnMut(&Path, &str),
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<PathBuf, E>
    where
        E: From<CacheError>,
    {
        use manifest::Depth;
        let final_dir = self.entry(kind, key);
        if final_dir.is_dir() && manifest::check(&final_dir, Depth::Hit).is_ok() {
            return Ok(final_dir);
        }
        let parent = final_dir.parent().expect("entry has a parent");
        fs::create_dir_all(parent).map_err(|source| CacheError::Create {
            path: parent.to_path_buf(),
            source,
        })?;
        let _lock = EntryLock::acquire(&parent.join(format!(".lock-{}", key.hex())), on_wait)?;
        // Built (or rebuilt) by someone else while we waited for the lock.
        if final_dir.is_dir() {
            match manifest::check(&final_dir, Depth::Hit) {
                Ok(()) => return Ok(final_dir),
                Err(why) => {
                    on_damaged(&final_dir, &why);
                    discard(parent, key, &final_dir)?;
                }
            }
        }
        let prefix = format!(".tmp-{}-", key.hex());
        remove_stale_builds(parent, &prefix);
        remove_stale_builds(parent, &format!(".damaged-{}-", key.hex()));
        // Removed on every way out, the signal path included (host::cleanup).
        let tmp = crate::host::cleanup::TempDir::new(|| {
            tempfile::Builder::new().prefix(&prefix).tempdir_in(parent)
        })
        .map_err(|source| CacheError::Create {
            path: parent.to_path_buf(),
            source,
        })?;
        build(tmp.path())?;
        // On disk, with its manifest, before it has its name.
        manifest::seal(tmp.path()).map_err(|source| CacheError::Seal {
            path: final_dir.clone(),
            source,
        })?;
        // On failure the temporary folder is gone too.
        match tmp.rename_to(&final_dir) {
            Ok(()) => {
                // The rename itself on disk (and the kind's folder, when it is new).
                crate::host::artifacts::fsync_dir(parent)
                    .and_then(|_| crate::host::artifacts::fsync_dir(&self.root))
                    .map_err(|source| CacheError::Seal {
                        path: final_dir.clone(),
                        source,
                    })?;
                Ok(final_dir)
            }
            // A rig that does not take the lock (an older version) published it meanwhile.
            Err(_) if final_dir.is_dir() => Ok(final_dir),
            Err(source) => Err(CacheError::Publish {
                path: final_dir,
                source,
            }
            .into()),
        }
    }
}

/// The message for a damaged entry that is discarded and rebuilt.
fn damaged_message(what: &str, entry: &Path, why: &str) -> String {
    format!(
        "{what}: the cache entry {} is damaged ({why}); discarding it and building it again",
        entry.display()
    )
}

/// Moves a damaged entry out of its name (atomically: no rig can find it half removed), then
/// removes it. Called with the entry's lock held.
fn discard(parent: &Path, key: &CacheKey, entry: &Path) -> Result<(), CacheError> {
    let err = |source| CacheError::Discard {
        path: entry.to_path_buf(),
        source,
    };
    let aside = tempfile::Builder::new()
        .prefix(&format!(".damaged-{}-", key.hex()))
        .tempdir_in(parent)
        .map_err(err)?
        .keep();
    // A folder renamed over an empty folder replaces it.
    fs::rename(entry, &aside).map_err(err)?;
    crate::host::artifacts::fsync_dir(parent).map_err(err)?;
    let _ = fs::remove_dir_all(&aside);
    Ok(())
}

/// Temporary directories of earlier builds of this key that were killed before they could
/// clean up. Only called with the key's lock held, so none of them is being written.
fn remove_stale_builds(parent: &Path, prefix: &str) {
    let Ok(rd) = fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// An exclusive `flock` on one entry's lock file, released when dropped (or when the process
/// dies, however it dies). The lock file itself stays: removing it would let two builders lock
/// two different files of the same name.
struct EntryLock {
    _file: fs::File,
}

impl EntryLock {
    fn acquire(path: &Path, on_wait: &mut dyn FnMut()) -> Result<EntryLock, CacheError> {
        use rustix::fs::{flock, FlockOperation};
        use rustix::io::Errno;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |source| CacheError::Lock {
            path: path.to_path_buf(),
            source,
        };
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(err)?;
        let mut waited = false;
        loop {
            let op = if waited {
                FlockOperation::LockExclusive
            } else {
                FlockOperation::NonBlockingLockExclusive
            };
            match flock(&file, op) {
                Ok(()) => return Ok(EntryLock { _file: file }),
                Err(Errno::INTR) => continue,
                Err(Errno::WOULDBLOCK) if !waited => {
                    on_wait();
                    waited = true;
                }
                Err(e) => return Err(err(e.into())),
            }
        }
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
