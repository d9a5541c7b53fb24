//! VM tests for the scenario engine: real scenarios, real QEMU, Debian's 6.1 kernels.

mod common;

use common::*;
use rig::host::board::Board;
use rig::host::events::Events;
use rig::run::{run_scenario, RunOptions, ScenarioResult, Verdict};
use std::path::Path;

fn overlays() -> std::path::PathBuf {
    rig::repo_root().join("overlays")
}

fn run_text(text: &str, label: &str, board: Board) -> ScenarioResult {
    let sc = rig::scenario::parse_str(text, label, &overlays()).unwrap();
    run(&sc, board)
}

fn run_file(name: &str, board: Board) -> ScenarioResult {
    let sc = rig::scenario::load(&rig::repo_root().join("scenarios").join(name), &overlays())
        .unwrap_or_else(|e| panic!("{e}"));
    run(&sc, board)
}

fn run(sc: &rig::scenario::Scenario, board: Board) -> ScenarioResult {
    let mut opts = RunOptions::new(board, "debian-6.1");
    opts.auto_setup = false;
    let rd = run_dir(&format!("scenario-{}-{board}", sc.name));
    run_scenario(sc, &opts, &cache(), &rd, &Events::none()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn pci_hotplug_cycle_scenario_passes_on_both_boards() {
    for board in Board::ALL {
        let r = run_file("pci-hotplug-cycle.yaml", board);
        assert_eq!(r.verdict, Verdict::Pass, "{board}:\n{}", r.render());
        // The transcript shows three add/remove rounds completed by the guest.
        let t = rig::machine::qmp::read_transcript(&r.artifacts.join("qmp.jsonl")).unwrap();
        let deleted = t
            .iter()
            .filter(|e| {
                e["msg"]["event"] == "DEVICE_DELETED" && e["msg"]["data"]["device"] == "nic1"
            })
            .count();
        assert_eq!(deleted, 3, "{board}: DEVICE_DELETED events");
    }
}

#[test]
fn fake_warning_fails_with_its_title_and_exit_code_1() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rig"))
        .args([
            "run",
            "scenarios/fake-warning.yaml",
            "--board",
            "x86_64-q35",
            "--no-setup",
        ])
        .current_dir(rig::repo_root())
        .env("RIG_ARTIFACTS", runs_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[unexpected] WARNING in rig_fake_teardown: reproduced in 1 of 1 runs"),
        "{stdout}"
    );
    // report.json carries the report with its kind and guilty frame.
    let dir = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("artifacts: "))
        .expect("artifacts line");
    let dir = if Path::new(dir).is_absolute() {
        Path::new(dir).to_path_buf()
    } else {
        rig::repo_root().join(dir)
    };
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let rep = &report["repetitions"][0]["reports"][0];
    assert_eq!(rep["title"], "WARNING in rig_fake_teardown");
    assert_eq!(rep["kind"], "warning");
    assert_eq!(rep["guilty_frame"], "rig_fake_teardown");
}

#[test]
fn parallel_runs_its_steps_at_once() {
    // Three 10 s sleeps meet a 22 s deadline only when they run concurrently ...
    let r = run_file("parallel-sleeps.yaml", Board::Arm64Virt);
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.render());
    // ... and the same sleeps one after another (a repeat inside the parallel) miss it.
    let sequential = r#"
name: sequential-sleeps
steps:
  - parallel:
      deadline: 22s
      steps:
        - repeat:
            times: 3
            steps:
              - guest: {run: sleep 10, timeout: 60s}
        - guest: {run: "true"}
"#;
    let r = run_text(sequential, "sequential-sleeps.yaml", Board::Arm64Virt);
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.render());
    let failures = &r.repetitions[0].step_failures;
    assert!(
        failures.iter().any(|f| f.message.contains("deadline")),
        "{failures:?}"
    );
}

#[test]
fn memory_hotplug_cycle_passes_on_both_boards() {
    // virtio-mem on both boards; Debian's 6.1 has virtio_mem as a module, which the engine packs
    // into the initramfs and has init load. (Seed 003's race needs lockdep: it runs on rig-7.3,
    // in vm_seeds.rs.)
    for board in Board::ALL {
        let r = run_file("memory-hotplug-cycle.yaml", board);
        assert_eq!(r.verdict, Verdict::Pass, "{board}:\n{}", r.render());
        let t = rig::machine::qmp::read_transcript(&r.artifacts.join("qmp.jsonl")).unwrap();
        let sizes: Vec<u64> = t
            .iter()
            .filter(|e| e["msg"]["execute"] == "qom-set")
            .filter_map(|e| e["msg"]["arguments"]["value"].as_u64())
            .collect();
        assert_eq!(sizes, [512 << 20, 0, 512 << 20, 0, 512 << 20, 0], "{board}");
        let console = std::fs::read_to_string(r.artifacts.join("console.log")).unwrap();
        assert!(
            console.contains("virtio_mem virtio") && console.contains("plugged size: 0x20000000"),
            "{board}: the guest's virtio_mem driver never saw 512 MiB plugged"
        );
    }
}

#[test]
fn a_kernel_lacking_a_requirement_is_refused_with_the_requires_line() {
    // Debian's 6.1 has no OF overlays and no rig configfs module.
    let sc = rig::scenario::load(
        &rig::repo_root().join("scenarios/overlay-devlink-teardown.yaml"),
        &overlays(),
    )
    .unwrap();
    let mut opts = RunOptions::new(Board::Arm64Virt, "debian-6.1");
    opts.auto_setup = false;
    let rd = run_dir("unsupported");
    let err = run_scenario(&sc, &opts, &cache(), &rd, &Events::none()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("overlay-devlink-teardown.yaml:"), "{msg}");
    assert!(msg.contains("requires[0]: of_overlay needs"), "{msg}");
}

