//! Patch sets: `images/patches/<name>/*.patch`, applied in file-name order with `patch -p1`
//! to rig's working copy of a source (never to the pristine source or a user's tree).

use super::KbuildError;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `*.patch` files of a patch set directory, sorted by file name (the application order).
/// A missing directory or an empty set is an error: a flavor naming it expects patches.
pub fn patch_files(dir: &Path) -> Result<Vec<PathBuf>, KbuildError> {
    let rd = fs::read_dir(dir).map_err(|source| KbuildError::Io {
        what: "cannot read patch set".into(),
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "patch"))
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if files.is_empty() {
        return Err(KbuildError::EmptyPatchSet {
            dir: dir.to_path_buf(),
        });
    }
    Ok(files)
}

/// The files a unified diff modifies, relative to the tree root (`-p1`): taken from its
/// `+++ b/<path>` lines (`--- a/<path>` for deletions).
pub fn touched_files(diff: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut minus: Option<&str> = None;
    for line in diff.lines() {
        if let Some(p) = line.strip_prefix("--- ") {
            minus = Some(p);
            continue;
        }
        if let (Some(m), Some(p)) = (minus.take(), line.strip_prefix("+++ ")) {
            let pick = if p.trim_start().starts_with("/dev/null") {
                m
            } else {
                p
            };
            let path = pick.split('\t').next().unwrap_or(pick).trim();
            let rel = path.split_once('/').map(|(_, r)| r).unwrap_or(path);
            if !rel.is_empty() && !out.iter().any(|o| o == rel) {
                out.push(rel.to_string());
            }
        }
    }
    out
}

/// Applies `patches` in order to `tree` with `patch -p1 --forward --batch`, logging to `log`.
/// Returns the files they touched.
pub fn apply(tree: &Path, patches: &[PathBuf], log: &Path) -> Result<Vec<String>, KbuildError> {
    let mut touched = Vec::new();
    for p in patches {
        let text = fs::read_to_string(p).map_err(|source| KbuildError::Io {
            what: "cannot read patch".into(),
            path: p.clone(),
            source,
        })?;
        let mut cmd = Command::new("patch");
        cmd.arg("-p1")
            .arg("--forward")
            .arg("--batch")
            .arg("--no-backup-if-mismatch")
            .arg("-i")
            .arg(p)
            .current_dir(tree);
        crate::host::process::run_logged(cmd, log).map_err(|e| KbuildError::Patch {
            patch: p.clone(),
            tree: tree.to_path_buf(),
            source: Box::new(e.into()),
        })?;
        for f in touched_files(&text) {
            if !touched.contains(&f) {
                touched.push(f);
            }
        }
    }
    Ok(touched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_apply_in_file_name_order() {
        let d = tempfile::tempdir().unwrap();
        for name in [
            "0010-c.patch",
            "0002-b.patch",
            "0001-a.patch",
            "README",
            "0003-x.diff",
        ] {
            fs::write(d.path().join(name), "").unwrap();
        }
        fs::create_dir(d.path().join("0000-dir.patch")).unwrap();
        let names: Vec<String> = patch_files(d.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["0001-a.patch", "0002-b.patch", "0010-c.patch"]);
    }

    #[test]
    fn an_empty_or_missing_set_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            patch_files(d.path()),
            Err(KbuildError::EmptyPatchSet { .. })
        ));
        assert!(matches!(
            patch_files(&d.path().join("nope")),
            Err(KbuildError::Io { .. })
        ));
    }

    #[test]
    fn the_shipped_known_bad_patch_touches_dynamic_c() {
        let dir = crate::repo_root().join("images/patches/6.12/known-bad-devlink-wait");
        let files = patch_files(&dir).unwrap();
        assert_eq!(files.len(), 1);
        let text = fs::read_to_string(&files[0]).unwrap();
        assert_eq!(touched_files(&text), ["drivers/of/dynamic.c"]);
        assert!(text.contains("-\tdevice_link_wait_removal();"));
    }

    #[test]
    fn touched_files_handles_new_and_deleted_files() {
        let diff = "--- a/x/old.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n\
                    --- /dev/null\n+++ b/x/new.c\t2024-01-01\n@@ -0,0 +1 @@\n+hi\n";
        assert_eq!(touched_files(diff), ["x/old.c", "x/new.c"]);
    }

    #[test]
    fn apply_patches_a_tree_and_fails_loudly_on_a_bad_patch() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("t");
        fs::create_dir_all(tree.join("d")).unwrap();
        fs::write(tree.join("d/f.c"), "one\ntwo\nthree\n").unwrap();
        let good = d.path().join("0001-good.patch");
        fs::write(
            &good,
            "--- a/d/f.c\n+++ b/d/f.c\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n",
        )
        .unwrap();
        let log = d.path().join("patch.log");
        let touched = apply(&tree, std::slice::from_ref(&good), &log).unwrap();
        assert_eq!(touched, ["d/f.c"]);
        assert_eq!(
            fs::read_to_string(tree.join("d/f.c")).unwrap(),
            "one\nTWO\nthree\n"
        );
        // The same patch again no longer applies (--forward): an error naming the patch.
        let err = apply(&tree, &[good], &log).unwrap_err();
        assert!(matches!(err, KbuildError::Patch { .. }), "{err}");
        assert!(err.to_string().contains("0001-good.patch"));
    }
}
