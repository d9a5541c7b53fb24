//! The two byte streams between rig and a guest: the **kernel console** (the board's UART: ttyS0,
//! ttyAMA0), where every kernel message arrives, and the **command shell** on a virtio console
//! (`/dev/hvc0` in the guest), where rig's guest init leaves a shell for rig's commands.
//!
//! Each stream is read by a thread of its own ([`super::stream`]) that blocks in `read(2)`, tees
//! what it reads (the kernel console to `console.log`, the tail for error messages and any
//! [`ConsoleTap`] such as the live analyzer; the shell to `shell.log`) and wakes whoever waits.
//! Waits have deadlines and wake on data or on end of file, never on a timer: the command round
//! trip costs what the guest takes, and QEMU's exit is seen the moment its sockets close.
//!
//! Why two streams. On one shared UART, printk can cut into a command's output at any byte, so
//! the output had to travel base64-encoded and be decoded and re-encoded in the guest (a fork
//! and exec each way, ~70 ms of the old 200 ms round trip under TCG); and the UART moves every
//! byte through an emulated register write. The virtio console is a bulk channel no kernel
//! message is printed to (the kernel's console is the UART alone, `console=` names it), so
//! output arrives as the command wrote it, and the kernel log stays complete and in order on
//! its own stream for the analyzer. The command protocol over the shell is
//! [`crate::guest::hvc_shell`].
//!
//! This module used `rexpect` until the shell moved: it reads by polling (the session woke every
//! 200 ms to look for a match), which set a 200 ms floor under every command. Its remaining jobs
//! here, regex waits over a byte stream, are a few lines over [`super::stream::Stream`].

use super::stream::{Overflow, Sink, Stream, Taken};
use regex::Regex;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The last part of the kernel console stream, for error messages ("console showed last: ...").
#[derive(Clone, Default)]
pub struct ConsoleTail {
    inner: Arc<Mutex<VecDeque<u8>>>,
}

const TAIL_BYTES: usize = 64 * 1024;

impl ConsoleTail {
    fn push(&self, data: &[u8]) {
        if let Ok(mut t) = self.inner.lock() {
            t.extend(data);
            let excess = t.len().saturating_sub(TAIL_BYTES);
            t.drain(..excess);
        }
    }

