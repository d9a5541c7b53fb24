//! `rig reproduce` on input from elsewhere, through the binary: a bundle naming a `tree:` kernel
//! runs nothing of that tree (no boot: refused up front), and a replay whose runs could not run
//! is an infra error (exit 125), not "did not reproduce" (boots QEMU, with deadlines too short
//! for any boot).

mod common;

use flate2::write::GzEncoder;
use flate2::Compression;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports/fake-warning")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The fake-warning fixture run as a folder: its record (changed by `edit`), report and
/// scenario copy.
fn run_folder(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("run.json")).unwrap())
            .unwrap();
    edit(&mut rec);
    std::fs::create_dir_all(dir.join("scenario")).unwrap();
    let copy = dir.join("scenario/fake-warning.yaml");
    std::fs::copy(rig::repo_root().join("scenarios/fake-warning.yaml"), &copy).unwrap();
    // The checkout's scenario may have changed since the fixture was recorded.
    rec["scenario"]["sha256"] = rig::host::cache::sha256_file(&copy).unwrap().into();
    std::fs::write(dir.join("run.json"), rec.to_string()).unwrap();
    std::fs::copy(fixture().join("report.json"), dir.join("report.json")).unwrap();
}

/// A kernel tree whose Makefile and merge_config.sh leave `marker` when anything runs them.
fn booby_trapped_tree(dir: &Path, marker: &Path) {
    let touch = format!("touch {}", marker.display());
    std::fs::create_dir_all(dir.join("scripts/kconfig")).unwrap();
    std::fs::write(
        dir.join("Makefile"),
        format!("%:\n\t{touch}\nall:\n\t{touch}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("Kconfig"), "").unwrap();
    let merge = dir.join("scripts/kconfig/merge_config.sh");
    std::fs::write(&merge, format!("#!/bin/sh\n{touch}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&merge, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A bug report's bundle whose record says its kernel is `tree:<a folder on this machine>`:
/// `rig reproduce BUNDLE` must not run that folder's Makefile or merge_config.sh.
#[test]
fn a_bundle_naming_a_tree_kernel_runs_nothing_of_that_tree() {
    let d = tempfile::tempdir().unwrap();
    let (tree, marker) = (d.path().join("victim-tree"), d.path().join("ran"));
    booby_trapped_tree(&tree, &marker);
    let run = d.path().join("run");
    run_folder(&run, |rec| {
        rec["kernel"]["name"] = format!("tree:{}", tree.display()).into();
        rec["kernel"]["provenance"] = serde_json::json!({ "source_identity": "git:0:0" });
    });
    let bundle = d.path().join("report.tar.gz");
    let mut tar = tar::Builder::new(GzEncoder::new(
        std::fs::File::create(&bundle).unwrap(),
        Compression::default(),
    ));
    tar.append_dir_all(".", &run).unwrap();
    tar.into_inner().unwrap().finish().unwrap();

    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .current_dir(d.path())
        .env("RIG_CACHE_DIR", cache.path())
        .env("RIG_ARTIFACTS", d.path().join("runs"))
        .args(["reproduce", "--no-setup"])
        .arg(&bundle)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!marker.exists(), "the bundle's tree ran:\n{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("pass `--tree PATH`"), "{stderr}");
    assert!(stderr.contains("git:0:0"), "{stderr}");

    // Naming a tree with another identity is refused too, naming both identities.
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .current_dir(d.path())
        .env("RIG_CACHE_DIR", cache.path())
        .env("RIG_ARTIFACTS", d.path().join("runs"))
        .args(["reproduce", "--no-setup"])
        .arg(&bundle)
        .arg("--tree")
        .arg(&tree)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!marker.exists(), "the tree ran:\n{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("is not the source the run's kernel")
            && stderr.contains("the run's was git:0:0"),
        "{stderr}"
    );
}

/// Every replay fails to boot (deadlines scaled to nothing): rig could not run the replays,
/// which is exit 125 and said so — not "did not reproduce" with exit 0.
#[test]
fn a_replay_whose_runs_could_not_run_exits_125() {
    let d = common::run_dir("reproduce-infra");
    let run = d.path().join("original");
    run_folder(&run, |_| {});
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .env("RIG_ARTIFACTS", d.path())
        .env("RIG_TIMEOUT_SCALE", "0.001")
        .args(["reproduce", "--no-setup", "--repeat", "2"])
        .arg(&run)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(125), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("could not replay: none of the 2 runs could run"),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains("did not reproduce"), "{stdout}");
}
