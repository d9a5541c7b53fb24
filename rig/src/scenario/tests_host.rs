//! Tests of what a scenario may make the host do: the device and object allow-lists, the
//! hot-plug memory bound, and overlays that would include host files (issue #26).

use super::*;
use std::path::{Path, PathBuf};

fn overlays() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios/overlays")
}

fn parse(text: &str) -> Result<Scenario, String> {
    parse_str(text, "t.yaml", &overlays()).map_err(|e| e.to_string())
}

fn refused(text: &str) -> String {
    match parse(text) {
        Ok(s) => panic!("accepted:\n{text}\n{s:?}"),
        Err(e) => e,
    }
}

const DRIVERS: &str = "e1000e, virtio-net-pci, pci-testdev, pcie-pci-bridge, pcie-root-port, \
                       virtio-mem-pci, pc-dimm";

/// The trigger of #26: usb-mtp shares a host folder with the guest, read-write. Not on the
/// allow-list, whatever its properties.
#[test]
fn a_device_off_the_allow_list_is_refused_naming_what_is_allowed() {
    let e = refused(
        "devices:\n  - qemu: {driver: qemu-xhci}\n  - qemu: {driver: usb-mtp, props: {rootdir: /, \
         readonly: \"off\"}}\nsteps:\n  - guest: {run: \"true\"}\n",
    );
    assert_eq!(
        e,
        format!(
            "t.yaml:2:20: devices[0].qemu.driver: QEMU device `qemu-xhci` is not on the scenario \
             allow-list: not allowed in scenarios (allowed: {DRIVERS}; see scenarios/README.md)"
        )
    );
    let e = refused(
        "devices:\n  - qemu: {driver: usb-mtp, props: {rootdir: /}}\nsteps:\n  - sleep: 1s\n",
    );
    assert_eq!(
        e,
        format!(
            "t.yaml:2:20: devices[0].qemu.driver: `usb-mtp` devices reach into the host \
             (`usb-mtp`): not allowed in scenarios (allowed: {DRIVERS}; see scenarios/README.md)"
        )
    );
    // The same list holds for hot-plug and for QMP.
    let e = refused(
        "requires: [pci_hotplug]\nsteps:\n  - pci_hotplug: {id: b, driver: ipmi-bmc-sim, props: \
         {sdrfile: /etc/shadow}}\n",
    );
    assert!(
        e.starts_with("t.yaml:3:34: steps[0].pci_hotplug.driver: `ipmi-bmc-sim` devices reach into the host (`ipmi-bmc`)"),
        "{e}"
    );
    let e = refused(
        "steps:\n  - qmp: {execute: device_add, arguments: {driver: ipmi-bmc-sim, id: b, \
         frudatafile: /etc/shadow}}\n",
    );
    assert!(
        e.starts_with("t.yaml:2:52: steps[0].qmp.arguments.driver: `ipmi-bmc-sim` devices"),
        "{e}"
    );
    let e = refused("steps:\n  - qmp: {execute: device_add, arguments: {id: x}}\n");
    assert_eq!(
        e,
        "t.yaml:2:44: steps[0].qmp.arguments: `device_add` needs a `driver`"
    );
}

