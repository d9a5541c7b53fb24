//! Reproduce without booting: reading records, refusing what cannot be replayed, bundles round
//! trip. (Replays themselves boot: `rig/tests/vm_matrix.rs`.)

use super::*;
use std::collections::BTreeMap;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports/fake-warning")
}

/// A run folder made of the real fake-warning run's record and report, plus its scenario copy.
fn run_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in [RECORD_FILE, crate::report::REPORT_FILE] {
        std::fs::copy(fixture().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::create_dir(dir.path().join("scenario")).unwrap();
    std::fs::copy(
        crate::repo_root().join("scenarios/fake-warning.yaml"),
        dir.path().join("scenario/fake-warning.yaml"),
    )
    .unwrap();
    dir
}

#[test]
fn a_record_reads_back_with_the_failing_titles() {
    let dir = run_folder();
    let r = open(dir.path(), dir.path()).unwrap();
    assert_eq!(r.failing_titles, ["WARNING in device_del"]);
    assert_eq!(r.verdict.as_deref(), Some("fail"));
    assert_eq!(r.record.scenario.name, "fake-warning");
    assert_eq!(r.record.kernel.name, "debian-6.1");
    assert!(r.record.seed > 0);
}

#[test]
fn a_folder_without_a_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), dir.path()).unwrap_err();
    assert!(e.is_bad_input());
    assert!(
        e.to_string()
            .ends_with("it has no run.json (runs made by this rig keep one)"),
        "{e}"
    );
    std::fs::write(dir.path().join(RECORD_FILE), "{\"record_version\": 1}").unwrap();
    let e = open(dir.path(), dir.path()).unwrap_err();
    assert!(
        e.to_string().contains("is not a run record this rig reads"),
        "{e}"
    );
}

#[test]
fn a_tree_kernel_whose_tree_is_gone_names_it() {
    let dir = run_folder();
    let mut r = open(dir.path(), dir.path()).unwrap().record;
    r.kernel.name = "tree:/nonexistent/linux".into();
    r.kernel.provenance = BTreeMap::from([("source_identity".into(), "abc123".into())]);
    let e = check_kernel(&r, &Cache::at(dir.path()), &Events::none()).unwrap_err();
    assert!(e.is_bad_input());
    assert_eq!(
        e.to_string(),
        "kernel `tree:/nonexistent/linux` can no longer be built: its source tree \
         /nonexistent/linux is gone (the run used source identity abc123)"
    );
}

#[test]
fn a_bundle_unpacks_into_a_run_folder_with_the_same_record() {
    let dir = run_folder();
    let out = dir.path().join("b.tar.gz");
    let held = bundle(dir.path(), &out).unwrap();
    for want in [
        RECORD_FILE,
        "report.json",
        "scenario/fake-warning.yaml",
        BUNDLE_README,
    ] {
        assert!(held.iter().any(|h| h == want), "{want} not in {held:?}");
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let r = open(&out, elsewhere.path()).unwrap();
    assert!(r.dir.starts_with(elsewhere.path()));
    assert_eq!(r.record, open(dir.path(), dir.path()).unwrap().record);
    assert_eq!(r.failing_titles, ["WARNING in device_del"]);
    let readme = std::fs::read_to_string(r.dir.join(BUNDLE_README)).unwrap();
    assert!(readme.contains("rig reproduce b.tar.gz"), "{readme}");
    assert!(readme.contains("version: 6.1.176-1"), "{readme}");

    let junk = elsewhere.path().join("junk.tar.gz");
    std::fs::write(&junk, "not a tarball").unwrap();
    let e = open(&junk, elsewhere.path()).unwrap_err();
    assert!(e.to_string().contains("not a rig bundle"), "{e}");
}
