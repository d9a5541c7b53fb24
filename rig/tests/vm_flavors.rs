//! The opt-in flavors no default test run boots, because each is a full kernel build (as long as
//! the base build, per arch: scenarios/README.md, "What CI builds"): `rig-6.12-kasan` and
//! `rig-6.12-kobject-release`. Ignored by default; run them with
//! `cargo nextest run --run-ignored ignored-only -E 'binary(vm_flavors)'` after
//! `rig fetch --board arm64-virt --kernel rig-6.12-kasan` (and `-kobject-release`). They name
//! rig-6.12, where their rates were measured; the 7.3 flavors build too (`rig kernel list`) but
//! have not been measured.

mod common;

use rig::host::board::Board;

/// KASAN works in the kasan flavor and rig titles its report as syzbot does: LKDTM's
/// WRITE_AFTER_FREE writes to a freed slab object, and the scenario expects
/// `KASAN: slab-use-after-free Write in lkdtm_WRITE_AFTER_FREE` (deterministic: one write,
/// one report).
#[test]
#[ignore = "needs rig-6.12-kasan (a full kernel build); see the module docs"]
fn kasan_flavor_reports_a_use_after_free() {
    let file = rig::repo_root().join("scenarios/kasan-lkdtm-uaf.yaml");
    let r = common::rig_run(&file, Board::Arm64Virt, "rig-6.12-kasan", 1);
    common::assert_all_pass(&r, "kasan-lkdtm-uaf on rig-6.12-kasan");
}

/// The same scenario on the suite's kernel (rig-7.3, no KASAN) is refused before anything boots, naming the
/// requirement (exit 2). Guards the control above: its pass means KASAN saw the write, never that
/// the write ran unchecked on a kernel without it.
#[test]
fn kasan_scenario_is_refused_without_kasan() {
    let file = rig::repo_root().join("scenarios/kasan-lkdtm-uaf.yaml");
    let out = common::rig_run_output(&file, Board::Arm64Virt, common::RIG_KERNEL, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("kasan needs CONFIG_KASAN=y"), "{stderr}");
}

/// The kobject-release flavor (every kobject's release delayed by 1-4 s) re-creates seed
/// 000's error on the fixed kernel: 6.12's overlay removal waits for device-link removal with
/// device_link_wait_removal(), which flushes the device-link workqueue, but the link's kobject
/// release is itself delayed here (1-4 s), so the link's references on the provider and consumer
/// devices (and through them their nodes) outlive the changeset: `OF: ERROR: memory leak,
/// expected refcount 1 instead of 2` on both overlay nodes, in every round (3 of 3 runs, 20 of 20 rounds
/// each, measured). The fix depends on the release being synchronous. rig-6.12 passes the same
/// scenario (vm_kbuild.rs and the seed rates), so this is the flavor's doing.
#[test]
#[ignore = "needs rig-6.12-kobject-release (a full kernel build); see the module docs"]
fn kobject_release_flavor_delays_the_device_link_release_past_the_overlay_removal() {
    let file = rig::repo_root().join("scenarios/overlay-devlink-teardown.yaml");
    let r = common::rig_run(&file, Board::Arm64Virt, "rig-6.12-kobject-release", 1);
    let titles: Vec<&str> = r["repetitions"][0]["reports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["title"].as_str())
        .collect();
    for node in ["/rig-clock-consumer", "/rig-fixed-clock"] {
        let want = format!("OF: ERROR: memory leak in {node}");
        assert!(titles.contains(&want.as_str()), "{want} not in {titles:?}");
    }
}
