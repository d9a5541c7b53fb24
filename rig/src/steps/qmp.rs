//! `qmp`: any allowed QMP command ([`super::check::host`] holds the allow-list), optionally
//! waiting for an event. Runs on the host, also inside `parallel`.

use super::check::{Check, Ids, R};
use super::engine::{Engine, StepError};
use super::kind::{InParallel, Kind, RawKind};
use super::scalars::HumanDuration;
use super::{JsonMap, Step, StepKind, Within};
use crate::machine::vm::Vm;
use rig_yaml::Path;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The default `timeout`.
pub const QMP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a QMP event to wait for: {event: NAME, data: {…}}"
)]
pub struct RawEventWait {
    pub event: String,
    #[serde(default)]
    pub data: Option<JsonMap>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a qmp step: {execute: …, arguments, wait_event, timeout, may_fail, name}"
)]
pub struct RawQmp {
    #[serde(default)]
    pub name: Option<String>,
    pub execute: String,
    #[serde(default)]
    pub arguments: Option<JsonMap>,
    #[serde(default)]
    pub wait_event: Option<RawEventWait>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

/// Any QMP command; optionally waits for an event whose `data` contains `data`.
#[derive(Debug, Clone)]
pub struct QmpStep {
    pub execute: String,
    pub arguments: JsonMap,
    pub wait_event: Option<EventWait>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventWait {
    pub event: String,
    /// Members the event's `data` must have (with equal values); empty matches any.
    pub data: JsonMap,
}

impl EventWait {
    pub fn matches(&self, event: &str, data: &serde_json::Value) -> bool {
        event == self.event
            && self
                .data
                .iter()
                .all(|(k, v)| data.get(k).is_some_and(|d| d == v))
    }
}

impl RawKind for RawQmp {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    /// Memory backends `object-add` creates (`device_add`'s `memdev` names one).
    fn collect_ids(&self, ids: &mut Ids) {
        if self.execute == "object-add" {
            let id = self.arguments.as_ref().and_then(|a| a.get("id"));
            if let Some(id) = id.and_then(|i| i.as_str()) {
                ids.objects.insert(id.to_string());
            }
        }
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Host
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let q = self;
        let arguments = q.arguments.unwrap_or_default();
        cx.qmp_command(&q.execute, &arguments, kp)?;
        let wait_event = match q.wait_event {
            None => None,
            Some(w) => {
                let ok = !w.event.is_empty()
                    && w.event
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !ok {
                    return Err(cx.err(
                        &kp.key("wait_event").key("event"),
                        format!(
                            "invalid QMP event name `{}` (events are upper case, like DEVICE_DELETED)",
                            w.event
                        ),
                    ));
                }
                Some(EventWait {
                    event: w.event,
                    data: w.data.unwrap_or_default(),
                })
            }
        };
        Ok((
            cx.name(q.name, kp)?,
            StepKind::Qmp(QmpStep {
                execute: q.execute,
                arguments,
                wait_event,
                timeout: cx.timeout(q.timeout, QMP_TIMEOUT, kp)?,
            }),
        ))
    }
}

impl QmpStep {
    fn arguments(&self) -> Option<Value> {
        (!self.arguments.is_empty()).then(|| Value::Object(self.arguments.clone()))
    }
}

impl Kind for QmpStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        e.vm()
            .qmp_raw(&self.execute, self.arguments())
            .map_err(StepError::from)?;
        if let Some(w) = &self.wait_event {
            let w = w.clone();
            let name = w.event.clone();
            let pred = move |ev: &Value| {
                w.matches(
                    ev.get("event").and_then(Value::as_str).unwrap_or_default(),
                    ev.get("data").unwrap_or(&Value::Null),
                )
            };
            let t = e.clamp(self.timeout);
            e.vm().wait_qmp_event_matching(&name, &pred, t)?;
        }
        Ok(())
    }

    fn host_side(&self) -> bool {
        true
    }

    fn exec_host(&self, vm: &mut Vm, _deadline: Instant) -> Result<(), StepError> {
        vm.qmp_raw(&self.execute, self.arguments())
            .map(drop)
            .map_err(StepError::from)
    }
}
