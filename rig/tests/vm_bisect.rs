//! A real bisect: a git history on linux-source-7.3 (the default series) (harmless commits, one that breaks the
//! build, the known-bad-devlink-wait change, an unrelated one after it — `rig::bisect::fixture`),
//! bisected with the overlay-devlink-teardown scenario on arm64-virt. rig must name the
//! known-bad commit and report the build breaker as skipped.
//!
//! Cost (2-core TCG host): the fixture repository once (~2 min: copy, git add), the first build
//! of the worktree (ccache hits where the debian-7.3 builds left them, else a full build), then
//! incremental builds and two runs per good commit.

mod common;

use common::*;
use rig::bisect::fixture::{self, BREAKS_BUILD, CULPRIT, SUBJECTS};
use rig::host::events::Events;

#[test]
fn a_real_bisect_names_the_known_bad_commit_and_skips_the_build_breaker() {
    let h = fixture::linux_history(&cache(), &Events::none()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.commits.len(), SUBJECTS.len() + 1);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(["bisect", "--board", "arm64-virt", "--runs", "2"])
        .arg("--tree")
        .arg(&h.repo)
        .args(["--good", h.good(), "--bad", h.bad()])
        .arg("--scenario")
        .arg(rig::repo_root().join("scenarios/overlay-devlink-teardown.yaml"))
        .env("RIG_ARTIFACTS", runs_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let culprit = h.commit(CULPRIT);
    assert!(
        stdout.contains(&format!(
            "first bad commit: {culprit} {}",
            SUBJECTS[CULPRIT]
        )),
        "{stdout}"
    );
    // The build breaker was tested (it is git's first midpoint) and skipped, and said so.
    let breaker = &h.commit(BREAKS_BUILD)[..12];
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(breaker))
        .unwrap_or_else(|| panic!("{breaker} not tested:\n{stdout}"));
    assert!(line.contains(" skip "), "{line}");
    assert!(stdout.contains("skipped: does not build"), "{stdout}");
    // The user's tree is untouched: still on its last commit, not bisecting.
    let head = std::process::Command::new("git")
        .arg("-C")
        .arg(&h.repo)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), h.bad());
}
