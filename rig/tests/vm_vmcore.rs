//! A failed run keeps the guest's memory (`--vmcore on-failure`, `rig run`'s default), and gdb
//! finds the guilty function in it (with rig's `rig-interrupted`), on both boards' rig kernels:
//! seed 001's oops on arm64-virt; a real WARNING (LKDTM's) with
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

/// Unpacks the repetition's `vmcore.gz` and runs the command rig printed for it in gdb's batch
/// mode: every thread's backtrace, then rig's `rig-interrupted` (from `vmcore.gdb`).
fn gdb_on_core(rep: &Value) -> String {
    let v = &rep["vmcore"];
    let gz = PathBuf::from(v["path"].as_str().expect("the repetition names its vmcore"));
    let command = v["command"].as_str().unwrap();
    let gdb = command
        .split_once(" && gdb-multiarch ")
        .map(|(_, rest)| rest.split(' ').collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        command.starts_with("gunzip -k ") && gdb.len() == 4 && gdb[0] == "-x",
        "{command}"
    );
    let st = Command::new("gunzip").arg("-kf").arg(&gz).status().unwrap();
    assert!(st.success(), "gunzip {}", gz.display());
    let out = Command::new("gdb-multiarch")
        .args(["-batch", "-nx", "-x", gdb[1]])
        .args(["-ex", "thread apply all bt", "-ex", "rig-interrupted"])
        .args(&gdb[2..])
        .output()
        .expect("gdb-multiarch (rig setup --tests installs it)");
    let _ = std::fs::remove_file(gz.with_extension(""));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// What `rig-interrupted` printed: the lines after its first heading.
fn interrupted(gdb: &str) -> &str {
    gdb.split_once("was interrupted in:")
        .map_or("", |(_, rest)| rest)
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
    let gdb = gdb_on_core(rep);
    // gdb's backtrace: the panic's frames down to the warning's exception entry; rig-interrupted:
    // the function the WARN's trap interrupted, the guilty one.
    assert!(
        gdb.contains("pvpanic") && gdb.contains("check_panic_on_warn"),
        "gdb shows no panic:\n{gdb}"
    );
    assert!(
        interrupted(&gdb)
            .trim_start()
            .starts_with("lkdtm_WARNING + "),
        "rig-interrupted does not name lkdtm_WARNING:\n{gdb}"
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

/// Seed 001's positive control (arm64-virt, the known-bad devlink reload): the NULL pointer
/// dereference panics into the pause, and `rig-interrupted` walks from the faulting function
/// through the frame records to the title's function and devlink's reload.
#[test]
fn seed_001s_oops_leaves_a_core_that_names_the_guilty_function() {
    let file = rig::repo_root().join("scenarios/devlink-reload-vs-del.yaml");
    let kernel = rig_flavor("known-bad-devlink-reload");
    let (code, report) = run(&file, Board::Arm64Virt, &kernel, &[]);
    assert_eq!(code, Some(1), "{report:#}");
    let rep = &repetitions(&report)[0];
    assert_eq!(rep["vmcore"]["taken_at"], "the guest panicked", "{rep:#}");
    let gdb = gdb_on_core(rep);
    assert!(
        gdb.contains("die_kernel_fault"),
        "no oops in gdb's backtrace:\n{gdb}"
    );
    let chain = interrupted(&gdb);
    assert!(
        chain.contains("__simple_recursive_removal + ") && chain.contains("devlink_reload + "),
        "rig-interrupted does not reach the guilty function:\n{gdb}"
    );
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
    // The live analyzer's title of the report: it can differ from the final one (a splat cut
    // across console chunks is `WARNING in corrupted` live), so only its kind is checked.
    let taken = rep["vmcore"]["taken_at"].as_str().unwrap_or_default();
    assert!(taken.starts_with("WARNING in "), "{rep:#}");
    assert!(
        rep["step_failures"].as_array().unwrap().is_empty(),
        "the guest did not go on after the dump: {rep:#}"
    );
    let gdb = gdb_on_core(rep);
    assert!(
        gdb.contains("Thread 1") && gdb.contains("Thread 2"),
        "gdb read no vCPU:\n{gdb}"
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
        for f in ["vmcore.elf", "vmcore.gz", "vmcore.elf.tmp", "vmcore.gdb"] {
            assert!(!dir.join(f).exists(), "{f} left after a pass");
        }
        let argv = std::fs::read_to_string(dir.join("qemu.argv")).unwrap();
        assert_eq!(argv.contains("panic=pause"), monitor, "{argv}");
        assert_eq!(dir.join("qmp-vmcore.jsonl").exists(), monitor);
    }
}
