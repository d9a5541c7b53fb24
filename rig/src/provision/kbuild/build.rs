//! A kernel build on a cache miss: sync the working tree (pristine source + patches), seed and
//! configure the persistent `O=` directory, `make`, install image, vmlinux, config and modules
//! (rig's configfs overlay module included) into the cache entry.

use super::plan::{file_names, io_err, Plan};
use super::toolchain::make_arch;
use super::{
    kconfig, run, source, BuildRequest, KbuildError, CACHE_KIND, META, OF_CONFIGFS_DIR,
    OF_CONFIGFS_MODULE, PCI_OVERLAY_MODULE,
};
use crate::host::board::Arch;
use crate::host::cache::{sha256_file, Cache, CacheKey};
use crate::host::events::{Event, Events};
use crate::host::process::run_logged;
use crate::provision::kernel::{parse_kconfig, Kernel};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub(super) fn build_with(
    req: &BuildRequest,
    repo: &Path,
    tarball: &Path,
    cache: &Cache,
    events: &Events,
) -> Result<Kernel, KbuildError> {
    let plan = Plan::new(req, repo, tarball, true)?;
    let key = plan.key()?;
    let step = format!("kernel build {} ({})", plan.name, req.arch);
    let detail = || {
        Some(format!(
            "source {}, fragments {}, patches [{}], {}{}",
            req.source.label(),
            file_names(&plan.fragments),
            file_names(&plan.patches),
            plan.toolchain.version,
            if plan.toolchain.ccache {
                " via ccache"
            } else {
                ""
            }
        ))
    };
    let entry = cache.provision(CACHE_KIND, &key, events, &step, detail, |dir| {
        build_into(&plan, &key, dir, cache, events, &step)
    })?;
    load(&entry)
}

