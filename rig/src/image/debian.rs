//! (in progress)
use super::{ImageError, Kernel};
use crate::{board::Arch, cache::Cache, events::Events};

/// Debian bookworm's prebuilt 6.1 kernel for `arch`, fetched and cached.
pub fn kernel(arch: Arch, _cache: &Cache, _events: &Events) -> Result<Kernel, ImageError> {
    Err(ImageError::NoSuchArch { name: "debian-6.1".into(), arch })
}
