//! What validation makes of good files: the engine types of a full file, defaults, triage
//! against `expect:`, title patterns, `parallel.stagger`, the shipped scenarios' needs.

use super::tests::{fixture_overlays, good};
use super::*;

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
    // Both boards: whether the kernel has a device tree to overlay is its requirement's call.
    assert_eq!(s.boards, Board::ALL.to_vec());
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

pub(super) const FULL: &str = r#"# every field, to check what validation produces
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
  - guest: {name: hello, run: echo hi, timeout: 5s, expect_status: [0, 1], via: hvc}
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
  - netdevsim_del: {id: 10, via: hvc}
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
    assert_eq!(g.via, Via::Hvc);
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
    assert_eq!((del.id, del.via), (10, Via::Hvc));

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

/// `serial`, the old name of `hvc`, still reads in `transport` and every step's `via` (older
/// files, and the scenario copies of older runs), each use with a notice naming its place and
/// the new spelling; the new spelling gets none.
#[test]
fn the_old_name_serial_reads_as_hvc_with_a_notice() {
    let s = good(
        "requires: [netdevsim, devlink]\ntransport: serial\nsteps:\n  - guest: {run: 'true', via: serial}\n  - netdevsim_new: \
         {id: 1, via: ssh}\n  - devlink_reload: {dev: netdevsim/netdevsim1, via: serial}\n  - \
         netdevsim_del: {id: 1, via: serial}\n  - guest: {run: 'true'}\n",
    );
    assert_eq!(s.transport, Via::Hvc);
    let vias: Vec<Via> = s
        .steps
        .iter()
        .map(|st| match &st.kind {
            StepKind::Guest(g) => g.via,
            StepKind::NetdevsimNew(n) => n.via,
            StepKind::DevlinkReload(d) => d.via,
            StepKind::NetdevsimDel(n) => n.via,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(vias, [Via::Hvc, Via::Ssh, Via::Hvc, Via::Hvc, Via::Hvc]);
    let why = "is deprecated: the command shell is on the guest's virtio console hvc0, not a \
               serial port; write";
    assert_eq!(
        s.notices,
        [
            format!("t.yaml:2:12: transport: `transport: serial` {why} `transport: hvc`"),
            format!("t.yaml:4:31: steps[0].guest.via: `via: serial` {why} `via: hvc`"),
            format!("t.yaml:6:54: steps[2].devlink_reload.via: `via: serial` {why} `via: hvc`"),
            format!("t.yaml:7:33: steps[3].netdevsim_del.via: `via: serial` {why} `via: hvc`"),
        ]
    );
    let s = good("transport: hvc\nsteps:\n  - guest: {run: 'true', via: hvc}\n");
    assert_eq!(s.transport, Via::Hvc);
    assert!(s.notices.is_empty(), "{:?}", s.notices);
}

#[test]
fn defaults_apply() {
    let s = good("steps:\n  - guest: {run: uname -a}\n");
    assert_eq!(s.name, "t");
    assert_eq!(s.boards, Board::ALL.to_vec());
    assert_eq!(s.timeout, defaults::SCENARIO_TIMEOUT);
    assert_eq!(s.transport, Via::Hvc);
    assert!(s.notices.is_empty());
    let StepKind::Guest(g) = &s.steps[0].kind else {
        panic!()
    };
    assert_eq!(g.expect_status, ExpectStatus::OneOf(vec![0]));
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
