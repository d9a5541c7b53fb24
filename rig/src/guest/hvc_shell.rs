//! The command protocol over the guest's command shell ([`Console`]'s virtio-console stream).
//!
//! rig's guest init leaves a non-interactive shell (job control, no prompt, no echo,
//! no output processing) on `/dev/hvc0`. No kernel message is ever printed there, so output
//! needs no encoding. For each command rig sends one logical line:
//!
//! ```text
//! printf '\036S%s\n' TOKEN; ( eval 'COMMAND' ) </dev/null 2>&1; printf '\n\036E%s %s\n' TOKEN $?
//! ```
//!
//! - `TOKEN` is 128 random bits, fresh per command: output that prints marker-like text, or a
//!   late marker of an earlier (interrupted) command, can never end this one. What counts is the
//!   byte sequence `\n 0x1e E TOKEN SP status \n`; the output is everything between the start
//!   line and that final newline, byte for byte (the newline before the end marker is rig's own).
//! - `( eval '…' )`: the command runs in a subshell, so `exit`, `cd`, traps or a syntax error
//!   end the subshell only, never the console shell; `eval` of a single-quoted word means no
//!   quoting in the command can break the line. A command that is one plain simple command
//!   (`cat /proc/x`, `rmdir /sys/…`) is evaluated as `exec COMMAND`, saving the fork the subshell
//!   would otherwise make for it: the round trip of a one-fork command then costs one fork, as
//!   when typed by hand.
//! - Bytes the terminal would interpret (control characters, DEL) are written as `$'\NNN'`;
//!   physical lines stay under the canonical-mode limit by ending in `'\` + newline (a line
//!   continuation between two quoted pieces of the same word).
//! - A timeout sends Ctrl-C: the foreground job (the subshell) gets SIGINT; the console shell,
//!   being non-interactive with job control, neither sees it nor stops reading, and prints the
//!   interrupted command's end marker, which carries the old token and is ignored.
//!
//! Guest output is untrusted: at most [`MAX_OUTPUT`] bytes of a command's output are kept (a
//! command that prints more fails with [`ConsoleError::Garbled`] once its end marker arrives),
//! and a status that is not 1–3 digits is refused.

use super::transport::{CommandOutput, Transport, TransportError, Via};
use crate::host::shell;
use crate::machine::console::{AbortCheck, Console, ConsoleError};
use crate::machine::vm::Vm;
use memchr::memmem;
use std::time::{Duration, Instant};

const MARK: u8 = 0x1e;
/// The longest physical line rig sends to the guest's tty (the canonical-mode limit is 4095).
pub const MAX_LINE: usize = 3000;
/// The most output of one command rig keeps.
pub const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// A fresh 128-bit token, as 32 hex digits, from the operating system's CSPRNG (a guest cannot
/// predict it from earlier tokens).
pub fn new_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Why a command cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a guest command cannot contain a NUL byte")]
pub struct NulInCommand;

/// Shell builtins and reserved words of busybox ash: a simple command starting with one of
/// these is not prefixed with `exec` (it runs in the subshell without a fork anyway, or is no
/// program at all).
const NOT_EXECUTABLE: &[&str] = &[
    "!", ".", ":", "[", "[[", "alias", "bg", "break", "case", "cd", "chdir", "command", "continue",
    "do", "done", "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fg",
    "fi", "for", "function", "getopts", "hash", "help", "history", "if", "in", "jobs", "kill",
    "let", "local", "printf", "pwd", "read", "readonly", "return", "select", "set", "shift",
    "source", "test", "then", "time", "times", "trap", "true", "type", "ulimit", "umask",
    "unalias", "unset", "until", "wait", "while", "{", "}",
];

/// Whether `command` is one simple command of plain words (no quoting, expansion, operators or
/// assignments) naming a program, so `exec command` means the same as `command`.
pub fn is_plain_simple_command(command: &str) -> bool {
    let plain = shell::is_plain_word;
    let mut words = command.split([' ', '\t']).filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return false;
    };
    plain(first) && !first.contains('=') && !NOT_EXECUTABLE.contains(&first) && words.all(plain)
}

