//! The `rig` binary's contract without booting anything: exit codes for bad input (2), stdout
//! kept clean, and errors that name what was wrong. (Booting cases live in the vm_* tests.)

use std::process::{Command, Output};

fn rig(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(args)
        .env("RIG_CACHE_DIR", cache.path())
        .env("RIG_ARTIFACTS", runs.path())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn unknown_kernel_is_bad_input() {
    for kernel in ["nope", "rig-6.12-nope", "rig-6.1"] {
        let out = rig(&[
            "boot",
            "--no-setup",
            "--board",
            "x86_64-q35",
            "--kernel",
            kernel,
            "--",
            "true",
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--kernel {kernel}: {err}");
        assert!(err.contains(kernel), "{err}");
        assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    }
}

#[test]
fn unknown_board_and_flavor_are_bad_input() {
    let out = rig(&["boot", "--board", "riscv", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = rig(&[
        "kernel",
        "build",
        "--no-setup",
        "--arch",
        "arm64",
        "--flavor",
        "nope",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("known-bad-devlink-wait"), "{err}");
}

#[test]
fn missing_log_for_analyze_is_bad_input() {
    let out = rig(&["analyze", "/nonexistent/rig/missing.log"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/rig/missing.log"), "{err}");
}

#[test]
fn missing_or_broken_scenario_is_bad_input() {
    let out = rig(&[
        "run",
        "/nonexistent/s.yaml",
        "--no-setup",
        "--board",
        "arm64-virt",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("bad.yaml");
    std::fs::write(&f, "steps:\n  - guest: {run: true, bogus: 1}\n").unwrap();
    let out = rig(&["check", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).contains("bad.yaml:2:"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn analyze_reports_to_stdout_and_exits_zero() {
    let log = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/logs/warning_generic_arm64_6.12.log"
    );
    let out = rig(&["analyze", log]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("WARNING in"),
        "{}",
        text(&out.stdout)
    );
}
