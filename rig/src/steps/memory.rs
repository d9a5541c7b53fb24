//! `memory_add` and `memory_remove`: a `pc-dimm` backed by a new RAM backend, plugged and
//! removed through QMP, and waited for until the guest has (or no longer has) its memory
//! blocks. What the guest makes of the blocks is [`super::memory_state`]'s.

use super::check::{Check, Ids, R};
use super::engine::{Engine, StepError};
use super::kind::{InParallel, Kind, RawKind};
use super::scalars::{HumanDuration, Size};
use super::{Feature, Step, StepKind, Within};
use crate::host::text::error_chain;
use crate::machine::vm::Vm;
use rig_yaml::Path;
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The default `timeout` of the memory steps.
pub const MEMORY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a memory_add step: {id: …, size: 256M, timeout, may_fail, name}"
)]
pub struct RawMemoryAdd {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    pub size: Size,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a memory_remove step: {id: …, wait, timeout, may_fail, name}"
)]
pub struct RawMemoryRemove {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    #[serde(default)]
    pub wait: Option<bool>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

/// Plug a `pc-dimm` of `size_bytes` (a multiple of the memory block size) with id `id`, backed by
/// a new memory backend, and wait until the guest has its memory blocks.
#[derive(Debug, Clone)]
pub struct MemoryAddStep {
    pub id: String,
    pub size_bytes: u64,
    pub timeout: Duration,
}

/// `device_del` the DIMM; with `wait`, wait for `DEVICE_DELETED`.
#[derive(Debug, Clone)]
pub struct MemoryRemoveStep {
    pub id: String,
    pub wait: bool,
    pub timeout: Duration,
}

impl RawKind for RawMemoryAdd {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::MemoryHotplug)
    }

    fn collect_ids(&self, ids: &mut Ids) {
        ids.dimms.insert(self.id.clone());
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Never
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let m = self;
        cx.qemu_id(&m.id, &kp.key("id"))?;
        let size = m.size.0;
        if size == 0 {
            return Err(cx.err(&kp.key("size"), "size must be more than 0"));
        }
        let room = super::check::allow::HOTPLUG_ROOM;
        if size > room {
            return Err(cx.err(
                &kp.key("size"),
                format!(
                    "size must be at most {} MiB (the boards' hot-plug room)",
                    room >> 20
                ),
            ));
        }
        for b in &cx.boards {
            let block = b.memory_block_mib() << 20;
            if !size.is_multiple_of(block) {
                return Err(cx.err(
                    &kp.key("size"),
                    format!(
                        "size must be a multiple of {b}'s memory block size ({} MiB)",
                        b.memory_block_mib()
                    ),
                ));
            }
        }
        cx.add_memory(&format!("DIMM {}", m.id), size, &kp.key("size"))?;
        Ok((
            cx.name(m.name, kp)?,
            StepKind::MemoryAdd(MemoryAddStep {
                id: m.id,
                size_bytes: size,
                timeout: cx.timeout(m.timeout, MEMORY_TIMEOUT, kp)?,
            }),
        ))
    }
}

impl RawKind for RawMemoryRemove {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::MemoryHotplug)
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Host
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let m = self;
        cx.known_id(&m.id, &cx.ids.dimms, "memory_add", &kp.key("id"))?;
        Ok((
            cx.name(m.name, kp)?,
            StepKind::MemoryRemove(MemoryRemoveStep {
                id: m.id,
                wait: m.wait.unwrap_or(true),
                timeout: cx.timeout(m.timeout, MEMORY_TIMEOUT, kp)?,
            }),
        ))
    }
}

/// The DIMMs of this boot.
#[derive(Default)]
pub(super) struct Dimms {
    /// DIMM id → its memory block numbers in the guest.
    pub(super) blocks: HashMap<String, Vec<u64>>,
    /// DIMMs whose `device_del` went out without waiting: their `DEVICE_DELETED` is pending.
    unplugging: HashSet<String>,
}

impl Kind for MemoryAddStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let m = self;
        let t = e.clamp(m.timeout);
        free_dimm_id(e, &m.id, t)?;
        let backend = format!("mem-{}", m.id);
        e.vm()
            .qmp()
            .object_add(
                "memory-backend-ram",
                &backend,
                json!({"size": m.size_bytes}),
            )
            .map_err(StepError::from)?;
        e.vm()
            .qmp()
            .device_add("pc-dimm", &m.id, &[("memdev", json!(backend))])
            .map_err(StepError::from)?;
        let blocks = dimm_blocks(e, &m.id)?;
        let cond = blocks
            .iter()
            .map(|b| format!("[ -e /sys/devices/system/memory/memory{b} ]"))
            .collect::<Vec<_>>()
            .join(" && ");
        e.wait_guest(
            &cond,
            m.timeout,
            &format!("memory blocks of {} never appeared", m.id),
        )?;
        e.kept::<Dimms>().blocks.insert(m.id.clone(), blocks);
        Ok(())
    }
}

