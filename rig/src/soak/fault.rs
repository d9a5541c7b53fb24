//! The faults a soak injects, the moments and variants a run's fault can take, and which exit
//! codes are the right verdict for each. What one run looks like is drawn in [`super::plan`].

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::fmt;

/// One thing that goes wrong in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// QEMU SIGKILLed by someone else mid-step.
    QemuKill,
    /// QEMU SIGSTOPped mid-step (it hangs; nobody sends SIGCONT).
    QemuStop,
    /// The guest kernel panics mid-step (`echo c > /proc/sysrq-trigger`).
    GuestPanic,
    /// A guest command never returns while the console stays alive.
    GuestHang,
    /// The guest's command console goes silent mid-command (its shell stopped).
    ConsoleSilent,
    /// Random bytes (NULs, marker bytes, no newline at the end) on the console during a command.
    GarbageFlood,
    /// Thousands of printk lines during a command.
    PrintkFlood,
    /// QEMU's QMP socket file removed mid-run.
    QmpSocketGone,
    /// The ssh port taken by another process before QEMU binds it.
    SshPortTaken,
    /// The guest's dropbear killed mid-command over ssh.
    DropbearKilled,
    /// The artifacts directory on a (tiny, nearly) full filesystem.
    ArtifactsFull,
    /// Ctrl-C (SIGINT to rig's process group) at a random moment.
    Sigint,
    /// SIGTERM to rig at a random moment.
    Sigterm,
    /// Two rigs at once on the same empty cache (both need the same kernel and rootfs).
    TwoRigsEmptyCache,
    /// rig killed while it fills an empty cache, then a normal run on that cache.
    KillDuringCacheBuild,
    /// `rig reproduce` of a crafted bundle (a variant per run: [`BundleVariant`]).
    HostileBundle,
    /// A scenario with a device or object that would reach the host (a variant per run).
    HostileDevice,
    /// A kernel report, then the artifacts filesystem fills before `report.json` is written.
    ReportDiskFull,
    /// `rig run --repeat N` SIGKILLed during repetition k.
    KillAtRepetition,
    /// QEMU SIGSTOPped while rig waits for `DEVICE_DELETED` after `device_del`.
    QemuStopInQmpWait,
    /// The guest's dropbear killed by one child of a `parallel` while another runs over ssh.
    DropbearKilledInParallel,
    /// A `tree:` kernel whose git worktree gained an untracked, non-ignored file since the
    /// last run (the kernel must be rebuilt, not taken from the cache).
    TreeUntrackedFile,
}

