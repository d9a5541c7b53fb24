//! `rig reproduce DIR|BUNDLE [--repeat N]`: re-runs a recorded run exactly — the copied
//! scenario and overlays, the same board, kernel (checked against the recorded identity),
//! command-line additions, accelerator choice and seed — and compares the report titles:
//! `reproduced: <title> in k of N runs`, or `did not reproduce in N runs`.
//!
//! [`bundle`] writes a self-contained `.tar.gz` of a run (scenario, overlays, kernel `.config`,
//! patches, kernel identity, QEMU version and argv, the report, the reproduce command) that
//! `rig reproduce out.tar.gz` runs on another machine with rig.
//!
//! A bundle or run folder is untrusted input (a bundle comes attached to a bug report): it is
//! unpacked within bounds ([`unpack`]), its record validated into a [`CheckedRecord`]
//! ([`checked`]), its files read only inside it ([`files`]), a `tree:` kernel rebuilt only from
//! a tree the user names ([`kernel`]), and a bundle packs only files of the run folder and of
//! rig's own cache and checkout ([`bundle`]).

mod bundle;
pub mod checked;
mod error;
pub mod files;
mod kernel;
mod outcome;
mod unpack;

pub use bundle::{bundle, Bundled, BUNDLE_README};
pub use checked::CheckedRecord;
pub use error::ReproduceError;
pub use outcome::Replay;
pub use unpack::{unpack, MAX_ENTRIES, MAX_UNPACKED_BYTES};

use crate::host::artifacts::RunDir;
use crate::host::cache::Cache;
use crate::host::events::Events;
use crate::run::record::RECORD_FILE;
use crate::run::{run_scenario, RunError, RunOptions};
use std::path::{Path, PathBuf};

/// A recorded run, ready to be re-run.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The run folder (or the unpacked bundle).
    pub dir: PathBuf,
    pub record: CheckedRecord,
    /// What the run found: its verdict and the titles that failed it (unexpected ones).
    pub verdict: Option<String>,
    pub failing_titles: Vec<String>,
    /// The run's `report.json` is there but cannot be read (truncated, not JSON, …): what is
    /// wrong with it. The replay still runs; it cannot be compared with the original.
    pub report_problem: Option<String>,
}

/// Opens a run folder, or unpacks a bundle (`*.tar.gz`) into a new folder under `unpack_to`
/// first ([`unpack`]: bounded, files and folders only). The record is validated
/// ([`checked::check`]) before anything of it is used.
pub fn open(path: &Path, unpack_to: &Path) -> Result<Recorded, ReproduceError> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else if path.is_file() {
        unpack(path, unpack_to)?
    } else {
        return Err(ReproduceError::NotARun { dir: path.into() });
    };
    let record_path = dir.join(RECORD_FILE);
    let text = files::read_inside(&dir, Path::new(RECORD_FILE), files::MAX_RECORD_BYTES)?
        .ok_or_else(|| ReproduceError::NotARun { dir: dir.clone() })?;
    let record = checked::check(&text).map_err(|message| ReproduceError::BadRecord {
        path: record_path,
        message,
    })?;
    let (verdict, failing_titles, report_problem) = match original_report(&dir) {
        Ok(Some((v, t))) => (Some(v), t, None),
        Ok(None) => (None, Vec::new(), None),
        Err(problem) => (None, Vec::new(), Some(problem)),
    };
    Ok(Recorded {
        dir,
        record,
        verdict,
        failing_titles,
        report_problem,
    })
}

/// The original run's verdict and failing titles from its `report.json` (`None`: it has none);
/// `Err`: the file is there but damaged, said with its path.
fn original_report(dir: &Path) -> Result<Option<(String, Vec<String>)>, String> {
    let name = Path::new(crate::report::REPORT_FILE);
    let damaged = |why: String| format!("{} is damaged ({why})", dir.join(name).display());
    let text = match files::read_inside(dir, name, files::MAX_REPORT_BYTES) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => return Err(damaged(crate::run::error_chain(&e))),
    };
    let r: crate::report::RunReport =
        serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
    let mut failing_titles: Vec<String> = Vec::new();
    for rep in &r.repetitions {
        for t in &rep.triage.unexpected {
            if !failing_titles.contains(t) {
                failing_titles.push(t.clone());
            }
        }
    }
    Ok(Some((r.verdict.word().to_string(), failing_titles)))
}

/// How to replay: `repeat` (default: as often as the run did), the tree a `tree:` kernel is
/// rebuilt from (see [`kernel`]), whether missing host packages may be installed.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub repeat: Option<u32>,
    pub tree: Option<PathBuf>,
    pub auto_setup: bool,
    pub vmcore: crate::run::Vmcore,
}

/// Re-runs `recorded` into `run_dir`. Everything that can be refused is refused before a host
/// tool is installed, a kernel built or a guest booted.
pub fn replay(
    recorded: Recorded,
    o: &ReplayOptions,
    cache: &Cache,
    run_dir: &RunDir,
    events: &Events,
) -> Result<Replay, ReproduceError> {
    let r = &recorded.record;
    let kernel = kernel::replay_kernel(r, o.tree.as_deref())?;
    let copy = r.copy.as_ref().ok_or_else(|| ReproduceError::NoScenario {
        dir: recorded.dir.clone(),
        scenario: r.scenario.name.clone(),
    })?;
    let file =
        files::file_inside(&recorded.dir, copy)?.ok_or_else(|| ReproduceError::NoScenario {
            dir: recorded.dir.clone(),
            scenario: r.scenario.name.clone(),
        })?;
    if let Some(recorded_sha) = &r.scenario.sha256 {
        let now = crate::host::cache::sha256_file(&file).map_err(|e| ReproduceError::Read {
            path: file.clone(),
            source: std::io::Error::other(e),
        })?;
        if &now != recorded_sha {
            return Err(ReproduceError::ScenarioChanged {
                path: file,
                recorded: recorded_sha.clone(),
                now,
            });
        }
    }
    let overlays = files::folder_inside(&recorded.dir, Path::new("scenario/overlays"))?;
    let scenario = crate::scenario::load(&file, &overlays).map_err(ReproduceError::Scenario)?;
    // An older rig's copy may spell things the old way (`via: serial`): it still replays.
    for n in &scenario.notices {
        events.warn(n.clone());
    }
    crate::prepare::ensure_host_tools(
        &crate::prepare::needs_for_kernel(&kernel),
        o.auto_setup,
        cache,
        events,
    )
    .map_err(RunError::Prepare)?;
    kernel::check(&kernel, r, cache, events)?;
    let mut opts = RunOptions::new(r.board, &kernel);
    opts.machine.accel = r.accel;
    opts.machine.memory_mib = r.memory_mib;
    opts.machine.cmdline = r.extra_cmdline.clone();
    opts.seed = Some(r.seed);
    opts.repeat = o.repeat.unwrap_or(r.repeat).max(1);
    opts.auto_setup = o.auto_setup;
    opts.vmcore = o.vmcore;
    let result = run_scenario(&scenario, &opts, cache, run_dir, events)?;
    Ok(Replay { recorded, result })
}

#[cfg(test)]
mod bundle_tests;
#[cfg(test)]
mod tests;
