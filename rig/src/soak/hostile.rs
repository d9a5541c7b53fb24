//! Hostile input: a crafted bundle for `rig reproduce`, a scenario whose device or object would
//! reach the host. rig must refuse it (exit 2), for the planted flaw (its error names it),
//! before QEMU starts, a build runs or a byte is written outside its own folders.
//!
//! Each bundle is otherwise a valid run of a short scenario on the soak's board and kernel, and
//! every escaping path leads to a valid scenario (`outside/stolen.yaml`) with the recorded hash:
//! a rig that missed the flaw would boot it, and the soak would see the QEMU. The paths lead
//! into the run's `outside/` folder, which the soak compares before and after.

use super::fault::BundleVariant;
use super::plan::QUICK;
use super::session::{Evidence, Run};
use super::SoakError;
use crate::run::record::{KernelIdentity, RunRecord, ScenarioCopy, RECORD_VERSION};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The scenario copy's name inside a bundle.
const COPY: &str = "scenario/soak-quick.yaml";
/// The gzip bomb's entry: more than rig unpacks (256 MiB), about 300 KiB packed.
const BOMB_BYTES: u64 = 300 << 20;

/// What rig's error must say: it refused the bundle for its planted flaw, not for another.
pub(super) fn bundle_reason(v: BundleVariant) -> &'static str {
    match v {
        BundleVariant::TreeKernel => "rig builds a tree only from one you name",
        BundleVariant::TreeKernelNamed => "is not the source the run's kernel",
        BundleVariant::CopyAbsolute => "scenario.copy is",
        BundleVariant::CopyDotDot => "scenario.copy is",
        BundleVariant::GzipBomb => "a compression bomb",
        BundleVariant::SymlinkEntry => "is a symbolic link",
        BundleVariant::DotDotEntry => "not a plain relative path",
        BundleVariant::HugeRepeat => "repeat is 1000000000",
        BundleVariant::HugeMemory => "memory_mib is 1048576",
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SoakError {
    let path = path.to_path_buf();
    move |source| SoakError::Io { path, source }
}

/// A kernel tree whose Makefile and `merge_config.sh` create `canary` when anything runs them.
fn booby_trapped_tree(tree: &Path, canary: &Path) -> Result<(), SoakError> {
    use std::os::unix::fs::PermissionsExt;
    let touch = format!("touch '{}'", canary.display());
    let kconfig = tree.join("scripts/kconfig");
    std::fs::create_dir_all(&kconfig).map_err(io(&kconfig))?;
    let files = [
        ("Makefile", format!("%:\n\t{touch}\nall:\n\t{touch}\n")),
        ("Kconfig", String::new()),
        (
            "scripts/kconfig/merge_config.sh",
            format!("#!/bin/sh\n{touch}\n"),
        ),
    ];
    for (name, text) in files {
        let p = tree.join(name);
        std::fs::write(&p, text).map_err(io(&p))?;
    }
    let merge = tree.join("scripts/kconfig/merge_config.sh");
    std::fs::set_permissions(&merge, std::fs::Permissions::from_mode(0o755)).map_err(io(&merge))
}

/// The decoys a hostile scenario's host paths name (see [`super::plan::OUTSIDE`]): a folder
/// for `rootdir`, files for `sdrfile`, `romfile` and `mem-path`.
fn decoys(outside: &Path) -> Result<(), SoakError> {
    let share = outside.join("share");
    std::fs::create_dir_all(&share).map_err(io(&share))?;
    for name in ["share/secret", "sdr", "rom", "mem"] {
        let p = outside.join(name);
        std::fs::write(&p, format!("rig soak decoy {name}\n")).map_err(io(&p))?;
    }
    Ok(())
}

/// Every path under a folder with its kind, size and modification time.
type Snapshot = BTreeMap<PathBuf, (bool, u64, i128)>;

/// The run folder before a child rig, leaving out rig's artifacts folder and its logs.
fn watched(run: &Run<'_>) -> (Vec<PathBuf>, Snapshot) {
    let skip = vec![
        run.dir.join("artifacts"),
        run.dir.join("rig-0.log"),
        run.dir.join("rig-0.stdout"),
    ];
    let before = snapshot(&run.dir, &skip);
    (skip, before)
}

/// A valid record of a run of [`QUICK`] on `board` with `kernel`.
fn record(board: crate::host::board::Board, kernel: &str, accel: &str, seed: u64) -> RunRecord {
    RunRecord {
        record_version: RECORD_VERSION,
        rig_version: env!("CARGO_PKG_VERSION").into(),
        scenario: ScenarioCopy {
            name: "soak-quick".into(),
            original: "soak-quick.yaml".into(),
            copy: Some(COPY.into()),
            sha256: Some({
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(QUICK.as_bytes()))
            }),
            overlays: Vec::new(),
        },
        board,
        kernel: KernelIdentity {
            name: kernel.into(),
            release: String::new(),
            provenance: BTreeMap::new(),
            config: PathBuf::new(),
        },
        extra_cmdline: Vec::new(),
        accel: accel.into(),
        accel_used: String::new(),
        memory_mib: 512,
        repeat: 1,
        seed,
        qemu_version: String::new(),
    }
}

