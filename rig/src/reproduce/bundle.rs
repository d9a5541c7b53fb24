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
//!
//! The record says which files to pack, and it is data: a bundle packs only files inside the
//! run folder (reached without a symbolic link, [`super::files`]), the kernel's `.config` only
//! from the kernel's own entry in rig's cache, and patches and fragments from rig's checkout by
//! the flavor's name in rig's catalogue — never a path the record spells out.

use super::{files, ReproduceError, RECORD_FILE};
use crate::host::cache::Cache;
use crate::provision::kbuild;
use crate::provision::KernelSpec;
use crate::run::record::RunRecord;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::path::{Path, PathBuf};

/// The file in a bundle that says what it is and how to run it.
pub const BUNDLE_README: &str = "REPRODUCE.txt";

/// What [`bundle`] wrote: the paths inside, and what it left out and why.
#[derive(Debug, Clone, Default)]
pub struct Bundled {
    pub held: Vec<String>,
    pub left_out: Vec<String>,
}

fn bundle_err(path: &Path, message: impl std::fmt::Display) -> ReproduceError {
    ReproduceError::Bundle {
        path: path.into(),
        message: message.to_string(),
    }
}

/// The cache folders holding kernels (`kernel-build` for the kernels rig builds,
/// `debian-kernel` for Debian's): an entry is `<cache>/<kind>/<key>/` with `kernel.json`.
const KERNEL_KINDS: [&str; 2] = ["kernel-build", "debian-kernel"];

/// The recorded `.config` when it is the config of a kernel entry in `cache` (its real path is
/// `<cache>/<kind>/<key>/<name>` and that entry's `kernel.json` names `<name>` as its config).
fn owned_config(config: &Path, cache: &Cache) -> Option<PathBuf> {
    let real = config.canonicalize().ok()?;
    let root = cache.root().canonicalize().ok()?;
    let entry = real.parent()?;
    let kind = entry.parent()?;
    if kind.parent()? != root || !KERNEL_KINDS.iter().any(|k| kind.ends_with(k)) {
        return None;
    }
    let meta = std::fs::read_to_string(entry.join("kernel.json")).ok()?;
    let meta: serde_json::Value = serde_json::from_str(&meta).ok()?;
    let named = meta.get("config")?.as_str()?;
    (real.file_name()? == named && real.is_file()).then_some(real)
}

/// The files a run folder's bundle holds, as (source, name inside).
fn contents(
    dir: &Path,
    r: &RunRecord,
    kernel: &KernelSpec,
    cache: &Cache,
    out: &mut Bundled,
) -> Result<Vec<(PathBuf, String)>, ReproduceError> {
    let mut add = Vec::new();
    add.push((dir.join(RECORD_FILE), RECORD_FILE.to_string()));
    for name in [crate::report::REPORT_FILE, "qemu.argv", "console.log"] {
        // The run's own, or (a repeated run) its first repetition's.
        for rel in [PathBuf::from(name), Path::new("run-1").join(name)] {
            if let Some(p) = files::file_inside(dir, &rel)? {
                add.push((p, name.to_string()));
                break;
            }
        }
    }
    for rel in r.scenario.copy.iter().chain(&r.scenario.overlays) {
        match files::file_inside(dir, rel)? {
            Some(p) => add.push((p, rel.display().to_string())),
            None => out
                .left_out
                .push(format!("{}: not in the run folder", rel.display())),
        }
    }
    match owned_config(&r.kernel.config, cache) {
        Some(p) => add.push((p, "kernel/config".into())),
        None => out.left_out.push(format!(
            "kernel/config: {} is not a kernel's config in rig's cache {}",
            r.kernel.config.display(),
            cache.root().display()
        )),
    }
    let repo = crate::repo_root();
    let flavor = match kernel {
        KernelSpec::Rig { series, flavor } => Some((*series, flavor)),
        KernelSpec::Tree { path, flavor } => Some((kbuild::series::of_tree(path), flavor)),
        KernelSpec::Debian61 => None,
    };
    if let Some((series, Ok(f))) = flavor.map(|(s, f)| (s, kbuild::flavor(f))) {
        for set in &f.patch_sets {
            let set_dir = kbuild::patch_set_dir(&repo.join("images/patches"), series, set);
            for p in kbuild::patches::patch_files(&set_dir).unwrap_or_default() {
                if let Some(name) = p.file_name() {
                    let name = format!("kernel/patches/{}", name.to_string_lossy());
                    add.push((p, name));
                }
            }
        }
        let kconfig = repo.join("images/kconfig");
        for p in kbuild::fragment_files(&kconfig, &f, r.board.arch(), series).unwrap_or_default() {
            if let Some(name) = p.file_name() {
                let name = format!("kernel/fragments/{}", name.to_string_lossy());
                add.push((p, name));
            }
        }
    }
    Ok(add)
}

/// Writes the bundle of run folder `dir` to `out` (whole or not at all: a temp file renamed
/// into place); the kernel's `.config` is taken from `cache` only.
pub fn bundle(dir: &Path, out: &Path, cache: &Cache) -> Result<Bundled, ReproduceError> {
    if !dir.is_dir() {
        return Err(bundle_err(
            dir,
            "not a run folder: --bundle packs a run folder",
        ));
    }
    let recorded = super::open(dir, dir)?;
    let r: &RunRecord = &recorded.record;
    let mut bundled = Bundled::default();
    let add = contents(dir, r, &recorded.record.spec, cache, &mut bundled)?;
    let total: u64 = add
        .iter()
        .map(|(p, _)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    if total > super::MAX_UNPACKED_BYTES {
        return Err(bundle_err(
            out,
            format!(
                "the run's files total {total} bytes, more than the {} a bundle may unpack to",
                super::MAX_UNPACKED_BYTES
            ),
        ));
    }
    let write_err = |source| ReproduceError::BundleWrite {
        path: out.into(),
        source,
    };
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(parent).map_err(write_err)?;
    let mut tar = tar::Builder::new(GzEncoder::new(tmp, Compression::default()));
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    for (src, name) in &add {
        let mut f = std::fs::File::open(src).map_err(|source| ReproduceError::Read {
            path: src.clone(),
            source,
        })?;
        tar.append_file(name, &mut f).map_err(write_err)?;
        bundled.held.push(name.clone());
    }
    let readme = readme(r, out);
    let mut header = tar::Header::new_gnu();
    header.set_size(readme.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, BUNDLE_README, readme.as_bytes())
        .map_err(write_err)?;
    bundled.held.push(BUNDLE_README.into());
    let tmp = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(write_err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        let f = tmp.as_file();
        // A bundle is made to be shared: the mode of any file the user writes, not a temp file's.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .and_then(|()| f.sync_all())
            .map_err(write_err)?;
    }
    tmp.persist(out).map_err(|e| write_err(e.error))?;
    Ok(bundled)
}

fn readme(r: &RunRecord, out: &Path) -> String {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle.tar.gz".into());
    let tree = if r.kernel.name.starts_with("tree:") {
        " --tree PATH"
    } else {
        ""
    };
    let mut s = format!(
        "rig reproduction bundle: scenario `{}` on {} with kernel {} (release {}), seed {}.\n\n\
         Run it with rig (any machine, any cache):\n\n    rig reproduce {name}{tree} [--repeat N]\n\n\
         rig provisions the same kernel by name and refuses to run if its identity differs from\n\
         the one recorded below (a tree kernel is built only from the tree given with --tree,\n\
         whose source identity must match). Exit 1: the failure reproduced; 0: it did not.\n\n\
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