/// `text` as one shell word for the tty: single-quoted ([`shell::single_quoted`]'s quoting),
/// control bytes as `$'\NNN'`, physical lines under [`MAX_LINE`] given that the current line
/// already holds `col` bytes. Returns the word and the column after it.
fn tty_word(text: &str, mut col: usize) -> (String, usize) {
    let mut w = String::with_capacity(text.len() + 8);
    w.push('\'');
    col += 1;
    for c in text.chars() {
        let piece: std::borrow::Cow<str> = match c {
            '\n' => {
                w.push('\n');
                col = 0;
                continue;
            }
            c if (c as u32) < 0x20 && c != '\t' || c as u32 == 0x7f => {
                format!("'$'\\{:03o}''", c as u32).into()
            }
            c => shell::in_single_quotes(c),
        };
        if col + piece.len() + 2 >= MAX_LINE {
            // End the quoted piece, continue the word on the next line.
            w.push_str("'\\\n'");
            col = 1;
        }
        w.push_str(&piece);
        col += piece.len();
    }
    w.push('\'');
    (w, col + 1)
}

/// The text rig writes to the shell to run `command` framed by `token` (ends with a newline).
pub fn command_text(token: &str, command: &str) -> Result<String, NulInCommand> {
    if command.contains('\0') {
        return Err(NulInCommand);
    }
    let body = if is_plain_simple_command(command) {
        format!("exec {}", command.trim())
    } else {
        command.to_string()
    };
    let head = format!("printf '\\036S%s\\n' {token}; ( eval ");
    let tail = format!(" ) </dev/null 2>&1; printf '\\n\\036E%s %s\\n' {token} $?");
    let (word, col) = tty_word(&body, head.len());
    let mut s = head;
    s.push_str(&word);
    if col + tail.len() + 2 >= MAX_LINE {
        s.push_str("\\\n");
    }
    s.push_str(&tail);
    s.push('\n');
    Ok(s)
}

/// What a frame turned out to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The command ended: its output and exit status.
    Done { output: Vec<u8>, status: i32 },
    /// The command ended but printed more than the limit.
    TooLarge { limit: usize },
    /// The end marker carried something that is no exit status.
    Garbled(String),
}

#[derive(Debug)]
enum Phase {
    SeekStart,
    Body,
    Status,
}

/// Finds one command's frame in the shell's byte stream, fed in chunks as they arrive.
#[derive(Debug)]
pub struct FrameParser {
    start: Vec<u8>,
    end: Vec<u8>,
    phase: Phase,
    /// Bytes not yet placed (before the start marker, or of the status).
    pending: Vec<u8>,
    output: Vec<u8>,
    /// Where the search for the end marker goes on in `output`.
    scanned: usize,
    limit: usize,
    over: bool,
}

impl FrameParser {
    pub fn new(token: &str) -> Self {
        Self::with_limit(token, MAX_OUTPUT)
    }

    pub fn with_limit(token: &str, limit: usize) -> Self {
        let mut start = vec![MARK, b'S'];
        start.extend_from_slice(token.as_bytes());
        start.push(b'\n');
        let mut end = vec![b'\n', MARK, b'E'];
        end.extend_from_slice(token.as_bytes());
        end.push(b' ');
        FrameParser {
            start,
            end,
            phase: Phase::SeekStart,
            pending: Vec::new(),
            output: Vec::new(),
            scanned: 0,
            limit,
            over: false,
        }
    }

    /// Feeds bytes from the stream; returns the frame once it is complete.
    pub fn feed(&mut self, data: &[u8]) -> Option<Frame> {
        match self.phase {
            Phase::SeekStart => {
                self.pending.extend_from_slice(data);
                let Some(i) = memmem::find(&self.pending, &self.start) else {
                    let cut = self.pending.len().saturating_sub(self.start.len() - 1);
                    self.pending.drain(..cut);
                    return None;
                };
                self.output = self.pending.split_off(i + self.start.len());
                self.pending.clear();
                self.phase = Phase::Body;
                self.body()
            }
            Phase::Body => {
                self.output.extend_from_slice(data);
                self.body()
            }
            Phase::Status => {
                self.pending.extend_from_slice(data);
                self.status()
            }
        }
    }

    fn body(&mut self) -> Option<Frame> {
        let Some(i) = memmem::find(&self.output[self.scanned..], &self.end) else {
            // Over the limit: keep only what the end marker could start in.
            if self.output.len() > self.limit + self.end.len() {
                self.over = true;
                let cut = self.output.len() - (self.end.len() - 1);
                self.output.drain(..cut);
            }
            self.scanned = self.output.len().saturating_sub(self.end.len() - 1);
            return None;
        };
        let at = self.scanned + i;
        self.pending = self.output.split_off(at + self.end.len());
        self.output.truncate(at);
        self.phase = Phase::Status;
        self.status()
    }