#[test]
fn qemu_gone_without_a_kernel_report_is_an_infra_error_exit_125() {
    // QEMU quits under the scenario (no panic, no splat): the rig could not run the rest, which
    // is not the kernel's failure.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qemu-quits.yaml");
    std::fs::write(
        &file,
        "name: qemu-quits\nsteps:\n  - qmp: {execute: quit}\n  - guest: {run: \"true\"}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(["run", "--board", "arm64-virt", "--no-setup"])
        .arg(&file)
        .env("RIG_ARTIFACTS", runs_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(125), "{stdout}");
    assert!(stdout.contains("INFRA ERROR"), "{stdout}");
    assert!(stdout.contains("rig error"), "{stdout}");
}

/// At a `parallel` deadline the whole guest job goes, children included: nothing of it runs
/// into the steps after the `parallel`.
#[test]
fn a_parallel_deadline_kills_the_whole_guest_job() {
    let r = run_text(
        "name: deadline-kills\nsteps:\n  - guest: {run: rm -f /tmp/late}\n  - parallel:\n      \
         deadline: 3s\n      steps:\n        - guest: {run: '(sleep 6; echo late > /tmp/late) & \
         wait', timeout: 30s}\n        - sleep: 1s\n  - sleep: 6s\n  - guest: {name: nothing \
         ran late, run: test ! -e /tmp/late}\n",
        "deadline-kills.yaml",
        Board::Arm64Virt,
    );
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.render());
    let failures = &r.repetitions[0].step_failures;
    assert!(
        failures
            .iter()
            .any(|f| f.message.contains("still running at the parallel deadline")),
        "{}",
        r.render()
    );
    assert!(
        !failures.iter().any(|f| f.step == "nothing ran late"),
        "a child of the killed job ran on:\n{}",
        r.render()
    );
}

/// A guest that resets with no report on the console (`-no-reboot` turns that into a clean QEMU
/// exit) is the kernel's failure, titled as syzbot titles it; QEMU's SHUTDOWN event says so.
#[test]
fn a_guest_reset_without_a_report_is_an_unexpected_kernel_reboot() {
    for board in Board::ALL {
        let r = run_text(
            "name: guest-resets\nsteps:\n  - guest: {run: 'echo b > /proc/sysrq-trigger; sleep 30'}\n",
            "guest-resets.yaml",
            board,
        );
        assert_eq!(r.verdict, Verdict::Fail, "{board}:\n{}", r.render());
        assert_eq!(
            r.reproduced.get("unexpected kernel reboot"),
            Some(&1),
            "{board}:\n{}",
            r.render()
        );
        let rep = &r.repetitions[0].reports[0];
        assert!(rep.text.contains("guest-reset"), "{board}: {}", rep.text);
    }
}

/// A guest command that times out while the guest still answers is a kernel failure (a hang); a
/// guest that QEMU stopped running (here: QMP `stop`) is not the kernel's doing.
#[test]
fn command_timeouts_tell_a_hang_from_a_stopped_machine() {
    let r = run_text(
        "name: hangs\nsteps:\n  - guest: {run: sleep 60, timeout: 2s}\n",
        "hangs.yaml",
        Board::Arm64Virt,
    );
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.render());
    let f = &r.repetitions[0].step_failures[0];
    assert!(!f.infra && f.message.contains("still answers"), "{f:?}");

    let r = run_text(
        "name: paused\nsteps:\n  - qmp: {execute: stop}\n  - guest: {run: 'true', timeout: 2s}\n",
        "paused.yaml",
        Board::Arm64Virt,
    );
    assert_eq!(r.verdict, Verdict::Infra, "{}", r.render());
    let f = &r.repetitions[0].step_failures[0];
    assert!(
        f.infra && f.message.contains("not running the guest"),
        "{f:?}"
    );
}

/// A DIMM the guest never ejects (its ACPI memory hot-plug handling switched off) fails the
/// step that needs it gone, naming the DIMM, instead of colliding in QEMU as an infra error.
#[test]
fn a_dimm_that_never_ejects_is_a_kernel_failure_naming_it() {
    let r = run_text(
        "name: dimm-stuck\nrequires: [memory_hotplug]\ncmdline: [memhp_default_state=offline]\n\
         steps:\n  - memory_add: {id: d1, size: 128M}\n  - guest: {run: 'echo 0 > \
         /sys/firmware/acpi/hotplug/memory/enabled'}\n  - memory_remove: {id: d1, wait: false}\n  \
         - memory_add: {id: d1, size: 128M, timeout: 15s}\n",
        "dimm-stuck.yaml",
        Board::X86_64Q35,
    );
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.render());
    let f = r.repetitions[0]
        .step_failures
        .iter()
        .find(|f| f.step == "memory_add (steps[3])")
        .unwrap_or_else(|| panic!("{}", r.render()));
    assert!(!f.infra, "{f:?}");
    assert!(f.message.contains("DIMM d1 was never ejected"), "{f:?}");
}

/// `rig run --cmdline` reaches the kernel, and `wait_log since: boot` sees the kernel's first
/// lines (printed long before the console shell came up).
#[test]
fn run_passes_cmdline_and_wait_log_since_boot_sees_the_boot() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("boot-log.yaml");
    std::fs::write(
        &file,
        "name: boot-log\nsteps:\n  - wait_log: {regex: 'Linux version', since: boot, timeout: 5s}\n  \
         - guest: {run: 'grep -q rig.test=yes /proc/cmdline'}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rig"))
        .args([
            "run",
            "--board",
            "arm64-virt",
            "--no-setup",
            "--cmdline",
            "rig.test=yes",
        ])
        .arg(&file)
        .env("RIG_ARTIFACTS", runs_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
}
