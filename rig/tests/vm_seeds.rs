//! The seed scenarios' controls, through the `rig` binary (`rig run … --repeat N --json`): each
//! positive control boots the known-bad flavor of the suite's kernel (rig-7.3) that re-opens its
//! seed's bug and must be caught with the right report title; each negative control boots the
//! fixed kernel and must pass every repetition.
//!
//! Repeats come from the rates measured with `ci/seed-rates.sh` (scenarios/README.md, "Measured
//! rates"): with a per-run catch rate `p` on the known-bad kernel, a positive control of `N` runs
//! that asks for at least one catch fails by bad luck with probability `(1 - p)^N`; the negative
//! control of `N` runs would miss a fixed kernel that regressed to the known-bad rate with the
//! same probability. Neither is retried (a kernel report must not be retried into a pass).
//!
//! Seed 003 has no fixed kernel for its lockdep report: rig-7.3 itself prints it (see its test);
//! its known-bad flavor's control is the deadlock instead. Seeds 000/002's overlay-devlink-teardown
//! controls are in vm_kbuild.rs (arm64) and vm_overlays_x86.rs (x86_64, with seed 000's PCI
//! path through rig_pci_overlay's remove); the arm64 PCI path (66 s per run: pciehp's button
//! delay) is measured in scenarios/README.md, not run here. Last, the OF unit tests' verdict
//! (of-unittest) both ways.

mod common;

use common::{assert_all_pass, repetitions, rig_flavor, RIG_KERNEL};
use rig::host::board::Board;
use serde_json::Value;

/// `rig run scenarios/SCENARIO.yaml --board B --kernel K --repeat N --json`: the report.
fn run(scenario: &str, board: Board, kernel: &str, repeat: u32) -> Value {
    let file = rig::repo_root().join(format!("scenarios/{scenario}.yaml"));
    common::rig_run(&file, board, kernel, repeat)
}

/// Failed repetitions for which `what` holds.
fn failed_where(report: &Value, what: impl Fn(&Value) -> bool) -> usize {
    repetitions(report)
        .iter()
        .filter(|r| r["verdict"] == "fail" && what(r))
        .count()
}

