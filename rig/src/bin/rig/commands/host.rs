//! `rig doctor` and `rig setup`: the host tools rig needs.

use super::Ctx;
use crate::failure::{Infra, Result};
use crate::stdout::outln;
use rig::host::board::{Arch, Board};
use rig::host::doctor::Need;
use rig::host::exit;

/// `rig doctor`: every host tool with its version or its package, the KVM verdicts, the cache.
/// Exit 1 when a package for running or building kernels is missing.
pub(crate) fn doctor(cx: &Ctx, reprobe: bool) -> Result<i32> {
    let cache = &cx.cache;
    if reprobe {
        rig::machine::accel::forget_decisions(cache).infra_context(|| {
            format!("clearing cached KVM verdicts in {}", cache.root().display())
        })?;
        outln!("info     cached KVM verdicts cleared: the next `--accel auto` run probes again")?;
    }
    let statuses = rig::host::doctor::check_all();
    for s in &statuses {
        let need = serde_json::to_value(s.need)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        match &s.version {
            Some(v) => outln!("ok       {:<28} {:<9} {v}", s.name, need),
            None => outln!("MISSING  {:<28} {:<9} (apt: {})", s.name, need, s.package),
        }?;
    }
    let kvm = rig::machine::accel::kvm_precondition(Board::X86_64Q35, Arch::host());
    match kvm {
        Ok(()) => {
            outln!("info     /dev/kvm usable; `auto` probes it with a short boot (verdict cached)")
        }
        Err(e) => outln!("info     KVM unavailable ({e}); guests run under TCG"),
    }?;
    for board in Board::ALL {
        match rig::machine::accel::cached_decision(board, cache) {
            Some(d) => outln!(
                "info     {board}: cached verdict {} ({}); `rig doctor --reprobe` forgets it",
                d.accel.name(),
                d.reason
            ),
            None => outln!("info     {board}: no cached KVM verdict for this host and access"),
        }?;
    }
    outln!("info     cache: {}", cache.root().display())?;
    let missing = rig::host::doctor::missing_packages(&statuses, &[Need::Core, Need::Kbuild]);
    Ok(if missing.is_empty() {
        0
    } else {
        outln!(
            "\nmissing packages: {} (`rig setup --kbuild` installs them)",
            missing.join(" ")
        )?;
        1
    })
}

/// `rig setup`: installs the missing packages with apt, its transcript kept in the cache.
pub(crate) fn setup(cx: &Ctx, kbuild: bool, tests: bool) -> Result<i32> {
    let mut needs = vec![Need::Core, Need::Optional];
    if kbuild {
        needs.push(Need::Kbuild);
    }
    if tests {
        needs.push(Need::Tests);
    }
    let missing = rig::host::doctor::missing_packages(&rig::host::doctor::check_all(), &needs);
    if missing.is_empty() {
        eprintln!("rig: nothing to install");
    } else {
        eprintln!("rig: installing {}", missing.join(" "));
        let log = rig::prepare::setup_log(&cx.cache);
        for r in rig::host::doctor::install(&missing, &log)? {
            eprintln!("rig: {r}");
        }
        eprintln!("rig: installed; apt's transcript: {}", log.display());
    }
    Ok(exit::PASS)
}
