//! `rig bench run SCENARIO`: how many repetitions of a scenario fit in an hour on this host, and
//! where a repetition's time goes: boot, steps, teardown (dmesg, QEMU exit), analysis. Guest
//! command round trips are collected from the engine's events on the way.

use super::{BenchError, Summary};
use crate::host::artifacts::RunDir;
use crate::host::cache::Cache;
use crate::host::events::{Event, EventSink, Events};
use crate::run::{self, RunOptions, Verdict};
use crate::scenario::Scenario;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunBench {
    pub scenario: String,
    pub board: String,
    pub kernel: String,
    pub accel: String,
    /// Repetitions started from a saved post-boot state (`--snapshot`); the wall clock
    /// includes the one boot that was saved.
    pub snapshot: bool,
    pub runs: u32,
    /// Verdicts: pass, fail, infra.
    pub verdicts: [u32; 3],
    /// Wall clock for all repetitions.
    pub wall_s: f64,
    pub runs_per_hour: f64,
    /// Seconds per repetition and phase.
    pub total_s: Summary,
    pub boot_s: Summary,
    pub steps_s: Summary,
    pub teardown_s: Summary,
    pub analysis_s: Summary,
    /// Guest commands per repetition, and their round trips in milliseconds.
    pub commands_per_run: f64,
    pub command_ms: Summary,
}

impl fmt::Display for RunBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [pass, fail, infra] = self.verdicts;
        writeln!(
            f,
            "{} on {} {} ({}{}): {} runs in {:.1} s = {:.0} runs/hour ({pass} pass, {fail} fail, \
             {infra} infra)",
            self.scenario,
            self.board,
            self.kernel,
            self.accel,
            if self.snapshot {
                ", restored from a saved boot"
            } else {
                ", fresh boots"
            },
            self.runs,
            self.wall_s,
            self.runs_per_hour
        )?;
        writeln!(
            f,
            "  per run (median s): total {:.2}  boot {:.2}  steps {:.2}  teardown {:.2}  \
             analysis {:.2}",
            self.total_s.median,
            self.boot_s.median,
            self.steps_s.median,
            self.teardown_s.median,
            self.analysis_s.median
        )?;
        write!(
            f,
            "  guest commands: {:.0} per run, round trip median {:.1} ms (min {:.1}, p90 {:.1})",
            self.commands_per_run, self.command_ms.median, self.command_ms.min, self.command_ms.p90
        )
    }
}

/// Collects the round trip of every guest command the engine runs.
#[derive(Default)]
struct CommandTimes(Mutex<Vec<f64>>);

impl EventSink for CommandTimes {
    fn emit(&self, event: &Event) {
        if let Event::GuestCommandDone { elapsed, .. } = event {
            if let Ok(mut v) = self.0.lock() {
                v.push(elapsed.as_secs_f64() * 1000.0);
            }
        }
    }
}

/// Runs `scenario` `runs` times (`opts.repeat` is ignored) and measures.
pub fn scenario_runs(
    scenario: &Scenario,
    opts: &RunOptions,
    runs: u32,
    cache: &Cache,
    run_dir: &RunDir,
    events: &Events,
) -> Result<RunBench, BenchError> {
    if runs == 0 {
        return Err(BenchError::NoRuns);
    }
    // Provision first, so the wall clock below holds repetitions only.
    crate::prepare::prepare(opts.machine.clone(), opts.auto_setup, cache, events)?;

    let times = Arc::new(CommandTimes::default());
    let ev = events.clone().with(times.clone());
    let mut opts = opts.clone();
    opts.repeat = runs;
    let start = Instant::now();
    let result = run::run_scenario(scenario, &opts, cache, run_dir, &ev).map_err(Box::new)?;
    let wall_s = start.elapsed().as_secs_f64();

    let reps = &result.repetitions;
    let col =
        |f: &dyn Fn(&run::Repetition) -> f64| Summary::of(&reps.iter().map(f).collect::<Vec<_>>());
    let count = |v: Verdict| reps.iter().filter(|r| r.verdict == v).count() as u32;
    let cmds = times.0.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(RunBench {
        scenario: scenario.name.clone(),
        board: opts.machine.board.to_string(),
        kernel: opts.machine.kernel.clone(),
        accel: result.accel.clone(),
        snapshot: opts.snapshot,
        runs,
        verdicts: [
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Infra),
        ],
        wall_s,
        runs_per_hour: f64::from(runs) * 3600.0 / wall_s,
        total_s: col(&|r| r.seconds),
        boot_s: col(&|r| r.boot_seconds),
        steps_s: col(&|r| r.steps_seconds - r.teardown_seconds),
        teardown_s: col(&|r| r.teardown_seconds),
        analysis_s: col(&|r| r.analysis_seconds),
        commands_per_run: cmds.len() as f64 / f64::from(runs),
        command_ms: Summary::of(&cmds),
    })
}
