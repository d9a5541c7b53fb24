//! What a replay found, in the right class: a replay whose runs all were rig errors says the
//! replays could not run (exit 125), never "did not reproduce"; runs that could not run are
//! not counted as runs that did not reproduce.

use super::Recorded;
use crate::run::{ScenarioResult, Verdict};

/// How a replay went.
#[derive(Debug, Clone)]
pub struct Replay {
    pub recorded: Recorded,
    pub result: ScenarioResult,
}

/// A title as printed: control characters (a kernel or a record could hold escape sequences)
/// shown escaped.
fn shown(t: &str) -> String {
    t.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

impl Replay {
    /// Repetitions that ran (booted and gave a verdict), as opposed to rig errors.
    pub fn ran(&self) -> usize {
        self.result
            .repetitions
            .iter()
            .filter(|r| r.verdict != Verdict::Infra)
            .count()
    }

    /// The original's failing titles with the runs of the replay that showed each.
    pub fn hits(&self) -> Vec<(String, u32)> {
        self.recorded
            .failing_titles
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    self.result.reproduced.get(t).copied().unwrap_or(0),
                )
            })
            .collect()
    }

    /// The original failure came back: one of its failing titles appeared, or (a run that
    /// failed without a report title) the replay failed too.
    pub fn reproduced(&self) -> bool {
        if self.recorded.failing_titles.is_empty() {
            return self.recorded.verdict.as_deref() == Some("fail")
                && self.result.verdict == Verdict::Fail;
        }
        self.hits().iter().any(|(_, k)| *k > 0)
    }

    /// Documented: 125 when no replay could run; with the original's report damaged, the
    /// replay's own verdict (1 fail, 0 pass); else 1 when the original failure reproduced, 0
    /// when it did not.
    pub fn exit_code(&self) -> i32 {
        use crate::host::exit;
        if self.ran() == 0 {
            exit::INFRA
        } else if self.recorded.report_problem.is_some() {
            if self.result.verdict == Verdict::Fail {
                exit::KERNEL_FAILURE
            } else {
                exit::PASS
            }
        } else if self.reproduced() {
            exit::KERNEL_FAILURE
        } else {
            exit::PASS
        }
    }

    pub fn render(&self) -> String {
        let n = self.result.repetitions.len();
        let ran = self.ran();
        let failed = self
            .result
            .repetitions
            .iter()
            .filter(|r| r.verdict == Verdict::Fail)
            .count();
        let mut s = String::new();
        if ran == 0 {
            s.push_str(&format!(
                "could not replay: none of the {n} runs could run (rig errors, not the kernel)\n"
            ));
            for r in &self.result.repetitions {
                for f in r.step_failures.iter().filter(|f| f.infra) {
                    let first = f.message.lines().next().unwrap_or("");
                    s.push_str(&format!("  run {}: {}: {first}\n", r.index, f.step));
                }
            }
        } else if let Some(problem) = &self.recorded.report_problem {
            s.push_str(&format!(
                "cannot compare with the original run: {problem}\nthe replay failed in {failed} \
                 of {ran} runs\n"
            ));
        } else if self.recorded.failing_titles.is_empty() {
            match self.recorded.verdict.as_deref() {
                Some("fail") if failed > 0 => s.push_str(&format!(
                    "reproduced: the failure (no report title) in {failed} of {ran} runs\n"
                )),
                Some("fail") => s.push_str(&format!("did not reproduce in {ran} runs\n")),
                other => s.push_str(&format!(
                    "the recorded run's verdict was {}: nothing to reproduce; {failed} of {ran} \
                     runs failed\n",
                    other.unwrap_or("unknown")
                )),
            }
        } else if self.reproduced() {
            for (t, k) in self.hits() {
                let t = shown(&t);
                if k > 0 {
                    s.push_str(&format!("reproduced: {t} in {k} of {ran} runs\n"));
                } else {
                    s.push_str(&format!("not seen: {t} in {ran} runs\n"));
                }
            }
        } else {
            s.push_str(&format!("did not reproduce in {ran} runs\n"));
        }
        if ran > 0 && ran < n {
            s.push_str(&format!(
                "note: {ran} of {n} runs could run; the other {} were rig errors (see the \
                 artifacts)\n",
                n - ran
            ));
        }
        for (t, k) in self
            .result
            .reproduced
            .iter()
            .filter(|(t, _)| !self.recorded.failing_titles.contains(t))
        {
            let what = if self.recorded.report_problem.is_some() {
                "seen"
            } else {
                "also seen"
            };
            s.push_str(&format!("{what}: {} in {k} of {ran} runs\n", shown(t)));
        }
        let dir = &self.result.artifacts;
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        s.push_str(&format!("artifacts: {}\n", dir.display()));
        s
    }
}
