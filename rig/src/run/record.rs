//! What a run was, kept in its folder so it can be re-run exactly (`rig reproduce DIR`):
//! `run.json` ([`RunRecord`]) with the board, the kernel's name and identity, the command-line
//! additions, the accelerator, QEMU's version and the seed, next to a copy of the scenario file
//! (`scenario/`) and of every overlay it loads (`scenario/overlays/`). QEMU's argv is each
//! repetition's `qemu.argv`.
//!
//! Writing the record never fails a run: a folder that cannot take it is reported by
//! `rig reproduce`, which needs it. It is written atomically (temp file, fsync, rename). The
//! record is read back as untrusted data: `crate::reproduce` parses it strictly
//! (`deny_unknown_fields`) and validates it before anything of it is used.

use super::RunOptions;
use crate::host::artifacts::RunDir;
use crate::host::board::Board;
use crate::provision::Kernel;
use crate::scenario::{Scenario, StepKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::host::artifacts::RECORD_FILE;
/// Bumped when a field of [`RunRecord`] changes meaning.
pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    pub record_version: u32,
    /// `rig --version` of the rig that ran it.
    pub rig_version: String,
    pub scenario: ScenarioCopy,
    pub board: Board,
    pub kernel: KernelIdentity,
    /// Kernel command-line parameters added to the scenario's own (`rig run --cmdline`).
    pub extra_cmdline: Vec<String>,
    /// The accelerator asked for (`auto`, `kvm`, `tcg`) and the one used.
    pub accel: String,
    pub accel_used: String,
    pub memory_mib: u64,
    pub repeat: u32,
    pub seed: u64,
    /// `qemu-system-* --version`, first line.
    pub qemu_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioCopy {
    pub name: String,
    /// The file as it was named to the run.
    pub original: String,
    /// The copy, relative to the run folder (`None`: the scenario had no file to copy).
    pub copy: Option<PathBuf>,
    pub sha256: Option<String>,
    /// Copies of the overlays it loads, relative to the run folder.
    pub overlays: Vec<PathBuf>,
}

/// Which kernel, exactly: its name and what rig recorded of where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelIdentity {
    /// The name it was asked for (`debian-6.1`, `rig-6.12-kasan`, `tree:PATH`).
    pub name: String,
    pub release: String,
    /// Debian package and version, or source identity, flavor, fragments, patches, config hash.
    pub provenance: BTreeMap<String, String>,
    /// The kernel's `.config` in rig's cache when it ran (bundles copy it).
    pub config: PathBuf,
}

pub(super) struct Inputs<'a> {
    pub scenario: &'a Scenario,
    pub opts: &'a RunOptions,
    pub seed: u64,
    pub kernel: &'a Kernel,
    pub accel_used: &'a str,
}

/// The `--accel` word for a choice (parses back with `AccelChoice::from_str`).
pub fn accel_name(a: crate::machine::spec::AccelChoice) -> &'static str {
    use crate::machine::spec::AccelChoice;
    match a {
        AccelChoice::Auto => "auto",
        AccelChoice::Kvm => "kvm",
        AccelChoice::Tcg => "tcg",
    }
}

/// The overlay files a scenario loads, each once, in order.
pub fn overlay_files(scenario: &Scenario) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for s in scenario.all_steps() {
        if let StepKind::OverlayLoad(o) = &s.kind {
            if !out.contains(&o.file) {
                out.push(o.file.clone());
            }
        }
    }
    out
}

/// Copies the scenario and its overlays into the run folder and writes `run.json`.
pub(super) fn write(dir: &RunDir, i: &Inputs<'_>) {
    let copy_into = |src: &Path, rel: PathBuf| -> Option<PathBuf> {
        let dst = dir.path().join(&rel);
        std::fs::create_dir_all(dst.parent()?).ok()?;
        std::fs::copy(src, &dst).ok()?;
        Some(rel)
    };
    let original = Path::new(&i.scenario.file);
    // `rig reproduce` reads back only plain, visible, printable names (`scenario/NAME`).
    let file_name = original
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.starts_with('.') && !n.chars().any(char::is_control))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("scenario.yaml"));
    let copy = copy_into(original, Path::new("scenario").join(file_name));
    let sha256 = copy
        .as_ref()
        .and_then(|c| crate::host::cache::sha256_file(&dir.path().join(c)).ok());
    let overlays = overlay_files(i.scenario)
        .iter()
        .filter_map(|o| copy_into(o, Path::new("scenario/overlays").join(o.file_name()?)))
        .collect();
    let record = RunRecord {
        record_version: RECORD_VERSION,
        rig_version: env!("CARGO_PKG_VERSION").into(),
        scenario: ScenarioCopy {
            name: i.scenario.name.clone(),
            original: i.scenario.file.clone(),
            copy,
            sha256,
            overlays,
        },
        board: i.opts.machine.board,
        kernel: KernelIdentity {
            name: i.opts.machine.kernel.clone(),
            release: i.kernel.release.clone(),
            provenance: i.kernel.provenance.clone(),
            config: i.kernel.config.clone(),
        },
        extra_cmdline: i.opts.machine.cmdline.clone(),
        accel: accel_name(i.opts.machine.accel).into(),
        accel_used: i.accel_used.into(),
        memory_mib: i.opts.machine.memory_mib,
        repeat: i.opts.repeat,
        seed: i.seed,
        qemu_version: crate::host::doctor::tool_version(i.opts.machine.board.qemu_binary())
            .unwrap_or_default(),
    };
    if let Ok(s) = serde_json::to_string_pretty(&record) {
        let _ = crate::host::artifacts::write_atomic(&dir.file(RECORD_FILE), (s + "\n").as_bytes());
    }
}
