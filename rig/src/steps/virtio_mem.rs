//! `memory_resize`: a virtio-mem device of the scenario's `devices:` whose memory is plugged
//! and unplugged through QMP (`qom-set requested-size`); `memory_online` / `memory_offline`
//! drive its memory blocks through sysfs ([`super::memory_state`]).
//!
//! QEMU reports the plugged size in `query-memory-devices` and announces changes with
//! `MEMORY_DEVICE_SIZE_CHANGE` (rate-limited to one a second per device, the last one always
//! delivered); a resize waits for those events and confirms each with a query.

use super::check::{list, Check, Ids, R};
use super::engine::{Engine, StepError};
use super::kind::{InParallel, Kind, RawKind};
use super::mem_blocks::BlockRange;
use super::memory::MEMORY_TIMEOUT;
use super::scalars::{HumanDuration, Size};
use super::{Feature, Step, StepKind, Within};
use crate::machine::vm::Vm;
use rig_yaml::Path;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Memory blocks are 128 MiB on both boards; virtio-mem sizes are whole blocks.
pub(crate) const BLOCK: u64 = 128 << 20;

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a memory_resize step: {id: …, size: 512M, wait, timeout, may_fail, name}"
)]
pub struct RawMemoryResize {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    pub size: Size,
    #[serde(default)]
    pub wait: Option<bool>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

/// Sets a virtio-mem device's `requested-size`; with `wait`, waits until the device reports
/// that much plugged (and, outside `parallel`, until the guest has exactly the memory blocks
/// that covers).
#[derive(Debug, Clone)]
pub struct MemoryResizeStep {
    pub id: String,
    pub size_bytes: u64,
    pub wait: bool,
    pub timeout: Duration,
}

impl RawKind for RawMemoryResize {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::VirtioMem)
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Host
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let m = self;
        let size = match cx.ids.virtio_sizes.get(&m.id) {
            Some(s) => *s,
            None => {
                return Err(cx.err(
                    &kp.key("id"),
                    format!(
                        "no virtio_mem device `{}` in `devices` (virtio-mem: {})",
                        m.id,
                        list(&cx.ids.virtio_mem)
                    ),
                ))
            }
        };
        if !m.size.0.is_multiple_of(BLOCK) || m.size.0 > size {
            return Err(cx.err(
                &kp.key("size"),
                format!(
                    "size must be a multiple of 128 MiB and at most the device's {} MiB",
                    size >> 20
                ),
            ));
        }
        let step = MemoryResizeStep {
            id: m.id,
            size_bytes: m.size.0,
            wait: m.wait.unwrap_or(true),
            timeout: cx.duration(m.timeout, MEMORY_TIMEOUT, &kp.key("timeout"))?,
        };
        Ok((cx.name(m.name, kp)?, StepKind::MemoryResize(step)))
    }
}

/// `data` of the virtio-mem device `id` in `query-memory-devices`.
fn device_info(vm: &mut Vm, id: &str) -> Result<Value, StepError> {
    let devs = vm
        .qmp_raw("query-memory-devices", None)
        .map_err(StepError::from)?;
    devs.as_array()
        .and_then(|a| {
            a.iter()
                .find(|d| d["type"] == "virtio-mem" && d["data"]["id"] == id)
        })
        .map(|d| d["data"].clone())
        .ok_or_else(|| StepError::Rig(format!("QEMU lists no virtio-mem device {id}")))
}

/// Sets `requested-size`; with `wait`, waits until the device reports that size plugged.
/// Waits end at `deadline` (the scenario's or the `parallel`'s) if it comes first.
fn resize(vm: &mut Vm, m: &MemoryResizeStep, deadline: Instant) -> Result<(), StepError> {
    vm.qmp_raw(
        "qom-set",
        Some(json!({
            "path": format!("/machine/peripheral/{}", m.id),
            "property": "requested-size",
            "value": m.size_bytes,
        })),
    )
    .map_err(StepError::from)?;
    if !m.wait {
        return Ok(());
    }
    let deadline = deadline.min(Instant::now() + m.timeout);
    loop {
        let size = device_info(vm, &m.id)?["size"].as_u64().unwrap_or(u64::MAX);
        if size == m.size_bytes {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let id = m.id.clone();
        let changed =
            move |e: &Value| e["event"] == "MEMORY_DEVICE_SIZE_CHANGE" && e["data"]["id"] == id;
        match vm.wait_qmp_event_matching("MEMORY_DEVICE_SIZE_CHANGE", &changed, left) {
            Ok(_) => {}
            Err(crate::machine::vm::VmError::Qmp {
                source: crate::machine::qmp::QmpError::EventTimeout { .. },
                ..
            }) => {
                return Err(StepError::NotDone(format!(
                    "virtio-mem {} has {} MiB plugged, not the {} MiB asked for, after {:?}",
                    m.id,
                    size >> 20,
                    m.size_bytes >> 20,
                    m.timeout
                )))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// virtio-mem device id → the guest memory blocks its region spans, for this boot.
#[derive(Default)]
pub(super) struct Ranges(HashMap<String, BlockRange>);

impl Ranges {
    pub(super) fn get(&self, id: &str) -> Option<&BlockRange> {
        self.0.get(id)
    }
}

/// Learns where each virtio-mem device's blocks are (its address from QEMU, the block size
/// from the guest), once per boot.
pub(crate) fn init(e: &mut Engine<'_>, ids: &[&str]) -> Result<(), StepError> {
    if ids.is_empty() {
        return Ok(());
    }
    let bs = block_size(e)?;
    for id in ids {
        let info = device_info(e.vm(), id)?;
        let (Some(addr), Some(size)) = (info["memaddr"].as_u64(), info["max-size"].as_u64()) else {
            return Err(StepError::Rig(format!(
                "virtio-mem {id} has no address: {info}"
            )));
        };
        e.kept::<Ranges>()
            .0
            .insert(id.to_string(), BlockRange::new(addr, size, bs));
    }
    Ok(())
}

/// The guest's memory block size.
fn block_size(e: &mut Engine<'_>) -> Result<u64, StepError> {
    let bs = e.sh_ok(
        "cat /sys/devices/system/memory/block_size_bytes",
        Duration::from_secs(30),
        "reading the memory block size",
    )?;
    match u64::from_str_radix(bs.trim(), 16) {
        Ok(0) => Err(StepError::Rig("memory block size is 0".into())),
        Ok(b) => Ok(b),
        Err(e) => Err(StepError::Rig(format!(
            "block_size_bytes `{}`: {e}",
            bs.trim()
        ))),
    }
}

impl Kind for MemoryResizeStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let m = self;
        let deadline = e.deadline();
        resize(e.vm(), m, deadline)?;
        if !m.wait {
            return Ok(());
        }
        let range = e
            .kept_ref::<Ranges>()
            .and_then(|r| r.get(&m.id))
            .copied()
            .ok_or_else(|| {
                StepError::Rig(format!("no virtio-mem device `{}` on the board", m.id))
            })?;
        let blocks = m.size_bytes / range.block_bytes;
        e.wait_guest(
            &range.present_cond(blocks),
            m.timeout,
            &format!(
                "the guest does not have the {blocks} memory blocks virtio-mem {} plugged",
                m.id
            ),
        )
    }

    fn host_side(&self) -> bool {
        true
    }

    fn exec_host(&self, vm: &mut Vm, deadline: Instant) -> Result<(), StepError> {
        resize(vm, self, deadline)
    }
}
