//! `rig soak`: real boots of short scenarios, one fault per run at a seeded random moment, and
//! the checks a nightly matrix needs to trust rig: the exit code is the right class (1 only for
//! kernel-side faults, 125 for host-side ones, 128+N for signals), nothing of the run outlives
//! it (by process group, by QEMU's `-name rig-<run id>` and by the inherited `RIG_RUN_ID`), the
//! artifacts folder has its console log, and a cache filled under fire is never half used and
//! never built twice at once.
//!
//! Each run is a child `rig run` (the real CLI, so the real exit codes) in its own process
//! group, with its own run id and artifacts folder; the soak watches its `events.jsonl` to
//! strike at the planned moment. Faults are in [`fault`], each run's plan in [`plan`]; one run
//! is carried out by [`run`] (hostile input in [`hostile`], evidence under a kill or a full disk
//! in [`evidence`], a `tree:` kernel's identity in [`tree`]). Every choice comes from `--seed`
//! and the run's index, and is recorded in `soak.jsonl`.
//!
//! Besides faults that strike a run, the soak hands rig hostile input (crafted bundles for
//! `rig reproduce`, scenarios whose devices would reach the host), which must be refused
//! (exit 2) before QEMU starts, a build runs or a byte is written outside rig's own folders.

pub mod child;
mod evidence;
pub mod fault;
mod hostile;
pub mod plan;
pub mod procs;
mod run;
mod session;
mod tmpfs;
mod tree;

use crate::host::board::{Arch, Board};
use crate::host::events::{Event, Events};
use fault::Fault;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot mount a tmpfs at {path} (the artifacts-full fault needs root)")]
    Mount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Spawn(#[from] crate::host::process::ProcessError),
    #[error("soak plan: {what}")]
    Plan { what: String },
    #[error("cannot prepare the run: {what}")]
    Prepare { what: String },
    #[error("no runs asked for")]
    NoRuns,
}

/// What to soak.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub runs: usize,
    pub faults: Vec<Fault>,
    pub parallel: usize,
    pub seed: u64,
    pub board: Board,
    pub kernel: String,
    pub accel: String,
    /// The `rig` binary the runs use.
    pub rig: PathBuf,
    /// Where the soak's folder goes (it gets one folder per run).
    pub dir: PathBuf,
    /// The warm cache the runs use (faults that need an empty one make their own).
    pub cache: PathBuf,
}

/// What every run shares.
pub(crate) struct Ctx {
    rig: PathBuf,
    dir: PathBuf,
    cache: PathBuf,
    board: String,
    board_kind: Board,
    arch: Arch,
    kernel: String,
    accel: String,
    /// The soak's run id; a child's is `<this>.<run>.<child>`.
    run_id: String,
}

/// One child rig of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChildRecord {
    pub run_id: String,
    /// Its exit code (128+N when a signal ended it); `None` when it hung and was killed.
    pub exit: Option<i32>,
    pub expected: Vec<i32>,
    pub leaks: Vec<procs::Proc>,
    pub artifacts: Option<PathBuf>,
    pub problems: Vec<String>,
    pub seconds: f64,
}

impl ChildRecord {
    pub fn right(&self) -> bool {
        self.exit.is_some_and(|e| self.expected.contains(&e))
    }
}

/// One run: its fault, when it struck, and what each child rig did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub index: usize,
    pub fault: Fault,
    pub moment: String,
    /// Whether the fault struck (a child that ended before the moment escaped it).
    pub injected: bool,
    pub children: Vec<ChildRecord>,
    /// Problems of the run as a whole (the cache).
    pub problems: Vec<String>,
    pub seconds: f64,
    pub folder: PathBuf,
}

impl RunRecord {
    pub fn right(&self) -> bool {
        !self.children.is_empty() && self.children.iter().all(ChildRecord::right)
    }

    pub fn leaks(&self) -> usize {
        self.children.iter().map(|c| c.leaks.len()).sum()
    }

