//! The command protocol over the serial console ([`Console`]).
//!
//! The guest's init leaves a shell on the console with echo off and an empty prompt. For each
//! command rig sends one line that runs the command (base64-encoded, so any quoting survives) with
//! its output captured to a file, then prints a start marker, the output base64-encoded, and an end
//! marker carrying the exit status. Markers start with the ASCII record separator (0x1e), which
//! neither the kernel nor the base64 alphabet ever prints.
//!
//! Kernel messages share the console. printk can print a whole message between any two bytes of
//! user output, so a line can look like `QUJD[   12.345678] some message` followed by `REVG`. The
//! base64 alphabet never contains `[`, so [`ProtocolParser`] cuts each line at the first printk
//! timestamp and joins the user part with the next line. Kernel text itself is never lost: the
//! console tees the whole stream to `console.log` and its taps before this parser sees it.

use super::transport::{CommandOutput, Transport, TransportError};
use crate::machine::console::{AbortCheck, Console, ConsoleError};
use crate::machine::vm::Vm;
use base64::Engine as _;
use regex::Regex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

const MARK: char = '\u{1e}';
/// The longest line rig sends to the guest's tty (the canonical-mode line limit is 4095).
const MAX_LINE: usize = 3000;

static PRINTK_TIMESTAMP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[\s*\d+\.\d{6}\]").expect("valid regex"));

/// What a console line turned out to be, once kernel text is cut out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolEvent {
    /// The command's output began.
    Start,
    /// One base64 line of output.
    Data(String),
    /// The command ended with this exit status.
    End(i32),
}

/// Reassembles user lines from a console stream that kernel messages cut into, and recognises the
/// markers of one command `id`.
#[derive(Debug, Default)]
pub struct ProtocolParser {
    id: u64,
    pending: String,
    started: bool,
}

impl ProtocolParser {
    pub fn new(id: u64) -> Self {
        ProtocolParser {
            id,
            ..Default::default()
        }
    }

    /// Feeds one console line (without its newline). Returns the protocol event it completed, if any.
    pub fn line(&mut self, raw: &str) -> Option<ProtocolEvent> {
        let line = raw.trim_end_matches('\r').trim_start_matches('\r');
        let (user, spliced) = match PRINTK_TIMESTAMP.find(line) {
            // A line that starts with a timestamp is all kernel.
            Some(m) if line[..m.start()].trim().is_empty() => return None,
            // User text, then a kernel message that cut in: the rest follows on the next line.
            Some(m) => (&line[..m.start()], true),
            None => (line, false),
        };
        self.pending.push_str(user);
        if spliced {
            return None;
        }
        let whole = std::mem::take(&mut self.pending);
        self.classify(&whole)
    }

    fn classify(&mut self, line: &str) -> Option<ProtocolEvent> {
        let Some(rest) = line.strip_prefix(MARK) else {
            if self.started && !line.is_empty() && is_base64(line) {
                return Some(ProtocolEvent::Data(line.to_string()));
            }
            return None;
        };
        let id = self.id.to_string();
        if let Some(r) = rest.strip_prefix('S') {
            if r == id {
                self.started = true;
                return Some(ProtocolEvent::Start);
            }
        } else if let Some(r) = rest.strip_prefix('E') {
            let (rid, status) = r.split_once(' ')?;
            if rid == id && self.started {
                return status.trim().parse().ok().map(ProtocolEvent::End);
            }
        }
        None
    }
}

