//! A build plan: everything a build reads, resolved up front (cheap), so the cache key is known
//! before anything compiles; and the `make` invocation every step uses.

use super::flavor::{flavor, fragment_files, kernel_name, patch_set_dir, Flavor};
use super::toolchain::{jobs, make_arch, Toolchain};
use super::{
    patches, source, BuildRequest, KbuildError, Source, CACHE_KIND, OF_CONFIGFS_DIR, RECIPE_VERSION,
};
use crate::host::cache::CacheKey;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Everything a build reads, resolved up front (cheap) so the cache key can be computed.
pub(super) struct Plan {
    pub(super) req: BuildRequest,
    pub(super) flavor: Flavor,
    pub(super) name: String,
    pub(super) identity: String,
    /// The host's linux-source-6.12 tarball (a test's stand-in).
    pub(super) tarball: PathBuf,
    /// The assets (fragments, patches, pins) the plan was made from.
    pub(super) repo: PathBuf,
    /// Every fragment in merge order: the flavor's, then the project's.
    pub(super) fragments: Vec<PathBuf>,
    /// Every patch in apply order: the flavor's patch sets, then the project's.
    pub(super) patches: Vec<PathBuf>,
    pub(super) module_src: PathBuf,
    pub(super) toolchain: Toolchain,
}

impl Plan {
    pub(super) fn new(
        req: &BuildRequest,
        repo: &Path,
        tarball: &Path,
        ccache: bool,
    ) -> Result<Self, KbuildError> {
        Self::with_toolchain(req, repo, tarball, || Toolchain::detect(req.arch, ccache))
    }

    /// [`Plan::new`] with the compiler found by `toolchain` (asked last, as `new` does).
    pub(super) fn with_toolchain(
        req: &BuildRequest,
        repo: &Path,
        tarball: &Path,
        toolchain: impl FnOnce() -> Result<Toolchain, KbuildError>,
    ) -> Result<Self, KbuildError> {
        let flavor = flavor(&req.flavor)?;
        let identity = source::identity(&req.source, tarball, repo)?;
        let series = req.source.series();
        let mut fragments =
            fragment_files(&repo.join("images/kconfig"), &flavor, req.arch, series)?;
        let mut patches = Vec::new();
        for set in &flavor.patch_sets {
            patches.extend(patches::patch_files(&patch_set_dir(
                &repo.join("images/patches"),
                series,
                set,
            ))?);
        }
        fragments.extend(req.project.fragments.iter().cloned());
        patches.extend(req.project.patches.iter().cloned());
        let name = match &req.source {
            Source::Debian(series) => kernel_name(*series, &flavor.name),
            Source::Tree(_) => {
                let short = CacheKey::new("id").str("id", &identity).short();
                let base = format!("rig-tree-{short}");
                if flavor.name.is_empty() {
                    base
                } else {
                    format!("{base}-{}", flavor.name)
                }
            }
        };
        Ok(Plan {
            req: req.clone(),
            flavor,
            name,
            identity,
            tarball: tarball.to_path_buf(),
            repo: repo.to_path_buf(),
            fragments,
            patches,
            module_src: repo.join("images/modules").join(OF_CONFIGFS_DIR),
            toolchain: toolchain()?,
        })
    }

    pub(super) fn key(&self) -> Result<CacheKey, KbuildError> {
        let mut k = CacheKey::new(CACHE_KIND);
        k.str("recipe", RECIPE_VERSION)
            .str("source", &self.identity)
            .str("arch", make_arch(self.req.arch))
            .str("toolchain", &self.toolchain.version);
        // The project's inputs under their own labels, after rig's: without any, the key is
        // the one a build without a project file has.
        for f in &self.fragments {
            let kind = label_kind(f, &self.req.project.fragments, "fragment");
            k.file(&format!("{kind}/{}", file_name(f)), f)?;
        }
        for p in &self.patches {
            let kind = label_kind(p, &self.req.project.patches, "patch");
            k.file(&format!("{kind}/{}", file_name(p)), p)?;
        }
        k.tree("module", &self.module_src)?;
        Ok(k)
    }