/// Each driver takes its own properties, each value checked.
#[test]
fn properties_are_allowed_per_driver_and_their_values_checked() {
    let dev = |props: &str| {
        refused(&format!(
            "devices:\n  - qemu: {{driver: e1000e, props: {props}}}\nsteps:\n  - sleep: 1s\n"
        ))
    };
    assert_eq!(
        dev("{rombar: 0}"),
        "t.yaml:2:36: devices[0].qemu.props.rombar: property `rombar` is not on the allow-list \
         of `e1000e`: not allowed in scenarios (`e1000e` takes: mac, bus, addr, multifunction)"
    );
    assert_eq!(
        dev("{netdev: hostnet0}"),
        "t.yaml:2:36: devices[0].qemu.props.netdev: property `netdev` names a host file or QEMU \
         backend: not allowed in scenarios (`e1000e` takes: mac, bus, addr, multifunction)"
    );
    assert_eq!(
        dev("{mac: '52:54:00:12:34'}"),
        "t.yaml:2:41: devices[0].qemu.props.mac: `e1000e` property `mac` must be a MAC address \
         like `52:54:00:12:34:56`, not \"52:54:00:12:34\""
    );
    assert!(dev("{addr: '0x20'}").contains("must be a PCI slot[.function]"));
    assert!(dev("{bus: 'rp0;x'}").contains("`e1000e` property `bus` must be a QEMU id"));
    assert!(dev("{multifunction: maybe}").contains("must be `on`, `off`, `true` or `false`"));
    let e = refused(
        "devices:\n  - qemu: {driver: pcie-root-port, id: rp9, props: {chassis: 300}}\nsteps:\n  \
         - sleep: 1s\n",
    );
    assert!(
        e.contains("`pcie-root-port` property `chassis` must be an integer from 0 to 255, not 300"),
        "{e}"
    );
    // What the scenarios and tests use passes.
    parse(
        "requires: [pci_hotplug]\ndevices:\n  - qemu: {driver: pci-testdev}\n  - qemu: {driver: \
         pcie-root-port, id: rp9, props: {chassis: 9, slot: 0}}\n  - qemu: {driver: e1000e, id: \
         nic9, props: {mac: '52:54:00:12:34:56', bus: rp9, addr: '0.0'}}\nsteps:\n  - \
         pci_hotplug: {id: br0, driver: pcie-pci-bridge, port: rp0}\n  - pci_hotplug: {id: n1, \
         driver: virtio-net-pci, props: {mac: '52:54:00:00:00:01', multifunction: on}}\n  - qmp: \
         {execute: device_add, arguments: {driver: e1000e, id: n2, bus: rp1}}\n",
    )
    .unwrap();
}

/// Memory devices need a backend only `object-add` makes; `memdev` names one of the
/// scenario's own.
#[test]
fn memory_devices_come_from_qmp_over_the_scenarios_own_backends() {
    let ok = parse(
        "steps:\n  - qmp: {execute: object-add, arguments: {qom-type: memory-backend-ram, id: m0, \
         size: 134217728, share: false}}\n  - qmp: {execute: device_add, arguments: {driver: \
         pc-dimm, id: d0, memdev: m0}}\n",
    );
    ok.unwrap();
    let e = refused(
        "steps:\n  - qmp: {execute: device_add, arguments: {driver: pc-dimm, id: d0, memdev: \
         mem-vmem0}}\n",
    );
    assert_eq!(
        e,
        "t.yaml:2:77: steps[0].qmp.arguments.memdev: no QMP `object-add` of this scenario \
         creates memory backend `mem-vmem0` (created: none)"
    );
    let e = refused("devices:\n  - qemu: {driver: pc-dimm}\nsteps:\n  - sleep: 1s\n");
    assert_eq!(
        e,
        "t.yaml:2:20: devices[0].qemu.driver: `pc-dimm` needs a memory backend, which only QMP \
         `object-add` creates: use a `virtio_mem` device"
    );
}

