//! The serial console of one VM, as a byte stream: QEMU's serial port on a unix socket, read with
//! `rexpect`. Everything read is teed to `console.log`, to a tail kept for error messages, and to
//! any [`ConsoleTap`] (the live kernel-log analyzer) before anyone parses it. The command protocol
//! that runs shell commands over this line is [`crate::guest::serial`].

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The last part of the console stream, for error messages ("console showed last: ...").
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

/// A consumer of the raw console stream (the live kernel-log analyzer).
pub type ConsoleTap = Box<dyn FnMut(&[u8]) + Send>;

/// Reads the console socket in chunks, writing each chunk to the log, the tail and the taps
/// before handing it on to rexpect.
struct TeeReader {
    inner: UnixStream,
    log: File,
    tail: ConsoleTail,
    taps: Arc<Mutex<Vec<ConsoleTap>>>,
}

impl Read for TeeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let data = &buf[..n];
            let _ = self.log.write_all(data);
            self.tail.push(data);
            if let Ok(mut taps) = self.taps.lock() {
                for t in taps.iter_mut() {
                    t(data);
                }
            }
        }
        Ok(n)
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
    #[error("stopped waiting for {waiting_for}: {reason}; console showed last:\n{last}")]
    Aborted {
        waiting_for: String,
        reason: String,
        last: String,
    },
}

/// Called while waiting: `Some(reason)` aborts the wait (QEMU exited, Ctrl-C).
pub type AbortCheck<'a> = &'a mut dyn FnMut() -> Option<String>;

/// The serial console of one VM.
pub struct Console {
    session: rexpect::session::StreamSession<UnixStream>,
    tail: ConsoleTail,
    taps: Arc<Mutex<Vec<ConsoleTap>>>,
}

/// How often waits come up for air to check whether QEMU still runs.
const POLL: Duration = Duration::from_millis(200);

impl Console {
    /// Wraps a connected console socket; everything read is appended to `log`.
    pub fn new(stream: UnixStream, log: &Path) -> Result<Self, ConsoleError> {
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| ConsoleError::Log {
                path: log.to_path_buf(),
                source,
            })?;
        let writer = stream.try_clone().map_err(|source| ConsoleError::Connect {
            path: log.to_path_buf(),
            source,
        })?;
        let tail = ConsoleTail::default();
        let taps: Arc<Mutex<Vec<ConsoleTap>>> = Arc::default();
        let reader = TeeReader {
            inner: stream,
            log: log_file,
            tail: tail.clone(),
            taps: taps.clone(),
        };
        let options = rexpect::reader::Options::new().timeout_ms(Some(POLL.as_millis() as u64));
        let session = rexpect::session::StreamSession::new(reader, writer, options);
        Ok(Console {
            session,
            tail,
            taps,
        })
    }

    pub fn tail(&self) -> ConsoleTail {
        self.tail.clone()
    }

    /// Adds a consumer of the raw stream from now on.
    pub fn add_tap(&self, tap: ConsoleTap) {
        if let Ok(mut t) = self.taps.lock() {
            t.push(tap);
        }
    }

    pub fn send_line(&mut self, line: &str) -> Result<(), ConsoleError> {
        self.session
            .send_line(line)
            .map(drop)
            .map_err(|e| ConsoleError::Write(io::Error::other(e.to_string())))
    }

    /// Hands the console to the user's terminal until Ctrl-] (0x1d) or until `abort` fires.
    /// Output keeps going to console.log; the terminal is put in raw mode while attached.
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
        // Give the user echo and a prompt back.
        self.send_line("stty echo; PS1='rig# '")?;
        let _raw = RawTerminal::enter();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let stdin = io::stdin();
            let mut stdin = stdin.lock();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let result = loop {
            // Keep rexpect's buffer from growing: everything already went to the terminal.
            while self.session.try_read().is_some() {}
            match rx.recv_timeout(POLL) {
                Ok(bytes) => {
                    if let Some(pos) = bytes.iter().position(|&b| b == 0x1d) {
                        let _ = self.session.send(&String::from_utf8_lossy(&bytes[..pos]));
                        let _ = self.session.flush();
                        break Ok(());
                    }
                    if let Err(e) = self
                        .session
                        .send(&String::from_utf8_lossy(&bytes))
                        .and_then(|_| self.session.flush())
                    {
                        break Err(ConsoleError::Write(io::Error::other(e.to_string())));
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
            }
            if let Some(reason) = abort() {
                break Err(ConsoleError::Aborted {
                    waiting_for: "the interactive console".into(),
                    reason,
                    last: self.tail.last_lines(10),
                });
            }
        };
        attached.store(false, Ordering::Relaxed);
        result
    }

    /// Waits until `regex` matches the console stream; returns the match.
    pub fn wait_for(
        &mut self,
        regex: &str,
        timeout: Duration,
        abort: AbortCheck<'_>,
    ) -> Result<String, ConsoleError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.session.exp_regex(regex) {
                Ok((_, m)) => return Ok(m),
                Err(e) => self.check_wait(e, regex, timeout, deadline, abort)?,
            }
        }
    }

    /// The next whole line the console prints (without its newline), or `Ok(None)` when none came
    /// within one poll interval. Fails once `deadline` has passed (`timeout` is what the error
    /// says was waited), the console closed, or `abort` fired.
    pub fn next_line(
        &mut self,
        waiting_for: &str,
        timeout: Duration,
        deadline: Instant,
        abort: AbortCheck<'_>,
    ) -> Result<Option<String>, ConsoleError> {
        match self.session.read_line() {
            Ok(line) => Ok(Some(line)),
            Err(e) => {
                self.check_wait(e, waiting_for, timeout, deadline, abort)?;
                Ok(None)
            }
        }
    }

    /// Sends Ctrl-C (interrupts the guest shell's foreground command).
    pub fn interrupt(&mut self) {
        let _ = self.session.send_control('c');
    }

    /// Decides whether a failed rexpect poll ends the wait.
    fn check_wait(
        &self,
        err: rexpect::error::Error,
        waiting_for: &str,
        timeout: Duration,
        deadline: Instant,
        abort: AbortCheck<'_>,
    ) -> Result<(), ConsoleError> {
        let last = || self.tail.last_lines(30);
        match err {
            rexpect::error::Error::Timeout { .. } => {}
            rexpect::error::Error::EOF { .. } => {
                return Err(ConsoleError::Closed {
                    waiting_for: waiting_for.into(),
                    last: last(),
                })
            }
            other => {
                return Err(ConsoleError::Aborted {
                    waiting_for: waiting_for.into(),
                    reason: other.to_string(),
                    last: last(),
                })
            }
        }
        if let Some(reason) = abort() {
            return Err(ConsoleError::Aborted {
                waiting_for: waiting_for.into(),
                reason,
                last: last(),
            });
        }
        if Instant::now() >= deadline {
            return Err(ConsoleError::Timeout {
                waiting_for: waiting_for.into(),
                timeout,
                last: last(),
            });
        }
        Ok(())
    }
}

/// Puts the terminal on stdin in raw mode until dropped (no-op when stdin is not a terminal).
struct RawTerminal {
    saved: Option<libc::termios>,
}

impl RawTerminal {
    fn enter() -> RawTerminal {
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::isatty(0) } != 1 || unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return RawTerminal { saved: None };
        }
        let saved = t;
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
        RawTerminal { saved: Some(saved) }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        let t = ConsoleTail::default();
        t.push(b"a\r\nb\r\n\x1eS1\r\nc\n");
        assert_eq!(t.last_lines(2), "S1\nc");
    }
}
