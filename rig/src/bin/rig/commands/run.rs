//! `rig run`, `rig reproduce` and `rig bisect`: scenarios run, re-run and bisected.

use super::{run_options, Ctx};
use crate::args::{BisectArgs, ReproduceArgs, RunArgs};
use crate::failure::{Infra, Result};
use crate::stdout::{outln, print_verdict};
use rig::host::artifacts::RunDir;
use rig::host::doctor::Need;
use rig::host::exit;
use rig::host::text::terminal_safe;
use std::path::Path;

/// `rig run`: the scenario run, its verdict printed; the exit code is the verdict's.
pub(crate) fn run(cx: &Ctx, a: RunArgs) -> Result<i32> {
    let sc = super::load_scenario(&a.scenario)?;
    let run_dir = RunDir::create(&format!("run-{}-{}", sc.name, a.target.board))?;
    let events = cx.events(Some(&run_dir));
    super::scenario_notices(&sc, &events);
    let mut opts = run_options(&a.target);
    opts.repeat = a.repeat;
    opts.seed = a.seed;
    opts.snapshot = a.snapshot;
    opts.vmcore = a.vmcore;
    let result = rig::run::run_scenario(&sc, &opts, &cx.cache, &run_dir, &events)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&result).infra()?)?;
    } else {
        print_verdict(&result.render());
    }
    Ok(result.verdict.exit_code())
}

/// `rig reproduce`: a recorded run replayed with its scenario, kernel and seed (or, with
/// `--bundle`, packed into a bundle instead).
pub(crate) fn reproduce(cx: &Ctx, a: ReproduceArgs) -> Result<i32> {
    if let Some(out) = &a.bundle {
        return bundle(cx, &a.path, out);
    }
    let recorded = rig::reproduce::open(&a.path, &RunDir::base())?;
    let r = &recorded.record;
    let run_dir = RunDir::create(&format!("reproduce-{}-{}", r.scenario.name, r.board))?;
    let events = cx.events(Some(&run_dir));
    eprintln!(
        "rig: reproducing {} on {} with {} (seed {})",
        r.scenario.name, r.board, r.kernel.name, r.seed
    );
    if let Some(problem) = &recorded.report_problem {
        eprintln!(
            "rig: warning: {problem}: replaying without the original titles to compare \
             with"
        );
    }
    let opts = rig::reproduce::ReplayOptions {
        repeat: a.repeat,
        tree: a.tree,
        auto_setup: !a.no_setup,
        vmcore: a.vmcore,
    };
    let replay = rig::reproduce::replay(recorded, &opts, &cx.cache, &run_dir, &events)?;
    print_verdict(&replay.render());
    Ok(replay.exit_code())
}

/// `rig reproduce --bundle OUT`: the run packed into one file; prints its path.
fn bundle(cx: &Ctx, path: &Path, out: &Path) -> Result<i32> {
    let b = rig::reproduce::bundle(path, out, &cx.cache)?;
    for why in &b.left_out {
        eprintln!("rig: warning: not in the bundle: {why}");
    }
    eprintln!("rig: bundle holds {}", b.held.join(" "));
    outln!("{}", out.display())?;
    Ok(exit::PASS)
}

/// `rig bisect`: the first bad commit between two kernels. A bisect that started and then
/// failed still names its artifacts folder, and ends with its error's exit code.
pub(crate) fn bisect(cx: &Ctx, a: BisectArgs) -> Result<i32> {
    let sc = super::load_scenario(&a.scenario)?;
    rig::provision::kbuild::flavor(&a.flavor)?;
    let events = cx.events(None);
    super::scenario_notices(&sc, &events);
    rig::prepare::ensure_host_tools(&[Need::Core, Need::Kbuild], true, &cx.cache, &events)?;
    let run_dir = RunDir::create(&format!("bisect-{}-{}", sc.name, a.board))?;
    let req = rig::bisect::Request {
        tree: a.tree,
        good: a.good,
        bad: a.bad,
        scenario: &sc,
        board: a.board,
        flavor: a.flavor,
        accel: a.accel,
        runs: a.runs,
        title: a.title,
        resume: a.resume,
        verify_revert: a.verify_revert,
        min_confidence: a.min_confidence,
    };
    match rig::bisect::run(&req, &cx.cache, &run_dir, &events) {
        Ok(r) => {
            print_verdict(&format!(
                "{}artifacts: {}\n",
                r.render(),
                run_dir.path().display()
            ));
            Ok(r.exit_code())
        }
        Err(e) => {
            eprint!("{}", terminal_safe(&format!("rig: error: {e}\n")));
            eprintln!("rig: artifacts: {}", run_dir.path().display());
            Ok(e.exit_code())
        }
    }
}
