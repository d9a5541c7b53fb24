//! Tests of `devices:`, `memory_resize`, `overlay_load.under_pci` and `of_unittest`.

use super::*;
use std::path::{Path, PathBuf};

fn overlays() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios/overlays")
}

fn parse(text: &str) -> Result<Scenario, String> {
    parse_str(text, "t.yaml", &overlays()).map_err(|e| e.to_string())
}

#[test]
fn devices_and_memory_resize_validate() {
    let s = parse(
        "requires: [virtio_mem]\ndevices:\n  - qemu: {driver: pci-testdev}\n  \
         - virtio_mem: {id: vmem0, size: 1G}\nsteps:\n  - memory_resize: {id: vmem0, size: 512M}\n  \
         - memory_online: {id: vmem0}\n  - parallel:\n      deadline: 10s\n      steps:\n        \
         - memory_offline: {id: vmem0, may_fail: true}\n        \
         - memory_resize: {id: vmem0, size: 0, wait: false}\n",
    )
    .unwrap();
    assert_eq!(
        s.devices,
        vec![
            BoardDevice::Qemu {
                driver: "pci-testdev".into(),
                id: None,
                props: JsonMap::new()
            },
            BoardDevice::VirtioMem {
                id: "vmem0".into(),
                size_bytes: 1 << 30
            }
        ]
    );
    let StepKind::MemoryResize(m) = &s.steps[0].kind else {
        panic!("{:?}", s.steps[0])
    };
    assert_eq!((m.size_bytes, m.wait), (512 << 20, true));
    assert!(s.steps[0].default_timeout);
    // virtio-mem memory steps need virtio_mem, not memory_hotplug (no DIMM board needed).
    assert!(s
        .requires
        .iter()
        .all(|r| r.feature != Feature::MemoryHotplug));
}

