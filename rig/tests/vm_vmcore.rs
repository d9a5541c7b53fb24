//! A failed run keeps the guest's memory (`--vmcore on-failure`, `rig run`'s default), and gdb
//! finds the guilty function in it, on both boards' rig kernels: a real WARNING (LKDTM's) with
//! `panic_on_warn` panics into QEMU's pause, and the core shows the warning task's frames; the
//! fake-warning scenario is dumped at its report, the guest going on; a passing run keeps no
//! core; `--vmcore never` boots no dump monitor. Needs gdb-multiarch (`rig setup --tests`).

mod common;

use common::*;
use rig::host::board::Board;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// LKDTM's WARNING: `lkdtm_WARNING` calls WARN_ON(1) in the writing shell's context.
const LKDTM_WARNING: &str =
    "name: lkdtm-warning\nsteps:\n  - guest:\n      name: provoke a WARNING\n      \
     run: 'echo WARNING > /sys/kernel/debug/provoke-crash/DIRECT'\n      expect_status: any\n";

fn scenario(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("lkdtm-warning.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `rig run --json` of `file` with `args`: exit code and the report.
fn run(file: &Path, board: Board, kernel: &str, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = rig_run_output(file, board, kernel, &all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// Unpacks the repetition's `vmcore.gz` and runs gdb-multiarch on it in batch: every thread's
/// backtrace.
fn backtraces(rep: &Value) -> String {
    let v = &rep["vmcore"];
    let gz = PathBuf::from(v["path"].as_str().expect("the repetition names its vmcore"));
    let command = v["command"].as_str().unwrap();
    assert!(
        command.starts_with("gunzip -k ") && command.contains(" && gdb-multiarch "),
        "{command}"
    );
    let vmlinux = command
        .split(" && gdb-multiarch ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    let st = Command::new("gunzip").arg("-kf").arg(&gz).status().unwrap();
    assert!(st.success(), "gunzip {}", gz.display());
    let core = gz.with_extension("");
    let out = Command::new("gdb-multiarch")
        .args(["-batch", "-nx", "-ex", "thread apply all bt"])
        .arg(&vmlinux)
        .arg(&core)
        .output()
        .expect("gdb-multiarch (rig setup --tests installs it)");
    let _ = std::fs::remove_file(&core);
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn check_panic_core(board: Board) {
    let d = tempfile::tempdir().unwrap();
    let file = scenario(
        d.path(),
        &LKDTM_WARNING.replace("steps:", "cmdline: [panic_on_warn=1]\nsteps:"),
    );
    let (code, report) = run(&file, board, RIG_KERNEL, &[]);
    assert_eq!(code, Some(1), "{report:#}");
    let rep = &repetitions(&report)[0];
    assert_eq!(rep["vmcore"]["taken_at"], "the guest panicked", "{rep:#}");
    assert!(rep["vmcore"].get("note").is_none(), "{rep:#}");
    let bt = backtraces(rep);
    // The panic's frames down to the warning, whose caller gdb names: lkdtm_WARNING.
    assert!(
        bt.contains("pvpanic")
            && bt.contains("check_panic_on_warn")
            && bt.contains("lkdtm_WARNING"),
        "gdb shows no panic from lkdtm_WARNING:\n{bt}"
    );
    let dir = PathBuf::from(rep["artifacts"].as_str().unwrap());
    assert!(!dir.join("vmcore.elf").exists(), "the raw core was left");
}

#[test]
fn a_warning_with_panic_on_warn_leaves_a_core_with_its_frames_x86_64() {
    check_panic_core(Board::X86_64Q35);
}

#[test]
fn a_warning_with_panic_on_warn_leaves_a_core_with_its_frames_arm64() {
    check_panic_core(Board::Arm64Virt);
}

/// The fake-warning scenario (a splat written to /dev/kmsg: no panic) is dumped when the live
/// analyzer has its report, the guest paused for the dump only and going on after it; gdb opens
/// the core.
#[test]
fn the_fake_warning_is_dumped_at_its_report_and_the_guest_goes_on() {
    let file = rig::repo_root().join("scenarios/fake-warning.yaml");
    let (code, report) = run(&file, Board::X86_64Q35, RIG_KERNEL, &[]);
    assert_eq!(code, Some(1), "{report:#}");
    let rep = &repetitions(&report)[0];
    assert_eq!(
        rep["vmcore"]["taken_at"], "WARNING in rig_fake_teardown",
        "{rep:#}"
    );
    assert!(
        rep["step_failures"].as_array().unwrap().is_empty(),
        "the guest did not go on after the dump: {rep:#}"
    );
    let bt = backtraces(rep);
    assert!(
        bt.contains("Thread 1") && bt.contains("Thread 2"),
        "gdb read no vCPU:\n{bt}"
    );
}

/// A passing run keeps no core (nor a raw one), and `--vmcore never` boots no dump monitor.
#[test]
fn a_pass_keeps_no_core_and_never_boots_without_the_monitor() {
    let d = tempfile::tempdir().unwrap();
    let file = scenario(d.path(), "name: ok\nsteps:\n  - guest: {run: 'true'}\n");
    for (args, monitor) in [(&[][..], true), (&["--vmcore", "never"][..], false)] {
        let (code, report) = run(&file, Board::X86_64Q35, RIG_KERNEL, args);
        assert_eq!(code, Some(0), "{report:#}");
        let rep = &repetitions(&report)[0];
        assert!(rep.get("vmcore").is_none(), "{rep:#}");
        let dir = PathBuf::from(rep["artifacts"].as_str().unwrap());
        for f in ["vmcore.elf", "vmcore.gz", "vmcore.elf.tmp"] {
            assert!(!dir.join(f).exists(), "{f} left after a pass");
        }
        let argv = std::fs::read_to_string(dir.join("qemu.argv")).unwrap();
        assert_eq!(argv.contains("panic=pause"), monitor, "{argv}");
        assert_eq!(dir.join("qmp-vmcore.jsonl").exists(), monitor);
    }
}
