//! Tests of [`super`]: ownership, the order of signal and reap, the signal path.
use super::*;

fn alive(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

#[test]
fn drop_kills_the_whole_group() {
    // The shell starts a grandchild in the same group and then waits.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("sleep 60 & echo $! > {}; wait", pidfile.display()));
    let sup = Supervised::spawn(cmd, None).unwrap();
    let leader = sup.pid() as i32;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
        assert!(Instant::now() < deadline, "child never wrote its pid");
        std::thread::sleep(Duration::from_millis(10));
    }
    let grandchild: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(grandchild));
    let grandchild_fd = pidfd(grandchild);
    drop(sup);
    assert!(!alive(leader));
    // The grandchild was reparented; it must be gone or a zombie about to be reaped by init.
    assert!(
        ends_by(&grandchild_fd, Instant::now() + Duration::from_secs(2)),
        "grandchild {grandchild} survived"
    );
}

/// A handle on process `pid` (a child of ours or not) that turns readable when it ends.
pub(crate) fn pidfd(pid: i32) -> std::os::fd::OwnedFd {
    let p = Pid::from_raw(pid).unwrap();
    rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
        .unwrap_or_else(|e| panic!("pidfd_open({pid}): {e}"))
}

/// Whether the process of `pidfd` ended (exited, reaped or not) before `deadline`.
pub(crate) fn ends_by(pidfd: &std::os::fd::OwnedFd, deadline: Instant) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = Timespec::try_from(left).unwrap();
        match poll(&mut [PollFd::new(pidfd, PollFlags::IN)], Some(&left)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// Set to a folder in the copy of this test binary that runs the signal path alone.
const SIGNAL_PATH_CHILD: &str = "RIG_TEST_SIGNAL_PATH_DIR";

/// What rig's handler does on SIGTERM ([`kill_all_children`]) while QEMU (a supervised group
/// with a process of its own) and a helper with a job of its own (mmdebstrap with its apt-get)
/// run: all of them go. The handler kills every descendant of the process, so in the test
/// process (`cargo test` runs tests as threads of one) it would take other tests' children with
/// it: the test runs it in a child process, this test binary again running this test alone.
#[test]
fn the_signal_path_kills_helpers_and_what_they_started() {
    if let Some(dir) = std::env::var_os(SIGNAL_PATH_CHILD) {
        kill_all_children_in_this_process(Path::new(&dir));
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // `rig::host::process::tests` without the crate's name.
    let module = module_path!().split_once("::").unwrap().1;
    let name = format!("{module}::the_signal_path_kills_helpers_and_what_they_started");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(SIGNAL_PATH_CHILD, d.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the signal path failed:\n{text}");
    // It ran, alone, to its end.
    assert!(text.contains("test result: ok. 1 passed"), "{text}");
    assert!(d.path().join("done").exists(), "{text}");
}

/// [`the_signal_path_kills_helpers_and_what_they_started`] in the child process: every
/// descendant of this process is the test's own.
fn kill_all_children_in_this_process(dir: &Path) {
    let job = |name: &str| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!(
            "sleep 60 & echo $! > {}; wait",
            dir.join(name).display()
        ));
        cmd
    };
    let mut qemu = Supervised::spawn(job("qemu-job"), None).unwrap();
    let log = dir.join("log");
    let helper_cmd = job("helper-job");
    let helper = std::thread::spawn(move || run_logged(helper_cmd, &log));
    let qemu_job = wait_pidfile(&dir.join("qemu-job"));
    let helper_job = wait_pidfile(&dir.join("helper-job"));
    let helper_sh = all_procs()
        .iter()
        .find(|p| p.pid == helper_job)
        .map(|p| p.ppid)
        .unwrap();
    let leader = qemu.pid() as i32;
    let ours = descendants();
    for p in [leader, qemu_job, helper_sh, helper_job] {
        assert!(ours.contains(&p), "{p} is not ours: {ours:?}");
    }
    // Opened while each runs: a pidfd stays this process's even once the pid is free again.
    let fds: Vec<_> = [leader, qemu_job, helper_sh, helper_job]
        .map(|p| (p, pidfd(p)))
        .into();

    kill_all_children();

    let deadline = Instant::now() + Duration::from_secs(10);
    let left: Vec<i32> = fds
        .iter()
        .filter(|(_, fd)| !ends_by(fd, deadline))
        .map(|(p, _)| *p)
        .collect();
    if !left.is_empty() {
        // Not left behind by a failed test.
        for (_, fd) in &fds {
            let _ = rustix::process::pidfd_send_signal(fd, Signal::KILL);
        }
        panic!("{left:?} of {fds:?} live on");
    }
    assert!(descendants().is_empty(), "{:?}", descendants());
    // The helper ended by the signal, and says so.
    let r = helper.join().unwrap();
    assert!(r.unwrap_err().to_string().contains("signal"));
    // QEMU's place ended by the SIGTERM first; its leader is left for the Supervised to reap.
    let st = qemu.try_wait().unwrap();
    assert_eq!(st.and_then(|s| s.signal()), Some(libc::SIGTERM), "{st:?}");
    assert!(group_members(leader).is_empty());
    drop(qemu);
    std::fs::write(dir.join("done"), "").unwrap();
}

/// The state letter of `pid` (`Z` for a zombie), `None` once it is reaped.
fn state(pid: i32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().next().map(str::to_string)
}

fn wait_pidfile(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(p) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return p;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_exited_leader_pins_its_group_until_what_is_left_of_the_group_is_killed() {
    // QEMU (the leader) exits and leaves a process of its group behind. rig sees the exit
    // but must not reap the leader yet: once reaped, its pid, and so the group id, may be
    // given to an unrelated process, and `kill(-pgid)` would reach that one instead.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "sleep 60 & echo $! > {}; exit 3",
        pidfile.display()
    ));
    let mut sup = Supervised::spawn(cmd, None).unwrap();
    let leader = sup.pid() as i32;
    let left = wait_pidfile(&pidfile);
    let st = sup.wait_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(st.code(), Some(3));
    assert_eq!(sup.try_wait().unwrap().unwrap().code(), Some(3));
    assert_eq!(
        state(leader).as_deref(),
        Some("Z"),
        "the exited leader was reaped while its group may still be signalled"
    );
    assert!(
        live_groups().contains(&leader),
        "the group left the signal handler's list while a process of it lives"
    );
    assert_eq!(group_members(leader), vec![left]);
    assert_eq!(sup.terminate().unwrap().code(), Some(3));
    assert_eq!(state(leader), None, "terminate did not reap the leader");
    assert!(!live_groups().contains(&leader));
    assert!(
        state(left).is_none_or(|s| s == "Z"),
        "the leader's leftover {left} lives on"
    );
    let ops = recorded(leader);
    assert_eq!(
        ops,
        vec![Op::Signal(leader, libc::SIGKILL), Op::Reap(leader)],
        "the group was signalled after its leader was reaped, or not killed"
    );
    drop(sup);
    assert_eq!(recorded(leader), ops, "drop signalled a reaped group");
}

