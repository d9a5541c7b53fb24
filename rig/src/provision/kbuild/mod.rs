//! rig builds its own kernels: `rig-<SERIES>[-FLAVOR]` from Debian's `linux-source-<SERIES>`
//! (7.3 fetched and pinned, 6.12 from the host's package: [`series`]), or any kernel tree
//! (bisect), for x86_64 q35 and arm64 virt guests.
//!
//! **Config.** Base = `make tinyconfig` + the kernel's `kvm_guest.config` + rig's fragments in
//! `images/kconfig/` (`<name>.config`, plus `<name>.<arch>.config`, `<name>.<series>.config` and
//! `<name>.<arch>.<series>.config` when present), merged with
//! `scripts/kconfig/merge_config.sh -m` and completed by `make olddefconfig`. tinyconfig rather
//! than a trimmed defconfig because it meets the time budget (a trimmed arm64 defconfig took
//! 23 min on 2 cores; tinyconfig + rig's options builds in minutes) and because every option rig
//! relies on is then named in a fragment. Since tinyconfig drops whatever lacks a named
//! dependency, every option a rig fragment asks for is checked in the final `.config`
//! ([`kconfig::check`]); a dropped one is an error naming the option and the fragment.
//! (`kvm_guest.config` is not checked: it names x86-only and DRM options on purpose-less arches.)
//!
//! **Flavors** = fragments + patch sets ([`flavor`]). Patch sets live in
//! `images/patches/<series>/<name>/*.patch` (each re-made against its series) and are applied in file-name order to rig's working copy.
//!
//! **The project's inputs.** A project file's `kernel:` ([`crate::project`], passed in
//! [`BuildRequest::project`]) adds fragments, merged after the flavor's and checked like them
//! (a dropped option names the project's file by path), and patches, applied after the flavor's
//! patch sets. Both enter the cache key by content under their own labels; with none, the key
//! is the one rig's assets alone give.
//!
//! **Outputs** land in the cache (`<cache>/kernel-build/<key>/`), keyed by source identity, arch,
//! fragments' and patches' content, the out-of-tree module's source and the compiler's
//! `--version`; a second build with nothing changed returns at once. The `O=` build directory
//! persists per (source, arch, flavor) in `<cache>/kbuild-work/` so rebuilds are incremental;
//! a new flavor with the default fragments starts from a copy of the default flavor's build
//! directory (only the patched files recompile).
//!
//! **Module.** `images/modules/of-configfs/` (`rig_of_configfs.ko`, overlays through configfs)
//! is built with `M=` against every kernel and installed under `lib/modules/<release>/extra/`.

use crate::host::board::Arch;
use crate::host::cache::Cache;
use crate::host::events::Events;
use crate::provision::kernel::Kernel;
use std::path::{Path, PathBuf};

mod bench;
mod build;
mod flavor;
pub mod kconfig;
pub mod patches;
mod plan;
mod run;
pub mod series;
pub mod source;
mod toolchain;

pub use bench::{bench, KbuildBench, BENCH_TOUCHED};
pub use flavor::{
    flavor, flavor_names, fragment_files, kernel_name, parse_kernel_name, patch_set_dir, Flavor,
    FlavorSpec, CATALOGUE, DEFAULT_FRAGMENTS,
};
pub use kconfig::Dropped;
pub use run::{host_failure, run_make};
pub use series::Series;

/// Bumped whenever the steps below change what lands in a cache entry.
const RECIPE_VERSION: &str = "kbuild-1";
const CACHE_KIND: &str = "kernel-build";
const META: &str = "kernel.json";
/// The out-of-tree module's directory under `images/modules/` and its module name.
pub const OF_CONFIGFS_DIR: &str = "of-configfs";
pub const OF_CONFIGFS_MODULE: &str = "rig_of_configfs";
/// The PCI driver built beside it (an overlay on its PCI device's node).
pub const PCI_OVERLAY_MODULE: &str = "rig_pci_overlay";

