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
    pub(super) fragments: Vec<PathBuf>,
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
        let fragments = fragment_files(&repo.join("images/kconfig"), &flavor, req.arch, series)?;
        let mut patches = Vec::new();
        for set in &flavor.patch_sets {
            patches.extend(patches::patch_files(&patch_set_dir(
                &repo.join("images/patches"),
                series,
                set,
            ))?);
        }
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
        for f in &self.fragments {
            k.file(&format!("fragment/{}", file_name(f)), f)?;
        }
        for p in &self.patches {
            k.file(&format!("patch/{}", file_name(p)), p)?;
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
