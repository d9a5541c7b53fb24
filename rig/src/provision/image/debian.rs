//! Debian bookworm's prebuilt 6.1 kernel (`debian-6.1`): `linux-image-amd64` / `linux-image-arm64`
//! extracted with `mmdebstrap --variant=extract` into a scratch folder (the host's dpkg is never
//! involved), from which rig keeps the image, its config, `System.map` and `lib/modules/<release>/`.
//! Debian's package ships no `modules.dep` (its postinst runs depmod), so rig runs the host's
//! `depmod -b` over the tree (works for a foreign arch). Modules are plain `.ko` in bookworm.
//!
//! **Pinned.** `images/debian-6.1.json` names the exact package, version and image sha256 per
//! arch; rig fetches that version (`package=version`), checks the image's hash, and keys the cache
//! by them, so two checkouts expecting the same kernel boot the same bytes, and one whose mirror
//! no longer has the version says so instead of silently booting another kernel.
//!
//! The cache entry (`<cache>/debian-kernel/<key>/`) holds `kernel.json` with paths relative to the
//! entry, so a cached kernel resolves by reading one small file.

use super::rootfs::{log_path, mirror, mmdebstrap_extract, SUITE};
use super::ImageError;
use crate::host::board::Arch;
use crate::host::cache::{sha256_file, Cache, CacheKey};
use crate::host::events::{Event, Events};
use crate::host::path::find_tool;
use crate::host::process::run_logged;
use crate::provision::kernel::Kernel;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The name rig knows this kernel by.
pub const NAME: &str = "debian-6.1";
/// Bumped when the steps below change what lands in the entry.
const RECIPE_VERSION: &str = "debian-kernel-2";
/// The manifest pinning what `debian-6.1` is, relative to the repository root.
pub const MANIFEST: &str = "images/debian-6.1.json";

/// What the manifest pins for one arch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub package: String,
    pub version: String,
    pub image_sha256: String,
}

#[derive(Debug, serde::Deserialize)]
struct Manifest {
    #[serde(rename = "_comment")]
    _comment: Option<String>,
    suite: String,
    kernels: BTreeMap<String, Pin>,
}

/// The pin for `arch` from the manifest at `path`.
pub fn pin_from(path: &Path, arch: Arch) -> Result<Pin, ImageError> {
    let bad = |why: String| ImageError::Invalid(format!("{}: {why}", path.display()));
    let text = fs::read_to_string(path).map_err(|source| ImageError::Io {
        what: "cannot read the debian-6.1 manifest".into(),
        path: path.to_path_buf(),
        source,
    })?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if m.suite != SUITE {
        return Err(bad(format!(
            "suite `{}`, but rig fetches from {SUITE}",
            m.suite
        )));
    }
    m.kernels
        .get(arch.debian())
        .cloned()
        .ok_or_else(|| bad(format!("no kernel pinned for {}", arch.debian())))
}

/// The pin for `arch` from the checkout's manifest.
pub fn pin(arch: Arch) -> Result<Pin, ImageError> {
    pin_from(&crate::repo_root().join(MANIFEST), arch)
}
const CACHE_KIND: &str = "debian-kernel";
const META: &str = "kernel.json";

pub(crate) fn key(arch: Arch, pin: &Pin) -> CacheKey {
    let mut k = CacheKey::new(CACHE_KIND);
    k.str("recipe", RECIPE_VERSION)
        .str("arch", arch.debian())
        .str("suite", SUITE)
        .str("package", &pin.package)
        .str("version", &pin.version)
        .str("image_sha256", &pin.image_sha256);
    k
}

/// Debian bookworm's prebuilt 6.1 kernel for `arch`, fetched and cached.
pub fn kernel(arch: Arch, cache: &Cache, events: &Events) -> Result<Kernel, ImageError> {
    let pin = pin(arch)?;
    let key = key(arch, &pin);
    let step = format!("kernel {NAME} {arch}");
    let entry = cache.provision(
        CACHE_KIND,
        &key,
        events,
        &step,
        || {
            Some(format!(
                "fetching {} {} from Debian {SUITE}",
                pin.package, pin.version
            ))
        },
        |dir| fetch(arch, &pin, dir, &key, cache, events, &step),
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
    pin: &Pin,
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
            "mmdebstrap --variant=extract {}={} (log: {})",
            pin.package,
            pin.version,
            log.display()
        ),
        fraction: None,
    });
    // Keep the downloaded .debs: their file names tell the exact package versions.
    mmdebstrap_extract(
        arch,
        &[format!("{}={}", pin.package, pin.version)],
        &scratch,
        &log,
        &["--skip=cleanup/apt/cache"],
    )
    .map_err(|e| {
        ImageError::Invalid(format!(
            "cannot fetch the pinned {} {} from Debian {SUITE} ({e}); if the mirror dropped \
             that version, update {MANIFEST} to the one it has (log: {})",
            pin.package,
            pin.version,
            log.display()
        ))
    })?;

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
    if sha != pin.image_sha256 || version != pin.version {
        return Err(ImageError::Invalid(format!(
            "{image_pkg} {version} from the mirror has image sha256 {sha}, but {MANIFEST} pins \
             {} {} with {}: not the kernel this checkout expects",
            pin.package, pin.version, pin.image_sha256
        )));
    }
    let mut provenance = BTreeMap::new();
    provenance.insert("source".into(), format!("Debian {SUITE} ({})", mirror()));
    provenance.insert("package".into(), image_pkg);
    provenance.insert("version".into(), version);
    provenance.insert("manifest".into(), MANIFEST.into());
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
    fn the_manifest_pins_both_arches_and_the_key_follows_the_pin() {
        let x86 = pin(Arch::X86_64).unwrap();
        let arm = pin(Arch::Arm64).unwrap();
        assert!(x86.package.starts_with("linux-image-6.1.0-") && x86.package.ends_with("-amd64"));
        assert!(arm.package.ends_with("-arm64"));
        assert_eq!(x86.image_sha256.len(), 64);
        assert_ne!(key(Arch::X86_64, &x86).hex(), key(Arch::Arm64, &arm).hex());
        let newer = Pin {
            version: "6.1.999-1".into(),
            ..arm.clone()
        };
        assert_ne!(key(Arch::Arm64, &arm).hex(), key(Arch::Arm64, &newer).hex());
    }

    #[test]
    fn a_broken_manifest_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m.json");
        fs::write(&m, r#"{"suite": "bookworm", "kernels": {"amd64": {"package": "p", "version": "v", "image_sha256": "s"}}}"#).unwrap();
        assert_eq!(pin_from(&m, Arch::X86_64).unwrap().version, "v");
        let e = pin_from(&m, Arch::Arm64).unwrap_err().to_string();
        assert!(e.contains("no kernel pinned for arm64"), "{e}");
        fs::write(&m, r#"{"suite": "trixie", "kernels": {}}"#).unwrap();
        let e = pin_from(&m, Arch::X86_64).unwrap_err().to_string();
        assert!(e.contains("m.json: suite `trixie`"), "{e}");
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
