//! A run record is data from elsewhere (a bundle attached to a bug report, a folder someone
//! copied): [`check`] parses `run.json` strictly and validates it into a [`CheckedRecord`], the
//! only form a replay uses. The bounds:
//!
//! - `record_version` is this rig's [`RECORD_VERSION`]; unknown fields are refused;
//! - `repeat` is 1..=[`MAX_REPEAT`]; `memory_mib` is [`MIN_MEMORY_MIB`]..=[`MAX_MEMORY_MIB`]
//!   (the boards' `maxmem`); `seed` is any `u64`;
//! - the board is one rig knows; the kernel name is one [`KernelSpec::parse`] accepts (a
//!   `tree:` kernel is replayed only from a tree named with `--tree`, see [`super::kernel`]);
//!   the accelerator is `auto`, `kvm` or `tcg`; the command-line additions pass the same check
//!   as `rig run --cmdline` and fit the kernel's command line;
//! - paths are relative and plain: the scenario copy is `scenario/NAME`, each overlay copy is
//!   `scenario/overlays/NAME` (NAME: one plain component); where they lead is checked again
//!   when they are read ([`super::files`]: no symbolic link on the way, inside the folder);
//! - every text is at most [`MAX_TEXT`] bytes without control characters (it is printed on
//!   terminals), the scenario name at most [`MAX_NAME`] characters; at most [`MAX_ITEMS`]
//!   overlays, command-line additions or provenance entries.
//!
//! The kernel's `.config` path in the record is never read from here: only a bundle is made
//! with it, and only from rig's own cache ([`super::bundle`]).

use crate::host::board::Board;
use crate::machine::spec::AccelChoice;
use crate::provision::KernelSpec;
use crate::run::record::{RunRecord, RECORD_VERSION};
use std::path::{Component, Path, PathBuf};

/// Most repetitions a record may ask for (`rig reproduce --repeat N` can ask for more).
pub const MAX_REPEAT: u32 = 1000;
/// Guest memory bounds, MiB: below the minimum no kernel rig boots comes up; the maximum is the
/// boards' `maxmem` (what QEMU is started with).
pub const MIN_MEMORY_MIB: u64 = 64;
pub const MAX_MEMORY_MIB: u64 = crate::host::board::MAX_MEMORY_MIB;
/// The longest text field and the longest scenario name.
pub const MAX_TEXT: usize = 4096;
pub const MAX_NAME: usize = 200;
/// Most overlays, command-line additions and provenance entries.
pub const MAX_ITEMS: usize = 64;

/// A record that passed [`check`]: what a replay may trust. Read it through `Deref`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRecord {
    record: RunRecord,
    /// The scenario copy, relative to the folder (`scenario/NAME`); `None`: the run's scenario
    /// had no file to copy.
    pub copy: Option<PathBuf>,
    /// The recorded kernel name, parsed.
    pub spec: KernelSpec,
    pub accel: AccelChoice,
}

impl std::ops::Deref for CheckedRecord {
    type Target = RunRecord;
    fn deref(&self) -> &RunRecord {
        &self.record
    }
}

/// Parses `run.json`'s text strictly and validates it; the message names the field.
pub fn check(text: &str) -> Result<CheckedRecord, String> {
    let record: RunRecord = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if record.record_version != RECORD_VERSION {
        return Err(format!(
            "record_version is {}, this rig reads version {RECORD_VERSION}",
            record.record_version
        ));
    }
    let r = &record;
    text_field("rig_version", &r.rig_version)?;
    text_field("scenario.name", &r.scenario.name)?;
    if r.scenario.name.trim().is_empty() || r.scenario.name.chars().count() > MAX_NAME {
        return Err(format!(
            "scenario.name must be 1 to {MAX_NAME} characters, not `{}`",
            r.scenario.name
        ));
    }
    text_field("scenario.original", &r.scenario.original)?;
    if let Some(sha) = &r.scenario.sha256 {
        text_field("scenario.sha256", sha)?;
    }
    let copy = match &r.scenario.copy {
        Some(c) => Some(plain_path("scenario.copy", c, "scenario")?),
        None => None,
    };
    count("scenario.overlays", r.scenario.overlays.len())?;
    for (i, o) in r.scenario.overlays.iter().enumerate() {
        plain_path(&format!("scenario.overlays[{i}]"), o, "scenario/overlays")?;
    }
    let spec = KernelSpec::parse(&r.kernel.name)
        .map_err(|e| format!("kernel.name: {e}"))
        .and_then(|k| text_field("kernel.name", &r.kernel.name).map(|()| k))?;
    text_field("kernel.release", &r.kernel.release)?;
    count("kernel.provenance", r.kernel.provenance.len())?;
    for (k, v) in &r.kernel.provenance {
        text_field("kernel.provenance", k)?;
        text_field(&format!("kernel.provenance.{k}"), v)?;
    }
    count("extra_cmdline", r.extra_cmdline.len())?;
    crate::machine::qemu::kernel_cmdline(r.board, &r.extra_cmdline)
        .map_err(|e| format!("extra_cmdline: {e}"))?;
    let accel: AccelChoice = r.accel.parse().map_err(|e| format!("accel: {e}"))?;
    text_field("accel_used", &r.accel_used)?;
    if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&r.memory_mib) {
        return Err(format!(
            "memory_mib is {}: must be {MIN_MEMORY_MIB} to {MAX_MEMORY_MIB} (the boards' maximum)",
            r.memory_mib
        ));
    }
    if !(1..=MAX_REPEAT).contains(&r.repeat) {
        return Err(format!("repeat is {}: must be 1 to {MAX_REPEAT}", r.repeat));
    }
    text_field("qemu_version", &r.qemu_version)?;
    let _: Board = r.board;
    Ok(CheckedRecord {
        copy,
        spec,
        accel,
        record,
    })
}

/// Text that is printed: bounded, no control characters (escape sequences).
fn text_field(field: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_TEXT {
        return Err(format!("{field} is longer than {MAX_TEXT} bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{field} holds control characters: {s:?}"));
    }
    Ok(())
}

fn count(field: &str, n: usize) -> Result<(), String> {
    if n > MAX_ITEMS {
        return Err(format!("{field} has {n} entries: at most {MAX_ITEMS}"));
    }
    Ok(())
}

/// `PARENT/NAME`: relative, plain components only, NAME one component that is a file name
/// (not hidden, printable).
fn plain_path(field: &str, p: &Path, parent: &str) -> Result<PathBuf, String> {
    let refuse = |why: &str| {
        Err(format!(
            "{field} is `{}`: {why}; a record names its copies as `{parent}/NAME` inside its \
             folder",
            p.display()
        ))
    };
    if p.is_absolute() {
        return refuse("an absolute path");
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return refuse("not a plain path (`..`, `.` or a root)");
    }
    let (Some(name), Some(dir)) = (p.file_name(), p.parent()) else {
        return refuse("no file name");
    };
    if dir != Path::new(parent) {
        return refuse("not in its folder");
    }
    let name = name.to_str().unwrap_or("");
    if name.is_empty() || name.starts_with('.') || text_field(field, name).is_err() {
        return refuse("not a plain file name");
    }
    Ok(p.to_path_buf())
}
