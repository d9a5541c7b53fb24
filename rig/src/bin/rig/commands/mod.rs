//! What each subcommand does, on top of the library: the dispatch here, one function per
//! subcommand (and per sub-subcommand) in the modules below, grouped by what they do.

mod bench;
mod guest;
mod host;
mod kernel;
mod matrix;
mod report;
mod run;
mod soak;

use crate::args::bench::BenchCmd;
use crate::args::{Cli, Cmd, KernelCmd, MatrixCmd, Target};
use crate::failure::Result;
use rig::host::artifacts::RunDir;
use rig::host::cache::Cache;
use rig::host::events::{Events, JsonLines, StderrProgress};
use std::sync::Arc;

/// What every command gets besides its own flags.
pub(crate) struct Ctx {
    cache: Cache,
    verbose: bool,
}

impl Ctx {
    /// Progress on stderr, and into the run folder's `events.jsonl` when there is one.
    fn events(&self, run_dir: Option<&RunDir>) -> Events {
        let mut ev = Events::none().with(Arc::new(StderrProgress::new(self.verbose)));
        if let Some(r) = run_dir {
            if let Ok(j) = JsonLines::create(&r.file("events.jsonl")) {
                ev = ev.with(Arc::new(j));
            }
        }
        ev
    }
}

/// rig's built-in overlays: where a scenario's overlays are looked up after its own folder.
fn builtin_overlays() -> std::path::PathBuf {
    rig::repo_root().join("overlays")
}

/// The scenario file at `path` (or of that name: [`rig::scenario::load`]), validated.
fn load_scenario(
    path: &std::path::Path,
) -> Result<rig::scenario::Scenario, rig::scenario::ScenarioError> {
    rig::scenario::load(path, &builtin_overlays())
}

/// Shows a loaded scenario's deprecation notices (old spellings it uses) as warnings.
fn scenario_notices(sc: &rig::scenario::Scenario, events: &Events) {
    for n in &sc.notices {
        events.warn(n.clone());
    }
}

/// Runs the command `cli` names; `Ok` is its exit code.
pub(crate) fn run(cli: Cli) -> Result<i32> {
    rig::machine::timeouts::env_timeout_scale()?;
    let cache = cli.cache_dir.map(Cache::at).unwrap_or_else(Cache::from_env);
    // rig's own assets (init, fragments, built-in scenarios) unpack into the same cache.
    rig::assets::use_cache(&cache);
    let cx = Ctx {
        cache,
        verbose: cli.verbose,
    };
    match cli.command {
        Cmd::Doctor { reprobe } => host::doctor(&cx, reprobe),
        Cmd::Setup { kbuild, tests } => host::setup(&cx, kbuild, tests),
        Cmd::Boot(a) => guest::boot(&cx, a),
        Cmd::Console { target } => guest::console(&cx, &target),
        Cmd::Fetch { target } => kernel::fetch(&cx, &target),
        Cmd::Run(a) => run::run(&cx, a),
        Cmd::Analyze(a) => report::analyze(a),
        Cmd::Check { files } => report::check(&files),
        Cmd::Bisect(a) => run::bisect(&cx, a),
        Cmd::Matrix { what } => match what {
            MatrixCmd::List { set, json } => matrix::list(&cx, &set, json),
            MatrixCmd::Provision { set } => matrix::provision(&cx, &set),
            MatrixCmd::Run { set, accel, vmcore } => matrix::run(&cx, &set, accel, vmcore),
        },
        Cmd::Reproduce(a) => run::reproduce(&cx, a),
        Cmd::Report(a) => report::report(a),
        Cmd::Kernel { what } => match what {
            KernelCmd::List => kernel::list(),
            KernelCmd::Build(a) => kernel::build(&cx, a),
        },
        Cmd::Soak(a) => soak::soak(&cx, a),
        Cmd::Bench { what } => match what {
            BenchCmd::Command(a) => bench::command(&cx, a),
            BenchCmd::Run(a) => bench::run(&cx, a),
            BenchCmd::Matrix { set } => bench::matrix(&cx, &set),
            BenchCmd::Bisect { runs } => bench::bisect(&cx, runs),
            BenchCmd::Kbuild { arch } => bench::kbuild(&cx, arch),
            BenchCmd::Boot(a) => bench::boot(&cx, a),
        },
    }
}

/// A scenario run's options from the common target flags.
fn run_options(target: &Target) -> rig::run::RunOptions {
    let mut opts = rig::run::RunOptions::new(target.board, &target.kernel);
    opts.machine = target.machine_spec();
    opts.auto_setup = target.auto_setup();
    opts
}
