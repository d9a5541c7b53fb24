//! Everything a boot needs, built or fetched once and cached by content: kernels (Debian's, or
//! built by rig), the rootfs and the initramfs.
//!
//! [`kernel`] is the leaf both providers share (what a provisioned kernel is); this module is the
//! resolver above them: a kernel name → the provider that makes it → a bootable image.

pub mod image;
pub mod kbuild;
pub mod kernel;
pub mod overlay;

pub use kernel::{parse_kconfig, Kernel};

use crate::host::board::Arch;
use crate::host::cache::Cache;
use crate::host::events::Events;
use image::ImageError;
use kbuild::KbuildError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(
        "unknown kernel `{name}`: known kernels are debian-6.1, rig-6.12[-FLAVOR] and \
         tree:PATH[#FLAVOR] (a kernel source tree rig builds)"
    )]
    UnknownKernel { name: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Build(#[from] KbuildError),
    #[error(transparent)]
    Project(#[from] crate::project::ProjectError),
    #[error(
        "{project} names kernel fragments or patches (`kernel:`), but rig does not build \
         `{kernel}`: boot a kernel rig builds (rig-<SERIES>[-FLAVOR], tree:PATH[#FLAVOR]) or \
         run outside the project"
    )]
    ProjectNeedsBuild { kernel: String, project: PathBuf },
}

impl ProvisionError {
    /// The name or flavor asked for does not exist (bad input, not a provisioning failure).
    pub fn is_unknown_name(&self) -> bool {
        matches!(
            self,
            ProvisionError::UnknownKernel { .. }
                | ProvisionError::Build(
                    KbuildError::UnknownKernel { .. } | KbuildError::UnknownFlavor { .. }
                )
        )
    }
}

/// What a kernel name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// `debian-6.1`: Debian bookworm's package, pinned by `images/debian-6.1.json`.
    Debian61,
    /// `rig-<SERIES>[-FLAVOR]`: built by rig from Debian's linux-source-<SERIES>.
    Rig {
        series: kbuild::Series,
        flavor: String,
    },
    /// `tree:PATH[#FLAVOR]`: built by rig from a kernel source tree (bisect, your own tree).
    Tree { path: PathBuf, flavor: String },
}

impl KernelSpec {
    /// Parses a kernel name without provisioning anything: callers ask this first, so a typo is
    /// bad input before any host tool is installed or anything is built.
    pub fn parse(name: &str) -> Result<KernelSpec, ProvisionError> {
        if name == "debian-6.1" {
            return Ok(KernelSpec::Debian61);
        }
        if name.starts_with("rig-") {
            let (series, flavor) = kbuild::parse_kernel_name(name)?;
            return Ok(KernelSpec::Rig { series, flavor });
        }
        if let Some(rest) = name.strip_prefix("tree:") {
            let (path, flavor) = rest.split_once('#').unwrap_or((rest, ""));
            if !path.is_empty() {
                kbuild::flavor(flavor)?;
                return Ok(KernelSpec::Tree {
                    path: PathBuf::from(path),
                    flavor: flavor.to_string(),
                });
            }
        }
        Err(ProvisionError::UnknownKernel { name: name.into() })
    }

    /// The name of a tree kernel: `tree:PATH[#FLAVOR]`.
    pub fn tree_name(path: &std::path::Path, flavor: &str) -> String {
        if flavor.is_empty() {
            format!("tree:{}", path.display())
        } else {
            format!("tree:{}#{flavor}", path.display())
        }
    }

    /// Whether rig builds this kernel (and so needs the kernel build tools).
    pub fn is_built(&self) -> bool {
        !matches!(self, KernelSpec::Debian61)
    }
}

/// [`KernelSpec::parse`], for callers that only need to know the name is good.
pub fn check_kernel_name(name: &str) -> Result<(), ProvisionError> {
    KernelSpec::parse(name).map(drop)
}

/// The build request for `source` and `flavor` on `arch`, with the kernel inputs of the
/// working directory's project file ([`crate::project::discover`]): the one place a kernel
/// rig builds learns of the project, for [`resolve_kernel`] and `rig kernel build` alike.
pub fn build_request(
    arch: Arch,
    source: kbuild::Source,
    flavor: String,
) -> Result<kbuild::BuildRequest, ProvisionError> {
    let project = crate::project::discover()?;
    Ok(request_for(arch, source, flavor, project.as_ref()))
}

fn request_for(
    arch: Arch,
    source: kbuild::Source,
    flavor: String,
    project: Option<&crate::project::Project>,
) -> kbuild::BuildRequest {
    kbuild::BuildRequest {
        arch,
        source,
        flavor,
        project: project.map(|p| p.kernel.clone()).unwrap_or_default(),
    }
}

