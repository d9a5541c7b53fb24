//! Structure-aware fuzzing of scenario files, for a fixed budget (`RIG_SCENARIO_FUZZ` cases,
//! default 3000): documents built from the schema's own fields and step kinds with hostile
//! values — random types, huge numbers, deep nesting, long strings, control characters, ids and
//! names with shell metacharacters, paths that climb out, QMP commands that reach the host —
//! in random YAML styles, plus files that are not UTF-8. Every one must give a valid scenario or
//! exactly one error with a file, line and column; never a panic. What validates must hold the
//! promises the engine relies on (safe ids and names, nothing that reaches host files).

use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn overlays() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios/overlays")
}

mod schema;
use schema::*;

fn valid_top(key: &str) -> &'static str {
    match key {
        "boards" => "[arm64-virt]",
        "requires" => "[netdevsim]",
        "cmdline" => "[quiet]",
        "timeout" => "10m",
        "devices" => "[{qemu: {driver: pci-testdev}}]",
        "transport" => "hvc",
        "expect" | "allow" => "['/^WARNING/']",
        "trace" => "{functions: [devlink_reload]}",
        _ => "x",
    }
}

/// A deliberately nested valid skeleton: repeat in parallel in repeat…, to depth `n`.
fn deep(n: usize) -> String {
    let mut s = "{guest: {run: 'true'}}".to_string();
    for i in 0..n {
        s = if i % 2 == 0 {
            format!("{{repeat: {{times: 2, steps: [{s}]}}}}")
        } else {
            format!("{{repeat: {{for: 1s, steps: [{s}, {{sleep: 1s}}]}}}}")
        };
    }
    format!("steps: [{s}]\n")
}

/// Checks one outcome; returns whether it was a valid scenario.
fn check(text: &str, label: &str, r: std::thread::Result<Result<Scenario, ScenarioError>>) -> bool {
    let r = r.unwrap_or_else(|_| {
        panic!(
            "panicked on:\n{}",
            text.chars().take(2000).collect::<String>()
        )
    });
    match r {
        Err(ScenarioError::Invalid {
            file,
            line,
            column,
            message,
            ..
        }) => {
            assert_eq!(file, label);
            let lines = text.lines().count().max(1);
            assert!(
                line >= 1 && line <= lines + 1,
                "line {line} of {lines}: {message}"
            );
            assert!(column >= 1, "column {column}: {message}");
            assert!(!message.trim().is_empty());
            false
        }
        Err(other) => panic!("an error without a location: {other}\n{text}"),
        Ok(sc) => {
            promises_hold(&sc);
            true
        }
    }
}

/// What validation promises the engine about anything it lets through.
fn promises_hold(sc: &Scenario) {
    let safe = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    assert!(!sc.name.chars().any(char::is_control), "{:?}", sc.name);
    for p in &sc.cmdline {
        assert!(
            !p.contains("RIG-") && !p.chars().any(|c| c.is_whitespace() || c.is_control()),
            "{p}"
        );
    }
    let max = Duration::from_secs(30 * 24 * 3600);
    assert!(sc.timeout <= max);
    // Bytes of RAM each virtio-mem device, DIMM and backend takes.
    let mut memory = std::collections::BTreeMap::new();
    for d in &sc.devices {
        match d {
            BoardDevice::Qemu { driver, props, .. } => device_allowed(driver, props, false),
            BoardDevice::VirtioMem { id, size_bytes } => {
                memory.insert(format!("v{id}"), *size_bytes);
            }
        }
    }
    for step in sc.all_steps() {
        if let Some(n) = &step.name {
            assert!(!n.chars().any(char::is_control), "{n:?}");
        }
        assert!(step.kind.timeout() <= max);
        match &step.kind {
            StepKind::PciHotplug(p) => {
                assert!(safe(&p.id, "-._") && safe(&p.driver, "-_.,"), "{p:?}");
                assert!(!p.props.contains_key("romfile") && !p.props.contains_key("file"));
                device_allowed(&p.driver, &p.props, false);
            }
            StepKind::Qmp(q) => {
                assert!(
                    q.execute.starts_with("query-")
                        || validate::QMP_ALLOWED.contains(&q.execute.as_str()),
                    "{}",
                    q.execute
                );
                let arg = |k: &str| q.arguments.get(k).and_then(|v| v.as_str());
                if q.execute == "device_add" {
                    device_allowed(arg("driver").unwrap(), &q.arguments, true);
                }
                if q.execute == "object-add" {
                    assert_eq!(arg("qom-type"), Some(validate::OBJECT_TYPE));
                    for k in q.arguments.keys() {
                        assert!(
                            matches!(k.as_str(), "qom-type" | "id")
                                || validate::OBJECT_PROPS.iter().any(|(p, _)| p == k),
                            "{k}"
                        );
                    }
                    let size = q.arguments["size"].as_u64().unwrap();
                    memory.insert(format!("o{}", arg("id").unwrap()), size);
                }
            }
            StepKind::OverlayLoad(o) => {
                assert!(safe(&o.id, "-._"), "{}", o.id);
                let dir = overlays().canonicalize().unwrap();
                assert_eq!(o.file.canonicalize().unwrap().parent(), Some(dir.as_path()));
                let src = std::fs::read(&o.file).unwrap();
                assert_eq!(crate::provision::overlay::forbidden_directive(&src), None);
            }
            StepKind::MemoryAdd(m) => {
                assert!(safe(&m.id, "-._"), "{}", m.id);
                let e = memory.entry(format!("d{}", m.id)).or_default();
                *e = (*e).max(m.size_bytes);
            }
            StepKind::DevlinkReload(d) => assert!(safe(&d.dev, "-_./:"), "{}", d.dev),
            StepKind::Repeat(RepeatStep {
                count: RepeatCount::For(d),
                ..
            })
            | StepKind::Sleep(d) => {
                assert!(*d <= max)
            }
            _ => {}
        }
    }
    assert!(
        memory.values().sum::<u64>() <= validate::HOTPLUG_ROOM,
        "{memory:?}"
    );
}