    /// The last `n` lines the console printed, control characters dropped.
    pub fn last_lines(&self, n: usize) -> String {
        let bytes: Vec<u8> = self
            .inner
            .lock()
            .map(|t| t.iter().copied().collect())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
            .filter(|l| !l.trim().is_empty())
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// A consumer of the raw kernel console stream (the live kernel-log analyzer). Called on the
/// console's reader thread with every chunk, and once with an empty chunk when the console
/// closes (QEMU exited).
pub type ConsoleTap = Box<dyn FnMut(&[u8]) + Send>;

/// What `console.log` holds of what the kernel console printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogState {
    /// Bytes the console delivered.
    pub seen: u64,
    /// Bytes written to `console.log` (at most the cap, [`console_log_max`]).
    pub written: u64,
    /// The cap stopped the log: everything after `written` bytes is missing from the file
    /// (the taps, the live analyzer among them, still got it).
    pub truncated: bool,
    /// A write failed (a full or failing filesystem): the log cannot be trusted.
    pub failed: bool,
    /// When the console last delivered bytes.
    pub last_at: Option<Instant>,
}

/// The largest `console.log` rig writes: 64 MiB, or `RIG_CONSOLE_LOG_MAX` bytes. A guest that
/// floods its console (a loop writing to `/dev/kmsg` for an hour) fills neither the disk nor,
/// since the verdict reads the file back, rig's memory; a line
/// `[rig: console log truncated at N bytes …]` marks where the file stops.
pub fn console_log_max() -> u64 {
    std::env::var("RIG_CONSOLE_LOG_MAX")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(CONSOLE_LOG_MAX)
}

const CONSOLE_LOG_MAX: u64 = 64 * 1024 * 1024;

/// Writes the kernel console to `console.log` up to the cap, then the truncation marker once.
struct LogWriter {
    file: File,
    max: u64,
    state: Arc<Mutex<LogState>>,
}

impl LogWriter {
    fn write(&mut self, data: &[u8]) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.seen += data.len() as u64;
        if !data.is_empty() {
            st.last_at = Some(Instant::now());
        }
        if st.truncated || st.failed || data.is_empty() {
            return;
        }
        let room = self.max.saturating_sub(st.written);
        let n = (data.len() as u64).min(room) as usize;
        if self.file.write_all(&data[..n]).is_err() {
            st.failed = true;
            return;
        }
        st.written += n as u64;
        if n < data.len() {
            st.truncated = true;
            let marker = format!(
                "\n[rig: console log truncated at {} bytes (RIG_CONSOLE_LOG_MAX); the guest printed \
                 more, which the live analyzer still read]\n",
                st.written
            );
            if self.file.write_all(marker.as_bytes()).is_err() {
                st.failed = true;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot connect to the console socket {path}")]
    Connect {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open console log {path}")]
    Log {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("console write failed")]
    Write(#[source] io::Error),
    #[error("console closed (QEMU exited?) while waiting for {waiting_for}; console showed last:\n{last}")]
    Closed { waiting_for: String, last: String },
    #[error("waited {timeout:?} for {waiting_for} on the console; console showed last:\n{last}")]
    Timeout {
        waiting_for: String,
        timeout: Duration,
        last: String,
    },
    #[error("the guest shell's answer while waiting for {waiting_for} is unusable: {reason}")]
    Garbled { waiting_for: String, reason: String },
    #[error("stopped waiting for {waiting_for}: {reason}; console showed last:\n{last}")]
    Aborted {
        waiting_for: String,
        reason: String,
        last: String,
    },
}

/// Called when a wait ends without what it waited for: `Some(reason)` says why (QEMU exited
/// with this status).
pub type AbortCheck<'a> = &'a mut dyn FnMut() -> Option<String>;

/// Unread kernel console bytes kept for [`Console::wait_for`] (older ones are dropped; the log
/// and the taps get everything).
const KERNEL_WINDOW: usize = 256 * 1024;
/// Unread shell bytes before the reader waits for rig to take some. QEMU's `virtconsole` does
/// not hold the guest back when its socket is full: it drops the bytes (hw/char/virtio-console.c
/// throttles only non-console ports). So the reader must keep the socket drained: room for a
/// whole command's output at the hvc transport's 64 MiB limit.
const SHELL_BUFFER: usize = 64 * 1024 * 1024;
/// `shell.log` stops growing here; what the commands printed is in their results anyway.
const SHELL_LOG_MAX: u64 = 64 * 1024 * 1024;
/// How long a wait that saw the shell close gives the kernel console to deliver its last
/// bytes (the panic that ended QEMU), so the error shows them.
const SETTLE: Duration = Duration::from_secs(2);

/// The kernel console and the command shell of one VM.
pub struct Console {
    kernel: Stream,
    shell: Stream,
    tail: ConsoleTail,
    taps: Arc<Mutex<Vec<ConsoleTap>>>,
    log_state: Arc<Mutex<LogState>>,
}

fn open_log(path: &Path) -> Result<File, ConsoleError> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ConsoleError::Log {
            path: path.to_path_buf(),
            source,
        })
}

impl Console {
    /// Starts reading both connected sockets: the kernel console is appended to `log`, the
    /// shell to `shell_log`.
    pub fn new(
        kernel: UnixStream,
        shell: UnixStream,
        log: &Path,
        shell_log: &Path,
    ) -> Result<Self, ConsoleError> {
        let tail = ConsoleTail::default();
        let taps: Arc<Mutex<Vec<ConsoleTap>>> = Arc::default();
        // A restored run's log starts with the saved boot's: it counts against the cap.
        let log_state = Arc::new(Mutex::new(LogState {
            written: std::fs::metadata(log).map_or(0, |m| m.len()),
            ..LogState::default()
        }));
        let mut log_writer = LogWriter {
            file: open_log(log)?,
            max: console_log_max(),
            state: log_state.clone(),
        };
        let (t, tp) = (tail.clone(), taps.clone());
        let kernel_sink: Sink = Box::new(move |data| {
            log_writer.write(data);
            t.push(data);
            if let Ok(mut taps) = tp.lock() {
                for tap in taps.iter_mut() {
                    tap(data);
                }
            }
        });
        let mut shell_file = open_log(shell_log)?;
        let mut shell_logged = 0u64;
        let shell_sink: Sink = Box::new(move |data| {
            if shell_logged < SHELL_LOG_MAX {
                let n = data.len().min((SHELL_LOG_MAX - shell_logged) as usize);
                let _ = shell_file.write_all(&data[..n]);
                shell_logged += n as u64;
                if shell_logged == SHELL_LOG_MAX {
                    let _ = shell_file.write_all(b"\n[rig: shell.log stops here]\n");
                }
            }
        });
        let spawn_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ConsoleError::Connect { path, source }
        };
        let kernel = Stream::spawn(
            "rig-console",
            kernel,
            KERNEL_WINDOW,
            Overflow::DropOldest,
            kernel_sink,
        )
        .map_err(spawn_err(log))?;
        let shell = Stream::spawn("rig-shell", shell, SHELL_BUFFER, Overflow::Wait, shell_sink)
            .map_err(spawn_err(shell_log))?;
        Ok(Console {
            kernel,
            shell,
            tail,
            taps,
            log_state,
        })
    }

    /// What `console.log` holds of what the console printed so far.
    pub fn log_state(&self) -> LogState {
        self.log_state.lock().map(|s| *s).unwrap_or_default()
    }

    /// [`Console::log_state`] that stays readable after the VM is gone.
    pub fn log_state_handle(&self) -> Arc<Mutex<LogState>> {
        self.log_state.clone()
    }

    pub fn tail(&self) -> ConsoleTail {
        self.tail.clone()
    }

    /// Adds a consumer of the raw kernel console stream from now on.
    pub fn add_tap(&self, tap: ConsoleTap) {
        if let Ok(mut t) = self.taps.lock() {
            t.push(tap);
        }
    }

    /// Writes `line` and a newline to the shell.
    pub fn send_line(&mut self, line: &str) -> Result<(), ConsoleError> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.send_raw(&bytes)
    }

