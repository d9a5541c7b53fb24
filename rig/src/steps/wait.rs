//! `wait_log` (wait for a kernel-log line) and `sleep`: steps that wait on the host.

use super::check::{Check, R};
use super::engine::log::Waited;
use super::engine::{Engine, StepError};
use super::kind::{InParallel, Kind, RawKind};
use super::scalars::{HumanDuration, Regex};
use super::{Step, StepKind, Within};
use crate::machine::vm::Vm;
use rig_yaml::Path;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The default `timeout` of `wait_log` (and `of_unittest`).
pub const WAIT_LOG_TIMEOUT: Duration = Duration::from_secs(20);

/// Which kernel-log lines `wait_log` considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Since {
    /// Lines printed after the step starts.
    #[default]
    Step,
    /// Every line since boot.
    Boot,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a wait_log step: {regex: …, timeout, since, name}"
)]
pub struct RawWaitLog {
    #[serde(default)]
    pub name: Option<String>,
    pub regex: Regex,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub since: Option<Since>,
}

/// `sleep: DURATION`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct RawSleep(pub HumanDuration);

/// Wait for a kernel-log line matching `regex`.
#[derive(Debug, Clone)]
pub struct WaitLogStep {
    pub regex: regex::Regex,
    pub timeout: Duration,
    pub since: Since,
}

impl RawKind for RawWaitLog {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Never
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let w = self;
        Ok((
            cx.name(w.name, kp)?,
            StepKind::WaitLog(WaitLogStep {
                regex: w.regex.0,
                timeout: cx.timeout(w.timeout, WAIT_LOG_TIMEOUT, kp)?,
                since: w.since.unwrap_or_default(),
            }),
        ))
    }
}

impl RawKind for RawSleep {
    fn timeout_given(&self) -> bool {
        true
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Guest
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        Ok((
            None,
            StepKind::Sleep(cx.duration(Some(self.0), Duration::ZERO, kp)?),
        ))
    }
}

impl Kind for WaitLogStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let w = self;
        let from = match w.since {
            Since::Boot => 0,
            Since::Step => e.log().mark(),
        };
        let deadline = Instant::now() + w.timeout.min(e.remaining());
        match e
            .log()
            .wait(from, deadline, |l| w.regex.is_match(l).then_some(()))
        {
            Waited::Found(()) => Ok(()),
            Waited::Closed => Err(e.console_closed()),
            Waited::Timeout => Err(StepError::Kernel(format!(
                "kernel log never matched /{}/ within {:?}",
                w.regex.as_str(),
                w.timeout
            ))),
        }
    }
}

/// `sleep`: on the host, or as a guest job inside a `repeat` in `parallel`.
impl Kind for Duration {
    fn timeout(&self) -> Duration {
        *self
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        None
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        std::thread::sleep((*self).min(e.remaining()));
        Ok(())
    }

    fn job_script(&self, _: &Step, _: &Engine<'_>) -> Option<Result<String, StepError>> {
        Some(Ok(format!("sleep {}", self.as_secs_f64())))
    }

    /// A sleep directly in `parallel` delays the host-side children after it.
    fn host_side(&self) -> bool {
        true
    }

    fn exec_host(&self, _: &mut Vm, deadline: Instant) -> Result<(), StepError> {
        std::thread::sleep((*self).min(deadline.saturating_duration_since(Instant::now())));
        Ok(())
    }
}
