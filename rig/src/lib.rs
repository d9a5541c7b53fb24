//! rig: boots Linux kernels on QEMU boards and drives device-model teardown paths until they break.
//!
//! The library is the engine; `src/main.rs` is a thin CLI over it. One module per concern.

pub mod accel;
pub mod artifacts;
pub mod bench;
pub mod board;
pub mod cache;
pub mod console;
pub mod dmesg;
pub mod doctor;
pub mod events;
pub mod exit;
pub mod guest;
pub mod image;
pub mod kbuild;
pub mod process;
pub mod qemu;
pub mod qmp;
pub mod run;
pub mod scenario;
pub mod ssh;
pub mod transport;
pub mod vm;

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
