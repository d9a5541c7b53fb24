//! Everything `rig` prints on stdout goes through here: errors instead of panics when stdout
//! cannot take it, and text rig does not control made terminal-safe.

use rig::host::exit::{Classify, ExitClass};
use rig::host::text::terminal_safe;

/// Prints human text made from data rig does not control (guest output, kernel logs, scenario
/// and bundle contents) with its control characters shown, never acted on by the terminal.
pub(crate) fn print_text(text: &str) -> Result<(), StdoutError> {
    write_stdout(&terminal_safe(text))
}

/// Prints a verdict that was already decided: a stdout that cannot take it (a full disk, a
/// closed pipe) is said on stderr and the verdict's exit code stands.
pub(crate) fn print_verdict(text: &str) {
    if let Err(e) = print_text(text) {
        eprintln!("rig: warning: {e}; the verdict is in the exit code and the run's artifacts");
    }
}

/// Stdout refused what rig printed: a full disk behind a redirect, or a reader that went away.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout")]
pub(crate) struct StdoutError(#[source] pub(crate) std::io::Error);

impl StdoutError {
    /// The reader went away (`rig report | head`): not an error worth a message.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

impl Classify for StdoutError {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Infra
    }
}

pub(crate) fn write_stdout(text: &str) -> Result<(), StdoutError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// `println!` that returns an error instead of panicking when stdout cannot be written.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;
