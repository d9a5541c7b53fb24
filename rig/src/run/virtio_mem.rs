//! virtio-mem: a device of the scenario's `devices:` whose memory `memory_resize` plugs and
//! unplugs through QMP (`qom-set requested-size`), and whose memory blocks `memory_online` /
//! `memory_offline` drive through sysfs.
//!
//! QEMU reports the plugged size in `query-memory-devices` and announces changes with
//! `MEMORY_DEVICE_SIZE_CHANGE` (rate-limited to one a second per device, the last one always
//! delivered); a resize waits for those events and confirms each with a query.

use super::exec::{error_chain, Exec, StepError};
use crate::machine::vm::Vm;
use crate::scenario::{BoardDevice, MemoryResizeStep};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The guest memory blocks a virtio-mem device's region spans (whether plugged or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BlockRange {
    pub(super) first: u64,
    /// Exclusive.
    pub(super) end: u64,
    pub(super) block_bytes: u64,
}

impl BlockRange {
    /// The whole blocks inside `[addr, addr + size)`.
    pub(super) fn new(addr: u64, size: u64, block_bytes: u64) -> BlockRange {
        BlockRange {
            first: addr.div_ceil(block_bytes),
            end: (addr + size) / block_bytes,
            block_bytes,
        }
    }

    /// A shell loop over the blocks present in the guest, running `body` with `$f` set to the
    /// block's `state` file; the whole command fails when any `body` failed.
    fn each_present(&self, body: &str) -> String {
        format!(
            "s=0; for b in $(seq {} {}); do f=/sys/devices/system/memory/memory$b/state; \
             [ -e $f ] || continue; {body}; done; [ $s -eq 0 ]",
            self.first,
            self.end.saturating_sub(1)
        )
    }

    /// Onlines every present block that is offline (blocks come and go while the device
    /// resizes: missing ones are skipped).
    pub(super) fn online_cmd(&self, state: &str) -> String {
        self.each_present(&format!(
            "[ \"$(cat $f 2>/dev/null)\" = offline ] || continue; echo {state} > $f || s=1"
        ))
    }

    /// Offlines every present block that is online.
    pub(super) fn offline_cmd(&self) -> String {
        self.each_present(
            "[ \"$(cat $f 2>/dev/null)\" = online ] || continue; echo offline > $f || s=1",
        )
    }

    /// Holds when exactly `blocks` of the range are present in the guest.
    pub(super) fn present_cond(&self, blocks: u64) -> String {
        format!(
            "[ $(for b in $(seq {} {}); do [ -e /sys/devices/system/memory/memory$b ] && echo; \
             done | wc -l) -eq {blocks} ]",
            self.first,
            self.end.saturating_sub(1)
        )
    }
}

/// `data` of the virtio-mem device `id` in `query-memory-devices`.
fn device_info(vm: &mut Vm, id: &str) -> Result<Value, StepError> {
    let devs = vm
        .qmp_raw("query-memory-devices", None)
        .map_err(|e| StepError::Rig(error_chain(&e)))?;
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
    .map_err(|e| StepError::Rig(error_chain(&e)))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn block_range_covers_whole_blocks_only() {
        let r = BlockRange::new(0x1_4000_0000, 1024 * MIB, 128 * MIB);
        assert_eq!((r.first, r.end), (40, 48));
        // An unaligned start loses the partial first block.
        let r = BlockRange::new(0x1_4000_0000 + MIB, 1024 * MIB, 128 * MIB);
        assert_eq!((r.first, r.end), (41, 48));
    }

    fn run(script: &str, root: &std::path::Path) -> (i32, String) {
        // The commands address /sys/devices/system/memory: point them at a fake tree.
        let script = script.replace("/sys/devices/system/memory", &root.display().to_string());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn state_commands_skip_missing_blocks_and_blocks_already_there() {
        let d = tempfile::tempdir().unwrap();
        for (b, st) in [(40, "offline"), (41, "online"), (43, "offline")] {
            let dir = d.path().join(format!("memory{b}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("state"), st).unwrap();
        }
        let r = BlockRange::new(40 * 128 * MIB, 8 * 128 * MIB, 128 * MIB);
        assert_eq!(run(&r.present_cond(3), d.path()).0, 0);
        assert_eq!(run(&r.present_cond(2), d.path()).0, 1);
        assert_eq!(run(&r.online_cmd("online_movable"), d.path()).0, 0);
        let state = |b: u32| {
            std::fs::read_to_string(d.path().join(format!("memory{b}/state")))
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(state(40), "online_movable");
        assert_eq!(state(41), "online");
        assert_eq!(state(43), "online_movable");
        // offline only touches blocks that read back `online`.
        std::fs::write(d.path().join("memory40/state"), "online").unwrap();
        assert_eq!(run(&r.offline_cmd(), d.path()).0, 0);
        assert_eq!(state(40), "offline");
        assert_eq!(state(43), "online_movable");
    }
}
