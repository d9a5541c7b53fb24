//! Drops the shared libraries that no program in the extracted rootfs loads.
//!
//! `mmdebstrap --variant=extract` brings in every dependency of every package, also those of
//! programs the recipe strips (iproute2's `arpd` pulls in Berkeley DB, `libtirpc` pulls in
//! Kerberos, …). Every byte of the initramfs is unpacked by the guest kernel on every boot, and
//! under TCG that costs real time (the 23 MB rootfs took ~1 s of each arm64 boot), so the rootfs
//! keeps only what its programs need: the `DT_NEEDED` closure of every ELF program, looked up
//! the way the dynamic linker does (`lib/<triplet>`, `usr/lib/<triplet>`, `lib`, `usr/lib`).
//! Libraries loaded with `dlopen` by name (glibc's NSS modules, `libgcc_s`) and the dynamic
//! linker itself are always kept; libraries in subdirectories (plugins) are never touched.

use super::ImageError;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// Library file names kept whether or not a program names them (prefixes).
const ALWAYS_KEEP: &[&str] = &[
    "ld-linux",
    "ld64",
    "libgcc_s.",
    "libnss_files.",
    "libnss_dns.",
    "libnss_compat.",
];

/// What pruning removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub files: Vec<PathBuf>,
    pub bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        what: "cannot prune".into(),
        path: path.to_path_buf(),
        source,
    }
}

/// The directories shared libraries are looked up in, in search order (those that exist).
fn lib_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for base in ["lib", "usr/lib"] {
        if let Ok(rd) = fs::read_dir(root.join(base)) {
            let mut triplets: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_dir()
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.ends_with("-linux-gnu"))
                })
                .collect();
            triplets.sort();
            dirs.extend(triplets);
        }
    }
    for d in ["lib", "usr/lib", "lib64", "usr/lib64"] {
        dirs.push(root.join(d));
    }
    dirs.retain(|d| d.is_dir());
    dirs
}

/// `DT_NEEDED` of an ELF file and whether it is a program (has an interpreter, or is a static
/// executable); `None` for anything that is no ELF file.
fn elf_info(path: &Path) -> Option<(Vec<String>, bool)> {
    let data = fs::read(path).ok()?;
    if data.get(..4) != Some(b"\x7fELF") {
        return None;
    }
    let elf = goblin::elf::Elf::parse(&data).ok()?;
    let program = elf.interpreter.is_some() || elf.header.e_type == goblin::elf::header::ET_EXEC;
    Some((
        elf.libraries.iter().map(|s| s.to_string()).collect(),
        program,
    ))
}

/// Resolves a symlink inside `root` (absolute targets are taken relative to `root`).
fn resolve_in(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..16 {
        let meta = fs::symlink_metadata(&p).ok()?;
        if !meta.file_type().is_symlink() {
            return Some(p);
        }
        let target = fs::read_link(&p).ok()?;
        p = if target.is_absolute() {
            root.join(target.strip_prefix("/").ok()?)
        } else {
            p.parent()?.join(target)
        };
    }
    None
}

