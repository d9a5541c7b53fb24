//! The compiler for each arch (cross or native, ccache when present) and `make`'s job count.

use super::KbuildError;
use crate::host::board::Arch;
use crate::host::process::CommandError;
use std::process::Command;

/// The kernel's `ARCH=`: `x86_64` (so `64BIT` defaults on) or `arm64`.
pub(super) fn make_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Arm64 => "arm64",
    }
}

/// The C compiler for `arch` and whether ccache wraps it.
#[derive(Debug, Clone)]
pub(super) struct Toolchain {
    pub(super) gcc: String,
    pub(super) ccache: bool,
    pub(super) version: String,
}

impl Toolchain {
    pub(super) fn detect(arch: Arch, allow_ccache: bool) -> Result<Self, KbuildError> {
        let gcc = format!("{}gcc", arch.cross_compile().unwrap_or(""));
        let out = Command::new(&gcc)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|source| CommandError::Spawn {
                command: format!("{gcc} --version"),
                source,
            })?;
        let version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let ccache = allow_ccache && crate::host::path::on_path("ccache").is_some();
        Ok(Toolchain {
            gcc,
            ccache,
            version,
        })
    }

    pub(super) fn cc(&self) -> String {
        if self.ccache {
            format!("ccache {}", self.gcc)
        } else {
            self.gcc.clone()
        }
    }
}

/// Parallel jobs: the machine's cores.
pub(super) fn jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