#[test]
fn device_and_resize_mistakes_point_at_the_field() {
    let cases = [
        (
            "devices:\n  - virtio_mem: {id: vmem0, size: 1G}\nsteps:\n  - sleep: 1s\n",
            "t.yaml:2:5: devices[0].virtio_mem: virtio_mem devices need `virtio_mem`",
        ),
        (
            "requires: [virtio_mem]\ndevices:\n  - virtio_mem: {id: vmem0, size: 100M}\nsteps:\n  - sleep: 1s\n",
            "t.yaml:3:35: devices[0].virtio_mem.size: size must be a non-zero multiple",
        ),
        (
            "requires: [virtio_mem]\ndevices:\n  - virtio_mem: {id: a, size: 2G}\n  - virtio_mem: {id: b, size: 2G}\nsteps:\n  - sleep: 1s\n",
            "devices[1].virtio_mem.size: virtio-mem devices may hold at most 3 GiB",
        ),
        (
            "requires: [virtio_mem]\ndevices:\n  - virtio_mem: {id: a, size: 1G}\n  - qemu: {driver: e1000e, id: a}\nsteps:\n  - sleep: 1s\n",
            "devices[1]: device id `a` is used twice",
        ),
        (
            "devices:\n  - qemu: {driver: 'pci-testdev,x=1'}\nsteps:\n  - sleep: 1s\n",
            "devices[0].qemu.driver: invalid QEMU device driver",
        ),
        (
            "devices:\n  - qemu: {driver: vfio-pci}\nsteps:\n  - sleep: 1s\n",
            "devices[0].qemu.driver: `vfio-pci` devices reach into the host",
        ),
        (
            "devices:\n  - qemu: {driver: e1000e, props: {romfile: /etc/shadow}}\nsteps:\n  - sleep: 1s\n",
            "devices[0].qemu.props.romfile: property `romfile` names a host file",
        ),
        (
            "devices:\n  - qemu: {driver: e1000e, props: {mac: 'a,b'}}\nsteps:\n  - sleep: 1s\n",
            "devices[0].qemu.props.mac: device properties are scalars without `,`",
        ),
        (
            "requires: [virtio_mem]\ndevices:\n  - virtio_mem: {id: vmem0, size: 1G}\nsteps:\n  - memory_resize: {id: vmem1, size: 128M}\n",
            "steps[0].memory_resize.id: no virtio_mem device `vmem1`",
        ),
        (
            "requires: [virtio_mem]\ndevices:\n  - virtio_mem: {id: vmem0, size: 1G}\nsteps:\n  - memory_resize: {id: vmem0, size: 2G}\n",
            "steps[0].memory_resize.size: size must be a multiple of 128 MiB and at most the device's 1024 MiB",
        ),
        (
            "steps:\n  - memory_resize: {id: vmem0, size: 128M}\n",
            "steps[0].memory_resize: `memory_resize` steps need `virtio_mem`",
        ),
        (
            "requires: [virtio_mem]\ndevices:\n  - virtio_mem: {id: vmem0, size: 1G}\nsteps:\n  - memory_online: {id: dimm9}\n",
            "steps[0].memory_online.id: no memory_add step creates `dimm9` and no virtio_mem device",
        ),
        (
            "requires: [virtio_mem]\ndevices:\n  - virtio_mem: {id: vmem0, size: 1G}\nsteps:\n  - parallel:\n      deadline: 5s\n      steps:\n        - repeat:\n            times: 2\n            steps:\n              - memory_resize: {id: vmem0, size: 0}\n        - sleep: 1s\n",
            "`memory_resize` runs on the host and cannot be repeated inside a guest job",
        ),
        (
            "requires: [of_unittest]\nsteps:\n  - parallel:\n      deadline: 5s\n      steps:\n        - of_unittest: {}\n        - sleep: 1s\n",
            "`of_unittest` cannot run inside `parallel`",
        ),
        (
            "requires: [of_overlay, pci_hotplug]\nsteps:\n  - overlay_load: {file: simple-node.dtso, under_pci: nic1}\n",
            "steps[0].overlay_load.under_pci: no pci_hotplug step creates `nic1`",
        ),
    ];
    for (text, want) in cases {
        let e = parse(text).unwrap_err();
        assert!(e.contains(want), "{text}\n  got:  {e}\n  want: {want}");
    }
}

#[test]
fn overlay_under_a_pci_device_and_of_unittest() {
    let s = parse(
        "requires: [of_overlay, pci_hotplug, of_unittest]\nsteps:\n  - of_unittest: {timeout: 5s}\n  \
         - pci_hotplug: {id: tdev, driver: pci-testdev}\n  \
         - overlay_load: {file: simple-node.dtso, under_pci: tdev}\n",
    )
    .unwrap();
    let StepKind::OfUnittest(u) = &s.steps[0].kind else {
        panic!()
    };
    assert_eq!(u.timeout, Duration::from_secs(5));
    let StepKind::OverlayLoad(o) = &s.steps[2].kind else {
        panic!()
    };
    assert_eq!(o.under_pci.as_deref(), Some("tdev"));
}

#[test]
fn shipped_seed_scenarios_use_their_devices() {
    let root = crate::repo_root();
    let s = load(
        &root.join("scenarios/memory-online-offline-race.yaml"),
        &root.join("overlays"),
    )
    .unwrap();
    assert_eq!(s.boards, Board::ALL.to_vec());
    let feats: Vec<Feature> = s.requires.iter().map(|r| r.feature).collect();
    assert_eq!(feats, [Feature::VirtioMem, Feature::Lockdep]);
    assert!(matches!(&s.devices[..], [BoardDevice::VirtioMem { .. }]));
    let s = load(
        &root.join("scenarios/of-unittest.yaml"),
        &root.join("overlays"),
    )
    .unwrap();
    assert!(
        matches!(&s.devices[..], [BoardDevice::Qemu { driver, .. }] if driver == "pci-testdev")
    );
}
