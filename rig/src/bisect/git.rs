//! The git side of a bisect: a worktree of the user's repository in rig's cache (their checkout
//! and its bisect state are never touched: `refs/bisect` and `BISECT_*` are per worktree), and
//! `git bisect` driven one verdict at a time.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path} is not a git work tree ({detail})")]
    NotARepo { path: PathBuf, detail: String },
    #[error("`{rev}` is not a commit in {repo}")]
    UnknownRevision { rev: String, repo: PathBuf },
    #[error("`git {args}` failed in {dir}: {stderr}")]
    Failed {
        args: String,
        dir: PathBuf,
        stderr: String,
    },
    #[error("cannot run git")]
    Spawn(#[source] std::io::Error),
}

/// Runs git in `dir`; returns stdout (stderr appended, since `git bisect` talks on both).
fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=rig", "-c", "user.email=rig@localhost"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(GitError::Spawn)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args.join(" "),
            dir: dir.to_path_buf(),
            stderr: format!("{stdout}{stderr}").trim().to_string(),
        });
    }
    Ok(format!("{stdout}{stderr}"))
}

/// The user's repository.
#[derive(Debug, Clone)]
pub struct Repo {
    pub path: PathBuf,
}

impl Repo {
    pub fn open(path: &Path) -> Result<Repo, GitError> {
        git(path, &["rev-parse", "--git-dir"]).map_err(|e| GitError::NotARepo {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(Repo {
            path: path.to_path_buf(),
        })
    }

    /// The full hash of `rev` (a commit).
    pub fn resolve(&self, rev: &str) -> Result<String, GitError> {
        git(
            &self.path,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{commit}}"),
            ],
        )
        .map(|s| s.trim().to_string())
        .map_err(|_| GitError::UnknownRevision {
            rev: rev.to_string(),
            repo: self.path.clone(),
        })
    }

    /// A detached worktree at `dir` on `rev`, made or reused (a resumed bisect finds its own).
    pub fn worktree(&self, dir: &Path, rev: &str) -> Result<Worktree, GitError> {
        if dir.join(".git").exists() {
            let wt = Worktree {
                path: dir.to_path_buf(),
            };
            // A previous bisect there may still be in progress; resumes restart it from the log.
            let _ = git(dir, &["bisect", "reset", "--no-checkout"]);
            git(dir, &["checkout", "--detach", "--force", rev])?;
            return Ok(wt);
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(GitError::Spawn)?;
        }
        let _ = git(&self.path, &["worktree", "prune"]);
        git(
            &self.path,
            &[
                "worktree",
                "add",
                "--detach",
                "--force",
                &dir.to_string_lossy(),
                rev,
            ],
        )?;
        Ok(Worktree {
            path: dir.to_path_buf(),
        })
    }
}

/// What `git bisect` said after a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Test this commit next (git has checked it out).
    Test(String),
    /// The first bad commit.
    Found(String),
    /// Only skipped commits are left: the first bad one is among these.
    OnlySkipped(Vec<String>),
}

/// Reads `git bisect`'s answer.
pub fn parse_step(out: &str) -> Option<Step> {
    let hash = |w: &str| w.len() == 40 && w.chars().all(|c| c.is_ascii_hexdigit());
    if out.contains("There are only 'skip'ped commits left to test") {
        let list = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| hash(w))
            .map(str::to_string)
            .collect();
        return Some(Step::OnlySkipped(list));
    }
    for l in out.lines() {
        if let Some(sha) = l.strip_suffix(" is the first bad commit") {
            if hash(sha.trim()) {
                return Some(Step::Found(sha.trim().to_string()));
            }
        }
    }
    for l in out.lines() {
        // `[<sha>] subject` after "Bisecting: N revisions left to test after this".
        if let Some(rest) = l.strip_prefix('[') {
            if let Some((sha, _)) = rest.split_once(']') {
                if hash(sha) {
                    return Some(Step::Test(sha.to_string()));
                }
            }
        }
    }
    None
}

/// rig's worktree of the repository.
#[derive(Debug, Clone)]
pub struct Worktree {
    pub path: PathBuf,
}

impl Worktree {
    fn git(&self, args: &[&str]) -> Result<String, GitError> {
        git(&self.path, args)
    }

    fn step(&self, args: &[&str]) -> Result<Step, GitError> {
        let out = match self.git(args) {
            Ok(out) => out,
            // git exits non-zero when only skipped commits are left; that is an answer.
            Err(GitError::Failed { stderr, .. })
                if matches!(parse_step(&stderr), Some(Step::OnlySkipped(_))) =>
            {
                stderr
            }
            Err(e) => return Err(e),
        };
        match parse_step(&out) {
            Some(s) => Ok(s),
            // git checked out the next commit without printing it in a form we know.
            None => Ok(Step::Test(self.head()?)),
        }
    }

