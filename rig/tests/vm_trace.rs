//! A scenario's `trace:` block on real guests (rig-7.3, arm64-virt): seed 000's known-bad kernel
//! fails and keeps `trace.txt`, whose order shows the race (the overlay's changeset destroyed
//! before the device link's deferred release ran); the fixed kernel passes and keeps none; seed
//! 001's oops prints the buffer on the console (`ftrace_dump_on_oops`) with both sides of its race.

mod common;

use common::*;
use rig::host::board::Board;
use std::path::PathBuf;

fn artifacts(report: &serde_json::Value) -> PathBuf {
    PathBuf::from(repetitions(report)[0]["artifacts"].as_str().unwrap())
}

/// In `trace`, a changeset destroyed while a device link's release was still to come: the
/// known-bad order (the fix waits for the release first).
fn destroyed_before_release(trace: &str) -> bool {
    let calls: Vec<&str> = trace
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(": ").nth(1))
        .collect();
    // Round by round (each starts with of_overlay_remove): a release after the destroy.
    let mut destroyed = false;
    for c in calls {
        if c.starts_with("of_overlay_remove") {
            destroyed = false;
        } else if c.starts_with("of_changeset_destroy") {
            destroyed = true;
        } else if destroyed && c.starts_with("device_link_release_fn") {
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
        destroyed_before_release(&trace),
        "no round destroyed the changeset before the link's release:\n{trace}"
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