    /// The pristine source tree the plan builds from (unpacked, a pinned tarball fetched
    /// first, on first use).
    pub(super) fn pristine(
        &self,
        cache: &crate::host::cache::Cache,
        events: &crate::host::events::Events,
    ) -> Result<PathBuf, KbuildError> {
        source::pristine(
            &self.req.source,
            &self.tarball,
            &self.repo,
            &self.identity,
            cache,
            events,
        )
    }

    /// How messages name a fragment: rig's by file name, the project's by path (so a dropped
    /// option points at the user's file).
    pub(super) fn fragment_label(&self, f: &Path) -> String {
        if self.req.project.fragments.iter().any(|p| p == f) {
            f.display().to_string()
        } else {
            file_name(f)
        }
    }

    pub(super) fn build_dir_name(&self) -> String {
        let f = if self.flavor.name.is_empty() {
            "default"
        } else {
            &self.flavor.name
        };
        format!("build-{}-{f}", self.req.arch)
    }

    /// `make` in the build dir with ARCH, CROSS_COMPILE, CC and -j set, niced.
    ///
    /// Builds are reproducible (`KBUILD_BUILD_*` fixed), so an unchanged source gives a
    /// byte-identical image (bisect flags a culprit whose image equals its parent's). ccache
    /// sees paths relative to the kbuild work root and ignores the build directory, so two
    /// working areas of the same source content (debian-6.12 and a bisect tree) share hits.
    pub(super) fn make(&self, src: &Path, build_dir: &Path) -> Command {
        let mut cmd = Command::new("nice");
        cmd.env("KBUILD_BUILD_TIMESTAMP", "1970-01-01 00:00:00 UTC")
            .env("KBUILD_BUILD_USER", "rig")
            .env("KBUILD_BUILD_HOST", "rig")
            .env("KBUILD_BUILD_VERSION", "1");
        if self.toolchain.ccache {
            if let Some(work_root) = build_dir.parent().and_then(Path::parent) {
                cmd.env("CCACHE_BASEDIR", work_root)
                    .env("CCACHE_NOHASHDIR", "1");
            }
        }
        cmd.args(["-n", "10", "make"])
            .arg("-C")
            .arg(src)
            .arg(format!("O={}", build_dir.display()))
            .arg(format!("ARCH={}", make_arch(self.req.arch)))
            .arg(format!("CC={}", self.toolchain.cc()))
            .arg(format!("-j{}", jobs()));
        if let Some(prefix) = self.req.arch.cross_compile() {
            cmd.arg(format!("CROSS_COMPILE={prefix}"));
        }
        cmd
    }
}

/// A key label's kind for `path`: `project-KIND` when the project named it, else `KIND`.
fn label_kind(path: &Path, project: &[PathBuf], kind: &str) -> String {
    if project.iter().any(|p| p == path) {
        format!("project-{kind}")
    } else {
        kind.to_string()
    }
}

/// The file names of `paths`, space-separated (for progress lines and provenance).
pub(super) fn file_names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| file_name(p))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(super) fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> KbuildError {
    let what = what.to_string();
    let path = path.to_path_buf();
    move |source| KbuildError::Io { what, path, source }
}

#[cfg(test)]
mod tests {
    use super::super::{kconfig, Series};
    use super::*;
    use crate::host::board::Arch;
    use crate::project::KernelInputs;
    use std::fs;

    /// A plan for rig-6.12 from rig's own assets, a stand-in tarball and compiler.
    fn plan(project: KernelInputs, tarball: &Path) -> Plan {
        let req = BuildRequest {
            arch: Arch::X86_64,
            source: Source::Debian(Series::V6_12),
            flavor: String::new(),
            project,
        };
        Plan::with_toolchain(&req, &crate::repo_root(), tarball, || {
            Ok(Toolchain {
                gcc: "gcc".into(),
                ccache: false,
                version: "gcc (stand-in) 1".into(),
            })
        })
        .unwrap()
    }

