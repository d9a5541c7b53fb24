//! A scenario's `trace:` block on real guests (rig-7.3, arm64-virt): seed 000's known-bad kernel
//! fails and keeps `trace.txt`, with both sides of the race in a round (the overlay's changeset
//! destroyed, the device link's deferred release in a kworker); the fixed kernel passes and keeps none; seed
//! 001's oops prints the buffer on the console (`ftrace_dump_on_oops`) with both sides of its race.

mod common;

use common::*;
use rig::host::board::Board;
use std::path::PathBuf;

fn artifacts(report: &serde_json::Value) -> PathBuf {
    PathBuf::from(repetitions(report)[0]["artifacts"].as_str().unwrap())
}

/// Whether `trace` has both sides of the race in one round (each starts with
/// of_overlay_remove): the remover's changeset destroy and the kworker's deferred link release.
/// (Which ran first is not the whole story: the function tracer records entries, and the leak
/// also comes from a release that had started but not finished when the changeset went.)
fn both_sides_in_a_round(trace: &str) -> bool {
    let calls = trace
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(": ").nth(1));
    let (mut destroy, mut release) = (false, false);
    for c in calls {
        if c.starts_with("of_overlay_remove") {
            (destroy, release) = (false, false);
        }
        destroy |= c.starts_with("of_changeset_destroy");
        release |= c.starts_with("device_link_release_fn <-process_one_work");
        if destroy && release {
            return true;
        }
    }
    false
}

#[test]
fn seed_000s_failure_keeps_a_trace_that_shows_the_race() {
    let file = rig::repo_root().join("scenarios/overlay-devlink-teardown.yaml");
    let bad = rig_run(
        &file,
        Board::Arm64Virt,
        &rig_flavor("known-bad-devlink-wait"),
        1,
    );
    assert_eq!(repetitions(&bad)[0]["verdict"], "fail", "{bad:#}");
    let trace = std::fs::read_to_string(artifacts(&bad).join("trace.txt"))
        .expect("a failed traced run keeps trace.txt");
    for f in [
        "of_overlay_remove",
        "of_changeset_destroy",
        "device_link_release_fn",
    ] {
        assert!(trace.contains(f), "{f} not in the trace:\n{trace}");
    }
    assert!(
        both_sides_in_a_round(&trace),
        "no round traced both the destroy and the kworker's release:\n{trace}"
    );
    let good = rig_run(&file, Board::Arm64Virt, RIG_KERNEL, 1);
    assert_all_pass(&good, "overlay-devlink-teardown on the fixed kernel");
    assert!(!artifacts(&good).join("trace.txt").exists());
}

#[test]
fn seed_001s_oops_prints_the_trace_of_both_sides() {
    let file = rig::repo_root().join("scenarios/devlink-reload-vs-del.yaml");
    let bad = rig_run(
        &file,
        Board::Arm64Virt,
        &rig_flavor("known-bad-devlink-reload"),
        1,
    );
    assert_eq!(repetitions(&bad)[0]["verdict"], "fail", "{bad:#}");
    let console = std::fs::read_to_string(artifacts(&bad).join("console.log")).unwrap();
    let dump = console
        .split_once("Dumping ftrace buffer:")
        .map(|(_, rest)| rest)
        .expect("the oops dumps the trace buffer");
    for f in [
        "devlink_reload <-",
        "del_device_store <-",
        "debugfs_remove <-",
    ] {
        assert!(dump.contains(f), "{f} not in the dumped trace:\n{dump}");
    }
}
