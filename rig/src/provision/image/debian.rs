//! Debian bookworm's prebuilt 6.1 kernel (`debian-6.1`): `linux-image-amd64` / `linux-image-arm64`
//! extracted with `mmdebstrap --variant=extract` into a scratch folder (the host's dpkg is never
//! involved), from which rig keeps the image, its config, `System.map` and `lib/modules/<release>/`.
//! Debian's package ships no `modules.dep` (its postinst runs depmod), so rig runs the host's
//! `depmod -b` over the tree (works for a foreign arch). Modules are plain `.ko` in bookworm.
//!
//! The cache entry (`<cache>/debian-kernel/<key>/`) holds `kernel.json` with paths relative to the
//! entry, so a cached kernel resolves by reading one small file.

use super::initramfs::find_tool;
use super::rootfs::{log_path, mirror, mmdebstrap_extract, SUITE};
use super::ImageError;
use crate::host::board::Arch;
use crate::host::cache::{sha256_file, Cache, CacheKey};
use crate::host::events::{Event, Events};
use crate::host::process::run_logged;
use crate::provision::kernel::Kernel;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The name rig knows this kernel by.
pub const NAME: &str = "debian-6.1";
/// Bumped when the steps below change what lands in the entry.
const RECIPE_VERSION: &str = "debian-kernel-1";
const CACHE_KIND: &str = "debian-kernel";
const META: &str = "kernel.json";

/// Debian's metapackage that depends on the current 6.1 kernel for `arch`.
pub fn package(arch: Arch) -> String {
    format!("linux-image-{}", arch.debian())
}

fn key(arch: Arch) -> CacheKey {
    let mut k = CacheKey::new(CACHE_KIND);
    k.str("recipe", RECIPE_VERSION)
        .str("arch", arch.debian())
        .str("suite", SUITE)
        .str("package", &package(arch));
    k
}

/// Debian bookworm's prebuilt 6.1 kernel for `arch`, fetched and cached.
pub fn kernel(arch: Arch, cache: &Cache, events: &Events) -> Result<Kernel, ImageError> {
    let key = key(arch);
    let step = format!("kernel {NAME} {arch}");
    let entry = cache.provision(
        CACHE_KIND,
        &key,
        events,
        &step,
        || Some(format!("fetching {} from Debian {SUITE}", package(arch))),
        |dir| fetch(arch, dir, &key, cache, events, &step),
    )?;
    load(&entry)
}

/// Reads `kernel.json` from a cache entry, turning its relative paths into absolute ones.
fn load(entry: &Path) -> Result<Kernel, ImageError> {
    let meta = entry.join(META);
    let text = fs::read_to_string(&meta).map_err(|source| ImageError::Io {
        what: "cannot read kernel metadata".into(),
        path: meta.clone(),
        source,
    })?;
    let mut k: Kernel = serde_json::from_str(&text).map_err(|e| {
        ImageError::Invalid(format!("corrupt kernel metadata {}: {e}", meta.display()))
    })?;
    k.image = entry.join(&k.image);
    k.modules_root = entry.join(&k.modules_root);
    k.config = entry.join(&k.config);
    Ok(k)
}

