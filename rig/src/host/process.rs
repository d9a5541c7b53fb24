//! Child process ownership. Every child rig starts (QEMU above all) runs in its own process group
//! and is owned by a [`Supervised`] guard: dropping it (success, error, panic unwinding) sends
//! SIGTERM to the group, waits a grace period, sends SIGKILL and reaps. A global registry lets the
//! SIGINT/SIGTERM handler ([`install_signal_handlers`]) do the same for every live child before rig
//! exits, and `PR_SET_PDEATHSIG` kills a child whose rig died without cleaning up (SIGKILL).
//!
//! A group is only ever signalled while its leader is an unreaped child of rig: a leader's exit
//! is seen without reaping it (`waitid(WNOWAIT)`), so the zombie keeps the group id from being
//! given to another process; the leader is reaped last, after its group was killed and taken
//! off the handler's list. (Signalling `-pgid` after the reap could kill an unrelated group that
//! got the recycled id.)

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, kill_process_group, Pid, Signal};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot create {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot wait for {program}")]
    Wait {
        program: String,
        #[source]
        source: io::Error,
    },
}

/// Process groups of live supervised children, for the signal handler. A group stays listed
/// until its leader is reaped: while the leader is an unreaped child of rig (running or a
/// zombie) its pid, and so the group id, cannot be given to another process, so signalling the
/// group can only reach the processes rig started. [`Supervised`] removes its group here before
/// it reaps the leader, and the signal handler holds the lock while it signals, so the handler
/// never signals a group whose leader is gone.
static LIVE_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn live_groups() -> std::sync::MutexGuard<'static, Vec<i32>> {
    // A panic while holding the lock leaves a valid list: keep using it.
    LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

fn register(pgid: i32) {
    live_groups().push(pgid);
}

fn unregister(pgid: i32) {
    live_groups().retain(|&p| p != pgid);
}

/// One process from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    /// Zombie or dead: it runs nothing any more.
    gone: bool,
    /// When it started (clock ticks after boot): with the pid, names one process even after
    /// the kernel hands the pid to another.
    start: u64,
}

/// Every process in `/proc` (a snapshot: processes come and go while it is read).
fn all_procs() -> Vec<ProcStat> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) S ppid pgrp …`: comm may hold anything; it ends at the last `)`.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        // Fields from the state on: state(3) ppid(4) pgrp(5) … starttime(22).
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|p| p.parse::<i32>().ok());
        let start = f.get(19).and_then(|p| p.parse::<u64>().ok());
        if let (Some(st), Some(ppid), Some(pgrp), Some(start)) = (f.first(), num(1), num(2), start)
        {
            let gone = *st == "Z" || *st == "X";
            out.push(ProcStat {
                pid,
                ppid,
                pgrp,
                gone,
                start,
            });
        }
    }
    out
}

/// Live (not zombie) descendants of `root` (children, their children, …), from `/proc`.
fn descendants_of(root: i32) -> Vec<i32> {
    let procs: Vec<ProcStat> = all_procs().into_iter().filter(|p| !p.gone).collect();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for c in procs.iter().filter(|c| c.ppid == p) {
            if !out.contains(&c.pid) {
                out.push(c.pid);
                frontier.push(c.pid);
            }
        }
    }
    out
}

/// Live descendants of this process.
fn descendants() -> Vec<i32> {
    descendants_of(std::process::id() as i32)
}

/// Live (not zombie) members of process group `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    all_procs()
        .into_iter()
        .filter(|p| p.pgrp == pgid && !p.gone)
        .map(|p| p.pid)
        .collect()
}

/// Kills every live supervised process group and every other descendant of rig (the helpers
/// [`run_logged`] runs and whatever they started: mmdebstrap's apt-get, …): SIGTERM, a short
/// grace, SIGKILL. Used on Ctrl-C and SIGTERM. Holds the group list while it works, so no
/// [`Supervised`] reaps its leader (freeing the group id) in between.
pub fn kill_all_children() {
    let groups = live_groups();
    stop_processes(&groups, descendants);
}

/// SIGTERM to `groups` and to the processes `procs()` lists, a grace of 1.5 s for all of them
/// to go, then SIGKILL to whatever is left. The caller keeps every group's leader unreaped.
///
/// Every process signalled is remembered by pid and start time: one whose parent dies in the
/// grace (a helper that obeys SIGTERM, its job that ignores it) is re-parented to init and no
/// longer listed by `procs()`, but it is still ours and still gets the SIGKILL.
fn stop_processes(groups: &[i32], procs: impl Fn() -> Vec<i32>) {
    let mut ours: Vec<(i32, u64)> = Vec::new();
    signal_all(groups, &procs, &mut ours, Signal::TERM);
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        if groups.iter().all(|&g| group_members(g).is_empty())
            && procs().is_empty()
            && still_running(&ours, &all_procs()).is_empty()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_all(groups, &procs, &mut ours, Signal::KILL);
}

