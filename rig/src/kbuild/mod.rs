//! Kernel builds (in progress).
use crate::{board::Arch, cache::Cache, events::Events, image::Kernel};

#[derive(Debug, thiserror::Error)]
pub enum KbuildError {
    #[error("unknown kernel `{0}`")]
    Unknown(String),
}

/// Resolves `rig-6.12[-FLAVOR]` for `arch`, building it on first use.
pub fn resolve_named(name: &str, _arch: Arch, _cache: &Cache, _events: &Events) -> Result<Kernel, KbuildError> {
    Err(KbuildError::Unknown(name.into()))
}
