//! rig: boots Linux kernels on QEMU boards and drives device-model teardown paths until they break.
//!
//! The library is the engine; `src/bin/rig/` is a thin CLI over it. The folders are the pipeline,
//! and data flows one way through them (a lower module never imports a higher one):
//!
//! ```text
//!   provision ──► machine ──► guest ──► run (drive) ──► dmesg (detect)
//!   (kernels,     (spec,      (console   (repetitions,    (reports,
//!    rootfs,       QEMU argv,  protocol,  boots,           titles)
//!    initramfs)    VM, QMP,    ssh,       verdicts)
//!                  accel)      transport)    ▲
//!                                 ▲          │
//!                   steps (each kind: raw form, validation, where and how it runs)
//!                                 ▲
//!                    scenario (format: parse, validate)
//!   before a boot:  prepare (host tools, provision, accelerator: a prepared machine spec)
//!   workflows on top:  matrix · reproduce · bisect · soak   (each uses run + report)
//!   under everything:  host (process ownership, cache, artifacts, events, board names)
//! ```

// `unsafe` only where nothing safe exists (three sites, each `#[allow]`ed and saying why).
#![deny(unsafe_code)]

pub mod assets;
pub mod bench;
pub mod bisect;
pub mod dmesg;
mod exit_classes;
pub mod guest;
pub mod host;
pub mod machine;
pub mod matrix;
pub mod prepare;
pub mod project;
pub mod provision;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod scenario;
pub mod soak;
pub mod steps;

/// A folder holding rig's own `images/`, `overlays/` and `scenarios/`.
///
/// `RIG_REPO` names one (a checkout whose assets are being edited, or an older one to compare
/// against); otherwise it is the copy embedded in this binary, unpacked once into rig's cache
/// ([`assets`]), so an installed rig needs no checkout and reads none. Should that copy not be
/// writable anywhere, rig says so once on stderr and the path names where it would be: reading
/// from it then fails with that path.
pub fn repo_root() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("RIG_REPO") {
        return p.into();
    }
    assets::root().unwrap_or_else(|e| {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            eprintln!("rig: warning: {}", host::text::error_chain(&e));
        });
        assets::entry_path()
    })
}
