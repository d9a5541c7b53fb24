//! Scenario parsing and validation errors, and the helpers the other `tests_*` files share.
//! Bad files live in `rig/tests/fixtures/scenarios/bad/`; each test checks the exact
//! `file:line:column: path: message` text.

use super::*;
use std::path::PathBuf;

pub(super) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios")
}

pub(super) fn fixture_overlays() -> PathBuf {
    fixtures().join("overlays")
}

/// Loads `bad/<name>` and returns the error text, with the file shown as `bad/<name>`.
fn bad(name: &str) -> String {
    let path = fixtures().join("bad").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    match parse_str(&text, &format!("bad/{name}"), &fixture_overlays()) {
        Ok(s) => panic!("bad/{name} validated: {s:?}"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn good(text: &str) -> Scenario {
    parse_str(text, "t.yaml", &fixture_overlays()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn shipped_scenarios_all_load() {
    let root = crate::repo_root();
    let scenarios =
        load_dir(&root.join("scenarios"), &root.join("overlays")).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "pci-hotplug-cycle",
        "fake-warning",
        "parallel-sleeps",
        "overlay-devlink-teardown",
        "devlink-reload-vs-del",
        "memory-online-offline-race",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for s in &scenarios {
        let stem = Path::new(&s.file).file_stem().unwrap().to_str().unwrap();
        assert_eq!(s.name, stem, "{}: name differs from the file name", s.file);
        assert!(!s.description.is_empty(), "{}: no description", s.file);
    }
}

/// One test per kind of error: the exact text a user sees.
#[test]
fn syntax_error() {
    assert_eq!(
        bad("syntax.yaml"),
        "bad/syntax.yaml:4:10: steps[0].guest: YAML syntax error: while parsing a flow mapping, \
         did not find expected ',' or '}'"
    );
}

#[test]
fn unknown_field_at_top_level() {
    assert_eq!(
        bad("unknown-field-top.yaml"),
        "bad/unknown-field-top.yaml:2:1: descripton: unknown field `descripton` (known: name, \
         description, boards, requires, cmdline, timeout, transport, expect, allow, devices, trace, steps)"
    );
}

#[test]
fn unknown_field_inside_a_step() {
    assert_eq!(
        bad("unknown-field-step.yaml"),
        "bad/unknown-field-step.yaml:6:7: steps[1].guest.timout: unknown field `timout` \
         (known: name, run, timeout, expect_status, via)"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        bad("wrong-type.yaml"),
        "bad/wrong-type.yaml:4:14: steps[0].repeat.times: invalid type: string \"three\", \
         expected a non-negative integer up to 4294967295"
    );
}

#[test]
fn unknown_step_kind() {
    assert_eq!(
        bad("unknown-step-kind.yaml"),
        "bad/unknown-step-kind.yaml:4:5: steps[0].pci_hotplg: unknown step kind `pci_hotplg` \
         (known: guest, qmp, pci_hotplug, pci_unplug, overlay_load, overlay_unload, memory_add, \
         memory_remove, memory_online, memory_offline, devlink_reload, netdevsim_new, \
         netdevsim_del, parallel, repeat, wait_log, sleep, memory_resize, of_unittest)"
    );
}

#[test]
fn bad_duration() {
    assert_eq!(
        bad("bad-duration.yaml"),
        "bad/bad-duration.yaml:3:36: steps[0].guest.timeout: invalid duration `10x`: unknown \
         time unit \"x\" (write e.g. 500ms, 30s, 2m, 1h30m)"
    );
}

#[test]
fn unknown_overlay_file() {
    assert_eq!(
        bad("unknown-overlay.yaml"),
        "bad/unknown-overlay.yaml:7:26: steps[2].overlay_load.file: unknown overlay `nope.dtso` \
         (known: clock-provider-consumer.dtso, simple-node.dtso)"
    );
}

#[test]
fn bad_regex_in_wait_log() {
    assert_eq!(
        bad("bad-regex-wait-log.yaml"),
        "bad/bad-regex-wait-log.yaml:4:14: steps[0].wait_log.regex: invalid regex \
         `device (removed`: unclosed group"
    );
}

#[test]
fn setup_steps_and_host_steps_in_guest_jobs_are_refused_inside_parallel() {
    let msg = |steps: &str| {
        let text = format!(
            "requires: [pci_hotplug, memory_hotplug]\nsteps:\n  - parallel:\n      deadline: 5s\n      steps:\n{steps}"
        );
        match parse_str(&text, "t.yaml", &fixture_overlays()) {
            Ok(_) => panic!("validated:\n{text}"),
            Err(e) => e.to_string(),
        }
    };
    let e = msg("        - sleep: 1s\n        - wait_log: {regex: x}\n");
    assert_eq!(
        e,
        "t.yaml:7:11: steps[0].parallel.steps[1].wait_log: `wait_log` cannot run inside \
         `parallel`: it sets something up and waits for the guest; put it before the `parallel`"
    );
    for kind in [
        "pci_hotplug: {id: n, driver: e1000e}",
        "memory_add: {id: d, size: 128M}",
        "overlay_load: {file: simple-node.dtso}",
    ] {
        let e = msg(&format!("        - sleep: 1s\n        - {kind}\n"));
        assert!(
            e.starts_with("t.yaml:7:11: steps[0].parallel.steps[1]."),
            "{e}"
        );
        assert!(e.contains("cannot run inside `parallel`"), "{e}");
    }
    let e = msg(
        "        - sleep: 1s\n        - repeat:\n            times: 3\n            steps:\n              - pci_unplug: {id: n}\n",
    );
    assert!(
        e.starts_with("t.yaml:10:17: steps[0].parallel.steps[1].repeat.steps[0].pci_unplug: `pci_unplug` runs on the host"),
        "{e}"
    );
    // Host-side steps directly in `parallel` are fine.
    good(
        "requires: [pci_hotplug]\nsteps:\n  - pci_hotplug: {id: n, driver: e1000e}\n  - parallel:\n      \
         deadline: 5s\n      steps:\n        - sleep: 1s\n        - pci_unplug: {id: n}\n",
    );
}

#[test]
fn bad_regex_in_expect() {
    assert_eq!(
        bad("bad-regex-expect.yaml"),
        "bad/bad-regex-expect.yaml:4:5: expect[1]: invalid regex `refcount (bug`: unclosed group"
    );
}

#[test]
fn unknown_board() {
    assert_eq!(
        bad("unknown-board.yaml"),
        "bad/unknown-board.yaml:2:22: boards[1]: unknown board `riscv-virt` \
         (known: x86_64-q35, arm64-virt)"
    );
}

#[test]
fn unknown_feature() {
    assert_eq!(
        bad("unknown-feature.yaml"),
        "bad/unknown-feature.yaml:2:23: requires[1]: unknown feature `of_overlays` (known: \
         of_overlay, pci_of_nodes, pci_overlay_driver, netdevsim, devlink, pci_hotplug, memory_hotplug, lockdep, kasan, virtio_mem, of_unittest, netdevsim_module, outbound_network)"
    );
}

#[test]
fn repeat_with_both_times_and_for() {
    assert_eq!(
        bad("repeat-both.yaml"),
        "bad/repeat-both.yaml:5:7: steps[0].repeat.for: give either `times` or `for`, not both"
    );
}

#[test]
fn repeat_with_neither_times_nor_for() {
    assert_eq!(
        bad("repeat-neither.yaml"),
        "bad/repeat-neither.yaml:4:7: steps[0].repeat: needs `times: N` or `for: DURATION`"
    );
}

#[test]
fn parallel_inside_parallel() {
    assert_eq!(
        bad("nested-parallel.yaml"),
        "bad/nested-parallel.yaml:10:17: steps[0].parallel.steps[1].repeat.steps[0].parallel: \
         `parallel` cannot nest inside another `parallel`; list all racing steps in one"
    );
}

#[test]
fn other_semantic_errors() {
    let cases = [
        (
            "step-needs-feature.yaml",
            "3:5: steps[0].netdevsim_new: `netdevsim_new` steps need `netdevsim` in the \
             scenario's `requires`",
        ),
        (
            "unknown-unplug-id.yaml",
            "5:22: steps[1].pci_unplug.id: no pci_hotplug step creates `nic2` (created: nic1)",
        ),
        (
            "dimm-size.yaml",
            "5:35: steps[0].memory_add.size: size must be a multiple of x86_64-q35's memory \
             block size (128 MiB)",
        ),
        (
            "exit-status.yaml",
            "3:42: steps[0].guest.expect_status: exit status 256 is outside 0-255",
        ),
        (
            "bad-transport.yaml",
            "2:12: transport: unknown transport `telnet` (known: hvc, ssh)",
        ),
    ];
    for (file, want) in cases {
        assert_eq!(bad(file), format!("bad/{file}:{want}"));
    }
}

#[test]
fn structural_errors() {
    let cases = [
        (
            "duplicate-key.yaml",
            "3:26: steps[0].guest.run: duplicate key `run`",
        ),
        ("empty.yaml", "1:1: the file is empty"),
        (
            "missing-field.yaml",
            "4:7: steps[0].guest: missing required field `run`",
        ),
        (
            "two-kinds.yaml",
            "3:5: steps[0]: expected one key naming the step kind, found 2 (name, sleep); `name` \
             goes inside the step: `- guest: {name: …, run: …}`",
        ),
        (
            "not-a-mapping.yaml",
            "1:1: invalid type: sequence, expected a scenario: a mapping with `steps` and \
             optionally name, description, boards, requires, cmdline, timeout, transport, \
             expect, allow, devices, trace",
        ),
    ];
    for (file, want) in cases {
        assert_eq!(bad(file), format!("bad/{file}:{want}"));
    }
}

#[test]
fn every_bad_fixture_is_rejected_with_a_location() {
    for e in std::fs::read_dir(fixtures().join("bad")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let msg = bad(&name);
        let prefix = format!("bad/{name}:");
        let rest = msg.strip_prefix(&prefix).unwrap_or_else(|| panic!("{msg}"));
        let mut it = rest.splitn(3, ':');
        let line: usize = it.next().unwrap().parse().unwrap();
        let col: usize = it.next().unwrap().parse().unwrap();
        assert!(line >= 1 && col >= 1, "{msg}");
    }
}

#[test]
fn value_errors_point_at_the_value() {
    let e = |text: &str| {
        parse_str(text, "t.yaml", &fixture_overlays())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        e("steps:\n  - guest\n"),
        "t.yaml:2:5: steps[0]: `guest` needs a value: `guest: …`"
    );
    assert_eq!(
        e("steps: []\n"),
        "t.yaml:1:8: steps: needs at least one step"
    );
    assert_eq!(
        e("cmdline: [\"a b\"]\nsteps:\n  - sleep: 1s\n"),
        "t.yaml:1:11: cmdline[0]: `a b` is not one kernel parameter (one per entry, no spaces)"
    );
    assert_eq!(
        e("steps:\n  - sleep: 0s\n"),
        "t.yaml:2:12: steps[0].sleep: must be longer than 0s"
    );
    assert_eq!(
        e("requires: [pci_hotplug]\nsteps:\n  - pci_hotplug: {id: 1nic, driver: e1000e}\n"),
        "t.yaml:3:23: steps[0].pci_hotplug.id: invalid id `1nic`: QEMU ids start with a letter \
         and hold letters, digits, `-`, `.`, `_`"
    );
    assert_eq!(
        e("boards: [arm64-virt]\nrequires: [of_overlay]\nsteps:\n  - overlay_load: {file: ../x.dtso}\n"),
        format!(
            "t.yaml:4:26: steps[0].overlay_load.file: overlay `../x.dtso` must be a `.dtso` file \
             name in {} (known: clock-provider-consumer.dtso, simple-node.dtso)",
            fixture_overlays().display()
        )
    );
    assert_eq!(
        e("timeout: 30\nsteps:\n  - sleep: 1s\n"),
        "t.yaml:1:10: timeout: invalid duration `30`: time unit needed, for example 30sec or \
         30ms (write e.g. 500ms, 30s, 2m, 1h30m)"
    );
}

#[test]
fn missing_file_is_a_read_error() {
    let e = load(Path::new("/nonexistent/x.yaml"), &fixture_overlays()).unwrap_err();
    assert!(matches!(e, ScenarioError::Read { .. }), "{e}");
}
