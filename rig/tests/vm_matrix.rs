//! The matrix, reproduce and bundles end to end with real boots: the libtest-mimic harness
//! lists a fixture matrix exactly (ignored cells included), the fake-warning cell fails and its
//! printed reproduce line, run as it is, reproduces the same title, and a bundle reproduces on
//! an empty cache.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `matrix` test binary (rig/tests/matrix.rs) next to this one: the newest build of it.
fn matrix_bin() -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("matrix-") && p.extension().is_none()
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no matrix test binary in {}", deps.display()))
        .1
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A folder on PATH holding `rig` (this build), so printed commands run as they are.
fn rig_on_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("rig");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rig"), &link).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn check_schema(report: &Path) {
    let venv = rig::host::cache::Cache::from_env()
        .root()
        .join("tools/venv/bin/check-jsonschema");
    assert!(
        venv.is_file(),
        "check-jsonschema missing: `bash ci/provision-tests.sh` installs it"
    );
    let out = Command::new(venv)
        .arg("--schemafile")
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("schemas/report.schema.json"),
        )
        .arg(report)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn the_harness_lists_a_fixture_matrix_exactly_with_its_ignored_cells() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/matrix/matrix.yaml");
    let list = |extra: &[&str]| {
        let out = Command::new(matrix_bin())
            .env("RIG_MATRIX_FILE", &fixture)
            .env("RIG_MATRIX", "small")
            .env("RIG_NO_SETUP", "1")
            .arg("--list")
            .args(extra)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        let mut names: Vec<String> = stdout
            .lines()
            .filter_map(|l| l.strip_suffix(": test"))
            .map(String::from)
            .collect();
        names.sort();
        names
    };
    // Real kernels: Debian's 6.1 has no netdevsim, rig-7.3 does.
    assert_eq!(
        list(&[]),
        [
            "arm64-virt::debian-6.1::arm-only",
            "arm64-virt::debian-6.1::needs-netdevsim",
            "arm64-virt::debian-6.1::plain",
            "arm64-virt::rig-7.3::arm-only",
            "arm64-virt::rig-7.3::needs-netdevsim",
            "x86_64-q35::debian-6.1::arm-only",
            "x86_64-q35::debian-6.1::needs-netdevsim",
            "x86_64-q35::debian-6.1::plain",
        ]
    );
    assert_eq!(
        list(&["--ignored"]),
        [
            "arm64-virt::debian-6.1::needs-netdevsim",
            "x86_64-q35::debian-6.1::arm-only",
            "x86_64-q35::debian-6.1::needs-netdevsim",
        ]
    );
    // And `rig matrix list` says why.
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .env("RIG_MATRIX_FILE", &fixture)
        .args(["matrix", "list", "--set", "small", "--no-setup"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(
        "skip   x86_64-q35::debian-6.1::needs-netdevsim  netdevsim needs CONFIG_NETDEVSIM=y or m\n"
    ), "{stdout}");
    assert!(
        stdout.ends_with("8 cells: 5 run, 3 skipped, 0 cannot be provisioned\n"),
        "{stdout}"
    );
}

#[test]
fn a_fake_warning_cell_fails_and_its_reproduce_line_reproduces_the_title() {
    let dir = common::run_dir("matrix-fake-warning");
    let cell = "arm64-virt::debian-6.1::fake-warning";
    let out = Command::new(matrix_bin())
        .env("RIG_MATRIX", "controls")
        .env("RIG_NO_SETUP", "1")
        .env("RIG_ARTIFACTS", dir.path())
        .args(["--exact", cell])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "the positive control passed: {stdout}{stderr}"
    );
    assert!(
        stdout.contains(&format!("test {cell} ... FAILED")),
        "{stdout}"
    );
    assert!(
        stderr.contains("[unexpected] WARNING in rig_fake_teardown: reproduced in 1 of 1 runs"),
        "{stderr}"
    );
    // The cell's last two lines: its artifacts folder, then the command.
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines[lines.len() - 1];
    let artifacts = lines[lines.len() - 2]
        .strip_prefix("artifacts: ")
        .unwrap_or_else(|| panic!("{}", lines[lines.len() - 2]));
    let cmd = last
        .strip_prefix("reproduce: ")
        .unwrap_or_else(|| panic!("last line: {last}"));
    assert_eq!(cmd, format!("rig reproduce {artifacts}"));
    let cell_dir = Path::new(artifacts);
    check_schema(&cell_dir.join("report.json"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell_dir.join("report.json")).unwrap())
            .unwrap();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(report["seed"], record["seed"]);
    assert!(cell_dir.join("scenario/fake-warning.yaml").is_file());

    // Run the printed line as it is, from another folder.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} --no-setup"))
        .current_dir(elsewhere.path())
        .env("PATH", rig_on_path(elsewhere.path()))
        .env("RIG_ARTIFACTS", dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "reproduce exit: {stdout}{stderr}"
    );
    assert!(
        stdout.starts_with("reproduced: WARNING in rig_fake_teardown in 1 of 1 runs\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("(seed {})", record["seed"])),
        "{stderr}"
    );
}

#[test]
fn a_bundle_reproduces_with_an_empty_cache() {
    let dir = common::run_dir("bundle");
    let rig = env!("CARGO_BIN_EXE_rig");
    let run = Command::new(rig)
        .env("RIG_ARTIFACTS", dir.path())
        .arg("run")
        .arg(rig::repo_root().join("scenarios/fake-warning.yaml"))
        .args([
            "--board",
            "arm64-virt",
            "--kernel",
            "debian-6.1",
            "--no-setup",
            "--seed",
            "4242",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&run);
    assert_eq!(run.status.code(), Some(1), "{stdout}{stderr}");
    let run_dir = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("artifacts: "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    assert!(stdout.contains("seed: 4242"), "{stdout}");

    let bundle = dir.path().join("fake-warning.tar.gz");
    let out = Command::new(rig)
        .args(["reproduce", &run_dir, "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for part in [
        "run.json",
        "report.json",
        "scenario/fake-warning.yaml",
        "kernel/config",
        "qemu.argv",
        "REPRODUCE.txt",
    ] {
        assert!(stderr.contains(part), "{part} not in the bundle: {stderr}");
    }

    // Another machine: nothing cached, not even Debian's kernel or the rootfs.
    let empty = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(rig)
        .current_dir(elsewhere.path())
        .env("RIG_CACHE_DIR", empty.path())
        .env("RIG_ARTIFACTS", elsewhere.path().join("runs"))
        .arg("reproduce")
        .arg(&bundle)
        .arg("--no-setup")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("reproduced: WARNING in rig_fake_teardown in 1 of 1 runs\n"),
        "{stdout}"
    );
    assert!(stderr.contains("(seed 4242)"), "{stderr}");
    assert!(
        empty.path().join("debian-kernel").is_dir(),
        "the empty cache was not used"
    );
}
