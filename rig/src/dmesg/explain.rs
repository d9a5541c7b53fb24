//! `rig analyze --explain`: for each report, which lines started and ended it, where the
//! search for the title's function looked, which frames it skipped and why, which it chose.

use super::{analyze, Report};

/// The explanation of every report in a log, as text.
pub fn explain(text: &str) -> String {
    render(&analyze(text))
}

/// The explanation of reports already analyzed.
pub fn render(reports: &[Report]) -> String {
    if reports.is_empty() {
        return "no reports\n".to_string();
    }
    let mut s = String::new();
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&format!("=== {}\n", r.title));
        s.push_str(&format!(
            "kind: {}, lines {}-{}\n",
            r.kind, r.line, r.end_line
        ));
        for t in &r.trail {
            s.push_str(t);
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn says_what_was_skipped_and_chosen() {
        let log = "------------[ cut here ]------------\n\
                   WARNING: CPU: 0 PID: 1 at lib/refcount.c:25 refcount_warn_saturate+0x1/0x2\n\
                   RIP: 0010:refcount_warn_saturate+0x1/0x2\n\
                   Call Trace:\n \
                   kobject_put+0x1/0x2\n \
                   rig_remove+0x1/0x2\n\
                   ---[ end trace 0000000000000000 ]---\n";
        let e = super::explain(log);
        assert!(e.contains("=== WARNING: refcount bug in rig_remove"), "{e}");
        assert!(e.contains("started at line 1"), "{e}");
        assert!(e.contains("ended at line 7: its terminator line"), "{e}");
        assert!(e.contains("skip refcount_warn_saturate"), "{e}");
        assert!(
            e.contains("skip kobject_put (device-model or USB core helper"),
            "{e}"
        );
        assert!(e.contains("chose rig_remove"), "{e}");
        assert_eq!(super::explain(""), "no reports\n");
    }
}
