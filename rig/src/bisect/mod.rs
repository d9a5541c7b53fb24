//! `rig bisect`: the first bad kernel commit for a scenario, with a confidence figure.
//!
//! Built against the ways bisects of flaky races go wrong (syzbot found about half of its early
//! bisections wrong, mostly from flaky reproducers, unrelated crashes and build breakage):
//! - **endpoints first**: `--bad` must reproduce the target title and `--good` must not; the bad
//!   endpoint's runs measure the reproduction rate `p`, from which the runs per commit follow
//!   ([`decide::runs_for`]: a bad commit is missed with probability ≤ 1 %);
//! - **one target title** (given, or the bad endpoint's most frequent): other reports are noise;
//! - **skips**: a commit that does not build, or whose runs are mostly infra errors, is
//!   `git bisect skip`ped; only skips left → the candidate range, said plainly;
//! - **confidence** ([`decide::confidence`]), and flags for a culprit that is a merge or whose
//!   image is byte-identical to its parent's (a no-op change: suspicious);
//! - `--verify-revert` reverts the culprit on top of `--bad` and shows the title gone.
//!
//! The git side works in a worktree in rig's cache ([`git`]); every tested commit is a line of
//! `log.jsonl` as it happens, and `--resume` replays it. The build/boot machinery is behind
//! [`Oracle`], so the decision logic is tested against scripted oracles on real git repos.

pub mod decide;
pub mod fixture;
pub mod git;
mod oracle;
mod record;

pub use oracle::KernelOracle;
use record::LogEntry;
pub use record::{BisectResult, Culprit, Log, Tested};

use decide::{Runs, Verdict};
use git::{GitError, Step, Worktree};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(
        "the bad endpoint {commit} did not reproduce{}: {runs} runs, no report{}",
        .title.as_ref().map(|t| format!(" `{t}`")).unwrap_or_default(),
        if *.infra > 0 { format!(" ({} infra errors)", .infra) } else { String::new() }
    )]
    BadDoesNotReproduce {
        commit: String,
        title: Option<String>,
        runs: u32,
        infra: u32,
    },
    #[error(
        "the good endpoint {commit} reproduces `{title}` ({hits} of {runs} runs): it is not good"
    )]
    GoodReproduces {
        commit: String,
        title: String,
        hits: u32,
        runs: u32,
    },
    #[error("the {which} endpoint {commit} cannot be tested: {why}")]
    EndpointUntestable {
        which: &'static str,
        commit: String,
        why: String,
    },
    #[error("{0}")]
    Infra(String),
    #[error("interrupted by signal {signal}: nothing recorded for the commit being tested")]
    Interrupted { signal: i32 },
    #[error(transparent)]
    Cache(#[from] crate::host::cache::CacheError),
    #[error("cannot write the bisect log {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BisectError {
    /// The documented exit code: 2 for input that does not make a bisect, 125 for rig's side.
    pub fn exit_code(&self) -> i32 {
        crate::host::exit::Classify::exit_class(self).code()
    }
}

/// A commit that built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Built {
    pub seconds: f64,
    pub image_sha256: String,
}

/// One run of the scenario on a built commit.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// The run happened; these report titles appeared (its artifacts in `dir`).
    Ran { titles: Vec<String>, dir: PathBuf },
    /// rig could not carry it out (exit 125).
    Infra { why: String },
}

/// The build/boot machinery a bisect asks about the commit checked out in its worktree.
pub trait Oracle {
    /// Builds the commit. `Ok(Err(why))`: it does not build (skipped); `Err`: rig failed.
    fn build(&mut self, commit: &str) -> Result<Result<Built, String>, String>;
    /// Runs the scenario once on the last built commit; `Err`: rig failed beyond one run.
    fn run(&mut self, commit: &str, index: u32) -> Result<RunOutcome, String>;
}

/// What a bisect is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub good: String,
    pub bad: String,
    /// Runs per commit; `None`: from the bad endpoint's rate.
    pub runs: Option<u32>,
    /// Runs that measure the bad endpoint's rate when `runs` is not given.
    pub measure_runs: u32,
    pub title: Option<String>,
    pub verify_revert: bool,
    /// Below this confidence the result is inconclusive (exit 1).
    pub min_confidence: f64,
}

/// A build or run that ended after rig caught a signal says nothing about the commit (the
/// handler killed make or QEMU): stop before it becomes a verdict.
fn interrupted() -> Result<(), BisectError> {
    match crate::host::process::caught_signal() {
        Some(signal) => Err(BisectError::Interrupted { signal }),
        None => Ok(()),
    }
}

