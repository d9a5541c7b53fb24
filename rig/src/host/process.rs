//! Child process ownership. Every child rig starts (QEMU above all) runs in its own process group
//! and is owned by a [`Supervised`] guard: dropping it (success, error, panic unwinding) sends
//! SIGTERM to the group, waits a grace period, sends SIGKILL and reaps. A global registry lets the
//! SIGINT/SIGTERM handler ([`install_signal_handlers`]) do the same for every live child before rig
//! exits, and `PR_SET_PDEATHSIG` kills a child whose rig died without cleaning up (SIGKILL).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Process groups of live supervised children, for the signal handler.
static LIVE_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn register(pgid: i32) {
    if let Ok(mut v) = LIVE_GROUPS.lock() {
        v.push(pgid);
    }
}

fn unregister(pgid: i32) {
    if let Ok(mut v) = LIVE_GROUPS.lock() {
        v.retain(|&p| p != pgid);
    }
}

/// Live descendants of this process (children, their children, …), from `/proc`.
fn descendants() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) S ppid …`: comm may hold anything; it ends at the last `)`.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next(), f.next().and_then(|p| p.parse::<i32>().ok()));
        if let (Some(st), Some(ppid)) = (state, ppid) {
            if st != "Z" && st != "X" {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![me];
    while let Some(p) = frontier.pop() {
        for &(child, _) in parent_of.iter().filter(|&&(_, pp)| pp == p) {
            if !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// Kills every live supervised process group and every other descendant of rig (the helpers
/// [`run_logged`] runs and whatever they started: mmdebstrap's apt-get, …): SIGTERM, a short
/// grace, SIGKILL. Used on Ctrl-C and SIGTERM.
pub fn kill_all_children() {
    let groups: Vec<i32> = LIVE_GROUPS.lock().map(|v| v.clone()).unwrap_or_default();
    let procs = descendants();
    // SAFETY: kill(2) on our own children's groups and our own descendants.
    for &g in &groups {
        unsafe { libc::kill(-g, libc::SIGTERM) };
    }
    for &p in &procs {
        unsafe { libc::kill(p, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        if groups.iter().all(|&g| unsafe { libc::kill(-g, 0) } != 0) && descendants().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for &g in &groups {
        unsafe { libc::kill(-g, libc::SIGKILL) };
    }
    for p in descendants() {
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
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

/// On SIGINT/SIGTERM/SIGHUP: kill every supervised child and every other descendant, then exit
/// with 128+signal.
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
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

/// A child in its own process group, killed and reaped when dropped.
pub struct Supervised {
    program: String,
    child: Child,
    pgid: i32,
    stderr_path: Option<PathBuf>,
    status: Option<ExitStatus>,
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
        unsafe {
            cmd.pre_exec(|| {
                // If rig dies without running its destructors, the kernel kills the child.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
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

    /// `Some(status)` once the child has exited (reaped), without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let st = self.child.try_wait().map_err(|source| ProcessError::Wait {
            program: self.program.clone(),
            source,
        })?;
        if st.is_some() {
            self.status = st;
            unregister(self.pgid);
        }
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

    /// SIGTERM to the group, grace period, SIGKILL, reap. Idempotent.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(st)) = self.try_wait() {
            // The leader is gone; make sure nothing else of its group lingers.
            unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
            return Some(st);
        }
        unsafe { libc::kill(-self.pgid, libc::SIGTERM) };
        if let Ok(Some(st)) = self.wait_timeout(self.grace) {
            unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
            return Some(st);
        }
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        let st = self.child.wait().ok();
        self.status = st;
        unregister(self.pgid);
        st
    }
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

/// One shell word per argument, quoted only where needed: the command line `sh` splits back into
/// exactly `argv` (for `qemu.argv`, logs, and running an argv in the guest's shell).
pub fn shell_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|s| {
            let s = s.as_ref();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=,./:+@".contains(c))
            {
                s.to_string()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
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

/// Describes an exit status for humans: "exit code 1" or "killed by signal 9".
pub fn describe_status(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

#[cfg(test)]
mod tests {
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
        unsafe { libc::kill(pid, 0) == 0 }
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
            let stat =
                std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
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
        // own, like mmdebstrap with its apt-get) runs.
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
        kill_all_children();
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
        assert!(descendants().is_empty(), "{:?}", descendants());
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
}
