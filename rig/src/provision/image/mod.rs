//! Images: Debian's prebuilt kernels, the per-arch rootfs, and the initramfs that packs rootfs +
//! rig's init + a kernel's modules (whoever built the kernel).
//!
//! Everything lands in the content-addressed [`Cache`] and is reused: a second run provisions nothing.

use crate::host::board::Arch;
use std::path::PathBuf;

pub mod cpio;
pub mod debian;
pub mod initramfs;
pub mod prune;
pub mod rootfs;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("kernel `{name}` is not available for {arch}")]
    NoSuchArch { name: String, arch: Arch },
    #[error(transparent)]
    Command(#[from] crate::host::process::CommandError),
    #[error("{what}: {path}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Cache(#[from] crate::host::cache::CacheError),
}
