//! PCI and DIMM steps: hot-plug through QMP, then wait until the guest agrees.

use super::exec::{error_chain, Exec, StepError};
use crate::host::board::{Board, HOTPLUG_ROOT_PORTS};
use crate::scenario::{self, StepKind};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub(super) fn pci_address(query_pci: &Value, id: &str) -> Option<String> {
    /// (bus, slot, function, behind a bridge)
    pub(super) fn walk(devs: &Value, id: &str, behind: bool) -> Option<(u64, u64, u64, bool)> {
        for d in devs.as_array()? {
            if d["qdev_id"] == id {
                let (b, s, f) = (
                    d["bus"].as_u64()?,
                    d["slot"].as_u64()?,
                    d["function"].as_u64()?,
                );
                return Some((b, s, f, behind));
            }
            if let Some(found) = walk(&d["pci_bridge"]["devices"], id, true) {
                return Some(found);
            }
        }
        None
    }
    for bus in query_pci.as_array()? {
        if let Some((b, s, f, behind)) = walk(&bus["devices"], id, false) {
            // A device behind a bridge the guest has not numbered yet reports bus 0.
            if behind && b == 0 {
                return None;
            }
            return Some(format!("0000:{b:02x}:{s:02x}.{f}"));
        }
    }
    None
}