/// `object-add`: RAM only, no `prealloc`, allow-listed properties, a bounded size.
#[test]
fn objects_are_ram_backends_of_bounded_size_without_prealloc() {
    let obj = |args: &str| {
        refused(&format!(
            "steps:\n  - qmp: {{execute: object-add, arguments: {{qom-type: memory-backend-ram, \
             id: m0, {args}}}}}\n"
        ))
    };
    assert_eq!(
        obj("size: 1073741824, prealloc: true"),
        "t.yaml:2:100: steps[0].qmp.arguments.prealloc: `prealloc` is not allowed in scenarios: \
         QEMU would allocate the whole backend on the host at once (allowed: size, share, merge, \
         dump)"
    );
    assert!(obj("size: 1073741824, host-nodes: [0], policy: bind")
        .contains("property `host-nodes` is not on the allow-list of `memory-backend-ram`"));
    assert_eq!(
        obj("size: 1099511627776"),
        "t.yaml:2:88: steps[0].qmp.arguments.size: `memory-backend-ram` property `size` must be \
         a byte count (an integer) from 1 to 3221225472 (3072 MiB), not 1099511627776"
    );
    assert!(obj("share: true").contains("`object-add` needs a `size`"));
    let e = refused(
        "steps:\n  - qmp: {execute: object-add, arguments: {qom-type: memory-backend-file, id: m, \
         mem-path: /etc/x, size: 1}}\n",
    );
    assert!(
        e.starts_with("t.yaml:2:54: steps[0].qmp.arguments.qom-type: object type `memory-backend-file` is not allowed in scenarios (allowed: memory-backend-ram)"),
        "{e}"
    );
    assert!(refused(
        "steps:\n  - qmp: {execute: object-add, arguments: {qom-type: memory-backend-memfd, id: m, size: 1}}\n"
    )
    .contains("object type `memory-backend-memfd` is not allowed"));
}

/// Everything a scenario hot-plugs (virtio-mem, DIMMs, backends) fits the hot-plug room; an id
/// added again counts once.
#[test]
fn all_hot_plugged_memory_fits_the_room() {
    let e = refused(
        "boards: [x86_64-q35]\nrequires: [memory_hotplug]\nsteps:\n  - memory_add: {id: d0, size: 1024G}\n",
    );
    assert_eq!(
        e,
        "t.yaml:4:32: steps[0].memory_add.size: size must be at most 3072 MiB (the boards' \
         hot-plug room)"
    );
    let e = refused(
        "boards: [x86_64-q35]\nrequires: [memory_hotplug, virtio_mem]\ndevices:\n  - virtio_mem: \
         {id: v0, size: 2G}\nsteps:\n  - memory_add: {id: d0, size: 512M}\n  - qmp: {execute: \
         object-add, arguments: {qom-type: memory-backend-ram, id: m0, size: 1073741824}}\n",
    );
    assert_eq!(
        e,
        "t.yaml:7:88: steps[1].qmp.arguments.size: the scenario would hot-plug 3584 MiB of memory \
         in all (virtio-mem devices, DIMMs, `object-add` backends): at most 3072 MiB (the boards' \
         maxmem is 4096 MiB, up to 1024 MiB of it booted)"
    );
    // Plugged, removed and plugged again: one DIMM at a time.
    parse(
        "boards: [x86_64-q35]\nrequires: [memory_hotplug]\nsteps:\n  - repeat:\n      times: 50\n      \
         steps:\n        - memory_add: {id: d0, size: 2G}\n        - memory_remove: {id: d0}\n  \
         - memory_add: {id: d0, size: 3G}\n",
    )
    .unwrap();
}

/// An overlay whose source would make dtc read a host file is refused when the scenario is
/// validated, naming the overlay's file:line:column.
#[test]
fn overlays_that_include_files_are_refused_at_their_line() {
    let d = tempfile::tempdir().unwrap();
    let ov = d.path().join("overlays");
    std::fs::create_dir(&ov).unwrap();
    let body = "/dts-v1/;\n/plugin/;\n/ {\n\tfragment@0 {\n\t\ttarget-path = \"/\";\n\t\t\
                __overlay__ { n { p = /incbin/(\"/proc/self/environ\"); }; };\n\t};\n};\n";
    std::fs::write(ov.join("environ.dtso"), body).unwrap();
    std::fs::write(
        ov.join("inc.dtso"),
        "/dts-v1/;\n/include/ \"/etc/hostname\"\n",
    )
    .unwrap();
    std::fs::write(ov.join("ok.dtso"), "/dts-v1/;\n/plugin/;\n/ { };\n").unwrap();
    let text = |f: &str| {
        format!("requires: [of_overlay]\nboards: [arm64-virt]\nsteps:\n  - overlay_load: {{file: {f}}}\n")
    };
    let e = parse_str(&text("environ.dtso"), "o.yaml", &ov)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "o.yaml:4:26: steps[0].overlay_load.file: overlay {}:6:25: `/incbin/` would copy a \
             host file into the blob the guest reads: overlays may not include files (no \
             `/include/`, `/incbin/`, `#include`)",
            ov.join("environ.dtso").display()
        )
    );
    let e = parse_str(&text("inc.dtso"), "o.yaml", &ov)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("inc.dtso:2:1: `/include/` would splice a host file"),
        "{e}"
    );
    parse_str(&text("ok.dtso"), "o.yaml", &ov).unwrap();
}