    /// Writes bytes to the shell as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ConsoleError> {
        self.shell.write_all(bytes).map_err(ConsoleError::Write)
    }

    /// Sends Ctrl-C to the shell's terminal (interrupts its foreground command).
    pub fn interrupt(&mut self) {
        let _ = self.shell.write_all(&[0x03]);
    }

    /// QEMU closed one of the streams: it is exiting or gone.
    pub fn hung_up(&self) -> bool {
        self.kernel.is_closed() || self.shell.is_closed()
    }

    /// Drops what the shell printed and nobody read yet (leftovers of earlier commands).
    pub fn discard_shell_output(&mut self) {
        self.shell.clear();
    }

    /// Waits until `regex` matches the kernel console; returns the match. Only text that
    /// arrives from the call on (and up to 256 KiB not yet read by an earlier wait) is searched.
    pub fn wait_for(
        &mut self,
        regex: &str,
        timeout: Duration,
        abort: AbortCheck<'_>,
    ) -> Result<String, ConsoleError> {
        wait_regex(&self.kernel, &self.tail, regex, timeout, abort)
    }

    /// Like [`Console::wait_for`], on the shell's stream.
    pub fn wait_shell_for(
        &mut self,
        regex: &str,
        timeout: Duration,
        abort: AbortCheck<'_>,
    ) -> Result<String, ConsoleError> {
        wait_regex(&self.shell, &self.tail, regex, timeout, abort)
    }

    /// The next bytes the shell prints. Fails once `deadline` has passed (`timeout` is what the
    /// error says was waited), or when the shell closed; then `abort` says why, and the error
    /// carries the kernel console's last lines, read to its end.
    pub fn shell_output(
        &mut self,
        waiting_for: &str,
        timeout: Duration,
        deadline: Instant,
        abort: AbortCheck<'_>,
    ) -> Result<Vec<u8>, ConsoleError> {
        loop {
            match self.shell.take(deadline) {
                Taken::Data(d) => return Ok(d),
                Taken::Woken => continue,
                Taken::Timeout => {
                    return Err(ConsoleError::Timeout {
                        waiting_for: waiting_for.into(),
                        timeout,
                        last: self.tail.last_lines(30),
                    })
                }
                Taken::Closed => return Err(self.closed(waiting_for, abort)),
            }
        }
    }

    /// The error for a stream that closed: waits briefly for the kernel console to end too (the
    /// panic that ended QEMU may still be on its way) and asks `abort` why.
    fn closed(&self, waiting_for: &str, abort: AbortCheck<'_>) -> ConsoleError {
        self.kernel.wait_closed(Instant::now() + SETTLE);
        let last = self.tail.last_lines(30);
        match abort() {
            Some(reason) => ConsoleError::Aborted {
                waiting_for: waiting_for.into(),
                reason,
                last,
            },
            None => ConsoleError::Closed {
                waiting_for: waiting_for.into(),
                last,
            },
        }
    }

    /// Waits (at most `grace`) until QEMU has closed both streams, so `console.log` holds
    /// everything the guest printed. For after QEMU was asked to quit.
    pub fn finish(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.kernel.wait_closed(deadline);
        self.shell.wait_closed(deadline);
    }

