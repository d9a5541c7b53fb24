//! The command line: every subcommand and its flags (clap); `rig bench`'s in `bench.rs`.

pub(crate) mod bench;

use clap::{Parser, Subcommand};
use rig::guest::transport::{old_hvc_notice, Via, OLD_HVC_NAME};
use rig::host::board::{Arch, Board};
use rig::host::events::Events;
use rig::machine::spec::{AccelChoice, MachineSpec};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "rig",
    version,
    about = "Boot Linux kernels on QEMU boards and drive teardown paths until they break"
)]
pub(crate) struct Cli {
    /// Cache directory (default: $RIG_CACHE_DIR, else $XDG_CACHE_HOME/rig, else ~/.cache/rig).
    #[arg(long, global = true)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// More progress detail (QEMU argv, guest commands, QMP commands).
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(clap::Args, Clone)]
pub(crate) struct Target {
    /// Board: x86_64-q35 or arm64-virt.
    #[arg(long)]
    pub(crate) board: Board,
    /// Kernel: debian-6.1, rig-7.3[-FLAVOR], rig-6.12[-FLAVOR], or tree:PATH[#FLAVOR] (built
    /// from your kernel tree); `rig kernel list` names them all.
    #[arg(long, default_value = "debian-6.1")]
    pub(crate) kernel: String,
    /// Accelerator: auto (probe KVM, fall back to TCG), kvm, tcg.
    #[arg(long, default_value = "auto")]
    pub(crate) accel: AccelChoice,
    /// Extra kernel command-line parameters (repeatable).
    #[arg(long = "cmdline")]
    pub(crate) cmdline: Vec<String>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = rig::host::board::DEFAULT_MEMORY_MIB)]
    pub(crate) memory: u64,
    /// Never install missing host packages; fail instead.
    #[arg(long)]
    pub(crate) no_setup: bool,
}

impl Target {
    /// The machine these flags ask for (`--no-setup` is not part of it: [`Self::auto_setup`]).
    pub(crate) fn machine_spec(&self) -> MachineSpec {
        let mut spec = MachineSpec::new(self.board, &self.kernel);
        spec.accel = self.accel;
        spec.cmdline = self.cmdline.clone();
        spec.memory_mib = self.memory;
        spec
    }

    /// Whether missing host tools may be installed.
    pub(crate) fn auto_setup(&self) -> bool {
        !self.no_setup
    }
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Report the host tools rig needs, with versions, what is missing, and the cached KVM verdict.
    Doctor {
        /// Forget the cached KVM verdicts: the next `--accel auto` run probes KVM again.
        #[arg(long)]
        reprobe: bool,
    },
    /// Install missing host tools with apt (Debian/Ubuntu, root or sudo).
    Setup {
        /// Also the tools for building kernels.
        #[arg(long)]
        kbuild: bool,
        /// Also the test suite's tools.
        #[arg(long)]
        tests: bool,
    },
    /// Boot, run CMD in the guest, print its output and return its exit status.
    Boot(BootArgs),
    /// Boot and attach an interactive console (Ctrl-] quits).
    Console {
        #[command(flatten)]
        target: Target,
    },
    /// Provision a kernel and its initramfs without booting (prints where they are).
    Fetch {
        #[command(flatten)]
        target: Target,
    },
    /// Run a scenario: boot, run its steps, analyze the kernel log, print a verdict.
    /// Exit 0 pass, 1 kernel failure, 2 bad input (incl. a kernel that lacks what it requires),
    /// 125 rig could not run it.
    Run(RunArgs),
    /// Find kernel reports (splats) in a saved console log or dmesg and give each a stable title.
    Analyze(AnalyzeArgs),
    /// Validate scenario files (strict: file:line:column and field path for every error).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Find the first bad kernel commit for a scenario: endpoints checked, runs per commit from
    /// the measured reproduction rate, build failures skipped, a confidence figure.
    /// Exit 0 culprit found, 1 inconclusive, 2 bad input, 125 infra.
    Bisect(BisectArgs),
    /// The test matrix (scenarios/matrix.yaml): board × kernel × scenario cells of a named set.
    Matrix {
        #[command(subcommand)]
        what: MatrixCmd,
    },
    /// Re-run a recorded run (a run folder or a bundle) with the same scenario, kernel and seed.
    /// Prints `reproduced: <title> in k of N runs` or `did not reproduce in N runs`.
    /// Exit 1 when the original failure reproduced, 0 when it did not, 2 bad input, 125 infra
    /// (also when none of the runs could run).
    Reproduce(ReproduceArgs),
    /// Summarize runs and matrices: one row per cell, failures first, with console excerpts.
    Report(ReportArgs),
    /// Kernel builds.
    Kernel {
        #[command(subcommand)]
        what: KernelCmd,
    },
    /// Soak: real boots of short scenarios, one fault per run at a seeded random moment; checks
    /// the exit code class, leaked processes, artifacts and cache. Prints the table; exit 1 on
    /// any misfiled verdict, leak or missing evidence.
    Soak(SoakArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCmd,
    },
}