/// The README's table lists every allowed driver with exactly its properties.
#[test]
fn the_readme_lists_the_allow_list() {
    let readme = std::fs::read_to_string(crate::repo_root().join("scenarios/README.md")).unwrap();
    for d in validate::DEVICES {
        let mut props: Vec<String> = d.props.iter().map(|(k, _)| format!("`{k}`")).collect();
        if d.pci {
            props.push("PCI".into());
        }
        let row = format!("| `{}` | {} |", d.name, props.join(", "));
        assert!(readme.contains(&row), "README lacks the row starting {row}");
    }
    let pci: Vec<String> = validate::PCI_PROPS
        .iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect();
    assert!(
        readme.contains(&format!("PCI = {}", pci.join(", "))),
        "PCI props"
    );
    let obj: Vec<String> = validate::OBJECT_PROPS
        .iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect();
    assert!(
        readme.contains(&format!(
            "`{}` | `id`, {}",
            validate::OBJECT_TYPE,
            obj.join(", ")
        )),
        "object row"
    );
}

/// The bad fixtures of #26, each refused with its exact location and message.
#[test]
fn bad_fixtures_of_hostile_devices_and_objects() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios/bad");
    let bad = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        parse_str(&text, &format!("bad/{name}"), &overlays())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        bad("device-usb-mtp.yaml"),
        format!(
            "bad/device-usb-mtp.yaml:4:20: devices[0].qemu.driver: QEMU device `qemu-xhci` is not \
             on the scenario allow-list: not allowed in scenarios (allowed: {DRIVERS}; see \
             scenarios/README.md)"
        )
    );
    assert_eq!(
        bad("device-host-prop.yaml"),
        "bad/device-host-prop.yaml:4:53: steps[0].pci_hotplug.props.romfile: property `romfile` \
         names a host file or QEMU backend: not allowed in scenarios (`e1000e` takes: mac, bus, \
         addr, multifunction)"
    );
    assert_eq!(
        bad("object-prealloc.yaml"),
        "bad/object-prealloc.yaml:5:75: steps[0].qmp.arguments.prealloc: `prealloc` is not \
         allowed in scenarios: QEMU would allocate the whole backend on the host at once \
         (allowed: size, share, merge, dump)"
    );
    assert_eq!(
        bad("memory-total.yaml"),
        "bad/memory-total.yaml:8:35: steps[1].memory_add.size: the scenario would hot-plug 4096 \
         MiB of memory in all (virtio-mem devices, DIMMs, `object-add` backends): at most 3072 \
         MiB (the boards' maxmem is 4096 MiB, up to 1024 MiB of it booted)"
    );
}