#[derive(Debug, thiserror::Error)]
pub enum KbuildError {
    #[error(
        "unknown kernel `{name}`: rig builds {} with -FLAVOR or without (flavors: {known})",
        Series::ALL.iter().map(|s| format!("rig-{s}")).collect::<Vec<_>>().join(", ")
    )]
    UnknownKernel { name: String, known: String },
    #[error("kernel source pin {path}: {detail}")]
    BadPin { path: PathBuf, detail: String },
    #[error("{what}: sha256 {got}, but the pin says {want} (Debian rebuilt it? update the pin)")]
    PinMismatch {
        what: String,
        want: String,
        got: String,
    },
    #[error("unknown kernel flavor `{flavor}` (known: {known})")]
    UnknownFlavor { flavor: String, known: String },
    #[error("kernel source {path} is missing: {hint}")]
    MissingSource { path: PathBuf, hint: &'static str },
    #[error("config fragment {path} is missing")]
    MissingFragment { path: PathBuf },
    #[error("patch set {dir} holds no *.patch files")]
    EmptyPatchSet { dir: PathBuf },
    #[error("patch {patch} does not apply to {tree}")]
    Patch {
        patch: PathBuf,
        tree: PathBuf,
        #[source]
        source: Box<KbuildError>,
    },
    #[error(
        "the final kernel config {config} lost {} option(s) the fragments asked for \
         (name their dependencies in the fragment):\n  {}",
        dropped.len(),
        dropped.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n  ")
    )]
    DroppedOptions {
        config: PathBuf,
        dropped: Vec<Dropped>,
    },
    #[error(
        "kernel build failed{}: `{command}` ({status}); full log: {log}\n{errors}",
        .host.as_ref().map(|h| format!(" on the host's side ({h}), not in the source")).unwrap_or_default()
    )]
    Make {
        command: String,
        status: String,
        log: PathBuf,
        errors: String,
        /// Why the failure is the host's, not the source's (make or a compiler killed, a full
        /// disk, memory exhausted): `None` for a build error in the tree ([`run::host_failure`]).
        host: Option<String>,
    },
    #[error(transparent)]
    Command(#[from] crate::host::process::CommandError),
    #[error("{what}: {path}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt kernel build entry {path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Cache(#[from] crate::host::cache::CacheError),
    #[error(transparent)]
    Process(#[from] crate::host::process::ProcessError),
}

impl KbuildError {
    /// The build failed because of the host (see [`run::host_failure`]), or rig was
    /// interrupted: not something the source tree did.
    pub fn is_host_failure(&self) -> bool {
        match self {
            KbuildError::Make { host, .. } => host.is_some(),
            _ => false,
        }
    }
}

/// Where the kernel source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Debian's `linux-source-<series>`: source `debian-7.3`, `debian-6.12`.
    Debian(Series),
    /// A kernel tree or git work tree at some revision (bisect); dirty trees are fine.
    Tree(PathBuf),
}

impl Source {
    /// `debian-7.3`, `debian-6.12`, or a path to a kernel tree.
    pub fn parse(s: &str) -> Source {
        match s.strip_prefix("debian-").and_then(Series::from_version) {
            Some(series) => Source::Debian(series),
            None => Source::Tree(PathBuf::from(s)),
        }
    }