/// A kernel rig does not build cannot take the project's fragments and patches: refused
/// rather than booted without them.
fn refuse_unbuilt(
    name: &str,
    project: Option<&crate::project::Project>,
) -> Result<(), ProvisionError> {
    match project {
        Some(p) if !p.kernel.is_empty() => Err(ProvisionError::ProjectNeedsBuild {
            kernel: name.to_string(),
            project: p.file.clone(),
        }),
        _ => Ok(()),
    }
}

/// Refuses `name` when rig does not build it and the working directory's project names kernel
/// fragments or patches: what [`resolve_kernel`] would refuse, asked before host tools are set
/// up or anything is fetched.
pub fn check_project_kernel(name: &str) -> Result<(), ProvisionError> {
    if KernelSpec::parse(name)?.is_built() {
        return Ok(());
    }
    refuse_unbuilt(name, crate::project::discover()?.as_ref())
}

/// Resolves a kernel name for an arch, provisioning (download / build) on first use. A kernel
/// rig builds takes the project's `kernel:` inputs ([`build_request`]); `debian-6.1` is refused
/// while the project names any.
pub fn resolve_kernel(
    name: &str,
    arch: Arch,
    cache: &Cache,
    events: &Events,
) -> Result<Kernel, ProvisionError> {
    let spec = KernelSpec::parse(name)?;
    let project = crate::project::discover()?;
    let build = |source, flavor: String| {
        kbuild::build(
            &request_for(arch, source, flavor, project.as_ref()),
            cache,
            events,
        )
    };
    Ok(match spec {
        KernelSpec::Debian61 => {
            refuse_unbuilt(name, project.as_ref())?;
            image::debian::kernel(arch, cache, events)?
        }
        KernelSpec::Rig { series, flavor } => build(kbuild::Source::Debian(series), flavor)?,
        KernelSpec::Tree { path, flavor } => build(kbuild::Source::Tree(path), flavor)?,
    })
}

/// Everything needed to boot: a kernel and the initramfs built for it.
#[derive(Debug, Clone)]
pub struct BootImage {
    pub kernel: Kernel,
    pub initrd: PathBuf,
}

/// Resolves the kernel and builds (or reuses) its initramfs.
pub fn boot_image(
    kernel_name: &str,
    arch: Arch,
    cache: &Cache,
    events: &Events,
) -> Result<BootImage, ProvisionError> {
    let kernel = resolve_kernel(kernel_name, arch, cache, events)?;
    let initrd = image::initramfs::for_kernel(&kernel, cache, events)?;
    Ok(BootImage { kernel, initrd })
}

#[cfg(test)]
mod keys_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_checked_before_provisioning() {
        for good in ["debian-6.1", "rig-6.12", "rig-6.12-kasan"] {
            check_kernel_name(good).unwrap();
        }
        assert_eq!(
            KernelSpec::parse("tree:/src/linux#kasan").unwrap(),
            KernelSpec::Tree {
                path: "/src/linux".into(),
                flavor: "kasan".into()
            }
        );
        assert_eq!(
            KernelSpec::parse(&KernelSpec::tree_name(std::path::Path::new("/a"), "")).unwrap(),
            KernelSpec::Tree {
                path: "/a".into(),
                flavor: String::new()
            }
        );
        for bad in [
            "nope",
            "debian-6.2",
            "rig-6.12-nope",
            "rig-",
            "tree:",
            "tree:/x#nope",
        ] {
            let e = check_kernel_name(bad).unwrap_err();
            assert!(e.is_unknown_name(), "{bad}: {e}");
            let named = bad.rsplit('#').next().unwrap_or(bad);
            assert!(e.to_string().contains(named), "{e}");
        }
    }

    #[test]
    fn a_kernel_rig_does_not_build_is_refused_with_project_inputs() {
        use crate::host::exit::{Classify, ExitClass};
        let mut project = crate::project::Project {
            file: "/p/rig.yaml".into(),
            scenarios: vec![],
            matrix: None,
            kernel: Default::default(),
        };
        refuse_unbuilt("debian-6.1", None).unwrap();
        refuse_unbuilt("debian-6.1", Some(&project)).unwrap();
        let req = request_for(
            Arch::X86_64,
            kbuild::Source::Debian(kbuild::Series::V6_12),
            String::new(),
            Some(&project),
        );
        assert!(req.project.is_empty());
        project.kernel.patches.push("/p/0001.patch".into());
        let e = refuse_unbuilt("debian-6.1", Some(&project)).unwrap_err();
        assert_eq!(e.exit_class(), ExitClass::BadInput);
        let msg = e.to_string();
        assert!(
            msg.contains("/p/rig.yaml") && msg.contains("debian-6.1"),
            "{msg}"
        );
        let req = request_for(
            Arch::X86_64,
            kbuild::Source::Debian(kbuild::Series::V6_12),
            String::new(),
            Some(&project),
        );
        assert_eq!(req.project, project.kernel);
    }
}
