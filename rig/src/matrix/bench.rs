//! `rig bench matrix --set S`: the set's runnable cells one after another on this host, as
//! cells per hour, and where the time went (provisioning, boot, steps, analysis, the rest:
//! accelerator choice, QEMU start and shutdown, the final dmesg).

use super::{plan_here, provision, run_cell, CellOptions, Plan};
use crate::host::artifacts::RunDir;
use crate::host::cache::Cache;
use crate::host::events::Events;
use std::fmt;
use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct MatrixBench {
    pub set: String,
    pub cells: usize,
    pub skipped: usize,
    pub failed: usize,
    pub provisioning_s: f64,
    pub boot_s: f64,
    pub steps_s: f64,
    pub analysis_s: f64,
    /// Wall time of the cells (provisioning not included).
    pub cells_s: f64,
    pub folder: std::path::PathBuf,
}

impl MatrixBench {
    pub fn cells_per_hour(&self) -> f64 {
        let total = self.cells_s + self.provisioning_s;
        if total > 0.0 {
            self.cells as f64 * 3600.0 / total
        } else {
            0.0
        }
    }
}

impl fmt::Display for MatrixBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.cells_s + self.provisioning_s;
        let pct = |x: f64| if total > 0.0 { 100.0 * x / total } else { 0.0 };
        let other = (self.cells_s - self.boot_s - self.steps_s - self.analysis_s).max(0.0);
        writeln!(
            f,
            "matrix {}: {} cells ({} skipped, {} did not pass) in {:.0}s, one VM at a time: \
             {:.1} cells/hour",
            self.set,
            self.cells,
            self.skipped,
            self.failed,
            total,
            self.cells_per_hour()
        )?;
        for (what, x) in [
            ("provisioning", self.provisioning_s),
            ("boot", self.boot_s),
            ("steps", self.steps_s),
            ("analysis", self.analysis_s),
            ("other", other),
        ] {
            writeln!(f, "  {what:<13} {x:>8.2}s  {:>5.1}%", pct(x))?;
        }
        write!(f, "  runs: {}", self.folder.display())
    }
}

/// Runs the benchmark (see the module doc).
pub fn bench(
    set: &super::Set,
    scenarios: &[std::sync::Arc<crate::scenario::Scenario>],
    cache: &Cache,
    events: &Events,
) -> Result<MatrixBench, super::MatrixRunError> {
    let t = Instant::now();
    provision(set, cache, events, true)
        .map_err(|e| super::MatrixRunError::Provision(e.to_string()))?;
    let planned = plan_here(set.cells(scenarios), cache, events, false);
    let provisioning_s = t.elapsed().as_secs_f64();
    let dir = RunDir::create(&format!("bench-matrix-{}", set.name))?;
    let opts = CellOptions {
        accel: crate::machine::spec::AccelChoice::Auto,
        auto_setup: false,
        artifacts: dir.path().to_path_buf(),
        vmcore: crate::run::Vmcore::Never,
    };
    let mut b = MatrixBench {
        set: set.name.clone(),
        provisioning_s,
        folder: dir.path().to_path_buf(),
        ..Default::default()
    };
    let t = Instant::now();
    for p in &planned {
        if p.plan != Plan::Run {
            b.skipped += 1;
            continue;
        }
        let o = run_cell(&p.cell, &opts, cache, events);
        b.cells += 1;
        if o.verdict != crate::run::Verdict::Pass {
            b.failed += 1;
        }
        for rep in o.result.iter().flat_map(|r| r.repetitions.iter()) {
            b.boot_s += rep.boot_seconds;
            b.steps_s += rep.steps_seconds;
            b.analysis_s += rep.analysis_seconds;
        }
    }
    b.cells_s = t.elapsed().as_secs_f64();
    Ok(b)
}