/// A `.tar.gz` written header by header, so it can hold what `tar::Builder` refuses to write.
struct Tarball {
    gz: GzEncoder<std::fs::File>,
}

impl Tarball {
    fn create(path: &Path) -> Result<Tarball, SoakError> {
        let f = std::fs::File::create(path).map_err(io(path))?;
        Ok(Tarball {
            gz: GzEncoder::new(f, Compression::fast()),
        })
    }

    fn entry(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        size: u64,
        data: &mut dyn Read,
        link: &str,
    ) -> std::io::Result<()> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(0);
        h.set_cksum();
        self.gz.write_all(h.as_bytes())?;
        let copied = std::io::copy(&mut data.take(size), &mut self.gz)?;
        let pad = (512 - copied % 512) % 512;
        self.gz.write_all(&vec![0; pad as usize])
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.entry(
            name,
            tar::EntryType::Regular,
            bytes.len() as u64,
            &mut &bytes[..],
            "",
        )
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.gz.write_all(&[0; 1024])?;
        self.gz.finish()?.sync_all()
    }
}

/// Writes the bundle of `variant`, made from the valid record `rec`, to `path`.
fn write_bundle(
    mut rec: RunRecord,
    variant: BundleVariant,
    path: &Path,
    stolen: &Path,
    tree: &Path,
) -> Result<(), SoakError> {
    match variant {
        BundleVariant::TreeKernel | BundleVariant::TreeKernelNamed => {
            rec.kernel.name = format!("tree:{}", tree.display());
            rec.kernel.provenance.insert(
                "source_identity".into(),
                format!("git:{:040x}:soak", rec.seed),
            );
        }
        BundleVariant::CopyAbsolute => rec.scenario.copy = Some(stolen.to_path_buf()),
        // From `<artifacts>/<bundle>/`: `scenario/..` is the bundle, `../..` the run folder.
        BundleVariant::CopyDotDot => {
            rec.scenario.copy = Some("scenario/../../../outside/stolen.yaml".into())
        }
        BundleVariant::HugeRepeat => rec.repeat = 1_000_000_000,
        BundleVariant::HugeMemory => rec.memory_mib = 1 << 20,
        BundleVariant::GzipBomb | BundleVariant::SymlinkEntry | BundleVariant::DotDotEntry => {}
    }
    let json = serde_json::to_string_pretty(&rec).map_err(|e| SoakError::Plan {
        what: e.to_string(),
    })?;
    let mut t = Tarball::create(path)?;
    let written = (|| -> std::io::Result<()> {
        t.file("run.json", json.as_bytes())?;
        match variant {
            BundleVariant::SymlinkEntry => {
                // If rig followed it, the scenario would land in `outside/`.
                let mut none: &[u8] = &[];
                t.entry(
                    "scenario",
                    tar::EntryType::Symlink,
                    0,
                    &mut none,
                    "../../outside",
                )?;
            }
            _ => {
                let mut none: &[u8] = &[];
                t.entry("scenario/", tar::EntryType::Directory, 0, &mut none, "")?;
            }
        }
        t.file(COPY, QUICK.as_bytes())?;
        match variant {
            BundleVariant::GzipBomb => t.entry(
                "console.log",
                tar::EntryType::Regular,
                BOMB_BYTES,
                &mut std::io::repeat(0),
                "",
            )?,
            BundleVariant::DotDotEntry => t.file("../../outside/pwned", b"pwned\n")?,
            _ => {}
        }
        t.finish()
    })();
    written.map_err(io(path))
}