    /// Evidence or cache problems (not counting verdicts and leaks).
    pub fn problems(&self) -> usize {
        self.problems.len()
            + self
                .children
                .iter()
                .map(|c| c.problems.len())
                .sum::<usize>()
    }

    pub fn ok(&self) -> bool {
        self.right() && self.leaks() == 0 && self.problems() == 0
    }

    fn summary(&self) -> String {
        let exits: Vec<String> = self
            .children
            .iter()
            .map(|c| {
                let got = c.exit.map_or("hung".into(), |e| e.to_string());
                let want: Vec<String> = c.expected.iter().map(|e| e.to_string()).collect();
                format!("exit {got} (want {})", want.join("|"))
            })
            .collect();
        let mut s = format!(
            "run {} {} ({}{}): {}, {} leaks, {:.0}s",
            self.index + 1,
            self.fault,
            self.moment,
            if self.injected { "" } else { "; not reached" },
            exits.join(", "),
            self.leaks(),
            self.seconds
        );
        for c in &self.children {
            for l in &c.leaks {
                s.push_str(&format!("; leaked {} (pid {}, by {})", l.comm, l.pid, l.by));
            }
            for p in &c.problems {
                s.push_str(&format!("; {p}"));
            }
        }
        for p in &self.problems {
            s.push_str(&format!("; {p}"));
        }
        s
    }
}

/// The whole soak.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakReport {
    pub seed: u64,
    pub board: Board,
    pub kernel: String,
    pub runs: Vec<RunRecord>,
    pub folder: PathBuf,
}

/// One line of the table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Row {
    pub runs: usize,
    pub right: usize,
    pub misfiled: usize,
    pub leaks: usize,
    pub problems: usize,
}

impl SoakReport {
    /// Fault → counts, and the total.
    pub fn rows(&self) -> (BTreeMap<Fault, Row>, Row) {
        let mut rows: BTreeMap<Fault, Row> = BTreeMap::new();
        let mut total = Row::default();
        for r in &self.runs {
            for row in [rows.entry(r.fault).or_default(), &mut total] {
                row.runs += 1;
                if r.right() {
                    row.right += 1;
                } else {
                    row.misfiled += 1;
                }
                row.leaks += r.leaks();
                row.problems += r.problems();
            }
        }
        (rows, total)
    }

    /// Every run right, nothing leaked, no evidence or cache problem.
    pub fn ok(&self) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(RunRecord::ok)
    }

    /// The table, as Markdown (it goes into docs/soak.md as is).
    pub fn table(&self) -> String {
        let (rows, total) = self.rows();
        let mut s = String::from(
            "| fault | right verdict | runs | right | misfiled | leaks | evidence/cache problems |\n\
             |---|---|---:|---:|---:|---:|---:|\n",
        );
        for (f, r) in &rows {
            s.push_str(&format!(
                "| `{f}` | {} | {} | {} | {} | {} | {} |\n",
                f.expectation(),
                r.runs,
                r.right,
                r.misfiled,
                r.leaks,
                r.problems
            ));
        }
        s.push_str(&format!(
            "| **total** | | **{}** | **{}** | **{}** | **{}** | **{}** |\n",
            total.runs, total.right, total.misfiled, total.leaks, total.problems
        ));
        s
    }
}