/// Tests the commit checked out in `wt`: build, then up to `n` runs, stopping at the first that
/// shows `target` (when given). Without a target (the bad endpoint's measurement) every run is
/// done and its titles kept.
fn test(
    wt: &Worktree,
    oracle: &mut dyn Oracle,
    commit: &str,
    role: &str,
    n: u32,
    target: Option<&str>,
    titles_per_run: &mut Vec<Vec<String>>,
) -> Result<Tested, BisectError> {
    let subject = wt.subject(commit)?;
    let build = oracle.build(commit).map_err(BisectError::Infra)?;
    interrupted()?;
    let mut runs = Runs::default();
    let mut reproducer = None;
    let built = match build {
        Err(why) => {
            return Ok(Tested {
                commit: commit.into(),
                subject,
                role: role.into(),
                verdict: Verdict::Skip(format!("does not build: {why}")),
                build: None,
                runs,
                reproducer,
            })
        }
        Ok(b) => b,
    };
    for i in 1..=n {
        runs.runs += 1;
        let outcome = oracle.run(commit, i).map_err(BisectError::Infra)?;
        interrupted()?;
        match outcome {
            RunOutcome::Infra { .. } => runs.infra += 1,
            RunOutcome::Ran { titles, dir } => {
                let hit = target.is_some_and(|t| titles.iter().any(|x| x == t));
                for t in &titles {
                    if Some(t.as_str()) != target {
                        runs.noise.push(t.clone());
                    }
                }
                titles_per_run.push(titles);
                if hit {
                    runs.hits += 1;
                    reproducer.get_or_insert(dir);
                    break;
                }
            }
        }
    }
    Ok(Tested {
        commit: commit.into(),
        subject,
        role: role.into(),
        verdict: decide::judge(&runs),
        build: Some(built),
        runs,
        reproducer,
    })
}

/// Runs the bisect in `wt` (a worktree of the repository) with `oracle`, logging to `log`.
pub fn bisect(
    wt: &Worktree,
    oracle: &mut dyn Oracle,
    plan: &Plan,
    log: &mut Log,
) -> Result<BisectResult, BisectError> {
    let mut evidence: Vec<Tested> = Vec::new();
    let resumed_target = log.past.iter().find_map(|e| match e {
        LogEntry::Target { title, p, runs } => Some((title.clone(), *p, *runs)),
        _ => None,
    });

    // Endpoints: the bad one measures p (and names the target), the good one must be clean.
    let (target, p, n) = match resumed_target {
        Some(t) => {
            evidence.extend(log.recorded("bad-endpoint", &plan.bad));
            evidence.extend(log.recorded("good-endpoint", &plan.good));
            t
        }
        None => {
            wt.checkout(&plan.bad)?;
            let mut titles = Vec::new();
            let measure = plan.runs.unwrap_or(plan.measure_runs).max(1);
            // With a title given, the measurement still does every run (p needs them all).
            let mut bad = test(
                wt,
                oracle,
                &plan.bad,
                "bad-endpoint",
                measure,
                None,
                &mut titles,
            )?;
            if let Verdict::Skip(why) = &bad.verdict {
                if bad.build.is_none() {
                    return Err(BisectError::EndpointUntestable {
                        which: "bad",
                        commit: plan.bad.clone(),
                        why: why.clone(),
                    });
                }
            }
            let target = plan
                .title
                .clone()
                .or_else(|| decide::target_title(titles.iter().map(|v| v.as_slice())));
            let hits = target.as_ref().map_or(0, |t| {
                titles.iter().filter(|run| run.contains(t)).count() as u32
            });
            let Some(target) = target.filter(|_| hits > 0) else {
                return Err(BisectError::BadDoesNotReproduce {
                    commit: plan.bad.clone(),
                    title: plan.title.clone(),
                    runs: bad.runs.runs,
                    infra: bad.runs.infra,
                });
            };
            bad.runs.hits = hits;
            bad.runs.noise.retain(|t| *t != target);
            bad.verdict = Verdict::Bad;
            let valid = bad.runs.valid().max(1);
            let p = f64::from(hits) / f64::from(valid);
            let n = plan
                .runs
                .unwrap_or_else(|| decide::runs_for(p, decide::MISS_PROBABILITY));
            log.write(&LogEntry::Target {
                title: target.clone(),
                p,
                runs: n,
            })?;
            log.write(&LogEntry::Tested(bad.clone()))?;
            evidence.push(bad);

            wt.checkout(&plan.good)?;
            let good = test(
                wt,
                oracle,
                &plan.good,
                "good-endpoint",
                n,
                Some(&target),
                &mut Vec::new(),
            )?;
            log.write(&LogEntry::Tested(good.clone()))?;
            match &good.verdict {
                Verdict::Bad => {
                    return Err(BisectError::GoodReproduces {
                        commit: plan.good.clone(),
                        title: target,
                        hits: good.runs.hits,
                        runs: good.runs.valid(),
                    })
                }
                Verdict::Skip(why) => {
                    return Err(BisectError::EndpointUntestable {
                        which: "good",
                        commit: plan.good.clone(),
                        why: why.clone(),
                    })
                }
                Verdict::Good => {}
            }
            evidence.push(good);
            (target, p, n)
        }
    };

    // The bisect proper, replaying what a resumed log already decided.
    let mut step = wt.start(&plan.bad, &plan.good)?;
    let (culprit, candidates) = loop {
        match step {
            Step::Found(c) => break (Some(c), Vec::new()),
            Step::OnlySkipped(list) => break (None, list),
            Step::Test(commit) => {
                let tested = match log.recorded("step", &commit) {
                    Some(t) => t,
                    None => {
                        let t = test(
                            wt,
                            oracle,
                            &commit,
                            "step",
                            n,
                            Some(&target),
                            &mut Vec::new(),
                        )?;
                        log.write(&LogEntry::Tested(t.clone()))?;
                        t
                    }
                };
                step = wt.mark(tested.verdict.git_word(), &commit)?;
                evidence.push(tested);
            }
        }
    };
    wt.finish(&plan.bad)?;

    let confidence = decide::confidence(
        p,
        evidence
            .iter()
            .filter(|t| t.verdict == Verdict::Good)
            .map(|t| t.runs.valid()),
    );
    let culprit = match culprit {
        None => None,
        Some(commit) => Some(describe_culprit(wt, oracle, &commit, &mut evidence, log)?),
    };
    let revert = match (&culprit, plan.verify_revert) {
        (Some(c), true) => Some(verify_revert(wt, oracle, plan, &c.commit, n, &target, log)?),
        _ => None,
    };
    Ok(BisectResult {
        target,
        p,
        runs_per_commit: n,
        miss_chance: decide::miss_chance(p, n),
        culprit,
        candidates,
        confidence,
        revert,
        evidence,
        min_confidence: plan.min_confidence,
    })
}

