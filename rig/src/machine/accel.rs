//! Choosing the accelerator. KVM is used only when a short real boot under KVM reaches the guest's
//! init in time; otherwise TCG. On some hosts `/dev/kvm` exists but a KVM guest hangs, so the
//! probe is a real boot with a short deadline, and its verdict is cached per host.

use crate::host::artifacts::RunDir;
use crate::host::board::{Arch, Board};
use crate::host::cache::{Cache, CacheKey};
use crate::host::events::{Event, Events};
use crate::machine::qemu::Accel;
use crate::machine::spec::{AccelChoice, AccelDecision, MachineSpec};
use crate::machine::timeouts::Timeouts;
use crate::machine::vm::Vm;
use crate::machine::vm_config::VmConfig;
use crate::provision::BootImage;
use std::time::Duration;

/// The deadline for the KVM probe boot: a working KVM reaches init in about a second.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// Why KVM cannot even be tried, if so.
pub fn kvm_precondition(board: Board, host: Option<Arch>) -> Result<(), String> {
    if host != Some(board.arch()) {
        return Err(format!(
            "{} guest on a {} host",
            board.arch(),
            host.map(|a| a.to_string())
                .unwrap_or_else(|| "foreign".into())
        ));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm not usable: {e}"))
}

fn host_identity() -> String {
    let uts = rustix::system::uname();
    let field = |f: &std::ffi::CStr| String::from_utf8_lossy(f.to_bytes()).into_owned();
    format!("{} {}", field(uts.nodename()), field(uts.release()))
}

/// Picks the accelerator for `board`. `Auto` probes KVM once per host (cached) with a real boot of
/// `image`; explicit choices are honoured as given.
pub fn choose(
    choice: AccelChoice,
    board: Board,
    image: &BootImage,
    cache: &Cache,
    events: &Events,
) -> AccelDecision {
    let verdict = match choice {
        AccelChoice::Kvm => AccelDecision {
            accel: Accel::Kvm,
            reason: "--accel kvm".into(),
        },
        AccelChoice::Tcg => AccelDecision {
            accel: Accel::Tcg,
            reason: "--accel tcg".into(),
        },
        AccelChoice::Auto => match kvm_precondition(board, Arch::host()) {
            Err(why) => AccelDecision {
                accel: Accel::Tcg,
                reason: why,
            },
            Ok(()) => cached_probe(board, image, cache, events),
        },
    };
    events.emit(Event::AccelChosen {
        accel: verdict.accel.name().into(),
        reason: verdict.reason.clone(),
    });
    verdict
}

/// What decides whether this user can use KVM: `/dev/kvm`'s owner, group and mode, and the
/// process's user and groups. Part of the cached verdict's key, so a `chmod`, a new group or
/// another user probes again.
pub fn kvm_access_identity() -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = match std::fs::metadata("/dev/kvm") {
        Ok(m) => format!(
            "uid={} gid={} mode={:o}",
            m.uid(),
            m.gid(),
            m.mode() & 0o7777
        ),
        Err(e) => format!("absent ({})", e.kind()),
    };
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let mut groups: Vec<u32> = rustix::process::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    format!(
        "/dev/kvm {dev}; euid={euid} egid={egid} groups={}",
        groups.join(",")
    )
}

/// The cache key of the KVM verdict for `board` on this host as it is now.
fn verdict_key(board: Board) -> CacheKey {
    let mut key = CacheKey::new("accel-verdict");
    key.str("host", &host_identity())
        .str("kvm_access", &kvm_access_identity())
        .str("board", board.name())
        .str(
            "qemu",
            &crate::host::doctor::tool_version(board.qemu_binary()).unwrap_or_default(),
        );
    key
}

const VERDICT_FILE: &str = "verdict.json";

