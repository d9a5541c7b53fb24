//! The analyzer against real console logs captured by rig (rig/tests/fixtures/logs/captured/):
//! every report must be found with the title, kind and guilty frame its `.expect` file names,
//! and nothing else.

use std::path::PathBuf;

fn captured_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs/captured")
}

#[test]
fn every_captured_log_yields_exactly_its_expected_reports() {
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(captured_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    entries.sort();
    for log in entries {
        let expect_path = log.with_extension("expect");
        let expected: Vec<Vec<String>> = std::fs::read_to_string(&expect_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expect_path.display()))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
        let got: Vec<Vec<String>> = rig::dmesg::analyze(&text)
            .into_iter()
            .map(|r| {
                vec![
                    r.title,
                    r.kind.to_string(),
                    r.guilty_frame.unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        assert_eq!(got, expected, "{}", log.display());
        checked += 1;
    }
    assert!(checked >= 2, "no captured logs found");
}