impl Fault {
    pub const ALL: [Fault; 22] = [
        Fault::QemuKill,
        Fault::QemuStop,
        Fault::GuestPanic,
        Fault::GuestHang,
        Fault::ConsoleSilent,
        Fault::GarbageFlood,
        Fault::PrintkFlood,
        Fault::QmpSocketGone,
        Fault::SshPortTaken,
        Fault::DropbearKilled,
        Fault::ArtifactsFull,
        Fault::Sigint,
        Fault::Sigterm,
        Fault::TwoRigsEmptyCache,
        Fault::KillDuringCacheBuild,
        Fault::HostileBundle,
        Fault::HostileDevice,
        Fault::ReportDiskFull,
        Fault::KillAtRepetition,
        Fault::QemuStopInQmpWait,
        Fault::DropbearKilledInParallel,
        Fault::TreeUntrackedFile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::QemuKill => "qemu-kill",
            Fault::QemuStop => "qemu-stop",
            Fault::GuestPanic => "guest-panic",
            Fault::GuestHang => "guest-hang",
            Fault::ConsoleSilent => "console-silent",
            Fault::GarbageFlood => "garbage-flood",
            Fault::PrintkFlood => "printk-flood",
            Fault::QmpSocketGone => "qmp-socket-gone",
            Fault::SshPortTaken => "ssh-port-taken",
            Fault::DropbearKilled => "dropbear-killed",
            Fault::ArtifactsFull => "artifacts-full",
            Fault::Sigint => "sigint",
            Fault::Sigterm => "sigterm",
            Fault::TwoRigsEmptyCache => "two-rigs-empty-cache",
            Fault::KillDuringCacheBuild => "kill-during-cache-build",
            Fault::HostileBundle => "hostile-bundle",
            Fault::HostileDevice => "hostile-device",
            Fault::ReportDiskFull => "report-disk-full",
            Fault::KillAtRepetition => "kill-at-repetition",
            Fault::QemuStopInQmpWait => "qemu-stop-in-qmp-wait",
            Fault::DropbearKilledInParallel => "dropbear-killed-in-parallel",
            Fault::TreeUntrackedFile => "tree-untracked-file",
        }
    }

    /// What the right verdict is, for docs/soak.md and `rig soak --help`.
    pub fn expectation(self) -> &'static str {
        match self {
            Fault::QemuKill | Fault::QemuStop => "125 (host-side)",
            Fault::GuestPanic | Fault::GuestHang | Fault::ConsoleSilent => "1 (kernel-side)",
            Fault::GarbageFlood | Fault::PrintkFlood | Fault::QmpSocketGone => {
                "0 (the command's real result)"
            }
            Fault::SshPortTaken => "125 if taken after rig chose it, 0 if rig could avoid it",
            Fault::DropbearKilled | Fault::ArtifactsFull => "125 (host-side)",
            Fault::Sigint => "130",
            Fault::Sigterm => "143",
            Fault::TwoRigsEmptyCache => "0 and 0, each entry built once",
            Fault::KillDuringCacheBuild => "128+N, then 0 on the same cache",
            Fault::HostileBundle => {
                "2 (bad input); no canary, nothing written outside the unpack folder, no QEMU"
            }
            Fault::HostileDevice => "2 (bad input); no QEMU, no run folder",
            Fault::ReportDiskFull => "1 with `WARNING in rig_fake_teardown` printed",
            Fault::KillAtRepetition => {
                "137; report.json has the k-1 finished repetitions, `complete: false`"
            }
            Fault::QemuStopInQmpWait | Fault::DropbearKilledInParallel => "125 (host-side)",
            Fault::TreeUntrackedFile => "0, booted the kernel of the tree's new identity",
        }
    }

    /// Whether a run of the fault builds a kernel (the first one a whole kernel): too slow for
    /// the suite's short soak.
    pub fn builds_kernel(self) -> bool {
        self == Fault::TreeUntrackedFile
    }

    /// How long one child rig of the fault may take before the soak calls it hung.
    pub fn deadline(self) -> std::time::Duration {
        std::time::Duration::from_secs(if self.builds_kernel() {
            // A whole kernel build on a loaded 2-core host (the first run).
            90 * 60
        } else {
            8 * 60
        })
    }

    /// Whether the fault needs a fresh, empty cache.
    pub fn empty_cache(self) -> bool {
        matches!(self, Fault::TwoRigsEmptyCache | Fault::KillDuringCacheBuild)
    }

    /// Parses `a,b,c` (or `all`).
    pub fn parse_list(s: &str) -> Result<Vec<Fault>, UnknownFault> {
        let mut out = Vec::new();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "all" {
                out.extend(Fault::ALL);
                continue;
            }
            let f = Fault::ALL
                .into_iter()
                .find(|f| f.name() == word)
                .ok_or_else(|| UnknownFault {
                    name: word.to_string(),
                })?;
            out.push(f);
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            return Err(UnknownFault { name: s.into() });
        }
        Ok(out)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown fault `{name}` (known: {})", Fault::ALL.map(Fault::name).join(", "))]
pub struct UnknownFault {
    pub name: String,
}

/// A point in a child rig's life, read from its `events.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// The child was started.
    Spawned,
    /// Its first provisioning step began building.
    Building,
    /// QEMU was started.
    QemuSpawned,
    /// The guest printed RIG-READY.
    BootReady,
    /// Scenario step N (1-based) began.
    Step(usize),
    /// Repetition N (1-based) of a `--repeat` run began (`repetition N of M`).
    Repetition(usize),
    /// rig sent a QMP command whose progress line starts with this (`device_del`).
    Qmp(&'static str),
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anchor::Spawned => f.write_str("start"),
            Anchor::Building => f.write_str("cache build"),
            Anchor::QemuSpawned => f.write_str("QEMU start"),
            Anchor::BootReady => f.write_str("boot ready"),
            Anchor::Step(n) => write!(f, "step {n}"),
            Anchor::Repetition(n) => write!(f, "repetition {n}"),
            Anchor::Qmp(c) => write!(f, "QMP {c}"),
        }
    }
}

/// The seeded choices of one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Moment {
    /// The fault is a guest command that starts this long into the work step.
    InGuest { delay_s: f64 },
    /// The soak acts this long after `anchor`.
    After { anchor: Anchor, delay_s: f64 },
    /// A signal this long after `anchor`; `group`: to rig's process group (Ctrl-C), else its pid.
    Signal {
        signal: i32,
        group: bool,
        anchor: Anchor,
        delay_s: f64,
    },
    /// The artifacts filesystem has this much room left when rig starts.
    Headroom { kib: u64 },
    /// The port is taken before rig starts (rig must pick another) or as soon as rig chose it.
    Port { before_rig: bool },
    /// The second rig starts this long after the first.
    Offset { delay_s: f64 },
    /// `rig reproduce` is handed this crafted bundle.
    Bundle { variant: BundleVariant },
    /// The scenario holds this host-reaching device or object.
    Device { variant: String },
    /// A new untracked file in the tree before the run.
    Untracked { file: String },
}

