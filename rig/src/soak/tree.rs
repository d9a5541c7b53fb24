//! A `tree:` kernel's identity covers the untracked files git does not ignore: a tree that
//! gained one since the last run is a new kernel, rebuilt (incrementally), never the cached
//! image of the tree as it was.
//!
//! The tree is a git worktree of the bisect fixture history ([`crate::bisect::fixture`]) at a
//! stable path in rig's cache (`<cache>/soak/tree-untracked/worktree`), so its kbuild working
//! area — one per tree path — and its build directory are reused: only the first run builds a
//! whole kernel. Runs of this fault take the folder's lock, one at a time, across soaks too.

use super::session::Run;
use super::SoakError;
use crate::host::cache::Cache;
use crate::host::events::Events;
use crate::provision::kbuild::source;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the soak's files of an earlier run sit in the tree (Debian's top-level .gitignore
/// ignores everything but `debian/`).
const FILES: &str = "debian";

fn prepare_err(what: impl std::fmt::Display) -> SoakError {
    SoakError::Prepare {
        what: format!("tree-untracked-file: {what}"),
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<(bool, String), SoakError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| prepare_err(format!("git: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string()
        + String::from_utf8_lossy(&out.stderr).trim();
    Ok((out.status.success(), text))
}

fn git_ok(dir: &Path, args: &[&str]) -> Result<String, SoakError> {
    match git(dir, args)? {
        (true, out) => Ok(out),
        (false, out) => Err(prepare_err(format!("git {}: {out}", args.join(" ")))),
    }
}

/// The worktree of the fixture's base commit at `root/worktree` (made the first time).
fn worktree(cache: &Path, root: &Path) -> Result<PathBuf, SoakError> {
    let history = crate::bisect::fixture::linux_history(&Cache::at(cache), &Events::none())
        .map_err(prepare_err)?;
    let wt = root.join("worktree");
    if !wt.join(".git").is_file() {
        // A worktree a kill cut short (or a folder that is not one) is made again.
        if wt.exists() {
            std::fs::remove_dir_all(&wt).map_err(prepare_err)?;
        }
        git_ok(&history.repo, &["worktree", "prune"])?;
        let path = wt.to_string_lossy();
        git_ok(
            &history.repo,
            &[
                "worktree",
                "add",
                "--quiet",
                "--detach",
                &path,
                history.good(),
            ],
        )?;
    }
    Ok(wt)
}

/// The tree's source identity, as rig computes it for a `tree:` kernel.
fn identity(tree: &Path) -> Result<String, SoakError> {
    source::tree_identity(tree).map_err(prepare_err)
}

/// A run folder's recorded kernel identity: `run.json`'s and `report.json`'s.
fn recorded(folder: &Path) -> (Option<String>, Option<String>) {
    let read = |name: &str, ptr: &str| -> Option<String> {
        let text = std::fs::read_to_string(folder.join(name)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.pointer(ptr)?.as_str().map(String::from)
    };
    (
        read(
            crate::run::record::RECORD_FILE,
            "/kernel/provenance/source_identity",
        ),
        read(
            crate::report::REPORT_FILE,
            "/kernel_provenance/source_identity",
        ),
    )
}

/// What is wrong with a run on the tree whose identity went from `before` to `now`: the kernel
/// it recorded (`run`, `report`) must be `now`'s, not `previous`'s (the last run's), and rig must
/// have built it (`built`: the kernel build steps it did not find cached).
pub(super) fn identity_problems(
    before: &str,
    now: &str,
    previous: Option<&str>,
    recorded: (Option<String>, Option<String>),
    built: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    if before == now {
        problems.push(format!(
            "the untracked file left the tree's identity as it was ({now})"
        ));
    }
    for (file, got) in [("run.json", recorded.0), ("report.json", recorded.1)] {
        match got {
            None => problems.push(format!("{file} records no kernel source identity")),
            Some(got) if got != now => problems.push(format!(
                "{file}: rig ran the kernel of identity {got}, the tree's is {now}"
            )),
            Some(got) if Some(got.as_str()) == previous => problems.push(format!(
                "{file}: the same kernel identity as the previous run ({got})"
            )),
            Some(_) => {}
        }
    }
    if !built.iter().any(|s| s.starts_with("kernel build")) {
        problems.push(
            "rig built no kernel for the tree's new identity (it booted a cached one)".into(),
        );
    }
    problems
}

/// Adds `file` (relative to the tree) as the only soak file in the worktree and runs a short
/// scenario on `tree:<worktree>`: 0, on the kernel of the tree's new identity.
pub(super) fn untracked(run: &mut Run<'_>, file: &str) -> Result<(), SoakError> {
    let cache = run.ctx.cache.clone();
    let root = cache.join("soak/tree-untracked");
    let _lock =
        source::AreaLock::acquire(&root, &Events::none(), "soak tree").map_err(prepare_err)?;
    let wt = worktree(&cache, &root)?;
    // The previous run's file goes: the tree differs from the fixture by this run's file only.
    let files = wt.join(FILES);
    if files.exists() {
        std::fs::remove_dir_all(&files).map_err(prepare_err)?;
    }
    let before = identity(&wt)?;
    let path = wt.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(prepare_err)?;
    }
    // The soak's own folder makes the content (so the identity) new in every soak, even one
    // with the same seed: a tree seen before would rightly boot its cached kernel.
    let text = format!(
        "rig soak {}, run {} of seed {}\n",
        run.ctx.dir.display(),
        run.plan.index + 1,
        run.plan.seed
    );
    std::fs::write(&path, text).map_err(prepare_err)?;
    if git(&wt, &["check-ignore", "-q", file])?.0 {
        return Err(prepare_err(format!("git ignores {file}: not a test")));
    }
    let now = identity(&wt)?;
    let last = root.join("last-identity");
    let previous = std::fs::read_to_string(&last).ok();
    run.kernel = Some(format!("tree:{}", wt.display()));
    let mut c = run.spawn_warm(Vec::new())?;
    c.wait_exit(c.started + run.deadline());
    let built = c.built_steps();
    let rec = run.finish(c, vec![0]);
    let got = rec.artifacts.as_deref().map(recorded).unwrap_or_default();
    if let Some(id) = got.0.as_deref().filter(|id| *id == now) {
        let _ = std::fs::write(&last, id);
    }
    rec.problems.extend(identity_problems(
        &before,
        &now,
        previous.as_deref(),
        got,
        &built,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_must_record_and_build_the_trees_new_identity() {
        let ok = |r: Option<&str>| (r.map(String::from), r.map(String::from));
        let built = vec!["kernel build rig-tree-1234 (arm64)".to_string()];
        assert!(identity_problems("a", "b", Some("a"), ok(Some("b")), &built).is_empty());
        // The stale kernel: rig recorded (and so booted) the identity before the file.
        let stale = identity_problems("a", "b", Some("a"), ok(Some("a")), &[]);
        assert_eq!(stale.len(), 3, "{stale:?}");
        assert!(stale[0].contains("run.json: rig ran the kernel of identity a, the tree's is b"));
        assert!(stale[2].contains("built no kernel"));
        // Nothing recorded; an identity the file did not change.
        let none = identity_problems("a", "a", None, ok(None), &built);
        assert!(
            none[0].contains("left the tree's identity as it was"),
            "{none:?}"
        );
        assert!(none[1].contains("run.json records no kernel source identity"));
        // The previous run's identity again.
        let again = identity_problems("a", "b", Some("b"), ok(Some("b")), &built);
        assert!(
            again[0].contains("the same kernel identity as the previous run"),
            "{again:?}"
        );
    }

    #[test]
    fn a_run_folders_recorded_identity_is_read_from_both_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("run.json"),
            r#"{"kernel": {"provenance": {"source_identity": "git:a:b"}}}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("report.json"),
            r#"{"kernel_provenance": {"source_identity": "git:a:c"}}"#,
        )
        .unwrap();
        assert_eq!(
            recorded(d.path()),
            (Some("git:a:b".into()), Some("git:a:c".into()))
        );
        assert_eq!(recorded(&d.path().join("none")), (None, None));
    }
}
