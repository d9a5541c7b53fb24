//! Reproduce without booting: reading records, refusing what cannot be replayed or is not to be
//! trusted, verdict classes. (Replays themselves boot: `rig/tests/vm_matrix.rs`; bundles:
//! [`bundle_tests`].)

use super::*;
use std::collections::BTreeMap;

pub(super) fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports/fake-warning")
}

/// A run folder made of the real fake-warning run's record and report, plus its scenario copy.
pub(super) fn run_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture().join(crate::report::REPORT_FILE),
        dir.path().join(crate::report::REPORT_FILE),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("scenario")).unwrap();
    let copy = dir.path().join("scenario/fake-warning.yaml");
    std::fs::copy(
        crate::repo_root().join("scenarios/fake-warning.yaml"),
        &copy,
    )
    .unwrap();
    // The checkout's scenario may have changed since the fixture was recorded: the record
    // names the copy's hash, as a run's does.
    let mut rec = record_json();
    rec["scenario"]["sha256"] = crate::host::cache::sha256_file(&copy).unwrap().into();
    write_record(dir.path(), &rec);
    dir
}

/// The fixture's record as JSON, for tests that change a field.
pub(super) fn record_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join(RECORD_FILE)).unwrap()).unwrap()
}

/// A folder's `run.json` as JSON.
pub(super) fn folder_record(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(RECORD_FILE)).unwrap()).unwrap()
}

/// Writes `record` as the folder's `run.json`.
pub(super) fn write_record(dir: &Path, record: &serde_json::Value) {
    std::fs::write(dir.join(RECORD_FILE), record.to_string()).unwrap();
}

#[test]
fn a_record_reads_back_with_the_failing_titles() {
    let dir = run_folder();
    let r = open(dir.path(), dir.path()).unwrap();
    assert_eq!(r.failing_titles, ["WARNING in device_del"]);
    assert_eq!(r.verdict.as_deref(), Some("fail"));
    assert_eq!(r.record.scenario.name, "fake-warning");
    assert_eq!(r.record.kernel.name, "debian-6.1");
    assert!(r.record.seed > 0);
    assert!(r.report_problem.is_none());
}

#[test]
fn a_folder_without_a_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), dir.path()).unwrap_err();
    assert!(e.is_bad_input());
    assert!(
        e.to_string()
            .ends_with("it has no run.json (runs made by this rig keep one)"),
        "{e}"
    );
    std::fs::write(dir.path().join(RECORD_FILE), "{\"record_version\": 1}").unwrap();
    let e = open(dir.path(), dir.path()).unwrap_err();
    assert!(
        e.to_string().contains("is not a run record this rig reads"),
        "{e}"
    );
}

/// A record field set to `value`: the error `open` gives (it must refuse).
fn refused_with(field: &[&str], value: serde_json::Value) -> String {
    let dir = run_folder();
    let mut rec = folder_record(dir.path());
    let mut at = &mut rec;
    for f in &field[..field.len() - 1] {
        at = &mut at[*f];
    }
    at[field[field.len() - 1]] = value.clone();
    write_record(dir.path(), &rec);
    match open(dir.path(), dir.path()) {
        Ok(r) => panic!("{field:?} = {value} accepted: {:?}", *r.record),
        Err(e) => {
            assert!(e.is_bad_input(), "{e}");
            e.to_string()
        }
    }
}

#[test]
fn numbers_in_a_record_are_bounded() {
    use serde_json::json;
    for (field, value, says) in [
        ("repeat", json!(0), "repeat is 0: must be 1 to 1000"),
        ("repeat", json!(1001), "repeat is 1001"),
        ("repeat", json!(4_000_000_000u64), "repeat is 4000000000"),
        (
            "memory_mib",
            json!(0),
            "memory_mib is 0: must be 64 to 4096",
        ),
        ("memory_mib", json!(1u64 << 40), "the boards' maximum"),
        ("record_version", json!(2), "record_version is 2"),
    ] {
        let e = refused_with(&[field], value);
        assert!(e.contains(says), "{field}: {e}");
    }
    // Negative, fractional or out-of-range numbers do not parse at all.
    for (field, value) in [("seed", json!(-1)), ("memory_mib", json!(1.5))] {
        refused_with(&[field], value);
    }
}

