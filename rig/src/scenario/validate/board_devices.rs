//! Validation of `devices:` (the steps that drive them are `crate::steps`').

use crate::scenario::raw::RawDevice;
use crate::scenario::*;
use crate::steps::check::allow::HOTPLUG_ROOM;
use crate::steps::check::host::{safe, Place};
use crate::steps::check::{Check, R};
use crate::steps::virtio_mem::BLOCK;
use rig_yaml::Path;

impl Check<'_> {
    pub(super) fn devices(&self, raw: Vec<RawDevice>, path: &Path) -> R<Vec<BoardDevice>> {
        let mut out: Vec<BoardDevice> = Vec::new();
        let mut virtio_total = 0u64;
        for (i, d) in raw.into_iter().enumerate() {
            let p = path.index(i);
            let dev = match d {
                RawDevice::Qemu(q) => {
                    let kp = p.key("qemu");
                    let ok = safe(&q.driver, "-_.");
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
}
