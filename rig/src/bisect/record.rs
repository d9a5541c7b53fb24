//! What a bisect records: each tested commit ([`Tested`]), the step log `log.jsonl` ([`Log`],
//! replayed by `--resume`) and the outcome ([`BisectResult`]) with its rendering.

use super::decide::{Runs, Verdict};
use super::{BisectError, Built};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One tested commit, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tested {
    pub commit: String,
    pub subject: String,
    /// `bad-endpoint`, `good-endpoint`, `step`, `revert` or `parent`.
    pub role: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub build: Option<Built>,
    pub runs: Runs,
    /// A run that showed the target (its artifacts folder).
    pub reproducer: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub(super) enum LogEntry {
    Target { title: String, p: f64, runs: u32 },
    Tested(Tested),
}

#[derive(Debug, Clone, Serialize)]
pub struct Culprit {
    pub commit: String,
    pub subject: String,
    pub merge: bool,
    /// The culprit's kernel image is byte-identical to its parent's (`None`: not known).
    pub same_image_as_parent: Option<bool>,
    pub reproducer: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BisectResult {
    pub target: String,
    /// The bad endpoint's reproduction rate.
    pub p: f64,
    pub runs_per_commit: u32,
    /// The chance that one good verdict missed a bad commit: `(1 − p)^n`.
    pub miss_chance: f64,
    pub culprit: Option<Culprit>,
    /// With only skipped commits left: the first bad one is among these.
    pub candidates: Vec<String>,
    pub confidence: f64,
    /// `--verify-revert`: the revert's runs (none may show the target).
    pub revert: Option<Tested>,
    pub evidence: Vec<Tested>,
    pub min_confidence: f64,
}

impl BisectResult {
    /// 0: a culprit with enough confidence (and, when asked, a revert that cures it);
    /// 1: inconclusive.
    pub fn exit_code(&self) -> i32 {
        let revert_ok = self
            .revert
            .as_ref()
            .is_none_or(|r| r.verdict == Verdict::Good);
        if self.culprit.is_some() && self.confidence >= self.min_confidence && revert_ok {
            crate::host::exit::PASS
        } else {
            crate::host::exit::KERNEL_FAILURE
        }
    }

    /// What the bisect cost: kernels built, their build time, scenario runs (boots).
    pub fn cost(&self) -> (usize, f64, u32) {
        let builds: Vec<&Built> = self
            .evidence
            .iter()
            .chain(self.revert.iter())
            .filter_map(|t| t.build.as_ref())
            .collect();
        let seconds = builds.iter().map(|b| b.seconds).sum();
        let runs = self
            .evidence
            .iter()
            .chain(self.revert.iter())
            .map(|t| t.runs.runs)
            .sum();
        (builds.len(), seconds, runs)
    }

    /// The human summary.
    pub fn render(&self) -> String {
        let mut s = format!(
            "target: {}\nrate on the bad endpoint: p = {:.2}; {} runs per commit miss a bad commit \
             with probability {:.4}\n",
            self.target, self.p, self.runs_per_commit, self.miss_chance
        );
        for t in &self.evidence {
            s.push_str(&format!(
                "  {} {:<13} {:<5} {} of {} runs{}  {}\n",
                &t.commit[..12.min(t.commit.len())],
                t.role,
                t.verdict.git_word(),
                t.runs.hits,
                t.runs.valid(),
                if t.runs.infra > 0 {
                    format!(" (+{} infra)", t.runs.infra)
                } else {
                    String::new()
                },
                t.subject
            ));
            if let Verdict::Skip(why) = &t.verdict {
                s.push_str(&format!("      skipped: {why}\n"));
            }
        }
        match &self.culprit {
            Some(c) => {
                s.push_str(&format!(
                    "first bad commit: {} {}\nconfidence: {:.3}{}\n",
                    c.commit,
                    c.subject,
                    self.confidence,
                    if self.confidence < self.min_confidence {
                        format!(" (below {:.2}: inconclusive)", self.min_confidence)
                    } else {
                        String::new()
                    }
                ));
                if c.merge {
                    s.push_str("note: the culprit is a merge commit\n");
                }
                if c.same_image_as_parent == Some(true) {
                    s.push_str(
                        "note: the culprit's kernel image is byte-identical to its parent's: \
                         a no-op change, so the verdict is suspicious\n",
                    );
                }
                if let Some(r) = &c.reproducer {
                    // The run's kernel is a tree kernel: rig rebuilds it only from a tree the
                    // user names, with the same source identity.
                    s.push_str(&format!(
                        "reproduce: rig reproduce {} --tree TREE  (TREE: a clean checkout of {})\n",
                        r.display(),
                        &c.commit[..12.min(c.commit.len())]
                    ));
                }
            }
            None if !self.candidates.is_empty() => s.push_str(&format!(
                "inconclusive: only skipped commits are left; the first bad commit is one of:\n  {}\n",
                self.candidates.join("\n  ")
            )),
            None => s.push_str("inconclusive: no culprit\n"),
        }
        if let Some(r) = &self.revert {
            s.push_str(&format!(
                "revert on top of the bad endpoint: the target appeared in {} of {} runs ({})\n",
                r.runs.hits,
                r.runs.valid(),
                if r.verdict == Verdict::Good {
                    "the revert cures it"
                } else {
                    "NOT cured"
                }
            ));
        }
        s
    }
}

/// The step log (JSON lines). Each decided commit is one line, written whole with a single
/// `write` and fsynced before the bisect moves on, so a kill, a crash or a full disk loses at
/// most the line being written; `--resume` drops a torn last line. Nothing is written once rig
/// has caught a signal: a verdict reached while rig was being stopped (a build or a run cut
/// short) is not evidence.
pub struct Log {
    path: PathBuf,
    file: std::fs::File,
    pub(super) past: Vec<LogEntry>,
}

impl Log {
    /// Opens `path`: with `resume`, keeps and replays what is there; else starts afresh.
    pub fn open(path: &Path, resume: bool) -> Result<Log, BisectError> {
        let err = |source| BisectError::Log {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let past = if resume {
            let text = match std::fs::read(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(err(e)),
            };
            // A line without its newline was cut short (killed mid-write): drop it, so the
            // next entry starts on a line of its own.
            let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if whole < text.len() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(err)?;
                f.set_len(whole as u64)
                    .and_then(|()| f.sync_data())
                    .map_err(err)?;
            }
            String::from_utf8_lossy(&text[..whole])
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        } else {
            if path.exists() {
                let _ = std::fs::rename(path, path.with_extension("jsonl.old"));
            }
            Vec::new()
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        // The file's name must survive a crash too.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        Ok(Log {
            path: path.to_path_buf(),
            file,
            past,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn write(&mut self, e: &LogEntry) -> Result<(), BisectError> {
        if let Some(signal) = crate::host::process::caught_signal() {
            return Err(BisectError::Interrupted { signal });
        }
        let mut line = serde_json::to_string(e).unwrap_or_default();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|source| BisectError::Log {
                path: self.path.clone(),
                source,
            })
    }

    pub(super) fn recorded(&self, role: &str, commit: &str) -> Option<Tested> {
        self.past.iter().find_map(|e| match e {
            LogEntry::Tested(t) if t.role == role && t.commit == commit => Some(t.clone()),
            _ => None,
        })
    }
}
