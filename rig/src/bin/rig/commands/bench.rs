//! `rig bench`: how fast rig boots, runs, builds and bisects on this host.

use super::{run_options, Ctx};
use crate::args::bench::{BenchBootArgs, BenchCommandArgs, BenchRunArgs};
use crate::failure::{Infra, Result};
use crate::stdout::outln;
use rig::host::artifacts::RunDir;
use rig::host::board::{Arch, Board};
use rig::host::exit;
use rig::machine::spec::{AccelChoice, MachineSpec};

/// `rig bench command`: one guest command's round trip through rig against a bare baseline.
pub(crate) fn command(cx: &Ctx, a: BenchCommandArgs) -> Result<i32> {
    let events = cx.events(None);
    let run_dir = RunDir::create(&format!("bench-command-{}", a.target.board))?;
    let spec = a.target.machine_spec();
    let via = a.transport.via(&events);
    let r = rig::bench::command(
        &spec,
        a.target.auto_setup(),
        via,
        a.runs,
        &cx.cache,
        &run_dir,
        &events,
    )?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r).infra()?)?;
    } else {
        outln!("{r}")?;
    }
    Ok(exit::PASS)
}

/// `rig bench run`: runs per hour of a scenario, and where a run's time goes.
pub(crate) fn run(cx: &Ctx, a: BenchRunArgs) -> Result<i32> {
    let sc = super::load_scenario(&a.scenario)?;
    let run_dir = RunDir::create(&format!("bench-run-{}-{}", sc.name, a.target.board))?;
    let events = cx.events(Some(&run_dir));
    super::scenario_notices(&sc, &events);
    let mut opts = run_options(&a.target);
    opts.snapshot = a.snapshot;
    let r = rig::bench::scenario_runs(&sc, &opts, a.runs, &cx.cache, &run_dir, &events)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r).infra()?)?;
    } else {
        outln!("{r}")?;
    }
    Ok(exit::PASS)
}

/// `rig bench matrix`: cells per hour of a matrix set.
pub(crate) fn matrix(cx: &Ctx, set: &str) -> Result<i32> {
    let events = cx.events(None);
    let (m, scenarios) = rig::matrix::load_default()?;
    let b = rig::matrix::bench::bench(m.set(set)?, &scenarios, &cx.cache, &events)?;
    outln!("{b}")?;
    Ok(exit::PASS)
}

/// `rig bench bisect`: the suite's real bisect (the fixture history), its builds, boots and
/// wall time.
pub(crate) fn bisect(cx: &Ctx, runs: u32) -> Result<i32> {
    let events = cx.events(None);
    let started = std::time::Instant::now();
    let history = rig::bisect::fixture::linux_history(&cx.cache, &events)?;
    let prepared = started.elapsed();
    let sc =
        super::load_scenario(&rig::repo_root().join("scenarios/overlay-devlink-teardown.yaml"))?;
    let run_dir = RunDir::create("bench-bisect")?;
    let req = rig::bisect::Request {
        tree: history.repo.clone(),
        good: history.good().into(),
        bad: history.bad().into(),
        scenario: &sc,
        board: Board::Arm64Virt,
        flavor: String::new(),
        accel: AccelChoice::Auto,
        runs: Some(runs),
        title: None,
        resume: false,
        verify_revert: false,
        min_confidence: 0.9,
    };
    let t = std::time::Instant::now();
    let r = rig::bisect::run(&req, &cx.cache, &run_dir, &events)?;
    let (builds, build_s, boots) = r.cost();
    outln!(
        "bisect of {} commits: {builds} kernels built in {build_s:.0}s, {boots} boots, \
         {:.0}s wall (fixture {:.0}s); culprit {}",
        history.commits.len() - 1,
        t.elapsed().as_secs_f64(),
        prepared.as_secs_f64(),
        r.culprit
            .as_ref()
            .map(|c| c.subject.as_str())
            .unwrap_or("none")
    )?;
    Ok(exit::PASS)
}

/// `rig bench kbuild`: clean and incremental kernel build times per arch (default: both).
pub(crate) fn kbuild(cx: &Ctx, arch: Vec<Arch>) -> Result<i32> {
    let arches = if arch.is_empty() {
        vec![Arch::X86_64, Arch::Arm64]
    } else {
        arch
    };
    let events = cx.events(None);
    for a in arches {
        let b = rig::provision::kbuild::bench(a, &cx.cache, &events)?;
        outln!(
            "{a:<7} clean {:>6.1}s  incremental {:>5.1}s  (-j{}, {})",
            b.clean.as_secs_f64(),
            b.incremental.as_secs_f64(),
            b.jobs,
            b.toolchain
        )?;
    }
    Ok(exit::PASS)
}

/// `rig bench boot`: median boot-to-ready per board (default: all), through rig and bare QEMU.
pub(crate) fn boot(cx: &Ctx, a: BenchBootArgs) -> Result<i32> {
    let boards = if a.board.is_empty() {
        Board::ALL.to_vec()
    } else {
        a.board
    };
    let events = cx.events(None);
    let run_dir = RunDir::create("bench-boot")?;
    for b in boards {
        let mut spec = MachineSpec::new(b, &a.kernel);
        spec.accel = a.accel;
        let r = rig::bench::boot(&spec, true, a.runs, &cx.cache, &run_dir, &events)?;
        outln!("{r}")?;
    }
    Ok(exit::PASS)
}
