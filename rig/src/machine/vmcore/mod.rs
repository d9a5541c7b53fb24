//! A vmcore: the guest's memory as an ELF core, taken at the moment a run went wrong.
//!
//! A machine booted with [`MachineSpec::vmcore`](super::spec::MachineSpec) has QEMU's pvpanic
//! device and `-action panic=pause`: a kernel panic pauses the guest (inside the panic notifier,
//! the panicking task's frames on its stack) instead of resetting it. A [`Watch`] owns a second
//! QMP monitor, apart from the engine's, and a thread on it that
//! - on `GUEST_PANICKED` dumps the memory (`dump-guest-memory`) and lets the guest go on with
//!   its panic (`cont`): it then resets and QEMU exits as it would have without the pause;
//! - on a [`Trigger`] (the live analyzer's first unexpected report, or the end of a failed run)
//!   dumps the running guest (QEMU pauses it for the dump and resumes it).
//!
//! One dump per boot: the first moment wins. [`file`] turns the raw core into what the run
//! keeps (`vmcore.gz`, mapped for gdb on arm64).

mod arm64;
mod elf;
pub mod file;

use crate::host::board::Board;
use crate::machine::qmp::{Qmp, QmpError, Woken};
use serde_json::json;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The raw core's name in the run folder, until [`file::keep`] or [`discard`] deals with it.
pub const RAW_NAME: &str = "vmcore.elf";

/// A dump taken: where, why, how long it took.
#[derive(Debug, Clone)]
pub struct Taken {
    pub raw: PathBuf,
    /// What made rig take it: `the guest panicked`, the report's title, `the run failed`.
    pub why: String,
    pub seconds: f64,
}

/// What the watch did, for the run: the dump, or why there is none.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub taken: Option<Taken>,
    /// A dump asked for that failed (QEMU refused it, the disk was full).
    pub error: Option<String>,
}

enum Request {
    Dump {
        why: String,
        done: Option<Sender<()>>,
    },
    Stop,
}

/// Asks the watch for a dump, from any thread (the console tap's analyzer).
#[derive(Clone)]
pub struct Trigger {
    tx: Sender<Request>,
    /// A byte here wakes the watch's thread (it waits on QEMU's monitor and this at once).
    wake: Arc<UnixStream>,
}

impl Trigger {
    fn send(&self, r: Request) {
        if self.tx.send(r).is_ok() {
            let _ = (&*self.wake).write(&[1]);
        }
    }

    /// Asks for a dump now, without waiting for it. Ignored once one was taken.
    pub fn dump(&self, why: &str) {
        self.send(Request::Dump {
            why: why.into(),
            done: None,
        });
    }
}

/// The dump monitor's owner: its thread ends when QEMU closes the monitor or the watch is
/// dropped (it asks the thread to stop, then joins it).
pub struct Watch {
    trigger: Trigger,
    outcome: Arc<Mutex<Outcome>>,
    thread: Option<JoinHandle<()>>,
}

/// How long one `dump-guest-memory` may take (512 MiB takes ~0.4 s on a quiet 2-core host, 7 s
/// on a busy one; a guest with GiBs of hot-plugged memory on a slow disk, longer).
const DUMP_TIMEOUT: Duration = Duration::from_secs(120);

impl Watch {
    /// Connects to the dump monitor at `socket` and starts watching. The raw core goes to
    /// `dir/vmcore.elf`; x86_64 asks QEMU for virtual addresses (`paging`), arm64 cannot have
    /// them from QEMU 7.2 ([`file`] adds them).
    pub fn start(
        socket: &Path,
        transcript: &Path,
        dir: &Path,
        board: Board,
    ) -> Result<Watch, QmpError> {
        let qmp = Qmp::connect(socket, transcript, DUMP_TIMEOUT)?;
        let (tx, rx) = mpsc::channel();
        let thread_err = |source| QmpError::Io {
            command: "vmcore watch thread".into(),
            source,
        };
        let (wake, woken) = UnixStream::pair().map_err(thread_err)?;
        woken.set_nonblocking(true).map_err(thread_err)?;
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let raw = std::path::absolute(dir.join(RAW_NAME)).unwrap_or(dir.join(RAW_NAME));
        let paging = board == Board::X86_64Q35;
        let shared = outcome.clone();
        let thread = std::thread::Builder::new()
            .name("vmcore-watch".into())
            .spawn(move || watch(qmp, (rx, woken), &raw, paging, &shared))
            .map_err(thread_err)?;
        Ok(Watch {
            trigger: Trigger {
                tx,
                wake: Arc::new(wake),
            },
            outcome,
            thread: Some(thread),
        })
    }

