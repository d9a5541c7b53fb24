//! DT overlays: `overlays/*.dtso` compiled to `.dtbo` for the guest's configfs overlay interface.
//!
//! An overlay source is input (a reproduce bundle carries its own copies), and dtc would read
//! any host file it names: `/include/ "FILE"` splices a file into the source, `/incbin/("FILE")`
//! copies its bytes into the blob the guest reads (`/proc/self/environ`, a key), and
//! `/incbin/("/dev/zero")` never ends. So a source may name no file ([`forbidden_directive`]:
//! validation refuses it at its line, and [`compile`] again), is read once, bounded, from a
//! regular file, and compiled as a copy alone in a private folder, with dtc's include path
//! pointing there, under a deadline ([`DTC_TIMEOUT`]). rig runs no C preprocessor on overlays:
//! `#include` is a dtc syntax error, refused early with a clear message too. dtc's only other
//! file-related directive, the `# LINE "FILE"` marker, just renames positions in its messages.

use crate::host::process::{describe_status, tail_lines, ProcessError, Supervised};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The largest overlay source rig compiles (the shipped ones are under 2 KiB).
pub const MAX_SOURCE_BYTES: u64 = 1 << 20;
/// How long dtc may take on one overlay (it takes milliseconds).
pub const DTC_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("cannot run `{command}` (is dtc installed? `apt-get install device-tree-compiler`)")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dtc cannot compile overlay {src} ({status}):\n{stderr}")]
    Dtc {
        src: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("cannot read overlay {src}")]
    Read {
        src: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("overlay {src} is not a regular file")]
    NotAFile { src: PathBuf },
    #[error("overlay {src} is larger than {max} bytes")]
    TooLarge { src: PathBuf, max: u64 },
    #[error("{src}:{line}:{column}: {}", .directive.problem())]
    Directive {
        src: PathBuf,
        line: usize,
        column: usize,
        directive: Forbidden,
    },
    #[error("dtc did not finish compiling overlay {src} within {timeout:?}: killed")]
    Timeout { src: PathBuf, timeout: Duration },
    #[error("cannot prepare the folder to compile overlay {src} in")]
    Sandbox {
        src: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the compiled overlay {out}")]
    Write {
        out: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dtc on overlay {src}")]
    Process {
        src: PathBuf,
        #[source]
        source: ProcessError,
    },
}

/// A directive that would make dtc (or a C preprocessor) read another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// `/include/ "FILE"`: dtc splices FILE into the source.
    Include,
    /// `/incbin/("FILE")`: dtc copies FILE's bytes into a property.
    Incbin,
    /// `#include`: a C preprocessor's (rig runs none; dtc refuses it).
    CppInclude,
}

impl Forbidden {
    pub fn text(self) -> &'static str {
        match self {
            Forbidden::Include => "/include/",
            Forbidden::Incbin => "/incbin/",
            Forbidden::CppInclude => "#include",
        }
    }

    pub fn problem(self) -> String {
        let what = match self {
            Forbidden::Include => "would splice a host file into the overlay's source",
            Forbidden::Incbin => "would copy a host file into the blob the guest reads",
            Forbidden::CppInclude => "needs a C preprocessor, which rig does not run",
        };
        format!(
            "`{}` {what}: overlays may not include files (no `/include/`, `/incbin/`, `#include`)",
            self.text()
        )
    }
}

/// The first directive of `src` that would read another file, with its line and column (from
/// 1). Any occurrence counts, even in a comment or a string: refusing too much is safe.
pub fn forbidden_directive(src: &[u8]) -> Option<(usize, usize, Forbidden)> {
    for (line_no, line) in src.split(|&b| b == b'\n').enumerate() {
        let at = |i: usize| {
            let col = String::from_utf8_lossy(&line[..i]).chars().count() + 1;
            (line_no + 1, col)
        };
        for f in [Forbidden::Include, Forbidden::Incbin] {
            let needle = f.text().as_bytes();
            if let Some(i) = line.windows(needle.len()).position(|w| w == needle) {
                let (l, c) = at(i);
                return Some((l, c, f));
            }
        }
        let indent = line.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if let Some(rest) = line[indent..].strip_prefix(b"#") {
            let gap = rest
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
            if rest[gap..].starts_with(b"include") {
                let (l, c) = at(indent);
                return Some((l, c, Forbidden::CppInclude));
            }
        }
    }
    None
}

