//! Reports over real run output (`rig/tests/fixtures/reports/`: report.json files of real runs —
//! a pass, a step failure, the fake-warning positive control twice — and a smoke matrix plan).

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports")
}

fn summary() -> Summary {
    collect(&[fixtures()]).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn one_row_per_cell_failures_first_skips_with_reasons() {
    let s = summary();
    let cells: Vec<(&str, Outcome)> = s
        .rows
        .iter()
        .map(|r| (r.cell.as_str(), r.outcome))
        .collect();
    assert_eq!(
        cells,
        [
            ("arm64-virt::debian-6.1::parallel-sleeps", Outcome::Fail),
            ("x86_64-q35::debian-6.1::fake-warning", Outcome::Fail),
            ("x86_64-q35::debian-6.1::pci-hotplug-cycle", Outcome::Pass),
            (
                "arm64-virt::debian-6.1::devlink-reload-vs-del",
                Outcome::Skip
            ),
            (
                "arm64-virt::debian-6.1::memory-online-offline-race",
                Outcome::Skip
            ),
            (
                "arm64-virt::debian-6.1::overlay-devlink-teardown",
                Outcome::Skip
            ),
            (
                "x86_64-q35::debian-6.1::devlink-reload-vs-del",
                Outcome::Skip
            ),
            (
                "x86_64-q35::debian-6.1::overlay-devlink-teardown",
                Outcome::Skip
            ),
        ]
    );
    let fw = &s.rows[1];
    assert_eq!(fw.runs, 2);
    assert_eq!(fw.titles.len(), 1);
    assert_eq!(
        (
            fw.titles[0].title.as_str(),
            fw.titles[0].runs,
            fw.titles[0].class.as_str()
        ),
        ("WARNING in device_del", 2, "unexpected")
    );
    assert!(fw.titles[0].excerpt.contains("device_unregister+0x1c/0x60"));
    // It has a run record: the reproduce line names its folder.
    let dir = std::fs::canonicalize(fixtures().join("fake-warning")).unwrap();
    assert_eq!(
        fw.reproduce,
        Some(format!("rig reproduce {}", dir.display()))
    );
    assert!(
        s.rows[0].notes[0].contains("over its 7s deadline"),
        "{:?}",
        s.rows[0]
    );
    assert_eq!(s.rows[3].notes, ["netdevsim needs CONFIG_NETDEVSIM=y or m"]);

    let text = render_text(&s);
    assert!(
        text.ends_with("8 cells: 2 fail, 1 pass, 5 skip\n"),
        "{text}"
    );
    assert!(text.contains(
        "FAIL   x86_64-q35::debian-6.1::fake-warning                WARNING in device_del (2 of 2)\n"
    ));
    let md = render_markdown(&s);
    assert!(
        md.starts_with("## rig: 8 cells: 2 fail, 1 pass, 5 skip\n"),
        "{md}"
    );
    assert!(md.contains(
        "| FAIL | x86_64-q35 | debian-6.1 | fake-warning | WARNING in device_del (2 of 2) |"
    ));
    assert!(md.contains("<details><summary>WARNING in device_del (2 of 2)</summary>"));
}

#[test]
fn runs_of_the_same_cell_fold_into_one_row() {
    let s = collect(&[
        fixtures().join("fake-warning"),
        fixtures().join("fake-warning/report.json"),
    ])
    .unwrap();
    assert_eq!(s.rows.len(), 1);
    assert_eq!(s.rows[0].runs, 4);
    assert_eq!(s.rows[0].titles[0].runs, 4);
    let e = collect(&[fixtures().join("nope")]).unwrap_err();
    assert!(e.to_string().starts_with("cannot read "), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = collect(&[empty.path().into()]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("no report.json or matrix.json below"),
        "{e}"
    );
}

#[test]
fn a_retried_attempt_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    for (name, src) in [("a", "step-failure"), ("b", "pass")] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::copy(
            fixtures().join(src).join(REPORT_FILE),
            dir.path().join(name).join(REPORT_FILE),
        )
        .unwrap();
    }
    assert_eq!(collect(&[dir.path().into()]).unwrap().rows.len(), 2);
    std::fs::write(dir.path().join("a").join(SUPERSEDED_FILE), "retried\n").unwrap();
    let s = collect(&[dir.path().into()]).unwrap();
    assert_eq!(s.rows.len(), 1);
    assert_eq!(s.rows[0].outcome, Outcome::Pass);
}

#[test]
fn new_failures_against_a_baseline() {
    let now = summary();
    let mut baseline = now.clone();
    baseline.rows.retain(|r| r.scenario != "fake-warning");
    let json = serde_json::to_string(&baseline).unwrap();
    let baseline: Summary = serde_json::from_str(&json).unwrap();
    let mut s = now.clone();
    s.compare(&baseline);
    assert_eq!(
        s.new_failures,
        Some(vec![NewFailure {
            cell: "x86_64-q35::debian-6.1::fake-warning".into(),
            title: "WARNING in device_del".into()
        }])
    );
    assert!(render_text(&s).contains(
        "new failures since the baseline:\n  x86_64-q35::debian-6.1::fake-warning: WARNING in device_del\n"
    ));
    assert!(render_markdown(&s).contains("### New failures since the baseline"));
    let mut same = now.clone();
    same.compare(&now);
    assert_eq!(same.new_failures, Some(vec![]));
    assert!(render_text(&same).contains("no new failures since the baseline"));
}