/// The part of a build that runs on a cache miss: fills `out` (the entry being built).
fn build_into(
    plan: &Plan,
    key: &CacheKey,
    out: &Path,
    cache: &Cache,
    events: &Events,
    step: &str,
) -> Result<(), KbuildError> {
    let area = source::work_area(&plan.req.source, cache);
    let _lock = source::AreaLock::acquire(&area, events, step)?;
    let logs = area.join("logs");
    fs::create_dir_all(&logs).map_err(io_err("cannot create log folder", &logs))?;
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    let log = logs.join(format!("{stamp}-{}.log", plan.build_dir_name()));

    let pristine = plan.pristine(cache, events)?;
    progress(events, step, "syncing the working source tree");
    let src = source::sync_work_tree(&area, &pristine, &plan.patches, &log)?;

    let build_dir = area.join(plan.build_dir_name());
    seed_build_dir(plan, &area, &build_dir, events, step)?;
    let config = configure(plan, &src, &area, &build_dir, &log, events, step)?;

    let mut make = plan.make(&src, &build_dir);
    make.arg("all");
    let t = Instant::now();
    // A build from an empty directory compiles what the last one of its kind did; an
    // incremental one has no known total.
    let full = !build_dir.join("vmlinux").exists();
    let count_file = area.join(format!("{}.files", plan.build_dir_name()));
    let total = full
        .then(|| fs::read_to_string(&count_file).ok()?.trim().parse().ok())
        .flatten();
    let compiled = run::run_make_counted(make, &log, step, events, total)?;
    if full {
        // Only an estimate for the next full build: losing it costs the bar its total.
        let _ = fs::write(&count_file, format!("{compiled}\n"));
    }
    progress(
        events,
        step,
        &format!("kernel compiled in {:.0}s", t.elapsed().as_secs_f64()),
    );

    let release = kernel_release(plan, &src, &build_dir)?;
    let image = install(plan, &src, &build_dir, out, &release, &log, events, step)?;

    let config_hash = sha256_file(&config)?;
    let mut provenance = BTreeMap::new();
    provenance.insert("source".to_string(), plan.req.source.label());
    provenance.insert("source_identity".to_string(), plan.identity.clone());
    provenance.insert("flavor".to_string(), plan.flavor.name.clone());
    provenance.insert("fragments".to_string(), file_names(&plan.fragments));
    provenance.insert("patches".to_string(), file_names(&plan.patches));
    if !plan.req.project.is_empty() {
        // The project's inputs by path (`fragments` and `patches` above name them too).
        let paths = |l: &[PathBuf]| {
            l.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        provenance.insert(
            "project_fragments".to_string(),
            paths(&plan.req.project.fragments),
        );
        provenance.insert(
            "project_patches".to_string(),
            paths(&plan.req.project.patches),
        );
    }
    provenance.insert("config_sha256".to_string(), config_hash);
    provenance.insert("toolchain".to_string(), plan.toolchain.version.clone());
    provenance.insert("cache_key".to_string(), key.hex());
    let kernel = Kernel {
        name: plan.name.clone(),
        arch: plan.req.arch,
        release,
        image: PathBuf::from(image),
        modules_root: PathBuf::from("modules"),
        config: PathBuf::from("config"),
        vmlinux: Some(PathBuf::from("vmlinux")),
        provenance,
    };
    fs::copy(&log, out.join("build.log")).map_err(io_err("cannot copy build log", &log))?;
    let meta = out.join(META);
    let text = serde_json::to_string_pretty(&kernel).map_err(|e| KbuildError::Corrupt {
        path: meta.clone(),
        detail: e.to_string(),
    })?;
    fs::write(&meta, text).map_err(io_err("cannot write kernel metadata", &meta))
}

fn progress(events: &Events, step: &str, message: &str) {
    events.emit(Event::StepProgress {
        step: step.to_string(),
        message: message.to_string(),
        fraction: None,
    });
}

/// A flavor's first build starts from a copy of the default flavor's build directory: kbuild
/// tracks which objects depend on which options and files, so only what the flavor's patches
/// and extra options touch recompiles (a flavor that changes compiler flags, like KASAN,
/// recompiles everything anyway).
fn seed_build_dir(
    plan: &Plan,
    area: &Path,
    build_dir: &Path,
    events: &Events,
    step: &str,
) -> Result<(), KbuildError> {
    if build_dir.exists() {
        return Ok(());
    }
    let default_dir = area.join(format!("build-{}-default", plan.req.arch));
    if !plan.flavor.name.is_empty() && default_dir.join("vmlinux").is_file() {
        progress(
            events,
            step,
            &format!("seeding the build directory from {}", default_dir.display()),
        );
        let tmp = build_dir.with_extension("seeding");
        let _ = fs::remove_dir_all(&tmp);
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(&default_dir).arg(&tmp);
        run_logged(cp, &area.join("logs/seed.log"))?;
        fs::rename(&tmp, build_dir).map_err(io_err("cannot seed build directory", build_dir))?;
    } else {
        fs::create_dir_all(build_dir)
            .map_err(io_err("cannot create build directory", build_dir))?;
    }
    Ok(())
}

/// Produces the final `.config` in a scratch config directory (so an unchanged config leaves
/// the build directory's `.config` — and its timestamps — alone), checks every fragment option
/// held, and installs it into the build directory when it differs. Returns its path.
pub(super) fn configure(
    plan: &Plan,
    src: &Path,
    area: &Path,
    build_dir: &Path,
    log: &Path,
    events: &Events,
    step: &str,
) -> Result<PathBuf, KbuildError> {
    progress(
        events,
        step,
        "configuring (tinyconfig + kvm_guest.config + fragments)",
    );
    let cfg_dir = area.join(format!("config-{}", plan.req.arch));
    fs::create_dir_all(&cfg_dir).map_err(io_err("cannot create config dir", &cfg_dir))?;
    let mut tiny = plan.make(src, &cfg_dir);
    tiny.arg("tinyconfig");
    run_logged(tiny, log)?;

    let mut merge = Command::new(src.join("scripts/kconfig/merge_config.sh"));
    merge
        .current_dir(src)
        .env("ARCH", make_arch(plan.req.arch))
        .arg("-m")
        .arg("-O")
        .arg(&cfg_dir)
        .arg(cfg_dir.join(".config"));
    let kvm = src.join("kernel/configs/kvm_guest.config");
    if kvm.is_file() {
        merge.arg(&kvm);
    }
    merge.args(&plan.fragments);
    run_logged(merge, log)?;
    let mut olddef = plan.make(src, &cfg_dir);
    olddef.arg("olddefconfig");
    run_logged(olddef, log)?;

    let final_cfg = cfg_dir.join(".config");
    let final_text =
        fs::read_to_string(&final_cfg).map_err(io_err("cannot read config", &final_cfg))?;
    let mut reqs = Vec::new();
    for f in &plan.fragments {
        let text = fs::read_to_string(f).map_err(io_err("cannot read fragment", f))?;
        reqs.extend(kconfig::parse_fragment(&plan.fragment_label(f), &text));
    }
    let dropped = kconfig::check(&reqs, &final_text);
    if !dropped.is_empty() {
        return Err(KbuildError::DroppedOptions {
            config: final_cfg,
            dropped,
        });
    }
    let target = build_dir.join(".config");
    let current = fs::read_to_string(&target).unwrap_or_default();
    if current != final_text {
        fs::write(&target, &final_text).map_err(io_err("cannot write config", &target))?;
    }
    Ok(target)
}

fn kernel_release(plan: &Plan, src: &Path, build_dir: &Path) -> Result<String, KbuildError> {
    let mut cmd = plan.make(src, build_dir);
    cmd.args(["-s", "kernelrelease"]);
    let release =
        |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = super::run::captured(&mut cmd, |out| {
        let r = release(out);
        !r.is_empty() && !r.contains(char::is_whitespace)
    })?;
    Ok(release(&out))
}

/// Copies the image, vmlinux, System.map and .config into `out`, installs the modules
/// (stripped) and rig's out-of-tree module into `out/modules/lib/modules/<release>/`, depmod'ed.
#[allow(clippy::too_many_arguments)]
fn install(
    plan: &Plan,
    src: &Path,
    build_dir: &Path,
    out: &Path,
    release: &str,
    log: &Path,
    events: &Events,
    step: &str,
) -> Result<&'static str, KbuildError> {
    let arch = plan.req.arch;
    let image = build_dir
        .join("arch")
        .join(arch.kernel())
        .join("boot")
        .join(arch.boot_image());
    for (from, to) in [
        (image, arch.boot_image()),
        (build_dir.join("vmlinux"), "vmlinux"),
        (build_dir.join("System.map"), "System.map"),
        (build_dir.join(".config"), "config"),
    ] {
        fs::copy(&from, out.join(to)).map_err(io_err("cannot copy build output", &from))?;
    }
    let config = fs::read_to_string(out.join("config"))
        .map_err(io_err("cannot read the kernel config", &out.join("config")))?;
    let boot = boot_file(arch, &config);
    if boot == PVH_IMAGE {
        // The ELF QEMU loads as it is (no decompressor): code and the PVH note, no symbols.
        let mut strip = Command::new("objcopy");
        strip
            .arg("--strip-all")
            .arg(out.join("vmlinux"))
            .arg(out.join(PVH_IMAGE));
        run_logged(strip, log)?;
    }

    progress(events, step, "installing modules");
    let modules = out.join("modules");
    let mut mi = plan.make(src, build_dir);
    mi.arg(format!("INSTALL_MOD_PATH={}", modules.display()))
        .arg("INSTALL_MOD_STRIP=1")
        .arg("DEPMOD=/bin/true")
        .arg("modules_install");
    run_logged(mi, log)?;

    progress(events, step, "building rig_of_configfs");
    // M= builds write next to the sources: build a fresh copy, never the repository's folder.
    let ext = build_dir.join("rig-ext").join(OF_CONFIGFS_DIR);
    let _ = fs::remove_dir_all(&ext);
    fs::create_dir_all(&ext).map_err(io_err("cannot create module build dir", &ext))?;
    for e in fs::read_dir(&plan.module_src)
        .map_err(io_err("cannot read module source", &plan.module_src))?
    {
        let e = e.map_err(io_err("cannot read module source", &plan.module_src))?;
        if e.path().is_file() {
            fs::copy(e.path(), ext.join(e.file_name()))
                .map_err(io_err("cannot copy module source", &e.path()))?;
        }
    }
    let mut mm = plan.make(src, build_dir);
    mm.arg(format!("M={}", ext.display())).arg("modules");
    run::run_make(mm, log, step, events)?;
    let mut mmi = plan.make(src, build_dir);
    mmi.arg(format!("M={}", ext.display()))
        .arg(format!("INSTALL_MOD_PATH={}", modules.display()))
        .arg("INSTALL_MOD_DIR=extra")
        .arg("INSTALL_MOD_STRIP=1")
        .arg("DEPMOD=/bin/true")
        .arg("modules_install");
    run_logged(mmi, log)?;

    let moddir = modules.join("lib/modules").join(release);
    // Symlinks back into the build area would drag the whole tree into an initramfs.
    for l in ["build", "source"] {
        let p = moddir.join(l);
        if p.symlink_metadata().is_ok() {
            fs::remove_file(&p).map_err(io_err("cannot remove symlink", &p))?;
        }
    }
    let mut depmod = Command::new("depmod");
    depmod
        .arg("-b")
        .arg(&modules)
        .arg("-F")
        .arg(out.join("System.map"))
        .arg(release);
    run_logged(depmod, log)?;
    for file in [
        format!("extra/{OF_CONFIGFS_MODULE}.ko"),
        format!("extra/{PCI_OVERLAY_MODULE}.ko"),
        "modules.dep".to_string(),
    ] {
        if !moddir.join(&file).is_file() {
            return Err(KbuildError::Corrupt {
                path: moddir,
                detail: format!("{file} missing after install"),
            });
        }
    }
    Ok(boot)
}

