//! rig away from its checkout: a copy of the binary, run from a folder outside the checkout with
//! the checkout hidden (a tmpfs mounted over it in a private mount namespace, `unshare`), checks
//! a user's scenario whose overlay lies beside it, a scenario named through the project file
//! (`rig.yaml`, found upward), and a built-in scenario by name. Everything rig's own it reads
//! comes from the copy embedded in the binary, unpacked into the cache.
//!
//! Needs `unshare` (util-linux) and either root or unprivileged user namespaces; without them
//! the test fails and says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("rig/ has a parent")
        .to_path_buf()
}

/// Runs `rig ARGS` (the copy at `bin`) in `cwd`, the checkout hidden, with its own cache.
fn hidden_rig(bin: &Path, cwd: &Path, cache: &Path, args: &[&str]) -> Output {
    // After the tmpfs is mounted, the checkout's own files must be gone: checked before rig runs.
    let script = r#"mount -t tmpfs rig-test-hides-the-checkout "$1" || exit 97
if [ -e "$1/rig/Cargo.toml" ]; then echo "checkout still visible" >&2; exit 98; fi
shift; exec "$@""#;
    let out = Command::new("unshare")
        .args(["--mount", "--map-root-user", "--propagation", "private"])
        .args(["sh", "-c", script, "sh"])
        .arg(checkout())
        .arg(bin)
        .args(args)
        .current_dir(cwd)
        .env("RIG_CACHE_DIR", cache)
        .env_remove("RIG_REPO")
        .env_remove("RIG_MATRIX_FILE")
        .output()
        .unwrap_or_else(|e| panic!("cannot run unshare: {e} (install util-linux)"));
    assert!(
        !matches!(out.status.code(), Some(97 | 98)),
        "could not hide the checkout: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const OVERLAY: &str =
    "/dts-v1/;\n/plugin/;\n\n&{/} {\n\tmine-node {\n\t\tcompatible = \"rig,mine\";\n\t};\n};\n";

#[test]
fn an_installed_rig_checks_a_users_scenarios_without_the_checkout() {
    let top = tempfile::tempdir().unwrap();
    let top = top.path();
    assert!(
        !top.starts_with(checkout()),
        "the temp folder is inside the checkout"
    );
    let bin = top.join("bin/rig");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_rig"), &bin).unwrap();
    let cache = top.join("cache");

    // A user's project: a scenario with its own overlay beside it (and a built-in one), a
    // project file naming another scenario folder.
    let proj = top.join("proj");
    std::fs::create_dir_all(proj.join("more")).unwrap();
    std::fs::create_dir_all(proj.join("sub/deeper")).unwrap();
    std::fs::write(proj.join("mine.dtso"), OVERLAY).unwrap();
    std::fs::write(
        proj.join("my-scenario.yaml"),
        "boards: [arm64-virt]\nrequires: [of_overlay]\nsteps:\n  \
         - overlay_load: {file: mine.dtso, id: m}\n  \
         - overlay_unload: {id: m}\n  \
         - overlay_load: {file: simple-node.dtso, id: s}\n",
    )
    .unwrap();
    std::fs::write(
        proj.join("more/by-name.yaml"),
        "steps:\n  - guest: {run: 'true'}\n",
    )
    .unwrap();
    std::fs::write(proj.join("rig.yaml"), "scenarios: [more]\n").unwrap();

    let out = hidden_rig(&bin, &proj, &cache, &["check", "my-scenario.yaml"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("ok    my-scenario.yaml (3 steps)"),
        "{stdout}"
    );

    // By name, from a folder below the project file; and a built-in scenario by name.
    let deeper = proj.join("sub/deeper");
    let out = hidden_rig(&bin, &deeper, &cache, &["check", "by-name", "fake-warning"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 2);

    // An overlay found nowhere is bad input that lists both folders' overlays.
    std::fs::write(
        proj.join("bad.yaml"),
        "requires: [of_overlay]\nsteps:\n  - overlay_load: {file: nope.dtso, id: n}\n",
    )
    .unwrap();
    let out = hidden_rig(&bin, &proj, &cache, &["check", "bad.yaml"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("mine.dtso"), "{stdout}");
    assert!(stdout.contains("simple-node.dtso"), "{stdout}");

    // The built-in overlay was read from the embedded copy, unpacked into this cache.
    let unpacked: Vec<PathBuf> = std::fs::read_dir(cache.join("assets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    assert!(unpacked[0].join("overlays/simple-node.dtso").is_file());
    assert!(unpacked[0].join("images/init/init").is_file());

    // `--cache-dir` holds the assets too, not RIG_CACHE_DIR's cache.
    let other = top.join("other-cache");
    let flag = other.to_str().unwrap();
    let out = hidden_rig(
        &bin,
        &proj,
        &cache,
        &["--cache-dir", flag, "check", "fake-warning"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(other.join("assets").is_dir(), "--cache-dir got no assets");
}
