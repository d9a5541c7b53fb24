//! `memory_online` and `memory_offline`: the guest onlines (into a zone) or offlines the memory
//! blocks of a DIMM ([`super::memory`]) or of a virtio-mem device ([`super::virtio_mem`])
//! through sysfs. Guest-side: a background job inside `parallel`.

use super::check::{list, Check, Ids, R};
use super::engine::shell::checked;
use super::engine::{Engine, StepError};
use super::kind::{ExpectStatus, InParallel, Kind, RawKind};
use super::memory::{Dimms, MEMORY_TIMEOUT};
use super::scalars::HumanDuration;
use super::virtio_mem::Ranges;
use super::{Feature, Step, StepKind, Within};
use rig_yaml::Path;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The zone `memory_online` puts a block into: the value written to its `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    /// `online_movable`: the block can be offlined and removed again.
    #[default]
    Movable,
    /// `online_kernel`: kernel allocations may pin it.
    Kernel,
    /// `online`: the kernel's default policy.
    Auto,
}

impl Zone {
    /// What to write to `/sys/devices/system/memory/memoryN/state`.
    pub fn state_value(self) -> &'static str {
        match self {
            Zone::Movable => "online_movable",
            Zone::Kernel => "online_kernel",
            Zone::Auto => "online",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a memory_online step: {id: …, zone, timeout, may_fail, name}"
)]
pub struct RawMemoryOnline {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    #[serde(default)]
    pub zone: Option<Zone>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a memory_offline step: {id: …, timeout, may_fail, name}"
)]
pub struct RawMemoryOffline {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

/// Online every memory block of DIMM `id` (or every present, offline block of virtio-mem
/// device `id`) through sysfs into `zone`.
#[derive(Debug, Clone)]
pub struct MemoryOnlineStep {
    pub id: String,
    pub zone: Zone,
    pub timeout: Duration,
}

/// Offline every memory block of DIMM `id` (or every present, online block of virtio-mem
/// device `id`) through sysfs.
#[derive(Debug, Clone)]
pub struct MemoryOfflineStep {
    pub id: String,
    pub timeout: Duration,
}

/// The feature a step on memory `id` needs: on a virtio-mem device `virtio_mem`, on a DIMM
/// `memory_hotplug`. An unknown id needs nothing here: the id check says what is wrong with it.
fn feature(id: &str, ids: &Ids) -> Option<Feature> {
    if ids.virtio_mem.contains(id) {
        Some(Feature::VirtioMem)
    } else if ids.dimms.contains(id) {
        Some(Feature::MemoryHotplug)
    } else {
        None
    }
}

/// A memory id: a DIMM some `memory_add` plugs, or a virtio-mem device.
fn memory_id(cx: &Check, id: &str, path: &Path) -> R<()> {
    if cx.ids.dimms.contains(id) || cx.ids.virtio_mem.contains(id) {
        return Ok(());
    }
    Err(cx.err(
        path,
        format!(
            "no memory_add step creates `{id}` and no virtio_mem device has that id \
             (DIMMs: {}; virtio-mem: {})",
            list(&cx.ids.dimms),
            list(&cx.ids.virtio_mem)
        ),
    ))
}

impl RawKind for RawMemoryOnline {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, ids: &Ids) -> Option<Feature> {
        feature(&self.id, ids)
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Guest
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let m = self;
        memory_id(cx, &m.id, &kp.key("id"))?;
        Ok((
            cx.name(m.name, kp)?,
            StepKind::MemoryOnline(MemoryOnlineStep {
                id: m.id,
                zone: m.zone.unwrap_or_default(),
                timeout: cx.timeout(m.timeout, MEMORY_TIMEOUT, kp)?,
            }),
        ))
    }
}

impl RawKind for RawMemoryOffline {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, ids: &Ids) -> Option<Feature> {
        feature(&self.id, ids)
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Guest
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let m = self;
        memory_id(cx, &m.id, &kp.key("id"))?;
        Ok((
            cx.name(m.name, kp)?,
            StepKind::MemoryOffline(MemoryOfflineStep {
                id: m.id,
                timeout: cx.timeout(m.timeout, MEMORY_TIMEOUT, kp)?,
            }),
        ))
    }
}

/// The guest command that writes `value` (`None`: offline) to the state of memory `id`'s blocks.
fn state_cmd(e: &Engine<'_>, id: &str, value: Option<&str>) -> Result<String, StepError> {
    if let Some(r) = e.kept_ref::<Ranges>().and_then(|r| r.get(id)) {
        return Ok(match value {
            None => r.offline_cmd(),
            Some(v) => r.online_cmd(v),
        });
    }
    let value = value.unwrap_or("offline");
    let blocks = e
        .kept_ref::<Dimms>()
        .and_then(|d| d.blocks.get(id))
        .ok_or_else(|| {
            StepError::Rig(format!(
                "no DIMM `{id}` was added by an earlier memory_add step"
            ))
        })?;
    Ok(blocks
        .iter()
        .map(|b| format!("echo {value} > /sys/devices/system/memory/memory{b}/state"))
        .collect::<Vec<_>>()
        .join(" && "))
}

/// Runs [`state_cmd`] as a step.
fn exec_state(
    e: &mut Engine<'_>,
    id: &str,
    value: Option<&str>,
    timeout: Duration,
) -> Result<(), StepError> {
    let cmd = state_cmd(e, id, value)?;
    e.sh_ok(&cmd, timeout, "changing memory block state")
        .map(drop)
}

/// [`state_cmd`] as a background job of `parallel`.
fn job(
    e: &Engine<'_>,
    step: &Step,
    id: &str,
    value: Option<&str>,
) -> Option<Result<String, StepError>> {
    Some(
        state_cmd(e, id, value)
            .map(|cmd| checked(&cmd, &ExpectStatus::OneOf(vec![0]), step.may_fail)),
    )
}

impl Kind for MemoryOnlineStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        exec_state(e, &self.id, Some(self.zone.state_value()), self.timeout)
    }

    fn job_script(&self, step: &Step, e: &Engine<'_>) -> Option<Result<String, StepError>> {
        job(e, step, &self.id, Some(self.zone.state_value()))
    }
}

impl Kind for MemoryOfflineStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        exec_state(e, &self.id, None, self.timeout)
    }

    fn job_script(&self, step: &Step, e: &Engine<'_>) -> Option<Result<String, StepError>> {
        job(e, step, &self.id, None)
    }
}
