//! Bundles: one `.tar.gz` holding everything needed to re-run a run elsewhere, laid out like a
//! run folder (so [`super::open`] reads an unpacked bundle as one):
//!
//! ```text
//! run.json  report.json  REPRODUCE.txt   the record, the report, how to run it
//! scenario/<file>.yaml  scenario/overlays/*.dtso
//! kernel/config          the kernel's .config
//! kernel/patches/*.patch rig's patches for the kernel's flavor
//! kernel/fragments/*     the config fragments it was built from (rig kernels)
//! qemu.argv  console.log the first repetition's QEMU command line and console
//! ```

use super::{ReproduceError, RECORD_FILE};
use crate::run::record::RunRecord;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::path::{Path, PathBuf};

/// The file in a bundle that says what it is and how to run it.
pub const BUNDLE_README: &str = "REPRODUCE.txt";

fn bundle_err(path: &Path, message: impl std::fmt::Display) -> ReproduceError {
    ReproduceError::Bundle {
        path: path.into(),
        message: message.to_string(),
    }
}

/// The first of `names` that exists in `dir` or its first repetition's folder.
fn first_rep_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join("run-1").join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

/// Writes the bundle of run folder `dir` to `out`; returns what it holds (paths inside).
pub fn bundle(dir: &Path, out: &Path) -> Result<Vec<String>, ReproduceError> {
    let recorded = super::open(dir, dir)?;
    let r: &RunRecord = &recorded.record;
    let file = std::fs::File::create(out).map_err(|e| bundle_err(out, e))?;
    let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    tar.mode(tar::HeaderMode::Deterministic);
    let mut held = Vec::new();
    let mut add =
        |tar: &mut tar::Builder<_>, src: &Path, name: &str| -> Result<(), ReproduceError> {
            tar.append_path_with_name(src, name)
                .map_err(|e| bundle_err(out, format!("adding {}: {e}", src.display())))?;
            held.push(name.to_string());
            Ok(())
        };
    add(&mut tar, &dir.join(RECORD_FILE), RECORD_FILE)?;
    for name in [crate::report::REPORT_FILE, "qemu.argv", "console.log"] {
        if let Some(p) = first_rep_file(dir, name) {
            add(&mut tar, &p, name)?;
        }
    }
    if let Some(copy) = &r.scenario.copy {
        add(&mut tar, &dir.join(copy), &copy.display().to_string())?;
    }
    for o in &r.scenario.overlays {
        add(&mut tar, &dir.join(o), &o.display().to_string())?;
    }
    if r.kernel.config.is_file() {
        add(&mut tar, &r.kernel.config, "kernel/config")?;
    }
    let repo = crate::repo_root();
    if let Some(flavor) = r.kernel.provenance.get("flavor") {
        if let Ok(f) = crate::provision::kbuild::flavor(flavor) {
            for set in &f.patch_sets {
                let set_dir = repo.join("images/patches").join(set);
                let mut files: Vec<PathBuf> = std::fs::read_dir(&set_dir)
                    .map(|d| d.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                files.sort();
                for p in files
                    .iter()
                    .filter(|p| p.extension().is_some_and(|x| x == "patch"))
                {
                    let name = format!(
                        "kernel/patches/{}",
                        p.file_name().unwrap_or_default().to_string_lossy()
                    );
                    add(&mut tar, p, &name)?;
                }
            }
        }
    }
    if let Some(frags) = r.kernel.provenance.get("fragments") {
        for f in frags.split_whitespace() {
            let p = repo.join("images/kconfig").join(f);
            if p.is_file() {
                add(&mut tar, &p, &format!("kernel/fragments/{f}"))?;
            }
        }
    }
    let readme = readme(r, out);
    let mut header = tar::Header::new_gnu();
    header.set_size(readme.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, BUNDLE_README, readme.as_bytes())
        .map_err(|e| bundle_err(out, e))?;
    held.push(BUNDLE_README.into());
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| bundle_err(out, e))?;
    Ok(held)
}

fn readme(r: &RunRecord, out: &Path) -> String {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle.tar.gz".into());
    let mut s = format!(
        "rig reproduction bundle: scenario `{}` on {} with kernel {} (release {}), seed {}.\n\n\
         Run it with rig (any machine, any cache):\n\n    rig reproduce {name} [--repeat N]\n\n\
         rig provisions the same kernel by name and refuses to run if its identity differs from\n\
         the one recorded below. Exit 1: the failure reproduced; 0: it did not.\n\n\
         QEMU: {}\naccelerator: {} (used {})\nkernel command-line additions: {}\n\nkernel identity:\n",
        r.scenario.name,
        r.board,
        r.kernel.name,
        r.kernel.release,
        r.seed,
        r.qemu_version,
        r.accel,
        r.accel_used,
        if r.extra_cmdline.is_empty() {
            "none".to_string()
        } else {
            r.extra_cmdline.join(" ")
        }
    );
    for (k, v) in &r.kernel.provenance {
        s.push_str(&format!("  {k}: {v}\n"));
    }
    s
}

/// Unpacks bundle `path` into a new folder under `into`; returns it.
pub fn unpack(path: &Path, into: &Path) -> Result<PathBuf, ReproduceError> {
    let file = std::fs::File::open(path).map_err(|source| ReproduceError::Read {
        path: path.into(),
        source,
    })?;
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".tar.gz").to_string())
        .unwrap_or_else(|| "bundle".into());
    let dir = crate::host::artifacts::RunDir::create_in(into, &format!("bundle-{stem}"))
        .map_err(|e| bundle_err(path, e))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    // `unpack` refuses entries that would land outside the folder.
    archive
        .unpack(dir.path())
        .map_err(|e| bundle_err(path, format!("not a rig bundle (.tar.gz): {e}")))?;
    Ok(dir.path().to_path_buf())
}