impl Kind for MemoryRemoveStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    /// Removes a DIMM: `device_del` (unless one is already in flight), then, when waiting, its
    /// `DEVICE_DELETED` and the backend's `object-del`.
    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let m = self;
        let rig_err = |e: crate::machine::vm::VmError| StepError::Rig(error_chain(&e));
        let present = dimm_present(e.vm(), &m.id)?;
        let in_flight = e.kept::<Dimms>().unplugging.contains(&m.id);
        if !m.wait {
            if present && !in_flight {
                e.vm()
                    .qmp_raw("device_del", Some(json!({"id": m.id})))
                    .map_err(rig_err)?;
                e.kept::<Dimms>().unplugging.insert(m.id.clone());
            }
            return Ok(());
        }
        let t = e.clamp(m.timeout);
        let removed = if in_flight {
            if present {
                e.vm()
                    .wait_qmp_event("DEVICE_DELETED", Some(("device", &m.id)), t)
                    .map(drop)
            } else {
                Ok(())
            }
        } else if present {
            e.kept::<Dimms>().unplugging.insert(m.id.clone());
            e.vm().device_del_within(&m.id, t)
        } else {
            Ok(())
        };
        if let Err(err) = removed {
            return Err(match StepError::from(err) {
                StepError::NotDone(why) => StepError::NotDone(format!(
                    "DIMM {} was not ejected within {:?}: {why}",
                    m.id, m.timeout
                )),
                rig => rig,
            });
        }
        let dimms = e.kept::<Dimms>();
        dimms.unplugging.remove(&m.id);
        dimms.blocks.remove(&m.id);
        e.vm()
            .qmp()
            .object_del(&format!("mem-{}", m.id))
            .map_err(StepError::from)
    }

    fn host_side(&self) -> bool {
        true
    }

    fn exec_host(&self, vm: &mut Vm, deadline: Instant) -> Result<(), StepError> {
        if !self.wait {
            return vm
                .qmp_raw("device_del", Some(json!({"id": self.id})))
                .map(drop)
                .map_err(StepError::from);
        }
        let t = self
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        vm.device_del_within(&self.id, t).map_err(Into::into)
    }

    /// A removal without `wait` is in flight; one that waited took the DIMM's blocks along.
    fn after_host(&self, e: &mut Engine<'_>, ok: bool) {
        let dimms = e.kept::<Dimms>();
        if !self.wait && ok {
            dimms.unplugging.insert(self.id.clone());
        } else if self.wait && ok {
            dimms.blocks.remove(&self.id);
        }
    }
}

/// Whether QEMU still lists DIMM `id`.
fn dimm_present(vm: &mut Vm, id: &str) -> Result<bool, StepError> {
    Ok(vm
        .qmp_raw("query-memory-devices", None)
        .map_err(StepError::from)?
        .as_array()
        .is_some_and(|a| a.iter().any(|d| d["data"]["id"] == id)))
}

/// Before DIMM `id` is plugged again: an earlier removal of it must have happened. One still
/// in flight gets `timeout` to finish; a DIMM the guest never ejected is the kernel's
/// failure (the removal did not happen), named as such, not a QMP collision. A backend
/// left behind by a removal that failed is deleted.
fn free_dimm_id(e: &mut Engine<'_>, id: &str, timeout: Duration) -> Result<(), StepError> {
    if dimm_present(e.vm(), id)? {
        if !e.kept::<Dimms>().unplugging.contains(id) {
            return Err(StepError::Rig(format!(
                "DIMM {id} is already plugged (no removal of it was asked for before this \
                 memory_add)"
            )));
        }
        let waited = e
            .vm()
            .wait_qmp_event("DEVICE_DELETED", Some(("device", id)), timeout);
        if waited.is_err() && dimm_present(e.vm(), id)? {
            return Err(StepError::NotDone(format!(
                "DIMM {id} was never ejected: its earlier removal (device_del) got no \
                 DEVICE_DELETED, and {timeout:?} more did not help, so it cannot be plugged again"
            )));
        }
    }
    let dimms = e.kept::<Dimms>();
    dimms.unplugging.remove(id);
    dimms.blocks.remove(id);
    let backend = format!("mem-{id}");
    let backends = e
        .vm()
        .qmp_raw("qom-list", Some(json!({"path": "/objects"})))
        .map_err(StepError::from)?;
    let left_behind = backends
        .as_array()
        .is_some_and(|a| a.iter().any(|o| o["name"] == backend.as_str()));
    if left_behind {
        e.vm().qmp().object_del(&backend).map_err(StepError::from)?;
    }
    Ok(())
}

/// The guest memory block numbers a DIMM covers (from QEMU's address and the guest's block size).
fn dimm_blocks(e: &mut Engine<'_>, id: &str) -> Result<Vec<u64>, StepError> {
    let devs = e
        .vm()
        .qmp_raw("query-memory-devices", None)
        .map_err(StepError::from)?;
    let data = devs
        .as_array()
        .and_then(|a| a.iter().find(|d| d["data"]["id"] == id))
        .map(|d| d["data"].clone())
        .ok_or_else(|| StepError::Rig(format!("QEMU does not list DIMM {id}")))?;
    let (addr, size) = match (data["addr"].as_u64(), data["size"].as_u64()) {
        (Some(a), Some(s)) => (a, s),
        _ => return Err(StepError::Rig(format!("DIMM {id} has no address: {data}"))),
    };
    let bs = e.sh_ok(
        "cat /sys/devices/system/memory/block_size_bytes",
        Duration::from_secs(30),
        "reading the memory block size",
    )?;
    let bs = u64::from_str_radix(bs.trim(), 16)
        .map_err(|e| StepError::Rig(format!("block_size_bytes `{}`: {e}", bs.trim())))?;
    if bs == 0 {
        return Err(StepError::Rig("memory block size is 0".into()));
    }
    Ok((addr / bs..(addr + size) / bs).collect())
}
