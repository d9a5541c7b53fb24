//! Everything a boot needs, built or fetched once and cached by content: kernels (Debian's, or
//! built by rig), the rootfs and the initramfs.
//!
//! [`kernel`] is the leaf both providers share (what a provisioned kernel is); this module is the
//! resolver above them: a kernel name → the provider that makes it → a bootable image.

pub mod image;
pub mod kbuild;
pub mod kernel;
pub mod overlay;

pub use kernel::{parse_kconfig, Kernel};

use crate::host::board::Arch;
use crate::host::cache::Cache;
use crate::host::events::Events;
use image::ImageError;
use kbuild::KbuildError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(
        "unknown kernel `{name}`: known kernels are debian-6.1 and rig-6.12[-FLAVOR] \
         (build one with `rig kernel build`)"
    )]
    UnknownKernel { name: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Build(#[from] KbuildError),
}

impl ProvisionError {
    /// The name or flavor asked for does not exist (bad input, not a provisioning failure).
    pub fn is_unknown_name(&self) -> bool {
        matches!(
            self,
            ProvisionError::UnknownKernel { .. }
                | ProvisionError::Build(
                    KbuildError::UnknownKernel { .. } | KbuildError::UnknownFlavor { .. }
                )
        )
    }
}

/// Checks that `name` names a kernel rig can provide, without provisioning anything: callers ask
/// this first, so a typo is bad input before any host tool is installed or anything is built.
pub fn check_kernel_name(name: &str) -> Result<(), ProvisionError> {
    if name == "debian-6.1" {
        return Ok(());
    }
    if name.starts_with("rig-") {
        kbuild::parse_kernel_name(name)?;
        return Ok(());
    }
    Err(ProvisionError::UnknownKernel { name: name.into() })
}

/// Resolves a kernel name for an arch, provisioning (download / build) on first use.
pub fn resolve_kernel(
    name: &str,
    arch: Arch,
    cache: &Cache,
    events: &Events,
) -> Result<Kernel, ProvisionError> {
    check_kernel_name(name)?;
    if name == "debian-6.1" {
        Ok(image::debian::kernel(arch, cache, events)?)
    } else {
        Ok(kbuild::resolve_named(name, arch, cache, events)?)
    }
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
) -> Result<BootImage, ProvisionError> {
    let kernel = resolve_kernel(kernel_name, arch, cache, events)?;
    let initrd = image::initramfs::for_kernel(&kernel, cache, events)?;
    Ok(BootImage { kernel, initrd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_checked_before_provisioning() {
        for good in ["debian-6.1", "rig-6.12", "rig-6.12-kasan"] {
            check_kernel_name(good).unwrap();
        }
        for bad in ["nope", "debian-6.2", "rig-6.12-nope", "rig-"] {
            let e = check_kernel_name(bad).unwrap_err();
            assert!(e.is_unknown_name(), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