    /// `git bisect start BAD GOOD`; returns the first commit to test.
    pub fn start(&self, bad: &str, good: &str) -> Result<Step, GitError> {
        let _ = self.git(&["bisect", "reset", "--no-checkout"]);
        self.step(&["bisect", "start", bad, good])
    }

    /// Records `word` (`good`, `bad`, `skip`) for `commit`; returns what git says next.
    pub fn mark(&self, word: &str, commit: &str) -> Result<Step, GitError> {
        self.step(&["bisect", word, commit])
    }

    /// Ends the bisect and leaves the worktree on `rev`.
    pub fn finish(&self, rev: &str) -> Result<(), GitError> {
        let _ = self.git(&["bisect", "reset", "--no-checkout"]);
        self.checkout(rev)
    }

    pub fn checkout(&self, rev: &str) -> Result<(), GitError> {
        self.git(&["checkout", "--detach", "--force", rev])
            .map(drop)
    }

    pub fn head(&self) -> Result<String, GitError> {
        self.git(&["rev-parse", "HEAD"])
            .map(|s| s.trim().to_string())
    }

    pub fn subject(&self, commit: &str) -> Result<String, GitError> {
        self.git(&["log", "-1", "--format=%s", commit])
            .map(|s| s.trim().to_string())
    }

    /// The commit's parents.
    pub fn parents(&self, commit: &str) -> Result<Vec<String>, GitError> {
        let line = self.git(&["rev-list", "--parents", "-n", "1", commit])?;
        Ok(line
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect())
    }

    /// Reverts `commit` on top of `onto` (detached); returns the revert's hash.
    pub fn revert_on(&self, onto: &str, commit: &str) -> Result<String, GitError> {
        self.checkout(onto)?;
        if let Err(e) = self.git(&["revert", "--no-edit", commit]) {
            let _ = self.git(&["revert", "--abort"]);
            return Err(e);
        }
        self.head()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A repository with one file changed by each commit `subjects[i]`; returns it and the hashes.
    pub(crate) fn repo_with(dir: &Path, subjects: &[&str]) -> (Repo, Vec<String>) {
        let run = |args: &[&str]| git(dir, args).unwrap();
        run(&["init", "-q"]);
        let mut hashes = Vec::new();
        for (i, s) in subjects.iter().enumerate() {
            std::fs::write(dir.join("file"), format!("{i}\n")).unwrap();
            run(&["add", "file"]);
            run(&["commit", "-q", "-m", s]);
            hashes.push(run(&["rev-parse", "HEAD"]).trim().to_string());
        }
        (Repo::open(dir).unwrap(), hashes)
    }

    #[test]
    fn bisect_output_is_read() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let other = "89abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse_step(&format!(
                "Bisecting: 3 revisions left to test after this (roughly 2 steps)\n[{sha}] x: y\n"
            )),
            Some(Step::Test(sha.into()))
        );
        assert_eq!(
            parse_step(&format!("{sha} is the first bad commit\ncommit {sha}\n")),
            Some(Step::Found(sha.into()))
        );
        assert_eq!(
            parse_step(&format!(
                "There are only 'skip'ped commits left to test.\nThe first bad commit could be \
                 any of:\n{sha}\n{other}\nWe cannot bisect more!\n"
            )),
            Some(Step::OnlySkipped(vec![sha.into(), other.into()]))
        );
        assert_eq!(parse_step("nothing"), None);
    }

    #[test]
    fn worktrees_leave_the_users_checkout_alone() {
        let d = tempfile::tempdir().unwrap();
        let (repo, h) = repo_with(d.path(), &["a", "b", "c", "d"]);
        assert!(matches!(
            Repo::open(&d.path().join("nope")),
            Err(GitError::NotARepo { .. })
        ));
        assert!(matches!(
            repo.resolve("no-such-rev"),
            Err(GitError::UnknownRevision { .. })
        ));
        assert_eq!(repo.resolve("HEAD~3").unwrap(), h[0]);
        let wt_dir = tempfile::tempdir().unwrap();
        let wt = repo.worktree(&wt_dir.path().join("wt"), &h[3]).unwrap();
        let first = wt.start(&h[3], &h[0]).unwrap();
        assert!(matches!(first, Step::Test(_)));
        // The user's checkout is not bisecting and still on its branch head.
        assert!(git(d.path(), &["bisect", "log"]).is_err());
        assert_eq!(git(d.path(), &["rev-parse", "HEAD"]).unwrap().trim(), h[3]);
        assert_eq!(wt.subject(&h[1]).unwrap(), "b");
        assert_eq!(wt.parents(&h[1]).unwrap(), vec![h[0].clone()]);
        wt.finish(&h[3]).unwrap();
        // Reused on resume.
        let again = repo.worktree(&wt_dir.path().join("wt"), &h[2]).unwrap();
        assert_eq!(again.head().unwrap(), h[2]);
    }
}
