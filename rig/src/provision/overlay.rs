//! DT overlays: `overlays/*.dtso` compiled to `.dtbo` for the guest's configfs overlay interface.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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
}

/// Compiles a `.dtso` overlay source to a `.dtbo` with `dtc -I dts -O dtb` — without `-@`:
/// QEMU's generated DT has no `__symbols__`, so rig's overlays target paths and use only local
/// phandle references.
pub fn compile(src: &Path, out: &Path) -> Result<(), OverlayError> {
    let output = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(out)
        .arg(src)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| OverlayError::Spawn {
            command: format!("dtc -I dts -O dtb -o {} {}", out.display(), src.display()),
            source,
        })?;
    if !output.status.success() {
        let _ = fs::remove_file(out);
        return Err(OverlayError::Dtc {
            src: src.to_path_buf(),
            status: crate::host::process::describe_status(&output.status),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_compile_without_symbols_and_garbage_fails() {
        crate::host::doctor::require("dtc").unwrap_or_else(|e| panic!("{e}"));
        let d = tempfile::tempdir().unwrap();
        let repo = crate::repo_root();
        for name in ["clock-provider-consumer", "simple-node"] {
            let out = d.path().join(format!("{name}.dtbo"));
            compile(&repo.join(format!("overlays/{name}.dtso")), &out).unwrap();
            let blob = fs::read(&out).unwrap();
            assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
            let needle = b"__symbols__";
            assert!(!blob.windows(needle.len()).any(|w| w == needle), "{name}");
        }
        let bad = d.path().join("bad.dtso");
        fs::write(&bad, "/dts-v1/;\n/ { oops").unwrap();
        let out = d.path().join("bad.dtbo");
        let e = compile(&bad, &out).unwrap_err();
        assert!(matches!(e, OverlayError::Dtc { .. }), "{e}");
        assert!(!out.exists());
    }
}
