//! The short soak: every fault once, on real boots (`rig soak`, the CLI a nightly job runs).
//! It fails on any misfiled verdict, leaked process, missing console log or cache problem, and
//! names the run; each run's folder (scenario, rig's output, artifacts) is kept for the reader.

mod common;

use std::process::Command;

#[test]
fn a_short_soak_with_every_fault_once_is_clean() {
    let faults = rig::soak::fault::Fault::ALL.len();
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(["soak", "--runs", &faults.to_string(), "--faults", "all"])
        .args([
            "--parallel",
            "2",
            "--seed",
            "20261201",
            "--board",
            "arm64-virt",
        ])
        .env("RIG_ARTIFACTS", common::runs_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the soak found problems:\n{stdout}\n{stderr}"
    );
    // The table has every fault, each right and clean.
    for f in rig::soak::fault::Fault::ALL {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| `{f}` |")))
            .unwrap_or_else(|| panic!("no row for {f}:\n{stdout}"));
        assert!(row.ends_with("| 1 | 1 | 0 | 0 | 0 |"), "{row}");
    }
    assert!(
        stdout.contains(&format!(
            "| **total** | | **{faults}** | **{faults}** | **0** | **0** | **0** |"
        )),
        "{stdout}"
    );
}