/// Every path under `dir` (not following links) with its kind, size and modification time,
/// leaving out `skip`.
fn snapshot(dir: &Path, skip: &[PathBuf]) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if skip.contains(&p) {
                continue;
            }
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            if m.is_dir() {
                todo.push(p.clone());
            }
            out.insert(p, (m.is_dir(), m.len(), mtime));
        }
    }
    out
}

/// What changed between two snapshots.
fn changes(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (p, a) in after {
        match before.get(p) {
            None => out.push(format!("{} (new)", p.display())),
            // A folder's mtime moves when an entry is added or removed; that entry shows itself.
            Some(b) if b != a && !(a.0 && b.0) => out.push(format!("{} (changed)", p.display())),
            _ => {}
        }
    }
    for p in before.keys().filter(|p| !after.contains_key(*p)) {
        out.push(format!("{} (removed)", p.display()));
    }
    out
}

/// rig's first `rig: error:` line (for a problem's text).
fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("rig: error:"))
        .unwrap_or("no `rig: error:` line")
        .to_string()
}

/// `rig reproduce` of a crafted bundle: exit 2 for its flaw; no QEMU, no canary, nothing
/// written outside rig's artifacts folder, and no unpack folder left when unpacking refused it.
pub(super) fn bundle(run: &mut Run<'_>, variant: BundleVariant) -> Result<(), SoakError> {
    let outside = run.dir.join("outside");
    std::fs::create_dir_all(&outside).map_err(io(&outside))?;
    let stolen = outside.join("stolen.yaml");
    std::fs::write(&stolen, QUICK).map_err(io(&stolen))?;
    let canary = outside.join("canary");
    let tree = outside.join("linux");
    booby_trapped_tree(&tree, &canary)?;
    let path = run.dir.join("hostile.tar.gz");
    let rec = record(
        run.ctx.board_kind,
        &run.ctx.kernel,
        &run.ctx.accel,
        run.plan.seed,
    );
    write_bundle(rec, variant, &path, &stolen, &tree)?;
    decoys(&outside)?;
    let artifacts = run.dir.join("artifacts");
    std::fs::create_dir_all(&artifacts).map_err(io(&artifacts))?;
    let (skip, before) = watched(run);
    let mut args: Vec<std::ffi::OsString> = vec!["reproduce".into(), path.into()];
    args.push("--no-setup".into());
    if variant == BundleVariant::TreeKernelNamed {
        args.extend(["--tree".into(), tree.clone().into()]);
    }
    let c = run.spawn_args(0, &run.ctx.cache, &artifacts, args, Vec::new())?;
    let stderr_log = run.dir.join("rig-0.log");
    run.finish_as(c, vec![2], Evidence::Refused);

    let mut problems = Vec::new();
    if canary.exists() {
        problems.push(format!(
            "the bundle's booby-trapped tree ran: {} exists",
            canary.display()
        ));
    }
    let changed = changes(&before, &snapshot(&run.dir, &skip));
    if !changed.is_empty() {
        problems.push(format!(
            "written outside rig's artifacts folder: {}",
            changed.join(", ")
        ));
    }
    for e in std::fs::read_dir(&artifacts)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if variant.refused_at_unpack() && name.contains("-bundle-") {
            problems.push(format!("a refused bundle left its unpack folder {name}"));
        } else if !name.contains("-bundle-") && !name.contains("-reproduce-") {
            problems.push(format!("rig wrote {name} into its artifacts folder"));
        }
    }
    let stderr =
        String::from_utf8_lossy(&std::fs::read(&stderr_log).unwrap_or_default()).into_owned();
    if !stderr.contains(bundle_reason(variant)) {
        problems.push(format!(
            "not refused for its flaw (`{}`): {}",
            bundle_reason(variant),
            error_line(&stderr)
        ));
    }
    if let Some(rec) = run.children.last_mut() {
        rec.problems.extend(problems);
    }
    Ok(())
}