    /// The series whose fragments and patches this source takes ([`series::of_tree`] for a
    /// tree).
    pub fn series(&self) -> Series {
        match self {
            Source::Debian(s) => *s,
            Source::Tree(p) => series::of_tree(p),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Source::Debian(series) => series.source_name(),
            Source::Tree(p) => p.display().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub arch: Arch,
    pub source: Source,
    /// `""` for the default flavor, else a name from [`CATALOGUE`].
    pub flavor: String,
    /// The project's own fragments and patches (`rig.yaml`'s `kernel:`), after the flavor's;
    /// empty for none (the build and its key are then exactly those without a project).
    pub project: crate::project::KernelInputs,
}

/// Builds (or finds in the cache) the kernel `req` asks for.
pub fn build(req: &BuildRequest, cache: &Cache, events: &Events) -> Result<Kernel, KbuildError> {
    build::build_with(
        req,
        &crate::repo_root(),
        Path::new(series::HOST_612_TARBALL),
        cache,
        events,
    )
}

/// Every kernel build key the assets below `repo` give: each flavor on each arch, built from the
/// stand-in `tarball` with a fixed compiler (the parts of a key that are not assets). Two asset
/// trees that give the same list give the same keys for any source and compiler.
#[cfg(test)]
pub(crate) fn keys_for_assets(repo: &Path, tarball: &Path) -> Vec<(String, String)> {
    let toolchain = || {
        Ok(toolchain::Toolchain {
            gcc: "gcc".into(),
            ccache: false,
            version: "gcc (stand-in) 1".into(),
        })
    };
    let mut out = Vec::new();
    for series in Series::ALL {
        for f in flavor_names() {
            for arch in [Arch::X86_64, Arch::Arm64] {
                let req = BuildRequest {
                    arch,
                    source: Source::Debian(series),
                    flavor: f.to_string(),
                    project: Default::default(),
                };
                let key = plan::Plan::with_toolchain(&req, repo, tarball, toolchain)
                    .and_then(|p| p.key())
                    .map_or_else(|e| format!("error: {e}"), |k| k.hex());
                out.push((format!("kernel {} {arch}", kernel_name(series, f)), key));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::plan::{file_name, Plan};
    use super::*;
    use std::fs;
    use std::time::Instant;

    #[test]
    fn kernel_names_round_trip_through_flavors() {
        for series in Series::ALL {
            for f in flavor_names() {
                let name = kernel_name(series, f);
                assert_eq!(parse_kernel_name(&name).unwrap(), (series, f.to_string()));
                flavor(f).unwrap();
            }
        }
        assert_eq!(kernel_name(Series::V6_12, ""), "rig-6.12");
        assert_eq!(kernel_name(Series::V6_12, "kasan"), "rig-6.12-kasan");
        assert_eq!(kernel_name(Series::V7_3, "kasan"), "rig-7.3-kasan");
        for bad in [
            "rig-6.1",
            "rig-6.12-",
            "rig-6.12kasan",
            "rig-6.12-nope",
            "rig-7.30",
            "rig-7",
            "rig-",
            "debian-6.1",
        ] {
            let e = parse_kernel_name(bad).unwrap_err();
            assert!(matches!(e, KbuildError::UnknownKernel { .. }), "{bad}");
        }
        assert!(flavor("nope")
            .unwrap_err()
            .to_string()
            .contains("known-bad-devlink-wait"));
    }

    #[test]
    fn flavors_compose_fragments_and_patches() {
        let d = flavor("").unwrap();
        assert_eq!(d.fragments, DEFAULT_FRAGMENTS);
        assert!(d.patch_sets.is_empty());
        assert_eq!(flavor("default").unwrap(), d);
        let k = flavor("kasan").unwrap();
        assert_eq!(k.fragments.last().map(String::as_str), Some("kasan"));
        let kb = flavor("known-bad-devlink-wait").unwrap();
        assert_eq!(kb.fragments, d.fragments);
        assert_eq!(kb.patch_sets, ["known-bad-devlink-wait"]);
    }

    #[test]
    fn every_flavor_has_its_fragments_and_patches_in_the_repo() {
        let repo = crate::repo_root();
        for f in flavor_names() {
            let fl = flavor(f).unwrap();
            for series in Series::ALL {
                for arch in [Arch::X86_64, Arch::Arm64] {
                    let files =
                        fragment_files(&repo.join("images/kconfig"), &fl, arch, series).unwrap();
                    assert!(files.len() >= fl.fragments.len());
                }
                for set in &fl.patch_sets {
                    let dir = flavor::patch_set_dir(&repo.join("images/patches"), series, set);
                    patches::patch_files(&dir).unwrap();
                }
            }
        }
    }

    #[test]
    fn arch_fragments_follow_their_common_fragment() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "base.config",
            "base.arm64.config",
            "base.7.3.config",
            "base.arm64.7.3.config",
            "debug.config",
        ] {
            fs::write(d.path().join(f), "CONFIG_X=y\n").unwrap();
        }
        let fl = Flavor {
            name: "t".into(),
            fragments: vec!["base".into(), "debug".into()],
            patch_sets: vec![],
        };
        let names = |arch| -> Vec<String> {
            fragment_files(d.path(), &fl, arch, Series::V6_12)
                .unwrap()
                .iter()
                .map(|p| file_name(p))
                .collect()
        };
        assert_eq!(
            names(Arch::Arm64),
            ["base.config", "base.arm64.config", "debug.config"]
        );
        assert_eq!(names(Arch::X86_64), ["base.config", "debug.config"]);
        let names_73: Vec<String> = fragment_files(d.path(), &fl, Arch::Arm64, Series::V7_3)
            .unwrap()
            .iter()
            .map(|p| file_name(p))
            .collect();
        assert_eq!(
            names_73,
            [
                "base.config",
                "base.arm64.config",
                "base.7.3.config",
                "base.arm64.7.3.config",
                "debug.config"
            ]
        );
        fs::remove_file(d.path().join("debug.config")).unwrap();
        assert!(matches!(
            fragment_files(d.path(), &fl, Arch::X86_64, Series::V6_12),
            Err(KbuildError::MissingFragment { .. })
        ));
    }

    /// The shipped fragments only ask for options in the form the checker understands.
    #[test]
    fn shipped_fragments_parse() {
        let dir = crate::repo_root().join("images/kconfig");
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_none_or(|x| x != "config") {
                continue;
            }
            let text = fs::read_to_string(&p).unwrap();
            let reqs = kconfig::parse_fragment(&file_name(&p), &text);
            let option_lines = text
                .lines()
                .filter(|l| l.starts_with("CONFIG_") || l.ends_with(" is not set"))
                .count();
            assert_eq!(reqs.len(), option_lines, "{}", p.display());
            assert!(!reqs.is_empty(), "{}", p.display());
        }
    }

    #[test]
    fn cache_key_follows_fragments_patches_and_toolchain() {
        let repo = tempfile::tempdir().unwrap();
        let r = repo.path();
        fs::create_dir_all(r.join("images/kconfig")).unwrap();
        fs::create_dir_all(r.join("images/patches/6.12/known-bad-devlink-wait")).unwrap();
        fs::create_dir_all(r.join("images/modules/of-configfs")).unwrap();
        fs::write(r.join("images/modules/of-configfs/m.c"), "x").unwrap();
        for f in DEFAULT_FRAGMENTS {
            fs::write(r.join(format!("images/kconfig/{f}.config")), "CONFIG_A=y\n").unwrap();
        }
        fs::write(
            r.join("images/patches/6.12/known-bad-devlink-wait/0001.patch"),
            "p1",
        )
        .unwrap();
        let tree = tempfile::tempdir().unwrap();
        fs::write(tree.path().join("Makefile"), "").unwrap();
        fs::write(tree.path().join("Kconfig"), "").unwrap();
        let req = |flavor: &str| BuildRequest {
            arch: Arch::X86_64,
            source: Source::Tree(tree.path().to_path_buf()),
            flavor: flavor.into(),
            project: Default::default(),
        };
        let key = |flavor: &str| {
            Plan::new(&req(flavor), r, Path::new("/x"), false)
                .unwrap()
                .key()
                .unwrap()
                .hex()
        };
        let k0 = key("");
        assert_eq!(k0, key(""));
        let kb = key("known-bad-devlink-wait");
        assert_ne!(k0, kb);
        fs::write(r.join("images/kconfig/debug.config"), "CONFIG_B=y\n").unwrap();
        assert_ne!(k0, key(""));
        fs::write(
            r.join("images/patches/6.12/known-bad-devlink-wait/0001.patch"),
            "p2",
        )
        .unwrap();
        assert_ne!(kb, key("known-bad-devlink-wait"));
        fs::write(r.join("images/modules/of-configfs/m.c"), "y").unwrap();
        let k1 = key("");
        fs::write(tree.path().join("Makefile"), "changed").unwrap();
        assert_ne!(k1, key(""));
    }

    /// Really measures `bench` (a clean build without ccache, minutes of CPU):
    /// `RIG_KBUILD_ARCHES=arm64 cargo test --release -p rig --lib kbuild -- --ignored bench_real`.
    #[test]
    #[ignore]
    fn bench_real() {
        use crate::host::events::StderrProgress;
        let events = Events::none().with(std::sync::Arc::new(StderrProgress::new(true)));
        let cache = Cache::from_env();
        let arches = std::env::var("RIG_KBUILD_ARCHES").unwrap_or_else(|_| "arm64".into());
        for a in arches.split(',') {
            let b = bench(a.parse().unwrap(), &cache, &events).unwrap_or_else(|e| panic!("{e}"));
            eprintln!("{b:?}");
            assert!(b.incremental < b.clean);
        }
    }

    /// Really builds rig-6.12 for both arches (minutes of CPU): run on purpose with
    /// `cargo test --release -p rig --lib kbuild -- --ignored build_real`.
    /// `RIG_KBUILD_ARCHES` (e.g. `arm64`) and `RIG_KBUILD_FLAVOR` narrow it.
    #[test]
    #[ignore]
    fn build_real() {
        use crate::host::events::StderrProgress;
        let events = Events::none().with(std::sync::Arc::new(StderrProgress::new(true)));
        let cache = Cache::from_env();
        let arches = std::env::var("RIG_KBUILD_ARCHES").unwrap_or_else(|_| "x86_64,arm64".into());
        let flavor = std::env::var("RIG_KBUILD_FLAVOR").unwrap_or_default();
        for a in arches.split(',') {
            let arch: Arch = a.parse().unwrap();
            let t = Instant::now();
            let k = build(
                &BuildRequest {
                    arch,
                    source: Source::Debian(Series::V6_12),
                    flavor: flavor.clone(),
                    project: Default::default(),
                },
                &cache,
                &events,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            eprintln!(
                "built {} {arch} {} in {:.0}s: {k:#?}",
                k.name,
                k.release,
                t.elapsed().as_secs_f64()
            );
            assert!(k.image.is_file());
            let again = build(
                &BuildRequest {
                    arch,
                    source: Source::Debian(Series::V6_12),
                    flavor: flavor.clone(),
                    project: Default::default(),
                },
                &cache,
                &events,
            )
            .unwrap();
            assert_eq!(again.image, k.image);
        }
    }
}
