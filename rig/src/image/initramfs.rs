//! (in progress)
use super::{ImageError, Kernel};
use crate::{cache::Cache, events::Events};
use std::path::PathBuf;

/// The initramfs for `kernel`: rootfs + rig's init + the kernel's modules, cached.
pub fn for_kernel(kernel: &Kernel, _cache: &Cache, _events: &Events) -> Result<PathBuf, ImageError> {
    Err(ImageError::Invalid(format!("initramfs for {} not implemented yet", kernel.name)))
}