/// Whether repetition `rep` has a report whose title starts with `prefix`.
fn has_title(rep: &Value, prefix: &str) -> bool {
    rep["reports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["title"].as_str().is_some_and(|t| t.starts_with(prefix)))
}

/// Whether repetition `rep` has a failure of the step named `step`.
fn has_step_failure(rep: &Value, step: &str) -> bool {
    rep["step_failures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["step"] == step)
}

/// Failed repetitions with a report whose title starts with `prefix`.
fn caught_by_title(report: &Value, prefix: &str) -> usize {
    failed_where(report, |r| has_title(r, prefix))
}

/// Asserts that the one repetition of `report` failed with a report titled `prefix…`, showing
/// the whole report otherwise.
fn assert_caught_once(report: &Value, prefix: &str) {
    assert_eq!(
        caught_by_title(report, prefix),
        1,
        "{}",
        serde_json::to_string_pretty(report).unwrap()
    );
}

/// Asserts that each repetition of `report` stopped at the step the guest died in: a run whose
/// kernel panicked has that one step failure, not one more per later step or round (each failing
/// at once on the closed console, as 18 of 20 known-bad runs did before the engine waited for
/// QEMU's exit once the console closed).
fn assert_stopped_at_the_crash(report: &Value) {
    for r in repetitions(report) {
        let failures = r["step_failures"].as_array().unwrap();
        assert!(
            failures.len() <= 1
                && !failures.iter().any(|f| f["message"]
                    .as_str()
                    .unwrap()
                    .contains("console write failed")),
            "{}",
            serde_json::to_string_pretty(&failures).unwrap()
        );
    }
}

/// Failed repetitions with a failure of the step named `step`.
fn failed_at_step(report: &Value, step: &str) -> usize {
    failed_where(report, |r| has_step_failure(r, step))
}

// Seed 001: `devlink dev reload` racing `del_device`.

/// The oops rig-7.3-known-bad-devlink-reload gives when a reload runs on the instance
/// `del_device` dismantled (its debugfs directory is already gone). (6.12 names the frame
/// `simple_recursive_removal`; 7.3 renamed it.)
const RELOAD_OOPS: &str =
    "BUG: unable to handle kernel NULL pointer dereference in __simple_recursive_removal";

/// Positive control, one run of 30 rounds. Measured on arm64-virt with rig-7.3's flavor: this
/// oops (and the panic it ends in) in 10 of 10 runs, 2-4 s each, in an early round (on 6.12: 10
/// of 10 too). At the floor p = 0.9 one run fails by bad luck 1 time in 10; at the
/// measured 10/10 the miss rate's 95% upper bound is ~0.26, so one run is the least that passed
/// every time, not a proof of p >= 0.9. It cannot pass by luck: rig-7.3 gave no report in 20 of
/// 20 runs (600 rounds).
#[test]
fn devlink_reload_vs_del_catches_reload_of_an_unregistered_instance() {
    let r = run(
        "devlink-reload-vs-del",
        Board::Arm64Virt,
        &rig_flavor("known-bad-devlink-reload"),
        1,
    );
    assert_caught_once(&r, RELOAD_OOPS);
    assert_stopped_at_the_crash(&r);
}

/// Negative control, one run of 30 rounds on rig-7.3 (the devl_is_registered() check in place):
/// no report, the deletion succeeds every round (measured: passed 20 of 20, 13-19 s each). Were
/// the fix lost, one run would catch it at the known-bad rate (10 of 10 measured), so a pass is
/// not the race hiding by luck.
#[test]
fn devlink_reload_vs_del_passes_on_the_fixed_kernel() {
    let r = run("devlink-reload-vs-del", Board::Arm64Virt, RIG_KERNEL, 1);
    assert_all_pass(&r, "devlink-reload-vs-del on the suite's kernel");
}

/// Positive control of the module-unload path of seed 001 (the thread's reproducer: reload
/// together with `rmmod netdevsim`, whose nsim_bus_exit() dismantles every device): one run.
/// Measured on arm64-virt with rig-7.3's flavor: caught 10 of 10 (`ci/seed-rates.sh`), the same
/// oops as del_device's, in the first round (runs of 2-6 s, the panic ends them), so a miss by
/// bad luck is not expected; rig-7.3 never printed it (20 of 20 below). (6.12: 10 of 10, 20 of 20.)
#[test]
fn devlink_reload_vs_unload_catches_reload_of_an_unregistered_instance() {
    let r = run(
        "devlink-reload-vs-unload",
        Board::Arm64Virt,
        &rig_flavor("known-bad-devlink-reload"),
        1,
    );
    assert_caught_once(&r, RELOAD_OOPS);
    assert_stopped_at_the_crash(&r);
}

/// Negative control, one run of 20 rounds on rig-7.3 (the devl_is_registered() check in
/// place): no report, every unload succeeds. Measured: passed 20 of 20 (14-21 s each).
#[test]
fn devlink_reload_vs_unload_passes_on_the_fixed_kernel() {
    let r = run("devlink-reload-vs-unload", Board::Arm64Virt, RIG_KERNEL, 1);
    assert_all_pass(&r, "devlink-reload-vs-unload on the suite's kernel");
}

// Seed 004: an asynchronous probe racing the device's removal.

/// What rig-7.3-known-bad-async-probe prints when a queued async probe (`Workqueue: async`)
/// bound the driver to a device `del_device` was deleting: the next device of that name finds
/// the dead one's link in the driver's directory when it probes. (Runs where the late probe
/// failed instead warn as `WARNING in kernfs_remove_by_name_ns`, when the `driver` link of the
/// device, whose directory is gone, is removed.)
const PROBE_AFTER_DEL: &str = "sysfs: cannot create duplicate filename in really_probe";

/// The scenario's own check of the bug class: a deleted device still bound to netdevsim.
const LEFT_BOUND_STEP: &str = "no deleted device is left bound";

/// Positive control, two runs (each 20 rounds of 5 devices created and deleted at once), at
/// least one caught both ways: the title above and the leftover check's step failure. The flavor
/// is the revert of the thread's fix (no `dev->p->dead` checks) plus a 20 ms sleep in
/// `device_del()` between the driver's release and `kobject_del()`
/// (images/patches/<series>/async-probe-window/): without it, the window was hit 0 times in 550
/// attempts on a quiet host (6.12). With it, on 7.3 arm64-virt: caught 9 of 10 runs, each of the
/// nine both ways (`ci/seed-rates.sh`, ~100 s each: the final `rmmod` waits out its timeout on
/// the device the late probe leaked); the tenth bound no deleted device in any of its 20 rounds
/// (23 s). Rounds of one run are not independent, so the run is the unit: at p = 0.9 one run
/// misses 1 time in 10, two runs 1 in 100. (x86_64-q35: 10 of 10; 6.12 arm64: 10 of 10.)
/// Nor can a kernel without the bug pass it: the window flavor below and rig-7.3 (20 of 20 each)
/// never bound a deleted device.
#[test]
fn probe_remove_ordering_catches_a_probe_of_a_deleted_device() {
    let r = run(
        "probe-remove-ordering",
        Board::Arm64Virt,
        &rig_flavor("known-bad-async-probe"),
        2,
    );
    let both_ways = failed_where(&r, |rep| {
        has_title(rep, PROBE_AFTER_DEL) && has_step_failure(rep, LEFT_BOUND_STEP)
    });
    let shown = serde_json::to_string_pretty(&r).unwrap();
    assert!(both_ways >= 1, "{shown}");
}

/// Negative control for the sleep: rig-7.3-async-probe-window is the fixed kernel with the
/// same 20 ms window, one run must pass (the late probe sees `dev->p->dead` and gives up), so
/// the positive control's catch is the missing check's doing. Measured on 7.3: 20 of 20 on
/// arm64-virt (24-26 s each), 20 of 20 on x86_64-q35 (`ci/seed-rates.sh`); a window flavor that
/// lost the check would fail at the known-bad rate (9 of 10 on arm64-virt).
#[test]
fn probe_remove_ordering_passes_on_the_fixed_kernel_with_the_window() {
    let r = run(
        "probe-remove-ordering",
        Board::Arm64Virt,
        &rig_flavor("async-probe-window"),
        1,
    );
    assert_all_pass(&r, "probe-remove-ordering on the window flavor");
}

/// Negative control, one run on rig-7.3 (the driver core's `dev->p->dead` checks in place):
/// nothing but the allowed pciehp lock-order report (measured: passed 20 of 20, 17-21 s each); a
/// kernel that lost the fix would fail it at the known-bad rate.
#[test]
fn probe_remove_ordering_passes_on_the_fixed_kernel() {
    let r = run("probe-remove-ordering", Board::Arm64Virt, RIG_KERNEL, 1);
    assert_all_pass(&r, "probe-remove-ordering on the suite's kernel");
}

// Seed 003: onlining memory blocks from sysfs racing the removal of their memory.

/// The lockdep report of seed 003's thread, as rig titles it: the removal drains a block's
/// `state` attribute (kn->active) under mem_hotplug_lock while a writer in that attribute is on
/// its way to cpu_hotplug_lock (memory_subsys_online), which mem_hotplug_lock nests in.
const HOTPLUG_INVERSION: &str = "possible deadlock in __kernfs_remove";

/// The stock kernel (rig-7.3, as rig-6.12 before it) is the positive control here: its
/// try_remove_memory() removes the memory block devices under mem_hotplug_begin(), so the
/// dependency the thread's patch had taken away is back, and lockdep reports it whenever the
/// drain meets a writer (the trylock in lock_device_hotplug_sysfs() keeps it from deadlocking,
/// which is why the thread called it a false positive). One run of 4 rounds: measured on rig-7.3
/// 10 of 10 on each board (scenarios/README.md), so a miss by bad luck is not expected.
/// The title is the writers' doing: the earlier version of this scenario (online/offline loops,
/// no writer held in the attribute) gave no report in 3 of 3 runs even on the known-bad flavor.
#[test]
fn memory_online_offline_race_reports_the_seed_003_inversion_on_the_rig_kernel() {
    let r = run(
        "memory-online-offline-race",
        Board::Arm64Virt,
        RIG_KERNEL,
        1,
    );
    assert_caught_once(&r, HOTPLUG_INVERSION);
}

/// Positive control of the deadlock itself, one run: rig-7.3-known-bad-hotplug-lock turns the
/// sysfs side's trylock into a lock, so a writer inside a block's `state` waits for
/// device_hotplug_lock while the removal, holding it, waits for the writer to leave: the writers
/// never finish (their step fails at the parallel's deadline) and the run stops on the dead
/// console. Measured on 7.3 (arm64-virt): 3 of 3 runs deadlocked, 151-152 s each (the suite's
/// runs; on 6.12: 10 of 10 on arm64-virt, 2 of 2 on x86_64-q35). The stock kernel's writers
/// finished in all 20 of its 7.3 runs, so the step's failure is the flavor's doing, not luck.
#[test]
fn memory_online_offline_race_deadlocks_on_the_blocking_sysfs_lock() {
    let r = run(
        "memory-online-offline-race",
        Board::Arm64Virt,
        &rig_flavor("known-bad-hotplug-lock"),
        1,
    );
    assert_eq!(
        failed_at_step(&r, "a writer per block"),
        1,
        "{}",
        serde_json::to_string_pretty(&r).unwrap()
    );
}

// The OF unit tests (flavor rig-7.3-of-unittest): their verdict read from the boot log.

/// With QEMU's pci-testdev on the board every OF unit test passes (measured: `end of unittest -
/// 364 passed, 0 failed`), and their deliberate errors, inside the EXPECT brackets, are no
/// reports. Deterministic: the tests run once, at boot, on the same device tree.
#[test]
fn of_unittest_passes_with_a_pci_testdev() {
    let r = run(
        "of-unittest",
        Board::Arm64Virt,
        &rig_flavor("of-unittest"),
        1,
    );
    assert_all_pass(&r, "of-unittest on the of-unittest flavor");
}

/// The same scenario without the pci-testdev: of_unittest_pci_node() finds no test device and
/// fails (356 passed, 1 failed, the failure every arm64 boot printed while OF_UNITTEST was in
/// the default config), so the step must fail and name it. Shows the verdict reads M > 0.
#[test]
fn of_unittest_fails_naming_the_failed_test() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("of-unittest-no-testdev.yaml");
    let text =
        std::fs::read_to_string(rig::repo_root().join("scenarios/of-unittest.yaml")).unwrap();
    let without = text.replace("devices:\n  - qemu: {driver: pci-testdev}\n", "");
    assert_ne!(
        without, text,
        "the scenario no longer adds its pci-testdev this way"
    );
    std::fs::write(&file, without).unwrap();
    let r = common::rig_run(&file, Board::Arm64Virt, &rig_flavor("of-unittest"), 1);
    let failures = r["repetitions"][0]["step_failures"].to_string();
    assert_eq!(
        failed_at_step(&r, "OF unit tests passed"),
        1,
        "{}",
        serde_json::to_string_pretty(&r).unwrap()
    );
    assert!(
        failures.contains("FAIL of_unittest_pci_node()"),
        "{failures}"
    );
}
