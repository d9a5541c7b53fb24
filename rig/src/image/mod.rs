//! Images: kernels (Debian's prebuilt ones, or rig-built ones via [`crate::kbuild`]), the per-arch
//! rootfs, and the initramfs that packs rootfs + rig's init + the kernel's modules.
//!
//! Everything lands in the content-addressed [`Cache`] and is reused: a second run provisions nothing.

use crate::board::Arch;
use crate::cache::Cache;
use crate::events::Events;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod debian;
pub mod initramfs;
pub mod rootfs;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "unknown kernel `{name}`: known kernels are debian-6.1 and rig-6.12[-FLAVOR] \
         (build one with `rig kernel build`)"
    )]
    UnknownKernel { name: String },
    #[error("kernel `{name}` is not available for {arch}")]
    NoSuchArch { name: String, arch: Arch },
    #[error(transparent)]
    Command(#[from] crate::process::CommandError),
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
    Cache(#[from] crate::cache::CacheError),
    #[error(transparent)]
    Build(#[from] crate::kbuild::KbuildError),
}

/// A kernel ready to boot: image, modules, config, and where it came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Kernel {
    /// The name it was asked for: `debian-6.1`, `rig-6.12`, `rig-6.12-kasan`.
    pub name: String,
    pub arch: Arch,
    /// `uname -r` of the kernel.
    pub release: String,
    /// The bootable image (bzImage / Image / vmlinuz).
    pub image: PathBuf,
    /// A directory holding `lib/modules/<release>/` (modules.dep included).
    pub modules_root: PathBuf,
    /// The kernel's `.config`.
    pub config: PathBuf,
    /// Unstripped vmlinux for symbolization, when rig built it.
    pub vmlinux: Option<PathBuf>,
    /// Provenance for reports: package version and checksum, or source + patches + config hash.
    pub provenance: BTreeMap<String, String>,
}

impl Kernel {
    /// The `.config` as a map of `CONFIG_X` → value (`y`, `m`, `"str"`, number); unset options absent.
    pub fn config_options(&self) -> Result<BTreeMap<String, String>, ImageError> {
        let text = std::fs::read_to_string(&self.config).map_err(|source| ImageError::Io {
            what: "cannot read kernel config".into(),
            path: self.config.clone(),
            source,
        })?;
        Ok(parse_kconfig(&text))
    }
}

/// Parses `.config` text: `CONFIG_X=v` lines; `# CONFIG_X is not set` and comments are skipped.
pub fn parse_kconfig(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Resolves a kernel name for an arch, provisioning (download / build) on first use.
pub fn resolve_kernel(
    name: &str,
    arch: Arch,
    cache: &Cache,
    events: &Events,
) -> Result<Kernel, ImageError> {
    if name == "debian-6.1" {
        return debian::kernel(arch, cache, events);
    }
    if name.starts_with("rig-") {
        return Ok(crate::kbuild::resolve_named(name, arch, cache, events)?);
    }
    Err(ImageError::UnknownKernel { name: name.into() })
}

/// Everything needed to boot: a kernel and the initramfs built for it.
#[derive(Debug, Clone)]
pub struct BootImage {
    pub kernel: Kernel,
    pub initrd: PathBuf,
}

/// Resolves the kernel and builds (or reuses) its initramfs.
pub fn boot_image(
    kernel_name: &str,
    arch: Arch,
    cache: &Cache,
    events: &Events,
) -> Result<BootImage, ImageError> {
    let kernel = resolve_kernel(kernel_name, arch, cache, events)?;
    let initrd = initramfs::for_kernel(&kernel, cache, events)?;
    Ok(BootImage { kernel, initrd })
}

/// Runs a provisioning command with its output appended to `log` ([`crate::process::run_logged`]).
pub fn run_logged(cmd: std::process::Command, log: &Path) -> Result<(), ImageError> {
    crate::process::run_logged(cmd, log).map_err(ImageError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kconfig_parsing() {
        let m = parse_kconfig("# c\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n");
        assert_eq!(m.get("CONFIG_A").map(String::as_str), Some("y"));
        assert!(!m.contains_key("CONFIG_B"));
        assert_eq!(m.get("CONFIG_C").map(String::as_str), Some("\"x y\""));
    }
}