/// `sig` to `groups` (whose leaders are our unreaped children), to what `procs()` lists now
/// (remembered in `ours`), and to whatever of `ours` still runs.
fn signal_all(
    groups: &[i32],
    procs: &impl Fn() -> Vec<i32>,
    ours: &mut Vec<(i32, u64)>,
    sig: Signal,
) {
    for g in groups.iter().filter_map(|&g| Pid::from_raw(g)) {
        let _ = kill_process_group(g, sig);
    }
    let now = all_procs();
    for pid in procs() {
        if let Some(p) = now.iter().find(|p| p.pid == pid && !p.gone) {
            if !ours.contains(&(p.pid, p.start)) {
                ours.push((p.pid, p.start));
            }
        }
    }
    for p in still_running(ours, &now)
        .into_iter()
        .filter_map(Pid::from_raw)
    {
        let _ = kill_process(p, sig);
    }
}

/// The processes of `ours` (pid, start time) that `now` shows running.
fn still_running(ours: &[(i32, u64)], now: &[ProcStat]) -> Vec<i32> {
    ours.iter()
        .filter(|&&(pid, start)| {
            now.iter()
                .any(|p| p.pid == pid && p.start == start && !p.gone)
        })
        .map(|&(pid, _)| pid)
        .collect()
}

static CAUGHT_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The signal that is ending rig, if one was caught: the main thread's error path (QEMU died
/// because the handler killed it) must then exit with 128+signal, not report a rig failure.
pub fn caught_signal() -> Option<i32> {
    match CAUGHT_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// On SIGINT/SIGTERM/SIGHUP: kill every supervised child and every other descendant, run the
/// cleanup actions registered with [`super::cleanup`] (temporary folders, scratch files, the
/// terminal's mode), then exit with 128+signal. The main thread, seeing [`caught_signal`], must
/// leave the exit to this thread ([`finish_signal_exit`]).
/// Call once from `main`.
pub fn install_signal_handlers() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("rig-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                CAUGHT_SIGNAL.store(sig, std::sync::atomic::Ordering::SeqCst);
                let _ = writeln!(io::stderr(), "rig: caught signal {sig}, stopping QEMU");
                kill_all_children();
                super::cleanup::run_all();
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

/// For the main thread once a signal was caught: waits for the signal thread to finish its
/// cleanup and exit rig (exiting here would cut it short). Exits with 128+signal itself if that
/// takes longer than a minute.
pub fn finish_signal_exit() -> ! {
    let sig = caught_signal().unwrap_or(Signal::TERM.as_raw());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::process::exit(128 + sig)
}

/// A child in its own process group, killed and reaped when dropped.
pub struct Supervised {
    program: String,
    child: Child,
    pgid: i32,
    stderr_path: Option<PathBuf>,
    /// The leader's exit status once it has exited (seen without reaping it).
    status: Option<ExitStatus>,
    /// Whether the leader has been reaped: from then on its group id may belong to another
    /// process, and rig never signals it again.
    reaped: bool,
    grace: Duration,
}

impl Supervised {
    /// Spawns `cmd` in a new process group with stdin from /dev/null; stdout and stderr go to
    /// `stderr_log` when given (so an early exit can be explained), else are inherited.
    pub fn spawn(mut cmd: Command, stderr_log: Option<&Path>) -> Result<Self, ProcessError> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        cmd.stdin(Stdio::null());
        if let Some(path) = stderr_log {
            let f = File::create(path).map_err(|source| ProcessError::Log {
                path: path.to_path_buf(),
                source,
            })?;
            let f2 = f.try_clone().map_err(|source| ProcessError::Log {
                path: path.to_path_buf(),
                source,
            })?;
            cmd.stdout(f).stderr(f2);
        }
        cmd.process_group(0);
        // If rig dies without running its destructors, the kernel kills the child.
        die_with_rig(&mut cmd);
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            program: program.clone(),
            source,
        })?;
        let pgid = child.id() as i32;
        register(pgid);
        Ok(Supervised {
            program,
            child,
            pgid,
            stderr_path: stderr_log.map(Path::to_path_buf),
            status: None,
            reaped: false,
            grace: Duration::from_secs(3),
        })
    }

    /// The child's stdout, when the command was set up with `Stdio::piped()`.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// `Some(status)` once the child has exited, without blocking. The exited leader is left
    /// unreaped (a zombie) until [`Supervised::terminate`] or drop: it keeps its group id from
    /// being reused while anything of its group may still be signalled.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let st = exited_unreaped(self.pgid).map_err(|source| ProcessError::Wait {
            program: self.program.clone(),
            source,
        })?;
        self.status = st;
        Ok(st)
    }

    /// Waits for the child to exit on its own until `timeout`; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, ProcessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait()? {
                return Ok(Some(st));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The tail of the child's captured stdout/stderr (for error messages).
    pub fn stderr_tail(&self, max_lines: usize) -> String {
        let Some(p) = &self.stderr_path else {
            return String::new();
        };
        tail_lines(&std::fs::read_to_string(p).unwrap_or_default(), max_lines)
    }

    pub fn stderr_path(&self) -> Option<&Path> {
        self.stderr_path.as_deref()
    }

    /// Signals the leader's group; never once the leader is reaped.
    fn signal_group(&self, sig: Signal) {
        if !self.reaped {
            // The unreaped leader pins the group id to the group rig started.
            if let Some(g) = Pid::from_raw(self.pgid) {
                let _ = kill_process_group(g, sig);
            }
            #[cfg(test)]
            tests::record(tests::Op::Signal(self.pgid, sig.as_raw()));
        }
    }

    /// SIGTERM to the group (unless the leader has exited already), grace period, SIGKILL to
    /// whatever is left of the group, then the leader is reaped, last. Idempotent.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        if self.reaped {
            return self.status;
        }
        if !matches!(self.try_wait(), Ok(Some(_))) {
            self.signal_group(Signal::TERM);
            let _ = self.wait_timeout(self.grace);
        }
        // The leader has exited or is being killed, and is not reaped: the group id is still
        // this group's. Kill what is left of it and wait (briefly) for it to go.
        self.signal_group(Signal::KILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !group_members(self.pgid).is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Off the signal handler's list before the leader is reaped (see LIVE_GROUPS).
        unregister(self.pgid);
        self.reaped = true;
        #[cfg(test)]
        tests::record(tests::Op::Reap(self.pgid));
        let st = self.child.wait().ok();
        if self.status.is_none() {
            self.status = st;
        }
        self.status
    }
}

