//! rig: boots Linux kernels on QEMU boards and drives device-model teardown paths until they break.
//!
//! The library is the engine; `src/bin/rig/` is a thin CLI over it. The folders are the pipeline,
//! and data flows one way through them (a lower module never imports a higher one):
//!
//! ```text
//!   provision ──► machine ──► guest ──► run (drive) ──► dmesg (detect)
//!   (kernels,     (board,     (console   (steps,          (reports,
//!    rootfs,       QEMU argv,  protocol,  parallel,        titles)
//!    initramfs)    VM, QMP,    ssh,       repeat,
//!                  accel)      transport) verdicts)
//!                                 ▲
//!                    scenario (format: parse, validate)
//!   workflows on top:  matrix · reproduce · bisect · soak   (each uses run + report)
//!   under everything:  host (process ownership, cache, artifacts, events, board names)
//! ```

// `unsafe` only where nothing safe exists (three sites, each `#[allow]`ed and saying why).
#![deny(unsafe_code)]

pub mod bench;
pub mod bisect;
pub mod dmesg;
mod exit_classes;
pub mod guest;
pub mod host;
pub mod machine;
pub mod matrix;
pub mod provision;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod scenario;
pub mod soak;

/// The repository root holding `images/`, `overlays/`, `scenarios/`.
///
/// `RIG_REPO` overrides; otherwise the directory two levels above this crate's manifest
/// (set at build time), which is right for `cargo run` and the test suite.
pub fn repo_root() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("RIG_REPO") {
        return p.into();
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| ".".into())
}
