//! JUnit XML for a [`Summary`]: one test case per cell; a skipped cell is `<skipped>` with its
//! reason (nextest's own JUnit leaves skipped tests out).

use super::{Outcome, Summary};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

pub fn render_junit(s: &Summary, name: &str) -> String {
    let mut suite = TestSuite::new(name);
    for r in &s.rows {
        let status = match r.outcome {
            Outcome::Pass => TestCaseStatus::success(),
            Outcome::Skip => {
                let mut st = TestCaseStatus::skipped();
                if let Some(why) = r.notes.first() {
                    st.set_message(why.as_str());
                }
                st
            }
            o => {
                let kind = if o == Outcome::Fail {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut st = TestCaseStatus::non_success(kind);
                let msg: Vec<&str> = r
                    .titles
                    .iter()
                    .filter(|t| t.class == "unexpected")
                    .map(|t| t.title.as_str())
                    .chain(r.notes.iter().map(String::as_str))
                    .collect();
                st.set_message(msg.join("; "));
                let mut body = r.notes.join("\n");
                if let Some(cmd) = &r.reproduce {
                    body.push_str(&format!("\nreproduce: {cmd}"));
                }
                st.set_description(body);
                st
            }
        };
        let mut case = TestCase::new(r.cell.as_str(), status);
        case.set_classname(format!("rig.{}", r.board));
        suite.add_test_case(case);
    }
    let mut report = Report::new(name);
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->\n"))
}