/// The culprit's subject, whether it is a merge, and whether its image equals its parent's
/// (building the parent when the bisect did not).
fn describe_culprit(
    wt: &Worktree,
    oracle: &mut dyn Oracle,
    commit: &str,
    evidence: &mut Vec<Tested>,
    log: &mut Log,
) -> Result<Culprit, BisectError> {
    let parents = wt.parents(commit)?;
    let image_of = |c: &str, ev: &[Tested]| {
        ev.iter()
            .find(|t| t.commit == c)
            .and_then(|t| t.build.as_ref())
            .map(|b| b.image_sha256.clone())
    };
    let mut culprit_image = image_of(commit, evidence);
    if culprit_image.is_none() {
        wt.checkout(commit)?;
        culprit_image = oracle
            .build(commit)
            .map_err(BisectError::Infra)?
            .ok()
            .map(|b| b.image_sha256);
    }
    let same_image_as_parent = match (parents.as_slice(), culprit_image) {
        ([parent], Some(img)) => {
            let parent_image = match image_of(parent, evidence) {
                Some(i) => Some(i),
                None => {
                    wt.checkout(parent)?;
                    let built = oracle.build(parent).map_err(BisectError::Infra)?;
                    let t = Tested {
                        commit: parent.clone(),
                        subject: wt.subject(parent)?,
                        role: "parent".into(),
                        verdict: Verdict::Skip("built only to compare images".into()),
                        build: built.clone().ok(),
                        runs: Runs::default(),
                        reproducer: None,
                    };
                    log.write(&LogEntry::Tested(t.clone()))?;
                    evidence.push(t);
                    built.ok().map(|b| b.image_sha256)
                }
            };
            parent_image.map(|pi| pi == img)
        }
        _ => None,
    };
    wt.checkout(commit)?;
    Ok(Culprit {
        commit: commit.to_string(),
        subject: wt.subject(commit)?,
        merge: parents.len() > 1,
        same_image_as_parent,
        reproducer: evidence
            .iter()
            .find(|t| t.commit == commit)
            .and_then(|t| t.reproducer.clone()),
    })
}