/// Removes the libraries directly in the library directories that no program needs.
pub fn prune_libraries(root: &Path) -> Result<Pruned, ImageError> {
    let dirs = lib_dirs(root);
    let lib_dir_set: BTreeSet<PathBuf> = dirs.iter().cloned().collect();
    // Every ELF file, and what it needs.
    let mut needs: HashMap<PathBuf, Vec<String>> = HashMap::new();
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            let ft = e.file_type().map_err(io(&dir))?;
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                if let Some((needed, program)) = elf_info(&p) {
                    // A program, or anything outside the library directories (plugins are
                    // kept, so what they need is kept too).
                    if program || !lib_dir_set.contains(&dir) {
                        roots.push(p.clone());
                    }
                    needs.insert(p, needed);
                }
            }
        }
    }
    let find = |name: &str| -> Option<PathBuf> {
        dirs.iter()
            .map(|d| d.join(name))
            .find(|p| fs::symlink_metadata(p).is_ok())
            .and_then(|p| resolve_in(root, &p))
    };
    let mut keep: BTreeSet<PathBuf> = BTreeSet::new();
    let mut todo: Vec<PathBuf> = roots;
    while let Some(f) = todo.pop() {
        if !keep.insert(f.clone()) {
            continue;
        }
        for n in needs.get(&f).into_iter().flatten() {
            if let Some(lib) = find(n) {
                todo.push(lib);
            }
        }
    }
    let mut pruned = Pruned::default();
    for d in &dirs {
        let mut entries: Vec<PathBuf> = fs::read_dir(d)
            .map_err(io(d))?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        // Library files first, then the symlinks left dangling by them.
        for p in &entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let is_lib = name.contains(".so")
                && fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file())
                && needs.contains_key(p);
            if is_lib && !keep.contains(p) && !ALWAYS_KEEP.iter().any(|k| name.starts_with(k)) {
                pruned.bytes += fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                fs::remove_file(p).map_err(io(p))?;
                pruned
                    .files
                    .push(p.strip_prefix(root).unwrap_or(p).to_path_buf());
            }
        }
        for p in &entries {
            let link = fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
            if link && resolve_in(root, p).is_none_or(|t| !t.exists()) {
                fs::remove_file(p).map_err(io(p))?;
                pruned
                    .files
                    .push(p.strip_prefix(root).unwrap_or(p).to_path_buf());
            }
        }
    }
    pruned.files.sort();
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    /// Builds a tiny tree with real ELF files from the host's compiler: a program linking
    /// libused, and libunused nobody links.
    #[test]
    fn only_libraries_a_program_needs_stay() {
        crate::host::doctor::require("gcc").unwrap_or_else(|e| panic!("{e}"));
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let lib = root.join("usr/lib/x86_64-linux-gnu");
        fs::create_dir_all(&lib).unwrap();
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(lib.join("plugins")).unwrap();
        let cc = |args: &[&str]| {
            let st = Command::new("gcc").args(args).status().unwrap();
            assert!(st.success(), "gcc {args:?}");
        };
        // libused calls into libdeep; the program calls into libused; nobody into libunused.
        for (name, code, link) in [
            ("deep", "int g(void){return 1;}", None),
            ("unused", "int h(void){return 2;}", None),
            (
                "used",
                "int g(void); int f(void){return g();}",
                Some("-l:libdeep.so.1"),
            ),
        ] {
            let src = d.path().join(format!("{name}.c"));
            fs::write(&src, format!("{code}\n")).unwrap();
            let out = lib.join(format!("lib{name}.so.1.0"));
            let mut args = vec![
                "-shared".to_string(),
                "-fPIC".into(),
                "-o".into(),
                out.display().to_string(),
                format!("-Wl,-soname,lib{name}.so.1"),
                src.display().to_string(),
                format!("-L{}", lib.display()),
            ];
            args.extend(link.map(String::from));
            cc(&args.iter().map(String::as_str).collect::<Vec<_>>());
            symlink(
                format!("lib{name}.so.1.0"),
                lib.join(format!("lib{name}.so.1")),
            )
            .unwrap();
        }
        let main = d.path().join("main.c");
        fs::write(&main, "int f(void); int main(void){return f();}\n").unwrap();
        cc(&[
            "-o",
            root.join("bin/prog").to_str().unwrap(),
            main.to_str().unwrap(),
            &format!("-L{}", lib.display()),
            &format!("-Wl,-rpath-link,{}", lib.display()),
            "-l:libused.so.1",
        ]);
        fs::copy(lib.join("libunused.so.1.0"), lib.join("plugins/p.so")).unwrap();
        fs::copy(lib.join("libunused.so.1.0"), lib.join("libgcc_s.so.1")).unwrap();
        fs::write(lib.join("notes.txt"), "not elf").unwrap();

        let p = prune_libraries(&root).unwrap();
        let names: Vec<String> = p.files.iter().map(|f| f.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "usr/lib/x86_64-linux-gnu/libunused.so.1",
                "usr/lib/x86_64-linux-gnu/libunused.so.1.0"
            ]
        );
        assert!(p.bytes > 0);
        for kept in [
            "libused.so.1",
            "libused.so.1.0",
            "libdeep.so.1",
            "libdeep.so.1.0",
            "plugins/p.so",
            "libgcc_s.so.1",
            "notes.txt",
        ] {
            assert!(
                fs::symlink_metadata(lib.join(kept)).is_ok(),
                "{kept} was removed"
            );
        }
        // Pruning again finds nothing more.
        assert_eq!(prune_libraries(&root).unwrap(), Pruned::default());
    }
}
