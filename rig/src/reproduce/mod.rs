//! `rig reproduce DIR|BUNDLE [--repeat N]`: re-runs a recorded run exactly — the copied
//! scenario and overlays, the same board, kernel (checked against the recorded identity),
//! command-line additions, accelerator choice and seed — and compares the report titles:
//! `reproduced: <title> in k of N runs`, or `did not reproduce in N runs`.
//!
//! [`bundle`] writes a self-contained `.tar.gz` of a run (scenario, overlays, kernel `.config`,
//! patches, kernel identity, QEMU version and argv, the report, the reproduce command) that
//! `rig reproduce out.tar.gz` runs on another machine with rig.

mod bundle;

pub use bundle::{bundle, unpack, BUNDLE_README};

use crate::host::artifacts::RunDir;
use crate::host::cache::Cache;
use crate::host::events::Events;
use crate::provision::KernelSpec;
use crate::run::record::{RunRecord, RECORD_FILE};
use crate::run::{run_scenario, RunError, RunOptions, ScenarioResult, Verdict};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReproduceError {
    #[error("{dir} is not a rig run folder or bundle: it has no {RECORD_FILE} (runs made by this rig keep one)")]
    NotARun { dir: PathBuf },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a run record this rig reads: {message}")]
    BadRecord { path: PathBuf, message: String },
    #[error(
        "{dir} has no copy of the scenario file (the run's scenario `{scenario}` was not a file)"
    )]
    NoScenario { dir: PathBuf, scenario: String },
    #[error("the recorded scenario copy does not load")]
    Scenario(#[source] crate::scenario::ScenarioError),
    #[error(
        "kernel `{kernel}` can no longer be built: its source tree {tree} is gone (the run used \
         source identity {identity})"
    )]
    TreeGone {
        kernel: String,
        tree: PathBuf,
        identity: String,
    },
    #[error(
        "kernel `{kernel}` is not the one the run used: its {field} was {recorded}, now {now} \
         (the checkout's kernel recipe or the source changed)"
    )]
    KernelChanged {
        kernel: String,
        field: String,
        recorded: String,
        now: String,
    },
    #[error("cannot provision kernel `{kernel}`")]
    Provision {
        kernel: String,
        #[source]
        source: Box<crate::provision::ProvisionError>,
    },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("bundle {path}: {message}")]
    Bundle { path: PathBuf, message: String },
}

impl ReproduceError {
    /// Bad input (exit 2) — a folder that is not a run, a kernel that is gone or changed —
    /// as opposed to rig failing to run it (125).
    pub fn is_bad_input(&self) -> bool {
        match self {
            ReproduceError::Provision { source, .. } => source.is_unknown_name(),
            ReproduceError::Run(RunError::Unsupported(_)) => true,
            ReproduceError::Run(_) | ReproduceError::Read { .. } => false,
            _ => true,
        }
    }
}

/// A recorded run, ready to be re-run.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The run folder (or the unpacked bundle).
    pub dir: PathBuf,
    pub record: RunRecord,
    /// What the run found: its verdict and the titles that failed it (unexpected ones).
    pub verdict: Option<String>,
    pub failing_titles: Vec<String>,
}

fn read(path: &Path) -> Result<String, ReproduceError> {
    std::fs::read_to_string(path).map_err(|source| ReproduceError::Read {
        path: path.into(),
        source,
    })
}

/// Opens a run folder, or unpacks a bundle (`*.tar.gz`) into `unpack_to` first.
pub fn open(path: &Path, unpack_to: &Path) -> Result<Recorded, ReproduceError> {
    let dir = if path.is_file() {
        unpack(path, unpack_to)?
    } else {
        path.to_path_buf()
    };
    let record_path = dir.join(RECORD_FILE);
    if !record_path.is_file() {
        return Err(ReproduceError::NotARun { dir });
    }
    let record: RunRecord =
        serde_json::from_str(&read(&record_path)?).map_err(|e| ReproduceError::BadRecord {
            path: record_path.clone(),
            message: e.to_string(),
        })?;
    let (mut verdict, mut failing_titles) = (None, Vec::new());
    let report = dir.join(crate::report::REPORT_FILE);
    if report.is_file() {
        let r: crate::report::RunReport =
            serde_json::from_str(&read(&report)?).map_err(|e| ReproduceError::BadRecord {
                path: report.clone(),
                message: e.to_string(),
            })?;
        for rep in &r.repetitions {
            for t in &rep.triage.unexpected {
                if !failing_titles.contains(t) {
                    failing_titles.push(t.clone());
                }
            }
        }
        verdict = Some(r.verdict);
    }
    Ok(Recorded {
        dir,
        record,
        verdict,
        failing_titles,
    })
}

/// Which recorded kernel identity fields must match for a replay to be the same kernel.
const IDENTITY_FIELDS: [&str; 6] = [
    "version",
    "image_sha256",
    "source_identity",
    "config_sha256",
    "patches",
    "flavor",
];

