//! Reports checked with real tools (installed by the test provisioning, `ci/provision-tests.sh`):
//! the HTML page in a real headless Chromium (it renders and shows every cell), and real
//! `report.json` files against `schemas/report.schema.json` with check-jsonschema. A missing
//! tool fails the test with what installs it.

use rig::host::process::Supervised;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports")
}

/// check-jsonschema from the provisioning's venv, else PATH.
pub fn check_jsonschema() -> PathBuf {
    let venv = rig::host::cache::Cache::from_env()
        .root()
        .join("tools/venv/bin/check-jsonschema");
    if venv.is_file() {
        return venv;
    }
    let on_path = Command::new("check-jsonschema").arg("--version").output();
    assert!(
        on_path.is_ok_and(|o| o.status.success()),
        "check-jsonschema is not installed: `bash ci/provision-tests.sh` installs it from PyPI \
         (into {})",
        venv.display()
    );
    "check-jsonschema".into()
}

/// Runs a tool with a deadline; returns (success, stdout+stderr).
fn run(mut cmd: Command, log: &Path, deadline: Duration) -> (bool, String) {
    let mut p = Supervised::spawn(std::mem::replace(&mut cmd, Command::new("true")), Some(log))
        .unwrap_or_else(|e| panic!("{e}"));
    let st = p.wait_timeout(deadline).unwrap();
    let out = std::fs::read_to_string(log).unwrap_or_default();
    match st {
        Some(st) => (st.success(), out),
        None => {
            p.terminate();
            panic!("{cmd:?} did not finish in {deadline:?}: {out}");
        }
    }
}

#[test]
fn real_report_json_files_match_the_schema() {
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("schemas/report.schema.json");
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["pass", "step-failure", "fake-warning"]
        .iter()
        .map(|d| fixtures().join(d).join("report.json"))
        .collect();
    let mut cmd = Command::new(check_jsonschema());
    cmd.arg("--schemafile").arg(&schema).args(&files);
    let (ok, out) = run(cmd, &tmp.path().join("ok.log"), Duration::from_secs(120));
    assert!(ok, "{out}");

    // The schema is not a rubber stamp: a wrong verdict and a missing seed are refused.
    let text = std::fs::read_to_string(&files[2]).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["verdict"] = "maybe".into();
    v.as_object_mut().unwrap().remove("seed");
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let mut cmd = Command::new(check_jsonschema());
    cmd.arg("--schemafile").arg(&schema).arg(&bad);
    let (ok, out) = run(cmd, &tmp.path().join("bad.log"), Duration::from_secs(120));
    assert!(!ok, "an invalid report validated: {out}");
    assert!(out.contains("'maybe' is not one of"), "{out}");
    assert!(out.contains("'seed' is a required property"), "{out}");
}

#[test]
fn the_html_report_renders_in_headless_chromium_with_every_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let html = tmp.path().join("report.html");
    let rig_bin = env!("CARGO_BIN_EXE_rig");
    let st = Command::new(rig_bin)
        .arg("report")
        .arg(fixtures())
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let summary = rig::report::collect(&[fixtures()]).unwrap();
    assert_eq!(summary.rows.len(), 8);

    assert!(
        rig::host::doctor::require("chromium").is_ok(),
        "{}",
        rig::host::doctor::require("chromium").unwrap_err()
    );
    let chromium = |extra: &[&str], name: &str| {
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.path().join(format!("profile-{name}")).display()
        ))
        .args(extra)
        .arg(format!("file://{}", html.display()));
        cmd
    };
    // The DOM after Chromium parsed the page: every cell is a row, with its verdict.
    let dom_file = tmp.path().join("dom.html");
    let mut cmd = chromium(&["--dump-dom"], "dom");
    cmd.stdout(std::fs::File::create(&dom_file).unwrap());
    let mut p = Supervised::spawn(cmd, None).unwrap();
    let st = p.wait_timeout(Duration::from_secs(120)).unwrap();
    if st.is_none() {
        p.terminate();
    }
    assert!(
        st.is_some_and(|s| s.success()),
        "chromium --dump-dom failed"
    );
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    assert_eq!(dom.matches("<tr class=\"cell ").count(), 8, "{dom}");
    for r in &summary.rows {
        let row = format!("data-cell=\"{}\"", r.cell);
        assert!(
            dom.contains(&row),
            "{} missing from the rendered page",
            r.cell
        );
    }
    assert!(dom.contains("<td>FAIL</td>") && dom.contains("<td>skip</td>"));

    // And it paints: a screenshot of a page that tall is a real image.
    let shot = tmp.path().join("shot.png");
    let cmd = chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600",
        ],
        "shot",
    );
    let (ok, out) = run(cmd, &tmp.path().join("shot.log"), Duration::from_secs(120));
    assert!(ok, "{out}");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // Width and height from the IHDR chunk.
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((w, h), (1280, 1600));
    assert!(
        png.len() > 20_000,
        "a near-empty screenshot ({} bytes)",
        png.len()
    );
}