    fn status(&mut self) -> Option<Frame> {
        let Some(nl) = memchr::memchr(b'\n', &self.pending) else {
            return (self.pending.len() > 3).then(|| Frame::Garbled(lossy(&self.pending)));
        };
        let digits = &self.pending[..nl];
        if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
            return Some(Frame::Garbled(lossy(digits)));
        }
        if self.over {
            return Some(Frame::TooLarge { limit: self.limit });
        }
        Some(Frame::Done {
            status: lossy(digits).parse().unwrap_or(-1),
            output: std::mem::take(&mut self.output),
        })
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `command` in the guest's command shell; stdout and stderr come back merged.
pub fn run(
    console: &mut Console,
    command: &str,
    timeout: Duration,
    abort: AbortCheck<'_>,
) -> Result<CommandOutput, ConsoleError> {
    let waiting_for = format!("the end of guest command `{command}`");
    let token = new_token();
    let text = command_text(&token, command).map_err(|e| ConsoleError::Garbled {
        waiting_for: waiting_for.clone(),
        reason: e.to_string(),
    })?;
    console.discard_shell_output();
    console.send_raw(text.as_bytes())?;
    let deadline = Instant::now() + timeout;
    let mut parser = FrameParser::new(&token);
    loop {
        let chunk = match console.shell_output(&waiting_for, timeout, deadline, abort) {
            Ok(c) => c,
            Err(err) => {
                if matches!(err, ConsoleError::Timeout { .. }) {
                    // Interrupt the command so the shell is usable again; its late end marker
                    // carries this token, which no later command waits for.
                    console.interrupt();
                }
                return Err(err);
            }
        };
        let Some(frame) = parser.feed(&chunk) else {
            continue;
        };
        let garbled = |reason: String| ConsoleError::Garbled {
            waiting_for: waiting_for.clone(),
            reason,
        };
        return match frame {
            Frame::Done { output, status } => Ok(CommandOutput {
                stdout: String::from_utf8_lossy(&output).into_owned(),
                stderr: None,
                status,
            }),
            Frame::TooLarge { limit } => Err(garbled(format!(
                "the command printed more than {} MiB",
                limit / (1024 * 1024)
            ))),
            Frame::Garbled(s) => Err(garbled(format!(
                "garbled end marker (status `{}`)",
                s.escape_debug()
            ))),
        };
    }
}

/// [`Console`] as a [`Transport`], with an abort check that watches QEMU.
pub struct HvcTransport<'a> {
    pub console: &'a mut Console,
    pub abort: Box<dyn FnMut() -> Option<String> + 'a>,
}

impl<'a> HvcTransport<'a> {
    /// The command shell of `vm`, watching QEMU while it waits.
    pub fn of(vm: &'a mut Vm) -> Self {
        let (console, abort) = vm.console_watched();
        HvcTransport {
            console,
            abort: Box::new(abort),
        }
    }
}

impl Transport for HvcTransport<'_> {
    fn name(&self) -> &'static str {
        Via::Hvc.name()
    }

    fn run(&mut self, command: &str, timeout: Duration) -> Result<CommandOutput, TransportError> {
        let abort = &mut self.abort;
        run(self.console, command, timeout, &mut || abort())
            .map_err(|e| console_to_transport(e, command))
    }
}

/// Maps console failures onto the transport's vocabulary.
pub fn console_to_transport(e: ConsoleError, command: &str) -> TransportError {
    match e {
        ConsoleError::Timeout { timeout, last, .. } => TransportError::Timeout {
            transport: Via::Hvc.name(),
            command: command.into(),
            timeout,
            last_console: last,
        },
        ConsoleError::Closed { last, .. } => TransportError::GuestDied {
            transport: Via::Hvc.name(),
            command: command.into(),
            status: "the console closed (QEMU exited)".into(),
            last_console: last,
        },
        ConsoleError::Aborted { reason, last, .. } => TransportError::GuestDied {
            transport: Via::Hvc.name(),
            command: command.into(),
            status: reason,
            last_console: last,
        },
        other => TransportError::Other {
            transport: Via::Hvc.name(),
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
#[path = "hvc_shell_tests.rs"]
mod tests;