/// Reads an overlay source: a regular file (a FIFO or device is refused without blocking) of
/// at most [`MAX_SOURCE_BYTES`].
pub fn read_source(src: &Path) -> Result<Vec<u8>, OverlayError> {
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| OverlayError::Read {
        src: src.to_path_buf(),
        source,
    };
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(src)
        .map_err(read_err)?;
    if !f.metadata().map_err(read_err)?.is_file() {
        return Err(OverlayError::NotAFile {
            src: src.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    f.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(OverlayError::TooLarge {
            src: src.to_path_buf(),
            max: MAX_SOURCE_BYTES,
        });
    }
    Ok(bytes)
}

/// Compiles a `.dtso` overlay source to a `.dtbo` with `dtc -I dts -O dtb` — without `-@`:
/// QEMU's generated DT has no `__symbols__`, so rig's overlays target paths and use only local
/// phandle references. The source must name no other file; dtc compiles a sealed copy of it
/// within [`DTC_TIMEOUT`].
pub fn compile(src: &Path, out: &Path) -> Result<(), OverlayError> {
    compile_within(src, out, DTC_TIMEOUT)
}

/// [`compile`] with its deadline given.
pub fn compile_within(src: &Path, out: &Path, timeout: Duration) -> Result<(), OverlayError> {
    let bytes = read_source(src)?;
    if let Some((line, column, directive)) = forbidden_directive(&bytes) {
        return Err(OverlayError::Directive {
            src: src.to_path_buf(),
            line,
            column,
            directive,
        });
    }
    let sandbox = |source| OverlayError::Sandbox {
        src: src.to_path_buf(),
        source,
    };
    // Private (0700), and nothing in it but the copy: dtc's include path and the source's own
    // folder (where dtc looks first) are this folder.
    let dir = tempfile::Builder::new()
        .prefix("rig-dtc-")
        .tempdir()
        .map_err(sandbox)?;
    fs::write(dir.path().join(SEALED), &bytes).map_err(sandbox)?;
    let blob = run_dtc(dir.path(), src, timeout)?;
    let part = out.with_extension("dtbo.part");
    let write = |source| OverlayError::Write {
        out: out.to_path_buf(),
        source,
    };
    fs::write(&part, blob).map_err(write)?;
    fs::rename(&part, out).map_err(write)
}

/// The copy's name in the private folder.
const SEALED: &str = "overlay.dtso";

/// Runs dtc on `dir`/[`SEALED`] with `dir` as its working directory and include path, killed
/// and reaped if it runs past `timeout`; returns the blob. `src` names the overlay in errors.
fn run_dtc(dir: &Path, src: &Path, timeout: Duration) -> Result<Vec<u8>, OverlayError> {
    let mut cmd = Command::new("dtc");
    cmd.args(["-q", "-I", "dts", "-O", "dtb", "-i"])
        .arg(dir)
        .args(["-o", "overlay.dtbo", SEALED])
        .current_dir(dir);
    let command = format!(
        "dtc -q -I dts -O dtb -i {} -o overlay.dtbo {SEALED}",
        dir.display()
    );
    let log = dir.join("dtc.log");
    let process = |source| OverlayError::Process {
        src: src.to_path_buf(),
        source,
    };
    let mut child = Supervised::spawn(cmd, Some(&log)).map_err(|e| match e {
        ProcessError::Spawn { source, .. } => OverlayError::Spawn { command, source },
        e => process(e),
    })?;
    let Some(status) = child.wait_timeout(timeout).map_err(process)? else {
        child.terminate();
        return Err(OverlayError::Timeout {
            src: src.to_path_buf(),
            timeout,
        });
    };
    if !status.success() {
        let text = fs::read(&log).unwrap_or_default();
        return Err(OverlayError::Dtc {
            src: src.to_path_buf(),
            status: describe_status(&status),
            stderr: tail_lines(&String::from_utf8_lossy(&text), 20),
        });
    }
    fs::read(dir.join("overlay.dtbo")).map_err(|source| OverlayError::Read {
        src: dir.join("overlay.dtbo"),
        source,
    })
}

#[cfg(test)]
mod tests;