/// Reverts the culprit on top of the bad endpoint and tests that: none of `n` runs may show the
/// target (the bad endpoint itself, without the revert, showed it).
fn verify_revert(
    wt: &Worktree,
    oracle: &mut dyn Oracle,
    plan: &Plan,
    culprit: &str,
    n: u32,
    target: &str,
    log: &mut Log,
) -> Result<Tested, BisectError> {
    let reverted = match wt.revert_on(&plan.bad, culprit) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Tested {
                commit: culprit.to_string(),
                subject: "revert".into(),
                role: "revert".into(),
                verdict: Verdict::Skip(format!("the revert does not apply: {e}")),
                build: None,
                runs: Runs::default(),
                reproducer: None,
            })
        }
    };
    let t = test(
        wt,
        oracle,
        &reverted,
        "revert",
        n,
        Some(target),
        &mut Vec::new(),
    )?;
    log.write(&LogEntry::Tested(t.clone()))?;
    wt.checkout(&plan.bad)?;
    Ok(t)
}

/// `rig bisect`'s request.
pub struct Request<'a> {
    pub tree: PathBuf,
    pub good: String,
    pub bad: String,
    pub scenario: &'a crate::scenario::Scenario,
    pub board: crate::host::board::Board,
    pub flavor: String,
    pub accel: crate::machine::spec::AccelChoice,
    pub runs: Option<u32>,
    pub title: Option<String>,
    pub resume: bool,
    pub verify_revert: bool,
    pub min_confidence: f64,
}

/// Where a bisect keeps its worktree and log: `<cache>/bisect/<key>/`, the key being the tree,
/// the endpoints, the scenario, the board and the flavor (so `--resume` finds it again).
pub fn state_dir(
    req: &Request<'_>,
    good: &str,
    bad: &str,
    cache: &crate::host::cache::Cache,
) -> PathBuf {
    let tree = req.tree.canonicalize().unwrap_or_else(|_| req.tree.clone());
    let mut k = crate::host::cache::CacheKey::new("bisect");
    k.str("tree", &tree.to_string_lossy())
        .str("good", good)
        .str("bad", bad)
        .str("scenario", &req.scenario.file)
        .str("board", req.board.name())
        .str("flavor", &req.flavor);
    cache.root().join("bisect").join(k.short())
}

/// Runs `rig bisect`: resolves the endpoints in the user's tree, bisects in a worktree of rig's
/// cache with the real oracle, keeps every run's artifacts under `runs_dir`, and writes
/// `bisect.jsonl` (a copy of the log) and `result.json` there.
pub fn run(
    req: &Request<'_>,
    cache: &crate::host::cache::Cache,
    runs_dir: &crate::host::artifacts::RunDir,
    events: &crate::host::events::Events,
) -> Result<BisectResult, BisectError> {
    let repo = git::Repo::open(&req.tree)?;
    let good = repo.resolve(&req.good)?;
    let bad = repo.resolve(&req.bad)?;
    let dir = state_dir(req, &good, &bad, cache);
    let wt = repo.worktree(&dir.join("worktree"), &bad)?;
    let mut log = Log::open(&dir.join("log.jsonl"), req.resume)?;
    events.emit(crate::host::events::Event::StepStarted {
        step: "bisect".into(),
        detail: format!(
            "{}..{} in {} (log: {})",
            &good[..12],
            &bad[..12],
            wt.path.display(),
            log.path().display()
        ),
    });
    let mut oracle = KernelOracle {
        worktree: wt.path.clone(),
        flavor: req.flavor.clone(),
        board: req.board,
        accel: req.accel,
        scenario: req.scenario,
        cache,
        events,
        runs_dir: runs_dir.clone(),
    };
    let plan = Plan {
        good,
        bad,
        runs: req.runs,
        measure_runs: 10,
        title: req.title.clone(),
        verify_revert: req.verify_revert,
        min_confidence: req.min_confidence,
    };
    let result = bisect(&wt, &mut oracle, &plan, &mut log);
    let _ = std::fs::copy(log.path(), runs_dir.file("bisect.jsonl"));
    let result = result?;
    if let Ok(text) = serde_json::to_string_pretty(&result) {
        let _ = crate::host::artifacts::write_atomic(
            &runs_dir.file("result.json"),
            (text + "\n").as_bytes(),
        );
    }
    Ok(result)
}

#[cfg(test)]
mod tests;