/// `rig run` of a scenario with a host-reaching device or object: exit 2 naming it (with the
/// file's line), before a run folder is made or QEMU started; its decoy host paths untouched.
pub(super) fn device(run: &mut Run<'_>, variant: &str) -> Result<(), SoakError> {
    decoys(&run.dir.join("outside"))?;
    let (skip, before) = watched(run);
    let c = run.spawn_warm(Vec::new())?;
    let stderr_log = run.dir.join("rig-0.log");
    run.finish_as(c, vec![2], Evidence::Refused);
    let mut problems = Vec::new();
    let changed = changes(&before, &snapshot(&run.dir, &skip));
    if !changed.is_empty() {
        problems.push(format!(
            "the scenario's host paths were touched: {}",
            changed.join(", ")
        ));
    }
    let artifacts = run.dir.join("artifacts");
    let made: Vec<String> = std::fs::read_dir(&artifacts)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !made.is_empty() {
        problems.push(format!(
            "rig made a run folder for a scenario it must refuse: {}",
            made.join(", ")
        ));
    }
    let stderr =
        String::from_utf8_lossy(&std::fs::read(&stderr_log).unwrap_or_default()).into_owned();
    let line = error_line(&stderr);
    if !line.contains(variant) || !line.contains("scenario.yaml:") {
        problems.push(format!(
            "not refused for `{variant}` with the file's line: {line}"
        ));
    }
    if let Some(rec) = run.children.last_mut() {
        rec.problems.extend(problems);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rig's own reading of each bundle refuses it, as bad input, for its planted flaw, and
    /// nothing of it lands outside the unpack folder.
    #[test]
    fn every_hostile_bundle_is_refused_by_rig_for_its_flaw() {
        use crate::reproduce::{open, replay, ReplayOptions};
        let board = crate::host::board::Board::Arm64Virt;
        for v in BundleVariant::ALL {
            let d = tempfile::tempdir().unwrap();
            let run = d.path().join("run");
            let (outside, artifacts) = (run.join("outside"), run.join("artifacts"));
            std::fs::create_dir_all(&outside).unwrap();
            std::fs::create_dir_all(&artifacts).unwrap();
            let stolen = outside.join("stolen.yaml");
            std::fs::write(&stolen, QUICK).unwrap();
            let canary = outside.join("canary");
            let tree = outside.join("linux");
            booby_trapped_tree(&tree, &canary).unwrap();
            let b = run.join("hostile.tar.gz");
            write_bundle(
                record(board, "debian-6.1", "auto", 7),
                v,
                &b,
                &stolen,
                &tree,
            )
            .unwrap();
            let e = match open(&b, &artifacts) {
                Err(e) => e,
                Ok(r) => {
                    let tree = (v == BundleVariant::TreeKernelNamed).then(|| tree.clone());
                    let o = ReplayOptions {
                        tree,
                        ..ReplayOptions::default()
                    };
                    let cache = crate::host::cache::Cache::at(d.path().join("cache"));
                    let dir = crate::host::artifacts::RunDir::create_in(&artifacts, "r").unwrap();
                    match replay(r, &o, &cache, &dir, &crate::host::events::Events::none()) {
                        Err(e) => e,
                        Ok(_) => panic!("{}: replayed", v.name()),
                    }
                }
            };
            assert!(e.is_bad_input(), "{}: {e}", v.name());
            let text = crate::run::error_chain(&e);
            assert!(text.contains(bundle_reason(v)), "{}: {text}", v.name());
            assert!(!canary.exists(), "{}", v.name());
            assert!(!outside.join("pwned").exists(), "{}", v.name());
            // Only what the test put there: the stolen scenario and the tree.
            assert_eq!(
                std::fs::read_dir(&outside).unwrap().count(),
                2,
                "{}",
                v.name()
            );
        }
    }

    #[test]
    fn snapshots_see_new_changed_and_removed_files_but_not_folder_times() {
        let d = tempfile::tempdir().unwrap();
        let skip = vec![d.path().join("artifacts")];
        std::fs::create_dir_all(d.path().join("outside")).unwrap();
        std::fs::create_dir_all(d.path().join("artifacts")).unwrap();
        std::fs::write(d.path().join("outside/keep"), "a").unwrap();
        std::fs::write(d.path().join("outside/gone"), "a").unwrap();
        let before = snapshot(d.path(), &skip);
        assert!(changes(&before, &snapshot(d.path(), &skip)).is_empty());
        std::fs::write(d.path().join("artifacts/fine"), "x").unwrap();
        std::fs::write(d.path().join("outside/pwned"), "x").unwrap();
        std::fs::write(d.path().join("outside/keep"), "ab").unwrap();
        std::fs::remove_file(d.path().join("outside/gone")).unwrap();
        let c = changes(&before, &snapshot(d.path(), &skip));
        let p = |n: &str| d.path().join(n).display().to_string();
        assert_eq!(
            c,
            [
                format!("{} (changed)", p("outside/keep")),
                format!("{} (new)", p("outside/pwned")),
                format!("{} (removed)", p("outside/gone")),
            ]
        );
    }
}
