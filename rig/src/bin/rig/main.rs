//! The `rig` command: parses arguments, sets up progress output, turns errors into exit codes.
//! Everything else lives in the library.

mod args;
mod commands;
mod failure;
mod workflows;

use args::Cli;
use clap::Parser;
use commands::run;
use rig::host::artifacts::RunDir;
use rig::host::events::{Events, JsonLines, StderrProgress};
use rig::host::exit::{Classify, ExitClass};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = rig::host::process::install_signal_handlers() {
        eprintln!("rig: warning: cannot install signal handlers: {e}");
    }
    let result = run(cli);
    if rig::host::process::caught_signal().is_some() {
        // The signal handler is stopping QEMU, cleaning up, and exits with 128+signal.
        rig::host::process::finish_signal_exit();
    }
    let code = match result {
        Ok(code) => code,
        // The reader of rig's stdout went away (`rig report | head`): end as a tool killed by
        // SIGPIPE would, without a message.
        Err(e)
            if e.error
                .chain()
                .filter_map(|c| c.downcast_ref::<commands::StdoutError>())
                .any(|s| s.is_broken_pipe()) =>
        {
            128 + 13
        }
        Err(e) => {
            let mut err = std::io::stderr().lock();
            // Errors carry guest output and file contents: shown, never acted on by the terminal.
            let safe = |t: String| rig::host::text::terminal_safe(&t).into_owned();
            let _ = writeln!(err, "rig: error: {}", safe(e.error.to_string()));
            for cause in e.error.chain().skip(1) {
                let _ = writeln!(err, "  caused by: {}", safe(cause.to_string()));
            }
            e.class.code()
        }
    };
    std::process::exit(code);
}

/// A file named on the command line that cannot be read (bad input).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}")]
struct InputFile {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl Classify for InputFile {
    fn exit_class(&self) -> ExitClass {
        ExitClass::BadInput
    }
}

fn events_for(verbose: bool, run_dir: Option<&RunDir>) -> Events {
    let mut ev = Events::none().with(Arc::new(StderrProgress::new(verbose)));
    if let Some(r) = run_dir {
        if let Ok(j) = JsonLines::create(&r.file("events.jsonl")) {
            ev = ev.with(Arc::new(j));
        }
    }
    ev
}
