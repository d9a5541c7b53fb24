use crate::run::record::RECORD_FILE;
use crate::run::RunError;
use std::path::PathBuf;

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
    #[error("refusing {path}: {why}; a run folder or bundle is read only inside itself")]
    Outside { path: PathBuf, why: String },
    #[error(
        "{dir} has no copy of the scenario file (the run's scenario `{scenario}` was not a file)"
    )]
    NoScenario { dir: PathBuf, scenario: String },
    #[error("the scenario copy {path} is not the one the run used: its sha256 is {now}, the record says {recorded}")]
    ScenarioChanged {
        path: PathBuf,
        recorded: String,
        now: String,
    },
    #[error("the recorded scenario copy does not load")]
    Scenario(#[source] crate::scenario::ScenarioError),
    #[error(
        "the run's kernel `{kernel}` was built from a source tree, and rig builds a tree only \
         from one you name: pass `--tree PATH` with a tree whose source identity is {identity} \
         (the run used {tree})"
    )]
    TreeNeeded {
        kernel: String,
        tree: PathBuf,
        identity: String,
    },
    #[error("--tree is only for a run whose kernel is a tree kernel (`tree:PATH`); this run's is `{kernel}`")]
    TreeNotNeeded { kernel: String },
    #[error(
        "--tree {tree} is not the source the run's kernel `{kernel}` was built from: its \
         source identity is {now}, the run's was {recorded}"
    )]
    TreeMismatch {
        kernel: String,
        tree: PathBuf,
        recorded: String,
        now: String,
    },
    #[error("--tree {tree} cannot be used")]
    TreeUnusable {
        tree: PathBuf,
        #[source]
        source: Box<crate::provision::kbuild::KbuildError>,
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
    #[error("cannot write bundle {path}")]
    BundleWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReproduceError {
    /// Bad input (exit 2) — a folder that is not a run, a record or bundle rig refuses, a
    /// kernel that is gone or changed, a `--tree` that is missing or not the run's — as opposed
    /// to rig failing to run it (125).
    pub fn is_bad_input(&self) -> bool {
        use crate::host::exit::{Classify, ExitClass};
        self.exit_class() == ExitClass::BadInput
    }
}
