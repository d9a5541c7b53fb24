//! Content-addressed cache for everything rig provisions: kernels, rootfs trees, initramfs images,
//! built kernels, the acceleration verdict.
//!
//! Layout: `<root>/<kind>/<key>/` where `key` is a hex SHA-256 over everything that determines the
//! content ([`CacheKey`]). An entry is built in a temporary sibling directory and renamed into place
//! only when complete ([`Cache::get_or_build`]), so an interrupted build never leaves a half entry.

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
    // Best effort: a memo that cannot be written only costs time.
    if let Some(dir) = memo.parent() {
        if fs::create_dir_all(dir).is_ok() {
            let tmp = memo.with_extension("tmp");
            if fs::write(&tmp, &digest).is_ok() {
                let _ = fs::rename(&tmp, &memo);
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
    /// `cached` when nothing had to be built.
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
        let entry = self.get_or_build(kind, key, |dir| {
            built = true;
            if let Some(detail) = detail() {
                events.emit(Event::StepStarted {
                    step: step.to_string(),
                    detail,
                });
            }
            build(dir)
        })?;
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
    pub fn get_or_build<E>(
        &self,
        kind: &str,
        key: &CacheKey,
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
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".tmp-{}-", key.short()))
            .tempdir_in(parent)
            .map_err(|source| CacheError::Create {
                path: parent.to_path_buf(),
                source,
            })?;
        build(tmp.path())?;
        let tmp_path = tmp.keep();
        match fs::rename(&tmp_path, &final_dir) {
            Ok(()) => Ok(final_dir),
            // Someone else published the same key meanwhile: theirs is as good as ours.
            Err(_) if final_dir.is_dir() => {
                let _ = fs::remove_dir_all(&tmp_path);
                Ok(final_dir)
            }
            Err(source) => {
                let _ = fs::remove_dir_all(&tmp_path);
                Err(CacheError::Publish {
                    path: final_dir,
                    source,
                }
                .into())
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
}
