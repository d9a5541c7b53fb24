//! What a scenario adds to the boot: the devices of its `devices:` (QEMU argv) and the kernel
//! modules they need packed into the initramfs and loaded by init (`rig.modules=`).

use crate::host::cache::Cache;
use crate::host::events::Events;
use crate::machine::qemu::ExtraDevice;
use crate::provision::image::ImageError;
use crate::provision::BootImage;
use crate::scenario::{BoardDevice, Feature, Scenario, StepKind};

/// The QEMU devices for a scenario's `devices:`.
pub(super) fn extra_devices(devices: &[BoardDevice]) -> Vec<ExtraDevice> {
    devices
        .iter()
        .map(|d| match d {
            BoardDevice::Qemu { driver, id, props } => ExtraDevice::Device {
                driver: driver.clone(),
                id: id.clone(),
                props: props
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            },
            BoardDevice::VirtioMem { id, size_bytes } => ExtraDevice::VirtioMem {
                id: id.clone(),
                size_mib: size_bytes >> 20,
            },
        })
        .collect()
}

/// Whether the scenario hot-plugs PCI devices, so the board needs its free root ports: it
/// requires `pci_hotplug` (every `pci_*` step does) or sends `device_add` / `device_del` itself
/// (a `qmp` step may name a root port as `bus`). Without, the board has none: pciehp probing
/// four ports costs every boot ~60 ms on arm64 under TCG.
pub(super) fn hot_plugs_pci(scenario: &Scenario) -> bool {
    scenario
        .requires
        .iter()
        .any(|r| r.feature == Feature::PciHotplug)
        || scenario.all_steps().iter().any(|s| {
            matches!(&s.kind, StepKind::Qmp(q) if q.execute == "device_add" || q.execute == "device_del")
        })
}

/// Modules the scenario needs loaded at boot: virtio_mem for its devices when the kernel has
/// it as a module (Debian's 6.1); rig_pci_overlay when it requires `pci_overlay_driver`.
pub(super) fn needed_modules(
    scenario: &Scenario,
    config: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let virtio = scenario
        .devices
        .iter()
        .any(|d| matches!(d, BoardDevice::VirtioMem { .. }));
    if virtio && config.get("CONFIG_VIRTIO_MEM").map(String::as_str) == Some("m") {
        out.push("virtio_mem".into());
    }
    if scenario
        .requires
        .iter()
        .any(|r| r.feature == Feature::PciOverlayDriver)
    {
        out.push(crate::provision::kbuild::PCI_OVERLAY_MODULE.into());
    }
    out
}

/// Packs `modules` into the image's initramfs and returns the command-line parameter that has
/// init load them (`None` when there are none).
pub(super) fn add_modules(
    image: &mut BootImage,
    modules: &[String],
    cache: &Cache,
    events: &Events,
) -> Result<Option<String>, ImageError> {
    if modules.is_empty() {
        return Ok(None);
    }
    image.initrd =
        crate::provision::image::initramfs::for_kernel_with(&image.kernel, modules, cache, events)?;
    Ok(Some(format!("rig.modules={}", modules.join(","))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        let overlays = crate::repo_root().join("overlays");
        crate::scenario::parse_str(text, "t.yaml", &overlays).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn root_ports_only_for_scenarios_that_hot_plug_pci() {
        let guest = "steps:\n  - guest: {run: 'true'}\n";
        assert!(!hot_plugs_pci(&scenario(guest)));
        let pci = "requires: [pci_hotplug]\nsteps:\n  - pci_hotplug: {id: nic1, driver: e1000e}\n";
        assert!(hot_plugs_pci(&scenario(pci)));
        let qmp = "steps:\n  - qmp: {execute: device_add, arguments: {driver: e1000e, id: n, bus: rp1}}\n";
        assert!(hot_plugs_pci(&scenario(qmp)));
        let query = "steps:\n  - qmp: {execute: query-pci}\n";
        assert!(!hot_plugs_pci(&scenario(query)));
    }

    #[test]
    fn devices_become_qemu_devices_and_modules() {
        let mut props = serde_json::Map::new();
        props.insert("x".into(), serde_json::json!(3));
        props.insert("name".into(), serde_json::json!("a"));
        let devs = vec![
            BoardDevice::Qemu {
                driver: "pci-testdev".into(),
                id: None,
                props,
            },
            BoardDevice::VirtioMem {
                id: "vmem0".into(),
                size_bytes: 1 << 30,
            },
        ];
        let q = extra_devices(&devs);
        assert_eq!(
            q[0],
            ExtraDevice::Device {
                driver: "pci-testdev".into(),
                id: None,
                props: vec![("name".into(), "a".into()), ("x".into(), "3".into())],
            }
        );
        assert_eq!(
            q[1],
            ExtraDevice::VirtioMem {
                id: "vmem0".into(),
                size_mib: 1024
            }
        );
        let mut with_devs = scenario("requires: [virtio_mem]\nsteps:\n  - sleep: 1s\n");
        with_devs.devices = devs.clone();
        let mut cfg = std::collections::BTreeMap::new();
        assert!(needed_modules(&with_devs, &cfg).is_empty());
        cfg.insert("CONFIG_VIRTIO_MEM".into(), "y".into());
        assert!(needed_modules(&with_devs, &cfg).is_empty());
        cfg.insert("CONFIG_VIRTIO_MEM".into(), "m".into());
        assert_eq!(needed_modules(&with_devs, &cfg), ["virtio_mem"]);
        with_devs.devices.truncate(1);
        assert!(needed_modules(&with_devs, &cfg).is_empty());
    }

    #[test]
    fn the_pci_overlay_driver_is_loaded_when_required() {
        let cfg = std::collections::BTreeMap::new();
        let s = scenario("requires: [pci_overlay_driver]\nsteps:\n  - sleep: 1s\n");
        assert_eq!(needed_modules(&s, &cfg), ["rig_pci_overlay"]);
        let s = scenario("requires: [pci_of_nodes]\nsteps:\n  - sleep: 1s\n");
        assert!(needed_modules(&s, &cfg).is_empty());
    }
}
