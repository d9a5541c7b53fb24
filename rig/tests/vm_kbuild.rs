//! VM tests for kernels rig builds (the suite's `rig-7.3`, from Debian's linux-source-7.3): both arches
//! boot, rig's configfs overlay module applies and removes overlays, netdevsim is there, and the
//! known-bad flavor reproduces the overlay-removal refcount leak the default kernel does not.
//!
//! The kernels are built by the test provisioning (ci/provision-tests.sh) and cached by content.

mod common;

use common::*;
use rig::guest::transport::Via;
use rig::host::board::Board;
use rig::host::events::Events;
use rig::run::{run_scenario, RunOptions, Verdict};

const OVERLAYS: &str = "/sys/kernel/config/device-tree/overlays";

#[test]
fn the_rig_kernel_boots_on_both_boards_with_configfs_overlays_and_netdevsim() {
    for board in Board::ALL {
        let mut g = boot(board, RIG_KERNEL, "rig-kernel");
        let release = sh(&mut g, "uname -r");
        assert!(release.trim().ends_with("-rig"), "{board}: {release}");
        assert_eq!(sh(&mut g, "uname -m").trim(), board.arch().uname());
        // init loads rig's module; configfs shows its overlay directory.
        sh(
            &mut g,
            &format!("grep -q rig_of_configfs /proc/modules && test -d {OVERLAYS}"),
        );
        sh(&mut g, "test -e /sys/bus/netdevsim/new_device");
        sh(&mut g, "echo '7 1' > /sys/bus/netdevsim/new_device; test -d /sys/bus/netdevsim/devices/netdevsim7; echo 7 > /sys/bus/netdevsim/del_device");
        // Garbage is refused with an error, not an oops.
        let out = g
            .run(&format!("mkdir {OVERLAYS}/junk && echo garbage > {OVERLAYS}/junk/dtbo; s=$?; cat {OVERLAYS}/junk/status; rmdir {OVERLAYS}/junk; exit $s"), CMD, Via::Hvc)
            .unwrap();
        assert_ne!(out.status, 0, "{board}: applying garbage must fail");
        assert!(out.stdout.contains("unapplied"), "{board}: {}", out.stdout);
        g.shutdown();
    }
}

#[test]
fn arm64_applies_and_removes_an_overlay_through_configfs() {
    let mut g = boot(Board::Arm64Virt, RIG_KERNEL, "overlay");
    let dir = tempfile::tempdir().unwrap();
    let dtbo = dir.path().join("simple-node.dtbo");
    rig::provision::overlay::compile(&rig::repo_root().join("overlays/simple-node.dtso"), &dtbo)
        .unwrap();
    let b64 = base64_of(&std::fs::read(&dtbo).unwrap());
    sh(
        &mut g,
        &format!("echo {b64} | base64 -d > /tmp/simple.dtbo"),
    );
    let status = sh(
        &mut g,
        &format!("mkdir {OVERLAYS}/simple && cat /tmp/simple.dtbo > {OVERLAYS}/simple/dtbo && cat {OVERLAYS}/simple/status"),
    );
    assert_eq!(status.trim(), "applied");
    // The node is in the live tree with its property (42, big-endian).
    let value = sh(
        &mut g,
        "od -An -tx1 /proc/device-tree/rig-simple-node/rig,value | tr -d ' \\n'",
    );
    assert_eq!(value, "0000002a");
    sh(
        &mut g,
        &format!("rmdir {OVERLAYS}/simple; test ! -e /proc/device-tree/rig-simple-node"),
    );
    g.shutdown();
}

fn base64_of(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn overlay_teardown(kernel: &str) -> rig::run::ScenarioResult {
    let sc = rig::scenario::load(
        &rig::repo_root().join("scenarios/overlay-devlink-teardown.yaml"),
        &rig::repo_root().join("overlays"),
    )
    .unwrap();
    let mut opts = RunOptions::new(Board::Arm64Virt, kernel);
    opts.auto_setup = false;
    let rd = run_dir(&format!("overlay-teardown-{kernel}"));
    run_scenario(&sc, &opts, &cache(), &rd, &Events::none()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn overlay_devlink_teardown_is_clean_on_the_rig_kernel() {
    let r = overlay_teardown(RIG_KERNEL);
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.render());
}

#[test]
fn known_bad_devlink_wait_reproduces_the_overlay_refcount_leak() {
    // The positive control: without device_link_wait_removal() in of_changeset_destroy(),
    // removing the provider+consumer overlay leaks a node reference in most rounds.
    let r = overlay_teardown(&rig_flavor("known-bad-devlink-wait"));
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.render());
    assert!(
        r.reproduced
            .keys()
            .any(|t| t.starts_with("OF: ERROR: memory leak in /")),
        "{}",
        r.render()
    );
}