    #[test]
    fn project_inputs_follow_the_flavors_and_enter_the_key() {
        let d = tempfile::tempdir().unwrap();
        let tarball = d.path().join("linux-source.tar.xz");
        fs::write(&tarball, "stand-in").unwrap();
        let frag = d.path().join("mine.config");
        let patch = d.path().join("0001-mine.patch");
        fs::write(&frag, "CONFIG_MINE=y\n").unwrap();
        fs::write(&patch, "--- a/x\n+++ b/x\n").unwrap();

        let without = plan(KernelInputs::default(), &tarball);
        let k0 = without.key().unwrap().hex();
        // Made twice without a project: the same key (what keys_tests.rs pins for the assets).
        assert_eq!(
            plan(KernelInputs::default(), &tarball).key().unwrap().hex(),
            k0
        );

        let with_frag = plan(
            KernelInputs {
                fragments: vec![frag.clone()],
                patches: vec![],
            },
            &tarball,
        );
        assert_eq!(with_frag.fragments.last(), Some(&frag));
        assert_eq!(
            &with_frag.fragments[..without.fragments.len()],
            &without.fragments[..]
        );
        assert_eq!(with_frag.patches, without.patches);
        let kf = with_frag.key().unwrap().hex();
        assert_ne!(kf, k0);

        let both = plan(
            KernelInputs {
                fragments: vec![frag.clone()],
                patches: vec![patch.clone()],
            },
            &tarball,
        );
        assert_eq!(both.patches.last(), Some(&patch));
        assert!(file_names(&both.fragments).ends_with("mine.config"));
        assert!(file_names(&both.patches).ends_with("0001-mine.patch"));
        let kb = both.key().unwrap().hex();
        assert_ne!(kb, kf);
        assert_ne!(kb, k0);

        // By content: an edited project file is a new key, the old content the old one.
        fs::write(&frag, "CONFIG_MINE=m\n").unwrap();
        assert_ne!(both.key().unwrap().hex(), kb);
        fs::write(&frag, "CONFIG_MINE=y\n").unwrap();
        assert_eq!(both.key().unwrap().hex(), kb);
        fs::write(&patch, "--- a/y\n+++ b/y\n").unwrap();
        assert_ne!(both.key().unwrap().hex(), kb);
        // And the plan without them never read them.
        assert_eq!(without.key().unwrap().hex(), k0);
    }

    #[test]
    fn a_dropped_option_names_the_projects_fragment() {
        let d = tempfile::tempdir().unwrap();
        let tarball = d.path().join("linux-source.tar.xz");
        fs::write(&tarball, "stand-in").unwrap();
        let frag = d.path().join("mine.config");
        fs::write(&frag, "CONFIG_MINE=y\n").unwrap();
        let p = plan(
            KernelInputs {
                fragments: vec![frag.clone()],
                patches: vec![],
            },
            &tarball,
        );
        let mut reqs = Vec::new();
        for f in &p.fragments {
            let text = fs::read_to_string(f).unwrap();
            reqs.extend(kconfig::parse_fragment(&p.fragment_label(f), &text));
        }
        let first = &p.fragments[0];
        assert_eq!(p.fragment_label(first), file_name(first));
        let dropped = kconfig::check(&reqs, "# CONFIG_MINE is not set\n");
        let mine: Vec<_> = dropped
            .iter()
            .filter(|d| d.option == "CONFIG_MINE")
            .collect();
        assert_eq!(mine.len(), 1, "{dropped:?}");
        assert_eq!(mine[0].fragment, frag.display().to_string());
        let msg = mine[0].to_string();
        assert!(
            msg.contains(&frag.display().to_string()) && msg.contains("CONFIG_MINE=y"),
            "{msg}"
        );
        // rig's own fragments are still named by file name.
        assert!(dropped
            .iter()
            .filter(|d| d.option != "CONFIG_MINE")
            .all(|d| !d.fragment.contains('/')));
    }
}
