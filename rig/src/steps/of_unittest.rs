//! `of_unittest`: the verdict of CONFIG_OF_UNITTEST. The unit tests run while the kernel boots
//! and end with `### dt-test ### end of unittest - N passed, M failed`; each failure is a
//! `### dt-test ### FAIL <function>():<line> <message>` line before it. The deliberate errors
//! between `EXPECT \ :` and `EXPECT / :` brackets are the analyzer's business (expected noise).

use super::check::{Check, Ids, R};
use super::engine::log::Waited;
use super::engine::{Engine, StepError};
use super::kind::{InParallel, Kind, RawKind};
use super::scalars::HumanDuration;
use super::wait::WAIT_LOG_TIMEOUT;
use super::{Feature, Step, StepKind, Within};
use rig_yaml::Path;
use serde::Deserialize;
use std::time::{Duration, Instant};

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an of_unittest step: {timeout, name}"
)]
pub struct RawOfUnittest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

/// The verdict of CONFIG_OF_UNITTEST, which runs while the kernel boots: waits for
/// `### dt-test ### end of unittest - N passed, M failed` and fails when M > 0.
#[derive(Debug, Clone)]
pub struct OfUnittestStep {
    pub timeout: Duration,
}

impl RawKind for RawOfUnittest {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::OfUnittest)
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Never
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let step = OfUnittestStep {
            timeout: cx.duration(self.timeout, WAIT_LOG_TIMEOUT, &kp.key("timeout"))?,
        };
        Ok((cx.name(self.name, kp)?, StepKind::OfUnittest(step)))
    }
}

impl Kind for OfUnittestStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    /// Waits for the unit tests' end line in the log since boot and turns it into the step's
    /// outcome.
    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let deadline = Instant::now() + self.timeout.min(e.remaining());
        let mut reader = Reader::default();
        match e.log().wait(0, deadline, |l| reader.line(l)) {
            Waited::Found(o) => o.verdict().map_err(StepError::Kernel),
            Waited::Closed => Err(e.console_closed()),
            Waited::Timeout => Err(StepError::Kernel(format!(
                "the OF unit tests printed no `end of unittest` line within {:?} (is \
                 CONFIG_OF_UNITTEST on and the tree live?)",
                self.timeout
            ))),
        }
    }
}

/// What the unit tests said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcome {
    pub(super) passed: u32,
    pub(super) failed: u32,
    /// The `FAIL` lines, without the marker.
    pub(super) failures: Vec<String>,
}

const MARK: &str = "### dt-test ### ";

/// Reads the unit tests' lines one at a time.
#[derive(Default)]
pub(super) struct Reader {
    failures: Vec<String>,
}

impl Reader {
    /// Takes the next log line; the outcome once it is the end line.
    pub(super) fn line(&mut self, line: &str) -> Option<Outcome> {
        let at = line.find(MARK)?;
        let msg = line[at + MARK.len()..].trim_end_matches('\r').trim_end();
        if let Some(f) = msg.strip_prefix("FAIL ") {
            self.failures.push(f.to_string());
        } else if let Some(rest) = msg.strip_prefix("end of unittest - ") {
            // `N passed, M failed`
            let mut nums = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<u32>());
            if let (Some(Ok(passed)), Some(Ok(failed))) = (nums.next(), nums.next()) {
                return Some(Outcome {
                    passed,
                    failed,
                    failures: std::mem::take(&mut self.failures),
                });
            }
        }
        None
    }
}

/// The unit tests' outcome in a console log, once their end line is there.
#[cfg(test)]
fn parse(log: &str) -> Option<Outcome> {
    let mut r = Reader::default();
    log.lines().find_map(|l| r.line(l))
}

impl Outcome {
    /// `Err` with the failures when any test failed.
    pub(super) fn verdict(&self) -> Result<(), String> {
        if self.failed == 0 {
            return Ok(());
        }
        let mut msg = format!(
            "{} of {} OF unit tests failed",
            self.failed,
            self.passed + self.failed
        );
        for f in self.failures.iter().take(5) {
            msg.push_str(&format!("\n  FAIL {f}"));
        }
        if self.failures.len() > 5 {
            msg.push_str(&format!("\n  ... {} more", self.failures.len() - 5));
        }
        Err(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_line_gives_the_counts_and_fail_lines_are_kept() {
        let log = "[    1.0] ### dt-test ### start of unittest - you will see error messages\n\
                   [    1.1] ### dt-test ### EXPECT \\ : OF: overlay: ERROR: x\n\
                   [    1.2] OF: overlay: ERROR: x\n\
                   [    1.3] ### dt-test ### EXPECT / : OF: overlay: ERROR: x\n\
                   [    1.4] ### dt-test ### FAIL of_unittest_pci_node():4089 No test PCI device been found. Please run QEMU with '-device pci-testdev'\r\n\
                   [    1.5] ### dt-test ### end of unittest - 355 passed, 1 failed\n";
        let o = parse(log).unwrap();
        assert_eq!((o.passed, o.failed), (355, 1));
        assert_eq!(o.failures.len(), 1);
        let e = o.verdict().unwrap_err();
        assert!(e.starts_with("1 of 356 OF unit tests failed"), "{e}");
        assert!(
            e.contains("FAIL of_unittest_pci_node():4089 No test PCI"),
            "{e}"
        );

        let ok = parse("### dt-test ### end of unittest - 356 passed, 0 failed").unwrap();
        assert_eq!(ok.verdict(), Ok(()));
        assert_eq!(parse("[ 1.0] ### dt-test ### start of unittest"), None);
        assert_eq!(parse(""), None);
    }
}
