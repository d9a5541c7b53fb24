//! Small filesystems to fill: a tmpfs mounted for a run, and filling one up.

use super::SoakError;
use std::path::{Path, PathBuf};

/// A tiny tmpfs, mounted for the run and unmounted (lazily) when dropped.
pub(super) struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    pub(super) fn mount(path: &Path, bytes: u64) -> Result<Tmpfs, SoakError> {
        use rustix::mount::{mount, MountFlags};
        std::fs::create_dir_all(path).map_err(|source| SoakError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let opts = std::ffi::CString::new(format!("size={bytes},mode=0755")).expect("no NUL");
        let flags = MountFlags::NOSUID | MountFlags::NODEV;
        mount("tmpfs", path, "tmpfs", flags, opts.as_c_str()).map_err(|e| SoakError::Mount {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // MNT_DETACH never blocks.
        let _ = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Fills the filesystem at `dir` up, then frees `kib` KiB again.
pub(super) fn fill(dir: &Path, kib: u64) -> Result<(), SoakError> {
    use std::io::Write;
    let path = dir.join(".filler");
    let io = |source| SoakError::Io {
        path: path.clone(),
        source,
    };
    let mut f = std::fs::File::create(&path).map_err(io)?;
    let block = vec![0x55u8; 4096];
    let mut written = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => return Err(io(e)),
        }
    }
    f.set_len(written.saturating_sub(kib * 1024)).map_err(io)?;
    Ok(())
}

/// Copies what rig wrote on a filled tmpfs to `keep` (outside it, for the record); the copy is
/// best effort: a soak run's verdict never depends on it.
pub(super) fn keep_copy(folder: &Path, keep: PathBuf) -> PathBuf {
    let _ = std::process::Command::new("cp")
        .arg("-a")
        .arg(folder)
        .arg(&keep)
        .status();
    keep
}