#[test]
fn junit_has_every_cell_and_skip_reasons() {
    let xml = render_junit(&summary(), "rig");
    assert_eq!(xml.matches("<testcase ").count(), 8, "{xml}");
    assert!(
        xml.contains("<skipped message=\"netdevsim needs CONFIG_NETDEVSIM=y or m\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"WARNING in device_del\""),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"x86_64-q35::debian-6.1::pci-hotplug-cycle\""),
        "{xml}"
    );
}

#[test]
fn html_escapes_and_holds_every_cell() {
    let mut s = summary();
    s.rows[0]
        .notes
        .push("<script>alert(1)</script> & \"q\"".into());
    let h = render_html(&s, "rig <report>");
    assert!(h.contains("<title>rig &lt;report&gt;</title>"));
    assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"));
    assert!(!h.contains("<script>"));
    assert_eq!(h.matches("<tr class=\"cell ").count(), 8);
    // Nothing to fetch: no external reference of any kind.
    for bad in ["src=", "href=", "http://", "https://", "@import"] {
        assert!(!h.contains(bad), "{bad} in the page");
    }
}

/// One truncated report.json (a run killed mid-write by an older rig, a full disk) is named and
/// left out; every other run of the night is still reported.
#[test]
fn a_damaged_report_is_named_and_left_out() {
    let dir = tempfile::tempdir().unwrap();
    for (name, src) in [("a", "step-failure"), ("b", "pass"), ("c", "pass")] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::copy(
            fixtures().join(src).join(REPORT_FILE),
            dir.path().join(name).join(REPORT_FILE),
        )
        .unwrap();
    }
    let whole = std::fs::read(dir.path().join("c").join(REPORT_FILE)).unwrap();
    let cut = dir.path().join("c").join(REPORT_FILE);
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    std::fs::write(dir.path().join("b").join(MATRIX_FILE), "{\"cells\": [").unwrap();
    let s = collect(&[dir.path().into()]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.rows.len(), 2, "{:?}", s.rows);
    assert_eq!(s.damaged.len(), 2, "{:?}", s.damaged);
    assert!(s.damaged.iter().any(|d| d.path == cut));
    let text = render_text(&s);
    assert!(
        text.contains(&format!("damaged, left out: {}", cut.display())),
        "{text}"
    );
    assert!(render_markdown(&s).contains("Damaged files, left out"));
    assert!(render_html(&s, "t").contains("id=\"damaged\""));
}

/// A report written while a run was still going (or by a run that was killed) says how far it
/// got.
#[test]
fn an_incomplete_run_says_how_many_repetitions_finished() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("pass").join(REPORT_FILE)).unwrap(),
    )
    .unwrap();
    v["complete"] = false.into();
    v["repeat"] = 100.into();
    std::fs::write(dir.path().join(REPORT_FILE), v.to_string()).unwrap();
    let s = collect(&[dir.path().into()]).unwrap();
    let n = s.rows[0].runs;
    assert!(
        s.rows[0].notes.contains(&format!(
            "incomplete: {n} of 100 repetitions finished (the run was stopped or is still going)"
        )),
        "{:?}",
        s.rows[0].notes
    );
}

/// `rig report` reads report.json into the type `rig run` writes: a report of an older rig (no
/// `complete`, `repeat`, `teardown_seconds`, report `phase`) reads with defaults, one rig wrote
/// reads back the same, and a verdict rig never writes is a damaged file, named.
#[test]
fn reports_read_into_the_written_type_old_and_new_and_a_bad_verdict_is_damaged() {
    let text = std::fs::read_to_string(fixtures().join("fake-warning").join(REPORT_FILE)).unwrap();
    let old: RunReport = serde_json::from_str(&text).unwrap();
    assert!(old.complete && old.repeat == 0);
    assert_eq!(old.verdict, crate::run::Verdict::Fail);
    assert_eq!(
        old.repetitions[0].reports[0].phase,
        crate::run::phase::Phase::Scenario
    );
    let again: RunReport = serde_json::from_str(&serde_json::to_string(&old).unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&old).unwrap()
    );

    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["verdict"] = "maybe".into();
    std::fs::write(dir.path().join(REPORT_FILE), v.to_string()).unwrap();
    std::fs::create_dir(dir.path().join("ok")).unwrap();
    std::fs::write(dir.path().join("ok").join(REPORT_FILE), &text).unwrap();
    let s = collect(&[dir.path().into()]).unwrap();
    assert_eq!(s.rows.len(), 1);
    assert_eq!(s.damaged.len(), 1, "{:?}", s.damaged);
    assert!(
        s.damaged[0].message.contains("unknown variant `maybe`"),
        "{:?}",
        s.damaged
    );
}