/// What each kind of property value accepts.
#[test]
fn values_are_checked_by_kind() {
    use serde_json::json;
    let pci = validate::allowed_driver("pcie-root-port").unwrap();
    let kind = |p: &str| pci.prop(p).unwrap();
    for ok in ["0x3", "3", "03.1", "1f.7", "0X1F"] {
        assert!(kind("addr").accepts(&json!(ok)), "{ok}");
    }
    for bad in [
        json!("0x20"),
        json!("3.8"),
        json!("3.10"),
        json!(""),
        json!(3),
        json!("0x"),
    ] {
        assert!(!kind("addr").accepts(&bad), "{bad}");
    }
    assert!(kind("bus").accepts(&json!("rp0")));
    for bad in ["0rp", "rp 0", "rp,0", "", "rp0;reboot"] {
        assert!(!kind("bus").accepts(&json!(bad)), "{bad}");
    }
    assert!(kind("chassis").accepts(&json!(255)) && kind("chassis").accepts(&json!("7")));
    assert!(!kind("chassis").accepts(&json!(256)) && !kind("chassis").accepts(&json!(-1)));
    for ok in [json!(true), json!("on"), json!("off"), json!("false")] {
        assert!(kind("multifunction").accepts(&ok), "{ok}");
    }
    assert!(!kind("multifunction").accepts(&json!("yes")));
    let mac = validate::allowed_driver("e1000e")
        .unwrap()
        .prop("mac")
        .unwrap();
    assert!(mac.accepts(&json!("52:54:00:AB:cd:01")));
    assert!(!mac.accepts(&json!("52:54:00:ab:cd")) && !mac.accepts(&json!("52-54-00-ab-cd-01")));
    let size = validate::OBJECT_PROPS[0].1;
    assert!(size.accepts(&json!(validate::HOTPLUG_ROOM)) && size.accepts(&json!(1)));
    assert!(!size.accepts(&json!(validate::HOTPLUG_ROOM + 1)) && !size.accepts(&json!(0)));
    assert!(!size.accepts(&json!("1G")) && !size.accepts(&json!(1.5)));
    assert_eq!(validate::HOTPLUG_ROOM, 3 << 30);
}

/// A scenario's overlays are looked up beside it first, then in the folder the caller names;
/// a link out of the scenario's folder is refused there as in the built-in one.
#[test]
fn overlays_beside_the_scenario_come_first() {
    let d = tempfile::tempdir().unwrap();
    let src = "/dts-v1/;\n/plugin/;\n&{/} { mine { }; };\n";
    std::fs::write(d.path().join("simple-node.dtso"), src).unwrap();
    std::fs::write(d.path().join("only-mine.dtso"), src).unwrap();
    let text = "requires: [of_overlay]\nsteps:\n  \
                - overlay_load: {file: simple-node.dtso, id: a}\n  \
                - overlay_load: {file: only-mine.dtso, id: b}\n  \
                - overlay_load: {file: clock-provider-consumer.dtso, id: c}\n";
    let file = d.path().join("s.yaml");
    std::fs::write(&file, text).unwrap();
    let sc = load(&file, &overlays()).unwrap_or_else(|e| panic!("{e}"));
    let files: Vec<PathBuf> = sc
        .all_steps()
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::OverlayLoad(o) => Some(o.file.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        files,
        [
            d.path().join("simple-node.dtso"),
            d.path().join("only-mine.dtso"),
            overlays().join("clock-provider-consumer.dtso"),
        ]
    );
    // Given as text (no file), only the caller's folder counts.
    let e = parse(text).unwrap_err();
    assert!(e.contains("unknown overlay `only-mine.dtso`"), "{e}");

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.dtso"), src).unwrap();
    std::os::unix::fs::symlink(outside.path().join("x.dtso"), d.path().join("link.dtso")).unwrap();
    std::fs::write(
        &file,
        "requires: [of_overlay]\nsteps:\n  - overlay_load: {file: link.dtso, id: a}\n",
    )
    .unwrap();
    let e = load(&file, &overlays()).unwrap_err().to_string();
    assert!(e.contains("is not a file of"), "{e}");
}

/// A bare name that is no file is one of rig's built-in scenarios (or the project's).
#[test]
fn a_bare_name_finds_a_built_in_scenario() {
    let overlays = crate::repo_root().join("overlays");
    let sc = load(Path::new("fake-warning"), &overlays).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sc.name, "fake-warning");
    let e = load(Path::new("no-such-scenario"), &overlays)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-such-scenario"), "{e}");
    let e = format!(
        "{:?}",
        load(Path::new("no-such-scenario"), &overlays).unwrap_err()
    );
    assert!(e.contains("nor a scenario of that name"), "{e}");
}
