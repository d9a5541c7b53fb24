//! From what a repetition saw to its verdict: the whole console log (and dmesg) analyzed, the
//! live analyzer's reports where the log is incomplete, triage against the scenario, and the
//! failures of steps; and the repetitions folded into the run's result.

use super::result::{Repetition, ScenarioResult, StepFailure, TriageSummary, Verdict};
use super::{phase, RunError, RunOptions, REPORT_SCHEMA_VERSION};
use crate::dmesg::{self, Report};
use crate::host::artifacts::RunDir;
use crate::host::events::{Event, Events};
use crate::machine::console::LogState;
use crate::machine::vm::ExitCause;
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// What every version of a run's `report.json` shares.
pub(super) struct ResultHeader<'a> {
    pub(super) seed: u64,
    pub(super) scenario: &'a Scenario,
    pub(super) opts: &'a RunOptions,
    pub(super) kernel_release: String,
    pub(super) kernel_provenance: BTreeMap<String, String>,
    pub(super) accel: String,
    pub(super) artifacts: std::path::PathBuf,
}

impl ResultHeader<'_> {
    /// The run's result over the repetitions done so far; `complete` once all are.
    pub(super) fn result(&self, reps: Vec<Repetition>, complete: bool) -> ScenarioResult {
        let mut reproduced: BTreeMap<String, u32> = BTreeMap::new();
        for r in &reps {
            let mut titles: Vec<&str> = r.reports.iter().map(|x| x.title.as_str()).collect();
            titles.sort();
            titles.dedup();
            for t in titles {
                *reproduced.entry(t.to_string()).or_default() += 1;
            }
        }
        let overall = if reps.iter().any(|r| r.verdict == Verdict::Fail) {
            Verdict::Fail
        } else if reps.iter().any(|r| r.verdict == Verdict::Infra) {
            Verdict::Infra
        } else {
            Verdict::Pass
        };
        ScenarioResult {
            schema_version: REPORT_SCHEMA_VERSION,
            seed: self.seed,
            scenario: self.scenario.name.clone(),
            file: self.scenario.file.clone(),
            board: self.opts.machine.board,
            kernel: self.opts.machine.kernel.clone(),
            kernel_release: self.kernel_release.clone(),
            kernel_provenance: self.kernel_provenance.clone(),
            accel: self.accel.clone(),
            verdict: overall,
            complete,
            repeat: self.opts.repeat,
            repetitions: reps,
            reproduced,
            artifacts: self.artifacts.clone(),
            report_error: None,
        }
    }
}

