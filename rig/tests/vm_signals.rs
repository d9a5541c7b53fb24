//! VM tests: a signal that ends rig mid-run leaves nothing of the run behind but its evidence:
//! no QEMU socket folder, no `--snapshot` saved state (host::cleanup wired into machine::vm and
//! machine::snapshot). The mechanism itself is unit-tested in host::cleanup.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private runtime folder for one rig, so its `vm/` holds only that rig's socket folders.
fn runtime_dir() -> tempfile::TempDir {
    // Ours and 0700, or rig would not take it as XDG_RUNTIME_DIR (and use /tmp/rig-<uid>).
    tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .unwrap()
}

fn socket_folders(xdg: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(xdg.join("rig/vm")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rig did not exit within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_mid_run_leaves_no_socket_folder_and_no_saved_state() {
    // The scenario's host-side sleep keeps rig's main thread away from QEMU: when the signal
    // thread kills QEMU, nothing on the main thread notices and drops the VM (its socket
    // folder) or gets to the end of the repetitions (where state.bin is removed) before the
    // signal thread exits. Only the signal path itself can clean up.
    let xdg = runtime_dir();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("slow.yaml");
    std::fs::write(
        &scenario,
        "name: slow\ndescription: a long host-side sleep\nsteps:\n  - sleep: 120s\n",
    )
    .unwrap();
    let artifacts = dir.path().join("runs");
    let run_id = format!("sigterm-test-{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rig"))
        .arg("run")
        .arg(&scenario)
        .args([
            "--board",
            "x86_64-q35",
            "--kernel",
            "debian-6.1",
            "--no-setup",
            "--snapshot",
            "--repeat",
            "3",
        ])
        .env("RIG_ARTIFACTS", &artifacts)
        .env("XDG_RUNTIME_DIR", xdg.path())
        .env("RIG_RUN_ID", &run_id)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The run's folder, its saved state, then the first restored repetition's QEMU.
    let deadline = Instant::now() + Duration::from_secs(240);
    let run = loop {
        let found = std::fs::read_dir(&artifacts)
            .ok()
            .and_then(|mut rd| rd.next())
            .map(|e| e.unwrap().path());
        if let Some(run) = found {
            if run.join("saved-boot/state.bin").exists() && run.join("run-1/qemu.stderr").exists() {
                break run;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "rig ended before its first repetition"
        );
        assert!(Instant::now() < deadline, "no repetition started");
        std::thread::sleep(Duration::from_millis(100));
    };
    let state = run.join("saved-boot/state.bin");
    assert!(std::fs::metadata(&state).unwrap().len() > 0);
    assert_eq!(
        socket_folders(xdg.path()).len(),
        1,
        "the repetition's VM has no socket folder"
    );
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("a pid"),
        rustix::process::Signal::TERM,
    );
    let st = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(st.code(), Some(128 + libc::SIGTERM));
    assert!(!state.exists(), "the saved guest state stayed behind");
    let marks = rig::soak::procs::RunMarks { pgid: None, run_id };
    let left = rig::soak::procs::find(&marks);
    assert!(left.is_empty(), "processes of the run survived: {left:?}");
    assert_eq!(
        socket_folders(xdg.path()),
        Vec::<PathBuf>::new(),
        "a VM's socket folder stayed behind"
    );
    // The evidence stays: the saved boot's console log and the repetition's folder.
    assert!(run.join("saved-boot/console.log").exists());
    assert!(run.join("run-1").is_dir());
}
