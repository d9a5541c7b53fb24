//! CONFIG_OF_UNITTEST's expected-message brackets.
//!
//! drivers/of/unittest.c prints `### dt-test ### EXPECT \ : <text>` before provoking a message
//! it wants and `### dt-test ### EXPECT / : <text>` after (the EXPECT_BEGIN / EXPECT_END
//! macros; 6.1 and 6.12 print the same). `<text>` may hold the placeholders `<<int>>`,
//! `<<hex>>` and `<<all>>` (see scripts/dtc/of_unittest_expect). A report whose header line
//! matches an open expectation is expected noise and is not reported. `EXPECT_NOT` brackets
//! (messages that must *not* appear) suppress nothing.

use regex::Regex;

#[derive(Debug, Default)]
pub(crate) struct Expectations {
    open: Vec<(String, Regex)>,
}

/// Builds an anchored regex from an EXPECT text with `<<...>>` placeholders.
fn compile(text: &str) -> Option<Regex> {
    let mut pat = String::from("^");
    let mut rest = text.trim_end();
    while let Some(start) = rest.find("<<") {
        pat.push_str(&regex::escape(&rest[..start]));
        let after = &rest[start + 2..];
        let Some(end) = after.find(">>") else {
            pat.push_str(&regex::escape(&rest[start..]));
            rest = "";
            break;
        };
        pat.push_str(match &after[..end] {
            "int" => r"-?\d+",
            "hex" => r"(?:0x)?[0-9a-fA-F]+",
            "all" => r".*",
            _ => r"\S+",
        });
        rest = &after[end + 2..];
    }
    pat.push_str(&regex::escape(rest));
    pat.push_str(r"\s*$");
    Regex::new(&pat).ok()
}

impl Expectations {
    pub(crate) fn begin(&mut self, text: &str) {
        if let Some(re) = compile(text) {
            self.open.push((text.trim_end().to_string(), re));
        }
    }

    pub(crate) fn end(&mut self, text: &str) {
        let t = text.trim_end();
        if let Some(i) = self.open.iter().rposition(|(raw, _)| raw == t) {
            self.open.remove(i);
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// True when `msg` is an expected message right now.
    pub(crate) fn matches(&self, msg: &str) -> bool {
        self.open.iter().any(|(_, re)| re.is_match(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_nesting() {
        let mut e = Expectations::default();
        e.begin("WARNING: <<all>>");
        e.begin("---[ end trace <<int>> ]---");
        assert!(
            e.matches("WARNING: CPU: 0 PID: 1 at lib/refcount.c:28 refcount_warn_saturate+0x1/0x2")
        );
        assert!(e.matches("---[ end trace 0000000000000000 ]---"));
        assert!(!e.matches("BUG: KASAN: x"));
        e.end("---[ end trace <<int>> ]---");
        assert!(!e.matches("---[ end trace 0000000000000000 ]---"));
        e.end("WARNING: <<all>>");
        assert!(e.is_empty());
        e.begin("OF: ERROR: of_node_release() detected bad of_node_put() on /testcase-data/refcount-node");
        assert!(e.matches("OF: ERROR: of_node_release() detected bad of_node_put() on /testcase-data/refcount-node"));
        assert!(!e.matches("OF: ERROR: of_node_release() detected bad of_node_put() on /other"));
    }
}
