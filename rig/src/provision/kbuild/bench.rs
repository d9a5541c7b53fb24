//! `rig bench kbuild`: a clean build without ccache and a one-file incremental rebuild.

use super::build::configure;
use super::plan::{io_err, Plan};
use super::series::{Series, HOST_612_TARBALL};
use super::toolchain::jobs;
use super::{run, source, BuildRequest, KbuildError, Source};
use crate::host::board::Arch;
use crate::host::cache::Cache;
use crate::host::events::{Event, Events};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Timings of `rig bench kbuild`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KbuildBench {
    pub arch: Arch,
    /// `make all` from an empty build directory, without ccache.
    pub clean: Duration,
    /// `make all` again after touching [`BENCH_TOUCHED`].
    pub incremental: Duration,
    pub jobs: usize,
    pub toolchain: String,
}

/// The file `bench` touches for its incremental rebuild.
pub const BENCH_TOUCHED: &str = "drivers/of/dynamic.c";

/// Measures a clean build of `rig-<default series>` for `arch` (scratch build directory, no ccache) and an
/// incremental rebuild after touching one file. Nothing lands in the cache.
pub fn bench(arch: Arch, cache: &Cache, events: &Events) -> Result<KbuildBench, KbuildError> {
    let req = BuildRequest {
        arch,
        source: Source::Debian(Series::DEFAULT),
        flavor: String::new(),
        // rig's own build, measured: not the project's.
        project: Default::default(),
    };
    let plan = Plan::new(
        &req,
        &crate::repo_root(),
        Path::new(HOST_612_TARBALL),
        false,
    )?;
    let step = format!("bench kbuild ({arch})");
    let started = Instant::now();
    events.emit(Event::StepStarted {
        step: step.clone(),
        detail: format!("clean build without ccache, -j{}", jobs()),
    });
    let area = source::work_area(&req.source, cache);
    let _lock = source::AreaLock::acquire(&area, events, &step)?;
    let logs = area.join("logs");
    fs::create_dir_all(&logs).map_err(io_err("cannot create log folder", &logs))?;
    let pristine = plan.pristine(cache, events)?;
    let log = logs.join(format!("bench-{arch}.log"));
    let _ = fs::remove_file(&log);
    let src = source::sync_work_tree(&area, &pristine, &plan.patches, &log)?;
    let scratch = tempfile::Builder::new()
        .prefix(&format!("bench-{arch}-"))
        .tempdir_in(&area)
        .map_err(io_err("cannot create scratch build dir", &area))?;
    configure(&plan, &src, &area, scratch.path(), &log, events, &step)?;

    let mut make = plan.make(&src, scratch.path());
    make.arg("all");
    let t = Instant::now();
    run::run_make(make, &log, &step, events)?;
    let clean = t.elapsed();

    source::touch(&src.join(BENCH_TOUCHED), std::time::SystemTime::now())?;
    let mut make = plan.make(&src, scratch.path());
    make.arg("all");
    let t = Instant::now();
    run::run_make(make, &log, &step, events)?;
    let incremental = t.elapsed();
    events.emit(Event::StepFinished {
        step,
        elapsed: started.elapsed(),
        cached: false,
    });
    Ok(KbuildBench {
        arch,
        clean,
        incremental,
        jobs: jobs(),
        toolchain: plan.toolchain.version,
    })
}
