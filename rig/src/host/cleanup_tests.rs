//! Tests of [`super`]: registration and settling in-process; the signal path in a child process
//! (it exits, and closes the registry for good, so it cannot run among other tests).

use super::*;
use crate::host::cache::{Cache, CacheError, CacheKey};
use rustix::process::{kill_process, Pid, Signal};
use rustix::termios::{LocalModes, Termios};
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn registered(path: &Path) -> bool {
    registry().actions.iter().any(|(_, a)| match a {
        Action::RemoveDir(p) | Action::RemoveFile(p) => p == path,
        Action::RestoreTerminal { .. } => false,
    })
}

#[test]
fn a_temp_dir_is_registered_while_it_lives_and_removed_on_drop() {
    let base = tempfile::tempdir().unwrap();
    let t = TempDir::new(|| {
        tempfile::Builder::new()
            .prefix("t-")
            .tempdir_in(base.path())
    })
    .unwrap();
    let p = t.path().to_path_buf();
    std::fs::write(p.join("f"), "x").unwrap();
    assert!(registered(&p));
    drop(t);
    assert!(!p.exists());
    assert!(!registered(&p));
}

#[test]
fn a_renamed_temp_dir_is_published_whole_and_unregistered() {
    let base = tempfile::tempdir().unwrap();
    let t = TempDir::new(|| {
        tempfile::Builder::new()
            .prefix("t-")
            .tempdir_in(base.path())
    })
    .unwrap();
    let p = t.path().to_path_buf();
    std::fs::write(p.join("f"), "x").unwrap();
    let dest = base.path().join("entry");
    t.rename_to(&dest).unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "x");
    assert!(!p.exists());
    assert!(!registered(&p) && !registered(&dest));

    // A failed rename (onto a non-empty folder) removes the temporary folder.
    let t = TempDir::new(|| {
        tempfile::Builder::new()
            .prefix("t-")
            .tempdir_in(base.path())
    })
    .unwrap();
    let p = t.path().to_path_buf();
    assert!(t.rename_to(&base.path().join("entry")).is_err());
    assert!(!p.exists());
    assert!(!registered(&p));
}

#[test]
fn a_settled_registration_runs_the_owners_last_act_once() {
    let reg = Registration::new(Action::RemoveFile("/nonexistent/rig-test".into()));
    assert!(registered(Path::new("/nonexistent/rig-test")));
    assert_eq!(reg.settle(|| 7), Some(7));
    assert!(!registered(Path::new("/nonexistent/rig-test")));
}

/// The environment variable that makes [`signal_child`] do its work (its folder).
const CHILD_ENV: &str = "RIG_CLEANUP_TEST_CHILD";

/// Not a test: the rig-like process [`a_signal_leaves_no_temporary_folder_scratch_file_or_raw_terminal`]
/// starts and kills. It installs rig's signal handlers, then holds what a run holds when a
/// signal comes: a cache entry half built, a VM socket folder, `--snapshot`'s `state.bin`, the
/// console's raw terminal (its stdin), a supervised child.
#[test]
#[ignore = "helper process of a_signal_leaves_no_temporary_folder_scratch_file_or_raw_terminal"]
fn signal_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    crate::host::process::install_signal_handlers().unwrap();
    // What Vm::boot makes for QEMU's sockets.
    std::fs::create_dir_all(dir.join("vm")).unwrap();
    let _sockets = TempDir::new(|| {
        tempfile::Builder::new()
            .prefix("vm-")
            .tempdir_in(dir.join("vm"))
    })
    .unwrap();
    // What save_snapshot registers while QEMU writes state.bin.
    let state = dir.join("state.bin");
    let _state = Registration::new(Action::RemoveFile(state.clone()));
    std::fs::write(&state, vec![0u8; 4096]).unwrap();
    let _raw = crate::host::terminal::RawTerminal::enter();
    let mut sleep = Command::new("sleep");
    sleep.arg("600");
    let sup = crate::host::process::Supervised::spawn(sleep, None).unwrap();
    let cache = Cache::at(dir.join("cache"));
    let _ = cache.get_or_build::<CacheError>("thing", &CacheKey::new("slow"), |tmp| {
        std::fs::write(tmp.join("half"), "half a build").unwrap();
        println!("READY {}", sup.pid());
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
}

fn termios(fd: &OwnedFd) -> Termios {
    rustix::termios::tcgetattr(fd).unwrap()
}

fn cooked(t: &Termios) -> bool {
    t.local_modes
        .contains(LocalModes::ICANON | LocalModes::ECHO)
}

/// A new pseudo-terminal, as openpty(3) makes it: its master and its slave (no controlling tty).
fn openpty() -> (OwnedFd, OwnedFd) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .expect("open the pty's slave");
    (master, slave.into())
}

#[test]
fn a_signal_leaves_no_temporary_folder_scratch_file_or_raw_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (_master, slave_fd) = openpty();
    assert!(cooked(&termios(&slave_fd)), "a new pty starts cooked");
    let stdin = slave_fd.try_clone().unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "host::cleanup::tests::signal_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // libtest prints the test's name before it runs, on the same line as what it prints first.
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(i) = line.find("READY ") {
                let _ = tx.send(line[i + 6..].trim().parse::<i32>().ok());
                return;
            }
        }
    });
    let Ok(Some(sleeper)) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child never got ready");
    };
    let cache_kind = dir.path().join("cache/thing");
    let tmp_dirs = || -> Vec<String> {
        std::fs::read_dir(&cache_kind)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp"))
            .collect()
    };
    // Everything is in place, the terminal raw.
    assert_eq!(tmp_dirs().len(), 1);
    assert_eq!(std::fs::read_dir(dir.path().join("vm")).unwrap().count(), 1);
    assert!(dir.path().join("state.bin").exists());
    assert!(
        !cooked(&termios(&slave_fd)),
        "the child did not make its terminal raw"
    );

    // Our own child, not yet reaped.
    kill_process(Pid::from_child(&child), Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the child did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(128 + Signal::TERM.as_raw()));
    assert_eq!(
        tmp_dirs(),
        Vec::<String>::new(),
        "a cache build folder stayed"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("vm")).unwrap().count(),
        0,
        "a VM socket folder stayed"
    );
    assert!(!dir.path().join("state.bin").exists(), "state.bin stayed");
    assert!(
        cooked(&termios(&slave_fd)),
        "the terminal was left in raw mode"
    );
    // And the supervised child is gone.
    let stat = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z "), "{stat}");
}
