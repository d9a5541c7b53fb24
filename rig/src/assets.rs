//! rig's own assets, embedded in the binary: the guest init, kernel config fragments, patches,
//! module sources, the rootfs recipe, the Debian pins (`images/`), the built-in overlays
//! (`overlays/`) and scenarios (`scenarios/`). `rig/build.rs` lists them at build time, so an
//! installed rig (`cargo install --path rig`) needs no checkout.
//!
//! Code that reads them by path gets them materialised once into the cache: the entry
//! `<cache>/assets/<key>/` holds the tree as it is in the repository, `key` being a hash of every
//! file's path, executable bit and content. It is built like any cache entry (a temporary folder
//! renamed into place under the entry's lock, with a manifest checked on every hit), so two rigs
//! that start at once unpack it once, and a damaged copy is unpacked again. Since the bytes are
//! the repository's, every cache key computed from them (kernel builds, rootfs, initramfs) is
//! the one a checkout gives.

use crate::host::cache::{Cache, CacheError, CacheKey};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One embedded file.
#[derive(Debug)]
pub(crate) struct Asset {
    /// Relative to the repository root, e.g. `images/init/init`.
    pub(crate) path: &'static str,
    /// Installed 0755 when set, else 0644 (git keeps no other modes).
    pub(crate) executable: bool,
    pub(crate) bytes: &'static [u8],
}

mod embedded {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// The cache kind of the materialised assets.
pub const CACHE_KIND: &str = "assets";
/// Bumped when the way the tree is written changes in a way the files do not show.
const LAYOUT_VERSION: &str = "assets-1";

#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error("cannot unpack rig's built-in assets")]
    Cache(#[from] CacheError),
    #[error("cannot write rig's built-in asset {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Every embedded file, sorted by path.
pub(crate) fn files() -> &'static [Asset] {
    embedded::FILES
}

/// The embedded file at `path` (relative to the repository root), if there is one.
pub fn get(path: &str) -> Option<&'static [u8]> {
    files().iter().find(|a| a.path == path).map(|a| a.bytes)
}

/// The key of the materialised tree: every file's path, executable bit and content.
pub fn key() -> CacheKey {
    let mut k = CacheKey::new(CACHE_KIND);
    k.str("layout", LAYOUT_VERSION);
    for a in files() {
        k.str("path", a.path)
            .str("mode", if a.executable { "755" } else { "644" })
            .bytes("content", a.bytes);
    }
    k
}

/// The embedded tree in `cache` (unpacked on first use): a folder holding `images/`,
/// `overlays/` and `scenarios/` as the repository has them.
pub fn materialise(cache: &Cache) -> Result<PathBuf, AssetsError> {
    cache.get_or_build(CACHE_KIND, &key(), write_tree)
}

/// Writes every embedded file below `dir` (folders 0755, files 0644 or 0755).
fn write_tree(dir: &Path) -> Result<(), AssetsError> {
    for a in files() {
        let path = dir.join(a.path);
        let err = |source| AssetsError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(err)?;
        }
        fs::write(&path, a.bytes).map_err(err)?;
        let mode = if a.executable { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(err)?;
    }
    set_dir_modes(dir).map_err(|source| AssetsError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Folders 0755 whatever the umask (the initramfs packs their modes).
fn set_dir_modes(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755))?;
            set_dir_modes(&e.path())?;
        }
    }
    Ok(())
}

static CACHE: OnceLock<Cache> = OnceLock::new();

/// The cache [`root`] unpacks into (the CLI's `--cache-dir`); to take effect, call it before
/// anything asks for the assets. Without it: `RIG_CACHE_DIR`, else the user's cache folder.
pub fn use_cache(cache: &Cache) {
    let _ = CACHE.set(cache.clone());
}

/// The cache [`use_cache`] named, else `RIG_CACHE_DIR`'s, else the user's.
fn chosen_cache() -> Cache {
    CACHE.get().cloned().unwrap_or_else(Cache::from_env)
}

/// Where the tree is in the chosen cache, unpacked or not (what an error names).
pub fn entry_path() -> PathBuf {
    chosen_cache().entry(CACHE_KIND, &key())
}

/// The materialised tree in rig's cache (the one [`use_cache`] named, else `RIG_CACHE_DIR`,
/// else the user's cache folder), else, when that cannot be written, in rig's private runtime
/// folder; once per process.
pub fn root() -> Result<PathBuf, AssetsError> {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    if let Some(p) = ROOT.get() {
        return Ok(p.clone());
    }
    let dir = match materialise(&chosen_cache()) {
        Ok(d) => d,
        Err(first) => match crate::host::userdir::private_subdir("assets") {
            Ok(private) => materialise(&Cache::at(private)).map_err(|_| first)?,
            Err(_) => return Err(first),
        },
    };
    Ok(ROOT.get_or_init(|| dir).clone())
}

#[cfg(test)]
#[path = "assets_tests.rs"]
mod tests;
