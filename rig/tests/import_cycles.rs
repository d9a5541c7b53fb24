//! No import cycles between the library's files or folders (docs/architecture.md): runs
//! `ci/import-cycles.py` over `rig/src`. python3 is required: without it the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("rig/ has a parent")
        .to_path_buf()
}

fn check(src: &Path) -> Output {
    let script = repo().join("ci/import-cycles.py");
    Command::new("python3")
        .arg(&script)
        .arg(src)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 {}: {e} (install python3)",
                script.display()
            )
        })
}

#[test]
fn import_cycles() {
    let out = check(&repo().join("rig/src"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import cycles in rig/src (exit {:?}):\n{stdout}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("files: no import cycles"), "{stdout}");
    assert!(stdout.contains("folders: no import cycles"), "{stdout}");
}

/// The checker finds what it is there for: two sibling files using each other (one through a
/// grouped `use`, one through a path in code), a loop of three across folders, and not a
/// child using its parent.
#[test]
fn import_cycles_are_found() {
    let d = tempfile::tempdir().unwrap();
    let files = [
        ("lib.rs", "pub mod a;\npub mod b;\npub mod f;\npub mod g;\n"),
        ("a/mod.rs", "pub mod x;\npub mod y;\npub struct E;\n"),
        ("a/x.rs", "use super::{y::{Y}, E};\npub struct X;\n"),
        ("a/y.rs", "pub struct Y;\nfn f() { let _ = super::x::X; }\n"),
        ("b.rs", "// use crate::a::x; is a comment\npub fn b() {}\n"),
        ("f.rs", "pub fn f() { crate::g::g() }\n"),
        ("g.rs", "use crate::f;\npub fn g() { f::f() }\n"),
    ];
    for (name, text) in files {
        let path = d.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let out = check(d.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("cycle among a/x.rs, a/y.rs"), "{stdout}");
    assert!(stdout.contains("cycle among f.rs, g.rs"), "{stdout}");
    assert!(
        !stdout.contains("a/mod.rs ->"),
        "a child using its parent is no cycle: {stdout}"
    );
    assert!(!stdout.contains("b.rs"), "a comment is no import: {stdout}");
}
