//! A real kernel history to bisect: Debian's source of the default series (linux-source-7.3) as
//! the base commit and six commits on top — harmless ones, one that breaks the build and one that
//! fixes it, the known-bad-devlink-wait change (the culprit), and an unrelated one after it. The suite's real
//! bisect and `rig bench bisect` run on it. Commits carry fixed authors and dates, so their
//! hashes are the same on every machine; the repository is cached by the source's identity and
//! the patch's content (`<cache>/bisect-fixture/<key>/repo`).

use super::BisectError;
use crate::host::cache::{Cache, CacheKey};
use crate::host::events::Events;
use crate::provision::kbuild::series::{Series, HOST_612_TARBALL};
use crate::provision::kbuild::{patch_set_dir, source, Source};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The subjects of the fixture's commits on top of the base, in order.
pub const SUBJECTS: [&str; 6] = [
    "Documentation: rig bisect demo, harmless note",
    "lib/kstrtox: rig bisect demo, harmless comment",
    "lib/kstrtox: rig bisect demo, break the build",
    "lib/kstrtox: rig bisect demo, fix the build",
    "of: dynamic: drop device_link_wait_removal() from of_changeset_destroy()",
    "Documentation: rig bisect demo, unrelated change after the culprit",
];
/// Index in [`SUBJECTS`] of the culprit and of the commit that does not build.
pub const CULPRIT: usize = 4;
pub const BREAKS_BUILD: usize = 2;

/// The fixture: where it is and its commits (`commits[0]` is the base, the good endpoint).
#[derive(Debug, Clone)]
pub struct History {
    pub repo: PathBuf,
    pub commits: Vec<String>,
}

impl History {
    pub fn good(&self) -> &str {
        &self.commits[0]
    }
    pub fn bad(&self) -> &str {
        &self.commits[self.commits.len() - 1]
    }
    /// The commit `SUBJECTS[i]` made.
    pub fn commit(&self, i: usize) -> &str {
        &self.commits[i + 1]
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "rig")
        .env("GIT_AUTHOR_EMAIL", "rig@localhost")
        .env("GIT_COMMITTER_NAME", "rig")
        .env("GIT_COMMITTER_EMAIL", "rig@localhost")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, f(text)).map_err(|e| format!("{}: {e}", path.display()))
}

/// Makes (or finds in the cache) the fixture history.
pub fn linux_history(cache: &Cache, events: &Events) -> Result<History, BisectError> {
    let infra = |e: String| BisectError::Infra(format!("bisect fixture: {e}"));
    let tarball = Path::new(HOST_612_TARBALL);
    let repo_root = crate::repo_root();
    let series = Series::DEFAULT;
    let source = Source::Debian(series);
    let identity =
        source::identity(&source, tarball, &repo_root).map_err(|e| infra(e.to_string()))?;
    let patch_dir = patch_set_dir(
        &repo_root.join("images/patches"),
        series,
        "known-bad-devlink-wait",
    );
    let patch = std::fs::read_dir(&patch_dir)
        .map_err(|e| infra(format!("{}: {e}", patch_dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "patch"))
        .ok_or_else(|| infra(format!("no patch in {}", patch_dir.display())))?;
    let mut key = CacheKey::new("bisect-fixture");
    key.str("recipe", "bisect-fixture-1")
        .str("source", &identity)
        .str("subjects", &SUBJECTS.join("\n"));
    key.file("patch", &patch)
        .map_err(|e| infra(e.to_string()))?;
    let entry = cache.provision(
        "bisect-fixture",
        &key,
        events,
        "bisect fixture",
        || {
            Some(format!(
                "a git history on {} (copy, git add, 7 commits)",
                series.tarball_dir()
            ))
        },
        |dir| -> Result<(), BisectError> {
            let pristine = source::pristine(&source, tarball, &repo_root, &identity, cache, events)
                .map_err(|e| infra(e.to_string()))?;
            let repo = dir.join("repo");
            let st = Command::new("cp")
                .arg("-a")
                .arg(&pristine)
                .arg(&repo)
                .status()
                .map_err(|e| infra(format!("cp: {e}")))?;
            if !st.success() {
                return Err(infra(format!("cp -a {} failed", pristine.display())));
            }
            build_history(&repo, series, &patch).map_err(infra)
        },
    )?;
    let repo = entry.join("repo");
    let log = git(&repo, &["rev-list", "--reverse", "HEAD"]).map_err(infra)?;
    Ok(History {
        repo,
        commits: log.lines().map(str::to_string).collect(),
    })
}

fn build_history(repo: &Path, series: Series, patch: &Path) -> Result<(), String> {
    git(repo, &["init", "-q"])?;
    // Debian's .gitignore ignores everything at the top level: add regardless.
    git(repo, &["add", "-A", "-f"])?;
    let base = format!("{} (Debian), the base", series.tarball_dir());
    git(repo, &["commit", "-q", "-m", &base])?;
    let commit = |subject: &str| git(repo, &["commit", "-q", "-a", "-m", subject]).map(drop);
    let doc = repo.join("Documentation/process/howto.rst");
    edit(&doc, |t| t + "\n.. rig bisect demo: a harmless note.\n")?;
    commit(SUBJECTS[0])?;
    let lib = repo.join("lib/kstrtox.c");
    edit(&lib, |t| t.replacen("/*", "/* (rig bisect demo) ", 1))?;
    commit(SUBJECTS[1])?;
    edit(&lib, |t| {
        t + "\n#error \"rig bisect demo: this commit does not build\"\n"
    })?;
    commit(SUBJECTS[2])?;
    edit(&lib, |t| {
        t.replace(
            "\n#error \"rig bisect demo: this commit does not build\"\n",
            "",
        )
    })?;
    commit(SUBJECTS[3])?;
    git(repo, &["apply", &patch.to_string_lossy()])?;
    commit(SUBJECTS[4])?;
    edit(&doc, |t| t + ".. rig bisect demo: an unrelated change.\n")?;
    commit(SUBJECTS[5])
}
