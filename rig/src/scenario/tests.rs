//! Scenario parsing and validation tests. Bad files live in `rig/tests/fixtures/scenarios/bad/`;
//! each test checks the exact `file:line:column: path: message` text.

use super::*;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios")
}

fn fixture_overlays() -> PathBuf {
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

fn good(text: &str) -> Scenario {
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
         description, boards, requires, cmdline, timeout, transport, expect, allow, devices, steps)"
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
         of_overlay, netdevsim, devlink, pci_hotplug, memory_hotplug, lockdep, kasan, virtio_mem, of_unittest, netdevsim_module, outbound_network)"
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
            "2:12: transport: unknown transport `telnet` (known: serial, ssh)",
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
             expect, allow, devices",
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
fn shipped_scenarios_say_what_they_need() {
    let root = crate::repo_root();
    let s = load(
        &root.join("scenarios/memory-dimm-online-offline-race.yaml"),
        &root.join("overlays"),
    )
    .unwrap();
    assert_eq!(s.boards, vec![Board::X86_64Q35]);
    assert_eq!(s.cmdline, vec!["memhp_default_state=offline".to_string()]);
    let s = load(
        &root.join("scenarios/overlay-devlink-teardown.yaml"),
        &root.join("overlays"),
    )
    .unwrap();
    assert_eq!(s.boards, vec![Board::Arm64Virt]);
    let StepKind::Repeat(r) = &s.steps[0].kind else {
        panic!("{:?}", s.steps[0])
    };
    assert_eq!(r.count, RepeatCount::Times(20));
    let StepKind::OverlayLoad(o) = &r.steps[0].kind else {
        panic!("{:?}", r.steps[0])
    };
    assert!(o.file.ends_with("overlays/clock-provider-consumer.dtso"));
    assert!(o.file.is_file());
}

const FULL: &str = r#"# every field, to check what validation produces
name: full
description: everything
boards: [x86_64-q35]
requires: [pci_hotplug, memory_hotplug, netdevsim, devlink, lockdep]
cmdline: [nokaslr, memhp_default_state=offline]
timeout: 20m
transport: ssh
expect: ["WARNING in device_del", "/^possible deadlock in /"]
allow: ["/^INFO: task .* blocked/"]
steps:
  - guest: {name: hello, run: echo hi, timeout: 5s, expect_status: [0, 1], via: serial}
  - guest: {run: "true", expect_status: any}
  - qmp:
      execute: device_del
      arguments: {id: nic1, nested: {a: [1, 2.5, "x", true, null]}}
      wait_event: {event: DEVICE_DELETED, data: {device: nic1}}
      may_fail: true
  - pci_hotplug: {id: nic1, driver: e1000e, port: rp2, props: {mac: "52:54:00:12:34:56"}}
  - pci_unplug: {id: nic1}
  - memory_add: {id: dimm0, size: 1G}
  - memory_online: {id: dimm0}
  - memory_offline: {id: dimm0, timeout: 2m}
  - memory_remove: {id: dimm0, wait: false}
  - netdevsim_new: {id: 10}
  - devlink_reload: {dev: netdevsim/netdevsim10, action: fw_activate}
  - netdevsim_del: {id: 10, via: serial}
  - repeat:
      for: 1m30s
      steps:
        - parallel:
            deadline: 10s
            steps:
              - sleep: 500ms
              - memory_online: {id: dimm0, zone: kernel}
  - wait_log: {regex: "e1000e .* removed", since: boot}
  - sleep: 2s
"#;