#[test]
fn names_and_texts_in_a_record_are_checked() {
    use serde_json::json;
    for (field, value, says) in [
        (&["accel"][..], json!("bogus"), "accel: unknown accelerator"),
        (&["board"][..], json!("riscv-virt"), "unknown variant"),
        (
            &["kernel", "name"][..],
            json!("linux-9.9"),
            "unknown kernel",
        ),
        (
            &["scenario", "name"][..],
            json!("x\u{1b}[2Jy"),
            "control characters",
        ),
        (
            &["qemu_version"][..],
            json!("QEMU\u{7}"),
            "control characters",
        ),
        (
            &["scenario", "name"][..],
            json!(""),
            "scenario.name must be 1 to 200",
        ),
        (&["extra_cmdline"][..], json!(["a b"]), "extra_cmdline"),
        (
            &["extra_cmdline"][..],
            json!(["RIG-READY=1"]),
            "rig console marker",
        ),
        (&["surprise"][..], json!(1), "unknown field `surprise`"),
    ] {
        let e = refused_with(field, value);
        assert!(e.contains(says), "{field:?}: {e}");
    }
}

#[test]
fn paths_in_a_record_are_relative_plain_and_in_their_folder() {
    use serde_json::json;
    for bad in [
        "/etc/passwd",
        "../secret.yaml",
        "scenario/../../x.yaml",
        "x.yaml",
        "scenario/a/b.yaml",
        "scenario/.hidden",
    ] {
        let e = refused_with(&["scenario", "copy"], json!(bad));
        assert!(e.contains("scenario.copy is `"), "{bad}: {e}");
    }
    for bad in [
        "/etc/x.dtso",
        "scenario/overlays/../../x.dtso",
        "scenario/x.dtso",
    ] {
        let e = refused_with(&["scenario", "overlays"], json!([bad]));
        assert!(e.contains("scenario.overlays[0] is `"), "{bad}: {e}");
    }
}

#[test]
fn a_scenario_copy_that_links_out_of_the_folder_is_refused() {
    let dir = run_folder();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("fake-warning.yaml");
    std::fs::rename(dir.path().join("scenario/fake-warning.yaml"), &target).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("scenario/fake-warning.yaml")).unwrap();
    let r = open(dir.path(), dir.path()).unwrap();
    let e = replay(
        r,
        &ReplayOptions::default(),
        &Cache::at(dir.path()),
        &RunDir::create_in(dir.path(), "x").unwrap(),
        &Events::none(),
    )
    .unwrap_err();
    assert!(e.is_bad_input());
    assert!(e.to_string().contains("a symbolic link"), "{e}");
    // A linked `scenario` folder is refused the same way.
    std::fs::remove_file(dir.path().join("scenario/fake-warning.yaml")).unwrap();
    std::fs::remove_dir(dir.path().join("scenario")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("scenario")).unwrap();
    let r = open(dir.path(), dir.path()).unwrap();
    let e = replay(
        r,
        &ReplayOptions::default(),
        &Cache::at(dir.path()),
        &RunDir::create_in(dir.path(), "x").unwrap(),
        &Events::none(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("a symbolic link"), "{e}");
}

