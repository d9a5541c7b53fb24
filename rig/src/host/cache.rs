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

use sha2::{Digest, Sha256};
use std::fs;
use std::io;
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
        self.get_or_build_with(kind, key, &mut || {}, build)
    }

    /// [`Cache::get_or_build`], calling `on_wait` once if another builder holds the entry's lock.
    fn get_or_build_with<E>(
        &self,
        kind: &str,
        key: &CacheKey,
        on_wait: &mut dyn FnMut(),
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<PathBuf, E>
    where
        E: From<CacheError>,
    {
        let final_dir = self.entry(kind, key);
        if final_dir.is_dir() {
            return Ok(final_dir);
        }
        let parent = final_dir.parent().expect("entry has a parent");
        fs::create_dir_all(parent).map_err(|source| CacheError::Create {
            path: parent.to_path_buf(),
            source,
        })?;
        let _lock = EntryLock::acquire(&parent.join(format!(".lock-{}", key.hex())), on_wait)?;
        // Built by someone else while we waited for the lock.
        if final_dir.is_dir() {
            return Ok(final_dir);
        }
        let prefix = format!(".tmp-{}-", key.hex());
        remove_stale_builds(parent, &prefix);
        // Removed on every way out, the signal path included (host::cleanup).
        let tmp = crate::host::cleanup::TempDir::new(|| {
            tempfile::Builder::new().prefix(&prefix).tempdir_in(parent)
        })
        .map_err(|source| CacheError::Create {
            path: parent.to_path_buf(),
            source,
        })?;
        build(tmp.path())?;
        // On failure the temporary folder is gone too.
        match tmp.rename_to(&final_dir) {
            Ok(()) => Ok(final_dir),
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
        use std::os::fd::AsRawFd;
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
            let flags = if waited {
                libc::LOCK_EX
            } else {
                libc::LOCK_EX | libc::LOCK_NB
            };
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), flags) } == 0 {
                return Ok(EntryLock { _file: file });
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) if !waited => {
                    on_wait();
                    waited = true;
                }
                _ => return Err(err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_labels_and_values() {
        let a = CacheKey::new("k").str("a", "bc").hex();
        let b = CacheKey::new("k").str("ab", "c").hex();
        let c = CacheKey::new("k").str("a", "bc").hex();
        assert_ne!(a, b);
        assert_eq!(a, c);
        assert_ne!(CacheKey::new("x").hex(), CacheKey::new("y").hex());
    }

    #[test]
    fn tree_key_follows_content_not_mtime() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), "one").unwrap();
        let k1 = CacheKey::new("t").tree("t", d.path()).unwrap().hex();
        fs::write(d.path().join("f"), "one").unwrap();
        let k2 = CacheKey::new("t").tree("t", d.path()).unwrap().hex();
        fs::write(d.path().join("f"), "two").unwrap();
        let k3 = CacheKey::new("t").tree("t", d.path()).unwrap().hex();
        assert_eq!(k1, k2);
        assert_ne!(k1, k3);
    }

    #[test]
    fn get_or_build_builds_once_and_cleans_up_failures() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::at(d.path());
        let key = CacheKey::new("x");
        let mut builds = 0;
        for _ in 0..2 {
            let p = cache
                .get_or_build::<CacheError>("thing", &key, |dir| {
                    builds += 1;
                    fs::write(dir.join("out"), "ok").unwrap();
                    Ok(())
                })
                .unwrap();
            assert_eq!(fs::read_to_string(p.join("out")).unwrap(), "ok");
        }
        assert_eq!(builds, 1);

        let bad = CacheKey::new("bad");
        let r = cache.get_or_build::<CacheError>("thing", &bad, |_| {
            Err(CacheError::Hash {
                path: "/nope".into(),
                source: io::Error::other("boom"),
            })
        });
        assert!(r.is_err());
        assert!(!cache.entry("thing", &bad).exists());
        let leftovers: Vec<_> = fs::read_dir(d.path().join("thing"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn concurrent_builders_of_one_entry_build_it_once_and_never_overlap() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::at(d.path());
        let key = CacheKey::new("shared");
        let builds = Arc::new(AtomicUsize::new(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let overlapped = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (cache, key) = (cache.clone(), key.clone());
                let (builds, inside, overlapped) =
                    (builds.clone(), inside.clone(), overlapped.clone());
                std::thread::spawn(move || {
                    // flock is per open file description: threads contend like processes do.
                    cache
                        .get_or_build::<CacheError>("thing", &key, |dir| {
                            if inside.fetch_add(1, Ordering::SeqCst) > 0 {
                                overlapped.fetch_add(1, Ordering::SeqCst);
                            }
                            builds.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(300));
                            fs::write(dir.join("out"), "whole").unwrap();
                            inside.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            let p = t.join().unwrap();
            assert_eq!(fs::read_to_string(p.join("out")).unwrap(), "whole");
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert_eq!(overlapped.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_build_waits_for_another_process_holding_the_entry_lock() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::at(d.path());
        let key = CacheKey::new("other-process");
        let kind_dir = d.path().join("thing");
        fs::create_dir_all(&kind_dir).unwrap();
        let lock = kind_dir.join(format!(".lock-{}", key.hex()));
        // Another process holds the lock for a while, "building" the entry meanwhile.
        let entry = cache.entry("thing", &key);
        let script = format!(
            "sleep 1; mkdir {t}; echo theirs > {t}/out; mv {t} {e}",
            t = kind_dir.join(".tmp-theirs").display(),
            e = entry.display()
        );
        let mut holder = std::process::Command::new("flock")
            .arg(&lock)
            .args(["sh", "-c", &script])
            .spawn()
            .expect("flock(1) from util-linux");
        // Let it take the lock first.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !lock.exists() {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut waited = false;
        let mut built = false;
        let p = cache
            .get_or_build_with::<CacheError>("thing", &key, &mut || waited = true, |_| {
                built = true;
                Ok(())
            })
            .unwrap();
        assert!(holder.wait().unwrap().success());
        assert!(waited, "did not wait for the other process");
        assert!(
            !built,
            "built although the other process published the entry"
        );
        assert_eq!(fs::read_to_string(p.join("out")).unwrap(), "theirs\n");
    }

    #[test]
    fn a_killed_build_leaves_no_entry_and_its_leftovers_are_never_used() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::at(d.path());
        let key = CacheKey::new("killed");
        let kind_dir = d.path().join("thing");
        fs::create_dir_all(&kind_dir).unwrap();
        // What a build SIGKILLed halfway leaves: a temporary directory with a truncated file.
        let stale = kind_dir.join(format!(".tmp-{}-dead01", key.hex()));
        fs::create_dir(&stale).unwrap();
        fs::write(stale.join("out"), "trunc").unwrap();
        assert!(!cache.entry("thing", &key).exists());
        let p = cache
            .get_or_build::<CacheError>("thing", &key, |dir| {
                assert!(
                    !dir.join("out").exists(),
                    "the build started from leftovers"
                );
                fs::write(dir.join("out"), "complete").unwrap();
                Ok(())
            })
            .unwrap();
        assert_eq!(fs::read_to_string(p.join("out")).unwrap(), "complete");
        assert!(
            !stale.exists(),
            "the dead build's leftovers were not removed"
        );
        // A build that panics (unwinds) publishes nothing either.
        let key2 = CacheKey::new("panics");
        let c2 = cache.clone();
        let r = std::panic::catch_unwind(move || {
            let _ = c2.get_or_build::<CacheError>("thing", &key2, |dir| {
                fs::write(dir.join("out"), "half").unwrap();
                panic!("build died");
            });
        });
        assert!(r.is_err());
        assert!(!cache.entry("thing", &CacheKey::new("panics")).exists());
    }
}