#[test]
fn a_full_file_validates_into_engine_types() {
    let s = good(FULL);
    assert_eq!(s.name, "full");
    assert_eq!(s.boards, vec![Board::X86_64Q35]);
    let feats: Vec<Feature> = s.requires.iter().map(|r| r.feature).collect();
    assert_eq!(
        feats,
        vec![
            Feature::PciHotplug,
            Feature::MemoryHotplug,
            Feature::Netdevsim,
            Feature::Devlink,
            Feature::Lockdep
        ]
    );
    assert_eq!((s.requires[2].at.line, s.requires[2].at.column), (5, 41));
    assert_eq!(s.timeout, Duration::from_secs(1200));
    assert_eq!(s.transport, Via::Ssh);
    assert_eq!(s.steps.len(), 15);

    let StepKind::Guest(g) = &s.steps[0].kind else {
        panic!()
    };
    assert_eq!(s.steps[0].name.as_deref(), Some("hello"));
    assert_eq!(g.timeout, Duration::from_secs(5));
    assert_eq!(g.via, Via::Serial);
    assert!(g.expect_status.accepts(1) && !g.expect_status.accepts(2));
    assert_eq!(s.steps[0].at.to_string(), "t.yaml:12:5");
    assert_eq!(s.steps[0].at.path, "steps[0]");

    let StepKind::Guest(g) = &s.steps[1].kind else {
        panic!()
    };
    assert_eq!(g.expect_status, ExpectStatus::Any);
    assert_eq!(g.via, Via::Ssh, "the scenario's transport is the default");
    assert_eq!(g.timeout, defaults::GUEST_TIMEOUT);
    assert_eq!(s.steps[1].label(), "guest (steps[1])");

    let StepKind::Qmp(q) = &s.steps[2].kind else {
        panic!()
    };
    assert!(s.steps[2].may_fail);
    assert_eq!(q.execute, "device_del");
    assert_eq!(
        serde_json::Value::Object(q.arguments.clone()),
        serde_json::json!({"id": "nic1", "nested": {"a": [1, 2.5, "x", true, null]}})
    );
    let w = q.wait_event.as_ref().unwrap();
    assert!(w.matches(
        "DEVICE_DELETED",
        &serde_json::json!({"device": "nic1", "path": "/x"})
    ));
    assert!(!w.matches("DEVICE_DELETED", &serde_json::json!({"device": "nic2"})));
    assert!(!w.matches("RESET", &serde_json::json!({"device": "nic1"})));

    let StepKind::PciHotplug(p) = &s.steps[3].kind else {
        panic!()
    };
    assert_eq!(p.port.as_deref(), Some("rp2"));
    assert_eq!(p.props["mac"], "52:54:00:12:34:56");
    let StepKind::MemoryAdd(m) = &s.steps[5].kind else {
        panic!()
    };
    assert_eq!(m.size_bytes, 1 << 30);
    let StepKind::MemoryOnline(m) = &s.steps[6].kind else {
        panic!()
    };
    assert_eq!(m.zone.state_value(), "online_movable");
    let StepKind::MemoryRemove(m) = &s.steps[8].kind else {
        panic!()
    };
    assert!(!m.wait);
    let StepKind::NetdevsimNew(n) = &s.steps[9].kind else {
        panic!()
    };
    assert_eq!((n.id, n.ports), (10, 1));
    let StepKind::DevlinkReload(d) = &s.steps[10].kind else {
        panic!()
    };
    assert_eq!(d.action.devlink_name(), "fw_activate");

    assert_eq!((n.via, d.via), (Via::Ssh, Via::Ssh));
    let StepKind::NetdevsimDel(del) = &s.steps[11].kind else {
        panic!()
    };
    assert_eq!((del.id, del.via), (10, Via::Serial));

    let StepKind::Repeat(r) = &s.steps[12].kind else {
        panic!()
    };
    assert_eq!(r.count, RepeatCount::For(Duration::from_secs(90)));
    let StepKind::Parallel(p) = &r.steps[0].kind else {
        panic!()
    };
    assert_eq!(p.deadline, Duration::from_secs(10));
    assert!(matches!(p.steps[0].kind, StepKind::Sleep(d) if d == Duration::from_millis(500)));
    assert!(matches!(p.steps[1].kind, StepKind::MemoryOnline(_)));
    assert_eq!(
        p.steps[1].at.path,
        "steps[12].repeat.steps[0].parallel.steps[1]"
    );
    let StepKind::WaitLog(w) = &s.steps[13].kind else {
        panic!()
    };
    assert_eq!(w.since, Since::Boot);
    assert!(w.regex.is_match("e1000e 0000:01:00.0: removed"));
    assert_eq!(s.all_steps().len(), 18);
}

#[test]
fn triage_sorts_titles() {
    let s = good(FULL);
    let t = s.triage([
        "WARNING in device_del",
        "possible deadlock in mem_hotplug_begin",
        "INFO: task kworker/0:1 blocked for more than 120 seconds",
        "KASAN: use-after-free Read in device_del",
        "WARNING in device_del",
    ]);
    assert_eq!(
        t.expected,
        vec![
            "WARNING in device_del",
            "possible deadlock in mem_hotplug_begin"
        ]
    );
    assert_eq!(
        t.allowed,
        vec!["INFO: task kworker/0:1 blocked for more than 120 seconds"]
    );
    assert_eq!(
        t.unexpected,
        vec!["KASAN: use-after-free Read in device_del"]
    );
    assert!(t.missing.is_empty());
    assert!(!t.passed());

    let t = s.triage(["WARNING in device_del"]);
    assert_eq!(t.missing, vec!["/^possible deadlock in /"]);
    assert!(!t.passed());

    let quiet = good("steps:\n  - sleep: 1s\n");
    assert!(quiet.triage([]).passed());
    assert!(!quiet.triage(["WARNING in device_del"]).passed());
}

#[test]
fn title_patterns() {
    let exact = TitlePattern::parse("WARNING: refcount bug in X").unwrap();
    assert!(exact.matches("WARNING: refcount bug in X"));
    assert!(!exact.matches("WARNING: refcount bug in Y"));
    let re = TitlePattern::parse("/refcount bug in (X|Y)/").unwrap();
    assert!(re.matches("WARNING: refcount bug in Y"));
    assert_eq!(re.to_string(), "/refcount bug in (X|Y)/");
    // A lone slash is an exact title, not an empty regex.
    assert!(matches!(
        TitlePattern::parse("/").unwrap(),
        TitlePattern::Exact(_)
    ));
    assert!(TitlePattern::parse("  ").is_err());
}