/// A device validation let through: a driver of the allow-list, each property one it takes
/// (QMP `device_add` also has `driver` and `id`); memory devices only from QMP.
fn device_allowed(driver: &str, props: &JsonMap, qmp: bool) {
    let d = validate::allowed_driver(driver).unwrap_or_else(|| panic!("driver {driver}"));
    assert!(qmp || !d.memory, "{driver} outside QMP");
    for (k, v) in props {
        if qmp && (k == "driver" || k == "id") {
            continue;
        }
        let kind = d.prop(k).unwrap_or_else(|| panic!("{driver} property {k}"));
        assert!(kind.accepts(v), "{driver} {k}={v}");
    }
}

fn parse(text: &str) -> std::thread::Result<Result<Scenario, ScenarioError>> {
    std::panic::catch_unwind(|| parse_str(text, "fuzz.yaml", &overlays()))
}

fn budget() -> usize {
    std::env::var("RIG_SCENARIO_FUZZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

#[test]
fn structure_aware_fuzzing_gives_a_scenario_or_one_located_error() {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(0x005e_ed0f_f022),
        depth: 0,
    };
    let mut valid = 0;
    for _ in 0..budget() {
        let text = g.document();
        if check(&text, "fuzz.yaml", parse(&text)) {
            valid += 1;
        }
    }
    // Many errors, by design; but the valid space must be reached too, or the promises
    // below are never checked.
    assert!(
        valid * 40 >= budget(),
        "only {valid} of {} inputs were valid",
        budget()
    );
    for text in [
        deep(3),
        deep(40),
        deep(200),
        "steps: [{guest: {run: 'true', timeout: 99999999999h}}]\n".into(),
        "timeout: 1000000000000000000000h\nsteps: []\n".into(),
        "steps: [{repeat: {times: 18446744073709551616, steps: []}}]\n".into(),
        "name: \"a\\u001b[2Jb\"\nsteps: []\n".into(),
        format!("name: {}\nsteps: []\n", "n".repeat(100_000)),
        "cmdline: [RIG-READY, x]\nsteps: []\n".into(),
        "steps: [{qmp: {execute: migrate, arguments: {uri: 'exec:touch /tmp/pwned'}}}]\n".into(),
        "steps: [{qmp: {execute: human-monitor-command, arguments: {command-line: 'info'}}}]\n"
            .into(),
        "requires: [pci_hotplug]\nsteps: [{pci_hotplug: {id: n, driver: e1000e, props: \
         {romfile: /etc/shadow}}}]\n"
            .into(),
        "steps: [{qmp: {execute: device_add, arguments: {driver: loader, file: /etc/shadow}}}]\n"
            .into(),
        "steps: [{qmp: {execute: object-add, arguments: {qom-type: memory-backend-file, id: m, \
         mem-path: /etc/x, size: 1}}}]\n"
            .into(),
        "requires: [of_overlay]\nsteps: [{overlay_load: {file: '../simple-node.dtso'}}]\n".into(),
        "requires: [pci_hotplug]\nsteps: [{pci_hotplug: {id: 'n;reboot', driver: e1000e}}]\n"
            .into(),
        "devices: [{qemu: {driver: qemu-xhci}}, {qemu: {driver: usb-mtp, props: {rootdir: /, \
         readonly: 'off'}}}]\nsteps: []\n"
            .into(),
        "steps: [{qmp: {execute: device_add, arguments: {driver: ipmi-bmc-sim, id: b, sdrfile: \
         /etc/shadow}}}]\n"
            .into(),
        "steps: [{qmp: {execute: object-add, arguments: {qom-type: memory-backend-ram, id: m, \
         size: 1099511627776, prealloc: true}}}]\n"
            .into(),
        "steps: [{qmp: {execute: object-add, arguments: {qom-type: memory-backend-ram, id: m, \
         size: 134217728}}}, {qmp: {execute: device_add, arguments: {driver: pc-dimm, id: d, \
         memdev: m}}}]\n"
            .into(),
    ] {
        if check(&text, "fuzz.yaml", parse(&text)) {
            valid += 1;
        }
    }
    assert!(valid >= 2, "only {valid} inputs were valid scenarios");
}

#[test]
fn hostile_values_are_refused_at_their_position() {
    let err = |text: &str| match parse_str(text, "h.yaml", &overlays()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted:\n{text}"),
    };
    let e = err("steps:\n  - qmp: {execute: migrate, arguments: {uri: 'exec:touch /tmp/x'}}\n");
    assert!(
        e.starts_with("h.yaml:2:") && e.contains("`migrate` is not allowed"),
        "{e}"
    );
    let e = err("requires: [pci_hotplug]\nsteps:\n  - pci_hotplug: {id: n, driver: e1000e, props: {romfile: /etc/shadow}}\n");
    assert!(
        e.starts_with("h.yaml:3:") && e.contains("property `romfile`"),
        "{e}"
    );
    let e = err(
        "steps:\n  - qmp: {execute: device_add, arguments: {driver: vfio-pci, host: '00:01.0'}}\n",
    );
    assert!(e.contains("reach into the host"), "{e}");
    let e = err("cmdline: [quiet, RIG-READY]\nsteps: []\n");
    assert!(
        e.starts_with("h.yaml:1:") && e.contains("cmdline[1]"),
        "{e}"
    );
    let e = err("name: \"a\\u001b]0;pwned\\u0007\"\nsteps: []\n");
    assert!(e.contains("control characters"), "{e}");
    let e = err("steps:\n  - guest: {run: 'true', timeout: 1000000h}\n");
    assert!(
        e.starts_with("h.yaml:2:") && e.contains("at most 30 days"),
        "{e}"
    );
    let e = err("requires: [of_overlay]\nboards: [arm64-virt]\nsteps:\n  - overlay_load: {file: 'simple node.dtso'}\n");
    assert!(e.starts_with("h.yaml:4:"), "{e}");
}

#[test]
fn an_overlay_linked_from_outside_the_overlays_folder_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let ov = d.path().join("overlays");
    std::fs::create_dir(&ov).unwrap();
    std::fs::write(d.path().join("secret.dtso"), "/dts-v1/;\n").unwrap();
    std::os::unix::fs::symlink(d.path().join("secret.dtso"), ov.join("evil.dtso")).unwrap();
    std::fs::write(ov.join("good.dtso"), "/dts-v1/;\n").unwrap();
    let text = |f: &str| {
        format!("requires: [of_overlay]\nboards: [arm64-virt]\nsteps:\n  - overlay_load: {{file: {f}}}\n")
    };
    let e = parse_str(&text("evil.dtso"), "o.yaml", &ov)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("o.yaml:4:") && e.contains("link out of it"),
        "{e}"
    );
    parse_str(&text("good.dtso"), "o.yaml", &ov).unwrap();
}

#[test]
fn files_that_are_not_utf8_are_one_located_error() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for i in 0..200 {
        let mut bytes = b"name: x\nsteps:\n  - guest: {run: 'echo hi'}\n".to_vec();
        let at = rng.gen_range(0..bytes.len());
        bytes.insert(at, [0xff, 0xc3, 0x80 | 0x40, 0xed][rng.gen_range(0..4)]);
        let f = d.path().join(format!("f{i}.yaml"));
        std::fs::write(&f, &bytes).unwrap();
        let label = f.display().to_string();
        let r = std::panic::catch_unwind(|| load(&f, &overlays()));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        check(&text, &label, r);
    }
    let f = d.path().join("bad.yaml");
    std::fs::write(&f, b"name: x\nsteps: [\xff]\n").unwrap();
    let e = load(&f, &overlays()).unwrap_err().to_string();
    assert!(
        e.ends_with("bad.yaml:2:9: not UTF-8 text (byte 0xff)"),
        "{e}"
    );
}