#[test]
fn a_changed_scenario_copy_is_refused() {
    let dir = run_folder();
    let copy = dir.path().join("scenario/fake-warning.yaml");
    let text = std::fs::read_to_string(&copy).unwrap() + "\n# changed\n";
    std::fs::write(&copy, text).unwrap();
    let r = open(dir.path(), dir.path()).unwrap();
    let e = replay(
        r,
        &ReplayOptions::default(),
        &Cache::at(dir.path()),
        &RunDir::create_in(dir.path(), "x").unwrap(),
        &Events::none(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("is not the one the run used"), "{e}");
}

/// A run of an older rig whose scenario copy names the command shell by its old name (`serial`)
/// still opens, and its copy loads as the replay loads it: the old name reads as hvc, with a
/// notice for the user.
#[test]
fn an_older_runs_copy_that_says_serial_still_reads() {
    let dir = run_folder();
    let copy = dir.path().join("scenario/fake-warning.yaml");
    let text = std::fs::read_to_string(&copy).unwrap();
    let old = text.replace("timeout: 5m\n", "timeout: 5m\ntransport: serial\n");
    assert_ne!(old, text);
    std::fs::write(&copy, &old).unwrap();
    let mut rec = folder_record(dir.path());
    rec["scenario"]["sha256"] = crate::host::cache::sha256_file(&copy).unwrap().into();
    write_record(dir.path(), &rec);
    let r = open(dir.path(), dir.path()).unwrap();
    assert_eq!(r.record.scenario.name, "fake-warning");
    let overlays = dir.path().join("scenario/overlays");
    let sc = crate::scenario::load(&copy, &overlays).unwrap();
    assert_eq!(sc.transport, crate::guest::transport::Via::Hvc);
    assert_eq!(sc.notices.len(), 1, "{:?}", sc.notices);
    assert!(
        sc.notices[0].contains("`transport: serial` is deprecated")
            && sc.notices[0].contains("write `transport: hvc`"),
        "{:?}",
        sc.notices
    );
}

/// A kernel tree whose Makefile and merge_config.sh leave `marker` when anything runs them.
pub(super) fn booby_trapped_tree(dir: &Path, marker: &Path) {
    let touch = format!("touch {}", marker.display());
    std::fs::create_dir_all(dir.join("scripts/kconfig")).unwrap();
    std::fs::write(
        dir.join("Makefile"),
        format!("%:\n\t{touch}\nall:\n\t{touch}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("Kconfig"), "").unwrap();
    let merge = dir.join("scripts/kconfig/merge_config.sh");
    std::fs::write(&merge, format!("#!/bin/sh\n{touch}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&merge, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The fixture's run, recorded on `tree:TREE` with source identity `identity`.
fn tree_run(tree: &Path, identity: &str) -> tempfile::TempDir {
    let dir = run_folder();
    let mut rec = folder_record(dir.path());
    rec["kernel"]["name"] = format!("tree:{}#kasan", tree.display()).into();
    rec["kernel"]["provenance"] = serde_json::json!({ "source_identity": identity });
    write_record(dir.path(), &rec);
    dir
}

#[test]
fn a_tree_kernel_is_not_built_from_the_tree_a_record_names() {
    let d = tempfile::tempdir().unwrap();
    let (tree, marker) = (d.path().join("linux"), d.path().join("ran"));
    booby_trapped_tree(&tree, &marker);
    let dir = tree_run(&tree, "git:abc:def");
    let r = open(dir.path(), dir.path()).unwrap();
    let e = replay(
        r,
        &ReplayOptions::default(),
        &Cache::at(d.path()),
        &RunDir::create_in(d.path(), "x").unwrap(),
        &Events::none(),
    )
    .unwrap_err();
    assert!(e.is_bad_input());
    assert_eq!(
        e.to_string(),
        format!(
            "the run's kernel `tree:{}#kasan` was built from a source tree, and rig builds a \
             tree only from one you name: pass `--tree PATH` with a tree whose source identity \
             is git:abc:def (the run used {})",
            tree.display(),
            tree.display()
        )
    );
    assert!(!marker.exists(), "the record's tree ran");
}

#[test]
fn a_tree_given_with_tree_must_have_the_recorded_identity() {
    let d = tempfile::tempdir().unwrap();
    let (tree, marker) = (d.path().join("linux"), d.path().join("ran"));
    booby_trapped_tree(&tree, &marker);
    let now = crate::provision::kbuild::source::tree_identity(&tree).unwrap();
    let dir = tree_run(Path::new("/elsewhere/linux"), "tree:0123");
    let r = open(dir.path(), dir.path()).unwrap();
    let e = kernel::replay_kernel(&r.record, Some(&tree)).unwrap_err();
    assert!(e.is_bad_input());
    assert_eq!(
        e.to_string(),
        format!(
            "--tree {} is not the source the run's kernel `tree:/elsewhere/linux#kasan` was \
             built from: its source identity is {now}, the run's was tree:0123",
            tree.display()
        )
    );
    // The same identity: the replay builds the named tree, with the recorded flavor.
    let dir = tree_run(Path::new("/elsewhere/linux"), &now);
    let r = open(dir.path(), dir.path()).unwrap();
    assert_eq!(
        kernel::replay_kernel(&r.record, Some(&tree)).unwrap(),
        format!("tree:{}#kasan", tree.display())
    );
    // A tree that is gone, or not a kernel tree, is bad input too.
    let e = kernel::replay_kernel(&r.record, Some(&d.path().join("gone"))).unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    assert!(
        crate::run::error_chain(&e).contains("not a kernel source tree"),
        "{e}"
    );
    assert!(!marker.exists());
    // --tree for a kernel that is not a tree kernel.
    let dir = run_folder();
    let r = open(dir.path(), dir.path()).unwrap();
    let e = kernel::replay_kernel(&r.record, Some(&tree)).unwrap_err();
    assert!(e.to_string().contains("this run's is `debian-6.1`"), "{e}");
}

#[test]
fn a_damaged_report_is_named_and_the_replay_still_runs() {
    let dir = run_folder();
    let report = dir.path().join(crate::report::REPORT_FILE);
    let text = std::fs::read_to_string(&report).unwrap();
    std::fs::write(&report, &text[..text.len() / 2]).unwrap();
    let r = open(dir.path(), dir.path()).unwrap();
    let problem = r.report_problem.clone().expect("no problem named");
    assert!(problem.contains(&report.display().to_string()), "{problem}");
    assert!(problem.contains("is damaged"), "{problem}");
    assert!(r.failing_titles.is_empty() && r.verdict.is_none());
    let failed = replay_of(r, &[Verdict::Fail, Verdict::Pass], &["WARNING in x"]);
    assert_eq!(failed.exit_code(), 1);
    let out = failed.render();
    assert!(
        out.starts_with(&format!(
            "cannot compare with the original run: {problem}\nthe replay failed in 1 of 2 runs\n"
        )),
        "{out}"
    );
    assert!(out.contains("seen: WARNING in x in 1 of 2 runs"), "{out}");
}

use crate::run::{Repetition, ScenarioResult, Verdict};

/// A replay of `recorded` whose repetitions had `verdicts`, each showing `titles` when it failed.
fn replay_of(recorded: Recorded, verdicts: &[Verdict], titles: &[&str]) -> Replay {
    let reps: Vec<Repetition> = verdicts
        .iter()
        .enumerate()
        .map(|(i, v)| Repetition {
            index: i as u32 + 1,
            verdict: *v,
            reports: Vec::new(),
            triage: Default::default(),
            step_failures: if *v == Verdict::Infra {
                vec![crate::run::StepFailure {
                    step: "boot".into(),
                    at: "x.yaml".into(),
                    message: "QEMU did not start\nmore".into(),
                    infra: true,
                }]
            } else {
                Vec::new()
            },
            seconds: 1.0,
            boot_seconds: 0.5,
            steps_seconds: 0.5,
            analysis_seconds: 0.0,
            teardown_seconds: 0.0,
            artifacts: PathBuf::from("/x"),
            vmcore: None,
            console_log_truncated_at: None,
        })
        .collect();
    let failed = verdicts.iter().filter(|v| **v == Verdict::Fail).count() as u32;
    let reproduced: BTreeMap<String, u32> = titles
        .iter()
        .filter(|_| failed > 0)
        .map(|t| (t.to_string(), failed))
        .collect();
    let overall = if failed > 0 {
        Verdict::Fail
    } else if verdicts.contains(&Verdict::Infra) {
        Verdict::Infra
    } else {
        Verdict::Pass
    };
    Replay {
        recorded,
        result: ScenarioResult {
            schema_version: 1,
            seed: 1,
            scenario: "fake-warning".into(),
            file: "x.yaml".into(),
            board: crate::host::board::Board::X86_64Q35,
            kernel: "debian-6.1".into(),
            kernel_release: String::new(),
            kernel_provenance: BTreeMap::new(),
            accel: "tcg".into(),
            verdict: overall,
            complete: true,
            repeat: verdicts.len() as u32,
            report_error: None,
            repetitions: reps,
            reproduced,
            artifacts: PathBuf::from("/nonexistent/replay"),
        },
    }
}

#[test]
fn replays_that_could_not_run_are_not_did_not_reproduce() {
    let dir = run_folder();
    let recorded = open(dir.path(), dir.path()).unwrap();
    // Every replay a rig error: 125, and said so.
    let none = replay_of(recorded.clone(), &[Verdict::Infra, Verdict::Infra], &[]);
    assert_eq!(none.exit_code(), 125);
    let out = none.render();
    assert!(
        out.starts_with("could not replay: none of the 2 runs could run (rig errors, not the kernel)\n  run 1: boot: QEMU did not start\n"),
        "{out}"
    );
    assert!(!out.contains("did not reproduce"), "{out}");
    // Some ran: counted over those, and how many could run is said.
    let some = replay_of(
        recorded.clone(),
        &[Verdict::Infra, Verdict::Pass, Verdict::Pass],
        &[],
    );
    assert_eq!(some.exit_code(), 0);
    let out = some.render();
    assert!(
        out.starts_with(
            "did not reproduce in 2 runs\nnote: 2 of 3 runs could run; the other 1 were rig errors"
        ),
        "{out}"
    );
    let hit = replay_of(
        recorded,
        &[Verdict::Infra, Verdict::Fail],
        &["WARNING in device_del"],
    );
    assert_eq!(hit.exit_code(), 1);
    assert!(
        hit.render().starts_with(
            "reproduced: WARNING in device_del in 1 of 1 runs\nnote: 1 of 2 runs could run"
        ),
        "{}",
        hit.render()
    );
}

/// A bundle's overlay that embeds a host file (`/incbin/("/etc/…")`) would carry it into the
/// guest and its console log: the scenario check refuses it (`provision::overlay`), before
/// anything is compiled or booted.
#[test]
fn an_overlay_that_reads_host_files_is_refused() {
    let dir = run_folder();
    let d = dir.path();
    std::fs::create_dir_all(d.join("scenario/overlays")).unwrap();
    let copy = d.join("scenario/overlay-devlink-teardown.yaml");
    std::fs::copy(
        crate::repo_root().join("scenarios/overlay-devlink-teardown.yaml"),
        &copy,
    )
    .unwrap();
    let overlay = d.join("scenario/overlays/clock-provider-consumer.dtso");
    let mut rec = folder_record(d);
    rec["scenario"]["name"] = "overlay-devlink-teardown".into();
    rec["scenario"]["copy"] = "scenario/overlay-devlink-teardown.yaml".into();
    rec["scenario"]["sha256"] = crate::host::cache::sha256_file(&copy).unwrap().into();
    rec["scenario"]["overlays"] =
        serde_json::json!(["scenario/overlays/clock-provider-consumer.dtso"]);
    write_record(d, &rec);
    for directive in [
        "leak = /incbin/(\"/etc/hostname\");",
        "/include/ \"/etc/hostname\"",
    ] {
        std::fs::write(
            &overlay,
            format!("/dts-v1/;\n/plugin/;\n/ {{ fragment@0 {{ target-path = \"/\"; __overlay__ {{ {directive} }}; }}; }};\n"),
        )
        .unwrap();
        let r = open(d, d).unwrap();
        let e = replay(
            r,
            &ReplayOptions::default(),
            &Cache::at(d),
            &RunDir::create_in(d, "x").unwrap(),
            &Events::none(),
        )
        .unwrap_err();
        assert!(e.is_bad_input(), "{e}");
        let chain = crate::run::error_chain(&e);
        assert!(
            chain.contains("would copy a") || chain.contains("would splice"),
            "{chain}"
        );
    }
}
