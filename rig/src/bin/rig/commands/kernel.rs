//! `rig fetch` and `rig kernel`: kernels provisioned, built and listed.

use super::Ctx;
use crate::args::{KernelBuildArgs, Target};
use crate::failure::Result;
use crate::stdout::outln;
use rig::host::doctor::Need;
use rig::host::exit;
use rig::provision::kbuild;

/// `rig fetch`: the kernel and its initramfs, provisioned; prints where they are.
pub(crate) fn fetch(cx: &Ctx, target: &Target) -> Result<i32> {
    let events = cx.events(None);
    rig::provision::check_project_kernel(&target.kernel)?;
    rig::prepare::ensure_host_tools(
        &rig::prepare::needs_for_kernel(&target.kernel),
        target.auto_setup(),
        &cx.cache,
        &events,
    )?;
    let img = rig::provision::boot_image(&target.kernel, target.board.arch(), &cx.cache, &events)?;
    outln!("kernel  {}", img.kernel.image.display())?;
    outln!("release {}", img.kernel.release)?;
    outln!("initrd  {}", img.initrd.display())?;
    for (k, v) in &img.kernel.provenance {
        outln!("{k:<7} {v}")?;
    }
    Ok(exit::PASS)
}

/// `rig kernel list` (alias `flavors`): every kernel name rig boots, with its version and
/// what it is for.
pub(crate) fn list() -> Result<i32> {
    let debian = rig::provision::image::debian::pin(rig::host::board::Arch::X86_64)
        .map(|p| format!("Debian {}", p.version))
        .unwrap_or_else(|e| format!("(pin unreadable: {e})"));
    outln!(
        "{:<40} {debian}, Debian bookworm's own kernel image",
        rig::provision::image::debian::NAME
    )?;
    for series in kbuild::Series::ALL {
        let version = match kbuild::series::pin(series, &rig::repo_root()) {
            Ok(Some(p)) => format!("Linux {series}, Debian {}", p.version),
            Ok(None) => format!("Linux {series}, the host's linux-source-{series}"),
            Err(e) => format!("Linux {series} (pin unreadable: {e})"),
        };
        for f in kbuild::CATALOGUE {
            let name = kbuild::kernel_name(series, f.name);
            outln!("{name:<40} {version}: {}", f.about)?;
        }
    }
    outln!(
        "{:<40} built from your kernel tree at PATH (git or not), any flavor above",
        "tree:PATH[#FLAVOR]"
    )?;
    Ok(exit::PASS)
}

/// `rig kernel build`: builds (or finds in the cache) a kernel; prints where it is.
pub(crate) fn build(cx: &Ctx, a: KernelBuildArgs) -> Result<i32> {
    let events = cx.events(None);
    kbuild::flavor(&a.flavor)?;
    // The project file is read (its fragments and patches checked) before any setup.
    let req = rig::provision::build_request(a.arch, kbuild::Source::parse(&a.source), a.flavor)?;
    rig::prepare::ensure_host_tools(&[Need::Core, Need::Kbuild], !a.no_setup, &cx.cache, &events)?;
    let k = kbuild::build(&req, &cx.cache, &events)?;
    outln!("kernel  {} ({})", k.name, k.release)?;
    outln!("image   {}", k.image.display())?;
    outln!("config  {}", k.config.display())?;
    if let Some(v) = &k.vmlinux {
        outln!("vmlinux {}", v.display())?;
    }
    Ok(exit::PASS)
}
