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

/// `rig kernel flavors`: the flavors rig can build, as kernel names.
pub(crate) fn flavors() -> Result<i32> {
    for f in kbuild::CATALOGUE {
        let name = kbuild::kernel_name(f.name);
        outln!("{name:<32} {}", f.about)?;
    }
    Ok(exit::PASS)
}

/// `rig kernel build`: builds (or finds in the cache) a kernel; prints where it is.
pub(crate) fn build(cx: &Ctx, a: KernelBuildArgs) -> Result<i32> {
    let events = cx.events(None);
    kbuild::flavor(&a.flavor)?;
    rig::prepare::ensure_host_tools(&[Need::Core, Need::Kbuild], !a.no_setup, &cx.cache, &events)?;
    let req = kbuild::BuildRequest {
        arch: a.arch,
        source: kbuild::Source::parse(&a.source),
        flavor: a.flavor,
    };
    let k = kbuild::build(&req, &cx.cache, &events)?;
    outln!("kernel  {} ({})", k.name, k.release)?;
    outln!("image   {}", k.image.display())?;
    outln!("config  {}", k.config.display())?;
    if let Some(v) = &k.vmlinux {
        outln!("vmlinux {}", v.display())?;
    }
    Ok(exit::PASS)
}