/// Runs the soak; each finished run is a `Verdict` event (`ok` or `PROBLEM`, with its summary).
pub fn soak(opts: &SoakOptions, events: &Events) -> Result<SoakReport, SoakError> {
    if opts.runs == 0 || opts.faults.is_empty() {
        return Err(SoakError::NoRuns);
    }
    std::fs::create_dir_all(&opts.dir).map_err(|source| SoakError::Io {
        path: opts.dir.clone(),
        source,
    })?;
    let parent = crate::host::artifacts::run_id();
    let ctx = Ctx {
        rig: opts.rig.clone(),
        dir: opts.dir.clone(),
        cache: opts.cache.clone(),
        board: opts.board.to_string(),
        board_kind: opts.board,
        arch: opts.board.arch(),
        kernel: opts.kernel.clone(),
        accel: opts.accel.clone(),
        run_id: parent,
    };
    let schedule = fault::schedule(&opts.faults, opts.runs, opts.seed);
    let plans: Vec<fault::Plan> = schedule
        .iter()
        .enumerate()
        .map(|(i, &f)| {
            let nth = schedule[..i].iter().filter(|&&g| g == f).count();
            plan::plan(f, opts.seed, i, nth)
        })
        .collect();
    let log_path = opts.dir.join("soak.jsonl");
    let log = Mutex::new(
        std::fs::File::create(&log_path).map_err(|source| SoakError::Io {
            path: log_path.clone(),
            source,
        })?,
    );
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let records: Mutex<Vec<RunRecord>> = Mutex::new(Vec::new());
    let first_error: Mutex<Option<SoakError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..opts.parallel.max(1) {
            s.spawn(|| loop {
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(plan) = plans.get(i) else {
                    return;
                };
                match run::execute(&ctx, plan) {
                    Ok(rec) => {
                        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                        if let (Ok(mut f), Ok(line)) = (log.lock(), serde_json::to_string(&rec)) {
                            use std::io::Write;
                            let _ = writeln!(f, "{line}");
                        }
                        events.emit(Event::Verdict {
                            verdict: if rec.ok() { "ok" } else { "PROBLEM" }.into(),
                            detail: format!("[{n}/{}] {}", plans.len(), rec.summary()),
                        });
                        if let Ok(mut r) = records.lock() {
                            r.push(rec);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut runs = records.into_inner().unwrap_or_default();
    runs.sort_by_key(|r| r.index);
    let report = SoakReport {
        seed: opts.seed,
        board: opts.board,
        kernel: opts.kernel.clone(),
        runs,
        folder: opts.dir.clone(),
    };
    let table = opts.dir.join("soak.md");
    std::fs::write(&table, report.table()).map_err(|source| SoakError::Io {
        path: table,
        source,
    })?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fault: Fault, exit: i32, expected: i32, leaks: usize) -> RunRecord {
        RunRecord {
            index: 0,
            fault,
            moment: "x".into(),
            injected: true,
            children: vec![ChildRecord {
                run_id: "r".into(),
                exit: Some(exit),
                expected: vec![expected],
                leaks: (0..leaks)
                    .map(|i| procs::Proc {
                        pid: i as i32,
                        pgid: 0,
                        comm: "qemu-system-aar".into(),
                        by: "marker",
                    })
                    .collect(),
                artifacts: None,
                problems: Vec::new(),
                seconds: 1.0,
            }],
            problems: Vec::new(),
            seconds: 1.0,
            folder: "/x".into(),
        }
    }

    #[test]
    fn the_table_counts_misfiled_runs_and_leaks_per_fault() {
        let report = SoakReport {
            seed: 1,
            board: Board::Arm64Virt,
            kernel: "debian-6.1".into(),
            runs: vec![
                rec(Fault::QemuKill, 125, 125, 0),
                rec(Fault::QemuKill, 1, 125, 0),
                rec(Fault::Sigint, 130, 130, 2),
            ],
            folder: "/x".into(),
        };
        let (rows, total) = report.rows();
        assert_eq!(
            rows[&Fault::QemuKill],
            Row {
                runs: 2,
                right: 1,
                misfiled: 1,
                leaks: 0,
                problems: 0
            }
        );
        assert_eq!(rows[&Fault::Sigint].leaks, 2);
        assert_eq!((total.runs, total.misfiled, total.leaks), (3, 1, 2));
        assert!(!report.ok());
        let t = report.table();
        assert!(
            t.contains("| `qemu-kill` | 125 (host-side) | 2 | 1 | 1 | 0 | 0 |"),
            "{t}"
        );
        assert!(
            t.contains("| **total** | | **3** | **2** | **1** | **2** | **0** |"),
            "{t}"
        );
        let good = SoakReport {
            runs: vec![rec(Fault::QemuKill, 125, 125, 0)],
            ..report
        };
        assert!(good.ok());
    }
}