fn is_base64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// Decodes the collected base64 lines of a command's output.
pub fn decode_output(lines: &[String]) -> Result<String, base64::DecodeError> {
    let joined: String = lines.concat();
    let bytes = base64::engine::general_purpose::STANDARD.decode(joined)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The lines rig sends to run `command` as command number `id`.
///
/// Short commands fit one line; long ones are first written to a file in chunks, since a tty
/// line must stay under the canonical-mode limit.
pub fn command_lines(id: u64, command: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(command.as_bytes());
    let run = format!(
        "sh /tmp/.rig-cmd </dev/null >/tmp/.rig-out 2>&1; s=$?; \
         printf '\\036S%s\\n' {id}; base64 /tmp/.rig-out; printf '\\036E%s %s\\n' {id} $s"
    );
    if b64.len() + run.len() + 60 < MAX_LINE {
        return vec![format!("echo {b64} | base64 -d >/tmp/.rig-cmd; {run}")];
    }
    let mut lines = vec![": >/tmp/.rig-cmd.b64".to_string()];
    for chunk in b64.as_bytes().chunks(MAX_LINE - 40) {
        let chunk = std::str::from_utf8(chunk).expect("base64 is ascii");
        lines.push(format!("printf %s {chunk} >>/tmp/.rig-cmd.b64"));
    }
    lines.push(format!("base64 -d /tmp/.rig-cmd.b64 >/tmp/.rig-cmd; {run}"));
    lines
}

/// Command ids: unique per process, so a late marker of an interrupted command never matches.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Runs `command` in the guest shell on `console`; stdout and stderr come back merged.
pub fn run(
    console: &mut Console,
    command: &str,
    timeout: Duration,
    abort: AbortCheck<'_>,
) -> Result<CommandOutput, ConsoleError> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    for line in command_lines(id, command) {
        console.send_line(&line)?;
    }
    let waiting_for = format!("the end of guest command `{command}`");
    let deadline = Instant::now() + timeout;
    let mut parser = ProtocolParser::new(id);
    let mut data = Vec::new();
    loop {
        let line = match console.next_line(&waiting_for, timeout, deadline, abort) {
            Ok(Some(line)) => line,
            Ok(None) => continue,
            Err(err) => {
                if matches!(err, ConsoleError::Timeout { .. }) {
                    // Interrupt the command so the shell is usable again; its late markers
                    // carry an old id and are ignored.
                    console.interrupt();
                }
                return Err(err);
            }
        };
        match parser.line(&line) {
            Some(ProtocolEvent::Data(d)) => data.push(d),
            Some(ProtocolEvent::End(status)) => {
                let stdout = decode_output(&data).map_err(|e| ConsoleError::Aborted {
                    waiting_for: waiting_for.clone(),
                    reason: format!("garbled output: {e}"),
                    last: console.tail().last_lines(30),
                })?;
                return Ok(CommandOutput {
                    stdout,
                    stderr: None,
                    status,
                });
            }
            Some(ProtocolEvent::Start) | None => {}
        }
    }
}

/// [`Console`] as a [`Transport`], with an abort check that watches QEMU.
pub struct SerialTransport<'a> {
    pub console: &'a mut Console,
    pub abort: Box<dyn FnMut() -> Option<String> + 'a>,
}

impl<'a> SerialTransport<'a> {
    /// The serial console of `vm`, watching QEMU while it waits.
    pub fn of(vm: &'a mut Vm) -> Self {
        let (console, abort) = vm.console_watched();
        SerialTransport {
            console,
            abort: Box::new(abort),
        }
    }
}