    /// Hands the shell to the user's terminal until Ctrl-] (0x1d), or until QEMU exits (then
    /// `abort` says why). Kernel messages are shown as they come; everything still goes to the
    /// logs. The terminal is put in raw mode while attached.
    pub fn interact(&mut self, abort: AbortCheck<'_>) -> Result<(), ConsoleError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let attached = Arc::new(AtomicBool::new(true));
        let flag = attached.clone();
        self.add_tap(Box::new(move |data| {
            if flag.load(Ordering::Relaxed) {
                let mut out = io::stdout().lock();
                let _ = out.write_all(data);
                let _ = out.flush();
            }
        }));
        // rig's shell runs without echo, prompt or output processing: give a person all three.
        self.send_line("stty echo opost; export PS1='rig# '; exec sh -i")?;
        let _raw = crate::host::terminal::RawTerminal::enter();
        let mut to_guest = self.shell.writer().map_err(ConsoleError::Write)?;
        let waker = self.shell.waker();
        let quit = Arc::new(AtomicBool::new(false));
        let q = quit.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let stdin = io::stdin();
            let mut stdin = stdin.lock();
            while let Ok(n) = stdin.read(&mut buf) {
                let bytes = &buf[..n];
                let end = bytes.iter().position(|&b| b == 0x1d);
                let send = &bytes[..end.unwrap_or(n)];
                let failed = to_guest.write_all(send).is_err();
                if n == 0 || end.is_some() || failed {
                    q.store(true, Ordering::SeqCst);
                    waker.wake();
                    break;
                }
            }
        });
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let result = loop {
            match self.shell.take(far) {
                Taken::Data(d) => {
                    let mut out = io::stdout().lock();
                    let _ = out.write_all(&d);
                    let _ = out.flush();
                }
                Taken::Woken | Taken::Timeout if quit.load(Ordering::SeqCst) => break Ok(()),
                Taken::Woken | Taken::Timeout => {}
                Taken::Closed => break Err(self.closed("the interactive console", abort)),
            }
        };
        attached.store(false, Ordering::Relaxed);
        result
    }
}

/// Why a guest never became ready.
#[derive(Debug)]
pub enum ReadyFail {
    /// Init said `RIG-INIT-FAILED <reason>`.
    InitFailed(String),
    Console(ConsoleError),
}

impl Console {
    /// Waits for init's marker on the kernel console (`RIG-READY <release>`, or
    /// `RIG-INIT-FAILED <reason>`), then for the command shell's `RIG-READY` (printed just
    /// before the shell starts reading). Returns the kernel release.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        abort: AbortCheck<'_>,
    ) -> Result<String, ReadyFail> {
        let deadline = Instant::now() + timeout;
        let m = self
            .wait_for(r"RIG-(READY|INIT-FAILED) [^\r\n]*\r?\n", timeout, abort)
            .map_err(ReadyFail::Console)?;
        let m = m.trim();
        if let Some(reason) = m.strip_prefix("RIG-INIT-FAILED ") {
            return Err(ReadyFail::InitFailed(reason.trim().to_string()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.wait_shell_for(r"RIG-READY [^\r\n]*\n", left, abort)
            .map_err(ReadyFail::Console)?;
        Ok(m.trim_start_matches("RIG-READY ").trim().to_string())
    }
}

/// Bytes of a stream kept for a regex wait; markers are short lines, so only the newest matter.
const WAIT_WINDOW: usize = 64 * 1024;

fn wait_regex(
    stream: &Stream,
    tail: &ConsoleTail,
    regex: &str,
    timeout: Duration,
    abort: AbortCheck<'_>,
) -> Result<String, ConsoleError> {
    let re = Regex::new(regex).map_err(|e| ConsoleError::Aborted {
        waiting_for: format!("/{regex}/"),
        reason: format!("bad pattern: {e}"),
        last: String::new(),
    })?;
    let deadline = Instant::now() + timeout;
    let mut window: Vec<u8> = Vec::new();
    loop {
        match stream.take(deadline) {
            Taken::Data(d) => {
                window.extend_from_slice(&d);
                if let Some(m) = re.find(&String::from_utf8_lossy(&window)) {
                    return Ok(m.as_str().to_string());
                }
                if window.len() > WAIT_WINDOW {
                    window.drain(..window.len() - WAIT_WINDOW / 2);
                }
            }
            Taken::Woken => {}
            Taken::Timeout => {
                return Err(ConsoleError::Timeout {
                    waiting_for: format!("/{regex}/"),
                    timeout,
                    last: tail.last_lines(30),
                })
            }
            Taken::Closed => {
                return Err(match abort() {
                    Some(reason) => ConsoleError::Aborted {
                        waiting_for: format!("/{regex}/"),
                        reason,
                        last: tail.last_lines(30),
                    },
                    None => ConsoleError::Closed {
                        waiting_for: format!("/{regex}/"),
                        last: tail.last_lines(30),
                    },
                })
            }
        }
    }
}

#[cfg(test)]
#[path = "console_tests.rs"]
mod tests;