/// Resolves the recorded kernel and checks it is the same one.
fn check_kernel(r: &RunRecord, cache: &Cache, events: &Events) -> Result<(), ReproduceError> {
    let name = &r.kernel.name;
    if let Ok(KernelSpec::Tree { path, .. }) = KernelSpec::parse(name) {
        if !path.is_dir() {
            return Err(ReproduceError::TreeGone {
                kernel: name.clone(),
                tree: path,
                identity: r
                    .kernel
                    .provenance
                    .get("source_identity")
                    .cloned()
                    .unwrap_or_else(|| "unknown".into()),
            });
        }
    }
    let k = crate::provision::resolve_kernel(name, r.board.arch(), cache, events).map_err(|e| {
        ReproduceError::Provision {
            kernel: name.clone(),
            source: Box::new(e),
        }
    })?;
    for field in IDENTITY_FIELDS {
        if let (Some(was), Some(now)) = (r.kernel.provenance.get(field), k.provenance.get(field)) {
            if was != now {
                return Err(ReproduceError::KernelChanged {
                    kernel: name.clone(),
                    field: field.into(),
                    recorded: was.clone(),
                    now: now.clone(),
                });
            }
        }
    }
    Ok(())
}

/// How a replay went.
#[derive(Debug, Clone)]
pub struct Replay {
    pub recorded: Recorded,
    pub result: ScenarioResult,
}

impl Replay {
    /// The original's failing titles with the runs of the replay that showed each.
    pub fn hits(&self) -> Vec<(String, u32)> {
        self.recorded
            .failing_titles
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    self.result.reproduced.get(t).copied().unwrap_or(0),
                )
            })
            .collect()
    }

    /// The original failure came back: one of its failing titles appeared, or (a run that
    /// failed without a report title) the replay failed too.
    pub fn reproduced(&self) -> bool {
        if self.recorded.failing_titles.is_empty() {
            return self.recorded.verdict.as_deref() == Some("fail")
                && self.result.verdict == Verdict::Fail;
        }
        self.hits().iter().any(|(_, k)| *k > 0)
    }

    /// Documented: 1 when the original failure reproduced, 0 when it did not.
    pub fn exit_code(&self) -> i32 {
        if self.reproduced() {
            crate::host::exit::KERNEL_FAILURE
        } else {
            crate::host::exit::PASS
        }
    }

    pub fn render(&self) -> String {
        let n = self.result.repetitions.len();
        let mut s = String::new();
        if self.recorded.failing_titles.is_empty() {
            let failed = self
                .result
                .repetitions
                .iter()
                .filter(|r| r.verdict == Verdict::Fail)
                .count();
            match self.recorded.verdict.as_deref() {
                Some("fail") if failed > 0 => s.push_str(&format!(
                    "reproduced: the failure (no report title) in {failed} of {n} runs\n"
                )),
                Some("fail") => s.push_str(&format!("did not reproduce in {n} runs\n")),
                other => s.push_str(&format!(
                    "the recorded run's verdict was {}: nothing to reproduce; {failed} of {n} \
                     runs failed\n",
                    other.unwrap_or("unknown")
                )),
            }
        } else if self.reproduced() {
            for (t, k) in self.hits() {
                if k > 0 {
                    s.push_str(&format!("reproduced: {t} in {k} of {n} runs\n"));
                } else {
                    s.push_str(&format!("not seen: {t} in {n} runs\n"));
                }
            }
        } else {
            s.push_str(&format!("did not reproduce in {n} runs\n"));
        }
        let other: Vec<&String> = self
            .result
            .reproduced
            .keys()
            .filter(|t| !self.recorded.failing_titles.contains(t))
            .collect();
        for t in other {
            s.push_str(&format!(
                "also seen: {t} in {} of {n} runs\n",
                self.result.reproduced[t]
            ));
        }
        let dir = &self.result.artifacts;
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        s.push_str(&format!("artifacts: {}\n", dir.display()));
        s
    }
}

/// Re-runs `recorded` `repeat` times (default: as often as it ran) into `run_dir`.
pub fn replay(
    recorded: Recorded,
    repeat: Option<u32>,
    auto_setup: bool,
    cache: &Cache,
    run_dir: &RunDir,
    events: &Events,
) -> Result<Replay, ReproduceError> {
    let r = &recorded.record;
    let copy = r
        .scenario
        .copy
        .as_ref()
        .ok_or_else(|| ReproduceError::NoScenario {
            dir: recorded.dir.clone(),
            scenario: r.scenario.name.clone(),
        })?;
    let scenario = crate::scenario::load(
        &recorded.dir.join(copy),
        &recorded.dir.join("scenario/overlays"),
    )
    .map_err(ReproduceError::Scenario)?;
    crate::guest::ensure_host_tools(
        &crate::guest::needs_for_kernel(&r.kernel.name),
        auto_setup,
        cache,
        events,
    )
    .map_err(RunError::Prepare)?;
    check_kernel(r, cache, events)?;
    let mut opts = RunOptions::new(r.board, &r.kernel.name);
    opts.accel = r.accel.parse().unwrap_or_default();
    opts.memory_mib = r.memory_mib;
    opts.extra_cmdline = r.extra_cmdline.clone();
    opts.seed = Some(r.seed);
    opts.repeat = repeat.unwrap_or(r.repeat).max(1);
    opts.auto_setup = auto_setup;
    let result = run_scenario(&scenario, &opts, cache, run_dir, events)?;
    Ok(Replay { recorded, result })
}

#[cfg(test)]
mod tests;