impl Transport for SerialTransport<'_> {
    fn name(&self) -> &'static str {
        "serial"
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
            transport: "serial",
            command: command.into(),
            timeout,
            last_console: last,
        },
        ConsoleError::Closed { last, .. } => TransportError::GuestDied {
            transport: "serial",
            command: command.into(),
            status: "console closed".into(),
            last_console: last,
        },
        ConsoleError::Aborted { reason, last, .. } => TransportError::GuestDied {
            transport: "serial",
            command: command.into(),
            status: reason,
            last_console: last,
        },
        other => TransportError::Other {
            transport: "serial",
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn feed(parser: &mut ProtocolParser, text: &str) -> Vec<ProtocolEvent> {
        text.split('\n').filter_map(|l| parser.line(l)).collect()
    }

    #[test]
    fn plain_command_output() {
        let out = b64("hello\nworld\n");
        let text = format!("\u{1e}S7\r\n{out}\r\n\u{1e}E7 3\r\n");
        let mut p = ProtocolParser::new(7);
        let ev = feed(&mut p, &text);
        assert_eq!(
            ev,
            vec![
                ProtocolEvent::Start,
                ProtocolEvent::Data(out.clone()),
                ProtocolEvent::End(3)
            ]
        );
        assert_eq!(decode_output(&[out]).unwrap(), "hello\nworld\n");
    }

    #[test]
    fn kernel_lines_between_output_lines_are_dropped() {
        let out = b64(&"x".repeat(100)); // more than one base64 line
        let (a, b) = out.split_at(76);
        let text = format!(
            "\u{1e}S1\n[    3.123456] e1000e 0000:01:00.0: enabling device\n{a}\n\
             [    3.223456][    T1] random: crng init done\n{b}\n\u{1e}E1 0\n"
        );
        let mut p = ProtocolParser::new(1);
        let ev = feed(&mut p, &text);
        let data: Vec<String> = ev
            .iter()
            .filter_map(|e| match e {
                ProtocolEvent::Data(d) => Some(d.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(decode_output(&data).unwrap(), "x".repeat(100));
        assert_eq!(ev.last(), Some(&ProtocolEvent::End(0)));
    }

    #[test]
    fn kernel_message_cutting_a_line_in_half_is_spliced_out() {
        let out = b64("the quick brown fox");
        let (a, b) = out.split_at(10);
        let text = format!(
            "\u{1e}S2\n{a}[   12.345678] pcieport 0000:00:02.0: pciehp: Slot(0): Attention button pressed\r\n{b}\n\
             \u{1e}E[   12.400000] WARNING: CPU: 1 PID: 9 at x.c:1 f+0x1/0x2\r\n2 1\n"
        );
        let mut p = ProtocolParser::new(2);
        let ev = feed(&mut p, &text);
        assert_eq!(
            ev,
            vec![
                ProtocolEvent::Start,
                ProtocolEvent::Data(out),
                ProtocolEvent::End(1)
            ]
        );
    }

    #[test]
    fn markers_of_other_commands_and_stray_text_are_ignored() {
        let text =
            "\u{1e}E1 130\n\u{1e}S1\nQUJD\n\u{1e}E1 0\nsome user noise\n\u{1e}S2\n\u{1e}E2 5\n";
        let mut p = ProtocolParser::new(2);
        assert_eq!(
            feed(&mut p, text),
            vec![ProtocolEvent::Start, ProtocolEvent::End(5)]
        );
    }

    #[test]
    fn dmesg_output_survives_because_it_travels_encoded() {
        // A command whose own output looks like kernel lines is still returned intact.
        let payload = "[    1.000000] Linux version 6.1.0\n";
        let out = b64(payload);
        let mut p = ProtocolParser::new(3);
        let ev = feed(&mut p, &format!("\u{1e}S3\n{out}\n\u{1e}E3 0\n"));
        assert_eq!(decode_output(&[out]).unwrap(), payload);
        assert_eq!(ev.len(), 3);
    }

    #[test]
    fn short_and_long_commands_are_framed() {
        let short = command_lines(4, "echo 'a \"b\"'; exit 3");
        assert_eq!(short.len(), 1);
        assert!(short[0].contains(&b64("echo 'a \"b\"'; exit 3")));
        assert!(short[0].contains("printf '\\036S%s\\n' 4"));
        assert!(short[0].contains("printf '\\036E%s %s\\n' 4 $s"));

        let long_cmd = "echo x; ".repeat(1000);
        let long = command_lines(5, &long_cmd);
        assert!(long.len() > 2);
        assert!(
            long.iter().all(|l| l.len() < MAX_LINE + 100),
            "lines too long"
        );
        let rebuilt: String = long[1..long.len() - 1]
            .iter()
            .map(|l| {
                l.trim_start_matches("printf %s ")
                    .trim_end_matches(" >>/tmp/.rig-cmd.b64")
                    .to_string()
            })
            .collect();
        assert_eq!(rebuilt, b64(&long_cmd));
    }
}
