//! virtio-mem: a device of the scenario's `devices:` whose memory `memory_resize` plugs and
//! unplugs through QMP (`qom-set requested-size`), and whose memory blocks `memory_online` /
//! `memory_offline` drive through sysfs.
//!
//! QEMU reports the plugged size in `query-memory-devices` and announces changes with
//! `MEMORY_DEVICE_SIZE_CHANGE` (rate-limited to one a second per device, the last one always
//! delivered); a resize waits for those events and confirms each with a query.

use super::exec::{Exec, StepError};
use super::mem_blocks::BlockRange;
use crate::machine::vm::Vm;
use crate::scenario::{BoardDevice, MemoryResizeStep};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

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
pub(super) fn resize(
    vm: &mut Vm,
    m: &MemoryResizeStep,
    deadline: Instant,
) -> Result<(), StepError> {
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

impl Exec<'_> {
    /// Learns where each virtio-mem device's blocks are (its address from QEMU, the block size
    /// from the guest), once per boot.
    pub(super) fn init_virtio_mem(&mut self, devices: &[BoardDevice]) -> Result<(), StepError> {
        let ids: Vec<&str> = devices
            .iter()
            .filter_map(|d| match d {
                BoardDevice::VirtioMem { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let bs = self.block_size()?;
        for id in ids {
            let info = device_info(&mut self.guest.vm, id)?;
            let (Some(addr), Some(size)) = (info["memaddr"].as_u64(), info["max-size"].as_u64())
            else {
                return Err(StepError::Rig(format!(
                    "virtio-mem {id} has no address: {info}"
                )));
            };
            self.virtio
                .insert(id.to_string(), BlockRange::new(addr, size, bs));
        }
        Ok(())
    }

    pub(super) fn memory_resize(&mut self, m: &MemoryResizeStep) -> Result<(), StepError> {
        resize(&mut self.guest.vm, m, self.deadline)?;
        if !m.wait {
            return Ok(());
        }
        let range = self.virtio_range(&m.id)?;
        let blocks = m.size_bytes / range.block_bytes;
        self.wait_guest(
            &range.present_cond(blocks),
            m.timeout,
            &format!(
                "the guest does not have the {blocks} memory blocks virtio-mem {} plugged",
                m.id
            ),
        )
    }

    pub(super) fn virtio_range(&self, id: &str) -> Result<BlockRange, StepError> {
        self.virtio
            .get(id)
            .copied()
            .ok_or_else(|| StepError::Rig(format!("no virtio-mem device `{id}` on the board")))
    }

    /// The guest's memory block size.
    pub(super) fn block_size(&mut self) -> Result<u64, StepError> {
        let bs = self.sh_ok(
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
}
