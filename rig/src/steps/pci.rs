//! `pci_hotplug` and `pci_unplug`: `device_add` of an allowed driver onto a free hot-plug root
//! port (or `device_del`) through QMP, then wait until the guest agrees.

use super::check::host::Place;
use super::check::{Check, Ids, R};
use super::engine::{Engine, StepError};
use super::kind::{InParallel, Kind, RawKind};
use super::scalars::HumanDuration;
use super::{Feature, JsonMap, Step, StepKind, Within};
use crate::host::board::{Board, HOTPLUG_ROOT_PORTS};
use crate::machine::vm::Vm;
use rig_yaml::Path;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The default `timeout`.
pub const PCI_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a pci_hotplug step: {id: …, driver: …, port, props, timeout, may_fail, name}"
)]
pub struct RawPciHotplug {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    pub driver: String,
    #[serde(default)]
    pub port: Option<String>,
    #[serde(default)]
    pub props: Option<JsonMap>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a pci_unplug step: {id: …, timeout, may_fail, name}"
)]
pub struct RawPciUnplug {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

/// `device_add` of `driver` with id `id` onto a free hot-plug root port (or `port`), then wait
/// until the guest lists the new PCI function.
#[derive(Debug, Clone)]
pub struct PciHotplugStep {
    pub id: String,
    pub driver: String,
    /// A root port id (`rp0`..); `None`: the first free one.
    pub port: Option<String>,
    /// Extra device properties (scalars).
    pub props: JsonMap,
    pub timeout: Duration,
}

/// `device_del`, then wait for `DEVICE_DELETED` and for the function to leave `/sys/bus/pci/devices`.
#[derive(Debug, Clone)]
pub struct PciUnplugStep {
    pub id: String,
    pub timeout: Duration,
}

impl RawKind for RawPciHotplug {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::PciHotplug)
    }

    fn collect_ids(&self, ids: &mut Ids) {
        ids.pci.insert(self.id.clone());
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Never
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let p = self;
        cx.qemu_id(&p.id, &kp.key("id"))?;
        if let Some(port) = &p.port {
            let ports: Vec<String> = (0..HOTPLUG_ROOT_PORTS).map(Board::root_port_id).collect();
            if !ports.contains(port) {
                return Err(cx.err(
                    &kp.key("port"),
                    format!("unknown root port `{port}` (known: {})", ports.join(", ")),
                ));
            }
        }
        let props = p.props.unwrap_or_default();
        for (k, v) in &props {
            if v.is_object() || v.is_array() || v.is_null() {
                return Err(cx.err(
                    &kp.key("props").key(k),
                    "device properties are strings, numbers or booleans",
                ));
            }
            if matches!(k.as_str(), "id" | "driver" | "bus") {
                return Err(cx.err_key(
                    &kp.key("props").key(k),
                    format!("`{k}` is set by the step itself, not in props"),
                ));
            }
        }
        cx.device(
            &p.driver,
            &props,
            (&kp.key("driver"), &kp.key("props")),
            Place::Hotplug,
        )?;
        Ok((
            cx.name(p.name, kp)?,
            StepKind::PciHotplug(PciHotplugStep {
                id: p.id,
                driver: p.driver,
                port: p.port,
                props,
                timeout: cx.timeout(p.timeout, PCI_TIMEOUT, kp)?,
            }),
        ))
    }
}

impl RawKind for RawPciUnplug {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::PciHotplug)
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Host
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let p = self;
        cx.known_id(&p.id, &cx.ids.pci, "pci_hotplug", &kp.key("id"))?;
        Ok((
            cx.name(p.name, kp)?,
            StepKind::PciUnplug(PciUnplugStep {
                id: p.id,
                timeout: cx.timeout(p.timeout, PCI_TIMEOUT, kp)?,
            }),
        ))
    }
}

/// PCI device id → the root port it sits on, for this boot.
#[derive(Default)]
struct Ports(HashMap<String, String>);

impl Kind for PciHotplugStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let p = self;
        let port = match &p.port {
            Some(port) => port.clone(),
            None => {
                let used = &e.kept::<Ports>().0;
                (0..HOTPLUG_ROOT_PORTS)
                    .map(Board::root_port_id)
                    .find(|rp| !used.values().any(|u| u == rp))
                    .ok_or_else(|| {
                        StepError::Rig(format!(
                            "no free hot-plug root port (all {HOTPLUG_ROOT_PORTS} in use)"
                        ))
                    })?
            }
        };
        let extra: Vec<(&str, Value)> = p
            .props
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        e.vm()
            .pci_add_with(&p.driver, &p.id, &port, &extra)
            .map_err(StepError::from)?;
        e.kept::<Ports>().0.insert(p.id.clone(), port);
        let t = e.clamp(p.timeout);
        let addr = wait_address(e, &p.id, t)?;
        e.wait_guest(
            &format!("[ -e /sys/bus/pci/devices/{addr} ]"),
            p.timeout,
            &format!("{} ({addr}) never appeared in the guest", p.id),
        )
    }
}

impl Kind for PciUnplugStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let u = self;
        let addr = address_now(e, &u.id);
        let t = e.clamp(u.timeout);
        e.vm().device_del_within(&u.id, t)?;
        e.kept::<Ports>().0.remove(&u.id);
        match addr {
            Some(addr) => e.wait_guest(
                &format!("[ ! -e /sys/bus/pci/devices/{addr} ]"),
                u.timeout,
                &format!("{} ({addr}) is still in the guest", u.id),
            ),
            None => Ok(()),
        }
    }

    fn host_side(&self) -> bool {
        true
    }

    fn exec_host(&self, vm: &mut Vm, deadline: Instant) -> Result<(), StepError> {
        let t = self
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        vm.device_del_within(&self.id, t).map_err(Into::into)
    }
}

/// The guest's address of PCI device `id` now (`None`: QEMU does not list it, or the guest has
/// not numbered its bus yet).
pub(super) fn address_now(e: &mut Engine<'_>, id: &str) -> Option<String> {
    let q = e.vm().qmp_raw("query-pci", None).ok()?;
    pci_address(&q, id)
}

/// Polls QEMU until the guest has numbered the bus the device sits on.
fn wait_address(e: &mut Engine<'_>, id: &str, timeout: Duration) -> Result<String, StepError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(a) = address_now(e, id) {
            return Ok(a);
        }
        if let Some(reason) = e.vm().exited() {
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

fn pci_address(query_pci: &Value, id: &str) -> Option<String> {
    /// (bus, slot, function, behind a bridge)
    fn walk(devs: &Value, id: &str, behind: bool) -> Option<(u64, u64, u64, bool)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pci_address_is_found_behind_a_numbered_bridge_only() {
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