fn read_verdict(entry: &std::path::Path) -> Option<AccelDecision> {
    let text = std::fs::read_to_string(entry.join(VERDICT_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The cached KVM verdict for `board` on this host, if a probe has recorded one.
pub fn cached_decision(board: Board, cache: &Cache) -> Option<AccelDecision> {
    read_verdict(&cache.entry("accel", &verdict_key(board)))
}

/// Forgets every cached KVM verdict (`rig doctor --reprobe`): the next `auto` run probes again.
pub fn forget_decisions(cache: &Cache) -> std::io::Result<()> {
    match std::fs::remove_dir_all(cache.root().join("accel")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn cached_probe(board: Board, image: &BootImage, cache: &Cache, events: &Events) -> AccelDecision {
    let key = verdict_key(board);
    let read = read_verdict;
    let entry = cache.entry("accel", &key);
    if let Some(v) = read(&entry) {
        return AccelDecision {
            reason: format!("{} (cached verdict)", v.reason),
            ..v
        };
    }
    let probe_runs = cache.root().join("accel").join("probe-runs");
    let built = cache.get_or_build::<crate::host::cache::CacheError>("accel", &key, |dir| {
        let v = probe(board, image, &probe_runs, events);
        let _ = std::fs::write(
            dir.join(VERDICT_FILE),
            serde_json::to_string_pretty(&v).unwrap_or_default(),
        );
        Ok(())
    });
    built.ok().and_then(|d| read(&d)).unwrap_or(AccelDecision {
        accel: Accel::Tcg,
        reason: "KVM probe could not record a verdict".into(),
    })
}

/// Boots `image` under KVM with a short deadline; the console log stays in `dir`.
pub fn probe(
    board: Board,
    image: &BootImage,
    dir: &std::path::Path,
    events: &Events,
) -> AccelDecision {
    events.emit(Event::StepStarted {
        step: "kvm-probe".into(),
        detail: format!("booting under KVM for at most {PROBE_DEADLINE:?}"),
    });
    let run_dir = match RunDir::create_in(dir, "kvm-probe") {
        Ok(r) => r,
        Err(e) => {
            return AccelDecision {
                accel: Accel::Tcg,
                reason: format!("KVM probe could not start: {e}"),
            }
        }
    };
    let spec = MachineSpec::new(board, &image.kernel.name);
    let mut cfg = VmConfig::new(spec, Accel::Kvm, image.clone());
    cfg.timeouts = Timeouts {
        boot: PROBE_DEADLINE,
        ..Timeouts::NATIVE
    };
    let start = std::time::Instant::now();
    let verdict = match Vm::boot(&cfg, &run_dir, &Events::none()) {
        Ok(vm) => {
            vm.shutdown();
            AccelDecision {
                accel: Accel::Kvm,
                reason: format!("KVM probe booted in {:.1}s", start.elapsed().as_secs_f64()),
            }
        }
        Err(e) => AccelDecision {
            accel: Accel::Tcg,
            reason: format!(
                "KVM probe failed, falling back to TCG: {} (log: {})",
                probe_failure_summary(&e),
                run_dir.path().display()
            ),
        },
    };
    events.emit(Event::StepFinished {
        step: "kvm-probe".into(),
        elapsed: start.elapsed(),
        cached: false,
    });
    verdict
}

/// One line on why the probe boot failed: QEMU's own complaint when it died, else the error.
fn probe_failure_summary(e: &crate::machine::vm::VmError) -> String {
    match e {
        crate::machine::vm::VmError::QemuExited(q) => {
            let (status, stderr) = (&q.status, &q.stderr);
            let said = stderr
                .lines()
                .filter(|l| !crate::machine::vm::is_socket_wait_notice(l))
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            format!("QEMU exited ({status}): {said}")
        }
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_arch_never_tries_kvm() {
        let e = kvm_precondition(Board::Arm64Virt, Some(Arch::X86_64)).unwrap_err();
        assert!(e.contains("arm64 guest on a x86_64 host"), "{e}");
    }

    #[test]
    fn kvm_access_is_part_of_the_verdict_key() {
        let id = kvm_access_identity();
        assert!(id.starts_with("/dev/kvm "), "{id}");
        assert!(id.contains("euid="), "{id}");
        // The cached verdict is read back under the same key it was written with.
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::at(d.path());
        assert!(cached_decision(Board::X86_64Q35, &cache).is_none());
        let entry = cache.entry("accel", &verdict_key(Board::X86_64Q35));
        std::fs::create_dir_all(&entry).unwrap();
        let v = AccelDecision {
            accel: Accel::Tcg,
            reason: "probe failed".into(),
        };
        std::fs::write(entry.join(VERDICT_FILE), serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(
            cached_decision(Board::X86_64Q35, &cache).unwrap().reason,
            "probe failed"
        );
        forget_decisions(&cache).unwrap();
        assert!(cached_decision(Board::X86_64Q35, &cache).is_none());
        forget_decisions(&cache).unwrap();
    }

    #[test]
    fn choice_parsing() {
        assert_eq!("auto".parse::<AccelChoice>().unwrap(), AccelChoice::Auto);
        assert_eq!("tcg".parse::<AccelChoice>().unwrap(), AccelChoice::Tcg);
        assert!("hvf".parse::<AccelChoice>().is_err());
        for c in [AccelChoice::Auto, AccelChoice::Kvm, AccelChoice::Tcg] {
            assert_eq!(c.name().parse::<AccelChoice>().unwrap(), c);
        }
    }
}