#[derive(clap::Args)]
pub(crate) struct BootArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// How to reach the guest: hvc (the command shell on the guest's virtio console) or ssh.
    #[arg(long, default_value = "hvc")]
    pub(crate) transport: TransportArg,
    /// Timeout for CMD.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// The command and its arguments, run exactly as this argv (each argument stays one word;
    /// use `-- sh -c '…'` for shell syntax).
    #[arg(last = true, required = true)]
    pub(crate) cmd: Vec<String>,
}

/// `--transport`: which way into the guest, and whether it was given by its old name
/// (`serial`, still accepted with a deprecation notice).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransportArg {
    via: Via,
    old_name: bool,
}

impl std::str::FromStr for TransportArg {
    type Err = rig::host::board::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(TransportArg {
            via: s.parse()?,
            old_name: s == OLD_HVC_NAME,
        })
    }
}

impl TransportArg {
    /// The transport; given by its old name, a deprecation warning first.
    pub(crate) fn via(self, events: &Events) -> Via {
        if self.old_name {
            events.warn(old_hvc_notice(
                &format!("`--transport {OLD_HVC_NAME}`"),
                &format!("`--transport {}`", Via::Hvc.name()),
            ));
        }
        self.via
    }
}

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The scenario file (scenarios/*.yaml).
    pub(crate) scenario: PathBuf,
    #[command(flatten)]
    pub(crate) target: Target,
    /// Repeat N times, each on a fresh boot; prints "reproduced in k of N runs" per title.
    #[arg(long, default_value_t = 1)]
    pub(crate) repeat: u32,
    /// Print the result as JSON (report.json is written either way).
    #[arg(long)]
    pub(crate) json: bool,
    /// The seed for everything random in the run (`stagger` delays); default: a fresh one,
    /// printed and kept in the run folder.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Boot once, save the guest's state at its ready shell (QEMU migration to a file) and
    /// start every repetition from it instead of booting. Scenarios that use hvc only.
    #[arg(long)]
    pub(crate) snapshot: bool,
    /// Keep the guest's memory of a failed run as `vmcore.gz` (with the gdb command that opens
    /// it): dumped when the guest panics, at the first unexpected report, or when a failed run
    /// ends.
    #[arg(long, value_enum, default_value = "on-failure")]
    pub(crate) vmcore: rig::run::Vmcore,
}

#[derive(clap::Args)]
pub(crate) struct AnalyzeArgs {
    pub(crate) log: PathBuf,
    /// One JSON object with a `reports` array.
    #[arg(long)]
    pub(crate) json: bool,
    /// Per report: the lines that started and ended it, the frames skipped and why, the
    /// frame chosen for the title.
    #[arg(long, conflicts_with = "json")]
    pub(crate) explain: bool,
    /// Symbolize frames with this vmlinux (addr2line); `--arch` picks the toolchain.
    #[arg(long)]
    pub(crate) vmlinux: Option<PathBuf>,
    #[arg(long, default_value = "x86_64")]
    pub(crate) arch: Arch,
}

#[derive(clap::Args)]
pub(crate) struct BisectArgs {
    /// The kernel git tree (never modified: rig bisects in a worktree of its own).
    #[arg(long)]
    pub(crate) tree: PathBuf,
    #[arg(long)]
    pub(crate) good: String,
    #[arg(long)]
    pub(crate) bad: String,
    /// The scenario file.
    #[arg(long)]
    pub(crate) scenario: PathBuf,
    #[arg(long)]
    pub(crate) board: Board,
    /// Kernel flavor (fragments and patches) for every build.
    #[arg(long, default_value = "")]
    pub(crate) flavor: String,
    /// Runs per commit (default: enough that a bad commit is missed with probability ≤ 1 %
    /// at the bad endpoint's measured rate).
    #[arg(long)]
    pub(crate) runs: Option<u32>,
    /// The report title that makes a commit bad (default: the bad endpoint's most frequent).
    #[arg(long)]
    pub(crate) title: Option<String>,
    /// Continue an interrupted bisect from its log.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Revert the culprit on top of --bad and show the title is gone.
    #[arg(long)]
    pub(crate) verify_revert: bool,
    /// Below this confidence the result is inconclusive (exit 1).
    #[arg(long, default_value_t = 0.9)]
    pub(crate) min_confidence: f64,
    #[arg(long, default_value = "auto")]
    pub(crate) accel: AccelChoice,
}

#[derive(clap::Args)]
pub(crate) struct ReproduceArgs {
    /// A run folder (`rig-runs/…`) or a bundle (`*.tar.gz`).
    pub(crate) path: PathBuf,
    /// Runs, each on a fresh boot (default: as many as the recorded run had).
    #[arg(long)]
    pub(crate) repeat: Option<u32>,
    /// For a run on a `tree:` kernel: the kernel source tree to build it from. Its source
    /// identity must be the recorded one; rig never builds the tree a record names by itself.
    #[arg(long, conflicts_with = "bundle")]
    pub(crate) tree: Option<PathBuf>,
    /// Write a self-contained bundle of the run instead of running it.
    #[arg(long)]
    pub(crate) bundle: Option<PathBuf>,
    /// Never install missing host packages; fail instead.
    #[arg(long)]
    pub(crate) no_setup: bool,
    /// Keep the guest's memory of a failed replay (as `rig run --vmcore`).
    #[arg(
        long,
        value_enum,
        default_value = "on-failure",
        conflicts_with = "bundle"
    )]
    pub(crate) vmcore: rig::run::Vmcore,
}

#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// Run folders, matrix folders, or folders holding them (searched recursively).
    #[arg(required = true)]
    pub(crate) dirs: Vec<PathBuf>,
    /// Markdown (for CI summaries) instead of text.
    #[arg(long)]
    pub(crate) markdown: bool,
    /// JSON instead of text (the input of --baseline).
    #[arg(long, conflicts_with = "markdown")]
    pub(crate) json: bool,
    /// Also write one static HTML page here.
    #[arg(long)]
    pub(crate) html: Option<PathBuf>,
    /// Also write JUnit XML here (skipped cells carry their reason).
    #[arg(long)]
    pub(crate) junit: Option<PathBuf>,
    /// A previous `rig report --json`: list the failures it did not have.
    #[arg(long)]
    pub(crate) baseline: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct SoakArgs {
    #[arg(long, default_value_t = 15)]
    pub(crate) runs: usize,
    /// Faults, comma-separated, or `all`: qemu-kill, qemu-stop, guest-panic, guest-hang,
    /// console-silent, garbage-flood, printk-flood, qmp-socket-gone, ssh-port-taken,
    /// dropbear-killed, artifacts-full, sigint, sigterm, two-rigs-empty-cache,
    /// kill-during-cache-build, hostile-bundle, hostile-device, report-disk-full,
    /// kill-at-repetition, qemu-stop-in-qmp-wait, dropbear-killed-in-parallel,
    /// tree-untracked-file (builds a `tree:` kernel; the first run a whole one).
    #[arg(long, default_value = "all")]
    pub(crate) faults: String,
    /// Runs at once.
    #[arg(long, default_value_t = 1)]
    pub(crate) parallel: usize,
    /// Seed of every random choice (default: from the clock; printed, and in soak.jsonl).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    #[arg(long, default_value = "arm64-virt")]
    pub(crate) board: Board,
    #[arg(long, default_value = "debian-6.1")]
    pub(crate) kernel: String,
    #[arg(long, default_value = "auto")]
    pub(crate) accel: AccelChoice,
    /// The rig binary the runs use (default: this one): the soak's faults and checks against
    /// another build of rig, such as the last release.
    #[arg(long)]
    pub(crate) child_rig: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum KernelCmd {
    /// Build a kernel (cached by source, config, patches and toolchain).
    Build(KernelBuildArgs),
    /// List every kernel rig can boot, with its version and what it is for.
    #[command(alias = "flavors")]
    List,
}

#[derive(clap::Args)]
pub(crate) struct KernelBuildArgs {
    #[arg(long)]
    pub(crate) arch: Arch,
    /// `debian-7.3` (Debian's linux-source-7.3, fetched and pinned; the default), `debian-6.12`
    /// (the host's linux-source-6.12) or a path to a kernel tree / git worktree.
    #[arg(long, default_value = "debian-7.3")]
    pub(crate) source: String,
    /// Flavor: default (empty) or a name from `rig kernel list`.
    #[arg(long, default_value = "")]
    pub(crate) flavor: String,
    /// Never install missing host packages; fail instead.
    #[arg(long)]
    pub(crate) no_setup: bool,
}

#[derive(clap::Args, Clone)]
pub(crate) struct SetArg {
    /// The set (default: $RIG_MATRIX, else smoke).
    #[arg(long)]
    pub(crate) set: Option<String>,
    /// Never install missing host packages; fail instead.
    #[arg(long)]
    pub(crate) no_setup: bool,
}

#[derive(Subcommand)]
pub(crate) enum MatrixCmd {
    /// Every cell of the set and what happens to it: run, or skip and why.
    List {
        #[command(flatten)]
        set: SetArg,
        #[arg(long)]
        json: bool,
    },
    /// Provision everything the set boots (kernels, initramfs), once, before any cell runs.
    Provision {
        #[command(flatten)]
        set: SetArg,
    },
    /// Run the set's cells one after another (no nextest needed) into one folder with a summary.
    /// Exit 1 when a cell failed, 125 when one hit an infra error, else 0.
    Run {
        #[command(flatten)]
        set: SetArg,
        #[arg(long, default_value = "auto")]
        accel: AccelChoice,
        /// Keep the guest's memory of failed cells (~512 MiB each before compression).
        #[arg(long, value_enum, default_value = "never")]
        vmcore: rig::run::Vmcore,
    },
}
