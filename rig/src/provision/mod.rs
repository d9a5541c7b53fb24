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

/// Resolves a kernel name for an arch, provisioning (download / build) on first use.
pub fn resolve_kernel(
    name: &str,
    arch: Arch,
    cache: &Cache,
    events: &Events,
) -> Result<Kernel, ProvisionError> {
    if name == "debian-6.1" {
        return Ok(image::debian::kernel(arch, cache, events)?);
    }
    if name.starts_with("rig-") {
        return Ok(kbuild::resolve_named(name, arch, cache, events)?);
    }
    Err(ProvisionError::UnknownKernel { name: name.into() })
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
