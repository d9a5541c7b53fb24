//! Evidence under fire: a run killed in the middle of its repetitions keeps every repetition it
//! finished (`report.json` rewritten after each, `complete: false` until the last), and a run
//! whose disk fills before `report.json` is written still gives its computed verdict.

use super::fault::{Anchor, Moment};
use super::session::{exits_after_signal, Run};
use super::tmpfs::{fill, keep_copy, Tmpfs};
use super::SoakError;
use crate::report::{RunReport, REPORT_FILE};
use std::path::Path;
use std::time::Duration;

/// The title the fake WARNING of the scenario gets.
const TITLE: &str = "WARNING in rig_fake_teardown";

/// A run folder's `report.json`: `Ok(None)` when there is none, `Err` when it is not whole.
fn read_report(folder: &Path) -> Result<Option<RunReport>, String> {
    let path = folder.join(REPORT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{} is not whole: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// What is wrong with the evidence of a `--repeat n` run killed during repetition `k`.
pub(super) fn repetition_problems(folder: &Path, k: usize, n: u32) -> Vec<String> {
    let mut problems = Vec::new();
    let report = match read_report(folder) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let Some(r) = report else {
        if k > 1 {
            problems.push(format!(
                "killed in repetition {k}: no report.json ({} repetitions had finished)",
                k - 1
            ));
        }
        return problems;
    };
    let done = r.repetitions.len();
    if done + 1 < k {
        problems.push(format!(
            "killed in repetition {k}: report.json holds {done} repetitions, {} had finished",
            k - 1
        ));
    }
    if r.complete != (done == n as usize) {
        problems.push(format!(
            "report.json holds {done} of {n} repetitions but says `complete: {}`",
            r.complete
        ));
    }
    for (i, rep) in r.repetitions.iter().enumerate() {
        if rep.index as usize != i + 1 {
            problems.push(format!(
                "report.json's repetition {} is numbered {}",
                i + 1,
                rep.index
            ));
        }
        let log = folder.join(format!("run-{}", i + 1)).join("console.log");
        if !log.is_file() {
            problems.push(format!("finished repetition without {}", log.display()));
        }
    }
    problems
}

/// `rig run --repeat n` SIGKILLed (rig alone or its group) at repetition k + a delay: 137, and
/// the repetitions finished before k are in `report.json` with `complete: false`.
pub(super) fn kill_at_repetition(run: &mut Run<'_>) -> Result<(), SoakError> {
    let Moment::Signal {
        signal,
        group,
        anchor,
        delay_s,
    } = run.plan.moment.clone()
    else {
        return Err(SoakError::Plan {
            what: "kill-at-repetition without a signal".into(),
        });
    };
    let Anchor::Repetition(k) = anchor else {
        return Err(SoakError::Plan {
            what: format!("kill-at-repetition anchored at {anchor}"),
        });
    };
    let n = run.plan.repeat;
    let mut c = run.spawn_warm(Vec::new())?;
    let deadline = c.started + run.deadline();
    let reached =
        c.wait_anchor(anchor, deadline) && c.sleep_alive(Duration::from_secs_f64(delay_s));
    // Every repetition announced: rig may be writing its last report and exiting.
    let late = c.verdicts() >= n as usize;
    run.injected = reached && c.signal(signal, group);
    let expected = exits_after_signal(run.injected, signal, late);
    let rec = run.finish(c, expected);
    if rec.exit == Some(128 + signal) {
        let problems = match &rec.artifacts {
            Some(folder) => repetition_problems(folder, k, n),
            None => vec!["killed rig left no artifacts folder".into()],
        };
        rec.problems.extend(problems);
    }
    Ok(())
}

/// A fake WARNING, then the artifacts filesystem fills during the sleep after it, before
/// `report.json` is written: rig still fails the run (exit 1) and prints the title; a
/// `report.json` that is there is whole, one that is not is said to be missing.
pub(super) fn report_disk_full(run: &mut Run<'_>) -> Result<(), SoakError> {
    let Moment::After { anchor, delay_s } = run.plan.moment.clone() else {
        return Err(SoakError::Plan {
            what: "report-disk-full without a moment".into(),
        });
    };
    let mnt = run.dir.join("artifacts");
    // Room for a boot's console log and events; all of it is taken at the moment.
    let fs = Tmpfs::mount(&mnt, 16 << 20)?;
    let mut c = run.spawn(0, &run.ctx.cache.clone(), &mnt, Vec::new())?;
    let deadline = c.started + run.deadline();
    run.injected =
        c.wait_anchor(anchor, deadline) && c.sleep_alive(Duration::from_secs_f64(delay_s));
    if run.injected {
        fill(&mnt, 0)?;
    }
    let stdout_path = run.dir.join("rig-0.stdout");
    let keep = run.dir.join("artifacts-kept");
    let rec = run.finish(c, vec![1]);
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    if !stdout.contains(TITLE) {
        rec.problems
            .push(format!("rig's stdout does not name `{TITLE}`"));
    }
    if let Some(folder) = rec.artifacts.clone() {
        match read_report(&folder) {
            Err(e) => rec.problems.push(e),
            Ok(Some(r)) if r.verdict != crate::run::Verdict::Fail => rec
                .problems
                .push(format!("report.json says `{}`", r.verdict.word())),
            Ok(Some(_)) => {}
            Ok(None) if !stdout.contains("report.json not written") => rec
                .problems
                .push("no report.json, and rig did not say it could not write it".into()),
            Ok(None) => {}
        }
        // Keep what rig managed to write, for the record (the filler stays behind).
        rec.artifacts = Some(keep_copy(&folder, keep));
    }
    drop(fs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(reps: usize, complete: bool) -> String {
        let r: Vec<serde_json::Value> = (1..=reps)
            .map(|i| serde_json::json!({"index": i, "verdict": "pass"}))
            .collect();
        serde_json::json!({
            "scenario": "s", "board": "arm64-virt", "kernel": "debian-6.1", "verdict": "pass",
            "complete": complete, "repeat": 4, "repetitions": r,
        })
        .to_string()
    }

    fn folder(reps: usize, complete: Option<bool>) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for i in 1..=reps {
            std::fs::create_dir_all(d.path().join(format!("run-{i}"))).unwrap();
            std::fs::write(d.path().join(format!("run-{i}/console.log")), "x").unwrap();
        }
        if let Some(c) = complete {
            std::fs::write(d.path().join(REPORT_FILE), report(reps, c)).unwrap();
        }
        d
    }

    #[test]
    fn a_killed_runs_report_must_hold_what_it_finished() {
        // Killed in repetition 3 of 4: 2 finished (or 3, if the kill came late), incomplete.
        assert!(repetition_problems(folder(2, Some(false)).path(), 3, 4).is_empty());
        assert!(repetition_problems(folder(3, Some(false)).path(), 3, 4).is_empty());
        // In repetition 1 nothing had finished: no report is fine.
        assert!(repetition_problems(folder(0, None).path(), 1, 4).is_empty());
        // Evidence lost: a repetition missing, no report, a report that claims to be whole.
        let lost = repetition_problems(folder(1, Some(false)).path(), 3, 4);
        assert!(
            lost[0].contains("holds 1 repetitions, 2 had finished"),
            "{lost:?}"
        );
        let none = repetition_problems(folder(0, None).path(), 2, 4);
        assert!(none[0].contains("no report.json"), "{none:?}");
        let whole = repetition_problems(folder(2, Some(true)).path(), 3, 4);
        assert!(whole[0].contains("says `complete: true`"), "{whole:?}");
        // All 4 done before the kill landed: complete is right.
        assert!(repetition_problems(folder(4, Some(true)).path(), 4, 4).is_empty());
        // A half-written report.
        let d = folder(2, Some(false));
        std::fs::write(d.path().join(REPORT_FILE), "{\"scenario\": ").unwrap();
        let cut = repetition_problems(d.path(), 3, 4);
        assert!(cut[0].contains("is not whole"), "{cut:?}");
        // A finished repetition without its console log.
        let d = folder(2, Some(false));
        std::fs::remove_file(d.path().join("run-2/console.log")).unwrap();
        let p = repetition_problems(d.path(), 3, 4);
        assert!(p[0].contains("run-2/console.log"), "{p:?}");
    }
}
