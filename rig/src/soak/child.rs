//! One child rig of a soak (`rig run`, or `rig reproduce` of a crafted bundle): started in its
//! own process group with its own run id, artifacts folder and cache, watched through its
//! `events.jsonl`, signalled, and waited for.

use super::fault::Anchor;
use super::SoakError;
use crate::host::events::Event;
use crate::host::process::Supervised;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What a child runs and where.
pub struct Spec<'a> {
    pub rig: &'a Path,
    /// rig's arguments: `run SCENARIO --board …` ([`run_args`]) or `reproduce BUNDLE …`.
    pub args: Vec<OsString>,
    pub cache: &'a Path,
    /// The child's `RIG_ARTIFACTS`: its run folder appears inside.
    pub artifacts: &'a Path,
    pub run_id: String,
    /// rig's stderr (its progress and errors); its stdout goes beside it, as `<log>.stdout`.
    pub log: &'a Path,
    pub env: Vec<(String, String)>,
}

/// `run SCENARIO --board B --kernel K --accel A --no-setup` and `extra`.
pub fn run_args(
    scenario: &Path,
    board: &str,
    kernel: &str,
    accel: &str,
    extra: &[String],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["run".into(), scenario.into()];
    for a in [
        "--board",
        board,
        "--kernel",
        kernel,
        "--accel",
        accel,
        "--no-setup",
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(OsString::from));
    args
}

/// How often the soak looks at a child's events (it is a harness, not a hot path).
const POLL: Duration = Duration::from_millis(20);

pub struct Child {
    sup: Supervised,
    pub run_id: String,
    pub pid: i32,
    artifacts: PathBuf,
    events_path: Option<PathBuf>,
    offset: u64,
    /// The events of its `events.jsonl` so far (lines that are not an [`Event`] left out).
    events: Vec<Event>,
    pub started: Instant,
    exit: Option<i32>,
    stdout: PathBuf,
    log: PathBuf,
}

/// Where a child's stdout goes: `rig-0.log` → `rig-0.stdout`.
fn stdout_path(log: &Path) -> PathBuf {
    log.with_extension("stdout")
}