    pub fn trigger(&self) -> Trigger {
        self.trigger.clone()
    }

    /// Takes a dump now, unless one was taken, and waits for it (at most [`DUMP_TIMEOUT`]).
    pub fn dump_and_wait(&self, why: &str) {
        let (done, wait) = mpsc::channel();
        self.trigger.send(Request::Dump {
            why: why.into(),
            done: Some(done),
        });
        let _ = wait.recv_timeout(DUMP_TIMEOUT);
    }

    /// Stops the watch (its thread joined) and says what it did.
    pub fn finish(mut self) -> Outcome {
        self.stop();
        self.outcome.lock().map(|o| o.clone()).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.trigger.send(Request::Stop);
            let _ = t.join();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The watch thread: waits for a panic or a request until QEMU closes the monitor or a stop.
fn watch(
    mut qmp: Qmp,
    (rx, mut woken): (Receiver<Request>, UnixStream),
    raw: &Path,
    paging: bool,
    outcome: &Mutex<Outcome>,
) {
    let is_panic = |e: &serde_json::Value| e["event"] == "GUEST_PANICKED";
    loop {
        match qmp.wait_event_or_wake(&is_panic, woken.as_fd(), Duration::from_secs(3600)) {
            Ok(Woken::Event(_)) => {
                take(&mut qmp, raw, paging, "the guest panicked", outcome);
                // The guest goes on with its panic: it resets, and QEMU (-no-reboot) exits.
                let _ = qmp.execute_raw("cont", None);
            }
            Ok(Woken::Wake) => {
                let _ = woken.read(&mut [0u8; 64]);
                while let Ok(r) = rx.try_recv() {
                    match r {
                        Request::Dump { why, done } => {
                            take(&mut qmp, raw, paging, &why, outcome);
                            if let Some(d) = done {
                                let _ = d.send(());
                            }
                        }
                        Request::Stop => return,
                    }
                }
            }
            Ok(Woken::Timeout) => {}
            // The monitor closed: QEMU is gone.
            Err(_) => return,
        }
    }
}

/// Dumps the guest's memory to `raw` (written as `raw.tmp`, then renamed), unless a dump was
/// already taken; records the outcome.
fn take(qmp: &mut Qmp, raw: &Path, paging: bool, why: &str, outcome: &Mutex<Outcome>) {
    if outcome.lock().map(|o| o.taken.is_some()).unwrap_or(true) {
        return;
    }
    let start = Instant::now();
    let tmp = raw.with_extension("elf.tmp");
    let args = json!({"paging": paging, "protocol": format!("file:{}", tmp.display())});
    let result = qmp
        .execute_raw("dump-guest-memory", Some(args))
        .map_err(|e| crate::host::text::error_chain(&e))
        .and_then(|_| std::fs::rename(&tmp, raw).map_err(|e| e.to_string()));
    let Ok(mut o) = outcome.lock() else { return };
    match result {
        Ok(()) => {
            o.taken = Some(Taken {
                raw: raw.to_path_buf(),
                why: why.into(),
                seconds: start.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            o.error = Some(format!("dump-guest-memory ({why}): {e}"));
        }
    }
}

/// Removes a raw core the run does not keep (it passed, or rig never judged it).
pub fn discard(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(RAW_NAME));
}
