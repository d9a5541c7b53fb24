//! Tests of [`super`]: ownership, the order of signal and reap, the signal path.
use super::*;

#[test]
fn shell_line_quotes_what_needs_it_and_sh_splits_it_back() {
    let l = shell_line(&["qemu", "-append", "a b", "romfile="]);
    assert_eq!(l, "qemu -append 'a b' romfile=");
    let argv = ["printf", "%s|", "it's", "", "$HOME", "a\nb", "*"];
    let out = Command::new("sh")
        .arg("-c")
        .arg(shell_line(&argv))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "it's||$HOME|a\nb|*|");
}

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
    drop(sup);
    assert!(!alive(leader));
    // The grandchild was reparented; it must be gone or a zombie about to be reaped by init.
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(grandchild) {
        let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "grandchild {grandchild} survived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_signal_path_kills_helpers_and_what_they_started() {
    // What rig's handler does on SIGTERM, while a helper (here: a shell with a job of its
    // own, like mmdebstrap with its apt-get) runs. Scoped to this test's helper: the
    // handler's own list (every descendant of the process) would take other tests'
    // children with it when tests run as threads of one process.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let pidfile = dir.path().join("pid");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("sleep 60 & echo $! > {}; wait", pidfile.display()));
    let helper = std::thread::spawn(move || run_logged(cmd, &log));
    let deadline = Instant::now() + Duration::from_secs(10);
    let grandchild: i32 = loop {
        if let Some(p) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the helper never started its job"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(descendants().contains(&grandchild));
    let sh = all_procs()
        .iter()
        .find(|p| p.pid == grandchild)
        .map(|p| p.ppid)
        .unwrap();
    assert!(descendants().contains(&sh));
    // Parents first, as the handler's list has them: a shell that saw its job die first
    // could exit 0 before its own signal arrives.
    let subtree = || {
        let mut v: Vec<i32> = descendants().into_iter().filter(|&p| p == sh).collect();
        v.extend(descendants_of(sh));
        v
    };
    stop_processes(&[], subtree);
    let r = helper.join().unwrap();
    assert!(r.unwrap_err().to_string().contains("signal"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(grandchild)
        && !std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            Instant::now() < deadline,
            "the helper's job {grandchild} lives on"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(subtree().is_empty(), "{:?}", subtree());
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

#[test]
fn a_running_leader_is_terminated_killed_and_reaped_last() {
    let mut cmd = Command::new("sh");
    // Ignores SIGTERM: only the SIGKILL after the grace ends it.
    cmd.args(["-c", "trap '' TERM; while :; do sleep 0.05; done"]);
    let mut sup = Supervised::spawn(cmd, None).unwrap();
    sup.grace = Duration::from_millis(300);
    let leader = sup.pid() as i32;
    std::thread::sleep(Duration::from_millis(100));
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