impl Child {
    pub fn spawn(spec: Spec<'_>) -> Result<Child, SoakError> {
        std::fs::create_dir_all(spec.artifacts).map_err(|source| SoakError::Io {
            path: spec.artifacts.to_path_buf(),
            source,
        })?;
        let mut cmd = Command::new(spec.rig);
        cmd.args(&spec.args)
            .env("RIG_RUN_ID", &spec.run_id)
            .env("RIG_ARTIFACTS", spec.artifacts)
            .env("RIG_CACHE_DIR", spec.cache);
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let open = |path: &Path| {
            std::fs::File::create(path).map_err(|source| SoakError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        let stdout = stdout_path(spec.log);
        cmd.stdout(open(&stdout)?).stderr(open(spec.log)?);
        let sup = Supervised::spawn(cmd, None)?;
        Ok(Child {
            pid: sup.pid() as i32,
            sup,
            run_id: spec.run_id,
            artifacts: spec.artifacts.to_path_buf(),
            events_path: None,
            offset: 0,
            events: Vec::new(),
            started: Instant::now(),
            exit: None,
            stdout,
            log: spec.log.to_path_buf(),
        })
    }

    /// What rig printed on stdout (its verdict, titles, the reproduce line).
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stdout).unwrap_or_default()).into_owned()
    }

    /// What rig printed on stderr (progress, errors).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The child's run folder (the one folder rig made in its `RIG_ARTIFACTS`).
    pub fn run_folder(&self) -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.artifacts)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        dirs.pop()
    }

    /// Reads events written since the last call.
    pub fn poll(&mut self) {
        if self.events_path.is_none() {
            self.events_path = self
                .run_folder()
                .map(|d| d.join("events.jsonl"))
                .filter(|p| p.exists());
        }
        let Some(path) = &self.events_path else {
            return;
        };
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut r = BufReader::new(f);
        let mut line = String::new();
        // Only whole lines: a line still being written is read next time.
        while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
            if !line.ends_with('\n') {
                break;
            }
            self.offset += line.len() as u64;
            if let Ok(e) = serde_json::from_str::<Event>(&line) {
                self.events.push(e);
            }
            line.clear();
        }
    }

    fn find(&self, anchor: Anchor) -> Option<&Event> {
        self.events.iter().find(|e| at_anchor(anchor, e))
    }

    /// Whether the child has reached `anchor`.
    pub fn reached(&mut self, anchor: Anchor) -> bool {
        self.poll();
        anchor == Anchor::Spawned || self.find(anchor).is_some()
    }

    /// Waits until the child reaches `anchor`; false if it exited first or `deadline` passed.
    pub fn wait_anchor(&mut self, anchor: Anchor, deadline: Instant) -> bool {
        loop {
            if self.reached(anchor) {
                return true;
            }
            if self.exited() || Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sleeps `d`, or less if the child exits meanwhile; false if it did.
    pub fn sleep_alive(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.exited() {
                return false;
            }
            std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
        }
        !self.exited()
    }

    /// Whether the child has exited (reaped).
    pub fn exited(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        match self.sup.try_wait() {
            Ok(Some(st)) => {
                use std::os::unix::process::ExitStatusExt;
                self.exit = Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
                true
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// Waits for the child to exit until `deadline`; then kills its group. `None`: it had to
    /// be killed (rig hung).
    pub fn wait_exit(&mut self, deadline: Instant) -> Option<i32> {
        while !self.exited() {
            if Instant::now() >= deadline {
                self.sup.terminate();
                self.poll();
                return None;
            }
            std::thread::sleep(POLL);
        }
        self.poll();
        self.exit
    }

    /// Sends `sig` to rig (or to its process group, as a terminal's Ctrl-C does); false if rig
    /// had already exited.
    pub fn signal(&mut self, sig: i32, group: bool) -> bool {
        if self.exited() {
            return false;
        }
        use rustix::process::{kill_process, kill_process_group, Pid, Signal};
        // Our own, not yet reaped child (or its group).
        let (Some(pid), Some(sig)) = (Pid::from_raw(self.pid), Signal::from_named_raw(sig)) else {
            return false;
        };
        if group {
            kill_process_group(pid, sig).is_ok()
        } else {
            kill_process(pid, sig).is_ok()
        }
    }

    /// Whether rig already announced its verdict (it is tearing down).
    pub fn verdict_seen(&mut self) -> bool {
        self.poll();
        self.events
            .iter()
            .any(|e| matches!(e, Event::Verdict { .. }))
    }

    /// How many verdicts rig announced (one per finished repetition).
    pub fn verdicts(&mut self) -> usize {
        self.poll();
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Verdict { .. }))
            .count()
    }

    /// QEMU's argv, from the `qemu_spawned` event.
    pub fn qemu_argv(&self) -> Vec<String> {
        match self.find(Anchor::QemuSpawned) {
            Some(Event::QemuSpawned { argv, .. }) => argv.clone(),
            _ => Vec::new(),
        }
    }

    /// The provisioning steps this child built (rather than found cached).
    pub fn built_steps(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StepFinished {
                    step,
                    cached: false,
                    ..
                } => Some(step.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Whether event `e` of a child's `events.jsonl` is the point `anchor` names.
fn at_anchor(anchor: Anchor, e: &Event) -> bool {
    match (anchor, e) {
        (Anchor::Spawned, _) => true,
        (Anchor::Building, Event::StepStarted { .. }) => true,
        (Anchor::QemuSpawned, Event::QemuSpawned { .. }) => true,
        (Anchor::BootReady, Event::BootReady { .. }) => true,
        (Anchor::Step(n), Event::ScenarioStep { index, .. }) => *index == n,
        (Anchor::Repetition(n), Event::StepProgress { step, message, .. }) => {
            step == "run" && message.starts_with(&format!("repetition {n} of "))
        }
        (Anchor::Qmp(c), Event::QmpCommand { command }) => {
            command == c || command.starts_with(&format!("{c} "))
        }
        _ => false,
    }
}

/// The QMP socket path in a QEMU argv (`-chardev socket,id=qmp0,path=P,…`).
pub fn qmp_socket(argv: &[String]) -> Option<PathBuf> {
    argv.iter()
        .filter(|a| a.contains("id=qmp0"))
        .flat_map(|a| a.split(','))
        .find_map(|kv| kv.strip_prefix("path="))
        .map(PathBuf::from)
}

/// Whether process `pid` holds an flock on the file with inode `ino` (from `/proc/locks`).
pub fn holds_flock(pid: i32, ino: u64) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return false;
    };
    text.lines().any(|l| {
        // `1: FLOCK  ADVISORY  WRITE 4242 00:2e:123456 0 EOF`
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 6
            && f[1] == "FLOCK"
            && f[4].parse::<i32>().ok() == Some(pid)
            && f[5].rsplit(':').next().and_then(|i| i.parse::<u64>().ok()) == Some(ino)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_and_qmp_anchors_match_rigs_events() {
        // As rig writes them in events.jsonl, read back.
        let ev = |s: &str| -> Event { serde_json::from_str(s).unwrap() };
        let line = |e: Event| -> Event { ev(&serde_json::to_string(&e).unwrap()) };
        let rep = line(Event::StepProgress {
            step: "run".into(),
            message: "repetition 2 of 4".into(),
            fraction: Some(0.25),
        });
        assert!(at_anchor(Anchor::Repetition(2), &rep));
        assert!(!at_anchor(Anchor::Repetition(1), &rep));
        assert!(!at_anchor(Anchor::Repetition(4), &rep));
        let rep12 = ev(
            r#"{"event":"step_progress","step":"run","message":"repetition 12 of 20","fraction":null}"#,
        );
        assert!(!at_anchor(Anchor::Repetition(1), &rep12));
        let del = line(Event::QmpCommand {
            command: "device_del nic1".into(),
        });
        assert!(at_anchor(Anchor::Qmp("device_del"), &del));
        assert!(!at_anchor(Anchor::Qmp("device_add"), &del));
        let other = ev(r#"{"event":"qmp_command","command":"device_delete_all"}"#);
        assert!(!at_anchor(Anchor::Qmp("device_del"), &other));
    }

    /// The events the soak matches on read back from events.jsonl as the variants rig wrote;
    /// a line that is not an event is left out.
    #[test]
    fn events_read_back_typed_and_anchor_on_their_variants() {
        let written = [
            Event::StepStarted {
                step: "kernel".into(),
                detail: "rig-6.12".into(),
            },
            Event::StepFinished {
                step: "kernel".into(),
                elapsed: Duration::from_millis(1500),
                cached: false,
            },
            Event::QemuSpawned {
                pid: 42,
                argv: vec!["qemu-system-x86_64".into(), "-S".into()],
            },
            Event::Verdict {
                verdict: "pass".into(),
                detail: String::new(),
            },
        ];
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("events.jsonl");
        let mut text: String = written
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        text.push_str("{\"event\":\"from_a_newer_rig\"}\nnot json\n");
        std::fs::write(&path, text).unwrap();
        let mut c = Child {
            sup: Supervised::spawn(Command::new("true"), None).unwrap(),
            run_id: String::new(),
            pid: 0,
            artifacts: d.path().into(),
            events_path: Some(path),
            offset: 0,
            events: Vec::new(),
            started: Instant::now(),
            exit: None,
            stdout: d.path().join("out"),
            log: d.path().join("log"),
        };
        c.poll();
        assert_eq!(c.events, written);
        assert!(c.reached(Anchor::Building) && c.reached(Anchor::QemuSpawned));
        assert!(!c.reached(Anchor::BootReady));
        assert_eq!(c.qemu_argv(), ["qemu-system-x86_64", "-S"]);
        assert_eq!(c.built_steps(), ["kernel"]);
        assert!(c.verdict_seen());
        assert_eq!(c.verdicts(), 1);
        c.sup.wait_timeout(Duration::from_secs(10)).unwrap();
    }

    #[test]
    fn the_qmp_socket_is_read_from_the_argv() {
        let argv: Vec<String> = [
            "qemu-system-aarch64",
            "-chardev",
            "socket,id=con0,path=/tmp/rig-0/vm/vm-x/con,server=on,wait=on",
            "-chardev",
            "socket,id=qmp0,path=/tmp/rig-0/vm/vm-x/qmp,server=on,wait=off",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            qmp_socket(&argv),
            Some(PathBuf::from("/tmp/rig-0/vm/vm-x/qmp"))
        );
        assert_eq!(qmp_socket(&argv[..3]), None);
    }

    #[test]
    fn an_flock_of_another_process_is_seen_in_proc_locks() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("lock");
        std::fs::write(&f, "").unwrap();
        let ino = std::fs::metadata(&f).unwrap().ino();
        let mut cmd = Command::new("flock");
        cmd.arg(&f).args(["sleep", "30"]);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut holder = cmd.spawn().unwrap();
        let pid = holder.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !holds_flock(pid, ino) {
            assert!(Instant::now() < deadline, "never saw the lock");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!holds_flock(pid, ino + 1));
        // Our child's own process group (flock and its sleep).
        let group = rustix::process::Pid::from_child(&holder);
        rustix::process::kill_process_group(group, rustix::process::Signal::KILL).unwrap();
        holder.wait().unwrap();
    }
}
