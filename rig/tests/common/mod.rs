//! Shared helpers for the VM tests: boot a real kernel on a real QEMU through rig's own path.
#![allow(dead_code)]

use rig::guest::transport::Via;
use rig::guest::Guest;
use rig::host::artifacts::RunDir;
use rig::host::board::Board;
use rig::host::cache::Cache;
use rig::host::events::Events;
use rig::machine::spec::{MachineSpec, PreparedMachine};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The kernel rig builds that the suite boots: ci/provision-tests.sh provisions it on both boards,
/// with the flavors in [`rig_flavor`]'s callers. (rig-6.12 stays buildable and in the `full` and
/// `nightly` matrix sets; the suite does not build it.)
pub const RIG_KERNEL: &str = "rig-7.3";

/// `rig-7.3-FLAVOR`: a flavor of the suite's kernel.
pub fn rig_flavor(flavor: &str) -> String {
    format!("{RIG_KERNEL}-{flavor}")
}

/// Where VM tests keep their artifacts: `target/rig-test-runs/` (kept on failure for CI uploads).
pub fn runs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/rig-test-runs")
}

pub fn run_dir(label: &str) -> RunDir {
    RunDir::create_in(&runs_dir(), label).unwrap()
}

/// The same cache the CLI uses, so CI provisions each image once per machine.
pub fn cache() -> Cache {
    Cache::from_env()
}

pub fn options(board: Board, kernel: &str) -> MachineSpec {
    MachineSpec::new(board, kernel)
}

/// The error and its causes, one per line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!("\n  caused by: {s}"));
        src = s.source();
    }
    msg
}

/// `spec`'s kernel and initramfs provisioned and its accelerator chosen. Tests never install
/// packages behind the user's back: .ci/run does that up front.
pub fn prepare(spec: MachineSpec) -> PreparedMachine {
    rig::prepare::prepare(spec, false, &cache(), &Events::none())
        .unwrap_or_else(|e| panic!("cannot prepare the guest: {}", chain(&e)))
}

pub fn boot(board: Board, kernel: &str, label: &str) -> Guest {
    boot_with(options(board, kernel), label)
}

pub fn boot_with(spec: MachineSpec, label: &str) -> Guest {
    boot_prepared(&prepare(spec), label)
}

pub fn boot_prepared(machine: &PreparedMachine, label: &str) -> Guest {
    let rd = run_dir(&format!("{label}-{}", machine.spec.board));
    Guest::boot(machine, &rd, &Events::none())
        .unwrap_or_else(|e| panic!("boot failed: {}", chain(&e)))
}

pub const CMD: Duration = Duration::from_secs(120);

/// Runs a command over hvc (the command shell) and asserts it succeeded; returns stdout.
pub fn sh(g: &mut Guest, cmd: &str) -> String {
    let out = g
        .run(cmd, CMD, Via::Hvc)
        .unwrap_or_else(|e| panic!("`{cmd}` failed: {e:?}"));
    assert_eq!(
        out.status, 0,
        "`{cmd}` exited {}: {}",
        out.status, out.stdout
    );
    out.stdout
}

/// True while a process with this pid exists (zombies count as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.contains(") Z "),
        Err(_) => false,
    }
}

/// `rig run FILE --board B --kernel K --no-setup ARGS…` through the built binary, with its
/// artifacts under the test runs folder: the finished process.
pub fn rig_run_output(file: &Path, board: Board, kernel: &str, args: &[&str]) -> Output {
    let scenario = file.file_stem().unwrap().to_string_lossy();
    let dir = run_dir(&format!("run-{scenario}-{board}-{kernel}"));
    Command::new(env!("CARGO_BIN_EXE_rig"))
        .env("RIG_ARTIFACTS", dir.path())
        .arg("run")
        .arg(file)
        .args([
            "--board",
            &board.to_string(),
            "--kernel",
            kernel,
            "--no-setup",
        ])
        .args(args)
        .output()
        .unwrap()
}

/// `rig run FILE --board B --kernel K --repeat N --json` through the built binary: the report.
/// Panics on an exit other than 0 (pass) or 1 (kernel failure): bad input or an infra error is
/// not a verdict.
pub fn rig_run(file: &Path, board: Board, kernel: &str, repeat: u32) -> Value {
    let scenario = file.file_stem().unwrap().to_string_lossy();
    let out = rig_run_output(
        file,
        board,
        kernel,
        &["--repeat", &repeat.to_string(), "--json"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{scenario} on {board} {kernel}: exit {:?}\n{stderr}",
        out.status.code()
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{scenario}: not JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(
        report["repetitions"].as_array().map(Vec::len),
        Some(repeat as usize),
        "{stdout}"
    );
    report
}

/// The repetitions of a `rig run --json` report.
pub fn repetitions(report: &Value) -> &[Value] {
    report["repetitions"].as_array().unwrap()
}

/// Asserts every repetition of a `rig run --json` report passed, showing those that did not.
pub fn assert_all_pass(report: &Value, what: &str) {
    let bad: Vec<&Value> = repetitions(report)
        .iter()
        .filter(|r| r["verdict"] != "pass")
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {} repetitions did not pass: {}",
        bad.len(),
        repetitions(report).len(),
        serde_json::to_string_pretty(&bad).unwrap()
    );
}
