//! What a step kind's family implements: [`RawKind`] for the raw form (validation, the feature
//! it implies, the ids it creates, where it may stand) and [`Kind`] for the engine form (its
//! timeout, where it runs, how it executes). The dispatch ([`super::RawStep`],
//! [`super::StepKind`]) calls these; nothing else matches on the kinds.

use super::check::{Check, Ids, R};
use super::engine::shell::checked;
use super::engine::{Engine, StepError};
use super::{Feature, RawStep, Step, StepKind, Within};
use crate::guest::transport::Via;
use crate::machine::vm::Vm;
use rig_yaml::Path;
use std::time::{Duration, Instant};

/// How a kind may stand inside `parallel` (validation refuses the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InParallel {
    /// Guest-side: a background job of the guest shell or an ssh channel, so also inside a
    /// `repeat` in `parallel` (one guest job loops over those).
    Guest,
    /// Host-side: runs on the host thread, so not inside a `repeat` in `parallel`.
    Host,
    /// Sets something up and waits for the guest to agree: never inside `parallel`.
    Never,
    /// `parallel` itself, which does not nest.
    Parallel,
}

/// The raw form of a kind, as the file writes it.
pub(crate) trait RawKind {
    /// Whether the file gave the step a timeout (kinds without one have none to give: true).
    fn timeout_given(&self) -> bool;

    /// `may_fail: true` (kinds without the key: false).
    fn may_fail(&self) -> bool {
        false
    }

    /// The feature a step of this kind cannot run without (the scenario must `require` it);
    /// `ids`: what the scenario creates, for kinds whose feature depends on their target.
    fn implied_feature(&self, _ids: &Ids) -> Option<Feature> {
        None
    }

    /// Notes the ids the step creates, which later steps may name (before any validation).
    fn collect_ids(&self, _ids: &mut Ids) {}

    /// The steps inside it (`parallel`, `repeat`).
    fn children(&self) -> &[RawStep] {
        &[]
    }

    fn in_parallel(&self) -> InParallel;

    /// Raw → engine kind, with the step's name; errors point into the file below `kp` (the
    /// kind's key). `within`: where the step stands (for the steps inside it).
    fn validate(self, cx: &Check, kp: &Path, within: Within) -> R<(Option<String>, StepKind)>
    where
        Self: Sized;
}

/// The exit statuses a guest command may end with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectStatus {
    Any,
    /// One of these (non-empty, each 0..=255).
    OneOf(Vec<i32>),
}

impl ExpectStatus {
    pub fn accepts(&self, status: i32) -> bool {
        match self {
            ExpectStatus::Any => true,
            ExpectStatus::OneOf(v) => v.contains(&status),
        }
    }
}

/// A guest shell command a step is: the line, its transport and the statuses that pass.
pub(crate) struct ShellCommand {
    pub(crate) cmd: String,
    pub(crate) via: Via,
    pub(crate) expect: ExpectStatus,
}

/// The engine form of a kind: where it runs and how.
pub(crate) trait Kind {
    /// How long the step may take.
    fn timeout(&self) -> Duration;

    /// The step's own timeout, for the kinds that have one (the engine scales defaults).
    fn timeout_mut(&mut self) -> Option<&mut Duration>;

    /// The steps inside it (`parallel`, `repeat`).
    fn children(&self) -> &[Step] {
        &[]
    }

    /// [`Kind::children`], to change them.
    fn children_mut(&mut self) -> &mut [Step] {
        &mut []
    }

    /// For steps that are one guest shell command: it, its transport (a step over ssh makes the
    /// guest start its ssh server) and the statuses that pass. Inside `parallel`, such a step
    /// over ssh runs on its own ssh channel.
    fn shell_command(&self) -> Option<ShellCommand> {
        None
    }

    /// Runs the step on its own (not inside `parallel`).
    fn exec(&self, step: &Step, e: &mut Engine<'_>) -> Result<(), StepError>;

    /// The guest shell script that runs the step as a background job of `parallel` (or inside
    /// a `repeat` there), for guest-side kinds; `None`: not guest-side.
    fn job_script(&self, step: &Step, _e: &Engine<'_>) -> Option<Result<String, StepError>> {
        self.shell_command()
            .map(|c| Ok(checked(&c.cmd, &c.expect, step.may_fail)))
    }

    /// Whether the step runs on the host thread when it is a direct child of `parallel`.
    fn host_side(&self) -> bool {
        false
    }

    /// Runs a host-side step inside `parallel`, on the host thread with QEMU only; no wait
    /// outlasts `deadline`.
    fn exec_host(&self, _vm: &mut Vm, _deadline: Instant) -> Result<(), StepError> {
        Err(StepError::Rig("not a host-side step".into()))
    }

    /// After [`Kind::exec_host`] ran inside `parallel` (`ok`: it did not fail): what the
    /// engine keeps about it.
    fn after_host(&self, _e: &mut Engine<'_>, _ok: bool) {}
}
