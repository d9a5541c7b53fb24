//! The `rig` binary's contract without booting anything: exit codes for bad input (2), stdout
//! kept clean, and errors that name what was wrong. (Booting cases live in the vm_* tests.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rig(args: &[&str]) -> Output {
    rig_in(args, None)
}

/// `rig ARGS` with `RIG_REPO` (where `overlays/` is) at `repo` when given.
fn rig_in(args: &[&str], repo: Option<&Path>) -> Output {
    let cache = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rig"));
    cmd.args(args)
        .env("RIG_CACHE_DIR", cache.path())
        .env("RIG_ARTIFACTS", runs.path());
    if let Some(r) = repo {
        cmd.env("RIG_REPO", r);
    }
    cmd.output().unwrap()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Rig's own refusal of bad input: exit 2, `rig: error: …` on stderr, nothing on stdout. clap's
/// usage errors (a missing argument, an unknown flag) also exit 2, but say `error: …` and the
/// usage, so a test that checks only the code passes for those too. Returns stderr.
fn refused_by_rig(out: &Output, what: &str) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(
        err.starts_with("rig: error: "),
        "{what}: not rig's own error: {err}"
    );
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout: {}",
        text(&out.stdout)
    );
    err
}

#[test]
fn unknown_kernel_is_bad_input() {
    for kernel in ["nope", "rig-6.12-nope", "rig-6.1"] {
        let out = rig(&[
            "boot",
            "--no-setup",
            "--board",
            "x86_64-q35",
            "--kernel",
            kernel,
            "--",
            "true",
        ]);
        let err = refused_by_rig(&out, &format!("--kernel {kernel}"));
        assert!(err.contains(&format!("unknown kernel `{kernel}`")), "{err}");
    }
}

/// Issue #31: the command shell's transport is `hvc`; its old name `serial` is still accepted
/// with a deprecation warning on stderr that names the new spelling, and the new name gets none.
/// (The unknown kernel ends each run before anything boots or is fetched: the warning comes
/// first.) A transport rig does not know lists the current names only.
#[test]
fn transport_serial_is_the_deprecated_name_of_hvc() {
    let boot = |transport: &str| {
        rig(&[
            "boot",
            "--no-setup",
            "--board",
            "x86_64-q35",
            "--kernel",
            "nope",
            "--transport",
            transport,
            "--",
            "true",
        ])
    };
    let out = boot("serial");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some(
            "rig: warning: `--transport serial` is deprecated: the command shell is on the \
             guest's virtio console hvc0, not a serial port; write `--transport hvc`"
        ),
        "{err}"
    );
    assert!(
        lines.next().unwrap_or("").starts_with("rig: error: "),
        "{err}"
    );
    assert!(err.contains("unknown kernel `nope`"), "{err}");
    let err = refused_by_rig(&boot("hvc"), "--transport hvc");
    assert!(!err.contains("warning"), "{err}");
    assert!(err.contains("unknown kernel `nope`"), "{err}");
    let out = boot("telnet");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown transport `telnet` (known: hvc, ssh)"),
        "{err}"
    );
}

/// Issue #31: a scenario that says `transport: serial` / `via: serial` (the old name of `hvc`)
/// still checks, with one warning per use on stderr naming its line and the new spelling;
/// stdout stays the check's result alone.
#[test]
fn check_warns_about_the_old_transport_name_in_a_scenario() {
    let f = fixtures().join("old-transport-name.yaml");
    let out = rig(&["check", f.to_str().unwrap()]);
    let (stdout, err) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{err}");
    assert_eq!(stdout, format!("ok    {} (1 steps)\n", f.display()));
    let warnings: Vec<&str> = err.lines().collect();
    let f = f.display();
    assert_eq!(
        warnings,
        [
            format!(
                "rig: warning: {f}:3:12: transport: `transport: serial` is deprecated: the \
                 command shell is on the guest's virtio console hvc0, not a serial port; write \
                 `transport: hvc`"
            ),
            format!(
                "rig: warning: {f}:5:33: steps[0].guest.via: `via: serial` is deprecated: the \
                 command shell is on the guest's virtio console hvc0, not a serial port; write \
                 `via: hvc`"
            ),
        ],
        "{err}"
    );
}

