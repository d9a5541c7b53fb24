//! `rig bench`'s subcommands and their flags.

use super::Target;
use clap::Subcommand;
use rig::host::board::{Arch, Board};
use rig::machine::spec::AccelChoice;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum BenchCmd {
    /// Cells per hour of a matrix set on this host, and where the time goes (provisioning,
    /// boot, steps, analysis).
    Matrix {
        #[arg(long, default_value = "smoke")]
        set: String,
    },
    /// Median boot-to-ready time per board through rig and through bare QEMU.
    Boot(BenchBootArgs),
    /// Round trip of one guest command through rig vs a bare baseline on the same guest.
    Command(BenchCommandArgs),
    /// Runs per hour of a scenario, and where a run's time goes (boot, steps, teardown, analysis).
    Run(BenchRunArgs),
    /// The suite's real bisect (rig::bisect::fixture: seven commits on linux-source-6.12, the
    /// overlay scenario on arm64-virt): kernels built, build time, boots, wall time.
    Bisect {
        /// Runs per commit.
        #[arg(long, default_value_t = 2)]
        runs: u32,
    },
    /// Clean and incremental (one touched file) kernel build times per arch.
    Kbuild {
        /// Arches (default: both).
        #[arg(long)]
        arch: Vec<Arch>,
    },
}

#[derive(clap::Args)]
pub(crate) struct BenchBootArgs {
    /// Boards (default: both).
    #[arg(long)]
    pub(crate) board: Vec<Board>,
    #[arg(long, default_value = "debian-6.1")]
    pub(crate) kernel: String,
    /// Boots per board and mode.
    #[arg(short = 'n', long, default_value_t = 5)]
    pub(crate) runs: usize,
    #[arg(long, default_value = "auto")]
    pub(crate) accel: AccelChoice,
}

#[derive(clap::Args)]
pub(crate) struct BenchCommandArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// hvc (the guest's command shell on its virtio console) or ssh.
    #[arg(long, default_value = "hvc")]
    pub(crate) transport: super::TransportArg,
    /// Timed rounds (each: one bare, one through rig).
    #[arg(short = 'n', long, default_value_t = 30)]
    pub(crate) runs: usize,
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(clap::Args)]
pub(crate) struct BenchRunArgs {
    pub(crate) scenario: PathBuf,
    #[command(flatten)]
    pub(crate) target: Target,
    /// Repetitions, each on a fresh boot (or restored, with --snapshot).
    #[arg(short = 'n', long, default_value_t = 10)]
    pub(crate) runs: u32,
    #[arg(long)]
    pub(crate) json: bool,
    /// Boot once, save the guest's state at its ready shell (QEMU migration to a file) and
    /// start every repetition from it instead of booting. Scenarios that use hvc only.
    #[arg(long)]
    pub(crate) snapshot: bool,
}