/// What is wrong with a hostile bundle. Everything else in it is a valid run of a short
/// scenario on the soak's board and kernel, so rig would boot it if it missed the flaw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BundleVariant {
    /// The record's kernel is `tree:PATH`, PATH a tree whose Makefile and `merge_config.sh`
    /// create a canary file; replayed without `--tree`.
    TreeKernel,
    /// The same, with `--tree PATH` (whose identity is not the recorded one).
    TreeKernelNamed,
    /// `scenario.copy` is an absolute path (to a valid scenario outside the bundle).
    CopyAbsolute,
    /// `scenario.copy` climbs out of the bundle with `..` (to the same scenario).
    CopyDotDot,
    /// An entry of 300 MiB of zeros (~300 KiB packed).
    GzipBomb,
    /// An entry `scenario` that is a symbolic link out of the bundle, then a file through it.
    SymlinkEntry,
    /// An entry `../../outside/pwned`.
    DotDotEntry,
    /// `repeat` of a billion.
    HugeRepeat,
    /// `memory_mib` of a TiB.
    HugeMemory,
}

impl BundleVariant {
    pub const ALL: [BundleVariant; 9] = [
        BundleVariant::TreeKernel,
        BundleVariant::TreeKernelNamed,
        BundleVariant::CopyAbsolute,
        BundleVariant::CopyDotDot,
        BundleVariant::GzipBomb,
        BundleVariant::SymlinkEntry,
        BundleVariant::DotDotEntry,
        BundleVariant::HugeRepeat,
        BundleVariant::HugeMemory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BundleVariant::TreeKernel => "tree-kernel",
            BundleVariant::TreeKernelNamed => "tree-kernel-named",
            BundleVariant::CopyAbsolute => "copy-absolute",
            BundleVariant::CopyDotDot => "copy-dotdot",
            BundleVariant::GzipBomb => "gzip-bomb",
            BundleVariant::SymlinkEntry => "symlink-entry",
            BundleVariant::DotDotEntry => "dotdot-entry",
            BundleVariant::HugeRepeat => "huge-repeat",
            BundleVariant::HugeMemory => "huge-memory",
        }
    }

    /// Whether rig refuses it while unpacking (it must then leave no unpack folder behind).
    pub fn refused_at_unpack(self) -> bool {
        matches!(
            self,
            BundleVariant::GzipBomb | BundleVariant::SymlinkEntry | BundleVariant::DotDotEntry
        )
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::InGuest { delay_s } => write!(f, "in the guest {delay_s:.1}s into step 1"),
            Moment::After { anchor, delay_s } => write!(f, "{anchor} + {delay_s:.1}s"),
            Moment::Signal {
                signal,
                group,
                anchor,
                delay_s,
            } => write!(
                f,
                "signal {signal} to {} at {anchor} + {delay_s:.1}s",
                if *group { "the group" } else { "rig" }
            ),
            Moment::Headroom { kib } => write!(f, "{kib} KiB free"),
            Moment::Port { before_rig: true } => f.write_str("taken before rig started"),
            Moment::Port { before_rig: false } => f.write_str("taken once rig chose it"),
            Moment::Offset { delay_s } => write!(f, "second rig {delay_s:.1}s later"),
            Moment::Bundle { variant } => write!(f, "bundle: {}", variant.name()),
            Moment::Device { variant } => write!(f, "scenario: {variant}"),
            Moment::Untracked { file } => write!(f, "untracked {file}"),
        }
    }
}

/// One planned run: which fault, when, and the scenario the child rig runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub index: usize,
    pub fault: Fault,
    pub seed: u64,
    pub moment: Moment,
    /// `rig run --repeat` (1: not given).
    pub repeat: u32,
    #[serde(skip)]
    pub scenario: String,
}

/// The faults of runs `0..runs`: every fault in turn, each round in a seeded order, so every
/// fault gets `runs / faults` runs (one more for the first few).
pub fn schedule(faults: &[Fault], runs: usize, seed: u64) -> Vec<Fault> {
    let mut out = Vec::with_capacity(runs);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    while out.len() < runs {
        let mut round = faults.to_vec();
        round.shuffle(&mut rng);
        out.extend(round.into_iter().take(runs - out.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_strictly() {
        assert_eq!(
            Fault::parse_list("qemu-kill, sigint,qemu-kill").unwrap(),
            vec![Fault::QemuKill, Fault::Sigint]
        );
        assert_eq!(Fault::parse_list("all").unwrap().len(), Fault::ALL.len());
        let e = Fault::parse_list("qemu-kil").unwrap_err();
        assert!(e.to_string().contains("unknown fault `qemu-kil`"), "{e}");
        assert!(Fault::parse_list(" , ").is_err());
    }

    #[test]
    fn the_schedule_spreads_runs_evenly_over_the_faults() {
        let runs = 7 * Fault::ALL.len() + 3;
        let s = schedule(&Fault::ALL, runs, 1);
        assert_eq!(s.len(), runs);
        for f in Fault::ALL {
            let n = s.iter().filter(|&&x| x == f).count();
            assert!((7..=8).contains(&n), "{f}: {n}");
        }
        assert_eq!(schedule(&Fault::ALL, runs, 1), s);
        assert_ne!(schedule(&Fault::ALL, runs, 2), s);
    }
}