/// Writes `report.json` atomically (a reader never sees half of it, a crash leaves the last
/// whole version).
pub(super) fn write_report(run_dir: &RunDir, result: &ScenarioResult) -> Result<(), RunError> {
    let path = run_dir.file(crate::host::artifacts::REPORT_FILE);
    let text = serde_json::to_string_pretty(result).map_err(|e| RunError::Report {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    crate::host::artifacts::write_atomic(&path, (text + "\n").as_bytes())
        .map_err(|source| RunError::Report { path, source })
}

/// The verdict reads console.log; if the artifacts filesystem refused part of it (full, failing),
/// a kernel report may be missing from it, so the run cannot pass: that is rig's failure.
pub(super) fn console_log_lost(
    dir: &RunDir,
    ready_lost: bool,
    logged: LogState,
    at: &str,
) -> Option<StepFailure> {
    (logged.failed || ready_lost).then(|| StepFailure {
        step: ARTIFACTS_STEP.into(),
        at: at.to_string(),
        message: format!(
            "{} holds {} of the {} bytes the console printed{}: the artifacts filesystem is \
             full or failing, so the log cannot be trusted",
            dir.console_log().display(),
            logged.written,
            logged.seen,
            if ready_lost {
                " (not even RIG-READY)"
            } else {
                ""
            }
        ),
        infra: true,
    })
}

/// Says what the live analyzer found and keeps it.
pub(super) fn keep_reports(events: &Events, live: &Mutex<Vec<Report>>, reports: Vec<Report>) {
    for r in reports {
        events.emit(Event::KernelReport {
            title: r.title.clone(),
            kind: r.kind.to_string(),
        });
        if let Ok(mut l) = live.lock() {
            // The titles are what the verdict needs; a flood of the same report stays one.
            if !l.iter().any(|x| x.title == r.title) {
                l.push(r);
            }
        }
    }
}

/// Analyzes the whole console log (and dmesg), triages, and decides the verdict.
pub(super) struct Finish<'a> {
    pub(super) scenario: &'a Scenario,
    pub(super) kernel: &'a crate::provision::Kernel,
    pub(super) index: u32,
    pub(super) dir: &'a RunDir,
    pub(super) start: Instant,
    /// `console.log` does not hold the whole console stream.
    pub(super) incomplete: Option<Incomplete>,
}

pub(super) struct Incomplete {
    /// It stopped at its cap after this many bytes.
    pub(super) truncated_at: Option<u64>,
    /// What the live analyzer found in the whole stream.
    pub(super) live: Vec<Report>,
}

pub(super) fn finish(
    f: Finish<'_>,
    failures: Vec<StepFailure>,
    dmesg_text: Option<String>,
    exit_cause: Option<ExitCause>,
    (booted, stepped): (Instant, Instant),
) -> Repetition {
    let Finish {
        scenario,
        kernel,
        index,
        dir,
        start,
        incomplete,
    } = f;
    // The whole log, not the live analyzer's results: the live tap starts after RIG-READY, and
    // the verdict must also count splats printed while the kernel booted.
    let console = std::fs::read(dir.console_log()).unwrap_or_default();
    let console_text = String::from_utf8_lossy(&console);
    let mut reports = dmesg::analyze(&console_text);
    let truncated_at = incomplete.and_then(|inc| {
        // What the file lacks, the live analyzer saw.
        for r in inc.live {
            if !reports.iter().any(|x| x.title == r.title) {
                reports.push(r);
            }
        }
        inc.truncated_at
    });
    let mut from_dmesg = Vec::new();
    if let Some(t) = dmesg_text {
        for r in dmesg::analyze(&t) {
            if !reports.iter().any(|x| x.title == r.title) {
                from_dmesg.push(reports.len());
                reports.push(r);
            }
        }
    }
    // A guest that reset or panicked without printing a report still failed: give it the title
    // syzbot gives it. QEMU ending from the host side stays an infra error.
    if let (Some(ExitCause::Guest(reason)), true) = (&exit_cause, reports.is_empty()) {
        reports.push(unexpected_reboot(reason, &console));
    }
    let mut failures = failures;
    if let Some(ExitCause::Guest(reason)) = &exit_cause {
        blame_the_guest(&mut failures, reason);
    }
    // Kernels rig built keep their vmlinux: add file:line to each frame (titles do not change).
    if let (Some(vmlinux), false) = (&kernel.vmlinux, reports.is_empty()) {
        let _ = dmesg::symbolize(&mut reports, vmlinux, kernel.arch.cross_compile());
    }
    let triage: TriageSummary = scenario
        .triage(reports.iter().map(|r| r.title.as_str()))
        .into();
    let ready = phase::ReadyMark::find(&console_text);
    let reports = reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| match from_dmesg.contains(&i) {
            true => ready.dmesg(r),
            false => ready.console(r),
        })
        .collect();
    let kernel_failed = !triage.unexpected.is_empty()
        || !triage.missing.is_empty()
        || failures.iter().any(|f| !f.infra);
    let verdict = if kernel_failed {
        Verdict::Fail
    } else if failures.iter().any(|f| f.infra) {
        Verdict::Infra
    } else {
        Verdict::Pass
    };
    Repetition {
        index,
        verdict,
        reports,
        triage,
        step_failures: failures,
        seconds: start.elapsed().as_secs_f64(),
        boot_seconds: booted.duration_since(start).as_secs_f64(),
        steps_seconds: stepped.duration_since(booted).as_secs_f64(),
        analysis_seconds: stepped.elapsed().as_secs_f64(),
        teardown_seconds: 0.0,
        console_log_truncated_at: truncated_at,
        artifacts: dir.path().to_path_buf(),
        vmcore: None,
    }
}

/// The guest ended itself (panicked, reset, powered off): a step cut short because QEMU was
/// gone failed by the kernel's doing, not rig's. A console log the artifacts filesystem refused
/// stays rig's.
fn blame_the_guest(failures: &mut [StepFailure], reason: &str) {
    for f in failures
        .iter_mut()
        .filter(|f| f.infra && f.step != ARTIFACTS_STEP)
    {
        f.infra = false;
        f.message.push_str(&format!(
            "\n(the guest ended itself first: QEMU's SHUTDOWN reason {reason})"
        ));
    }
}

/// The name of the failure that says the artifacts filesystem lost part of the console log.
const ARTIFACTS_STEP: &str = "artifacts";

/// The report for a guest that ended itself (reset, triple fault, panic without output, power
/// off) with no kernel report on the console: titled `unexpected kernel reboot` as syzbot does;
/// its text is the console's last lines.
fn unexpected_reboot(reason: &str, console: &[u8]) -> Report {
    let text = String::from_utf8_lossy(console);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    Report {
        title: "unexpected kernel reboot".into(),
        kind: dmesg::ReportKind::Reboot,
        guilty_frame: None,
        text: format!("QEMU SHUTDOWN reason: {reason}; the console's last lines:\n{tail}"),
        stack: Vec::new(),
        line: lines.len(),
        end_line: lines.len(),
        timestamp: None,
        corrupted: false,
        corrupted_reason: None,
        trail: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(step: &str, infra: bool) -> StepFailure {
        StepFailure {
            step: step.into(),
            at: "s.yaml:3:5".into(),
            message: "guest command failed: QEMU exited".into(),
            infra,
        }
    }

    #[test]
    fn a_step_cut_short_by_a_guest_that_ended_itself_is_the_kernels() {
        let mut f = vec![
            failure("reload vs del", true),
            failure(ARTIFACTS_STEP, true),
            failure("unplug", false),
        ];
        blame_the_guest(&mut f, "guest-panic");
        assert!(!f[0].infra);
        assert!(f[0].message.ends_with("SHUTDOWN reason guest-panic)"));
        assert!(f[1].infra, "a refused console log stays rig's");
        assert!(!f[2].infra);
        assert_eq!(f[2].message, "guest command failed: QEMU exited");
    }
}
