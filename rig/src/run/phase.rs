//! When a report was printed: while the kernel booted (up to init's `RIG-READY` line), or
//! while the scenario ran. Boot-time noise (an initcall's splat, the OF unit tests' deliberate
//! errors) is then told apart from what the scenario provoked.

use crate::dmesg::Report;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Printed before init's RIG-READY line (boot) or while the steps ran (scenario). Absent in
/// reports of older rigs (read as scenario).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Printed before the guest was ready (or the guest never became ready).
    Boot,
    /// Printed while the scenario's steps ran.
    #[default]
    Scenario,
}

/// A report with the phase it was printed in (serialized as the report's fields plus `phase`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = |s: &mut schemars::Schema| super::schema_rules::require(s, &[
    "guilty_frame", "timestamp",
]))]
pub struct PhasedReport {
    #[serde(flatten)]
    pub report: Report,
    #[serde(default)]
    pub phase: Phase,
}

impl std::ops::Deref for PhasedReport {
    type Target = Report;
    fn deref(&self) -> &Report {
        &self.report
    }
}

/// Where the boot ended in a console log: the 1-based line of `RIG-READY`, and the last printk
/// timestamp before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ReadyMark {
    line: Option<usize>,
    timestamp: Option<f64>,
}

impl ReadyMark {
    pub(super) fn find(console: &str) -> ReadyMark {
        let mut timestamp = None;
        for (i, l) in console.lines().enumerate() {
            if l.contains("RIG-READY ") {
                return ReadyMark {
                    line: Some(i + 1),
                    timestamp,
                };
            }
            if let Some(t) = printk_time(l) {
                timestamp = Some(t);
            }
        }
        ReadyMark {
            line: None,
            timestamp: None,
        }
    }

    /// The phase of a report found in the console log itself (by line).
    pub(super) fn console(&self, r: Report) -> PhasedReport {
        let phase = match self.line {
            Some(ready) if r.line > ready => Phase::Scenario,
            _ => Phase::Boot,
        };
        PhasedReport { report: r, phase }
    }

    /// The phase of a report found in the guest's `dmesg` (by its printk timestamp).
    pub(super) fn dmesg(&self, r: Report) -> PhasedReport {
        let phase = match (self.line, self.timestamp, r.timestamp) {
            (None, _, _) => Phase::Boot,
            (Some(_), Some(ready), Some(t)) if t <= ready => Phase::Boot,
            _ => Phase::Scenario,
        };
        PhasedReport { report: r, phase }
    }
}

/// `[   12.345678]` at the start of a line (after any terminal noise).
fn printk_time(line: &str) -> Option<f64> {
    let rest = line.trim_start_matches(|c: char| c != '[' && !c.is_ascii_graphic());
    let inner = rest.strip_prefix('[')?;
    let end = inner.find(']')?;
    inner[..end].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(line: usize, timestamp: Option<f64>) -> Report {
        Report {
            title: "t".into(),
            kind: crate::dmesg::ReportKind::Warning,
            guilty_frame: None,
            text: String::new(),
            stack: vec![],
            line,
            end_line: line,
            timestamp,
            corrupted: false,
            corrupted_reason: None,
            trail: vec![],
        }
    }

    #[test]
    fn reports_before_rig_ready_are_boot_time() {
        let log = "[    0.100000] Booting Linux\n[    1.500000] WARNING: at boot\n\
                   RIG-READY 6.12.0-rig\n[    3.000000] WARNING: later\n";
        let m = ReadyMark::find(log);
        assert_eq!(m.console(report(2, Some(1.5))).phase, Phase::Boot);
        assert_eq!(m.console(report(4, Some(3.0))).phase, Phase::Scenario);
        assert_eq!(m.dmesg(report(1, Some(1.5))).phase, Phase::Boot);
        assert_eq!(m.dmesg(report(1, Some(2.0))).phase, Phase::Scenario);
        // A guest that never got ready: everything is boot.
        let m = ReadyMark::find("[    0.1] Booting\n[    0.2] BUG: x\n");
        assert_eq!(m.console(report(2, Some(0.2))).phase, Phase::Boot);
        assert_eq!(m.dmesg(report(9, Some(9.0))).phase, Phase::Boot);
        let json = serde_json::to_value(m.console(report(2, None))).unwrap();
        assert_eq!(json["phase"], "boot");
        assert_eq!(json["title"], "t");
    }
}