/// The exit status of child `pid` if it has exited, seen without reaping it
/// (`waitid(P_PID, WEXITED | WNOHANG | WNOWAIT)`).
fn exited_unreaped(pid: i32) -> io::Result<Option<ExitStatus>> {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    let pid = Pid::from_raw(pid).ok_or(io::Error::from(rustix::io::Errno::CHILD))?;
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    let info = loop {
        match waitid(WaitId::Pid(pid), opts) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r?,
        }
    };
    // None: no state change yet (waitid left si_pid 0).
    let Some(info) = info else {
        return Ok(None);
    };
    // Back to the wait(2) status encoding ExitStatus is made of.
    let raw = if let Some(code) = info.exit_status() {
        (code & 0xff) << 8
    } else if let Some(sig) = info.terminating_signal() {
        (sig & 0x7f) | if info.dumped() { 0x80 } else { 0 }
    } else {
        // Stopped or continued (not asked for): not an exit.
        return Ok(None);
    };
    Ok(Some(ExitStatus::from_raw(raw)))
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A helper command (mmdebstrap, tar, depmod, make's helpers) that could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{command}` (is it installed? `rig doctor` checks)")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open log {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}); log: {log}\n{tail}")]
    Failed {
        command: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
}

/// The command line of `cmd`, for messages.
pub fn describe_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The last `n` lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a provisioning command (mmdebstrap, tar, depmod, rsync, make's helpers) to completion
/// with stdin from /dev/null and stdout and stderr appended to `log`; a failure carries the
/// command, its status and what it wrote. The helper stays in rig's process group, so a signal
/// to the group (Ctrl-C, a CI job's kill) reaches everything it started; a SIGTERM to rig alone
/// reaches it through the signal handler, which kills every descendant of rig
/// ([`kill_all_children`]); a rig that dies without running its handler (SIGKILL) takes the
/// helper with it by `PR_SET_PDEATHSIG`.
pub fn run_logged(mut cmd: Command, log: &Path) -> Result<(), CommandError> {
    use std::io::{Read, Seek, SeekFrom};
    let command = describe_command(&cmd);
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| CommandError::Log {
                path: log.to_path_buf(),
                source,
            })
    };
    let start = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    cmd.stdin(Stdio::null()).stdout(open()?).stderr(open()?);
    die_with_rig(&mut cmd);
    let st = cmd
        .spawn()
        .and_then(|mut child| child.wait())
        .map_err(|source| CommandError::Spawn {
            command: command.clone(),
            source,
        })?;
    if st.success() {
        return Ok(());
    }
    let mut written = Vec::new();
    if let Ok(mut f) = File::open(log) {
        if f.seek(SeekFrom::Start(start)).is_ok() {
            let _ = f.read_to_end(&mut written);
        }
    }
    Err(CommandError::Failed {
        command,
        status: describe_status(&st),
        log: log.to_path_buf(),
        tail: tail_lines(&String::from_utf8_lossy(&written), 20),
    })
}

/// Has the kernel SIGKILL the child `cmd` starts when rig dies (`PR_SET_PDEATHSIG`), even
/// without running its destructors or signal handler.
#[allow(unsafe_code)]
fn die_with_rig(cmd: &mut Command) {
    // rig's only unsafe blocks (each says why): host/process.rs `die_with_rig`,
    // machine/channel.rs `ShellPair::pass_to`, host/cache_manifest.rs `seal`.
    // SAFETY: kept unsafe: `pre_exec` is unsafe by definition, and std offers no safe way to
    // set the parent-death signal between fork and exec. The closure makes one prctl(2) system
    // call (async-signal-safe, no allocation, no lock), as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            Ok(())
        });
    }
}

/// Describes an exit status for humans: "exit code 1" or "killed by signal 9".
pub fn describe_status(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
pub(crate) mod tests;