fn fetch(
    arch: Arch,
    dir: &Path,
    key: &CacheKey,
    cache: &Cache,
    events: &Events,
    step: &str,
) -> Result<(), ImageError> {
    let io = |what: &str, path: &Path| {
        let (what, path) = (what.to_string(), path.to_path_buf());
        move |source| ImageError::Io { what, path, source }
    };
    let scratch = dir.join("extract");
    let log = log_path(cache, CACHE_KIND, key)?;
    events.emit(Event::StepProgress {
        step: step.into(),
        message: format!(
            "mmdebstrap --variant=extract {} (log: {})",
            package(arch),
            log.display()
        ),
        fraction: None,
    });
    // Keep the downloaded .debs: their file names tell the exact package versions.
    mmdebstrap_extract(
        arch,
        &[package(arch)],
        &scratch,
        &log,
        &["--skip=cleanup/apt/cache"],
    )?;

    let boot = scratch.join("boot");
    let mut releases = Vec::new();
    for e in fs::read_dir(&boot).map_err(io("cannot read", &boot))? {
        let e = e.map_err(io("cannot read", &boot))?;
        if let Some(r) = e
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("vmlinuz-"))
        {
            releases.push(r.to_string());
        }
    }
    let release = match releases.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(ImageError::Invalid(format!(
                "expected one kernel in {}, found {releases:?} (log: {})",
                boot.display(),
                log.display()
            )))
        }
    };

    let debs = debs_in(&scratch.join("var/cache/apt/archives"))?;
    let image_pkg = format!("linux-image-{release}");
    let version = debs.get(&image_pkg).cloned().ok_or_else(|| {
        ImageError::Invalid(format!(
            "mmdebstrap fetched no {image_pkg} package (log: {})",
            log.display()
        ))
    })?;

    let image = format!("vmlinuz-{release}");
    let config = format!("config-{release}");
    let system_map = format!("System.map-{release}");
    for f in [&image, &config, &system_map] {
        let (from, to) = (boot.join(f), dir.join(f));
        if f == &system_map && !from.exists() {
            continue;
        }
        fs::rename(&from, &to).map_err(io("cannot move kernel file to", &to))?;
    }
    let mods_from = scratch.join("lib/modules").join(&release);
    let mods_parent = dir.join("modules/lib/modules");
    fs::create_dir_all(&mods_parent).map_err(io("cannot create", &mods_parent))?;
    let mods_to = mods_parent.join(&release);
    fs::rename(&mods_from, &mods_to).map_err(io("cannot move modules to", &mods_to))?;
    fs::remove_dir_all(&scratch).map_err(io("cannot remove", &scratch))?;

    events.emit(Event::StepProgress {
        step: step.into(),
        message: format!("depmod {release}"),
        fraction: None,
    });
    let mut depmod = Command::new(find_tool("depmod"));
    depmod.arg("-b").arg(dir.join("modules")).arg(&release);
    run_logged(depmod, &log.with_extension("depmod.log"))?;

    let sha = sha256_file(&dir.join(&image))?;
    let mut provenance = BTreeMap::new();
    provenance.insert("source".into(), format!("Debian {SUITE} ({})", mirror()));
    provenance.insert("package".into(), image_pkg);
    provenance.insert("version".into(), version);
    if let Some(meta_version) = debs.get(&package(arch)) {
        provenance.insert(
            "metapackage".into(),
            format!("{} {meta_version}", package(arch)),
        );
    }
    provenance.insert("release".into(), release.clone());
    provenance.insert("image_sha256".into(), sha);
    provenance.insert(
        "fetched".into(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    );
    let kernel = Kernel {
        name: NAME.into(),
        arch,
        release,
        image: PathBuf::from(&image),
        modules_root: PathBuf::from("modules"),
        config: PathBuf::from(&config),
        vmlinux: None,
        provenance,
    };
    let meta = dir.join(META);
    let json = serde_json::to_string_pretty(&kernel)
        .map_err(|e| ImageError::Invalid(format!("cannot serialize kernel metadata: {e}")))?;
    fs::write(&meta, json).map_err(io("cannot write", &meta))
}

/// Package name → version of the `.deb` files in `dir` (`name_version_arch.deb`, `%3a` = `:`).
fn debs_in(dir: &Path) -> Result<BTreeMap<String, String>, ImageError> {
    let mut out = BTreeMap::new();
    let rd = fs::read_dir(dir).map_err(|source| ImageError::Io {
        what: "cannot list downloaded packages".into(),
        path: dir.to_path_buf(),
        source,
    })?;
    for e in rd.flatten() {
        if let Some((name, version)) = e.file_name().to_str().and_then(parse_deb_name) {
            out.insert(name, version);
        }
    }
    Ok(out)
}

/// `linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb` → (`linux-image-6.1.0-28-amd64`, `6.1.119-1`).
pub fn parse_deb_name(file: &str) -> Option<(String, String)> {
    let stem = file.strip_suffix(".deb")?;
    let mut parts = stem.split('_');
    let (name, version, _arch) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || name.is_empty() || version.is_empty() {
        return None;
    }
    Some((
        name.to_string(),
        version.replace("%3a", ":").replace("%3A", ":"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb_file_names_give_versions() {
        assert_eq!(
            parse_deb_name("linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb"),
            Some(("linux-image-6.1.0-28-amd64".into(), "6.1.119-1".into()))
        );
        assert_eq!(
            parse_deb_name("busybox-static_1%3a1.35.0-4+b3_arm64.deb"),
            Some(("busybox-static".into(), "1:1.35.0-4+b3".into()))
        );
        assert_eq!(parse_deb_name("partial"), None);
        assert_eq!(parse_deb_name("a_b.deb"), None);
    }

    #[test]
    fn keys_differ_per_arch() {
        assert_ne!(key(Arch::X86_64).hex(), key(Arch::Arm64).hex());
        assert_eq!(key(Arch::Arm64).hex(), key(Arch::Arm64).hex());
    }

    #[test]
    fn cached_metadata_resolves_relative_to_the_entry() {
        let d = tempfile::tempdir().unwrap();
        let k = Kernel {
            name: NAME.into(),
            arch: Arch::Arm64,
            release: "6.1.0-9-arm64".into(),
            image: "vmlinuz-6.1.0-9-arm64".into(),
            modules_root: "modules".into(),
            config: "config-6.1.0-9-arm64".into(),
            vmlinux: None,
            provenance: BTreeMap::new(),
        };
        fs::write(d.path().join(META), serde_json::to_string(&k).unwrap()).unwrap();
        let back = load(d.path()).unwrap();
        assert_eq!(back.image, d.path().join("vmlinuz-6.1.0-9-arm64"));
        assert_eq!(back.modules_root, d.path().join("modules"));
        fs::write(d.path().join(META), "{").unwrap();
        assert!(load(d.path()).is_err());
    }
}