impl Exec<'_> {
    pub(super) fn pci_hotplug(&mut self, p: &scenario::PciHotplugStep) -> Result<(), StepError> {
        let port = match &p.port {
            Some(port) => port.clone(),
            None => (0..HOTPLUG_ROOT_PORTS)
                .map(Board::root_port_id)
                .find(|rp| !self.ports.values().any(|used| used == rp))
                .ok_or_else(|| {
                    StepError::Rig(format!(
                        "no free hot-plug root port (all {HOTPLUG_ROOT_PORTS} in use)"
                    ))
                })?,
        };
        let extra: Vec<(&str, Value)> = p
            .props
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        self.guest
            .vm
            .pci_add_with(&p.driver, &p.id, &port, &extra)
            .map_err(StepError::from)?;
        self.ports.insert(p.id.clone(), port);
        let addr = self.wait_pci_address(&p.id, self.clamp(p.timeout))?;
        self.wait_guest(
            &format!("[ -e /sys/bus/pci/devices/{addr} ]"),
            p.timeout,
            &format!("{} ({addr}) never appeared in the guest", p.id),
        )
    }

    pub(super) fn pci_unplug(&mut self, u: &scenario::PciUnplugStep) -> Result<(), StepError> {
        let addr = self.pci_address_now(&u.id);
        let t = self.clamp(u.timeout);
        self.guest.vm.device_del_within(&u.id, t)?;
        self.ports.remove(&u.id);
        match addr {
            Some(addr) => self.wait_guest(
                &format!("[ ! -e /sys/bus/pci/devices/{addr} ]"),
                u.timeout,
                &format!("{} ({addr}) is still in the guest", u.id),
            ),
            None => Ok(()),
        }
    }

    pub(super) fn memory_add(&mut self, m: &scenario::MemoryAddStep) -> Result<(), StepError> {
        self.free_dimm_id(&m.id, self.clamp(m.timeout))?;
        let backend = format!("mem-{}", m.id);
        self.guest
            .vm
            .qmp()
            .object_add(
                "memory-backend-ram",
                &backend,
                json!({"size": m.size_bytes}),
            )
            .map_err(StepError::from)?;
        self.guest
            .vm
            .qmp()
            .device_add("pc-dimm", &m.id, &[("memdev", json!(backend))])
            .map_err(StepError::from)?;
        let blocks = self.dimm_blocks(&m.id)?;
        let cond = blocks
            .iter()
            .map(|b| format!("[ -e /sys/devices/system/memory/memory{b} ]"))
            .collect::<Vec<_>>()
            .join(" && ");
        self.wait_guest(
            &cond,
            m.timeout,
            &format!("memory blocks of {} never appeared", m.id),
        )?;
        self.dimms.insert(m.id.clone(), blocks);
        Ok(())
    }

    /// Whether QEMU still lists DIMM `id`.
    fn dimm_present(&mut self, id: &str) -> Result<bool, StepError> {
        Ok(self
            .guest
            .vm
            .qmp_raw("query-memory-devices", None)
            .map_err(StepError::from)?
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d["data"]["id"] == id)))
    }

    /// Before DIMM `id` is plugged again: an earlier removal of it must have happened. One still
    /// in flight gets `timeout` to finish; a DIMM the guest never ejected is the kernel's
    /// failure (the removal did not happen), named as such, not a QMP collision. A backend
    /// left behind by a removal that failed is deleted.
    fn free_dimm_id(&mut self, id: &str, timeout: Duration) -> Result<(), StepError> {
        if self.dimm_present(id)? {
            if !self.unplugging.contains(id) {
                return Err(StepError::Rig(format!(
                    "DIMM {id} is already plugged (no removal of it was asked for before this \
                     memory_add)"
                )));
            }
            let waited =
                self.guest
                    .vm
                    .wait_qmp_event("DEVICE_DELETED", Some(("device", id)), timeout);
            if waited.is_err() && self.dimm_present(id)? {
                return Err(StepError::NotDone(format!(
                    "DIMM {id} was never ejected: its earlier removal (device_del) got no \
                     DEVICE_DELETED, and {timeout:?} more did not help, so it cannot be plugged again"
                )));
            }
        }
        self.unplugging.remove(id);
        self.dimms.remove(id);
        let backend = format!("mem-{id}");
        let backends = self
            .guest
            .vm
            .qmp_raw("qom-list", Some(json!({"path": "/objects"})))
            .map_err(StepError::from)?;
        let left_behind = backends
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o["name"] == backend.as_str()));
        if left_behind {
            self.guest
                .vm
                .qmp()
                .object_del(&backend)
                .map_err(StepError::from)?;
        }
        Ok(())
    }

    /// Removes a DIMM: `device_del` (unless one is already in flight), then, when waiting, its
    /// `DEVICE_DELETED` and the backend's `object-del`.
    pub(super) fn memory_remove(
        &mut self,
        m: &scenario::MemoryRemoveStep,
    ) -> Result<(), StepError> {
        let rig_err = |e: crate::machine::vm::VmError| StepError::Rig(error_chain(&e));
        let present = self.dimm_present(&m.id)?;
        let in_flight = self.unplugging.contains(&m.id);
        if !m.wait {
            if present && !in_flight {
                self.guest
                    .vm
                    .qmp_raw("device_del", Some(json!({"id": m.id})))
                    .map_err(rig_err)?;
                self.unplugging.insert(m.id.clone());
            }
            return Ok(());
        }
        let t = self.clamp(m.timeout);
        let removed = if in_flight {
            if present {
                self.guest
                    .vm
                    .wait_qmp_event("DEVICE_DELETED", Some(("device", &m.id)), t)
                    .map(drop)
            } else {
                Ok(())
            }
        } else if present {
            self.unplugging.insert(m.id.clone());
            self.guest.vm.device_del_within(&m.id, t)
        } else {
            Ok(())
        };
        if let Err(e) = removed {
            return Err(match StepError::from(e) {
                StepError::NotDone(why) => StepError::NotDone(format!(
                    "DIMM {} was not ejected within {:?}: {why}",
                    m.id, m.timeout
                )),
                rig => rig,
            });
        }
        self.unplugging.remove(&m.id);
        self.dimms.remove(&m.id);
        self.guest
            .vm
            .qmp()
            .object_del(&format!("mem-{}", m.id))
            .map_err(StepError::from)
    }

    pub(super) fn pci_address_now(&mut self, id: &str) -> Option<String> {
        let q = self.guest.vm.qmp_raw("query-pci", None).ok()?;
        pci_address(&q, id)
    }

    /// Polls QEMU until the guest has numbered the bus the device sits on.
    pub(super) fn wait_pci_address(
        &mut self,
        id: &str,
        timeout: Duration,
    ) -> Result<String, StepError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(a) = self.pci_address_now(id) {
                return Ok(a);
            }
            if let Some(reason) = self.guest.vm.exited() {
                return Err(StepError::Rig(reason));
            }
            if Instant::now() >= deadline {
                return Err(StepError::Kernel(format!(
                    "the guest never configured the bus of {id} within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The guest memory block numbers a DIMM covers (from QEMU's address and the guest's block size).
    pub(super) fn dimm_blocks(&mut self, id: &str) -> Result<Vec<u64>, StepError> {
        let devs = self
            .guest
            .vm
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
        let bs = self.sh_ok(
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

    pub(super) fn memory_state_cmd(&self, kind: &StepKind) -> Result<String, StepError> {
        let (id, value) = match kind {
            StepKind::MemoryOnline(m) => (&m.id, m.zone.state_value()),
            StepKind::MemoryOffline(m) => (&m.id, "offline"),
            _ => return Err(StepError::Rig("not a memory state step".into())),
        };
        if let Some(r) = self.virtio.get(id) {
            return Ok(match kind {
                StepKind::MemoryOffline(_) => r.offline_cmd(),
                _ => r.online_cmd(value),
            });
        }
        let blocks = self.dimms.get(id).ok_or_else(|| {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn pci_address_is_found_behind_a_numbered_bridge_only() {
        let q = json!([{"bus": 0, "devices": [
            {"bus": 0, "slot": 1, "function": 0, "qdev_id": "rp0",
             "pci_bridge": {"bus": {"secondary": 1}, "devices": [
                {"bus": 1, "slot": 0, "function": 0, "qdev_id": "nic1"}]}},
            {"bus": 0, "slot": 2, "function": 0, "qdev_id": "rp1",
             "pci_bridge": {"bus": {"secondary": 0}, "devices": [
                {"bus": 0, "slot": 0, "function": 0, "qdev_id": "nic2"}]}}
        ]}]);
        assert_eq!(pci_address(&q, "nic1").as_deref(), Some("0000:01:00.0"));
        assert_eq!(pci_address(&q, "nic2"), None);
        assert_eq!(pci_address(&q, "nope"), None);
    }
}