/// The x86_64 image rig boots when the kernel has a PVH entry point: QEMU starts it at that
/// entry with no real-mode setup and no decompression (~0.4-0.6 s of every TCG boot, bare QEMU,
/// interleaved boots); qboot passes it the PVH start info.
const PVH_IMAGE: &str = "vmlinux.pvh";

/// The file a build installs to boot: the stripped vmlinux for an x86_64 kernel with
/// `CONFIG_PVH`, else the architecture's compressed image.
fn boot_file(arch: Arch, config: &str) -> &'static str {
    let pvh = parse_kconfig(config).get("CONFIG_PVH").map(String::as_str) == Some("y");
    match arch {
        Arch::X86_64 if pvh => PVH_IMAGE,
        _ => arch.boot_image(),
    }
}

/// Reads `kernel.json` from an entry, turning its relative paths into absolute ones.
fn load(entry: &Path) -> Result<Kernel, KbuildError> {
    let meta = entry.join(META);
    let text = fs::read_to_string(&meta).map_err(io_err("cannot read kernel metadata", &meta))?;
    let mut k: Kernel = serde_json::from_str(&text).map_err(|e| KbuildError::Corrupt {
        path: meta.clone(),
        detail: e.to_string(),
    })?;
    k.image = entry.join(&k.image);
    k.modules_root = entry.join(&k.modules_root);
    k.config = entry.join(&k.config);
    k.vmlinux = k.vmlinux.map(|v| entry.join(v));
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_kernels_with_pvh_boot_their_stripped_vmlinux() {
        let pvh = "CONFIG_X86_64=y\nCONFIG_PVH=y\n";
        assert_eq!(boot_file(Arch::X86_64, pvh), "vmlinux.pvh");
        assert_eq!(
            boot_file(Arch::X86_64, "# CONFIG_PVH is not set\n"),
            "bzImage"
        );
        assert_eq!(boot_file(Arch::Arm64, pvh), "Image");
    }
}