#[test]
fn defaults_apply() {
    let s = good("steps:\n  - guest: {run: uname -a}\n");
    assert_eq!(s.name, "t");
    assert_eq!(s.boards, Board::ALL.to_vec());
    assert_eq!(s.timeout, defaults::SCENARIO_TIMEOUT);
    assert_eq!(s.transport, Via::Serial);
    let StepKind::Guest(g) = &s.steps[0].kind else {
        panic!()
    };
    assert_eq!(g.expect_status, ExpectStatus::OneOf(vec![0]));
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

/// Never a panic: every prefix of a valid file, and some mangled ones, give Ok or an error.
#[test]
fn truncated_and_mangled_input_never_panics() {
    let mut inputs: Vec<String> = Vec::new();
    let root = crate::repo_root();
    let mut texts = vec![FULL.to_string()];
    for e in std::fs::read_dir(root.join("scenarios")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            texts.push(std::fs::read_to_string(p).unwrap());
        }
    }
    for text in &texts {
        let chars: Vec<char> = text.chars().collect();
        for n in 0..chars.len() {
            inputs.push(chars[..n].iter().collect());
        }
        // Drop one line at a time; swap indentation for tabs.
        let lines: Vec<&str> = text.lines().collect();
        for i in 0..lines.len() {
            let mut l = lines.clone();
            l.remove(i);
            inputs.push(l.join("\n"));
        }
        inputs.push(text.replace("  ", "\t"));
        inputs.push(text.replace(':', ""));
        inputs.push(text.replace('{', "["));
    }
    inputs.extend(
        [
            "[",
            "{",
            "]",
            "}",
            "- -",
            ": :",
            "&a [*a]",
            "!!str x",
            "? x",
            "%YAML 1.2\n---\n",
            "steps: *x",
            "\u{feff}steps: []",
            "steps:\n\t- sleep: 1s",
            "'",
            "\"\\u12",
        ]
        .map(String::from),
    );
    inputs.push("[".repeat(10_000));
    inputs.push("- ".repeat(5_000));
    inputs.push(format!(
        "steps: [{}]",
        "{repeat: {times: 1, steps: [".repeat(100)
    ));
    let mut ok = 0;
    for input in &inputs {
        if parse_str(input, "t.yaml", &fixture_overlays()).is_ok() {
            ok += 1;
        }
    }
    // The untouched files are among them and are valid.
    assert!(ok >= texts.len(), "{ok} of {} valid", inputs.len());
}

/// Random byte-level mutations of a valid file (deterministic seed): never a panic.
#[test]
fn mutated_input_never_panics() {
    let n: usize = std::env::var("RIG_SCENARIO_FUZZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b" \t\n-:{}[],'\"#&*!?|>%@`\\0123456789abcxyz.";
    let base = FULL.as_bytes();
    for _ in 0..n {
        let mut b = base.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % b.len();
            let c = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => b[at] = c,
                1 => b.insert(at, c),
                _ => {
                    b.remove(at);
                }
            }
        }
        let text = String::from_utf8_lossy(&b);
        let _ = parse_str(&text, "t.yaml", &fixture_overlays());
    }
}

#[test]
fn parallel_stagger_ranges() {
    let par = |stagger: &str| {
        format!(
            "steps:\n  - parallel:\n      deadline: 5s\n      stagger: {stagger}\n      steps:\n        \
             - guest: {{run: 'true'}}\n        - guest: {{run: 'true'}}\n"
        )
    };
    let got = |stagger: &str| match &good(&par(stagger)).steps[0].kind {
        StepKind::Parallel(p) => p.stagger.unwrap(),
        other => panic!("{other:?}"),
    };
    let ms = Duration::from_millis;
    assert_eq!(
        got("0-50ms"),
        Stagger {
            min: ms(0),
            max: ms(50)
        }
    );
    assert_eq!(
        got("10ms-1s"),
        Stagger {
            min: ms(10),
            max: ms(1000)
        }
    );
    assert_eq!(
        got("20-20ms"),
        Stagger {
            min: ms(20),
            max: ms(20)
        }
    );
    let err = |stagger: &str| match parse_str(&par(stagger), "t.yaml", &fixture_overlays()) {
        Ok(s) => panic!("{stagger} validated: {s:?}"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        err("50-10ms"),
        "t.yaml:4:16: steps[0].parallel.stagger: invalid stagger `50-10ms`: the low end is above \
         the high end (write a range such as 0-50ms or 10ms-1s)"
    );
    assert!(err("50ms").contains("no `-`"), "{}", err("50ms"));
    assert!(err("0-0ms").contains("more than zero"), "{}", err("0-0ms"));
    assert!(
        err("0-50").contains("invalid stagger `0-50`"),
        "{}",
        err("0-50")
    );
    assert_eq!(
        err("0-5s"),
        "t.yaml:4:16: steps[0].parallel.stagger: the stagger's high end (5s) must be below the \
         deadline (5s)"
    );
}
