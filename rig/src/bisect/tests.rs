//! The bisect driver against scripted oracles on real git repositories: the oracle reads the
//! worktree (a `bug` file makes a commit bad, a `broken` file makes it not build, `rate` sets
//! how often a bad commit shows the report), so git's checkouts decide what it sees.

use super::git::tests::repo_with;
use super::git::Repo;
use super::*;
use std::path::Path;
use std::process::Command;

/// A file written (`Some(content)`) or removed (`None`) by a commit.
type Change<'a> = (&'a str, Option<&'a str>);
/// A commit: its subject and changes.
type Commit<'a> = (&'a str, &'a [Change<'a>]);

/// A history of `commits` on top of a base commit.
fn history(dir: &Path, commits: &[Commit<'_>]) -> (Repo, Vec<String>) {
    let (repo, mut hashes) = repo_with(dir, &["base"]);
    for (subject, files) in commits {
        for (name, content) in *files {
            match content {
                Some(c) => std::fs::write(dir.join(name), c).unwrap(),
                None => std::fs::remove_file(dir.join(name)).unwrap(),
            }
        }
        let run = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        run(&["add", "-A"]);
        run(&["commit", "-q", "-m", subject]);
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap();
        hashes.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    (repo, hashes)
}

const TARGET: &str = "OF: ERROR: memory leak in /soc/n";
const NOISE: &str = "WARNING in unrelated";

/// Reads the worktree like a kernel build and a scenario would.
struct Scripted {
    wt: PathBuf,
    builds: u32,
    runs: u32,
    /// Fail (rig error) after this many builds: an interrupted bisect.
    crash_after_builds: Option<u32>,
}

impl Scripted {
    fn new(wt: &Path) -> Scripted {
        Scripted {
            wt: wt.to_path_buf(),
            builds: 0,
            runs: 0,
            crash_after_builds: None,
        }
    }
    fn has(&self, f: &str) -> bool {
        self.wt.join(f).exists()
    }
}

impl Oracle for Scripted {
    fn build(&mut self, _commit: &str) -> Result<Result<Built, String>, String> {
        if self.crash_after_builds == Some(self.builds) {
            return Err("interrupted".into());
        }
        self.builds += 1;
        if self.has("broken") {
            return Ok(Err("error: expected ';' before '}' token".into()));
        }
        // The "image" is what `file` and `lib` hold: a commit changing only others is a no-op.
        let read = |f: &str| std::fs::read_to_string(self.wt.join(f)).unwrap_or_default();
        Ok(Ok(Built {
            seconds: 1.0,
            image_sha256: format!("{}|{}", read("file").trim(), read("lib").trim()),
        }))
    }

    fn run(&mut self, commit: &str, index: u32) -> Result<RunOutcome, String> {
        self.runs += 1;
        let rate: u32 = std::fs::read_to_string(self.wt.join("rate"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100);
        // Deterministic "randomness" per commit content and run (commit hashes change with
        // the clock, contents do not).
        let content = format!(
            "{}{}",
            std::fs::read_to_string(self.wt.join("file")).unwrap_or_default(),
            std::fs::read_to_string(self.wt.join("lib")).unwrap_or_default()
        );
        let h = content
            .bytes()
            .fold(index.wrapping_mul(2654435761), |a, b| {
                (a.rotate_left(5) ^ u32::from(b)).wrapping_mul(16777619)
            });
        let mut titles = Vec::new();
        if self.has("bug") && h % 100 < rate {
            titles.push(TARGET.to_string());
        }
        if self.has("noisy") {
            titles.push(NOISE.to_string());
        }
        if self.has("infra") {
            return Ok(RunOutcome::Infra {
                why: "QEMU killed".into(),
            });
        }
        Ok(RunOutcome::Ran {
            titles,
            dir: PathBuf::from(format!("runs/{}-{index}", &commit[..8])),
        })
    }
}

fn plan(good: &str, bad: &str) -> Plan {
    Plan {
        good: good.into(),
        bad: bad.into(),
        runs: None,
        measure_runs: 10,
        title: None,
        verify_revert: false,
        min_confidence: 0.9,
    }
}

struct Fixture {
    _repo_dir: tempfile::TempDir,
    work: tempfile::TempDir,
    repo: Repo,
    h: Vec<String>,
}

impl Fixture {
    fn new(commits: &[Commit<'_>]) -> Fixture {
        let repo_dir = tempfile::tempdir().unwrap();
        let (repo, h) = history(repo_dir.path(), commits);
        Fixture {
            _repo_dir: repo_dir,
            work: tempfile::tempdir().unwrap(),
            repo,
            h,
        }
    }
    fn wt(&self) -> Worktree {
        self.repo
            .worktree(&self.work.path().join("wt"), self.h.last().unwrap())
            .unwrap()
    }
    fn log(&self, resume: bool) -> Log {
        Log::open(&self.work.path().join("log.jsonl"), resume).unwrap()
    }
    fn run(&self, plan: &Plan) -> (Result<BisectResult, BisectError>, Scripted) {
        let wt = self.wt();
        let mut o = Scripted::new(&wt.path);
        let r = bisect(&wt, &mut o, plan, &mut self.log(false));
        (r, o)
    }
}

/// Harmless commits, a build breaker, the culprit, unrelated changes after it.
fn fixture(rate: &'static str) -> Fixture {
    Fixture::new(&[
        ("harmless 1", &[("file", Some("1")), ("rate", Some(rate))]),
        ("harmless 2", &[("file", Some("2"))]),
        ("breaks the build", &[("broken", Some("x"))]),
        ("fixes the build", &[("broken", None), ("file", Some("3"))]),
        (
            "the culprit",
            &[("bug", Some("x")), ("lib", Some("changed"))],
        ),
        ("unrelated after it", &[("file", Some("4"))]),
        ("more after it", &[("file", Some("5"))]),
    ])
}

#[test]
fn a_deterministic_bug_is_found_with_full_confidence() {
    let f = fixture("100");
    let (r, _) = f.run(&plan(&f.h[0], f.h.last().unwrap()));
    let r = r.unwrap();
    let c = r.culprit.as_ref().expect("culprit");
    assert_eq!(c.subject, "the culprit", "{}", r.render());
    assert_eq!(r.p, 1.0);
    assert_eq!(r.runs_per_commit, 1);
    assert_eq!(r.confidence, 1.0);
    assert_eq!(r.exit_code(), 0);
    assert!(c.reproducer.is_some());
    assert_eq!(c.same_image_as_parent, Some(false));
}

#[test]
fn a_flaky_bug_gets_enough_runs_and_a_confidence_below_one() {
    let f = fixture("30");
    let (r, o) = f.run(&plan(&f.h[0], f.h.last().unwrap()));
    let r = r.unwrap();
    assert_eq!(
        r.culprit.as_ref().unwrap().subject,
        "the culprit",
        "{}",
        r.render()
    );
    assert!(r.p > 0.0 && r.p < 1.0, "{}", r.p);
    assert_eq!(r.runs_per_commit, decide::runs_for(r.p, 0.01));
    assert!(r.miss_chance <= 0.01);
    assert!(r.confidence < 1.0 && r.confidence > 0.9, "{}", r.confidence);
    // Bad commits stop at their first hit: fewer runs than commits × n.
    let tested = r.evidence.iter().filter(|t| t.role == "step").count() as u32;
    assert!(
        o.runs < 10 + r.runs_per_commit * (tested + 1),
        "{} runs",
        o.runs
    );
}

#[test]
fn a_commit_that_does_not_build_is_skipped_and_said_so() {
    let f = fixture("100");
    let (r, _) = f.run(&plan(&f.h[0], f.h.last().unwrap()));
    let r = r.unwrap();
    let out = r.render();
    if let Some(t) = r.evidence.iter().find(|t| t.subject == "breaks the build") {
        assert!(
            matches!(&t.verdict, Verdict::Skip(w) if w.contains("does not build")),
            "{out}"
        );
        assert!(out.contains("skipped: does not build"), "{out}");
    }
    assert_eq!(r.culprit.unwrap().subject, "the culprit");
}

#[test]
fn only_skipped_commits_left_gives_the_candidate_range() {
    let f = Fixture::new(&[
        ("harmless", &[("file", Some("1"))]),
        ("breaks", &[("broken", Some("x"))]),
        ("culprit while broken", &[("bug", Some("x"))]),
        ("still broken", &[("file", Some("2"))]),
        ("fixed", &[("broken", None)]),
    ]);
    let (r, _) = f.run(&plan(&f.h[1], f.h.last().unwrap()));
    let r = r.unwrap();
    assert!(r.culprit.is_none(), "{}", r.render());
    assert!(r.candidates.len() >= 2, "{}", r.render());
    assert!(r.render().contains("only skipped commits are left"));
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn an_unrelated_crash_on_a_good_commit_does_not_decide() {
    let f = Fixture::new(&[
        (
            "noisy but good",
            &[("noisy", Some("x")), ("file", Some("1"))],
        ),
        ("quiet", &[("noisy", None), ("file", Some("2"))]),
        ("culprit", &[("bug", Some("x"))]),
        ("after", &[("file", Some("3"))]),
    ]);
    let (r, _) = f.run(&plan(&f.h[0], f.h.last().unwrap()));
    let r = r.unwrap();
    assert_eq!(
        r.culprit.as_ref().unwrap().subject,
        "culprit",
        "{}",
        r.render()
    );
    assert_eq!(r.target, TARGET);
    let noisy = r.evidence.iter().find(|t| t.subject == "noisy but good");
    if let Some(t) = noisy {
        assert_eq!(t.verdict, Verdict::Good);
        assert!(t.runs.noise.contains(&NOISE.to_string()));
    }
}

#[test]
fn endpoints_that_do_not_behave_stop_the_bisect() {
    let f = fixture("100");
    // "Bad" before the bug: it does not reproduce.
    let (r, _) = f.run(&plan(&f.h[0], &f.h[2]));
    let e = r.unwrap_err();
    assert!(matches!(e, BisectError::BadDoesNotReproduce { .. }), "{e}");
    assert_eq!(e.exit_code(), 2);
    // "Good" after the bug: it reproduces.
    let (r, _) = f.run(&plan(&f.h[6], f.h.last().unwrap()));
    let e = r.unwrap_err();
    assert!(matches!(e, BisectError::GoodReproduces { .. }), "{e}");
    assert_eq!(e.exit_code(), 2);
    // A title that never appears is not reproduced either.
    let mut p = plan(&f.h[0], f.h.last().unwrap());
    p.title = Some("WARNING in elsewhere".into());
    let (r, _) = f.run(&p);
    assert!(matches!(
        r.unwrap_err(),
        BisectError::BadDoesNotReproduce { .. }
    ));
}

#[test]
fn mostly_infra_runs_skip_a_commit() {
    let f = Fixture::new(&[
        ("harmless", &[("file", Some("1"))]),
        ("infra everywhere", &[("infra", Some("x"))]),
        ("infra fixed", &[("infra", None), ("file", Some("2"))]),
        ("culprit", &[("bug", Some("x"))]),
    ]);
    let (r, _) = f.run(&plan(&f.h[0], f.h.last().unwrap()));
    let r = r.unwrap();
    assert_eq!(
        r.culprit.as_ref().unwrap().subject,
        "culprit",
        "{}",
        r.render()
    );
    if let Some(t) = r.evidence.iter().find(|t| t.subject == "infra everywhere") {
        assert!(
            matches!(&t.verdict, Verdict::Skip(w) if w.contains("infra")),
            "{t:?}"
        );
    }
}

#[test]
fn an_interrupted_bisect_resumes_from_its_log() {
    let f = fixture("100");
    let p = plan(&f.h[0], f.h.last().unwrap());
    let wt = f.wt();
    let mut first = Scripted::new(&wt.path);
    first.crash_after_builds = Some(3);
    let e = bisect(&wt, &mut first, &p, &mut f.log(false)).unwrap_err();
    assert!(matches!(e, BisectError::Infra(_)), "{e}");
    assert_eq!(e.exit_code(), 125);

    let wt = f.repo.worktree(&f.work.path().join("wt"), &p.bad).unwrap();
    let mut second = Scripted::new(&wt.path);
    let r = bisect(&wt, &mut second, &p, &mut f.log(true)).unwrap();
    assert_eq!(r.culprit.as_ref().unwrap().subject, "the culprit");
    // The endpoints and the step decided before the interruption are not built again.
    let (full, fresh) = f.run(&p);
    full.unwrap();
    assert!(
        second.builds + 3 <= fresh.builds + 3 && second.builds < fresh.builds,
        "{} vs {}",
        second.builds,
        fresh.builds
    );
}

#[test]
fn verify_revert_shows_the_title_gone() {
    let f = fixture("100");
    let mut p = plan(&f.h[0], f.h.last().unwrap());
    p.verify_revert = true;
    let (r, _) = f.run(&p);
    let r = r.unwrap();
    let rev = r.revert.as_ref().expect("revert tested");
    assert_eq!(rev.verdict, Verdict::Good, "{}", r.render());
    assert!(r.render().contains("the revert cures it"));
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn a_culprit_whose_image_equals_its_parents_is_flagged() {
    let f = Fixture::new(&[
        ("harmless", &[("file", Some("1"))]),
        // Changes nothing that reaches the image, yet is where the report starts.
        ("no-op culprit", &[("bug", Some("x"))]),
        ("after", &[("file", Some("2"))]),
    ]);
    let (r, _) = f.run(&plan(&f.h[0], f.h.last().unwrap()));
    let r = r.unwrap();
    let c = r.culprit.as_ref().unwrap();
    assert_eq!(c.subject, "no-op culprit");
    assert_eq!(c.same_image_as_parent, Some(true));
    assert!(
        r.render().contains("byte-identical to its parent's"),
        "{}",
        r.render()
    );
    assert!(!c.merge);
}

/// A make killed mid-build (SIGTERM, as `kill` or a shutdown sends it) fails the build with the
/// host's failure: the real oracle must not call that "does not build" and skip the commit.
#[test]
fn a_build_killed_by_the_host_is_not_a_commit_that_does_not_build() {
    use crate::provision::kbuild::KbuildError;
    use crate::provision::ProvisionError;
    let d = tempfile::tempdir().unwrap();
    let make = |makefile: &str| {
        std::fs::write(d.path().join("Makefile"), makefile).unwrap();
        let mut cmd = Command::new("make");
        cmd.arg("-C").arg(d.path());
        let log = d.path().join("build.log");
        let _ = std::fs::remove_file(&log);
        let e = crate::provision::kbuild::run_make(
            cmd,
            &log,
            "t",
            &crate::host::events::Events::none(),
        )
        .unwrap_err();
        assert!(matches!(e, KbuildError::Make { .. }), "{e}");
        ProvisionError::Build(e)
    };
    // A compile error in the source: skipped.
    let broken = make("all:\n\t@echo 'x.c:1:1: error: expected identifier' >&2; exit 1\n");
    assert!(oracle::does_not_build(&broken), "{broken}");
    // make itself killed; a compiler killed (OOM); a full disk: rig's failure, not a skip.
    for makefile in [
        "all:\n\tkill -TERM $$PPID; sleep 5\n",
        "all:\n\t@echo 'gcc: fatal error: Killed signal terminated program cc1' >&2; exit 1\n",
        "all:\n\t@echo 'fatal error: error writing to /tmp/cc1.s: No space left on device' >&2; exit 1\n",
        "all:\n\tsh -c 'kill -KILL $$$$'\n",
    ] {
        let e = make(makefile);
        assert!(!oracle::does_not_build(&e), "skipped as not building: {e}");
    }
}

/// Scripted, but the first bisect step's build is cut by Ctrl-C: rig's handler kills the build
/// (here a supervised `sleep`, as it kills make) and the build comes back failed, as a killed
/// make does. The child process of the test below runs this.
struct Interrupted(Scripted);

impl Oracle for Interrupted {
    fn build(&mut self, commit: &str) -> Result<Result<Built, String>, String> {
        if self.0.builds < 2 {
            return self.0.build(commit);
        }
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut make = crate::host::process::Supervised::spawn(cmd, None).unwrap();
        // A signal to this process; the handler thread picks it up.
        let me = rustix::process::getpid();
        rustix::process::kill_process(me, rustix::process::Signal::INT).unwrap();
        let status = make
            .wait_timeout(std::time::Duration::from_secs(20))
            .unwrap();
        assert!(status.is_some(), "the handler did not kill the build");
        Ok(Err("make: *** [Makefile:2: all] Terminated".into()))
    }
    fn run(&mut self, commit: &str, index: u32) -> Result<RunOutcome, String> {
        self.0.run(commit, index)
    }
}

const SIGNAL_CHILD: &str = "RIG_TEST_BISECT_SIGNAL_DIR";

/// Ctrl-C during a build: rig's signal handler kills make and exits, while the bisect sees a
/// failed build. That failure must not be logged as a skip for `--resume` to trust: the test runs
/// the bisect in a child process (this test binary again) with rig's real signal handlers, and
/// reads the log the child left.
#[test]
fn a_ctrl_c_during_a_build_records_no_verdict_for_resume() {
    if let Some(dir) = std::env::var_os(SIGNAL_CHILD) {
        let dir = PathBuf::from(dir);
        crate::host::process::install_signal_handlers().unwrap();
        let repo_dir = dir.join("repo");
        std::fs::create_dir(&repo_dir).unwrap();
        let commits: Vec<Commit<'_>> = vec![
            ("harmless 1", &[("file", Some("1"))]),
            ("harmless 2", &[("file", Some("2"))]),
            ("harmless 3", &[("file", Some("3"))]),
            ("the culprit", &[("bug", Some("x"))]),
            ("after", &[("file", Some("4"))]),
        ];
        let (repo, h) = history(&repo_dir, &commits);
        let wt = repo.worktree(&dir.join("wt"), h.last().unwrap()).unwrap();
        let mut log = Log::open(&dir.join("log.jsonl"), false).unwrap();
        let mut o = Interrupted(Scripted::new(&wt.path));
        let r = bisect(&wt, &mut o, &plan(&h[0], h.last().unwrap()), &mut log);
        eprintln!("bisect returned {:?}", r.map(|r| r.render()));
        // The handler thread ends the process (exit 130); wait for it.
        std::thread::sleep(std::time::Duration::from_secs(10));
        std::process::exit(3);
    }
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bisect::tests::a_ctrl_c_during_a_build_records_no_verdict_for_resume",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGNAL_CHILD, d.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("caught signal 2"), "{stderr}");
    let text = std::fs::read_to_string(d.path().join("log.jsonl")).unwrap();
    let roles: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["role"].as_str().unwrap_or("target").to_string()
        })
        .collect();
    // The endpoints were decided before the signal; the interrupted step left nothing.
    assert_eq!(roles, ["target", "bad-endpoint", "good-endpoint"], "{text}");
}

/// A line cut short by a kill is dropped on `--resume`, and the next entry starts a line of
/// its own (appending after a torn line would merge the two into garbage).
#[test]
fn a_torn_last_log_line_is_dropped_on_resume() {
    let f = fixture("100");
    let p = plan(&f.h[0], f.h.last().unwrap());
    let (full, _) = f.run(&p);
    full.unwrap();
    let path = f.work.path().join("log.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines = text.lines().count();
    // Keep the first three entries and half of the fourth.
    let mut cut: Vec<&str> = text.lines().take(4).collect();
    let half = cut[3].len() / 2;
    cut[3] = &cut[3][..half];
    std::fs::write(&path, cut.join("\n")).unwrap();
    let log = f.log(true);
    assert_eq!(log.past.len(), 3);
    drop(log);
    let wt = f.repo.worktree(&f.work.path().join("wt"), &p.bad).unwrap();
    let mut o = Scripted::new(&wt.path);
    let r = bisect(&wt, &mut o, &p, &mut f.log(true)).unwrap();
    assert_eq!(r.culprit.unwrap().subject, "the culprit");
    let text = std::fs::read_to_string(&path).unwrap();
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    assert!(text.lines().count() >= lines - 1, "{text}");
}
