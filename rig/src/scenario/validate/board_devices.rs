//! Validation of `devices:` and of the steps that drive them (`memory_resize`), of the
//! `of_unittest` step, and which feature a memory step needs (a DIMM's or virtio-mem's).

use super::allow::HOTPLUG_ROOM;
use super::host::Place;
use super::{list, R, V};
use crate::scenario::raw::RawStep;
use crate::scenario::raw_board_devices::{RawDevice, RawMemoryResize, RawOfUnittest};
use crate::scenario::*;
use rig_yaml::Path;

/// Memory blocks are 128 MiB on both boards; virtio-mem sizes are whole blocks.
const BLOCK: u64 = 128 << 20;

impl V<'_> {
    pub(super) fn devices(&self, raw: Vec<RawDevice>, path: &Path) -> R<Vec<BoardDevice>> {
        let mut out: Vec<BoardDevice> = Vec::new();
        let mut virtio_total = 0u64;
        for (i, d) in raw.into_iter().enumerate() {
            let p = path.index(i);
            let dev = match d {
                RawDevice::Qemu(q) => {
                    let kp = p.key("qemu");
                    let ok = super::host::safe(&q.driver, "-_.");
                    if !ok {
                        return Err(self.err(
                            &kp.key("driver"),
                            format!("invalid QEMU device driver `{}`", q.driver),
                        ));
                    }
                    if let Some(id) = &q.id {
                        self.qemu_id(id, &kp.key("id"))?;
                    }
                    let props = q.props.unwrap_or_default();
                    for (k, v) in &props {
                        let scalar = !(v.is_object() || v.is_array() || v.is_null());
                        let text = v.to_string();
                        if !scalar || text.contains(',') || k.contains(',') || k.contains('=') {
                            return Err(self.err(
                                &kp.key("props").key(k),
                                "device properties are scalars without `,`",
                            ));
                        }
                        if matches!(k.as_str(), "id" | "driver") {
                            return Err(self.err_key(
                                &kp.key("props").key(k),
                                format!("`{k}` is a field of the device, not a property"),
                            ));
                        }
                    }
                    // The allow-list of `device_add` holds for boot-time devices too.
                    self.device(
                        &q.driver,
                        &props,
                        (&kp.key("driver"), &kp.key("props")),
                        Place::Boot,
                    )?;
                    BoardDevice::Qemu {
                        driver: q.driver,
                        id: q.id,
                        props,
                    }
                }
                RawDevice::VirtioMem(m) => {
                    let kp = p.key("virtio_mem");
                    self.qemu_id(&m.id, &kp.key("id"))?;
                    if !self.requires.contains(&Feature::VirtioMem) {
                        return Err(self.err_key(
                            &kp,
                            "virtio_mem devices need `virtio_mem` in the scenario's `requires`",
                        ));
                    }
                    let size = m.size.0;
                    if size == 0 || !size.is_multiple_of(BLOCK) {
                        return Err(self.err(
                            &kp.key("size"),
                            "size must be a non-zero multiple of the memory block size (128 MiB)",
                        ));
                    }
                    virtio_total += size;
                    if virtio_total > HOTPLUG_ROOM {
                        return Err(self.err(
                            &kp.key("size"),
                            format!(
                                "virtio-mem devices may hold at most {} GiB together (the boards' \
                                 maxmem is {} GiB, up to {} GiB of it booted)",
                                HOTPLUG_ROOM >> 30,
                                crate::host::board::MAX_MEMORY_MIB >> 10,
                                (2 * crate::host::board::DEFAULT_MEMORY_MIB) >> 10
                            ),
                        ));
                    }
                    BoardDevice::VirtioMem {
                        id: m.id,
                        size_bytes: size,
                    }
                }
            };
            if let Some(id) = dev.id() {
                if out.iter().any(|d| d.id() == Some(id)) {
                    return Err(self.err(&p, format!("device id `{id}` is used twice")));
                }
            }
            out.push(dev);
        }
        Ok(out)
    }

    /// The feature a step needs: memory_online/_offline on a virtio-mem device need
    /// `virtio_mem`, on a DIMM `memory_hotplug`.
    pub(super) fn implied_feature(&self, raw: &RawStep) -> Option<Feature> {
        // An unknown id needs nothing here: the id check says what is wrong with it.
        let memory = |id: &str| {
            if self.ids.virtio_mem.contains(id) {
                Some(Feature::VirtioMem)
            } else if self.ids.dimms.contains(id) {
                Some(Feature::MemoryHotplug)
            } else {
                None
            }
        };
        match raw {
            RawStep::MemoryOnline(m) => memory(&m.id),
            RawStep::MemoryOffline(m) => memory(&m.id),
            other => other.implied_feature(),
        }
    }

    /// A memory id: a DIMM some `memory_add` plugs, or a virtio-mem device.
    pub(super) fn memory_id(&self, id: &str, path: &Path) -> R<()> {
        if self.ids.dimms.contains(id) || self.ids.virtio_mem.contains(id) {
            return Ok(());
        }
        Err(self.err(
            path,
            format!(
                "no memory_add step creates `{id}` and no virtio_mem device has that id \
                 (DIMMs: {}; virtio-mem: {})",
                list(&self.ids.dimms),
                list(&self.ids.virtio_mem)
            ),
        ))
    }

    pub(super) fn memory_resize(
        &self,
        m: RawMemoryResize,
        kp: &Path,
    ) -> R<(Option<String>, StepKind)> {
        let size = self.virtio_size(&m.id, &kp.key("id"))?;
        if !m.size.0.is_multiple_of(BLOCK) || m.size.0 > size {
            return Err(self.err(
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
            timeout: self.duration(m.timeout, defaults::MEMORY_TIMEOUT, &kp.key("timeout"))?,
        };
        Ok((self.name(m.name, kp)?, StepKind::MemoryResize(step)))
    }

    fn virtio_size(&self, id: &str, path: &Path) -> R<u64> {
        match self.ids.virtio_sizes.get(id) {
            Some(s) => Ok(*s),
            None => Err(self.err(
                path,
                format!(
                    "no virtio_mem device `{id}` in `devices` (virtio-mem: {})",
                    list(&self.ids.virtio_mem)
                ),
            )),
        }
    }

    pub(super) fn of_unittest(&self, u: RawOfUnittest, kp: &Path) -> R<(Option<String>, StepKind)> {
        let step = OfUnittestStep {
            timeout: self.duration(u.timeout, defaults::WAIT_LOG_TIMEOUT, &kp.key("timeout"))?,
        };
        Ok((self.name(u.name, kp)?, StepKind::OfUnittest(step)))
    }
}