#[test]
fn unknown_board_and_flavor_are_bad_input() {
    // clap exits 2 on any usage error (a missing argument too): this must be clap refusing the
    // value of --board with rig's own board check's message, which names the board and lists
    // the known ones. (The unknown kernel keeps a run without that check from fetching one; its
    // message is not this.)
    let out = rig(&[
        "boot",
        "--no-setup",
        "--board",
        "riscv",
        "--kernel",
        "nope",
        "--",
        "true",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(
            "error: invalid value 'riscv' for '--board <BOARD>': unknown board `riscv` (known: \
             x86_64-q35, arm64-virt)\n"
        ),
        "not a value error on --board: {err}"
    );
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    // `rig soak --accel` is checked by clap like every other --accel, before a soak folder exists.
    let out = rig(&["soak", "--accel", "hvf"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(
            "error: invalid value 'hvf' for '--accel <ACCEL>': unknown accelerator `hvf` (known: \
             auto, kvm, tcg)\n"
        ),
        "not a value error on --accel: {err}"
    );
    let out = rig(&[
        "kernel",
        "build",
        "--no-setup",
        "--arch",
        "arm64",
        "--flavor",
        "nope",
    ]);
    let err = refused_by_rig(&out, "--flavor nope");
    assert!(
        err.starts_with("rig: error: unknown kernel flavor `nope` (known: "),
        "{err}"
    );
    assert!(err.contains("known-bad-devlink-wait"), "{err}");
}

/// `rig ARGS` in `cwd` (where a project file is found), with a scratch cache and run folder.
fn rig_at(cwd: &Path, args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(args)
        .current_dir(cwd)
        .env("RIG_CACHE_DIR", cache.path())
        .env("RIG_ARTIFACTS", cache.path().join("runs"))
        .output()
        .unwrap()
}

#[test]
fn a_projects_kernel_inputs_are_checked_before_anything_builds() {
    let d = tempfile::tempdir().unwrap();
    let deep = d.path().join("sub");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(
        d.path().join("rig.yaml"),
        "kernel:\n  fragments: [gone.config]\n",
    )
    .unwrap();
    let out = rig_at(
        &deep,
        &["kernel", "build", "--no-setup", "--arch", "x86_64"],
    );
    let err = refused_by_rig(&out, "missing project fragment");
    assert!(
        err.contains("rig.yaml:2:15: kernel.fragments[0]: config fragment")
            && err.contains("gone.config"),
        "{err}"
    );
    // debian-6.1 (the default --kernel) cannot take the project's patches: refused, not
    // booted without them, before any host tool or download.
    std::fs::write(d.path().join("0001.patch"), "--- a/x\n+++ b/x\n").unwrap();
    std::fs::write(
        d.path().join("rig.yaml"),
        "kernel:\n  patches: [0001.patch]\n",
    )
    .unwrap();
    for args in [
        &["fetch", "--no-setup", "--board", "x86_64-q35"][..],
        &["boot", "--no-setup", "--board", "x86_64-q35", "--", "true"][..],
    ] {
        let out = rig_at(&deep, args);
        let err = refused_by_rig(&out, args[0]);
        assert!(
            err.contains(&d.path().join("rig.yaml").display().to_string())
                && err.contains("rig does not build `debian-6.1`"),
            "{err}"
        );
    }
}

#[test]
fn missing_log_for_analyze_is_bad_input() {
    let out = rig(&["analyze", "/nonexistent/rig/missing.log"]);
    let err = refused_by_rig(&out, "analyze");
    assert!(
        err.starts_with("rig: error: cannot read /nonexistent/rig/missing.log\n"),
        "{err}"
    );
}

#[test]
fn missing_or_broken_scenario_is_bad_input() {
    let out = rig(&[
        "run",
        "/nonexistent/s.yaml",
        "--no-setup",
        "--board",
        "arm64-virt",
    ]);
    let err = refused_by_rig(&out, "run");
    assert!(
        err.starts_with("rig: error: cannot read scenario file /nonexistent/s.yaml\n"),
        "{err}"
    );
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("bad.yaml");
    std::fs::write(&f, "steps:\n  - guest: {run: true, bogus: 1}\n").unwrap();
    let out = rig(&["check", f.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("bad.yaml:2:24: steps[0].guest.bogus: unknown field `bogus`"),
        "{stdout}"
    );
}

#[test]
fn analyze_reports_to_stdout_and_exits_zero() {
    let log = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/logs/warning_generic_arm64_6.12.log"
    );
    let out = rig(&["analyze", log]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("WARNING in"),
        "{}",
        text(&out.stdout)
    );
}

/// Issue #26: `rig check` refuses devices off the allow-list (usb-mtp would share the host's `/`
/// with the guest, read-write) and hostile objects, each with file:line:column, as bad input.
#[test]
fn check_refuses_devices_and_objects_that_reach_the_host() {
    for (file, want) in [
        (
            "device-usb-mtp.yaml",
            "device-usb-mtp.yaml:4:20: devices[0].qemu.driver: QEMU device `qemu-xhci` is not on \
             the scenario allow-list",
        ),
        (
            "object-prealloc.yaml",
            "object-prealloc.yaml:5:75: steps[0].qmp.arguments.prealloc: `prealloc` is not allowed",
        ),
        (
            "memory-total.yaml",
            "memory-total.yaml:8:35: steps[1].memory_add.size: the scenario would hot-plug 4096 MiB",
        ),
    ] {
        let f = fixtures().join("bad").join(file);
        let out = rig(&["check", f.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{file}: {stdout}");
        assert!(stdout.contains(want), "{file}: {stdout}");
    }
}

/// Issue #26: an overlay that would make dtc read a host file (`/incbin/`, `/include/`) is bad
/// input when the scenario is checked, naming the overlay's line; dtc never runs on it (the
/// `/dev/zero` one would not end).
#[test]
fn check_refuses_overlays_that_include_host_files() {
    let repo = fixtures().join("hostile");
    for (name, line, col, directive) in [
        ("incbin-environ", 10, 11, "/incbin/"),
        ("include-file", 4, 1, "/include/"),
        ("incbin-zero", 9, 19, "/incbin/"),
    ] {
        let f = repo.join(format!("overlay-{name}.yaml"));
        let out = rig_in(&["check", f.to_str().unwrap()], Some(&repo));
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{name}: {stdout}");
        let want = format!(
            "overlay-{name}.yaml:6:26: steps[0].overlay_load.file: overlay {}:{line}:{col}: \
             `{directive}` ",
            repo.join("overlays").join(format!("{name}.dtso")).display()
        );
        assert!(stdout.contains(&want), "{name}: {stdout}\nwant: {want}");
        assert!(
            stdout.contains("overlays may not include files"),
            "{stdout}"
        );
    }
}

/// Every shipped scenario, the matrix and the valid fixtures still pass `rig check`.
#[test]
fn check_accepts_the_shipped_scenarios_and_valid_fixtures() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo.join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.push(fixtures().join("needs-netdevsim.yaml"));
    files.sort();
    let args: Vec<&str> = std::iter::once("check")
        .chain(files.iter().map(|f| f.to_str().unwrap()))
        .collect();
    let out = rig(&args);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        files.len()
    );
    // Nothing shipped uses a deprecated spelling (`via: serial`).
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// Stdout that cannot take rig's output (a full disk behind a redirect) is an infra error with
/// a message (125), never a panic; a reader that went away (`| head`) ends rig quietly.
#[test]
fn a_stdout_that_cannot_be_written_is_an_error_not_a_panic() {
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(["check", "scenarios/fake-warning.yaml"])
        .current_dir(rig::repo_root())
        .stdout(
            std::fs::File::options()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(["check", "scenarios/fake-warning.yaml"])
        .current_dir(rig::repo_root())
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
