//! What a run keeps of a raw core: `vmcore.gz`, `vmcore.gdb` beside it, and the command that
//! opens them. On x86_64 QEMU wrote the core with the guest's virtual addresses (it walked the
//! page tables); QEMU 7.2 cannot on arm64, so [`super::arm64`] adds the views gdb needs.

use super::elf::write_gz;
use crate::host::board::Board;
use crate::provision::Kernel;
use std::path::{Path, PathBuf};
use std::time::Instant;
/// The core as the run keeps it.
#[derive(Debug, Clone)]
pub struct Kept {
    pub path: PathBuf,
    /// The shell command that opens it.
    pub command: String,
    pub bytes: u64,
    /// Writing it (mapping and compressing), seconds.
    pub seconds: f64,
    /// What the core lacks for gdb, if anything (no vmlinux, no arm64 mapping).
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The kept core's name in the run folder.
pub const KEPT_NAME: &str = "vmcore.gz";
/// rig's gdb commands for it (`rig-interrupted`), beside it.
pub const SCRIPT_NAME: &str = "vmcore.gdb";

/// The board's gdb commands: `rig-interrupted` shows what an exception interrupted, below the
/// exception entry where gdb's own backtrace stops.
pub fn gdb_script(board: Board) -> &'static str {
    match board {
        Board::X86_64Q35 => include_str!("x86_64.gdb"),
        Board::Arm64Virt => include_str!("arm64.gdb"),
    }
}

/// Turns `raw` into `vmcore.gz` in the same folder (arm64: with the kernel's virtual addresses
/// added when rig can find them) and removes `raw`.
pub fn keep(raw: &Path, kernel: &Kernel, board: Board) -> Result<Kept, KeepError> {
    let start = Instant::now();
    let dir = raw.parent().unwrap_or(Path::new("."));
    let out = dir.join(KEPT_NAME);
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeepError::Io { path, source }
    };
    let mut note = None;
    let extra = match board {
        Board::X86_64Q35 => Vec::new(),
        Board::Arm64Virt => match super::arm64::arm64_views(raw, kernel) {
            Ok(v) => v,
            Err(why) => {
                note = Some(format!(
                    "physical addresses only (gdb cannot read it): {why}"
                ));
                Vec::new()
            }
        },
    };
    if kernel.vmlinux.is_none() {
        note = Some(format!(
            "{} keeps no vmlinux; Debian's is in its `linux-image-{}-dbg` package",
            kernel.name, kernel.release
        ));
    }
    let script = dir.join(SCRIPT_NAME);
    std::fs::write(&script, gdb_script(board)).map_err(io_err(&script))?;
    let tmp = out.with_extension("gz.tmp");
    write_gz(raw, &extra, &tmp).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &out).map_err(io_err(&out))?;
    let _ = std::fs::remove_file(raw);
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    Ok(Kept {
        command: open_command(&out, &script, kernel),
        path: out,
        bytes,
        seconds: start.elapsed().as_secs_f64(),
        note,
    })
}

/// `gunzip -k DIR/vmcore.gz && gdb-multiarch -x DIR/vmcore.gdb VMLINUX DIR/vmcore` (gdb-multiarch reads both
/// boards' cores on an x86_64 host; Debian's `crash` reads only its host's arch, and only with
/// a kernel's full debug info, which rig's kernels, built with reduced info, lack).
pub fn open_command(kept: &Path, script: &Path, kernel: &Kernel) -> String {
    let q = |p: &Path| crate::host::shell::quote(&p.display().to_string()).into_owned();
    let core = kept.with_extension("");
    let vmlinux = kernel
        .vmlinux
        .as_deref()
        .map(q)
        .unwrap_or_else(|| "VMLINUX".into());
    format!(
        "gunzip -k {} && gdb-multiarch -x {} {vmlinux} {}",
        q(kept),
        q(script),
        q(&core)
    )
}