/// A helper that obeys SIGTERM dies in the grace; its job, which ignores SIGTERM, is then
/// re-parented to init and no longer a descendant: it must still get the SIGKILL.
#[test]
fn a_job_orphaned_in_the_grace_is_still_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("job");
    let mut helper = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "sh -c \"trap '' TERM; echo \\$\\$ > {}; exec sleep 60\" & wait",
            pidfile.display()
        ))
        .spawn()
        .unwrap();
    let helper_pid = helper.id() as i32;
    let job = wait_pidfile(&pidfile);
    let job_fd = pidfd(job);
    // Only this test's processes: the helper while it runs, and what it started.
    let procs = || {
        let mut v = descendants_of(helper_pid);
        if all_procs().iter().any(|p| p.pid == helper_pid && !p.gone) {
            v.push(helper_pid);
        }
        v
    };
    assert_eq!(procs().len(), 2, "{:?}", procs());
    stop_processes(&[], procs);
    let ended = ends_by(&job_fd, Instant::now() + Duration::from_secs(5));
    if !ended {
        let _ = kill_process(Pid::from_raw(job).unwrap(), Signal::KILL);
    }
    let _ = helper.wait();
    assert!(ended, "the orphaned job {job} survived the SIGKILL round");
}

#[test]
fn a_running_leader_is_terminated_killed_and_reaped_last() {
    let mut cmd = Command::new("sh");
    // Ignores SIGTERM (says so once it does): only the SIGKILL after the grace ends it.
    cmd.args(["-c", "trap '' TERM; echo ignoring; exec sleep 60"])
        .stdout(Stdio::piped());
    let mut sup = Supervised::spawn(cmd, None).unwrap();
    sup.grace = Duration::from_millis(300);
    let leader = sup.pid() as i32;
    let mut said = String::new();
    let mut out = std::io::BufReader::new(sup.take_stdout().unwrap());
    std::io::BufRead::read_line(&mut out, &mut said).unwrap();
    assert_eq!(said, "ignoring\n");
    assert!(sup.try_wait().unwrap().is_none());
    let st = sup.terminate().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    assert_eq!(describe_status(&st), "killed by signal 9");
    assert_eq!(
        recorded(leader),
        vec![
            Op::Signal(leader, libc::SIGTERM),
            Op::Signal(leader, libc::SIGKILL),
            Op::Reap(leader)
        ]
    );
    assert_eq!(state(leader), None);
    assert!(!live_groups().contains(&leader));
}

#[test]
fn a_leader_killed_by_a_signal_is_seen_so() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "kill -9 $$"]);
    let mut sup = Supervised::spawn(cmd, None).unwrap();
    let st = sup.wait_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    assert_eq!(sup.terminate().unwrap().signal(), Some(libc::SIGKILL));
}

/// What a [`Supervised`] did to its group, in order: the seam that shows no signal
/// follows the reap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Signal(i32, i32),
    Reap(i32),
}

static OPS: Mutex<Vec<Op>> = Mutex::new(Vec::new());

pub(super) fn record(op: Op) {
    OPS.lock().unwrap_or_else(|e| e.into_inner()).push(op);
}

fn recorded(pgid: i32) -> Vec<Op> {
    OPS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|op| matches!(op, Op::Signal(g, _) | Op::Reap(g) if *g == pgid))
        .copied()
        .collect()
}

#[test]
fn early_exit_is_seen_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("err");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo 'qemu: bad option' >&2; exit 3"]);
    let mut sup = Supervised::spawn(cmd, Some(&log)).unwrap();
    let st = sup.wait_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(st.code(), Some(3));
    assert!(sup.stderr_tail(5).contains("bad option"));
    assert_eq!(describe_status(&st), "exit code 3");
}
